//! Small measurement helpers shared by the benchmark harnesses: percentile summaries and the
//! process's CPU time.

use std::fmt;
use std::io;
use std::time::Duration;

/// Count, extremes and percentiles of a sample (nearest-rank percentiles, no interpolation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub min: i64,
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub p999: i64,
    pub max: i64,
}

impl Summary {
    /// Summarise `values` (any order; sorted in place). An empty sample gives all zeroes.
    pub fn of(values: &mut [i64]) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_unstable();
        Summary {
            count: values.len(),
            min: values[0],
            p50: percentile(values, 50.0),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
            p999: percentile(values, 99.9),
            max: values[values.len() - 1],
        }
    }
}

/// Nearest-rank percentile of a sorted, non-empty sample: the smallest value with at least
/// `p` % of the sample at or below it.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    assert!(!sorted.is_empty(), "percentile of an empty sample");
    // The epsilon keeps float error (99.9 / 100 · 1000 = 999.000…1) from bumping the rank.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nanoseconds shown as milliseconds with three decimals.
pub struct Ms(pub i64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0 as f64 / 1e6)
    }
}

/// Linux's `USER_HZ`, the unit of the times in /proc/<pid>/stat: 100 on every architecture
/// Picket targets (it is part of the kernel ABI, independent of the kernel's own HZ).
const USER_HZ: u64 = 100;

/// CPU time (user + system) this process has used so far, all threads included, exited ones
/// too. Resolution 10 ms: measure runs of seconds, not microseconds.
pub fn process_cpu_time() -> io::Result<Duration> {
    cpu_time_of("self")
}

/// CPU time (user + system) of the calling thread alone.
pub fn thread_cpu_time() -> io::Result<Duration> {
    cpu_time_of("thread-self")
}

/// CPU time (user + system) of another process, all its threads included.
pub fn child_cpu_time(pid: u32) -> io::Result<Duration> {
    cpu_time_of(&pid.to_string())
}

fn cpu_time_of(proc_dir: &str) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{proc_dir}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/{proc_dir}/stat format")))
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<i64> = (1..=1000).rev().collect();
        let s = Summary::of(&mut v);
        assert_eq!(
            (s.count, s.min, s.p50, s.p90, s.p99, s.p999, s.max),
            (1000, 1, 500, 900, 990, 999, 1000)
        );
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(percentile(&[1, 2], 0.0), 1);
        assert_eq!(Summary::of(&mut []), Summary::default());
        assert_eq!(Ms(1_234_567).to_string(), "1.235");
        assert_eq!(Ms(-500_000).to_string(), "-0.500");
    }

    #[test]
    fn cpu_ticks_from_a_stat_line() {
        let line = "4242 (bench (x) y) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(line), Some(281));
        assert!(process_cpu_time().is_ok());
    }
}
