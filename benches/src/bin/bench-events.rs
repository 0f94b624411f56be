//! `bench-events`: check results per second and per CPU-second through eventd on the
//! file-backed embedded store (see `benches::events_throughput`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use benches::events_throughput::{self, ThroughputConfig};
use benches::{harness, parse_duration};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-events")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    entities: usize,
    /// Checks per entity.
    #[arg(long, default_value_t = 10)]
    checks: usize,
    /// Check results to process.
    #[arg(long, default_value_t = 200_000)]
    results: usize,
    /// Concurrent submitters (agent sessions).
    #[arg(long, default_value_t = 100)]
    submitters: usize,
    /// eventd shards (the backend's --eventd-workers, default 100).
    #[arg(long, default_value_t = 100)]
    workers: usize,
    /// eventd queue capacity (the backend's --eventd-buffer-size, default 1000).
    #[arg(long, default_value_t = 1000)]
    buffer: usize,
    /// Parent directory of the temporary store (default: $TMPDIR or /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Submit `event` wire frames that the submitters decode first, as agentd does.
    #[arg(long)]
    from_frames: bool,
    /// Worker threads of the tokio runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Target in results per CPU-second (the verdict line).
    #[arg(long, default_value_t = 20_000.0)]
    target_per_core: f64,
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Run on a real etcd cluster of this many members (/usr/bin/etcd, data under --dir,
    /// fsync on) instead of the embedded store. Needs a build with `--features etcd`.
    #[arg(long, default_value_t = 0)]
    etcd_members: usize,
}

fn main() -> ExitCode {
    telemetry::init(telemetry::LogLevel::Warn);
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("bench-events: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let config = ThroughputConfig {
        entities: args.entities,
        checks: args.checks,
        results: args.results,
        submitters: args.submitters,
        workers: args.workers,
        buffer: args.buffer,
        dir: args.dir,
        from_frames: args.from_frames,
        stall_timeout: args.stall_timeout,
        etcd_members: args.etcd_members,
    };
    config.validate()?;
    println!("machine: {}", harness::machine_summary());
    println!(
        "events throughput: {} entities x {} checks, {} results, {} submitters, {} eventd workers, buffer {}, {}",
        config.entities,
        config.checks,
        config.results,
        config.submitters,
        config.workers,
        config.buffer,
        if config.from_frames {
            "from wire frames"
        } else {
            "pre-built events"
        }
    );
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let report = rt
        .enable_all()
        .build()?
        .block_on(events_throughput::run(&config))?;
    print!("{report}");
    let per_core = report.per_cpu_second();
    let met = per_core >= args.target_per_core;
    println!(
        "verdict: {per_core:.0} results per CPU-second vs target {:.0}: {}",
        args.target_per_core,
        if met { "MET" } else { "MISSED" }
    );
    Ok(met)
}
