//! InfluxDB line protocol (`influxdb_line`).
//!
//! One line per series: `measurement[,tag=value...] field=value[,field=value...] [timestamp]`.
//! Each numeric field becomes a point named `measurement.field` with the line's tags (in the
//! order written). A line without a timestamp gets `now`. The timestamp's precision is read
//! from its magnitude (see [`to_seconds`]): the protocol's default is nanoseconds, but the
//! scripts Sensu users run print seconds or milliseconds as often, and Sensu accepted them all.
//!
//! Syntax as InfluxDB defines it:
//! * a backslash escapes `,` and space in the measurement, and `,`, `=` and space in tag keys,
//!   tag values and field keys; elsewhere a backslash is literal;
//! * field values are floats (`1`, `-1.5`, `1e3`), integers (`42i`), unsigned integers
//!   (`42u`), booleans (`t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False`,
//!   `FALSE`; they become 1 and 0) or double-quoted strings (`\"` and `\\` escaped inside);
//! * lines starting with `#` are comments; blank lines are ignored.
//!
//! String fields carry no number: they make no point, but they do not spoil the line's other
//! fields. A line with a syntax error (no field set, an empty key, an unterminated string, a
//! value that is none of the above, a bad timestamp, trailing text) is skipped as a whole,
//! as InfluxDB refuses it.
//!
//! # Deviations from Sensu Go 6.9
//! * Sensu keeps the first 10 digits of the timestamp whatever its length, which reads
//!   seconds, milliseconds, microseconds and nanoseconds of present-day instants alike but is
//!   wrong for any instant whose seconds do not have exactly 10 digits. Picket infers the
//!   precision from the magnitude instead (seconds below 10^11, then milliseconds,
//!   microseconds, nanoseconds), which reads the same inputs and stays right for every instant
//!   from 1973 to 5138, and for negative timestamps.
//! * Sensu reads every field value as a float, so `42i` (integer), `42u`, booleans and strings
//!   make it skip the whole line; Picket reads integers, unsigned integers and booleans, and
//!   leaves out only string fields.
//! * Sensu splits the line on spaces before anything else, so escaped spaces (`host\ name`)
//!   and spaces inside string fields break the line; Picket tokenizes with the escapes.
//!   Runs of spaces or tabs between the sections are accepted.

use crate::{Parsed, Point, is_decimal, numbered_lines};

/// Unix seconds from a timestamp of unknown precision, by magnitude: below 10^11 it is
/// seconds (until the year 5138), below 10^14 milliseconds, below 10^17 microseconds, else
/// nanoseconds. Present-day instants have 10, 13, 16 and 19 digits in those units.
pub fn to_seconds(ts: i64) -> i64 {
    let magnitude = ts.unsigned_abs();
    let per_second: i64 = if magnitude < 100_000_000_000 {
        1
    } else if magnitude < 100_000_000_000_000 {
        1_000
    } else if magnitude < 100_000_000_000_000_000 {
        1_000_000
    } else {
        1_000_000_000
    };
    ts.div_euclid(per_second)
}

// Where each part of a line ends, and what a backslash escapes in it.
const MEASUREMENT_STOPS: &[u8] = b", \t";
const MEASUREMENT_ESCAPES: &[u8] = b", ";
/// Tag keys, tag values and field keys.
const KEY_STOPS: &[u8] = b",= \t";
const KEY_ESCAPES: &[u8] = b",= ";
const VALUE_STOPS: &[u8] = b", \t";
const BLANKS: &[u8] = b" \t";

/// Parse line protocol; lines without a timestamp get `now` (Unix seconds).
pub fn parse(output: &str, now: i64) -> Parsed {
    let mut parsed = Parsed::default();
    for (line, text) in numbered_lines(output) {
        let text = text.trim_start_matches([' ', '\t']);
        if text.trim_end().is_empty() || text.starts_with('#') {
            continue;
        }
        match parse_line(text, now) {
            Ok(points) => parsed.points.extend(points),
            Err(reason) => parsed.skip(line, reason),
        }
    }
    parsed
}

fn parse_line(text: &str, now: i64) -> Result<Vec<Point>, String> {
    let mut c = Cursor::new(text);
    let measurement = c.token(MEASUREMENT_STOPS, MEASUREMENT_ESCAPES);
    if measurement.is_empty() {
        return Err("empty measurement".into());
    }
    let mut tags = Vec::new();
    while c.eat(b',') {
        let key = c.token(KEY_STOPS, KEY_ESCAPES);
        if key.is_empty() {
            return Err("empty tag key".into());
        }
        if !c.eat(b'=') {
            return Err(format!("tag {key:?} has no '='"));
        }
        let value = c.token(KEY_STOPS, KEY_ESCAPES);
        if value.is_empty() {
            return Err(format!("tag {key:?} has an empty value"));
        }
        if c.peek() == Some(b'=') {
            return Err(format!("tag {key:?} has an unescaped '=' in its value"));
        }
        tags.push((key, value));
    }
    if !c.blanks() || c.at_end() {
        return Err("no field set".into());
    }

    let mut fields = Vec::new();
    loop {
        let key = c.token(KEY_STOPS, KEY_ESCAPES);
        if key.is_empty() {
            return Err("empty field key".into());
        }
        if !c.eat(b'=') {
            return Err(format!("field {key:?} has no '='"));
        }
        if let Some(value) = c.field_value().map_err(|e| format!("field {key:?}: {e}"))? {
            fields.push((key, value));
        }
        if !c.eat(b',') {
            break;
        }
    }

    let timestamp = if c.blanks() && !c.at_end() {
        let raw = c.token(BLANKS, b"");
        let ts: i64 = raw
            .parse()
            .map_err(|_| format!("timestamp {raw:?} is not an integer"))?;
        c.blanks();
        to_seconds(ts)
    } else {
        now
    };
    if !c.at_end() {
        return Err(format!("unexpected text {:?}", c.rest()));
    }

    Ok(fields
        .into_iter()
        .map(|(key, value)| Point {
            name: format!("{measurement}.{key}"),
            value,
            timestamp,
            tags: tags.clone(),
        })
        .collect())
}

