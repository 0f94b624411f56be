//! The StatsD line parser: pure functions over bytes, no I/O, no allocation.
//!
//! Grammar (one metric per line, lines separated by `\n`):
//!
//! ```text
//! line    = name ":" value "|" type *( "|" section )
//! type    = "c" | "g" | "ms" | "h" | "s"
//! section = "@" rate | "#" tags
//! tags    = tag *( "," tag )      ; tag = name [ ":" value ], DogStatsD style
//! ```
//!
//! * The name ends at the first `:`; it cannot be empty or contain `|`.
//! * Numbers are decimal floats (`12`, `-3.5`, `1e3`); `inf`, `nan` and values that overflow
//!   to infinity are refused, so an aggregate never starts from a non-finite value.
//! * A gauge value written with an explicit sign (`+4`, `-2`) is a delta applied to the
//!   current value (Etsy semantics); without a sign it sets the gauge.
//! * A set's value is its member, taken as a string (`user-42`).
//! * `@rate` must lie in (0, 1]; it is accepted on every type and used for counters and
//!   timers. `#tags` follows DogStatsD: comma-separated, each `k:v` split on its first `:`,
//!   a tag without `:` has an empty value, empty elements are skipped.
//! * Each section may appear once, in any order; any other section (`|c:…`, `|T…` from newer
//!   DogStatsD clients) makes the line invalid rather than silently misread.
//! * Surrounding ASCII whitespace (and so a `\r` of CRLF line ends) is ignored; a line must
//!   be valid UTF-8 and at most [`MAX_LINE_LEN`] bytes.

/// Longest accepted line, in bytes. It bounds the memory one series key can take (names and
/// tags are copied once per series); real clients send lines of a few hundred bytes.
pub const MAX_LINE_LEN: usize = 4096;

/// One parsed line; every string borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: Value<'a>,
    /// From `|@rate`; 1.0 when absent. Always in (0, 1] for parsed lines.
    pub sample_rate: f64,
    pub tags: Tags<'a>,
}

/// A metric's type and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `|c`: added to the counter (scaled by the sample rate).
    Counter(f64),
    /// `|g` without a sign: the gauge's new value.
    Gauge(f64),
    /// `|g` with an explicit `+` or `-`: added to the gauge's current value.
    GaugeDelta(f64),
    /// `|ms`.
    Timer(f64),
    /// `|h`: aggregated exactly like a timer (as gostatsd does).
    Histogram(f64),
    /// `|s`: a member of the set.
    Set(&'a str),
}

/// The raw DogStatsD tag list of a line (the text after `#`), iterated lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tags<'a>(&'a str);

/// One tag: `name:value`, or `name` alone (empty value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// Why a line was refused. Small and `Copy`: the hot path never allocates for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("no ':' between the metric name and its value")]
    MissingValue,
    #[error("empty metric name")]
    EmptyName,
    #[error("metric name contains '|'")]
    BadName,
    #[error("no '|' before the metric type")]
    MissingType,
    #[error("unknown metric type (expected c, g, ms, h or s)")]
    UnknownType,
    #[error("value is not a finite decimal number")]
    BadValue,
    #[error("empty set member")]
    EmptyMember,
    #[error("sample rate is not a number in (0, 1]")]
    BadSampleRate,
    #[error("unknown section (expected |@rate or |#tags)")]
    UnknownSection,
    #[error("section given twice")]
    DuplicateSection,
}

