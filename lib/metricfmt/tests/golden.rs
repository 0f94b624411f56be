//! Golden tests: every `tests/golden/<format>/<case>.txt` is parsed as `<format>` and the
//! result compared with `<case>.json` beside it.
//!
//! The inputs are real outputs (Debian's monitoring-plugins, prometheus-node-exporter) and
//! hand-written edge cases; see tests/golden/README.md. Run with `UPDATE_GOLDEN=1` to write
//! the expectations from the current parsers, then read the diff: an expectation is only
//! worth something once a human has checked it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use metricfmt::{Format, Parsed};
use serde_json::{Value, json};

/// The `now` every golden parse gets (points without a timestamp of their own).
const NOW: i64 = 1_700_000_000;
/// The check's `executed` time every golden parse gets (Nagios perfdata points).
const EXECUTED: i64 = 1_699_999_990;

#[test]
fn nagios_perfdata() {
    check_dir(Format::NagiosPerfdata);
}

#[test]
fn graphite_plaintext() {
    check_dir(Format::GraphitePlaintext);
}

#[test]
fn influxdb_line() {
    check_dir(Format::InfluxdbLine);
}

#[test]
fn opentsdb_line() {
    check_dir(Format::OpentsdbLine);
}

#[test]
fn prometheus_text() {
    check_dir(Format::PrometheusText);
}

/// Check every case of one format, reporting all mismatches at once.
fn check_dir(format: Format) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format.name());
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden inputs in {}", dir.display());
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|input| check(format, input).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Parse `input` and compare with its `.json` expectation (or write it under UPDATE_GOLDEN).
fn check(format: Format, input: &Path) -> Result<(), String> {
    let text = fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let actual = render(&format.parse(&text, NOW, EXECUTED));
    let golden = input.with_extension("json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &actual).map_err(|e| format!("{}: {e}", golden.display()))?;
        return Ok(());
    }
    let expected = fs::read_to_string(&golden).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it, then check it by hand)",
            golden.display()
        )
    })?;
    // Compared as JSON values, so formatting of the file does not matter.
    let parse = |s: &str| serde_json::from_str::<Value>(s);
    match (parse(&actual), parse(&expected)) {
        (Ok(a), Ok(e)) if a == e => Ok(()),
        (_, Err(err)) => Err(format!("{}: invalid JSON: {err}", golden.display())),
        _ => Err(format!(
            "{} does not match {}\n--- expected\n{expected}\n--- actual\n{actual}",
            input.display(),
            golden.display()
        )),
    }
}

/// The parse result as JSON, one point or skipped line per row so diffs stay readable.
/// Tags are `[name, value]` pairs (their order is part of the result); non-finite values,
/// which JSON has no numbers for, are the strings `"+Inf"` and `"-Inf"`.
fn render(parsed: &Parsed) -> String {
    let points = parsed.points.iter().map(|p| {
        let value = if p.value.is_finite() {
            json!(p.value)
        } else if p.value > 0.0 {
            json!("+Inf")
        } else {
            json!("-Inf")
        };
        json!({"name": p.name, "value": value, "timestamp": p.timestamp, "tags": p.tags})
    });
    let skipped = parsed
        .skipped
        .iter()
        .map(|s| json!({"line": s.line, "reason": s.reason}));
    let mut out = String::from("{\n");
    write_rows(&mut out, "points", points);
    out.push_str(",\n");
    write_rows(&mut out, "skipped", skipped);
    out.push_str("\n}\n");
    out
}

fn write_rows(out: &mut String, key: &str, rows: impl Iterator<Item = Value>) {
    let rows: Vec<String> = rows.map(|r| format!("    {r}")).collect();
    if rows.is_empty() {
        let _ = write!(out, "  \"{key}\": []");
    } else {
        let _ = write!(out, "  \"{key}\": [\n{}\n  ]", rows.join(",\n"));
    }
}
