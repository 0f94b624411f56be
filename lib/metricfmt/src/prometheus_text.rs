//! Prometheus text exposition format, version 0.0.4 (`prometheus_text`).
//!
//! ```text
//! # HELP http_requests_total The total number of HTTP requests.
//! # TYPE http_requests_total counter
//! http_requests_total{method="post",code="200"} 1027 1395066363000
//! ```
//!
//! Every sample line becomes one point named after the sample (`x_bucket`, `x_sum` and
//! `x_count` for the parts of a histogram `x`), valued as written, timestamped from its
//! optional trailing timestamp (milliseconds, rounded down to seconds) or `now`. Its tags are
//! its labels in the order written (a histogram's `le` and a summary's `quantile` included),
//! then `prom_type` (the family's type in lower case: `counter`, `gauge`, `histogram`,
//! `summary` or `untyped`) and, when the family has a non-empty help text, `prom_help`.
//! Samples whose value is NaN make no point (Sensu drops them too).
//!
//! The grammar, as the format defines it:
//! * tokens are separated by spaces or tabs; blank lines are ignored;
//! * `# HELP <name> <text>` (in the text `\\` is a backslash and `\n` a newline) and
//!   `# TYPE <name> <counter|gauge|histogram|summary|untyped>` describe the family `<name>`;
//!   any other line starting with `#` is a comment;
//! * a sample is `name[{label="value",...}] value [timestamp]`: names match
//!   `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*` (`__name__` is
//!   reserved), label values are double-quoted with `\\`, `\"` and `\n` escapes, a trailing
//!   comma in the label set is allowed; the value is a float or `NaN`, `+Inf`, `-Inf`; the
//!   timestamp an integer;
//! * names that do not fit the bare syntax may be quoted inside the braces, as Prometheus 3
//!   writes them: `{"my.metric", "my.label"="v"} 1`, and in HELP and TYPE lines;
//! * a sample `x_bucket` (with an `le` label), `x_sum` or `x_count` belongs to the histogram
//!   `x`; `x_sum`, `x_count` and `x` (with a `quantile` label) to the summary `x`; a family's
//!   own name is looked up first, so a separately described `x_count` stays its own family.
//!
//! Malformed lines are skipped with a reason and the rest of the text still counts: a sample
//! that does not lex, a duplicate label, a histogram bucket without a numeric `le`, a summary
//! quantile without a numeric `quantile`, a bare sample of a histogram family, an invalid
//! HELP or TYPE line, and a second HELP or TYPE line for the same family.
//!
//! # Deviations from Sensu Go 6.9
//! Sensu runs the Prometheus Go client's parser (`expfmt.TextParser`) and then
//! `expfmt.ExtractSamples`. Picket parses the same grammar itself, and:
//! * the client's parser gives up on the **whole** text at the first error, so one bad line
//!   costs every point; Picket skips only that line;
//! * HELP and TYPE apply to the whole family wherever they appear, instead of being an error
//!   after the family's first sample; samples of one family need not be consecutive;
//! * points keep the order of the text (Sensu's come in Go map order, which varies);
//! * `ExtractSamples` adds a `le="+Inf"` bucket to a histogram that lacks one and rewrites
//!   `le` and `quantile` values in Go's float format (`0.50` becomes `0.5`); Picket reports
//!   what the text says and adds nothing;
//! * the OpenMetrics type `unknown` is read as `untyped` instead of failing the text, and
//!   quoted (UTF-8) names are understood;
//! * an unknown escape in HELP text (`\t`) is kept as written instead of failing the text.

use std::collections::HashMap;

use crate::{Parsed, Point, Skipped, numbered_lines};

const MILLIS_PER_SECOND: i64 = 1000;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Type {
    fn from_word(word: &str) -> Option<Type> {
        // The Go client matches types case-insensitively.
        Some(match word.to_ascii_lowercase().as_str() {
            "counter" => Type::Counter,
            "gauge" => Type::Gauge,
            "histogram" => Type::Histogram,
            "summary" => Type::Summary,
            "untyped" | "unknown" => Type::Untyped,
            _ => return None,
        })
    }

    fn tag(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
            Type::Untyped => "untyped",
        }
    }
}

/// What HELP and TYPE lines said about a family.
#[derive(Debug, Default)]
struct Family {
    type_: Option<Type>,
    help: Option<String>,
}

