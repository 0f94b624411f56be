//! Nagios plugin performance data (`nagios_perfdata`).
//!
//! A plugin prints `TEXT | PERFDATA` on its first line and may go on with long text; the first
//! `|` in the long text starts more performance data, which runs to the end of the output
//! (Nagios Plugin Development Guidelines, "Plugin Output for Nagios"):
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
//! / 15272 MB (77%);
//! /boot 68 MB (69%); | /boot=68MB;88;93;0;98
//! /home=69357MB;253404;253409;0;253414
//! ```
//!
//! Each item is `'label'=value[UOM];[warn];[crit];[min];[max]`, items separated by spaces. The
//! label is quoted with single quotes when it holds spaces or `=` (a quote inside is written
//! `''`). The point is named after the label with each whitespace character replaced by `_`
//! (as Sensu does, so `'disk usage'` becomes `disk_usage`), its value is the number without
//! its unit of measure, and its timestamp is the check's `executed` time. Warn, crit, min and
//! max are ranges for humans and graphs, not measurements: they make no points. No tags.
//!
//! A value of `U` ("could not be determined") is valid perfdata without a number: it yields
//! no point and is not reported as skipped. An item that does not parse (no `=`, an empty
//! label, a value that is not a number followed by a unit) is skipped with its line number.
//!
//! # Deviations from Sensu Go 6.9
//! * Sensu takes metrics only when the whole output holds **exactly one** `|`, and then treats
//!   everything after it as perfdata. Picket follows the plugin guidelines above: the first
//!   line's `|`, then the first `|` of the long text and every line after it, so a plugin with
//!   long output and perfdata on both parts is read completely.
//! * Sensu splits perfdata on single spaces, so quoted labels with spaces (`'disk usage'=80%`)
//!   break apart and two spaces make an empty item. Picket honours quotes (and `''` inside
//!   them) and any run of spaces or tabs.
//! * Sensu builds the value from every character in `[-0-9.]`, so `12,5` reads as 125 and
//!   `1.2.3` fails only later. Picket reads a decimal number (with an optional exponent)
//!   followed by a unit without digits, and skips anything else.

use crate::{Parsed, Point, is_decimal, numbered_lines};

/// Parse the performance data of a plugin's output; every point gets timestamp `executed`.
pub fn parse(output: &str, executed: i64) -> Parsed {
    let mut parsed = Parsed::default();
    for (line, segment) in perfdata_segments(output) {
        for item in items(segment) {
            match parse_item(item) {
                Ok(Some((name, value))) => parsed.points.push(Point {
                    name,
                    value,
                    timestamp: executed,
                    tags: Vec::new(),
                }),
                Ok(None) => {}
                Err(reason) => parsed.skip(line, format!("{reason}: {item:?}")),
            }
        }
    }
    parsed
}

/// The parts of `output` that hold performance data, with their line numbers.
fn perfdata_segments(output: &str) -> Vec<(usize, &str)> {
    let mut segments = Vec::new();
    let mut lines = numbered_lines(output);
    if let Some((n, first)) = lines.next()
        && let Some((_, perf)) = first.split_once('|')
    {
        segments.push((n, perf));
    }
    // In the long text, perfdata starts after the first `|` and takes every later line.
    let mut in_perfdata = false;
    for (n, line) in lines {
        if in_perfdata {
            segments.push((n, line));
        } else if let Some((_, perf)) = line.split_once('|') {
            in_perfdata = true;
            segments.push((n, perf));
        }
    }
    segments
}

/// The items of a segment: runs of non-blanks, where a leading `'...'` label may hold blanks.
fn items(segment: &str) -> impl Iterator<Item = &str> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            return None;
        }
        let start = i;
        if bytes[i] == b'\'' {
            i = quoted_end(bytes, i).unwrap_or(bytes.len());
        }
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        // Blanks and quotes are ASCII, so `start` and `i` are on character boundaries.
        Some(&segment[start..i])
    })
}

