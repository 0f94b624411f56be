//! The real-world corpus: every resource definition and API body in the Sensu Go 6.14 docs
//! (`shared/fixtures/sensu-docs-6.14`) must decode into its typed resource, validate, and
//! re-encode to the same JSON ("covers" below says what "same" means).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use proto_spec::wrapped::{self, DEFAULT_NAMESPACE, ResourceKind, Wrapped};
use serde_json::Value;

/// Files the docs themselves get wrong (NOTES.md). Each must fail with an error whose text
/// contains the given fragment, which names the field.
///
/// Decisions for the other inconsistencies NOTES.md lists (they decode, validate and
/// round-trip, because each variant is a valid resource on its own):
/// - ClusterRole rbac-default-admin `tpc-stream-handlers`: a typo of a commercial resource
///   kind; rules do not restrict kinds (as in Sensu), so both variants are valid.
/// - Pipeline _index-incident_alerts (state_change_only vs is_incident), CheckConfig
///   checks-interval_test (mangled backslashes), Event outputs and `:1/128`, Entity
///   webserver01 (hostname moved, cloud_provider "" vs null), Mutator add_org_sec_ops
///   (created_by), CheckConfig _index-check-cpu (extra subscription),
///   reduce-alert-fatigue-check_cpu (handlers absent vs null): the JSON and YAML variants
///   differ in values, but each is valid and round-trips as written.
/// - EventFilter filters-us-west-events.json: JSON "\b" is a backspace; the expression is
///   still well-formed JavaScript, so it decodes and validates (and evaluates differently
///   from the YAML, as it would in Sensu).
/// - api/assets/assets-get-a-specific-dynamic-runtime-asset*-response-list.json: documented
///   as a map but is an array of Assets; decoded as a list like the other `-list` files.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    // NOTES.md: `- event.check.occurrences == 1 || ... % ...): 15 ...` is a YAML mapping,
    // not a string.
    (
        "wrapped/EventFilter/filters-keepalive_timeouts.yaml",
        "spec.expressions[1]: invalid type: map, expected a string",
    ),
    // NOTES.md: a string where Sensu has a list of handler names.
    (
        "api/checks/checks-get-all-checks-response-list.json",
        "[1].output_metric_handlers: invalid type: string \"sensu_to_sumo\", expected a sequence",
    ),
    // Not in NOTES.md, found by this test. A fragment showing `secrets`: no interval and no
    // cron, which Sensu rejects too.
    (
        "wrapped/CheckConfig/checks-ping-github-api.json",
        "interval: interval must be greater than 0",
    ),
    (
        "wrapped/CheckConfig/checks-ping-github-api.yaml",
        "interval: interval must be greater than 0",
    ),
    // A check with no name (the YAML variant of the same page has one).
    (
        "wrapped/CheckConfig/subscriptions-unnamed.json",
        "metadata.name: name cannot be empty",
    ),
    // `type: pipe` with `handlers` and no command: meant to be a `set` handler.
    (
        "wrapped/Handler/auto-register-deregister-pipe-registration.json",
        "command: pipe handlers must have a command",
    ),
    (
        "wrapped/Handler/auto-register-deregister-pipe-registration.yaml",
        "command: pipe handlers must have a command",
    ),
    // `read` is not an RBAC verb (get, list, create, update, delete, *).
    (
        "api/roles/roles-create-or-update-a-role-spec-request.json",
        "rules[0].verbs[0]: verb \"read\" is invalid",
    ),
    (
        "api/roles/roles-get-a-specific-role-response.json",
        "rules[0].verbs[0]: verb \"read\" is invalid",
    ),
    // NOTES.md: in the YAML version the entity's `hostname` moved into `processes[1]`, where
    // no process field of that name exists; it is dropped, so the file cannot read back equal.
    (
        "wrapped/Entity/entities-webserver01.yaml",
        ".spec.system.processes[1].hostname: missing from the output",
    ),
];

