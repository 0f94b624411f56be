//! Scheduling jitter: how late interval check requests arrive compared with the instants
//! Sensu's splay formula plans for them (sensu-compat 4).
//!
//! An in-process backend (`Backend` on loopback ports, in-memory embedded store) gets many
//! interval checks, written to the store before it starts so the scheduler finds them all in
//! its first read. Receivers take the requests either straight from the backend's check bus
//! ([`Via::Bus`]: the scheduler alone) or as `check_request` frames of simulated agent
//! WebSocket sessions ([`Via::Agents`]: scheduler, bus, agentd's encoding and the socket).
//! Each arrival is stamped with the wall clock the moment it is received.
//!
//! The planned instants are computed here from the definition, independently of the
//! scheduler's code: `splay` = little-endian u64 of the first 8 bytes of md5(check name), and
//! the next firing at or after `t` is `t + ((splay − t) mod 2^64) mod (interval·1e9)` — Sensu's
//! unsigned 64-bit arithmetic, wrap included. An arrival is matched with the planned instant
//! nearest to it (so an early arrival shows as a negative delay rather than a missed firing).
//! Only firings planned inside the measurement window (after the warm-up) count; a planned
//! firing with no arrival by the end of the grace period is *missed*, a second arrival for the
//! same planned firing is a *duplicate*.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use backend_app::repo::{Repo, encode};
use backend_app::schedulerd::schedulable;
use backend_app::{Backend, BackendConfig, init, keys};
use backend_store::{EmbeddedStore, Op, Store, Txn};
use base64::Engine;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use proto_spec::ObjectMeta;
use proto_spec::v2::{CheckConfig, CheckRequest};
use proto_spec::wire::{self, Message};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::stats::{Ms, Summary};

pub const NAMESPACE: &str = "default";
const ADMIN: (&str, &str) = ("admin", "bench-admin-pw");
const CHECK_PREFIX: &str = "jitter-check-";

/// Where the check requests are received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `CheckBus::subscribe` in process: what the scheduler alone adds.
    Bus,
    /// Simulated agents over the agent WebSocket port (real handshake, frames decoded).
    Agents,
}

#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// Number of interval checks.
    pub checks: usize,
    /// Intervals in seconds, given to the checks in turn (check i gets `intervals[i % len]`).
    pub intervals: Vec<u32>,
    /// Receivers (bus subscriptions or agent sessions); check i goes to subscription
    /// `jitter-<i % receivers>`, so each receiver gets a share.
    pub receivers: usize,
    pub via: Via,
    /// Time after the receivers are ready and before the measurement window.
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// How long after the window arrivals are still taken (for firings planned near its end).
    pub grace: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            checks: 1000,
            intervals: vec![1, 1, 1, 1, 1, 1, 1, 2, 5, 10],
            receivers: 4,
            via: Via::Bus,
            warmup: Duration::from_secs(10),
            duration: Duration::from_secs(60),
            grace: Duration::from_secs(2),
        }
    }
}

impl JitterConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.checks > 0, "--checks must be at least 1");
        ensure!(self.receivers > 0, "--receivers must be at least 1");
        ensure!(
            !self.intervals.is_empty() && self.intervals.iter().all(|i| *i > 0),
            "--intervals must be positive seconds"
        );
        ensure!(!self.duration.is_zero(), "--duration must be positive");
        Ok(())
    }

    fn interval_of(&self, check: usize) -> u32 {
        self.intervals[check % self.intervals.len()]
    }
}

/// One check as the analysis sees it.
#[derive(Debug, Clone)]
pub struct PlannedCheck {
    pub name: String,
    pub interval: u32,
    pub splay: u64,
}

/// A received check request: which check, and the wall clock (Unix ns) at reception.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub check: u32,
    pub at: u64,
}

#[derive(Debug, Clone, Default)]
pub struct JitterReport {
    pub checks: usize,
    /// Firings per second the checks plan (sum of 1/interval).
    pub planned_rate: f64,
    /// Checks whose splay is below the window start, where Sensu's unsigned wrap puts the grid
    /// at `splay + 2^64 mod interval` rather than at `splay mod interval`.
    pub wrapped_splays: usize,
    pub window_start: u64,
    pub window_end: u64,
    /// Firings planned inside the window.
    pub expected: u64,
    /// Arrivals matched to a firing planned inside the window (duplicates included).
    pub received: u64,
    pub missed: u64,
    pub duplicated: u64,
    /// Arrival minus planned instant (ns) of the first arrival of each planned firing.
    pub delay: Summary,
    /// The same per interval.
    pub by_interval: BTreeMap<u32, Summary>,
    /// Requests the bus could not deliver because a receiver's queue was full.
    pub bus_dropped: u64,
    /// A few missed firings, for diagnosis: (check name, planned Unix ns).
    pub missed_examples: Vec<(String, u64)>,
}

