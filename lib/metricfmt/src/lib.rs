//! Parsers for the metric formats that monitoring checks print, as pure functions over `&str`.
//!
//! A check's output may carry measurements in one of five established text formats. Each has
//! its own module with one `parse` function; [`parse`] dispatches on the format's name as
//! Sensu Go spells it (`output_metric_format`):
//!
//! | name | module | timestamp of a point |
//! |---|---|---|
//! | `nagios_perfdata` | [`nagios_perfdata`] | the check's `executed` time |
//! | `graphite_plaintext` | [`graphite_plaintext`] | from the line (seconds) |
//! | `influxdb_line` | [`influxdb_line`] | from the line (nanoseconds), else `now` |
//! | `opentsdb_line` | [`opentsdb_line`] | from the line (seconds or milliseconds) |
//! | `prometheus_text` | [`prometheus_text`] | from the line (milliseconds), else `now` |
//!
//! ```
//! let parsed = metricfmt::parse("graphite_plaintext", "disk.used 42 1700000000\n", 0, 0).unwrap();
//! assert_eq!(parsed.points[0].name, "disk.used");
//! assert_eq!(parsed.points[0].value, 42.0);
//! ```
//!
//! # Invariants
//! * **No I/O, no clock.** Callers pass `now` and the check's `executed` time (Unix seconds),
//!   so a parse is a function of its arguments and the golden tests are exact.
//! * **Never fails on content.** A malformed line (or perfdata item) is left out and reported
//!   in [`Parsed::skipped`] with its 1-based line number and a reason; the rest still yields
//!   points. Only an unknown format name is an error ([`UnknownFormat`]).
//! * **Timestamps are Unix seconds**, whatever the format's own unit (rounded down).
//! * **NaN is "no value"** and never becomes a point (Prometheus exporters print NaN for an
//!   empty summary; Graphite's carbon drops NaN too). Infinities are kept where the format
//!   allows them (Prometheus): a caller whose encoding cannot carry them decides.
//! * **Order is the input's order**; tags keep the order they were written in.
//! * Linear time and memory in the input size; no recursion (the fuzz targets rely on it).
//!
//! The crate knows nothing about Picket or Sensu events: [`Point`] is its own type and the
//! caller converts it at its edge. Each module's documentation lists where the parser departs
//! from Sensu Go 6.9's, always to follow the format's own definition.

pub mod graphite_plaintext;
pub mod influxdb_line;
pub mod nagios_perfdata;
pub mod opentsdb_line;
pub mod prometheus_text;

use std::fmt;
use std::str::FromStr;

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub value: f64,
    /// Unix seconds.
    pub timestamp: i64,
    /// `(name, value)` pairs in the order the input gave them.
    pub tags: Vec<(String, String)>,
}

/// A line (or, for perfdata, one item of a line) that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number in the parsed text.
    pub line: usize,
    pub reason: String,
}

/// What a parser found: the points, and what it had to leave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub points: Vec<Point>,
    pub skipped: Vec<Skipped>,
}

/// The metric formats, by their Sensu names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    NagiosPerfdata,
    GraphitePlaintext,
    InfluxdbLine,
    OpentsdbLine,
    PrometheusText,
}

/// A format name none of the parsers answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

/// Parse `output` as the format named `format` (a Sensu `output_metric_format` value).
///
/// `now` stands in for points whose line carries no timestamp; `executed` (when the check ran)
/// is the timestamp of every Nagios perfdata point. Both are Unix seconds.
pub fn parse(format: &str, output: &str, now: i64, executed: i64) -> Result<Parsed, UnknownFormat> {
    Ok(format.parse::<Format>()?.parse(output, now, executed))
}

// === impl Format ===

impl Format {
    pub const ALL: [Format; 5] = [
        Format::NagiosPerfdata,
        Format::GraphitePlaintext,
        Format::InfluxdbLine,
        Format::OpentsdbLine,
        Format::PrometheusText,
    ];

    /// The Sensu name (`output_metric_format`).
    pub fn name(self) -> &'static str {
        match self {
            Format::NagiosPerfdata => "nagios_perfdata",
            Format::GraphitePlaintext => "graphite_plaintext",
            Format::InfluxdbLine => "influxdb_line",
            Format::OpentsdbLine => "opentsdb_line",
            Format::PrometheusText => "prometheus_text",
        }
    }

    /// See [`crate::parse`] for `now` and `executed`.
    pub fn parse(self, output: &str, now: i64, executed: i64) -> Parsed {
        match self {
            Format::NagiosPerfdata => nagios_perfdata::parse(output, executed),
            Format::GraphitePlaintext => graphite_plaintext::parse(output),
            Format::InfluxdbLine => influxdb_line::parse(output, now),
            Format::OpentsdbLine => opentsdb_line::parse(output),
            Format::PrometheusText => prometheus_text::parse(output, now),
        }
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === impl UnknownFormat ===

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown metric format {:?}; expected one of ", self.0)?;
        for (i, format) in Format::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownFormat {}

// === impl Parsed ===

impl Parsed {
    fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            reason: reason.into(),
        });
    }
}

// === shared helpers ===

/// The lines of `text` with their 1-based numbers, without `\n` or `\r\n` terminators.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
}

/// Seconds from a floating-point Unix time, rounded down; `None` when out of `i64` range.
fn float_seconds(t: f64) -> Option<i64> {
    // `as` saturates, so the range is checked first; 2^63 itself is out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let t = t.floor();
    (t.is_finite() && (-LIMIT..LIMIT).contains(&t)).then_some(t as i64)
}

/// A plain decimal number (`-1`, `2.5`, `.5`, `1e-3`): digits with at most one point and an
/// optional exponent. Rust's `f64::from_str` also takes `inf`, `NaN` and `infinity`, which
/// most of these formats do not allow.
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits = 0;
    let mut point = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => digits += 1,
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        let err = "json".parse::<Format>().unwrap_err();
        assert_eq!(err, UnknownFormat("json".into()));
        assert!(err.to_string().contains("prometheus_text"), "{err}");
        assert!(parse("Nagios_Perfdata", "", 0, 0).is_err());
    }

    #[test]
    fn decimals() {
        for ok in [
            "0", "-1", "+2", "2.5", ".5", "5.", "1e3", "1E-3", "-1.5e+10",
        ] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in [
            "", "-", ".", "e3", "1e", "1.2.3", "inf", "NaN", "0x10", "1_0", "1 ",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn float_seconds_rounds_down_and_refuses_overflow() {
        assert_eq!(float_seconds(1.9), Some(1));
        assert_eq!(float_seconds(-0.5), Some(-1));
        assert_eq!(float_seconds(1e19), None);
        assert_eq!(float_seconds(f64::NAN), None);
    }

    #[test]
    fn lines_are_numbered_from_one_without_terminators() {
        let lines: Vec<_> = numbered_lines("a\r\nb\n\nc").collect();
        assert_eq!(lines, [(1, "a"), (2, "b"), (3, ""), (4, "c")]);
    }
}
