//! Graphite's plaintext protocol (`graphite_plaintext`).
//!
//! One point per line: `<path> <value> <timestamp>`, fields separated by whitespace, the
//! timestamp in Unix seconds. The path may carry Graphite tags, `name;tag1=value1;tag2=value2`
//! (tag names and values non-empty); they become the point's tags in the order written.
//!
//! Empty lines are ignored. A line without exactly three fields, with an empty tag name or
//! value, or whose value or timestamp is not a number is skipped. A NaN value is dropped
//! without a report, as carbon does.
//!
//! # Deviations from Sensu Go 6.9
//! * Sensu splits each line on single spaces, so two spaces or a tab between fields make the
//!   line invalid. Picket splits on any run of spaces and tabs, as carbon does.
//! * Sensu requires an integer timestamp; carbon accepts fractional seconds, and so does
//!   Picket (rounded down).
//! * Sensu keeps a NaN value, which its JSON encoder then cannot write; Picket drops it.

use crate::{Parsed, Point, float_seconds, numbered_lines};

/// Parse Graphite plaintext lines.
pub fn parse(output: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (line, text) in numbered_lines(output) {
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(Some(point)) => parsed.points.push(point),
            Ok(None) => {}
            Err(reason) => parsed.skip(line, reason),
        }
    }
    parsed
}

fn parse_line(text: &str) -> Result<Option<Point>, String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [path, value, timestamp] = fields[..] else {
        return Err(format!(
            "expected 3 fields (path value timestamp), found {}",
            fields.len()
        ));
    };
    let mut parts = path.split(';');
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err("empty metric path".into());
    }
    let mut tags = Vec::new();
    for tag in parts {
        match tag.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => tags.push((k.into(), v.into())),
            _ => return Err(format!("tag {tag:?} is not name=value")),
        }
    }
    let value: f64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is not a number"))?;
    let timestamp = match timestamp.parse::<i64>() {
        Ok(t) => t,
        Err(_) => timestamp
            .parse::<f64>()
            .ok()
            .and_then(float_seconds)
            .ok_or_else(|| format!("timestamp {timestamp:?} is not a Unix time"))?,
    };
    if value.is_nan() {
        return Ok(None);
    }
    Ok(Some(Point {
        name: name.into(),
        value,
        timestamp,
        tags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_tagged_paths() {
        let parsed = parse("a.b.c 1.5 1700000000\n\n  x;dc=eu;role=db\t-2\t1700000001.9  \n");
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(
            parsed.points,
            [
                Point {
                    name: "a.b.c".into(),
                    value: 1.5,
                    timestamp: 1_700_000_000,
                    tags: vec![],
                },
                Point {
                    name: "x".into(),
                    value: -2.0,
                    timestamp: 1_700_000_001,
                    tags: vec![("dc".into(), "eu".into()), ("role".into(), "db".into())],
                },
            ]
        );
    }

    #[test]
    fn bad_lines_are_skipped_and_nan_dropped() {
        let parsed = parse("a 1\na 1 2 3\nb;x 1 2\nc one 2\nd 1 two\ne nan 5\nf 1 5\n;t=v 1 2");
        assert_eq!(parsed.points.len(), 1);
        assert_eq!(parsed.points[0].name, "f");
        let lines: Vec<_> = parsed.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 8]);
        assert_eq!(
            parsed.skipped[0].reason,
            "expected 3 fields (path value timestamp), found 2"
        );
    }
}
