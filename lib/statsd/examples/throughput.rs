//! Rough throughput of the parser and of parse + aggregate, in release mode:
//! `cargo run --release -p statsd --example throughput`.
//!
//! One million lines of mixed types (a quarter tagged), packed 16 to a datagram as clients
//! with pipelines send them, over 1,000 distinct series.

use std::hint::black_box;
use std::time::Instant;

use statsd::{Aggregator, AggregatorConfig, parse_datagram};

const LINES: usize = 1_000_000;
const PER_DATAGRAM: usize = 16;

fn main() {
    let datagrams = build();
    let bytes: usize = datagrams.iter().map(Vec::len).sum();

    let start = Instant::now();
    let mut parsed = 0usize;
    for d in &datagrams {
        for m in parse_datagram(black_box(d)) {
            black_box(&m);
            parsed += 1;
        }
    }
    report("parse", parsed, bytes, start);

    let mut agg = Aggregator::new(AggregatorConfig::default()).expect("default config");
    let start = Instant::now();
    let now = Instant::now();
    let mut added = 0usize;
    for d in &datagrams {
        added += agg.add_datagram(black_box(d), now).metrics;
    }
    report("parse + aggregate", added, bytes, start);

    let start = Instant::now();
    let points = agg.flush(now);
    println!(
        "flush: {} series → {} points in {:.1} ms",
        agg.len(),
        points.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn build() -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(LINES / PER_DATAGRAM);
    let mut current = Vec::new();
    for i in 0..LINES {
        let series = i % 1000;
        let line = match i % 4 {
            0 => format!("app.requests.{series}:1|c|@0.5"),
            1 => format!("app.latency.{series}:{}.{:03}|ms", i % 500, i % 1000),
            2 => format!("app.queue.{series}:{}|g|#env:prod,az:eu-1", i % 100),
            _ => format!("app.users.{series}:user-{}|s", i % 5000),
        };
        if !current.is_empty() {
            current.push(b'\n');
        }
        current.extend_from_slice(line.as_bytes());
        if (i + 1) % PER_DATAGRAM == 0 {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn report(what: &str, lines: usize, bytes: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {lines} lines in {:.1} ms = {:.1} M lines/s, {:.0} MB/s, {:.0} ns/line",
        secs * 1e3,
        lines as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
        secs * 1e9 / lines as f64
    );
}
