//! `bench-memory`: backend memory per connected idle agent.
//!
//! Starts a release `picket-backend` (embedded store, temp state directory, loopback ports),
//! reads its VmRSS once start-up has settled, then connects idle simulated agents in stages
//! (e.g. 1,000 then 5,000 in total). At each stage it waits until every session is open and
//! every entity is registered, lets a couple of keepalive rounds pass, and reads VmRSS again.
//! Bytes per session = (RSS at the stage - baseline) / sessions; the marginal figure between
//! two stages leaves out one-time growth (allocator arenas, store pages, runtime buffers).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use benches::harness::{self, BackendProcess, mib};
use benches::loadgen::{Loadgen, LoadgenConfig};
use benches::parse_duration;
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
}

struct Reading {
    sessions: usize,
    rss: u64,
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

    let backend = BackendProcess::start(&args.backend_bin)?;
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
        let rss = settle(&backend, args.settle)?;
        readings.push(Reading {
            sessions: total,
            rss,
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
    if disconnects > 0 || refused > 0 {
        bail!("sessions were refused or lost during the run: the figures are not of idle sessions");
    }
    Ok(())
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

/// Sample RSS every few seconds for `settle` (printed, so a still-growing RSS is visible)
/// and return the last sample.
fn settle(backend: &BackendProcess, settle: Duration) -> Result<u64> {
    let end = Instant::now() + settle;
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
    println!("  VmRSS samples (MiB): {}", samples.join(" "));
    backend.rss().context("reading backend VmRSS")
}
