//! `bench-memory`: backend memory per connected idle agent.
//!
//! Starts a release `picket-backend` (embedded store, temp state directory, loopback ports),
//! reads its VmRSS once start-up has settled, then connects idle simulated agents in stages
//! (e.g. 1,000 then 5,000 in total). At each stage it waits until every session is open and
//! every entity is registered, lets a couple of keepalive rounds pass, and reads VmRSS again.
//! Bytes per session = (RSS at the stage - baseline) / sessions; the marginal figure between
//! two stages leaves out one-time growth (allocator arenas, store pages, runtime buffers).
//!
//! With `--etcd-members N` the backend keeps its state in a real etcd cluster of N members
//! started here (`harness::start_etcd`, data on disk), and each stage also reports what one
//! settle window cost: the backend's CPU, etcd requests per keepalive (from the members'
//! `/metrics`), and the members' RSS. Every run reports the sessions the backend holds and the
//! keepalive failures it raised, which must stay 0 while every agent is alive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use benches::harness::{self, BackendOptions, BackendProcess, EtcdRequests, mib};
use benches::loadgen::{Loadgen, LoadgenConfig};
use benches::parse_duration;
use benches::stats::child_cpu_time;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-memory")]
struct Args {
    /// The release backend binary.
    #[arg(long)]
    backend_bin: std::path::PathBuf,
    /// Total connected agents at each stage, ascending, comma-separated.
    #[arg(long, default_value = "1000,5000", value_delimiter = ',')]
    stages: Vec<usize>,
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    keepalive_interval: Duration,
    #[arg(long, default_value_t = 500.0)]
    ramp_per_second: f64,
    /// Wait after start-up before the baseline reading.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    startup_settle: Duration,
    /// Wait after a stage is fully registered before its reading (covers keepalive rounds).
    #[arg(long, default_value = "45s", value_parser = parse_duration)]
    settle: Duration,
    /// Give up on a stage that is not fully connected and registered by then.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    stage_timeout: Duration,
    /// Keep the backend's state in a real etcd cluster of this many members (started here,
    /// data on disk, fsync on) instead of the embedded store; 0 = embedded. Needs a build
    /// with the `etcd` feature.
    #[arg(long, default_value_t = 0)]
    etcd_members: usize,
    /// Parent directory of the etcd members' data (default: the system's temp dir).
    #[arg(long)]
    etcd_dir: Option<PathBuf>,
    /// Extra environment for the backend, KEY=VALUE (repeatable), e.g. MALLOC_ARENA_MAX=2.
    #[arg(long, value_parser = parse_env)]
    backend_env: Vec<(String, String)>,
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{raw:?} is not KEY=VALUE")),
    }
}

struct Reading {
    sessions: usize,
    rss: u64,
    /// What the settle window cost (none for the baseline).
    window: Option<Window>,
}

/// One settle window of a stage.
struct Window {
    seconds: f64,
    /// Sessions the backend holds at the end (`picket_agent_sessions`).
    held: f64,
    keepalives: f64,
    cpu_seconds: f64,
    /// `picket_keepalive_failures_total` at the end: keepalive alerts since start-up.
    failures: f64,
    etcd: Option<EtcdRequests>,
    etcd_rss: u64,
}

/// The etcd cluster of a run (kept alive until the backend has stopped).
struct Etcd {
    urls: Vec<String>,
    pids: Vec<u32>,
    _cluster: Box<dyn std::any::Any>,
}

impl Etcd {
    fn rss(&self) -> u64 {
        self.pids
            .iter()
            .filter_map(|pid| harness::vm_rss(*pid).ok())
            .sum()
    }
}

#[cfg(feature = "etcd")]
fn start_etcd(rt: &tokio::runtime::Runtime, args: &Args) -> Result<Etcd> {
    let cluster = rt.block_on(harness::start_etcd(
        args.etcd_members,
        args.etcd_dir.as_deref(),
    ))?;
    let pids = (0..cluster.len()).filter_map(|i| cluster.pid(i)).collect();
    Ok(Etcd {
        urls: cluster.client_urls(),
        pids,
        _cluster: Box::new(cluster),
    })
}

