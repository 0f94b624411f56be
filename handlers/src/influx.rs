//! InfluxDB line protocol from a Sensu event, as Sensu's `sensu-influxdb-handler` writes it:
//! each metric point becomes a line `<point name>,<point tags>,sensu_entity_name=<entity>
//! value=<float> <time>`; with `check_status`, the check's status becomes a line
//! `<check name>,sensu_entity_name=<entity> value=<status>i <time>`.
//!
//! Points that line protocol cannot carry (no name, NaN or infinite values) are skipped and
//! counted rather than failing the whole batch.

use serde_json::Value;

use crate::event;
use crate::{Error, Result};

/// The tag that groups every point by the agent (entity) that produced it.
pub const ENTITY_TAG: &str = "sensu_entity_name";

/// Timestamp precision of the written lines (InfluxDB's `precision` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Precision> {
        Ok(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            other => {
                return Err(Error::Config(format!(
                    "precision {other:?} is not one of ns, us, ms, s"
                )));
            }
        })
    }

    /// The query parameter value (the same for the v1 and v2 write APIs).
    pub fn as_param(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "ns",
            Precision::Microseconds => "us",
            Precision::Milliseconds => "ms",
            Precision::Seconds => "s",
        }
    }

    fn per_second(self) -> i128 {
        match self {
            Precision::Nanoseconds => 1_000_000_000,
            Precision::Microseconds => 1_000_000,
            Precision::Milliseconds => 1_000,
            Precision::Seconds => 1,
        }
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub precision: Precision,
    /// Also write the check status as a measurement named after the check.
    pub check_status: bool,
    /// Strip a leading `<entity name>.` from point names (Graphite-style names).
    pub strip_host: bool,
}

/// The lines for `event`, and how many points were skipped.
pub fn lines(event: &Value, options: &Options, now: i64) -> Result<(String, usize)> {
    let entity = event::entity_name(event)?;
    let fallback_time = event::time(event).unwrap_or(now);
    let mut out = String::new();
    let mut skipped = 0;
    let points = event["metrics"]["points"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for point in points {
        let name = point["name"].as_str().unwrap_or_default();
        let name = if options.strip_host {
            name.strip_prefix(entity)
                .and_then(|n| n.strip_prefix('.'))
                .unwrap_or(name)
        } else {
            name
        };
        let value = point["value"].as_f64();
        let (false, Some(value)) = (name.is_empty(), value.filter(|v| v.is_finite())) else {
            skipped += 1;
            continue;
        };
        let mut tags: Vec<(&str, &str)> = point["tags"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| Some((t["name"].as_str()?, t["value"].as_str()?)))
            // Line protocol has no empty tag keys or values; the entity tag is ours.
            .filter(|(k, v)| !k.is_empty() && !v.is_empty() && *k != ENTITY_TAG)
            .collect();
        tags.push((ENTITY_TAG, entity));
        tags.sort_unstable();
        let time = point["timestamp"]
            .as_i64()
            .filter(|t| *t > 0)
            .unwrap_or(fallback_time);
        push_line(
            &mut out,
            name,
            &tags,
            &format_float(value),
            scale(time, options.precision),
        );
    }
    if options.check_status
        && let Some(check) = event::check_name(event)
    {
        push_line(
            &mut out,
            check,
            &[(ENTITY_TAG, entity)],
            &format!("{}i", event::status(event)),
            scale(fallback_time, options.precision),
        );
    }
    Ok((out, skipped))
}

fn push_line(out: &mut String, measurement: &str, tags: &[(&str, &str)], value: &str, time: i128) {
    escape_into(out, measurement, &[',', ' ']);
    for (k, v) in tags {
        out.push(',');
        escape_into(out, k, &[',', '=', ' ']);
        out.push('=');
        escape_into(out, v, &[',', '=', ' ']);
    }
    out.push_str(" value=");
    out.push_str(value);
    out.push(' ');
    out.push_str(&time.to_string());
    out.push('\n');
}

/// Line protocol escaping: a backslash before each special character; newlines, which no
/// escaping can carry, become spaces (escaped).
fn escape_into(out: &mut String, s: &str, special: &[char]) {
    for c in s.chars() {
        let c = if c == '\n' || c == '\r' { ' ' } else { c };
        if special.contains(&c) || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A float as line protocol reads it: `1` would do too, but `1.0`-style keeps the field a
/// float even to readers that guess types from text.
fn format_float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Sensu point timestamps are seconds, but plugins also emit ms, µs or ns: guess by size,
/// then express in `precision`.
fn scale(time: i64, precision: Precision) -> i128 {
    let t = i128::from(time);
    let ns = if t > 100_000_000_000_000_000 {
        t
    } else if t > 100_000_000_000_000 {
        t * 1_000
    } else if t > 100_000_000_000 {
        t * 1_000_000
    } else {
        t * 1_000_000_000
    };
    ns / (1_000_000_000 / precision.per_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options() -> Options {
        Options {
            precision: Precision::Seconds,
            check_status: false,
            strip_host: false,
        }
    }

    #[test]
    fn points_become_lines_tagged_with_the_entity() {
        let event = json!({
            "entity": {"metadata": {"name": "web 1"}},
            "check": {"metadata": {"name": "prom"}, "status": 1, "executed": 1700000000},
            "metrics": {"points": [
                {"name": "http_requests_total", "value": 42, "timestamp": 1700000001,
                 "tags": [{"name": "code", "value": "200"}, {"name": "path", "value": "/a,b=c"},
                          {"name": "empty", "value": ""}]},
                {"name": "web 1.load", "value": 0.5, "timestamp": 1_700_000_001_000_i64, "tags": []},
                {"name": "bad", "value": null},
                {"name": "", "value": 1},
            ]},
        });
        let (text, skipped) = lines(&event, &options(), 0).unwrap();
        assert_eq!(skipped, 2);
        assert_eq!(
            text,
            "http_requests_total,code=200,path=/a\\,b\\=c,sensu_entity_name=web\\ 1 value=42.0 1700000001\n\
             web\\ 1.load,sensu_entity_name=web\\ 1 value=0.5 1700000001\n"
        );
        let (text, _) = lines(
            &event,
            &Options {
                precision: Precision::Milliseconds,
                check_status: true,
                strip_host: true,
            },
            0,
        )
        .unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(
            got[1],
            "load,sensu_entity_name=web\\ 1 value=0.5 1700000001000"
        );
        assert_eq!(
            got[2],
            "prom,sensu_entity_name=web\\ 1 value=1i 1700000000000"
        );
    }

    #[test]
    fn bad_precision_and_missing_entity_are_errors() {
        assert!(Precision::parse("h").is_err());
        assert_eq!(Precision::parse("u").unwrap(), Precision::Microseconds);
        assert!(lines(&json!({"check": {}}), &options(), 0).is_err());
    }
}