/// Parse the text exposition format; samples without a timestamp get `now` (Unix seconds).
pub fn parse(output: &str, now: i64) -> Parsed {
    let mut parsed = Parsed::default();
    // HELP and TYPE describe the whole family, so they are read before any sample.
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut samples = Vec::new();
    for (line, text) in numbered_lines(output) {
        let text = text.trim_matches([' ', '\t']);
        if text.is_empty() {
            continue;
        }
        if let Some(comment) = text.strip_prefix('#') {
            if let Err(reason) = metadata(comment, &mut families) {
                parsed.skip(line, reason);
            }
        } else {
            samples.push((line, text));
        }
    }
    for (line, text) in samples {
        match sample(text, &families, now) {
            Ok(Some(point)) => parsed.points.push(point),
            Ok(None) => {}
            Err(reason) => parsed.skip(line, reason),
        }
    }
    // Metadata problems were found first; report everything in line order.
    parsed.skipped.sort_by_key(|s: &Skipped| s.line);
    parsed
}

/// Record a HELP or TYPE comment (`comment` is the text after `#`); other comments are
/// ignored.
fn metadata(comment: &str, families: &mut HashMap<String, Family>) -> Result<(), String> {
    let mut c = Cursor::new(comment);
    c.blanks();
    let keyword = c.word();
    let is_help = match keyword {
        "HELP" => true,
        "TYPE" => false,
        _ => return Ok(()),
    };
    if !c.blanks() {
        // `# HELP` alone, or `# HELPER`.
        return if c.at_end() {
            Err(format!("{keyword} without a metric name"))
        } else {
            Ok(())
        };
    }
    let name = if c.peek() == Some(b'"') {
        Some(c.quoted()?)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{keyword} names no valid metric"))?
    } else {
        c.metric_name()
            .ok_or_else(|| format!("{keyword} names no valid metric"))?
            .to_string()
    };
    if !c.at_end() && !c.blanks() {
        return Err(format!("{keyword} names no valid metric"));
    }
    let family = families.entry(name).or_default();
    if is_help {
        if family.help.is_some() {
            return Err("second HELP line for the same metric family".into());
        }
        family.help = Some(unescape_help(c.rest()));
    } else {
        let word = c.word();
        let type_ = Type::from_word(word).ok_or_else(|| format!("unknown metric type {word:?}"))?;
        c.blanks();
        if !c.at_end() {
            return Err(format!("unexpected text after the type: {:?}", c.rest()));
        }
        if family.type_.is_some() {
            return Err("second TYPE line for the same metric family".into());
        }
        family.type_ = Some(type_);
    }
    Ok(())
}

/// HELP text: `\\` and `\n` are escapes; any other backslash is kept as written.
fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// One sample line: its point, `None` for a NaN value, or why it is malformed.
fn sample(
    text: &str,
    families: &HashMap<String, Family>,
    now: i64,
) -> Result<Option<Point>, String> {
    let mut c = Cursor::new(text);
    let mut name = c.metric_name().map(str::to_string);
    if name.is_none() && c.peek() != Some(b'{') {
        return Err("a sample must start with a metric name".into());
    }
    c.blanks();
    let mut labels: Vec<(String, String)> = Vec::new();
    if c.eat(b'{') {
        label_set(&mut c, &mut name, &mut labels)?;
    } else if !c.at_end() && !c.before_was_blank() {
        return Err("expected a blank after the metric name".into());
    }
    let name = name.ok_or("the sample has no metric name")?;
    c.blanks();
    let raw_value = c.word();
    if raw_value.is_empty() {
        return Err(format!("sample {name:?} has no value"));
    }
    let value: f64 = raw_value
        .parse()
        .map_err(|_| format!("value {raw_value:?} is not a number"))?;
    let timestamp = if c.blanks() && !c.at_end() {
        let raw = c.word();
        let millis: i64 = raw
            .parse()
            .map_err(|_| format!("timestamp {raw:?} is not an integer (milliseconds)"))?;
        c.blanks();
        millis.div_euclid(MILLIS_PER_SECOND)
    } else {
        now
    };
    if !c.at_end() {
        return Err(format!("unexpected text {:?}", c.rest()));
    }

    let (type_, help) = family_of(&name, &labels, families)?;
    if value.is_nan() {
        return Ok(None);
    }
    let mut tags = labels;
    tags.push(("prom_type".into(), type_.tag().into()));
    if let Some(help) = help.filter(|h| !h.is_empty()) {
        tags.push(("prom_help".into(), help.into()));
    }
    Ok(Some(Point {
        name,
        value,
        timestamp,
        tags,
    }))
}