impl std::fmt::Display for JitterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.delay;
        writeln!(
            f,
            "checks {}, planned {:.1} firings/s, window {:.1} s; {} splays below the window start (wrapped grid)",
            self.checks,
            self.planned_rate,
            (self.window_end - self.window_start) as f64 / 1e9,
            self.wrapped_splays
        )?;
        writeln!(
            f,
            "planned firings {}, received {}, missed {}, duplicated {}, bus drops {}",
            self.expected, self.received, self.missed, self.duplicated, self.bus_dropped
        )?;
        writeln!(
            f,
            "delay (arrival - planned), ms: count {} min {} p50 {} p90 {} p99 {} p99.9 {} max {}",
            d.count,
            Ms(d.min),
            Ms(d.p50),
            Ms(d.p90),
            Ms(d.p99),
            Ms(d.p999),
            Ms(d.max)
        )?;
        for (interval, s) in &self.by_interval {
            writeln!(
                f,
                "  interval {interval:>3} s: count {:>6} p50 {} p99 {} max {}",
                s.count,
                Ms(s.p50),
                Ms(s.p99),
                Ms(s.max)
            )?;
        }
        for (name, at) in &self.missed_examples {
            writeln!(f, "  missed: {name} planned at {at} ns")?;
        }
        Ok(())
    }
}

