//! Picket's load generator and benchmark harnesses.
//!
//! - [`loadgen`]: simulated agents over the real transport (the `picket-loadgen` binary is a
//!   thin command line over it);
//! - [`harness`]: a release `picket-backend` as a child process, /proc memory readings and a
//!   small REST client, shared by the `bench-*` binaries;
//! - [`scheduler_jitter`]: delay of interval check requests behind their planned instants
//!   (in-process backend; `bench-scheduler`);
//! - [`events_throughput`]: check results per second (and per CPU-second) through eventd on
//!   the file-backed embedded store (`bench-events`);
//! - [`counting`]: a `Store` wrapper counting requests (store requests per event);
//! - [`pipeline_throughput`]: events per second through two JavaScript filters, the json
//!   mutator and a tcp handler, and filter evaluations per second (`bench-pipeline`);
//! - [`statsd_throughput`]: the agent's StatsD listener beside the Etsy `statsd` daemon, fed
//!   by one `sendmmsg` generator at rising rates (`bench-statsd`);
//! - [`stats`]: percentile summaries and CPU time (this process's or a child's).
//!
//! Everything here talks to loopback addresses given to it and stops by itself.

pub mod counting;
pub mod events_throughput;
pub mod harness;
pub mod loadgen;
pub mod pipeline_throughput;
pub mod scheduler_jitter;
pub mod stats;
pub mod statsd_throughput;

use std::time::Duration;

/// Parse `500ms`, `20s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration (e.g. 500ms, 20s, 5m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {raw:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{raw:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