/// Index just past the quote closing the label that opens at `open`; `''` is a quote inside.
fn quoted_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// `(point name, value)`, `None` for a `U` value, or why the item is not perfdata.
fn parse_item(item: &str) -> Result<Option<(String, f64)>, &'static str> {
    let (label, rest) = if item.starts_with('\'') {
        let end = quoted_end(item.as_bytes(), 0).ok_or("unterminated quoted label")?;
        let rest = item[end..]
            .strip_prefix('=')
            .ok_or("no '=' after the quoted label")?;
        (item[1..end - 1].replace("''", "'"), rest)
    } else {
        let (label, rest) = item
            .split_once('=')
            .ok_or("no '=' between label and value")?;
        (label.to_string(), rest)
    };
    if label.is_empty() {
        return Err("empty label");
    }
    let value_uom = rest.split(';').next().unwrap_or_default();
    if value_uom.is_empty() {
        return Err("no value");
    }
    if value_uom == "U" {
        return Ok(None);
    }
    let (number, uom) = value_uom.split_at(number_len(value_uom));
    if !is_decimal(number)
        || uom.starts_with(['.', '+', '-'])
        || uom.bytes().any(|b| b.is_ascii_digit())
    {
        return Err("value is not a number followed by a unit");
    }
    let value: f64 = number
        .parse()
        .map_err(|_| "value is not a number followed by a unit")?;
    // `1e999` parses as infinity: no plugin measured that (found by fuzzing).
    if !value.is_finite() {
        return Err("value is out of range");
    }
    let name = label
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    Ok(Some((name, value)))
}

/// Length of the decimal number at the start of `s` (sign, digits, one point, exponent).
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut point = false;
    while i < b.len() && (b[i].is_ascii_digit() || (b[i] == b'.' && !point)) {
        point |= b[i] == b'.';
        i += 1;
    }
    // An exponent only when digits follow: in `5e` the `e` would be the unit.
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(output: &str) -> Vec<(String, f64)> {
        let parsed = parse(output, 7);
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert!(
            parsed
                .points
                .iter()
                .all(|p| p.timestamp == 7 && p.tags.is_empty())
        );
        parsed
            .points
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()
    }

    fn pairs(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
        expected.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn first_line_perfdata_with_units_and_ranges() {
        assert_eq!(
            points("LOAD OK|load1=0.5;5;10;0; load5=1.25;4;8;0 size=190B;;;0; time=0.01s"),
            pairs(&[
                ("load1", 0.5),
                ("load5", 1.25),
                ("size", 190.0),
                ("time", 0.01)
            ])
        );
    }

    #[test]
    fn quoted_labels_keep_spaces_as_underscores_and_doubled_quotes() {
        assert_eq!(
            points("OK | 'disk usage'=80%;90;95 'it''s'=1 'a=b'=2"),
            pairs(&[("disk_usage", 80.0), ("it's", 1.0), ("a=b", 2.0)])
        );
    }

    #[test]
    fn long_text_perfdata_starts_at_its_first_pipe_and_runs_to_the_end() {
        let out = "DISK OK | /=2643MB;5948\n/ 15272 MB (77%);\n/boot 68 MB; | /boot=68MB\n/home=69357MB;1\n\tswap=0B";
        assert_eq!(
            points(out),
            pairs(&[
                ("/", 2643.0),
                ("/boot", 68.0),
                ("/home", 69357.0),
                ("swap", 0.0)
            ])
        );
    }

    #[test]
    fn no_pipe_means_no_perfdata() {
        assert_eq!(parse("OK: all good\nmore text", 0), Parsed::default());
    }

    #[test]
    fn undetermined_values_are_neither_points_nor_errors() {
        assert_eq!(points("X | a=U;1;2 b=3"), pairs(&[("b", 3.0)]));
    }

    #[test]
    fn malformed_items_are_skipped_with_their_line() {
        let parsed = parse(
            "X | novalue a= =3 b=1.2.3 c=12,5 d=4 'open=1 x=2\nmore | e=x f=-1e3ms g=5.e001649",
            0,
        );
        let got: Vec<_> = parsed
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.value))
            .collect();
        assert_eq!(got, [("d", 4.0), ("f", -1000.0)]);
        let lines: Vec<_> = parsed.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 1, 1, 1, 1, 1, 2, 2], "{:?}", parsed.skipped);
        assert_eq!(
            parsed.skipped[7].reason,
            "value is out of range: \"g=5.e001649\""
        );
        assert_eq!(
            parsed.skipped[0].reason,
            "no '=' between label and value: \"novalue\""
        );
        assert_eq!(
            parsed.skipped[5].reason,
            "unterminated quoted label: \"'open=1 x=2\""
        );
    }

    #[test]
    fn number_prefixes() {
        for (s, n) in [
            ("80%", 2),
            ("5e", 1),
            ("5e3s", 3),
            ("-0.5ms", 4),
            ("1.2.3", 3),
            ("%", 0),
        ] {
            assert_eq!(number_len(s), n, "{s}");
        }
    }
}
