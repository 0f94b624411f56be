//! `bench-scheduler`: scheduling jitter of interval checks (see `benches::scheduler_jitter`).
//!
//! Starts the backend in this process (in-memory store, loopback ports), stores the checks,
//! receives their check requests for a warm-up and a measurement window, and prints how late
//! each planned firing arrived, plus missed and duplicated firings.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use benches::harness;
use benches::parse_duration;
use benches::scheduler_jitter::{self, JitterConfig, Via};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ViaArg {
    /// Subscribe to the backend's check bus in process (the scheduler alone).
    Bus,
    /// Simulated agents over the agent WebSocket port (scheduler + agentd + socket).
    Agents,
}

#[derive(Debug, Parser)]
#[command(name = "bench-scheduler")]
struct Args {
    /// Interval checks to schedule.
    #[arg(long, default_value_t = 1000)]
    checks: usize,
    /// Intervals in seconds, assigned to the checks in turn (the default gives 70 % 1 s and
    /// 10 % each of 2, 5 and 10 s).
    #[arg(long, default_value = "1,1,1,1,1,1,1,2,5,10", value_delimiter = ',')]
    intervals: Vec<u32>,
    /// Receivers (bus subscriptions or agent sessions) sharing the checks.
    #[arg(long, default_value_t = 4)]
    receivers: usize,
    #[arg(long, value_enum, default_value = "bus")]
    via: ViaArg,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measurement window.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Arrivals are still taken this long after the window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    grace: Duration,
    /// Target for the p99 delay, in ms (the verdict line).
    #[arg(long, default_value_t = 10.0)]
    target_p99_ms: f64,
}

fn main() -> ExitCode {
    telemetry::init(telemetry::LogLevel::Warn);
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("bench-scheduler: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let config = JitterConfig {
        checks: args.checks,
        intervals: args.intervals,
        receivers: args.receivers,
        via: match args.via {
            ViaArg::Bus => Via::Bus,
            ViaArg::Agents => Via::Agents,
        },
        warmup: args.warmup,
        duration: args.duration,
        grace: args.grace,
    };
    config.validate()?;
    println!("machine: {}", harness::machine_summary());
    println!(
        "scheduler jitter: {} checks, intervals {:?} in turn, {} receivers via {:?}, warm-up {:?}, window {:?}",
        config.checks,
        config.intervals,
        config.receivers,
        config.via,
        config.warmup,
        config.duration
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(scheduler_jitter::run(&config))?;
    print!("{report}");
    let p99_ms = report.delay.p99 as f64 / 1e6;
    let clean = report.missed == 0 && report.duplicated == 0;
    let met = p99_ms < args.target_p99_ms && clean;
    println!(
        "verdict: p99 {p99_ms:.3} ms vs target < {} ms, {} missed, {} duplicated: {}",
        args.target_p99_ms,
        report.missed,
        report.duplicated,
        if met { "MET" } else { "MISSED" }
    );
    Ok(met)
}
