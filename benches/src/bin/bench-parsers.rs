//! `bench-parsers`: single-core throughput of every metric parser Picket runs on check output
//! (the five `output_metric_format`s) and of the StatsD parser and aggregator.
//!
//! Inputs are real captures: the golden files of `lib/metricfmt/tests/golden/` (Debian's
//! monitoring-plugins, node_exporter, Telegraf-like lines; the deliberately malformed files are
//! left out) and the StatsD traffic of `bench-statsd`. Each input is parsed over and over for
//! `--time`; the figures are bytes, lines and points (metrics) per second of one thread.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use benches::harness::machine_summary;
use benches::parse_duration;
use benches::statsd_throughput::payloads;
use clap::Parser;
use metricfmt::Format;
use statsd::{Aggregator, AggregatorConfig, parse_datagram};

#[derive(Debug, Parser)]
#[command(name = "bench-parsers")]
struct Args {
    /// The metric format golden files (one directory per format).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../lib/metricfmt/tests/golden"))]
    golden: PathBuf,
    /// Time spent on each input.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    time: Duration,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-parsers: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Rate {
    bytes: f64,
    lines: f64,
    points: f64,
}

/// Run `parse` over `inputs` round-robin for `time`; `parse` returns points produced.
fn measure<T>(
    inputs: &[T],
    time: Duration,
    size: impl Fn(&T) -> (usize, usize),
    mut parse: impl FnMut(&T) -> usize,
) -> Rate {
    let (mut bytes, mut lines, mut points) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < time {
        // Check the clock every hundred inputs, not after each.
        for _ in 0..100 {
            let input = &inputs[i % inputs.len()];
            let (b, l) = size(input);
            points += black_box(parse(input));
            bytes += b;
            lines += l;
            i += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Rate {
        bytes: bytes as f64 / seconds,
        lines: lines as f64 / seconds,
        points: points as f64 / seconds,
    }
}

fn print(name: &str, r: &Rate) {
    println!(
        "{name:<24} {:>10.1} {:>14.0} {:>14.0}",
        r.bytes / 1e6,
        r.lines,
        r.points
    );
}

fn run(args: Args) -> Result<()> {
    println!("{}", machine_summary());
    println!("one thread, {:.1} s per input\n", args.time.as_secs_f64());
    println!(
        "{:<24} {:>10} {:>14} {:>14}",
        "parser", "MB/s", "lines/s", "points/s"
    );
    for format in Format::ALL {
        let dir = args.golden.join(format.name());
        let mut texts = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if path.extension().is_some_and(|e| e == "txt") && !name.starts_with("malformed") {
                texts.push(std::fs::read_to_string(&path)?);
            }
        }
        if texts.is_empty() {
            bail!("no golden inputs in {}", dir.display());
        }
        let rate = measure(
            &texts,
            args.time,
            |t| (t.len(), t.lines().count()),
            |t| format.parse(t, 1_700_000_000, 1_700_000_000).points.len(),
        );
        print(format.name(), &rate);
    }

    for shape in [1, 20] {
        let datagrams = payloads(shape, 512);
        let rate = measure(
            &datagrams,
            args.time,
            |d| (d.len(), shape),
            |d| parse_datagram(d).count(),
        );
        print(&format!("statsd parse ({shape}/datagram)"), &rate);
        let mut aggregator =
            Aggregator::new(AggregatorConfig::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let now = Instant::now();
        let rate = measure(
            &datagrams,
            args.time,
            |d| (d.len(), shape),
            |d| aggregator.add_datagram(d, now).metrics,
        );
        print(&format!("statsd aggregate ({shape}/dg)"), &rate);
    }
    Ok(())
}