/// `splay` = little-endian u64 of the first 8 bytes of md5(check name).
pub fn splay_of(name: &str) -> u64 {
    let digest = Md5::digest(name.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(head)
}

fn period_ns(interval: u32) -> u64 {
    u64::from(interval) * 1_000_000_000
}

/// Sensu's next firing at or after `t` (Unix ns), in exact integer arithmetic: the offset is
/// `((splay − t) mod 2^64) mod period`.
pub fn next_fire_at_or_after(splay: u64, interval: u32, t: u64) -> u64 {
    let wrapped = (i128::from(splay) - i128::from(t)).rem_euclid(1i128 << 64);
    t + (wrapped % i128::from(period_ns(interval))) as u64
}

/// The planned firing nearest to `t` (ties go to the earlier one).
pub fn nearest_planned(splay: u64, interval: u32, t: u64) -> u64 {
    let next = next_fire_at_or_after(splay, interval, t);
    if next == t {
        return t;
    }
    let prev = next - period_ns(interval);
    if t - prev <= next - t { prev } else { next }
}

/// Match arrivals with planned firings and summarise. Pure: the tests feed it by hand.
pub fn analyse(
    checks: &[PlannedCheck],
    arrivals: &[Arrival],
    window_start: u64,
    window_end: u64,
) -> JitterReport {
    // (check, planned) → arrivals, for every firing planned in the window.
    let mut firings: HashMap<(u32, u64), Vec<u64>> = HashMap::new();
    for (i, c) in checks.iter().enumerate() {
        let mut t = next_fire_at_or_after(c.splay, c.interval, window_start);
        while t < window_end {
            firings.insert((i as u32, t), Vec::new());
            t += period_ns(c.interval);
        }
    }
    let mut report = JitterReport {
        checks: checks.len(),
        planned_rate: checks.iter().map(|c| 1.0 / f64::from(c.interval)).sum(),
        wrapped_splays: checks.iter().filter(|c| c.splay < window_start).count(),
        window_start,
        window_end,
        expected: firings.len() as u64,
        ..Default::default()
    };
    for a in arrivals {
        let c = &checks[a.check as usize];
        let planned = nearest_planned(c.splay, c.interval, a.at);
        if let Some(list) = firings.get_mut(&(a.check, planned)) {
            list.push(a.at);
            report.received += 1;
        }
    }
    let mut all = Vec::with_capacity(firings.len());
    let mut per: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut missed = Vec::new();
    for ((check, planned), got) in &firings {
        let Some(first) = got.iter().min() else {
            missed.push((*check, *planned));
            continue;
        };
        report.duplicated += got.len() as u64 - 1;
        let delay = *first as i64 - *planned as i64;
        all.push(delay);
        per.entry(checks[*check as usize].interval)
            .or_default()
            .push(delay);
    }
    report.missed = missed.len() as u64;
    missed.sort_unstable_by_key(|(_, at)| *at);
    report.missed_examples = missed
        .iter()
        .take(5)
        .map(|(c, at)| (checks[*c as usize].name.clone(), *at))
        .collect();
    report.delay = Summary::of(&mut all);
    report.by_interval = per
        .into_iter()
        .map(|(i, mut v)| (i, Summary::of(&mut v)))
        .collect();
    report
}

fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn check_name(i: usize) -> String {
    format!("{CHECK_PREFIX}{i:05}")
}

/// The check index back from a request's name.
fn check_index(request: &CheckRequest) -> Option<u32> {
    request
        .config
        .as_ref()?
        .metadata
        .name
        .strip_prefix(CHECK_PREFIX)?
        .parse()
        .ok()
}

fn subscription(receiver: usize) -> String {
    format!("jitter-{receiver}")
}

/// The check definitions, as the API would store them.
pub fn definitions(config: &JitterConfig) -> Vec<CheckConfig> {
    (0..config.checks)
        .map(|i| CheckConfig {
            metadata: ObjectMeta::new(NAMESPACE, check_name(i)),
            command: "true".into(),
            interval: config.interval_of(i),
            publish: true,
            subscriptions: vec![subscription(i % config.receivers)],
            timeout: 10,
            ..Default::default()
        })
        .collect()
}

/// Run the benchmark: start the backend, create the checks, receive for warm-up + window +
/// grace, analyse. Needs a multi-threaded tokio runtime.
pub async fn run(config: &JitterConfig) -> Result<JitterReport> {
    config.validate()?;
    let store: Arc<dyn Store> = EmbeddedStore::in_memory().context("in-memory store")?;
    let repo = Repo::new(store.clone());
    init::initialize(&repo, ADMIN.0, ADMIN.1)
        .await
        .context("initialising the store")?;
    let defs = definitions(config);
    let mut ops = Vec::with_capacity(defs.len());
    for def in &defs {
        schedulable(def).map_err(|e| anyhow::anyhow!("{}: {e}", def.metadata.name))?;
        ops.push(Op::put(
            keys::resource("checks", NAMESPACE, &def.metadata.name),
            encode(def),
        ));
    }
    store
        .txn(Txn {
            compares: vec![],
            success: ops,
            failure: vec![],
        })
        .await
        .context("storing the checks")?;
    let plan: Vec<PlannedCheck> = defs
        .iter()
        .map(|d| PlannedCheck {
            name: d.metadata.name.clone(),
            interval: d.interval,
            splay: splay_of(&d.metadata.name),
        })
        .collect();

    let backend = Backend::new(BackendConfig::loopback(), store)
        .await
        .context("starting the backend")?;
    let bus = backend.check_bus();
    let agent_url = format!("ws://{}/", backend.agent_addr());
    let shutdown = CancellationToken::new();
    let _stop_backend = shutdown.clone().drop_guard();
    let backend_task = tokio::spawn(backend.run(shutdown.clone()));

    let stop = CancellationToken::new();
    let mut receivers: JoinSet<Result<Vec<Arrival>>> = JoinSet::new();
    for r in 0..config.receivers {
        let stop = stop.clone();
        match config.via {
            Via::Bus => {
                let sub = bus.subscribe(NAMESPACE, &[subscription(r)]);
                receivers.spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return Ok(got),
                            request = sub.requests.recv() => {
                                let at = wall_nanos();
                                if let Some(check) = check_index(&request) {
                                    got.push(Arrival { check, at });
                                }
                            }
                        }
                    }
                });
            }
            Via::Agents => {
                let ws = connect_agent(&agent_url, r).await?;
                receivers.spawn(agent_receiver(ws, stop));
            }
        }
    }

    let window_start = wall_nanos() + config.warmup.as_nanos() as u64;
    let window_end = window_start + config.duration.as_nanos() as u64;
    tokio::time::sleep(config.warmup + config.duration + config.grace).await;
    stop.cancel();
    let mut arrivals = Vec::new();
    while let Some(joined) = receivers.join_next().await {
        arrivals.extend(joined.context("receiver task")??);
    }
    let bus_dropped = bus.dropped.load(std::sync::atomic::Ordering::Relaxed);
    shutdown.cancel();
    let _ = backend_task.await;

    let mut report = analyse(&plan, &arrivals, window_start, window_end);
    report.bus_dropped = bus_dropped;
    Ok(report)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A simulated agent subscribed to receiver `r`'s subscription, past its first frame.
async fn connect_agent(url: &str, r: usize) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        init::AGENT_USERNAME,
        init::AGENT_DEFAULT_PASSWORD
    ));
    h.insert(
        wire::HEADER_AGENT_NAME,
        HeaderValue::from_str(&format!("jitter-agent-{r}"))?,
    );
    h.insert(wire::HEADER_NAMESPACE, HeaderValue::from_static(NAMESPACE));
    h.insert(
        wire::HEADER_USER,
        HeaderValue::from_static(init::AGENT_USERNAME),
    );
    h.insert(
        wire::HEADER_SUBSCRIPTIONS,
        HeaderValue::from_str(&subscription(r))?,
    );
    h.insert(
        "Authorization",
        HeaderValue::from_str(&format!("Basic {creds}"))?,
    );
    h.insert(
        wire::HEADER_PROTOCOL_VERSION,
        HeaderValue::from(wire::PROTOCOL_VERSION),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .context("agent handshake")?;
    // The backend speaks first (entity_config); the session is on the bus from then on.
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("no entity_config within 10 s")?
        .context("session closed before entity_config")??;
    match wire::decode(&first.into_data()) {
        Ok(Message::EntityConfig(_)) => Ok(ws),
        other => bail!("expected entity_config first, got {other:?}"),
    }
}

