//! `bench-statsd`: StatsD throughput of `picket-agent` beside the Etsy `statsd` daemon, same
//! generator, same traffic, rising rates (see `benches::statsd_throughput`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use benches::harness::{free_port, machine_summary};
use benches::parse_duration;
use benches::statsd_throughput::{self as st, Generator, Receiver, Step};
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
        default_value = "10000,20000,50000,100000,150000,200000,300000,400000,600000,800000,1000000,1200000,1500000,2000000,2500000,3000000"
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
    /// Sending threads (one socket each).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// One datagram per message instead of UDP GSO batches.
    #[arg(long)]
    no_gso: bool,
    /// CPUs for the sending threads (e.g. `0`); default: not pinned.
    #[arg(long, value_delimiter = ',')]
    generator_cpus: Vec<usize>,
    /// The CPU each daemon runs on (through `taskset -c`); default: not pinned.
    #[arg(long)]
    receiver_cpu: Option<usize>,
    /// Steps that may fail in a row before a daemon's run ends.
    #[arg(long, default_value_t = 2)]
    failures: usize,
    /// Measure only the generator's ceiling per shape (flat out into a socket nobody reads).
    #[arg(long)]
    ceiling: bool,
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
    let generator = Generator {
        threads: args.threads,
        gso: !args.no_gso,
        cpus: args.generator_cpus.clone(),
    };
    println!(
        "generator: {}; {} per step; loss limit {:.2} %; receiver CPU: {}",
        generator.describe(),
        humantime(args.step),
        args.max_loss * 100.0,
        args.receiver_cpu
            .map_or("not pinned".to_string(), |c| c.to_string())
    );
    if args.ceiling {
        for &shape in &args.shapes {
            let payloads = st::payloads(shape, 512);
            let rate = st::ceiling(&generator, &payloads, shape, args.step)?;
            println!(
                "generator ceiling, {shape} metric(s) per datagram: {rate:.0} datagrams/s ({:.0} metrics/s)",
                rate * shape as f64
            );
        }
        return Ok(());
    }
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
                "picket" => Receiver::picket(&args.agent, port, args.receiver_cpu)?,
                _ => Receiver::etsy(
                    &st::etsy_dir(args.etsy.as_ref().unwrap()),
                    port,
                    args.receiver_cpu,
                )?,
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
                let s = st::step(
                    &receiver, &generator, port, &payloads, shape, rate, args.step,
                )?;
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
                if failures >= args.failures {
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