/// The label set after `{`, through `}`. A quoted string without `=` is the metric name,
/// allowed once, first, and only when the name was not written before the braces.
fn label_set(
    c: &mut Cursor<'_>,
    name: &mut Option<String>,
    labels: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let mut first = true;
    loop {
        c.blanks();
        if c.eat(b'}') {
            return Ok(());
        }
        let (label, quoted) = if c.peek() == Some(b'"') {
            let label = c.quoted()?;
            // Quoting lifts the character rules, not the need for a name (found by fuzzing).
            if label.is_empty() {
                return Err("empty quoted name".into());
            }
            (label, true)
        } else {
            let label = c.label_name().ok_or_else(|| match c.peek() {
                Some(b) if b.is_ascii() => {
                    format!("expected a label name, found {:?}", char::from(b))
                }
                Some(_) => "expected a label name".to_string(),
                None => "unterminated label set".to_string(),
            })?;
            (label.to_string(), false)
        };
        c.blanks();
        if c.eat(b'=') {
            c.blanks();
            if c.peek() != Some(b'"') {
                return Err(format!("label {label:?} has no quoted value"));
            }
            let value = c.quoted()?;
            if label == "__name__" {
                return Err("label name \"__name__\" is reserved".into());
            }
            if labels.iter().any(|(l, _)| *l == label) {
                return Err(format!("duplicate label {label:?}"));
            }
            labels.push((label, value));
        } else if quoted && first && name.is_none() {
            *name = Some(label);
        } else {
            return Err(format!("label {label:?} has no '='"));
        }
        first = false;
        c.blanks();
        if c.eat(b'}') {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err("expected ',' or '}' in the label set".into());
        }
    }
}

/// The type and help of the family a sample belongs to, checking the labels its part needs.
fn family_of<'f>(
    name: &str,
    labels: &[(String, String)],
    families: &'f HashMap<String, Family>,
) -> Result<(Type, Option<&'f str>), String> {
    let label_is_number = |wanted: &str| {
        labels
            .iter()
            .find(|(l, _)| l == wanted)
            .is_some_and(|(_, v)| v.parse::<f64>().is_ok())
    };
    if let Some(family) = families.get(name) {
        let type_ = family.type_.unwrap_or(Type::Untyped);
        match type_ {
            Type::Histogram => {
                return Err(format!(
                    "histogram {name:?} has samples {name}_bucket, {name}_sum and {name}_count only"
                ));
            }
            Type::Summary if !label_is_number("quantile") => {
                return Err(format!(
                    "summary sample {name:?} needs a numeric quantile label"
                ));
            }
            _ => return Ok((type_, family.help.as_deref())),
        }
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        let Some(family) = families.get(base) else {
            continue;
        };
        match (family.type_, suffix) {
            (Some(Type::Histogram), "_bucket") if !label_is_number("le") => {
                return Err(format!(
                    "histogram bucket {name:?} needs a numeric le label"
                ));
            }
            (Some(Type::Histogram), _) | (Some(Type::Summary), "_sum" | "_count") => {
                return Ok((
                    family.type_.unwrap_or(Type::Untyped),
                    family.help.as_deref(),
                ));
            }
            _ => {}
        }
    }
    Ok((Type::Untyped, None))
}