fn corpus_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is <workspace>/proto-spec; shared/ sits beside the workspace.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sensu-docs-6.14")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        // A struct of zero values is Go's zero struct, which Sensu always writes out.
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// Whether `output` is what Sensu would print after decoding `input`: every input key is
/// present with a covering value, except zero-valued ones (an omitempty field Sensu drops);
/// every key only the output has holds a zero value (a field Sensu always writes); `null`
/// in the input matches any zero value (Go decodes null into the zero value); numbers
/// compare numerically (`1.0` and `1` are the same float64).
fn covers(input: &Value, output: &Value, path: &str) -> Result<(), String> {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, vi) in i {
                let p = format!("{path}.{k}");
                match o.get(k) {
                    Some(vo) => covers(vi, vo, &p)?,
                    None if is_zero(vi) => {}
                    None => return Err(format!("{p}: missing from the output (input {vi})")),
                }
            }
            for (k, vo) in o {
                if !i.contains_key(k) && !is_zero(vo) {
                    return Err(format!("{path}.{k}: added by the output with {vo}"));
                }
            }
            Ok(())
        }
        (Value::Array(i), Value::Array(o)) => {
            if i.len() != o.len() {
                return Err(format!("{path}: {} items in, {} out", i.len(), o.len()));
            }
            for (n, (vi, vo)) in i.iter().zip(o).enumerate() {
                covers(vi, vo, &format!("{path}[{n}]"))?;
            }
            Ok(())
        }
        (Value::Null, o) if is_zero(o) => Ok(()),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (i, o) if i == o => Ok(()),
        (i, o) => Err(format!("{path}: input {i}, output {o}")),
    }
}

/// A wrapped document against its re-encoding. The output writes all metadata outside
/// `spec`, so an inner `spec.metadata` of the input is checked against the output's outer
/// metadata, less whatever the outer input metadata overrides.
fn covers_wrapped(input: &Value, output: &Value) -> Result<(), String> {
    let mut input = input.clone();
    let obj = input.as_object_mut().ok_or("document is not an object")?;
    let inner = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.remove("metadata"));
    if !obj.contains_key("api_version") {
        // The only value the output may add that is not a zero value: the default.
        obj.insert("api_version".into(), Value::from("core/v2"));
    }
    covers(&input, output, "")?;
    if let Some(Value::Object(inner)) = inner {
        let outer = input.get("metadata").cloned().unwrap_or(Value::Null);
        let out_meta = &output["metadata"];
        for (k, v) in inner {
            match (k.as_str(), &v) {
                ("labels" | "annotations", Value::Object(map)) => {
                    for (lk, lv) in map {
                        if outer[&k][lk].is_null() && &out_meta[&k][lk] != lv {
                            return Err(format!("spec.metadata.{k}.{lk} lost"));
                        }
                    }
                }
                _ if !is_zero(&outer[&k]) || is_zero(&v) => {}
                _ if out_meta[&k] != v => return Err(format!("spec.metadata.{k} lost")),
                _ => {}
            }
        }
    }
    Ok(())
}

fn check_wrapped(text: &str) -> Result<usize, String> {
    let docs = wrapped::parse(text).map_err(|e| e.to_string())?;
    let raw = wrapped::parse_documents(text).map_err(|e| e.to_string())?;
    assert_eq!(docs.len(), raw.len());
    for (n, (doc, raw)) in docs.iter().zip(&raw).enumerate() {
        let ctx = |e: String| format!("document {}: {e}", n + 1);
        let mut r = doc.resource.clone();
        r.set_default_namespace(DEFAULT_NAMESPACE);
        r.validate()
            .map_err(|e| ctx(format!("{} invalid: {e}", doc.kind())))?;
        covers_wrapped(&raw.value, &doc.to_value()).map_err(ctx)?;
        // And the encoding reads back as the same resource, in both syntaxes.
        let again = wrapped::parse(&doc.to_json()).map_err(|e| ctx(e.to_string()))?;
        assert_eq!(
            again,
            vec![doc.clone()],
            "JSON re-encoding of {}",
            doc.kind()
        );
        let again = wrapped::parse(&doc.to_yaml()).map_err(|e| ctx(e.to_string()))?;
        assert_eq!(
            again,
            vec![doc.clone()],
            "YAML re-encoding of {}",
            doc.kind()
        );
    }
    // The whole stream round-trips too.
    assert_eq!(wrapped::parse(&wrapped::to_yaml(&docs)).unwrap(), docs);
    assert_eq!(wrapped::parse(&wrapped::to_json(&docs)).unwrap(), docs);
    Ok(docs.len())
}

