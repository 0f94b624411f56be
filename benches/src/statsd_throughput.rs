//! StatsD throughput: the agent's listener beside the reference Etsy `statsd` daemon (npm
//! package `statsd` 0.9), fed the same traffic by the same generator.
//!
//! The generator ([`Generator`]) sends with `sendmmsg` on connected UDP sockets, paced to a
//! target rate of datagrams per second: one or more threads (one socket each, optionally
//! pinned to CPUs) and, by default, UDP GSO (`UDP_SEGMENT`): one message carries up to
//! [`GSO_SEGMENTS`] equal-sized datagrams that the kernel splits on the way in, so the
//! receiver sees ordinary datagrams while the sender pays for one trip through the stack per
//! message. On loopback the delivery into the receiving socket runs on the sender's CPU. Each
//! step sends for a fixed time, then waits two flush intervals so that the daemon has counted
//! everything it received; loss is `1 - received / sent` in metrics. What each daemon counts:
//! - Picket: `picket_agent_statsd_metrics_total` of the agent's `/metrics` (updated at every flush);
//! - Etsy: its own `statsd.metrics_received` counter, written per flush to a file by a
//!   ten-line backend module this benchmark hands it ([`ETSY_COUNT_BACKEND`]).
//!
//! CPU time is the receiving process's user + system time over the step (all its threads).
//! Rates rise until loss passes the threshold twice in a row or the generator cannot keep up.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg, setsockopt, sockopt};

use crate::harness::free_port;
use crate::stats::child_cpu_time;

/// Messages per `sendmmsg` call.
pub const MESSAGES_PER_CALL: usize = 64;
/// Datagrams per GSO message: the kernel's `UDP_MAX_SEGMENTS` on older kernels (newer allow
/// 128).
pub const GSO_SEGMENTS: usize = 64;
/// A GSO message's payload must fit one UDP datagram.
const GSO_MAX_BYTES: usize = 65_000;
/// Flush interval given to both daemons.
const FLUSH: Duration = Duration::from_secs(1);

/// The Etsy daemon's flush hook: appends what the daemon received in each interval.
pub const ETSY_COUNT_BACKEND: &str = r#"// Written by Picket's bench-statsd: per flush, the metrics and packets received.
const fs = require('fs');
exports.init = function (startupTime, config, events) {
  events.on('flush', function (ts, metrics) {
    const c = metrics.counters;
    const line = JSON.stringify({
      metrics: c['statsd.metrics_received'] || 0,
      packets: c['statsd.packets_received'] || 0,
      bad: c['statsd.bad_lines_seen'] || 0,
    });
    fs.appendFileSync(config.picketCountFile, line + '\n');
  });
  return true;
};
"#;

/// The traffic: `metrics_per_datagram` lines per datagram, cycling through counters, gauges,
/// timers and sets over a few hundred series (what a busy application sends). Every line has
/// the same length (fixed-width numbers, names padded per type), so all datagrams of a shape
/// are the same size, which UDP GSO needs.
pub fn payloads(metrics_per_datagram: usize, distinct: usize) -> Vec<Vec<u8>> {
    let mut line = 0usize;
    (0..distinct)
        .map(|_| {
            let mut datagram = Vec::new();
            for i in 0..metrics_per_datagram {
                if i > 0 {
                    datagram.push(b'\n');
                }
                let series = line % 250;
                // 27 bytes each.
                let text = match line % 4 {
                    0 => format!("app.requests.served.{series:03}:1|c"),
                    1 => format!("app.queue.inflight.{series:03}:{:02}|g", line % 97),
                    2 => format!("app.latency.{series:03}:{:03}|ms|@0.5", line % 1000),
                    _ => format!("app.users.uniques.{series:03}:u{:02}|s", line % 31),
                };
                datagram.extend_from_slice(text.as_bytes());
                line += 1;
            }
            datagram
        })
        .collect()
}

