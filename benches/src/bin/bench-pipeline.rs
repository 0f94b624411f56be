//! `bench-pipeline`: events per second through two JavaScript filters, the json mutator and
//! a tcp handler, and filter evaluations per second (see `benches::pipeline_throughput`).
//! `benches/run pipeline` runs it pinned to one core.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use benches::pipeline_throughput::{self, PipelineConfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-pipeline")]
struct Args {
    /// Events through the pipeline.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events handled at once (the backend's --pipelined-workers).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Evaluations of the occurrence filter alone.
    #[arg(long, default_value_t = 2_000_000)]
    evaluations: u64,
    /// Events through the two filters alone.
    #[arg(long, default_value_t = 500_000)]
    filter_events: u64,
    /// Also run the pipeline without its filters, to show their share.
    #[arg(long)]
    compare_without_filters: bool,
    /// Also run the pipeline with its filters on QuickJS (written outside the simple subset).
    #[arg(long)]
    compare_quickjs: bool,
    /// Also measure connect, write and close alone against the same sink (tokio tasks, then
    /// a blocking loop): the kernel's floor under the tcp handler.
    #[arg(long)]
    tcp_floor: bool,
    /// Target in events per CPU-second (the verdict line).
    #[arg(long, default_value_t = 50_000.0)]
    target_events: f64,
    /// Target in filter evaluations per CPU-second.
    #[arg(long, default_value_t = 500_000.0)]
    target_evaluations: f64,
}

fn main() -> ExitCode {
    telemetry::init(telemetry::LogLevel::Warn);
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("bench-pipeline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<bool> {
    println!("machine: {}", benches::harness::machine_summary());
    let filters = pipeline_throughput::run_filters(args.evaluations, args.filter_events)?;
    println!("{filters}");
    // One runtime thread; the filter threads (QuickJS expressions only) and the blocking TCP
    // floor's sink are kept on the same core by the `taskset` of `benches/run pipeline`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(pipeline_throughput::run_pipeline(&PipelineConfig {
        events: args.events,
        concurrency: args.concurrency,
        drain_timeout: Duration::from_secs(60),
        filters: true,
        quickjs: false,
    }))?;
    println!("{report}");
    if args.compare_quickjs {
        let quickjs = runtime.block_on(pipeline_throughput::run_pipeline(&PipelineConfig {
            events: args.events,
            concurrency: args.concurrency,
            drain_timeout: Duration::from_secs(60),
            filters: true,
            quickjs: true,
        }))?;
        println!("{quickjs}");
    }
    if args.compare_without_filters {
        let bare = runtime.block_on(pipeline_throughput::run_pipeline(&PipelineConfig {
            events: args.events,
            concurrency: args.concurrency,
            drain_timeout: Duration::from_secs(60),
            filters: false,
            quickjs: false,
        }))?;
        println!("{bare}");
    }
    if args.tcp_floor {
        let floor = runtime.block_on(pipeline_throughput::run_tcp_floor(
            args.events,
            args.concurrency,
        ))?;
        println!("{floor}");
    }
    let events_met = report.per_cpu_second() >= args.target_events;
    let evals_met = filters.single.per_cpu_second() >= args.target_evaluations;
    println!(
        "verdict: events {} ({:.0} per CPU-second with the sink, {:.0} without it, target {:.0}); filter evaluations {} ({:.0} per CPU-second, target {:.0})",
        if events_met { "met" } else { "missed" },
        report.per_cpu_second(),
        report.per_pipeline_cpu_second(),
        args.target_events,
        if evals_met { "met" } else { "missed" },
        filters.single.per_cpu_second(),
        args.target_evaluations
    );
    Ok(events_met && evals_met)
}