async fn agent_receiver(mut ws: Ws, stop: CancellationToken) -> Result<Vec<Arrival>> {
    let mut got = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return Ok(got);
            }
            frame = ws.next() => {
                let at = wall_nanos();
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => bail!("agent session failed: {e}"),
                    None => bail!("agent session closed by the backend"),
                };
                if let Ok(Message::CheckRequest(request)) = wire::decode(&frame.into_data())
                    && let Some(check) = check_index(&request)
                {
                    got.push(Arrival { check, at });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splay_agrees_with_the_scheduler() {
        for name in ["check-cpu", "keepalive", "jitter-check-00042", "a"] {
            assert_eq!(
                splay_of(name),
                backend_app::schedulerd::splay::splay(name),
                "{name}"
            );
        }
        assert_eq!(splay_of("a"), 0xa8b6_f1c0_b975_c10c);
    }

    #[test]
    fn next_fire_agrees_with_the_scheduler() {
        use backend_app::schedulerd::splay::first_fire_offset;
        for name in ["check-cpu", "x", "jitter-check-00007"] {
            let s = splay_of(name);
            for t in [
                1_700_000_000_123_456_789u64,
                1_764_115_200_000_000_000,
                s - 1,
                s + 1,
            ] {
                for interval in [1u32, 2, 7, 60] {
                    assert_eq!(
                        next_fire_at_or_after(s, interval, t),
                        t + first_fire_offset(s, t, interval),
                        "{name} at {t} every {interval}s"
                    );
                }
            }
        }
    }

    #[test]
    fn nearest_planned_picks_the_closer_grid_point() {
        // A splay far above any Unix time: the grid is t ≡ splay (mod period).
        let splay = 9_000_000_000_000_000_123u64;
        let base = 1_800_000_000_000_000_000u64; // ≡ 0 mod 1e9, so grid points end in ...123
        assert_eq!(nearest_planned(splay, 1, base + 123), base + 123);
        assert_eq!(nearest_planned(splay, 1, base + 2_000_123), base + 123);
        assert_eq!(
            nearest_planned(splay, 1, base + 999_000_123),
            base + 1_000_000_123
        );
        assert_eq!(nearest_planned(splay, 1, base + 500_000_123), base + 123);
    }

    #[test]
    fn analysis_counts_missed_and_duplicated_firings() {
        let splay = 9_000_000_000_000_000_000u64; // ≡ 0 mod 1e9 and mod 2e9
        let checks = vec![
            PlannedCheck {
                name: "one".into(),
                interval: 1,
                splay,
            },
            PlannedCheck {
                name: "two".into(),
                interval: 2,
                splay,
            },
        ];
        let s = 1_800_000_000_000_000_000u64;
        let (start, end) = (s + 500_000_000, s + 4_500_000_000);
        // Planned: "one" at s+1..s+4 (4 firings), "two" at s+2 and s+4 (2).
        let sec = 1_000_000_000u64;
        let arrivals = [
            Arrival {
                check: 0,
                at: s + sec + 1_000_000,
            },
            Arrival {
                check: 0,
                at: s + 2 * sec + 3_000_000,
            },
            Arrival {
                check: 0,
                at: s + 2 * sec + 4_000_000,
            }, // duplicate
            // s+3 missed
            Arrival {
                check: 0,
                at: s + 4 * sec - 1_000_000,
            }, // early
            Arrival {
                check: 1,
                at: s + 2 * sec + 2_000_000,
            },
            Arrival {
                check: 1,
                at: s + 4 * sec + 5_000_000,
            },
            Arrival {
                check: 1,
                at: s + 6 * sec,
            }, // after the window: ignored
        ];
        let r = analyse(&checks, &arrivals, start, end);
        assert_eq!(
            (r.expected, r.received, r.missed, r.duplicated),
            (6, 6, 1, 1)
        );
        assert_eq!(r.missed_examples, vec![("one".to_string(), s + 3 * sec)]);
        assert_eq!(r.delay.count, 5);
        assert_eq!((r.delay.min, r.delay.max), (-1_000_000, 5_000_000));
        assert_eq!(r.by_interval[&2].count, 2);
    }
}
