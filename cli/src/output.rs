//! `--format tabular|json|wrapped-json|yaml`.

use std::io::{self, Write};

use proto_spec::wrapped::{ResourceKind, Wrapped};
use serde_json::Value;

use crate::Error;
use crate::resources;

/// Tables are cut to fit a terminal of this width.
pub const TABLE_WIDTH: usize = 80;
const MIN_COLUMN: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Tabular,
    Json,
    WrappedJson,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, Error> {
        match s {
            "tabular" | "" => Ok(Format::Tabular),
            "json" => Ok(Format::Json),
            "wrapped-json" => Ok(Format::WrappedJson),
            "yaml" => Ok(Format::Yaml),
            other => Err(Error::Usage(format!(
                "unknown format {other:?}: use tabular, json, wrapped-json or yaml"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Tabular => "tabular",
            Format::Json => "json",
            Format::WrappedJson => "wrapped-json",
            Format::Yaml => "yaml",
        }
    }
}

/// Typed and wrapped, so the YAML and wrapped JSON are exactly what `create -f` reads.
pub fn wrap(kind: ResourceKind, v: &Value) -> Result<Wrapped, Error> {
    let resource = kind.decode_spec(v.clone()).map_err(|e| {
        Error::Protocol(format!(
            "the API answered a {kind} picketctl cannot read: {e}"
        ))
    })?;
    Ok(Wrapped::new(resource))
}

/// Write the items in wrapped YAML (documents separated by `---`) or wrapped JSON.
pub fn write_wrapped(out: &mut dyn Write, format: Format, items: &[Wrapped]) -> io::Result<()> {
    for (i, w) in items.iter().enumerate() {
        match format {
            Format::Yaml => {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(w.to_yaml().as_bytes())?;
            }
            _ => writeln!(out, "{}", w.to_json_pretty())?,
        }
    }
    Ok(())
}

/// A list in the chosen format. `namespace_column` adds the namespace in tables
/// (`--all-namespaces`).
pub fn write_list(
    out: &mut dyn Write,
    format: Format,
    kind: ResourceKind,
    items: &[Value],
    namespace_column: bool,
    colour: bool,
) -> Result<(), Error> {
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(items).expect("JSON encodes");
            writeln!(out, "{text}")?;
        }
        Format::WrappedJson | Format::Yaml => {
            let wrapped = items
                .iter()
                .map(|v| wrap(kind, v))
                .collect::<Result<Vec<_>, _>>()?;
            write_wrapped(out, format, &wrapped)?;
        }
        Format::Tabular => {
            let mut headers: Vec<&str> = resources::columns(kind).to_vec();
            let namespace_column = namespace_column && kind.is_namespaced();
            if namespace_column {
                headers.insert(0, "Namespace");
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|v| {
                    let mut r = resources::row(kind, v);
                    if namespace_column {
                        r.insert(0, resources::namespace_of(kind, v));
                    }
                    r
                })
                .collect();
            write_table(out, &headers, &rows, colour)?;
        }
    }
    Ok(())
}

/// One object in the chosen format; `tabular` prints field/value lines.
pub fn write_one(
    out: &mut dyn Write,
    format: Format,
    kind: ResourceKind,
    v: &Value,
    colour: bool,
) -> Result<(), Error> {
    match format {
        Format::Json => {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(v).expect("JSON encodes")
            )?;
        }
        Format::WrappedJson | Format::Yaml => write_wrapped(out, format, &[wrap(kind, v)?])?,
        Format::Tabular => {
            let headers = resources::columns(kind);
            let values = resources::row(kind, v);
            let width = headers.iter().map(|h| h.len()).max().unwrap_or(0);
            for (h, value) in headers.iter().zip(values) {
                let label = format!("{h}:{}", " ".repeat(width - h.len()));
                if colour {
                    writeln!(out, "\x1b[1m{label}\x1b[0m  {value}")?;
                } else {
                    writeln!(out, "{label}  {value}")?;
                }
            }
        }
    }
    Ok(())
}

/// Aligned columns within [`TABLE_WIDTH`]: the widest column gives way first, cut cells end
/// with `…`. Cells are single-line.
pub fn write_table(
    out: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
    colour: bool,
) -> io::Result<()> {
    let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let gaps = 2 * headers.len().saturating_sub(1) + 1;
    while widths.iter().sum::<usize>() + gaps > TABLE_WIDTH {
        let (i, w) = widths
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|&(_, w)| w)
            .unwrap_or((0, 0));
        if w <= MIN_COLUMN {
            break;
        }
        widths[i] = w - 1;
    }
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let cut = fit(c, *w);
            s.push_str(&cut);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w - cut.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let head = line(&head);
    let rule: String = format!(
        " {}",
        widths
            .iter()
            .map(|w| "─".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    if colour {
        writeln!(out, "\x1b[1m{head}\x1b[0m")?;
    } else {
        writeln!(out, "{head}")?;
    }
    writeln!(out, "{rule}")?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_eighty_columns() {
        let long = "x".repeat(200);
        let rows = vec![vec!["a".to_string(), long.clone(), "c".to_string()]];
        let mut out = Vec::new();
        write_table(&mut out, &["One", "Two", "Three"], &rows, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        for l in text.lines() {
            assert!(l.chars().count() <= TABLE_WIDTH, "{l:?} is too wide");
        }
        assert!(text.contains('…'), "{text}");
    }

    #[test]
    fn unix_times_format_as_utc() {
        assert_eq!(resources::format_unix(0), "1970-01-01 00:00:00");
        assert_eq!(resources::format_unix(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(resources::format_unix(951_782_400), "2000-02-29 00:00:00");
    }
}
