//! Golden files: `tests/golden/<Type>.json` holds, per type, a JSON array of three cases
//! (the zero value as Sensu writes it, every field set, and every `always` list or map empty
//! rather than nil). Each must decode and re-encode byte for byte (indented, as
//! `serde_json::to_string_pretty` writes, plus a final newline), and decode(encode(x)) == x.
//!
//! The files are checked against the key tables of `shared/docs/sensu-json-fields.md` too,
//! so the golden files cannot drift from Sensu: every key is one Sensu declares, every
//! `always` key is present, and an `omitempty` key only appears with a non-zero value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proto_spec::v2::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn round_trip<T>(name: &str) -> Vec<Value>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let path = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let items: Vec<T> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json does not decode: {e}"));
    assert_eq!(items.len(), 3, "{name}.json: zero, full and empty cases");
    let encoded = serde_json::to_string_pretty(&items).expect("encode") + "\n";
    if encoded != text {
        let line = encoded
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| encoded.lines().count().min(text.lines().count()));
        panic!(
            "{name}.json does not re-encode byte for byte (first difference at line {line}):\n{encoded}"
        );
    }
    let again: Vec<T> = serde_json::from_str(&encoded).expect("decode again");
    assert_eq!(again, items, "{name}: decode(encode(x)) != x");
    serde_json::from_str(&text).expect("golden file is JSON")
}

/// One row of an appendix table: key, `always`, Go type.
type Table = Vec<(String, bool, String)>;

fn appendix() -> BTreeMap<String, Table> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/docs/sensu-json-fields.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the JSON key appendix is missing: looked for {} ({e})",
            path.display()
        )
    });
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("### ") {
            current = rest.split_whitespace().next().map(str::to_string);
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(ty), [_, key, when, go, ..]) = (&current, cells.as_slice()) else {
            continue;
        };
        let (Some(key), Some(go)) = (key.strip_prefix('`'), go.strip_prefix('`')) else {
            continue;
        };
        tables.entry(ty.clone()).or_default().push((
            key.trim_end_matches('`').to_string(),
            *when == "always",
            go.trim_end_matches('`').to_string(),
        ));
    }
    // Embedded structs (Hook's `` HookConfig row) contribute their keys.
    let embedded: Vec<(String, String)> = tables
        .iter()
        .flat_map(|(t, rows)| {
            rows.iter()
                .filter(|r| r.0.is_empty())
                .map(move |r| (t.clone(), r.2.clone()))
        })
        .collect();
    for (t, inner) in embedded {
        let inner_rows = tables[&inner].clone();
        let rows = tables.get_mut(&t).expect("table");
        rows.retain(|r| !r.0.is_empty());
        rows.extend(inner_rows);
    }
    tables
}

/// The appendix type an element of Go type `go` is, if the appendix describes it.
fn element_type<'a>(go: &'a str, tables: &BTreeMap<String, Table>) -> Option<&'a str> {
    let t = go
        .trim_start_matches("map[string]")
        .trim_start_matches("[]")
        .trim_start_matches('*');
    tables.contains_key(t).then_some(t)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn check_keys(
    ty: &str,
    v: &Value,
    path: &str,
    tables: &BTreeMap<String, Table>,
    errors: &mut Vec<String>,
) {
    // HookList has its own single-key encoding (`{"critical": [...]}`).
    if ty == "HookList" {
        return;
    }
    let Some(obj) = v.as_object() else {
        errors.push(format!("{path}: a {ty} is not an object"));
        return;
    };
    let rows = &tables[ty];
    for k in obj.keys() {
        if !rows.iter().any(|r| &r.0 == k) {
            errors.push(format!("{path}.{k}: not a {ty} key"));
        }
    }
    for (key, always, go) in rows {
        let p = format!("{path}.{key}");
        // A non-pointer struct is never omitted, omitempty or not.
        let struct_value = !go.starts_with(['*', '[']) && tables.contains_key(go.as_str());
        match obj.get(key) {
            None if *always || struct_value => errors.push(format!("{p}: always written, missing")),
            None => {}
            Some(val) => {
                if !*always && !struct_value && is_zero(val) {
                    errors.push(format!("{p}: omitempty, but written with {val}"));
                }
                let never_null = matches!(ty, "Check" | "CheckConfig")
                    && matches!(key.as_str(), "handlers" | "subscriptions" | "pipelines");
                if never_null && val.is_null() {
                    errors.push(format!("{p}: Sensu writes [] here, never null"));
                }
                if let Some(inner) = element_type(go, tables) {
                    match val {
                        Value::Array(items) if go.starts_with("[]") => {
                            for (i, item) in items.iter().enumerate() {
                                check_keys(inner, item, &format!("{p}[{i}]"), tables, errors);
                            }
                        }
                        Value::Object(map) if go.starts_with("map[") => {
                            for (k, item) in map {
                                check_keys(inner, item, &format!("{p}.{k}"), tables, errors);
                            }
                        }
                        Value::Null => {}
                        other => check_keys(inner, other, &p, tables, errors),
                    }
                }
            }
        }
    }
}

