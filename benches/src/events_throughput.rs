//! Check-result throughput of eventd on the file-backed embedded store, or on a real etcd
//! cluster (`etcd_members`), with the store requests each result costs.
//!
//! Production path: check results go through `eventd::Dispatcher` (per-entity shards, the
//! backend's default 100 workers and 1,000 queue slots) into `Eventd::process` (read the stored
//! event, run the history/state machine, write the event back), on an `EmbeddedStore` file in a
//! temporary directory, with durable commits. Results are built before the clock starts:
//! `entities × checks` realistic events (an agent entity with system facts, a check with its
//! definition and ~200 bytes of output), several rounds of each, spread over concurrent
//! submitters the way agent sessions would be (one entity's results always from the same
//! submitter, in order). With `from_frames`, submitters get the `event` wire frames instead
//! and decode them first, as agentd does.
//!
//! The run ends when the backend's `events_total` counter reaches the number of results. Wall
//! time and the process's CPU time (all threads, /proc/self/stat) over that span give
//! results/s and results per CPU-second. Afterwards every stored event is read back: one per
//! (entity, check), each with the history length its number of results implies (capped at 21)
//! and its last result's `executed`, so the run cannot pass by doing nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backend_app::eventd::{Dispatcher, Eventd, Work};
use backend_app::keepalived::Keepalived;
use backend_app::metrics::Metrics;
use backend_app::repo::{Repo, decode};
use backend_app::{init, keys};
use backend_store::{EmbeddedStore, KeyValue, RangeRequest, Store, embedded::WriteStats};
use proto_spec::ObjectMeta;
use proto_spec::v2::check::MAX_HISTORY;
use proto_spec::v2::entity::{Network, NetworkInterface, System};
use proto_spec::v2::{Check, CheckConfig, Entity, Event};
use proto_spec::wire::{self, Message};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::counting::CountingStore;
use crate::stats::process_cpu_time;

pub const NAMESPACE: &str = "default";
const ADMIN: (&str, &str) = ("admin", "bench-admin-pw");
/// `executed` of the first round; each round is one 60 s interval later.
const FIRST_EXECUTED: i64 = 1_764_000_000;
const INTERVAL: i64 = 60;

#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    pub entities: usize,
    pub checks: usize,
    /// Check results to process in total (round-robin over the entity × check pairs).
    pub results: usize,
    /// Concurrent submitting tasks (agent sessions); entity e belongs to submitter e mod n.
    pub submitters: usize,
    /// eventd shards (`--eventd-workers`).
    pub workers: usize,
    /// eventd queue capacity (`--eventd-buffer-size`).
    pub buffer: usize,
    /// Parent of the temporary state directory (default: the system's temp dir).
    pub dir: Option<PathBuf>,
    /// Submitters decode `event` wire frames first, as agentd does.
    pub from_frames: bool,
    /// Give up when no result has been processed for this long.
    pub stall_timeout: Duration,
    /// Run on a real etcd cluster of this many members (data on disk under `dir`, fsync on)
    /// instead of the embedded store; 0 = embedded. Needs the `etcd` feature.
    pub etcd_members: usize,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        ThroughputConfig {
            entities: 1000,
            checks: 10,
            results: 200_000,
            submitters: 100,
            workers: 100,
            buffer: 1000,
            dir: None,
            from_frames: false,
            stall_timeout: Duration::from_secs(60),
            etcd_members: 0,
        }
    }
}

impl ThroughputConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.entities > 0 && self.checks > 0,
            "--entities and --checks must be at least 1"
        );
        ensure!(self.results > 0, "--results must be at least 1");
        ensure!(self.submitters > 0, "--submitters must be at least 1");
        ensure!(self.workers > 0, "--workers must be at least 1");
        Ok(())
    }

    fn pairs(&self) -> usize {
        self.entities * self.checks
    }

    /// Results that (entity, check) pair `p` receives.
    fn results_of(&self, p: usize) -> usize {
        let pairs = self.pairs();
        self.results / pairs + usize::from(p < self.results % pairs)
    }
}

