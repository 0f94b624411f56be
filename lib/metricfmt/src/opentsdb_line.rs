//! OpenTSDB's line format (`opentsdb_line`), as tcollector scripts print it and the telnet
//! `put` command takes it.
//!
//! One point per line: `[put] <metric> <timestamp> <value> <tagk=tagv> [<tagk=tagv> ...]`,
//! fields separated by whitespace, at least one tag. The timestamp is Unix seconds or
//! milliseconds, told apart as OpenTSDB does: a value that does not fit in 32 bits
//! (`> 4294967295`) is milliseconds; `1364410924.250` (seconds with a fraction) is accepted
//! too. The value is an integer or a decimal number; NaN and infinities are refused, as
//! OpenTSDB refuses them.
//!
//! Empty lines are ignored; other lines that do not fit are skipped.
//!
//! # Deviations from Sensu Go 6.9
//! * Sensu divides a timestamp by 1000 only when it has exactly 13 digits; Picket uses
//!   OpenTSDB's rule above, so millisecond timestamps before 2001-09-09 (12 digits) and
//!   fractional seconds are read correctly.
//! * Sensu does not know the telnet form's leading `put`; Picket accepts it.
//! * Sensu splits on single spaces; Picket on any run of spaces and tabs, as OpenTSDB does.

use crate::{Parsed, Point, float_seconds, is_decimal, numbered_lines};

/// The largest timestamp OpenTSDB reads as seconds.
const MAX_SECONDS: i64 = u32::MAX as i64;

/// Parse OpenTSDB lines.
pub fn parse(output: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (line, text) in numbered_lines(output) {
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(point) => parsed.points.push(point),
            Err(reason) => parsed.skip(line, reason),
        }
    }
    parsed
}

fn parse_line(text: &str) -> Result<Point, String> {
    let mut fields: Vec<&str> = text.split_ascii_whitespace().collect();
    if fields.first() == Some(&"put") {
        fields.remove(0);
    }
    let [name, timestamp, value, tags @ ..] = &fields[..] else {
        return Err("expected metric, timestamp, value and tags".into());
    };
    if tags.is_empty() {
        return Err("a point needs at least one tag".into());
    }
    let timestamp = parse_timestamp(timestamp)?;
    let value = if is_decimal(value) {
        value.parse::<f64>().ok().filter(|v| v.is_finite())
    } else {
        None
    }
    .ok_or_else(|| format!("value {value:?} is not a finite number"))?;
    let tags = tags
        .iter()
        .map(|tag| match tag.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("tag {tag:?} is not tagk=tagv")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Point {
        name: name.to_string(),
        value,
        timestamp,
        tags,
    })
}

fn parse_timestamp(raw: &str) -> Result<i64, String> {
    let bad = || format!("timestamp {raw:?} is not Unix seconds or milliseconds");
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        let t: i64 = raw.parse().map_err(|_| bad())?;
        return Ok(if t > MAX_SECONDS { t / 1000 } else { t });
    }
    // `1364410924.250`: seconds with a fraction (OpenTSDB allows up to milliseconds).
    match raw.split_once('.') {
        Some((s, f))
            if !s.is_empty()
                && !f.is_empty()
                && f.len() <= 3
                && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            raw.parse::<f64>()
                .ok()
                .and_then(float_seconds)
                .filter(|t| *t <= MAX_SECONDS)
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_milliseconds_and_put() {
        let parsed = parse(
            "sys.cpu.user 1356998400 42.5 host=web01 cpu=0\nput sys.if.bytes 1356998400500 -7 host=web01\nold.ms 999999999999 1 a=b\nfrac 1364410924.250 3 a=b",
        );
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let got: Vec<_> = parsed
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.value, p.timestamp, p.tags.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("sys.cpu.user", 42.5, 1_356_998_400, 2),
                ("sys.if.bytes", -7.0, 1_356_998_400, 1),
                ("old.ms", 1.0, 999_999_999, 1),
                ("frac", 3.0, 1_364_410_924, 1),
            ]
        );
        assert_eq!(
            parsed.points[0].tags,
            [("host".into(), "web01".into()), ("cpu".into(), "0".into())]
        );
    }

    #[test]
    fn bad_lines_are_skipped() {
        for case in [
            "m 1 2",
            "put m 1 2",
            "m x 2 a=b",
            "m -1 2 a=b",
            "m 1.2345 2 a=b",
            "m 1 nan a=b",
            "m 1 inf a=b",
            "m 1 2 ab",
            "m 1 2 =b",
            "m 1 2 a=",
            "m 99999999999999999999 2 a=b",
        ] {
            let parsed = parse(case);
            assert!(parsed.points.is_empty(), "{case}");
            assert_eq!(parsed.skipped.len(), 1, "{case}");
        }
    }
}
