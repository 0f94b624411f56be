//! Templates for notification text, as Sensu's handlers write them: Go `text/template`
//! against the Go event struct (`{{ .Entity.Name }}/{{ .Check.Name }}: {{ .Check.Output }}`).
//!
//! Rendering is `proto_spec::tokens::render` (the Go subset checks use: field chains,
//! `default`, `index`; no `if`/`range`). The data is a view of the event JSON in which every
//! object also answers to Go's field names (`check.output` as `.Check.Output`, `last_ok` as
//! `.LastOK`) and an object's `metadata` fields are lifted (`.Check.Name`), as Go's embedded
//! `ObjectMeta` makes them. Keys of `labels` and `annotations` are user data and kept as they
//! are. A field that does not exist is an error (`unmatched token`), as for checks.

use serde_json::{Map, Value};

use crate::Result;

/// Words Go spells in capitals in field names (`ID`, `LastOK`, `URL`, `OS`).
const INITIALISMS: &[&str] = &["id", "ok", "url", "uri", "os", "ip", "api", "http", "uuid"];

/// Render `template` against `event`.
pub fn render(template: &str, event: &Value, what: &str) -> Result<String> {
    Ok(proto_spec::tokens::render(template, &go_view(event), what)?)
}

/// The event with Go field-name aliases and lifted metadata (see the module docs).
pub fn go_view(event: &Value) -> Value {
    view(event, false)
}

fn view(value: &Value, user_map: bool) -> Value {
    match value {
        Value::Object(map) if user_map => Value::Object(map.clone()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = view(v, matches!(k.as_str(), "labels" | "annotations"));
                out.insert(go_name(k), v.clone());
                out.insert(k.clone(), v);
            }
            if let Some(Value::Object(meta)) = map.get("metadata") {
                for (k, v) in meta {
                    let v = view(v, matches!(k.as_str(), "labels" | "annotations"));
                    out.entry(go_name(k)).or_insert_with(|| v.clone());
                    out.entry(k.clone()).or_insert(v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| view(v, false)).collect()),
        other => other.clone(),
    }
}

/// `last_ok` → `LastOK`, `entity_class` → `EntityClass`.
fn go_name(json_name: &str) -> String {
    json_name
        .split('_')
        .map(|word| {
            if INITIALISMS.contains(&word) {
                word.to_ascii_uppercase()
            } else {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "entity": {"metadata": {"name": "web-1", "labels": {"team_name": "ops"}},
                       "system": {"os": "linux"}},
            "check": {"metadata": {"name": "http"}, "output": "HTTP CRITICAL", "status": 2,
                      "last_ok": 1700000000, "state": "failing"},
        })
    }

    #[test]
    fn go_and_json_names_both_render() {
        let e = event();
        let got = render(
            "{{ .Entity.Name }}/{{ .Check.Name }}: {{ .Check.Output }} ({{ .check.status }}, {{ .Check.State }})",
            &e,
            "t",
        )
        .unwrap();
        assert_eq!(got, "web-1/http: HTTP CRITICAL (2, failing)");
        assert_eq!(
            render("{{ .Check.LastOK }}", &e, "t").unwrap(),
            "1700000000"
        );
        assert_eq!(render("{{ .Entity.System.OS }}", &e, "t").unwrap(), "linux");
        // Label keys are user data: not renamed.
        assert_eq!(
            render("{{ .Entity.Labels.team_name }}", &e, "t").unwrap(),
            "ops"
        );
        assert!(render("{{ .Entity.Labels.TeamName }}", &e, "t").is_err());
    }

    #[test]
    fn missing_fields_and_bad_syntax_are_errors() {
        let e = event();
        let err = render("{{ .Check.Nope }}", &e, "summary").unwrap_err();
        assert!(err.to_string().contains("summary"), "{err}");
        assert!(render("{{ .Check.Output", &e, "t").is_err());
        assert_eq!(
            render("{{ .Check.Nope | default \"n/a\" }}", &e, "t").unwrap(),
            "n/a"
        );
    }
}