#[derive(Debug, Clone)]
pub struct ThroughputReport {
    pub results: usize,
    /// Bytes of one submitted event's JSON (the first one).
    pub event_json_bytes: usize,
    /// Bytes of one stored event's JSON at the end (with its history).
    pub stored_json_bytes: usize,
    pub wall: Duration,
    pub cpu: Duration,
    pub store_writes: WriteStats,
    pub store_file_bytes: u64,
    /// Where the store file was, and the file system type and device under it.
    pub store_path: PathBuf,
    pub store_fs: String,
    /// Stored events checked at the end (one per pair that got a result).
    pub verified_events: usize,
    /// Requests eventd sent to the store during the run (all kinds; see `counting`).
    pub store_requests: u64,
    pub store_write_requests: u64,
    /// "embedded" or "etcd, N members".
    pub store_kind: String,
}

impl ThroughputReport {
    pub fn per_second(&self) -> f64 {
        self.results as f64 / self.wall.as_secs_f64()
    }

    pub fn per_cpu_second(&self) -> f64 {
        self.results as f64 / self.cpu.as_secs_f64().max(0.01)
    }
}

impl std::fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.store_writes;
        writeln!(
            f,
            "results {} (event JSON {} B submitted, {} B stored), wall {:.2} s, CPU {:.2} s ({:.2} cores busy)",
            self.results,
            self.event_json_bytes,
            self.stored_json_bytes,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / self.wall.as_secs_f64()
        )?;
        writeln!(
            f,
            "throughput: {:.0} results/s; {:.0} results per CPU-second",
            self.per_second(),
            self.per_cpu_second()
        )?;
        writeln!(
            f,
            "CPU per result: {:.1} us",
            self.cpu.as_secs_f64() * 1e6 / self.results as f64
        )?;
        writeln!(
            f,
            "store: {} ({}); {} write requests in {} batches ({:.1} per commit on average, largest {}); file {:.1} MiB",
            self.store_path.display(),
            self.store_fs,
            w.requests,
            w.batches,
            w.requests as f64 / w.batches.max(1) as f64,
            w.largest_batch,
            self.store_file_bytes as f64 / 1048576.0
        )?;
        writeln!(
            f,
            "store requests ({}): {} in all, {} writes: {:.3} requests and {:.3} writes per result",
            self.store_kind,
            self.store_requests,
            self.store_write_requests,
            self.store_requests as f64 / self.results as f64,
            self.store_write_requests as f64 / self.results as f64
        )?;
        writeln!(
            f,
            "verified: {} stored events with the expected history length and last execution",
            self.verified_events
        )
    }
}

/// A Linux VM agent's entity, as agents report it (system facts included).
pub fn entity(index: usize) -> Entity {
    let name = format!("bench-host-{index:05}");
    let system = System {
        hostname: name.clone(),
        os: "linux".into(),
        platform: "ubuntu".into(),
        platform_family: "debian".into(),
        platform_version: "24.04".into(),
        arch: "amd64".into(),
        libc_type: "glibc".into(),
        vm_system: "kvm".into(),
        vm_role: "guest".into(),
        cloud_provider: "".into(),
        float_type: "hard".into(),
        network: Network {
            interfaces: Some(vec![
                NetworkInterface {
                    name: "lo".into(),
                    addresses: Some(vec!["127.0.0.1/8".into(), "::1/128".into()]),
                    ..Default::default()
                },
                NetworkInterface {
                    name: "eth0".into(),
                    mac: format!("02:00:00:00:{:02x}:{:02x}", index / 256 % 256, index % 256),
                    // Documentation ranges (RFC 5737, RFC 3849): never contacted.
                    addresses: Some(vec![
                        format!("192.0.2.{}/24", index % 250 + 1),
                        format!("2001:db8::{:x}/64", index + 1),
                    ]),
                },
            ]),
        },
        ..Default::default()
    };
    let mut metadata = ObjectMeta::new(NAMESPACE, name);
    metadata.labels.insert("region".into(), "eu-west".into());
    metadata.labels.insert("role".into(), "web".into());
    Entity {
        entity_class: "agent".into(),
        system,
        subscriptions: Some(vec![
            "linux".into(),
            "web".into(),
            format!("entity:{}", metadata.name),
        ]),
        last_seen: FIRST_EXECUTED,
        user: init::AGENT_USERNAME.into(),
        metadata,
        sensu_agent_version: "6.12.0".into(),
        ..Default::default()
    }
}