fn check_api(kind: ResourceKind, text: &str, list: bool) -> Result<usize, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let items: Vec<(String, Value)> = if list {
        match value {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("[{i}]"), v))
                .collect(),
            other => return Err(format!("a -list file holds {other}, not an array")),
        }
    } else {
        vec![(String::new(), value)]
    };
    for (prefix, item) in &items {
        let r = kind.decode_spec(item.clone()).map_err(|e| {
            if e.path.is_empty() {
                format!("{prefix}: {e}")
            } else if prefix.is_empty() {
                e.to_string()
            } else {
                format!("{prefix}.{e}")
            }
        })?;
        // A request body names no namespace when the URL does; the API fills it in.
        let mut filled = r.clone();
        filled.set_default_namespace(DEFAULT_NAMESPACE);
        filled
            .validate()
            .map_err(|e| format!("{prefix}: {kind} invalid: {e}"))?;
        covers(item, &r.to_json_value(), prefix)?;
        let wrapped_again = wrapped::parse(&Wrapped::from(r.clone()).to_json())
            .map_err(|e| format!("{prefix}: {e}"))?;
        assert_eq!(wrapped_again[0].resource, r);
    }
    Ok(items.len())
}

#[test]
fn sensu_docs_corpus() {
    let dir = corpus_dir();
    assert!(
        dir.join("INDEX.tsv").is_file(),
        "the Sensu docs corpus is missing: looked for {} (expected at <workspace>/../shared/fixtures/sensu-docs-6.14)",
        dir.display()
    );
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("INDEX.tsv");
    let types: BTreeMap<&str, &str> = index
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?, cols.next()?))
        })
        .collect();

    let mut files = Vec::new();
    files_under(&dir.join("wrapped"), &mut files);
    files_under(&dir.join("api"), &mut files);
    assert!(files.len() > 400, "only {} corpus files found", files.len());

    let mut failures = Vec::new();
    let (mut passed, mut expected, mut resources) = (0, 0, 0);
    for path in &files {
        let rel = path
            .strip_prefix(&dir)
            .expect("under the corpus")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(path).expect("corpus file is UTF-8");
        let result = if rel.starts_with("api/") {
            let ty = types
                .get(rel.as_str())
                .unwrap_or_else(|| panic!("{rel} is not in INDEX.tsv"));
            let kind = ResourceKind::resolve("core/v2", ty)
                .unwrap_or_else(|| panic!("{rel}: unknown type {ty}"));
            check_api(kind, &text, rel.ends_with("-list.json"))
        } else {
            check_wrapped(&text)
        };
        let expect = EXPECTED_FAILURES.iter().find(|(p, _)| *p == rel);
        match (result, expect) {
            (Ok(n), None) => {
                passed += 1;
                resources += n;
            }
            (Err(e), Some((_, fragment))) if e.contains(fragment) => expected += 1,
            (Err(e), Some((_, fragment))) => failures.push(format!(
                "{rel}: expected an error with {fragment:?}, got: {e}"
            )),
            (Ok(_), Some(_)) => failures.push(format!("{rel}: expected to fail, but passed")),
            (Err(e), None) => failures.push(format!("{rel}: {e}")),
        }
    }
    for (p, _) in EXPECTED_FAILURES {
        assert!(
            dir.join(p).is_file(),
            "expected failure {p} is not in the corpus"
        );
    }
    // Straight to the stderr handle: libtest captures println! of passing tests, and this
    // line should show in every run.
    let _ = writeln!(
        std::io::stderr(),
        "sensu-docs corpus: {} files checked: {passed} passed ({resources} resources), {expected} failed as expected, {} unexpected",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}
