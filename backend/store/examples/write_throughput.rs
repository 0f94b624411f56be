//! Write throughput of `EmbeddedStore` on a file, with ~2 KB values (the size of a check result).
//!
//! ```text
//! cargo run --release -p backend-store --example write_throughput
//! ```
//!
//! Scenarios, each run for `BENCH_SECS` seconds (default 3) on a fresh store file in `BENCH_DIR`
//! (default: the system temp dir; point it at the disk the backend really uses):
//!
//! - `sequential put`: one task, one put at a time;
//! - `64 tasks put`: 64 concurrent tasks (`BENCH_TASKS`), each putting its own keys;
//! - `64 tasks txn`: 64 concurrent tasks, each running compare (mod revision) + 2 puts;
//! - `memory seq put`: the sequential scenario on an in-memory store, i.e. without fsync: the
//!   CPU cost of one write through the whole write path.
//!
//! Reports operations per second, latency percentiles, and operations per CPU-second of the
//! whole process (from `/proc/self/stat`, Linux only), i.e. throughput per core actually used.
//! `BENCH_TASKS` changes the number of concurrent tasks. Results before and after group commit
//! are recorded in the module docs of `src/embedded.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_store::{Compare, EmbeddedStore, Op, Store, Txn};

const VALUE_LEN: usize = 2048;
const DEFAULT_TASKS: usize = 64;
/// Keys per task: writes cycle over them, so most puts update an existing key.
const KEYS_PER_TASK: usize = 50;

#[tokio::main]
async fn main() {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let run_for = Duration::from_secs_f64(secs);
    let tasks = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TASKS);
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    println!(
        "value {VALUE_LEN} B, {secs} s per scenario, store in {}",
        dir.path().display()
    );
    println!(
        "{:<16} {:>9} {:>10} {:>9} {:>9} {:>9} {:>12}",
        "scenario", "ops", "ops/s", "p50 ms", "p99 ms", "max ms", "ops/cpu-s"
    );
    sequential(&dir.path().join("seq.redb"), run_for).await;
    concurrent_puts(&dir.path().join("puts.redb"), run_for, tasks).await;
    concurrent_txns(&dir.path().join("txns.redb"), run_for, tasks).await;
    let memory = EmbeddedStore::in_memory().expect("in-memory store");
    sequential_on(&memory, "memory seq put", run_for).await;
}

fn value(seed: usize) -> Vec<u8> {
    (0..VALUE_LEN).map(|i| (seed + i) as u8).collect()
}

async fn sequential(path: &Path, run_for: Duration) {
    let store = EmbeddedStore::open(path).expect("open");
    sequential_on(&store, "sequential put", run_for).await;
}

async fn sequential_on(store: &EmbeddedStore, scenario: &str, run_for: Duration) {
    let clock = Clock::start();
    let deadline = Instant::now() + run_for;
    let mut latencies = Vec::new();
    let mut i = 0;
    while Instant::now() < deadline {
        let key = format!(
            "events/entity-{}/check",
            i % (DEFAULT_TASKS * KEYS_PER_TASK)
        );
        let started = Instant::now();
        store.put(&key, value(i), 0).await.expect("put");
        latencies.push(started.elapsed());
        i += 1;
    }
    clock.report(scenario, latencies);
    store.close().await;
}

async fn concurrent_puts(path: &Path, run_for: Duration, tasks: usize) {
    let store = EmbeddedStore::open(path).expect("open");
    let clock = Clock::start();
    let deadline = Instant::now() + run_for;
    let handles = (0..tasks).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let key = format!("events/entity-{t}/check-{}", i % KEYS_PER_TASK);
                let started = Instant::now();
                store.put(&key, value(i), 0).await.expect("put");
                latencies.push(started.elapsed());
                i += 1;
            }
            latencies
        })
    });
    let latencies = join_all(handles.collect()).await;
    clock.report(&format!("{tasks} tasks put"), latencies);
    store.close().await;
}

async fn concurrent_txns(path: &Path, run_for: Duration, tasks: usize) {
    let store = EmbeddedStore::open(path).expect("open");
    let clock = Clock::start();
    let deadline = Instant::now() + run_for;
    let handles = (0..tasks).map(|t| {
        let store: Arc<EmbeddedStore> = store.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Mod revision of this task's guard key: 0 while absent.
            let mut guard_rev = 0;
            let mut i = 0;
            while Instant::now() < deadline {
                let guard = format!("events/entity-{t}/guard");
                let txn = Txn {
                    compares: vec![Compare::mod_revision(guard.clone(), guard_rev)],
                    success: vec![
                        Op::put(guard, value(i)),
                        Op::put(
                            format!("events/entity-{t}/check-{}", i % KEYS_PER_TASK),
                            value(i + 1),
                        ),
                    ],
                    failure: vec![],
                };
                let started = Instant::now();
                let resp = store.txn(txn).await.expect("txn");
                latencies.push(started.elapsed());
                assert!(resp.succeeded, "only this task writes its guard key");
                guard_rev = resp.revision;
                i += 1;
            }
            latencies
        })
    });
    let latencies = join_all(handles.collect()).await;
    clock.report(&format!("{tasks} tasks txn"), latencies);
    store.close().await;
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all
}

/// Wall clock and process CPU time since the start of a scenario.
struct Clock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clock {
    fn start() -> Self {
        Clock {
            wall: Instant::now(),
            cpu: process_cpu_time(),
        }
    }

    fn report(&self, scenario: &str, mut latencies: Vec<Duration>) {
        let wall = self.wall.elapsed();
        let ops = latencies.len();
        latencies.sort();
        let pct = |p: f64| {
            let index = ((ops as f64 * p) as usize).min(ops.saturating_sub(1));
            latencies
                .get(index)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let per_cpu = match (self.cpu, process_cpu_time()) {
            (Some(start), Some(end)) if end > start => {
                format!("{:.0}", ops as f64 / (end - start).as_secs_f64())
            }
            _ => "n/a".to_owned(),
        };
        println!(
            "{scenario:<16} {ops:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {per_cpu:>12}",
            ops as f64 / wall.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    }
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux; assumes 100 ticks/s,
/// the value on every common Linux configuration).
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 of `rest`.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