/// One result of check `check` on `entity` in round `round`: statuses vary, so the state
/// machine moves (occurrences, state changes, flap detection).
fn result(entity: &Entity, check: usize, round: usize, pair: usize) -> Event {
    let executed = FIRST_EXECUTED + round as i64 * INTERVAL;
    let status = match (round + pair) % 10 {
        0 => 2,
        3 | 4 => 1,
        _ => 0,
    };
    let mut metadata = ObjectMeta::new(NAMESPACE, format!("check-disk-{check:02}"));
    metadata.labels.insert("team".into(), "ops".into());
    let config = CheckConfig {
        metadata,
        command: format!("/usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /srv/{check}"),
        interval: INTERVAL as u32,
        timeout: 10,
        publish: true,
        handlers: vec!["slack".into(), "pagerduty".into()],
        subscriptions: vec!["linux".into(), "web".into()],
        low_flap_threshold: 20,
        high_flap_threshold: 40,
        ..Default::default()
    };
    let used = 40 + (round + check) % 50;
    let mut output = format!(
        "DISK {} - free space: /srv/{check} {} GiB ({}% inode={}%); | /srv/{check}={}GiB;40;45;0;50",
        ["OK", "WARNING", "CRITICAL"][status as usize],
        50 - used / 2,
        100 - used,
        97 - check % 5,
        used / 2
    );
    while output.len() < 200 {
        output.push_str(" .");
    }
    let check = Check {
        config,
        duration: 0.012 + (round % 7) as f64 / 1000.0,
        executed,
        issued: executed,
        output,
        status,
        scheduler: "memory".into(),
        ..Default::default()
    };
    Event {
        timestamp: executed,
        entity: Some(entity.clone()),
        check: Some(check),
        metadata: ObjectMeta::new(NAMESPACE, ""),
        id: Some(uuid::Uuid::new_v4()),
        sequence: round as i64 + 1,
        ..Default::default()
    }
}

/// What a submitter hands to the dispatcher.
enum Payload {
    Event(Box<Event>),
    Frame(Vec<u8>),
}

/// Build every result, already divided between the submitters in submission order.
fn build(config: &ThroughputConfig) -> (Vec<Vec<Payload>>, usize) {
    let entities: Vec<Entity> = (0..config.entities).map(entity).collect();
    let mut per_submitter: Vec<Vec<Payload>> = (0..config.submitters)
        .map(|s| Vec::with_capacity(config.results / config.submitters + usize::from(s == 0)))
        .collect();
    let pairs = config.pairs();
    let mut first_json = 0;
    for i in 0..config.results {
        let (round, pair) = (i / pairs, i % pairs);
        let (e, c) = (pair / config.checks, pair % config.checks);
        let event = result(&entities[e], c, round, pair);
        if i == 0 {
            first_json = serde_json::to_vec(&event).map_or(0, |v| v.len());
        }
        let payload = if config.from_frames {
            Payload::Frame(wire::encode(&Message::Event(Box::new(event))))
        } else {
            Payload::Event(Box::new(event))
        };
        per_submitter[e % config.submitters].push(payload);
    }
    (per_submitter, first_json)
}

