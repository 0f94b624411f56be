//! `bench-statsd`: StatsD throughput of `picket-agent` beside the Etsy `statsd` daemon, same
//! generator, same traffic, rising rates (see `benches::statsd_throughput`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use benches::harness::{free_port, machine_summary};
use benches::parse_duration;
use benches::statsd_throughput::{self as st, Receiver, Step};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-statsd")]
struct Args {
    /// The picket-agent binary (release build).
    #[arg(long)]
    agent: PathBuf,
    /// Where `npm install statsd@0.9.0` was run (holds node_modules/statsd); without it only
    /// Picket is measured.
    #[arg(long)]
    etsy: Option<PathBuf>,
    /// Metrics per datagram, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,20")]
    shapes: Vec<usize>,
    /// Datagram rates (per second) for one metric per datagram.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50000,100000,200000,300000,400000,600000,800000,1000000,1200000,1500000"
    )]
    rates_single: Vec<f64>,
    /// Metric rates (per second) for the multi-metric shapes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "200000,400000,800000,1200000,2000000,3000000,4000000,5000000,6000000,8000000"
    )]
    rates_multi: Vec<f64>,
    /// Sending time per step.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    step: Duration,
    /// Loss above which a step fails (0.001 = 0.1 %).
    #[arg(long, default_value_t = 0.001)]
    max_loss: f64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-statsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    println!("{}", machine_summary());
    println!(
        "generator: one thread, sendmmsg {} datagrams per call; {} per step; loss limit {:.2} %",
        64,
        humantime(args.step),
        args.max_loss * 100.0
    );
    let mut summary = Vec::new();
    for &shape in &args.shapes {
        let payloads = st::payloads(shape, 512);
        let rates: Vec<f64> = if shape == 1 {
            args.rates_single.clone()
        } else {
            args.rates_multi.iter().map(|m| m / shape as f64).collect()
        };
        let mut daemons: Vec<&str> = vec!["picket"];
        if args.etsy.is_some() {
            daemons.push("etsy");
        }
        for daemon in daemons {
            let port = free_port()?;
            let receiver = match daemon {
                "picket" => Receiver::picket(&args.agent, port)?,
                _ => Receiver::etsy(&st::etsy_dir(args.etsy.as_ref().unwrap()), port)?,
            };
            println!("\n{} — {shape} metric(s) per datagram", receiver.name());
            println!(
                "{:>12} {:>12} {:>14} {:>14} {:>8} {:>14}",
                "target dg/s",
                "sent dg/s",
                "sent metrics/s",
                "recv metrics/s",
                "loss %",
                "CPU s/M metrics"
            );
            let mut best: Option<Step> = None;
            let mut failures = 0;
            for &rate in &rates {
                let s = st::step(&receiver, port, &payloads, shape, rate, args.step)?;
                let sent_rate = s.sent_datagrams as f64 / s.send_seconds;
                println!(
                    "{:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>8.3} {:>14.3}",
                    rate,
                    sent_rate,
                    s.sent_metrics_per_second(),
                    s.received_metrics as f64 / s.send_seconds,
                    s.loss() * 100.0,
                    s.cpu_per_million()
                );
                let generator_limited = sent_rate < 0.95 * rate;
                if s.loss() <= args.max_loss {
                    failures = 0;
                    best = Some(s);
                } else {
                    failures += 1;
                }
                if generator_limited {
                    println!("  (the generator could not reach the target rate: stopping here)");
                    break;
                }
                if failures >= 2 {
                    break;
                }
            }
            summary.push((receiver.name(), shape, best));
        }
    }
    println!(
        "\nhighest rate with at most {:.2} % loss:",
        args.max_loss * 100.0
    );
    for (name, shape, best) in summary {
        match best {
            Some(s) => println!(
                "  {name:<16} {shape:>2}/datagram: {:>10.0} metrics/s ({:.0} datagrams/s), {:.3} CPU s per million metrics",
                s.sent_metrics_per_second(),
                s.sent_datagrams as f64 / s.send_seconds,
                s.cpu_per_million()
            ),
            None => println!("  {name:<16} {shape:>2}/datagram: lossy at every rate tried"),
        }
    }
    Ok(())
}

fn humantime(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