macro_rules! golden {
    ($($test:ident: $ty:ty => $name:literal, $appendix:expr;)*) => {
        $(
            #[test]
            fn $test() {
                let items = round_trip::<$ty>($name);
                let appendix_type: Option<&str> = $appendix;
                if let Some(t) = appendix_type {
                    let tables = appendix();
                    assert!(tables.contains_key(t), "{t} is not in the appendix");
                    let mut errors = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        check_keys(t, item, &format!("{}[{i}]", $name), &tables, &mut errors);
                    }
                    // The full case sets every key.
                    let full = items[1].as_object().expect("object");
                    for (key, _, _) in &tables[t] {
                        if !full.contains_key(key) {
                            errors.push(format!("{}[1]: full case lacks {key}", $name));
                        }
                    }
                    assert!(errors.is_empty(), "{}", errors.join("\n"));
                }
            }
        )*
    };
}

golden! {
    golden_adhoc_request: AdhocRequest => "AdhocRequest", Some("AdhocRequest");
    golden_api_key: APIKey => "APIKey", Some("APIKey");
    golden_asset: Asset => "Asset", Some("Asset");
    golden_check: Check => "Check", Some("Check");
    golden_check_config: CheckConfig => "CheckConfig", Some("CheckConfig");
    golden_check_request: CheckRequest => "CheckRequest", Some("CheckRequest");
    golden_cluster_role: ClusterRole => "ClusterRole", Some("ClusterRole");
    golden_cluster_role_binding: ClusterRoleBinding => "ClusterRoleBinding", Some("ClusterRoleBinding");
    golden_entity: Entity => "Entity", Some("Entity");
    // core/v3: not in the appendix, which covers core/v2.
    golden_entity_config: EntityConfig => "EntityConfig", None;
    golden_event: Event => "Event", Some("Event");
    golden_event_filter: EventFilter => "EventFilter", Some("EventFilter");
    golden_handler: Handler => "Handler", Some("Handler");
    golden_hook: Hook => "Hook", Some("Hook");
    golden_hook_config: HookConfig => "HookConfig", Some("HookConfig");
    golden_keepalive_record: KeepaliveRecord => "KeepaliveRecord", Some("KeepaliveRecord");
    golden_metrics: Metrics => "Metrics", Some("Metrics");
    golden_mutator: Mutator => "Mutator", Some("Mutator");
    golden_namespace: Namespace => "Namespace", Some("Namespace");
    golden_pipeline: Pipeline => "Pipeline", Some("Pipeline");
    golden_role: Role => "Role", Some("Role");
    golden_role_binding: RoleBinding => "RoleBinding", Some("RoleBinding");
    golden_silenced: Silenced => "Silenced", Some("Silenced");
    golden_tessen_config: TessenConfig => "TessenConfig", Some("TessenConfig");
    golden_tokens: Tokens => "Tokens", Some("Tokens");
    golden_user: User => "User", Some("User");
}

/// Every wrapped resource type has a golden file.
#[test]
fn every_resource_kind_has_a_golden_file() {
    for kind in proto_spec::wrapped::ResourceKind::ALL {
        let path = golden_dir().join(format!("{}.json", kind.type_name()));
        assert!(path.is_file(), "missing golden file {}", path.display());
    }
}

/// `null` and `[]` are different values, and both survive a round trip; so does a missing
/// key, which decodes as the zero value.
#[test]
fn null_and_empty_lists_stay_distinct() {
    let nil: Asset = serde_json::from_str(r#"{"filters": null}"#).unwrap();
    let empty: Asset = serde_json::from_str(r#"{"filters": []}"#).unwrap();
    assert_eq!(nil.filters, None);
    assert_eq!(empty.filters, Some(vec![]));
    assert!(
        serde_json::to_string(&nil)
            .unwrap()
            .contains(r#""filters":null"#)
    );
    assert!(
        serde_json::to_string(&empty)
            .unwrap()
            .contains(r#""filters":[]"#)
    );
    // CheckConfig's handlers are written [] either way, as Sensu does.
    let check: CheckConfig = serde_json::from_str(r#"{"handlers": null}"#).unwrap();
    assert!(
        serde_json::to_string(&check)
            .unwrap()
            .contains(r#""handlers":[]"#)
    );
    // Go decodes null into a zero value, also for metadata strings.
    let meta: proto_spec::ObjectMeta =
        serde_json::from_str(r#"{"name": null, "labels": null}"#).unwrap();
    assert_eq!(meta, proto_spec::ObjectMeta::default());
}