/// A position in one line. It only stops at ASCII bytes, so slices stay on character
/// boundaries.
struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.i..]
    }

    fn before_was_blank(&self) -> bool {
        self.i > 0 && matches!(self.text.as_bytes()[self.i - 1], b' ' | b'\t')
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

    /// Everything up to the next blank.
    fn word(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|b| b != b' ' && b != b'\t') {
            self.i += 1;
        }
        &self.text[start..self.i]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, or `None` (consuming nothing).
    fn metric_name(&mut self) -> Option<&'a str> {
        self.ident(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, or `None` (consuming nothing).
    fn label_name(&mut self) -> Option<&'a str> {
        self.ident(|b| b.is_ascii_alphabetic() || b == b'_')
    }

    fn ident(&mut self, first: impl Fn(u8) -> bool) -> Option<&'a str> {
        let start = self.i;
        if !self.peek().is_some_and(&first) {
            return None;
        }
        while self.peek().is_some_and(|b| first(b) || b.is_ascii_digit()) {
            self.i += 1;
        }
        Some(&self.text[start..self.i])
    }

    /// A double-quoted string at the cursor with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = String::new();
        let mut from = self.i;
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    out.push_str(&self.text[from..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[from..self.i]);
                    let escaped = match self.text.as_bytes().get(self.i + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        _ => return Err("invalid escape in a quoted string".into()),
                    };
                    out.push(escaped);
                    self.i += 2;
                    from = self.i;
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(text: &str) -> Point {
        let parsed = parse(text, 100);
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(parsed.points.len(), 1, "{parsed:?}");
        parsed.points.into_iter().next().unwrap()
    }

    #[test]
    fn counter_with_help_labels_and_timestamp() {
        let p = one(
            "# HELP http_requests_total The total \\\\ number\\nof requests.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\"} 1027 1395066363999\n",
        );
        assert_eq!(p.name, "http_requests_total");
        assert_eq!(p.value, 1027.0);
        assert_eq!(p.timestamp, 1_395_066_363);
        assert_eq!(
            p.tags,
            tags(&[
                ("method", "post"),
                ("code", "200"),
                ("prom_type", "counter"),
                ("prom_help", "The total \\ number\nof requests."),
            ])
        );
    }

    #[test]
    fn untyped_sample_without_labels_gets_now() {
        let p = one("metric_without_timestamp_and_labels 12.47");
        assert_eq!((p.timestamp, p.value), (100, 12.47));
        assert_eq!(p.tags, tags(&[("prom_type", "untyped")]));
    }

    #[test]
    fn label_value_escapes_and_odd_spacing() {
        let p = one(
            "msdos_file_access_time_seconds { path = \"C:\\\\DIR\\\\FILE.TXT\" , error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\", }\t1.458255915e9  -1",
        );
        assert_eq!(p.timestamp, -1);
        assert_eq!(p.value, 1_458_255_915.0);
        assert_eq!(
            p.tags,
            tags(&[
                ("path", "C:\\DIR\\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\""),
                ("prom_type", "untyped"),
            ])
        );
    }

    #[test]
    fn special_values() {
        let parsed = parse("a +Inf\nb -Inf\nc NaN\nd Nan\ne 1e-3", 0);
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let values: Vec<_> = parsed
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.value))
            .collect();
        assert_eq!(
            values,
            [("a", f64::INFINITY), ("b", f64::NEG_INFINITY), ("e", 0.001)]
        );
    }

    #[test]
    fn histogram_and_summary_parts_belong_to_their_family() {
        let text = "\
# TYPE h histogram
# HELP h Latency.
h_bucket{le=\"0.5\"} 3
h_bucket{le=\"+Inf\"} 5
h_sum 2.5
h_count 5
# TYPE s summary
s{quantile=\"0.99\"} 1
s_sum 4
s_count 2
# HELP s_count Separately described.
";
        let parsed = parse(text, 0);
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let got: Vec<_> = parsed
            .points
            .iter()
            .map(|p| {
                let t: Vec<_> = p.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {}", p.name, t.join(","))
            })
            .collect();
        assert_eq!(
            got,
            [
                "h_bucket le=0.5,prom_type=histogram,prom_help=Latency.",
                "h_bucket le=+Inf,prom_type=histogram,prom_help=Latency.",
                "h_sum prom_type=histogram,prom_help=Latency.",
                "h_count prom_type=histogram,prom_help=Latency.",
                "s quantile=0.99,prom_type=summary",
                "s_sum prom_type=summary",
                "s_count prom_type=untyped,prom_help=Separately described.",
            ]
        );
    }

    #[test]
    fn quoted_utf8_names() {
        let p = one("# TYPE \"my.metric\" gauge\n{\"my.metric\", \"my.label\"=\"x\"} 1");
        assert_eq!(p.name, "my.metric");
        assert_eq!(p.tags, tags(&[("my.label", "x"), ("prom_type", "gauge")]));
    }

    #[test]
    fn malformed_lines_are_skipped_in_line_order() {
        let text = "\
# TYPE h histogram
h 1
h_bucket 1
h_bucket{le=\"x\"} 1
# TYPE s summary
s 1
# TYPE g gauge
# TYPE g counter
# TYPE q bogus
# HELP
a{b=\"c\\t\"} 1
a{b=\"c\"
a{b=\"1\",b=\"2\"} 1
a{__name__=\"x\"} 1
a{b} 1
a 1 2 3
a 1 x
a x
a
{} 1
{\"n\", \"m\"} 1
b{\"n\"} 1
ok 1
# just a comment
# not HELP metadata
";
        let parsed = parse(text, 0);
        assert_eq!(parsed.points.len(), 1, "{parsed:?}");
        assert_eq!(parsed.points[0].name, "ok");
        let lines: Vec<_> = parsed.skipped.iter().map(|s| s.line).collect();
        assert_eq!(
            lines,
            [
                2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22
            ],
            "{:#?}",
            parsed.skipped
        );
    }
}