/// A daemon under test.
pub enum Receiver {
    Picket {
        child: Child,
        api_port: u16,
        _cache: tempfile::TempDir,
    },
    Etsy {
        child: Child,
        counts: PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl Receiver {
    /// `picket-agent` with only its StatsD listener and HTTP API in use. Its backend URL
    /// points at a closed loopback port: the agent keeps retrying in the background (a few
    /// connection attempts a minute), which costs nothing measurable.
    pub fn picket(agent: &Path, port: u16, cpu: Option<usize>) -> Result<Receiver> {
        let api_port = free_port()?;
        let dead_backend = free_port()?;
        let cache = tempfile::tempdir()?;
        let child = command(agent, cpu)
            .args(["start", "--name", "bench-statsd", "--log-level", "error"])
            .args(["--backend-url", &format!("ws://127.0.0.1:{dead_backend}")])
            .args(["--statsd-metrics-port", &port.to_string()])
            .args(["--statsd-flush-interval", &FLUSH.as_secs().to_string()])
            .args(["--api-port", &api_port.to_string(), "--disable-sockets"])
            .arg("--cache-dir")
            .arg(cache.path())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", agent.display()))?;
        let receiver = Receiver::Picket {
            child,
            api_port,
            _cache: cache,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while receiver.received().is_err() {
            if Instant::now() > deadline {
                bail!("picket-agent's API did not answer on port {api_port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(receiver)
    }

    /// `node stats.js` of the npm package, with its UDP server on `port`.
    pub fn etsy(statsd_dir: &Path, port: u16, cpu: Option<usize>) -> Result<Receiver> {
        let dir = tempfile::tempdir()?;
        let backend = dir.path().join("picket-count.js");
        let counts = dir.path().join("counts.jsonl");
        std::fs::write(&backend, ETSY_COUNT_BACKEND)?;
        std::fs::write(&counts, "")?;
        let config = serde_json::json!({
            "address": "127.0.0.1",
            "port": port,
            "mgmt_address": "127.0.0.1",
            "mgmt_port": free_port()?,
            "flushInterval": FLUSH.as_millis() as u64,
            "backends": [backend],
            "picketCountFile": counts,
        });
        let config_path = dir.path().join("config.js");
        std::fs::write(&config_path, format!("({config})"))?;
        let child = command(Path::new("node"), cpu)
            .arg(statsd_dir.join("stats.js"))
            .arg(&config_path)
            .current_dir(statsd_dir)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start node (the Etsy statsd daemon needs Node.js)")?;
        let receiver = Receiver::Etsy {
            child,
            counts,
            _dir: dir,
        };
        // Ready once it has flushed at least once.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let flushed = std::fs::metadata(receiver.counts_path())?.len() > 0;
            if flushed {
                break;
            }
            if Instant::now() > deadline {
                bail!("the Etsy statsd daemon did not flush within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(receiver)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Receiver::Picket { .. } => "picket-agent",
            Receiver::Etsy { .. } => "etsy statsd 0.9",
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Receiver::Picket { child, .. } | Receiver::Etsy { child, .. } => child.id(),
        }
    }

    fn counts_path(&self) -> &Path {
        match self {
            Receiver::Etsy { counts, .. } => counts,
            Receiver::Picket { .. } => unreachable!("only the Etsy daemon writes counts"),
        }
    }

    /// Metrics received since start, as of the daemon's last flush.
    pub fn received(&self) -> Result<u64> {
        match self {
            Receiver::Picket { api_port, .. } => {
                let body = ureq::get(&format!("http://127.0.0.1:{api_port}/metrics"))
                    .call()?
                    .into_body()
                    .read_to_string()?;
                prometheus_value(&body, "picket_agent_statsd_metrics_total")
                    .context("no picket_agent_statsd_metrics_total in the agent's /metrics")
            }
            Receiver::Etsy { counts, .. } => {
                let file = std::fs::File::open(counts)?;
                let mut total = 0;
                for line in BufReader::new(file).lines() {
                    let value: serde_json::Value = serde_json::from_str(&line?)?;
                    total += value["metrics"].as_u64().unwrap_or(0);
                }
                Ok(total)
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let child = match self {
            Receiver::Picket { child, .. } | Receiver::Etsy { child, .. } => child,
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `program`, under `taskset -c <cpu>` when pinned (taskset execs it: the pid is the
/// program's, and all its threads stay on that CPU).
fn command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A sample's value from Prometheus text (no labels).
fn prometheus_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// One rate step's outcome.
#[derive(Debug, Clone)]
pub struct Step {
    pub target_datagrams_per_second: f64,
    pub sent_datagrams: u64,
    pub sent_metrics: u64,
    pub received_metrics: u64,
    pub send_seconds: f64,
    pub receiver_cpu: Duration,
}

impl Step {
    pub fn loss(&self) -> f64 {
        if self.sent_metrics == 0 {
            return 0.0;
        }
        1.0 - self.received_metrics.min(self.sent_metrics) as f64 / self.sent_metrics as f64
    }

    pub fn sent_metrics_per_second(&self) -> f64 {
        self.sent_metrics as f64 / self.send_seconds
    }

    /// Receiver CPU seconds per million metrics received.
    pub fn cpu_per_million(&self) -> f64 {
        if self.received_metrics == 0 {
            return f64::NAN;
        }
        self.receiver_cpu.as_secs_f64() * 1e6 / self.received_metrics as f64
    }
}

/// How the traffic is sent.
#[derive(Debug, Clone)]
pub struct Generator {
    /// Sending threads, each with its own socket and an equal share of the rate.
    pub threads: usize,
    /// UDP GSO: up to [`GSO_SEGMENTS`] datagrams per message (else one per message).
    pub gso: bool,
    /// CPUs the sending threads are pinned to, round robin (none: not pinned).
    pub cpus: Vec<usize>,
}

impl Default for Generator {
    fn default() -> Generator {
        Generator {
            threads: 1,
            gso: true,
            cpus: Vec::new(),
        }
    }
}

impl Generator {
    /// One line for the report.
    pub fn describe(&self) -> String {
        let per_message = if self.gso {
            format!("UDP GSO, up to {GSO_SEGMENTS} datagrams per message")
        } else {
            "one datagram per message".to_string()
        };
        let pinned = if self.cpus.is_empty() {
            "not pinned".to_string()
        } else {
            format!(
                "pinned to CPU {}",
                self.cpus
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        format!(
            "{} thread(s), sendmmsg {MESSAGES_PER_CALL} messages per call, {per_message}, {pinned}",
            self.threads
        )
    }

    /// Send `payloads` (all the same length) round-robin to `port` at `rate` datagrams/s in
    /// total for `duration`. Returns (datagrams sent, metrics sent, seconds taken).
    pub fn send(
        &self,
        port: u16,
        payloads: &[Vec<u8>],
        metrics_per_datagram: usize,
        rate: f64,
        duration: Duration,
    ) -> Result<(u64, u64, f64)> {
        let pool = Pool::new(payloads)?;
        let threads = self.threads.max(1);
        let start = Instant::now();
        let sent = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let cpu = (!self.cpus.is_empty()).then(|| self.cpus[t % self.cpus.len()]);
                    let pool = &pool;
                    let share = rate / threads as f64;
                    // Threads start at different payloads, so they do not send in lockstep.
                    let first = t * payloads.len() / threads;
                    scope.spawn(move || {
                        send_thread(port, pool, first, share, duration, self.gso, cpu)
                    })
                })
                .collect();
            let mut total = 0u64;
            for h in handles {
                total += h
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
            }
            Ok::<u64, anyhow::Error>(total)
        })?;
        let seconds = start.elapsed().as_secs_f64();
        Ok((sent, sent * metrics_per_datagram as u64, seconds))
    }
}

/// The payloads laid end to end, followed by the first [`GSO_SEGMENTS`] again, so that any
/// run of up to that many consecutive datagrams is one contiguous slice.
struct Pool {
    bytes: Vec<u8>,
    len: usize,
    count: usize,
}

impl Pool {
    fn new(payloads: &[Vec<u8>]) -> Result<Pool> {
        let len = payloads.first().context("no payloads")?.len();
        if len == 0 || payloads.iter().any(|p| p.len() != len) {
            bail!("the payloads must all have the same, non-zero length");
        }
        let mut bytes = Vec::with_capacity(len * (payloads.len() + GSO_SEGMENTS));
        for p in payloads
            .iter()
            .chain(payloads.iter().cycle().take(GSO_SEGMENTS))
        {
            bytes.extend_from_slice(p);
        }
        Ok(Pool {
            bytes,
            len,
            count: payloads.len(),
        })
    }

    /// `n` consecutive datagrams from the `first`th.
    fn run(&self, first: usize, n: usize) -> &[u8] {
        &self.bytes[first * self.len..(first + n) * self.len]
    }
}

fn send_thread(
    port: u16,
    pool: &Pool,
    mut next: usize,
    rate: f64,
    duration: Duration,
    gso: bool,
    cpu: Option<usize>,
) -> Result<u64> {
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .with_context(|| format!("cannot pin a sender to CPU {cpu}"))?;
    }
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(("127.0.0.1", port))?;
    let per_message = if gso {
        let segment = u16::try_from(pool.len).context("datagram too long for GSO")?;
        setsockopt(&socket, sockopt::UdpGsoSegment, &i32::from(segment))
            .context("UDP_SEGMENT (GSO) is not available; use --no-gso")?;
        GSO_SEGMENTS.min(GSO_MAX_BYTES / pool.len).max(1)
    } else {
        1
    };
    let fd = socket.as_raw_fd();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(MESSAGES_PER_CALL, None);
    let addresses: [Option<SockaddrIn>; MESSAGES_PER_CALL] = [None; MESSAGES_PER_CALL];
    let mut slices: Vec<[std::io::IoSlice<'_>; 1]> = Vec::with_capacity(MESSAGES_PER_CALL);
    let mut counts: Vec<usize> = Vec::with_capacity(MESSAGES_PER_CALL);
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        // Saturates for an unbounded rate (the ceiling run).
        let due = (rate * elapsed.as_secs_f64()) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        let mut wanted = (due - sent).min((MESSAGES_PER_CALL * per_message) as u64) as usize;
        slices.clear();
        counts.clear();
        let mut at = next;
        while wanted > 0 {
            let n = wanted.min(per_message);
            slices.push([std::io::IoSlice::new(pool.run(at, n))]);
            counts.push(n);
            at = (at + n) % pool.count;
            wanted -= n;
        }
        match sendmmsg(
            fd,
            &mut headers,
            &slices,
            &addresses[..slices.len()],
            [],
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let done: usize = counts[..results.count()].iter().sum();
                sent += done as u64;
                next = (next + done) % pool.count;
            }
            // The receiver is not listening (yet, or any more): counted as sent and lost.
            Err(nix::errno::Errno::ECONNREFUSED) => {}
            Err(e) => bail!("sendmmsg: {e}"),
        }
    }
    Ok(sent)
}

/// The generator's own ceiling: datagrams/s sent flat out for `duration` to a loopback socket
/// that is never read (the kernel drops what does not fit its buffer, after the same trip
/// through the stack).
pub fn ceiling(
    generator: &Generator,
    payloads: &[Vec<u8>],
    metrics_per_datagram: usize,
    duration: Duration,
) -> Result<f64> {
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let port = sink.local_addr()?.port();
    let (datagrams, _, seconds) = generator.send(
        port,
        payloads,
        metrics_per_datagram,
        f64::INFINITY,
        duration,
    )?;
    drop(sink);
    Ok(datagrams as f64 / seconds)
}

/// One rate step against a running receiver.
pub fn step(
    receiver: &Receiver,
    generator: &Generator,
    port: u16,
    payloads: &[Vec<u8>],
    metrics_per_datagram: usize,
    rate: f64,
    duration: Duration,
) -> Result<Step> {
    let received_before = receiver.received()?;
    let cpu_before = child_cpu_time(receiver.pid())?;
    let (datagrams, metrics, seconds) =
        generator.send(port, payloads, metrics_per_datagram, rate, duration)?;
    // Two flushes: whatever arrived is counted by then.
    std::thread::sleep(FLUSH * 2 + Duration::from_millis(300));
    let cpu = child_cpu_time(receiver.pid())?.saturating_sub(cpu_before);
    let received = receiver.received()? - received_before;
    Ok(Step {
        target_datagrams_per_second: rate,
        sent_datagrams: datagrams,
        sent_metrics: metrics,
        received_metrics: received,
        send_seconds: seconds,
        receiver_cpu: cpu,
    })
}

/// Where the Etsy daemon is installed (the directory holding `stats.js`).
pub fn etsy_dir(install_root: &Path) -> PathBuf {
    install_root.join("node_modules/statsd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_shapes() {
        let one = payloads(1, 8);
        assert_eq!(one.len(), 8);
        assert!(one.iter().all(|d| !d.contains(&b'\n')));
        for d in &one {
            statsd::parse_line(d).expect("every generated line is valid StatsD");
        }
        // Equal sizes, for GSO.
        assert!(one.iter().all(|d| d.len() == 27), "{one:?}");
        let twenty = payloads(20, 4);
        for d in &twenty {
            let lines: Vec<&[u8]> = d.split(|&b| b == b'\n').collect();
            assert_eq!(lines.len(), 20);
            for line in lines {
                statsd::parse_line(line).expect("every generated line is valid StatsD");
            }
        }
        assert!(twenty.iter().all(|d| d.len() == twenty[0].len()));
    }

    /// What the generator sends is what arrives, datagram for datagram, with and without GSO
    /// and with several threads (a short burst into a large buffer: nothing is dropped).
    #[test]
    fn the_generator_delivers_whole_equal_datagrams() {
        for generator in [
            Generator::default(),
            Generator {
                gso: false,
                ..Generator::default()
            },
            Generator {
                threads: 2,
                ..Generator::default()
            },
        ] {
            let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
            // The host's rmem_max may be small: force a large buffer where allowed, and read
            // while sending, so that no datagram is dropped.
            if setsockopt(&sink, sockopt::RcvBufForce, &(8 << 20)).is_err() {
                setsockopt(&sink, sockopt::RcvBuf, &(8 << 20)).unwrap();
            }
            sink.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let port = sink.local_addr().unwrap().port();
            // Short lines and a fast rate: each pacing wake sends several datagrams, so GSO
            // messages carry more than one.
            let shape = payloads(2, 16);
            let reader = {
                let shape = shape.clone();
                let sink = sink.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65_536];
                    let mut received = 0u64;
                    while let Ok(n) = sink.recv(&mut buf) {
                        assert!(shape.iter().any(|p| p[..] == buf[..n]));
                        received += 1;
                    }
                    received
                })
            };
            let (datagrams, metrics, _) = generator
                .send(port, &shape, 2, 100_000.0, Duration::from_millis(20))
                .unwrap();
            assert!(datagrams > 200, "{generator:?}: {datagrams}");
            assert_eq!(metrics, datagrams * 2);
            let received = reader.join().unwrap();
            assert_eq!(received, datagrams, "{generator:?}");
        }
    }

    #[test]
    fn unequal_payloads_are_refused() {
        let e = Generator::default()
            .send(
                9,
                &[b"a:1|c".to_vec(), b"bb:1|c".to_vec()],
                1,
                1.0,
                Duration::ZERO,
            )
            .unwrap_err();
        assert!(e.to_string().contains("same"), "{e}");
    }

    #[test]
    fn reads_a_prometheus_sample() {
        let text = "# TYPE statsd_metrics_total counter\nstatsd_metrics_total 1234\nx 1\n";
        assert_eq!(prometheus_value(text, "statsd_metrics_total"), Some(1234));
        assert_eq!(prometheus_value(text, "statsd_metrics"), None);
    }
}
