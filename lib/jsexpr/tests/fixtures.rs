//! Every JavaScript expression in the Sensu 6.14 documentation examples must compile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jsexpr::{Engine, Limits, check_syntax};
use serde::Deserialize;
use serde_json::Value;

/// NOTES.md: an unquoted expression containing "): 15" parses as a YAML mapping.
const BROKEN_YAML: &str = "EventFilter/filters-keepalive_timeouts.yaml";

fn wrapped_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/sensu-docs-6.14/wrapped");
    assert!(
        dir.is_dir(),
        "fixture directory {} is missing; it is expected beside the repository as shared/",
        dir.display()
    );
    dir
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))]
        }
        Some("yaml" | "yml") => serde_norway::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .filter(|doc| !doc.is_null())
            .collect(),
        _ => Vec::new(),
    }
}

/// The expression lists of one wrapped resource, with a label saying where each came from.
fn expression_lists(doc: &Value) -> Vec<(&'static str, &Value)> {
    let spec = &doc["spec"];
    match doc["type"].as_str() {
        Some("EventFilter") => vec![("expressions", &spec["expressions"])],
        Some("CheckConfig") => vec![(
            "entity_attributes",
            &spec["proxy_requests"]["entity_attributes"],
        )],
        Some("Asset") => {
            let mut lists = vec![("filters", &spec["filters"])];
            if let Some(builds) = spec["builds"].as_array() {
                lists.extend(builds.iter().map(|b| ("builds.filters", &b["filters"])));
            }
            lists
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_documented_expression_compiles() {
    let root = wrapped_dir();
    let mut paths = Vec::new();
    files(&root, &mut paths);
    let mut engine = Engine::new(Limits::default()).unwrap();
    let mut compiled = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for doc in documents(path) {
            for (kind, list) in expression_lists(&doc) {
                for item in list.as_array().into_iter().flatten() {
                    let Some(source) = item.as_str() else {
                        skipped.insert(name.clone());
                        continue;
                    };
                    kinds.insert(kind);
                    if let Err(err) = engine.compile(source).and_then(|_| check_syntax(source)) {
                        failures.push(format!("{name} ({kind}): {err}"));
                    }
                    compiled.insert(source.to_owned());
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "expressions that do not compile:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        skipped,
        BTreeSet::from([BROKEN_YAML.to_owned()]),
        "only the expression NOTES.md calls broken YAML may be a non-string"
    );
    assert_eq!(
        kinds,
        BTreeSet::from([
            "builds.filters",
            "entity_attributes",
            "expressions",
            "filters"
        ]),
        "every kind of expression list was found"
    );
    assert!(
        compiled.len() >= 30,
        "found only {} distinct expressions; is the fixture tree complete?",
        compiled.len()
    );
    assert_eq!(
        engine.compile_count(),
        compiled.len() as u64,
        "each text compiled once"
    );
    eprintln!("{} distinct expressions compiled", compiled.len());
}