/// The number a non-string field value stands for.
fn number(raw: &str) -> Result<f64, String> {
    let bad = || format!("value {raw:?} is not a float, integer, boolean or string");
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    let value = if let Some(int) = raw.strip_suffix('i') {
        is_integer(int)
            .then(|| int.parse::<i64>().ok())
            .flatten()
            .ok_or_else(bad)? as f64
    } else if let Some(uint) = raw.strip_suffix('u') {
        is_integer(uint)
            .then(|| uint.parse::<u64>().ok())
            .flatten()
            .ok_or_else(bad)? as f64
    } else if is_decimal(raw) {
        raw.parse::<f64>().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    // `1e999` parses as infinity; InfluxDB refuses it as out of range.
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("value {raw:?} is out of range"))
    }
}

/// An optionally negative run of digits (Rust's integer parsers also take a leading `+`).
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A position in one line. Every place it stops at or slices from is an ASCII byte, so
/// slices stay on character boundaries.
struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, i: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.i..]
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Skip spaces and tabs; whether there were any.
    fn blanks(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    /// Text up to the first unescaped byte of `stops`, with `\x` for `x` in `escapable`
    /// replaced by `x`; other backslashes are kept.
    fn token(&mut self, stops: &[u8], escapable: &[u8]) -> String {
        let b = self.bytes();
        let mut out = String::new();
        let mut from = self.i;
        while let Some(&c) = b.get(self.i) {
            if c == b'\\' && b.get(self.i + 1).is_some_and(|n| escapable.contains(n)) {
                out.push_str(&self.text[from..self.i]);
                out.push(char::from(b[self.i + 1]));
                self.i += 2;
                from = self.i;
                continue;
            }
            if stops.contains(&c) {
                break;
            }
            self.i += 1;
        }
        out.push_str(&self.text[from..self.i]);
        out
    }

    /// A field value: its number, `None` for a string.
    fn field_value(&mut self) -> Result<Option<f64>, String> {
        if self.eat(b'"') {
            let b = self.bytes();
            while let Some(&c) = b.get(self.i) {
                match c {
                    b'\\' if matches!(b.get(self.i + 1), Some(b'"' | b'\\')) => self.i += 2,
                    b'"' => {
                        self.i += 1;
                        return Ok(None);
                    }
                    _ => self.i += 1,
                }
            }
            return Err("unterminated string".into());
        }
        let raw = self.token(VALUE_STOPS, b"");
        if raw.is_empty() {
            return Err("empty value".into());
        }
        number(&raw).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, value: f64, timestamp: i64, tags: &[(&str, &str)]) -> Point {
        Point {
            name: name.into(),
            value,
            timestamp,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn fields_of_every_numeric_type_and_nanosecond_timestamps() {
        let parsed = parse(
            "weather,location=us-midwest,season=summer temperature=82,humidity=71i,rain=f,n=3u 1465839830100400200\n",
            99,
        );
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let tags = [("location", "us-midwest"), ("season", "summer")];
        assert_eq!(
            parsed.points,
            [
                point("weather.temperature", 82.0, 1_465_839_830, &tags),
                point("weather.humidity", 71.0, 1_465_839_830, &tags),
                point("weather.rain", 0.0, 1_465_839_830, &tags),
                point("weather.n", 3.0, 1_465_839_830, &tags),
            ]
        );
    }

    #[test]
    fn timestamp_precision_follows_magnitude() {
        for (raw, secs) in [
            ("1465839830", 1_465_839_830),
            ("1465839830100", 1_465_839_830),
            ("1465839830100400", 1_465_839_830),
            ("1465839830100400200", 1_465_839_830),
            ("120000000", 120_000_000),
            ("-1465839830", -1_465_839_830),
        ] {
            let parsed = parse(&format!("m v=1 {raw}\n"), 99);
            assert_eq!(parsed.points[0].timestamp, secs, "{raw}");
        }
    }

    #[test]
    fn escapes_strings_comments_and_missing_timestamps() {
        let parsed = parse(
            "# comment\n\n  my\\ meas\\,x,host\\ name=a\\=b  msg=\"hi, there \\\"you\\\"\",v=-1.5e1\n\\a b=1 -1",
            42,
        );
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(
            parsed.points,
            [
                point("my meas,x.v", -15.0, 42, &[("host name", "a=b")]),
                point("\\a.b", 1.0, -1, &[]),
            ]
        );
    }

    #[test]
    fn only_string_fields_make_no_points_and_no_error() {
        assert_eq!(parse("m s=\"x\"", 0), Parsed::default());
    }

    #[test]
    fn syntax_errors_skip_the_whole_line() {
        let cases = [
            "m",
            "m ",
            ",t=v f=1",
            "m,t f=1",
            "m,=v f=1",
            "m,t= f=1",
            "m,t=a=b f=1",
            "m f",
            "m =1",
            "m f=",
            "m f=1,",
            "m f=abc",
            "m f=1.5i",
            "m f=-3u",
            "m f=1e999",
            "m f=inf",
            "m f=\"open",
            "m f=1 12.5",
            "m f=1 1 extra",
        ];
        for case in cases {
            let parsed = parse(case, 0);
            assert!(parsed.points.is_empty(), "{case}: {parsed:?}");
            assert_eq!(parsed.skipped.len(), 1, "{case}: {parsed:?}");
        }
    }
}