#[cfg(not(feature = "etcd"))]
fn start_etcd(_: &tokio::runtime::Runtime, _: &Args) -> Result<Etcd> {
    bail!("this build has no etcd support (build benches with --features etcd)")
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-memory: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.stages.is_empty() || args.stages.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--stages must be ascending totals, e.g. 1000,5000");
    }
    let max = *args.stages.last().expect("not empty");
    // Each process (backend, and this one for the simulated agents) holds one socket per
    // session; setrlimit would need unsafe code, so the shell (benches/run) raises the limit.
    let limit = harness::open_file_limit().unwrap_or(0);
    if limit < max as u64 + 512 {
        bail!(
            "open-file limit {limit} is too low for {max} sessions: run through benches/run, or `ulimit -n {}` first",
            max + 1024
        );
    }
    println!("machine: {}", harness::machine_summary());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    // Declared before the backend, so it is dropped (stopped) after it.
    let etcd = if args.etcd_members > 0 {
        let etcd = start_etcd(&rt, &args)?;
        let dir = args.etcd_dir.clone().unwrap_or_else(std::env::temp_dir);
        println!(
            "etcd: {} members at {}, data under {} ({}), fsync on",
            etcd.urls.len(),
            etcd.urls.join(","),
            dir.display(),
            benches::events_throughput::filesystem_of(&dir)
        );
        Some(etcd)
    } else {
        None
    };
    let options = BackendOptions {
        etcd_client_urls: etcd.as_ref().map(|e| e.urls.join(",")),
        env: args.backend_env.clone(),
    };
    if !options.env.is_empty() {
        println!("backend environment: {:?}", options.env);
    }
    let backend = BackendProcess::start_with(&args.backend_bin, &options)?;
    println!(
        "backend pid {} api {} agents {}",
        backend.pid(),
        backend.api.base,
        backend.agent_url
    );
    std::thread::sleep(args.startup_settle);
    let baseline = backend.rss()?;
    println!("baseline VmRSS {:.1} MiB", mib(baseline));

    let mut loads: Vec<Loadgen> = Vec::new();
    let mut readings = vec![Reading {
        sessions: 0,
        rss: baseline,
        window: None,
    }];
    let mut total = 0;
    for (stage, &target) in args.stages.iter().enumerate() {
        let config = LoadgenConfig {
            backend_urls: vec![backend.agent_url.clone()],
            agents: target - total,
            keepalive_interval: args.keepalive_interval,
            ramp_per_second: args.ramp_per_second,
            // Long enough for every later stage; the run is stopped explicitly at the end.
            duration: args.stage_timeout * 2 * args.stages.len() as u32
                + args.settle * args.stages.len() as u32,
            name_prefix: format!("bench-s{stage}-"),
            ..LoadgenConfig::default()
        };
        total = target;
        let started = Instant::now();
        {
            let _rt = rt.enter();
            loads.push(Loadgen::start(config)?);
        }
        let wait = wait_for_stage(&backend, &loads, total, args.stage_timeout);
        if let Err(e) = wait {
            for l in &loads {
                eprintln!("loadgen so far:\n{}", l.report());
            }
            return Err(e);
        }
        println!(
            "stage {stage}: {total} sessions open and registered in {:.1} s; settling {:?}",
            started.elapsed().as_secs_f64(),
            args.settle
        );
        let (rss, window) = settle(&backend, etcd.as_ref(), args.settle)?;
        readings.push(Reading {
            sessions: total,
            rss,
            window: Some(window),
        });
        let names = backend.api.entity_names("default")?;
        if names.len() != total {
            bail!("{} entities registered, expected {total}", names.len());
        }
    }

    let mut reports = Vec::new();
    for load in loads {
        load.stop();
        reports.push(rt.block_on(load.wait()));
    }
    let disconnects: u64 = reports.iter().map(|r| r.disconnects).sum();
    let refused: u64 = reports.iter().map(|r| r.refused_total()).sum();
    let keepalives: u64 = reports.iter().map(|r| r.keepalives_sent).sum();
    println!(
        "loadgen: {keepalives} keepalives sent, {refused} handshakes refused, {disconnects} sessions lost"
    );

    println!();
    println!(
        "| sessions | backend VmRSS | growth over baseline | per session | marginal per session |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for pair in readings.windows(2) {
        let (prev, cur) = (&pair[0], &pair[1]);
        let growth = cur.rss.saturating_sub(baseline);
        let marginal = cur.rss as f64 - prev.rss as f64;
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} KiB |",
            cur.sessions,
            mib(cur.rss),
            mib(growth),
            growth as f64 / cur.sessions as f64 / 1024.0,
            marginal / (cur.sessions - prev.sessions) as f64 / 1024.0,
        );
    }
    println!(
        "(baseline {:.1} MiB with no agent; KiB = 1024 bytes)",
        mib(baseline)
    );
    println!();
    print_windows(&readings, etcd.is_some());
    let failures = readings
        .iter()
        .filter_map(|r| r.window.as_ref())
        .map(|w| w.failures)
        .fold(0.0, f64::max);
    if disconnects > 0 || refused > 0 {
        bail!("sessions were refused or lost during the run: the figures are not of idle sessions");
    }
    if failures > 0.0 {
        bail!("the backend raised {failures} keepalive alerts while every agent was alive");
    }
    Ok(())
}