/// Parse one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Result<Metric<'_>, ParseError> {
    let line = line.trim_ascii();
    if line.len() > MAX_LINE_LEN {
        return Err(ParseError::TooLong);
    }
    // One validation pass up front; everything after works on `str` and borrows from it.
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let (name, rest) = line.split_once(':').ok_or(ParseError::MissingValue)?;
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    if name.contains('|') {
        // `a|c:1`: the `:` found belongs to a later section, so the name has no value.
        return Err(ParseError::BadName);
    }
    let mut sections = rest.split('|');
    // `split` always yields at least one item.
    let raw_value = sections.next().unwrap_or_default();
    let kind = sections.next().ok_or(ParseError::MissingType)?;

    let mut rate = None;
    let mut tags = None;
    for section in sections {
        if let Some(r) = section.strip_prefix('@') {
            if rate.is_some() {
                return Err(ParseError::DuplicateSection);
            }
            rate = Some(parse_rate(r)?);
        } else if let Some(t) = section.strip_prefix('#') {
            if tags.is_some() {
                return Err(ParseError::DuplicateSection);
            }
            tags = Some(t);
        } else {
            return Err(ParseError::UnknownSection);
        }
    }

    let value = match kind {
        "c" => Value::Counter(parse_number(raw_value)?),
        "g" => {
            let v = parse_number(raw_value)?;
            if raw_value.starts_with(['+', '-']) {
                Value::GaugeDelta(v)
            } else {
                Value::Gauge(v)
            }
        }
        "ms" => Value::Timer(parse_number(raw_value)?),
        "h" => Value::Histogram(parse_number(raw_value)?),
        "s" => {
            if raw_value.is_empty() {
                return Err(ParseError::EmptyMember);
            }
            Value::Set(raw_value)
        }
        _ => return Err(ParseError::UnknownType),
    };
    Ok(Metric {
        name,
        value,
        sample_rate: rate.unwrap_or(1.0),
        tags: Tags(tags.unwrap_or_default()),
    })
}

/// Iterate over the metrics of a datagram: lines separated by `\n`, empty lines skipped, bad
/// lines counted (see [`Datagram::bad_lines`]) and skipped while the others are kept.
pub fn parse_datagram(datagram: &[u8]) -> Datagram<'_> {
    Datagram {
        rest: datagram,
        bad_lines: 0,
        last_error: None,
    }
}

/// The iterator returned by [`parse_datagram`].
#[derive(Debug, Clone)]
pub struct Datagram<'a> {
    rest: &'a [u8],
    bad_lines: usize,
    last_error: Option<ParseError>,
}

impl<'a> Datagram<'a> {
    /// Lines refused so far.
    pub fn bad_lines(&self) -> usize {
        self.bad_lines
    }

    /// Why the most recent bad line was refused.
    pub fn last_error(&self) -> Option<ParseError> {
        self.last_error
    }
}

impl<'a> Iterator for Datagram<'a> {
    type Item = Metric<'a>;

    fn next(&mut self) -> Option<Metric<'a>> {
        while !self.rest.is_empty() {
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if line.trim_ascii().is_empty() {
                continue;
            }
            match parse_line(line) {
                Ok(m) => return Some(m),
                Err(e) => {
                    self.bad_lines += 1;
                    self.last_error = Some(e);
                }
            }
        }
        None
    }
}

impl<'a> Tags<'a> {
    /// Tags from DogStatsD text (`env:prod,az:eu-1`).
    pub fn new(raw: &'a str) -> Self {
        Tags(raw)
    }

    /// The text after `#`, as received.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// True when there is no tag (also for `#` or `#,,`).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn iter(self) -> impl Iterator<Item = Tag<'a>> + 'a {
        self.raw_iter().map(Tag::parse)
    }

    /// The non-empty elements, each still `name:value` text.
    pub fn raw_iter(self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split(',').filter(|t| !t.is_empty())
    }
}

impl<'a> Tag<'a> {
    /// Split `name:value` on its first `:`; a tag without `:` gets an empty value. (Sensu
    /// splits on every `:` and keeps only the second piece, so `url:http://x` loses `//x`,
    /// and a tag without `:` repeats the previous tag's name and value; neither is copied.)
    pub fn parse(raw: &'a str) -> Tag<'a> {
        match raw.split_once(':') {
            Some((name, value)) => Tag { name, value },
            None => Tag {
                name: raw,
                value: "",
            },
        }
    }
}

fn parse_number(s: &str) -> Result<f64, ParseError> {
    // Only plain decimal notation: Rust's float parser would also take `inf`, `NaN` and
    // `infinity`, which no StatsD client sends on purpose.
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Err(ParseError::BadValue);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParseError::BadValue),
    }
}

fn parse_rate(s: &str) -> Result<f64, ParseError> {
    match parse_number(s) {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(ParseError::BadSampleRate),
    }
}

#[cfg(test)]
mod tests;