/// Run the benchmark. Needs a multi-threaded tokio runtime.
pub async fn run(config: &ThroughputConfig) -> Result<ThroughputReport> {
    config.validate()?;
    let tmp = match &config.dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("picket-bench-events-")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix("picket-bench-events-")
            .tempdir(),
    }
    .context("creating the temporary state directory")?;
    let db_path = tmp.path().join("picket.db");
    let (embedded, inner, store_kind, _etcd) = open_store(config, &db_path, tmp.path()).await?;
    let counting = CountingStore::new(inner);
    let dyn_store: Arc<dyn Store> = counting.clone();
    let repo = Repo::new(dyn_store.clone());
    init::initialize(&repo, ADMIN.0, ADMIN.1)
        .await
        .context("initialising the store")?;

    let (work, event_json_bytes) = build(config);
    let metrics = Arc::new(Metrics::default());
    // Nobody listens to processed events here (the pipeline is not part of this figure).
    let (bus, _) = tokio::sync::broadcast::channel(1024);
    let eventd = Eventd::new(repo.clone(), metrics.clone(), bus);
    let keepalived = Arc::new(Keepalived::new(eventd.clone()));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let dispatcher = Dispatcher::start(
        config.workers,
        config.buffer,
        keepalived,
        eventd,
        shutdown.clone(),
    );

    let writes_before = stats_of(embedded.as_ref());
    let requests_before = counting.counts.total();
    let write_requests_before = counting.counts.writes.load(Ordering::Relaxed);
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let mut submitters = JoinSet::new();
    for list in work {
        let dispatcher = dispatcher.clone();
        submitters.spawn(async move {
            for payload in list {
                let event = match payload {
                    Payload::Event(e) => e,
                    Payload::Frame(frame) => match wire::decode(&frame) {
                        Ok(Message::Event(e)) => e,
                        other => bail!("not an event frame: {other:?}"),
                    },
                };
                ensure!(
                    dispatcher.submit(Work::Event(event)).await,
                    "dispatcher stopped"
                );
            }
            Ok(())
        });
    }
    let target = config.results as u64;
    let (mut last, mut last_change) = (0u64, Instant::now());
    loop {
        let done = metrics.events_total.load(Ordering::Relaxed);
        if done >= target {
            break;
        }
        if done != last {
            (last, last_change) = (done, Instant::now());
        } else if last_change.elapsed() > config.stall_timeout {
            bail!(
                "stalled: {done} of {target} results processed, none for {:?} (store errors are logged above)",
                config.stall_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = started.elapsed();
    let cpu = process_cpu_time()? - cpu_before;
    let writes_after = stats_of(embedded.as_ref());
    let store_requests = counting.counts.total() - requests_before;
    let store_write_requests =
        counting.counts.writes.load(Ordering::Relaxed) - write_requests_before;
    while let Some(joined) = submitters.join_next().await {
        joined.context("submitter task")??;
    }
    shutdown.cancel();
    ensure!(
        metrics.events_total.load(Ordering::Relaxed) == target,
        "more events processed than submitted"
    );

    let (verified_events, stored_json_bytes) = verify(config, &*dyn_store).await?;
    let store_file_bytes = std::fs::metadata(&db_path).map_or(0, |m| m.len());
    let store_fs = filesystem_of(tmp.path());
    if let Some(store) = &embedded {
        store.close().await;
    }
    Ok(ThroughputReport {
        results: config.results,
        event_json_bytes,
        stored_json_bytes,
        wall,
        cpu,
        store_writes: WriteStats {
            requests: writes_after.requests - writes_before.requests,
            batches: writes_after.batches - writes_before.batches,
            largest_batch: writes_after.largest_batch,
        },
        store_file_bytes,
        store_path: db_path,
        store_fs,
        verified_events,
        store_requests,
        store_write_requests,
        store_kind,
    })
}

fn stats_of(store: Option<&Arc<EmbeddedStore>>) -> WriteStats {
    store.map_or(
        WriteStats {
            requests: 0,
            batches: 0,
            largest_batch: 0,
        },
        |s| s.write_stats(),
    )
}

/// The embedded store on a file, or (`etcd_members` > 0) a real etcd cluster with its data
/// under `dir`; the cluster handle must live as long as the run.
#[allow(clippy::type_complexity)]
async fn open_store(
    config: &ThroughputConfig,
    db_path: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(
    Option<Arc<EmbeddedStore>>,
    Arc<dyn Store>,
    String,
    Option<Box<dyn std::any::Any + Send>>,
)> {
    if config.etcd_members == 0 {
        let store = EmbeddedStore::open(db_path).context("opening the embedded store")?;
        return Ok((Some(store.clone()), store, "embedded".to_string(), None));
    }
    #[cfg(feature = "etcd")]
    {
        use backend_store::etcd::testing::{EtcdCluster, EtcdClusterOptions};
        // The cluster's data goes where the embedded store's file would: a real disk with
        // fsync on, so every acknowledged write is durable as in production.
        let cluster = EtcdCluster::start(EtcdClusterOptions {
            members: config.etcd_members,
            durable: true,
            data_parent: Some(dir.to_path_buf()),
            ..Default::default()
        })
        .await
        .context("starting etcd")?;
        let store = cluster.connect().await.context("connecting to etcd")?;
        let kind = format!("etcd 3.4, {} members", config.etcd_members);
        Ok((None, store, kind, Some(Box::new(cluster))))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = dir;
        bail!("this build has no etcd support (build benches with --features etcd)")
    }
}

/// File system type and source of the mount holding `path` (from /proc/self/mounts), e.g.
/// `ext4 /dev/vda`: a store on tmpfs never waits for a disk, so the figure depends on it.
pub fn filesystem_of(path: &std::path::Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (source, point, fstype) = (f.next()?, f.next()?, f.next()?);
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), format!("{fstype} {source}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown file system".to_string(), |(_, fs)| fs)
}

/// Every pair that got results has one stored event with `min(results, 21)` history entries
/// ending with its last result; returns how many were checked and one stored size.
async fn verify(config: &ThroughputConfig, store: &dyn Store) -> Result<(usize, usize)> {
    let resp = store
        .range(RangeRequest {
            prefix: keys::events_prefix(Some(NAMESPACE)),
            start: None,
            limit: 0,
        })
        .await?;
    let expected_pairs = config.pairs().min(config.results);
    ensure!(
        resp.kvs.len() == expected_pairs,
        "{} stored events, expected {expected_pairs}",
        resp.kvs.len()
    );
    let by_key: HashMap<&str, &KeyValue> =
        resp.kvs.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    let mut stored_bytes = 0;
    for p in 0..expected_pairs {
        let (e, c) = (p / config.checks, p % config.checks);
        let key = keys::event(
            NAMESPACE,
            &format!("bench-host-{e:05}"),
            &format!("check-disk-{c:02}"),
        );
        let kv = by_key
            .get(key.as_str())
            .with_context(|| format!("no stored event at {key}"))?;
        stored_bytes = stored_bytes.max(kv.value.len());
        let event: Event = decode(kv)?;
        let check = event.check.context("stored event without its check")?;
        let n = config.results_of(p);
        let want_len = n.min(MAX_HISTORY);
        let want_executed = FIRST_EXECUTED + (n as i64 - 1) * INTERVAL;
        if check.history().len() != want_len || check.executed != want_executed {
            bail!(
                "{key}: history of {} (want {want_len}), last executed {} (want {want_executed})",
                check.history().len(),
                check.executed
            );
        }
        let last = check.history().last().context("empty history")?;
        ensure!(
            last.executed == want_executed,
            "{key}: history does not end with the last result"
        );
    }
    Ok((expected_pairs, stored_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_spread_over_pairs_and_submitters() {
        let config = ThroughputConfig {
            entities: 3,
            checks: 2,
            results: 13,
            submitters: 2,
            ..Default::default()
        };
        // 6 pairs: pair 0 gets 3 results, the others 2.
        let per_pair: Vec<usize> = (0..6).map(|p| config.results_of(p)).collect();
        assert_eq!(per_pair, [3, 2, 2, 2, 2, 2]);
        let (work, json) = build(&config);
        assert!(
            json > 1000,
            "a realistic event is over 1 KB of JSON, got {json}"
        );
        // Entities 0 and 2 belong to submitter 0, entity 1 to submitter 1.
        assert_eq!(work[0].len() + work[1].len(), 13);
        assert_eq!(work[1].len(), 4);
    }

    #[test]
    fn finds_the_file_system_of_a_path() {
        let fs = filesystem_of(std::path::Path::new("/"));
        assert_ne!(fs, "unknown file system");
    }
}