/// Per stage: what the settle window cost.
fn print_windows(readings: &[Reading], on_etcd: bool) {
    print!(
        "| sessions | held by the backend | keepalives in the window | backend CPU | keepalive alerts |"
    );
    if on_etcd {
        print!(
            " etcd writes per keepalive | etcd requests per keepalive, by method | raft proposals per keepalive | etcd RSS (all members) |"
        );
    }
    println!();
    println!(
        "|---:|---:|---:|---:|---:|{}",
        if on_etcd { "---:|---|---:|---:|" } else { "" }
    );
    for r in readings {
        let Some(w) = &r.window else { continue };
        print!(
            "| {} | {} | {} in {:.0} s ({:.1}/s) | {:.1} % of a core ({:.0} µs per keepalive) | {} |",
            r.sessions,
            w.held,
            w.keepalives,
            w.seconds,
            w.keepalives / w.seconds,
            100.0 * w.cpu_seconds / w.seconds,
            1e6 * w.cpu_seconds / w.keepalives.max(1.0),
            w.failures,
        );
        if let Some(e) = &w.etcd {
            let per = |n: f64| n / w.keepalives.max(1.0);
            let methods: Vec<String> = e
                .unary
                .iter()
                .map(|(m, n)| format!("{m} {:.3}", per(*n)))
                .chain(
                    e.stream_messages
                        .iter()
                        .map(|(m, n)| format!("{m} (stream messages) {:.3}", per(*n))),
                )
                .collect();
            print!(
                " {:.3} | {} | {:.3} | {:.1} MiB |",
                per(e.writes()),
                methods.join(", "),
                per(e.proposals_committed),
                mib(w.etcd_rss),
            );
        }
        println!();
    }
}

/// Every session of the stage open (seen by the loadgen and by the backend) and every
/// entity registered.
fn wait_for_stage(
    backend: &BackendProcess,
    loads: &[Loadgen],
    total: usize,
    timeout: Duration,
) -> Result<()> {
    let total = total as f64;
    harness::eventually(
        "every session open and every entity registered",
        timeout,
        Duration::from_secs(1),
        || {
            let active: i64 = loads.iter().map(|l| l.report().active).sum();
            if active as f64 != total {
                return None;
            }
            let sessions = backend.api.metric("picket_agent_sessions").ok()?;
            let registered = backend.api.metric("picket_registrations_total").ok()?;
            (sessions == total && registered >= total).then_some(())
        },
    )
    .context("stage did not complete")
}

/// Sample RSS every few seconds for `settle` (printed, so a still-growing RSS is visible);
/// return the last sample and what the window cost.
fn settle(
    backend: &BackendProcess,
    etcd: Option<&Etcd>,
    settle: Duration,
) -> Result<(u64, Window)> {
    let started = Instant::now();
    let end = started + settle;
    let cpu0 = child_cpu_time(backend.pid())?;
    let keepalives0 = backend.api.metric("picket_keepalives_total")?;
    let etcd0 = etcd.map(|e| EtcdRequests::read(&e.urls)).transpose()?;
    let mut samples = Vec::new();
    loop {
        std::thread::sleep(
            Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())),
        );
        samples.push(format!("{:.1}", mib(backend.rss()?)));
        if Instant::now() >= end {
            break;
        }
    }
    let cpu1 = child_cpu_time(backend.pid())?;
    let keepalives1 = backend.api.metric("picket_keepalives_total")?;
    let etcd1 = etcd.map(|e| EtcdRequests::read(&e.urls)).transpose()?;
    let seconds = started.elapsed().as_secs_f64();
    println!("  VmRSS samples (MiB): {}", samples.join(" "));
    let window = Window {
        seconds,
        held: backend.api.metric("picket_agent_sessions")?,
        keepalives: keepalives1 - keepalives0,
        cpu_seconds: (cpu1.saturating_sub(cpu0)).as_secs_f64(),
        failures: backend.api.metric("picket_keepalive_failures_total")?,
        etcd: etcd1.zip(etcd0).map(|(b, a)| b.since(&a)),
        etcd_rss: etcd.map_or(0, Etcd::rss),
    };
    let rss = backend.rss().context("reading backend VmRSS")?;
    Ok((rss, window))
}
