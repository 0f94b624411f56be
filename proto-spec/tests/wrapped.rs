//! The wrapped format's rules (sensu-compat 1.2): type names and aliases, the default
//! api_version, outer metadata overriding and merging, metadata left out of `spec` on
//! output, stream syntaxes, and errors that name the document, line and field.

use proto_spec::v2::{CheckConfig, EventFilter, Namespace, User};
use proto_spec::wrapped::{
    self, Format, Resource, ResourceKind, Wrapped, detect_format, parse, parse_json, parse_yaml,
};
use serde_json::json;

fn one(input: &str) -> Wrapped {
    let mut docs = parse(input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[test]
fn type_names_and_aliases() {
    let distinct: std::collections::BTreeSet<_> = ResourceKind::ALL.into_iter().collect();
    assert_eq!(distinct.len(), ResourceKind::ALL.len());
    for kind in ResourceKind::ALL {
        let v2 = kind.api_version();
        assert_eq!(ResourceKind::resolve(v2, kind.type_name()), Some(kind));
        assert_eq!(ResourceKind::resolve(v2, kind.snake_name()), Some(kind));
    }
    assert_eq!(
        ResourceKind::resolve("", "check_config"),
        Some(ResourceKind::CheckConfig)
    );
    assert_eq!(
        ResourceKind::resolve("core/v3", "EntityConfig"),
        Some(ResourceKind::EntityConfig)
    );
    assert_eq!(ResourceKind::resolve("core/v2", "EntityConfig"), None);
    assert_eq!(ResourceKind::resolve("core/v2", "checkconfig"), None);
    assert_eq!(ResourceKind::APIKey.snake_name(), "api_key");
    assert_eq!(ResourceKind::RoleBinding.plural(), "rolebindings");
    assert!(ResourceKind::Silenced.is_namespaced());
    assert!(!ResourceKind::ClusterRole.is_namespaced());

    let doc = one(r#"{"type": "check_config", "spec": {"interval": 5}}"#);
    assert_eq!(doc.kind(), ResourceKind::CheckConfig);
    // Output always uses the canonical name and the explicit api_version.
    let out = doc.to_value();
    assert_eq!(out["type"], "CheckConfig");
    assert_eq!(out["api_version"], "core/v2");
}

#[test]
fn outer_metadata_overrides_and_merges() {
    let doc = one(r#"
type: CheckConfig
metadata:
  name: outer
  labels: {a: outer, b: outer}
  annotations: {x: "1"}
spec:
  interval: 10
  metadata:
    name: inner
    namespace: prod
    created_by: bob
    labels: {a: inner, c: inner}
"#);
    let Resource::CheckConfig(c) = &doc.resource else {
        panic!("not a check")
    };
    let m = &c.metadata;
    assert_eq!(m.name, "outer");
    assert_eq!(m.namespace, "prod");
    assert_eq!(m.created_by, "bob");
    assert_eq!(m.labels["a"], "outer");
    assert_eq!(m.labels["b"], "outer");
    assert_eq!(m.labels["c"], "inner");
    assert_eq!(m.annotations["x"], "1");
    // Output puts the merged metadata outside and none inside spec.
    let out = doc.to_value();
    assert_eq!(out["metadata"]["name"], "outer");
    assert!(out["spec"].get("metadata").is_none());
    assert_eq!(out["spec"]["interval"], 10);
    assert_eq!(out["spec"]["handlers"], json!([]));
}

#[test]
fn types_without_metadata_keep_the_outer_one() {
    let doc = one(r#"{"type": "Namespace", "metadata": {}, "spec": {"name": "prod"}}"#);
    assert_eq!(
        doc.resource,
        Resource::from(Namespace {
            name: "prod".into()
        })
    );
    assert_eq!(doc.to_value()["metadata"], json!({}));
    let doc = one(r#"{"type": "User", "metadata": {"name": "bob"}, "spec": {"username": "x"}}"#);
    let Resource::User(u) = &doc.resource else {
        panic!("not a user")
    };
    // The outer name wins, as for every other type.
    assert_eq!(u.username, "bob");
    assert_eq!(doc.to_value()["metadata"], json!({"name": "bob"}));
    let fresh = Wrapped::new(User {
        username: "alice".into(),
        ..Default::default()
    });
    assert_eq!(fresh.to_value()["metadata"], json!({}));
}

#[test]
fn yaml_streams() {
    let input = "\
# leading comment
---
type: Namespace
spec: {name: a}
---
---   # empty documents are skipped
type: Namespace
spec:
  name: b
...
--- {type: Namespace, spec: {name: c}}
";
    assert_eq!(detect_format(input), Format::Yaml);
    let names: Vec<String> = parse(input)
        .unwrap()
        .into_iter()
        .map(|w| w.resource.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse("---\n# nothing\n").unwrap(), vec![]);
}

#[test]
fn json_streams() {
    let input = "\u{feff}  {\"type\":\"Namespace\",\"spec\":{\"name\":\"a\"}}{\"type\":\"Namespace\",\"spec\":{\"name\":\"b\"}}\n\n{\"type\":\"Namespace\",\"spec\":{\"name\":\"c\"}}";
    assert_eq!(detect_format(input), Format::Json);
    assert_eq!(parse_json(input).unwrap().len(), 3);
    // A YAML file of JSON-style flow mappings still parses as YAML.
    assert_eq!(parse_yaml("{\"type\": \"Namespace\"}").unwrap().len(), 1);
    // And a YAML flow mapping is read even though it starts like JSON.
    let flow = "{type: Namespace, spec: {name: a}}\n---\n{type: Namespace, spec: {name: b}}\n";
    assert_eq!(parse(flow).unwrap().len(), 2);
    // Broken JSON is still reported as JSON.
    let err = parse("{\"type\": \"Namespace\",, }").unwrap_err();
    assert!(err.error.message.starts_with("invalid JSON: "), "{err}");
}

#[test]
fn errors_name_document_line_and_field() {
    let input = "\
type: Namespace
spec: {name: a}
---
type: EventFilter
api_version: core/v2
metadata:
  name: f
spec:
  action: allow
  expressions:
    - event.check.status != 0
    - a: b
";
    let err = parse(input).unwrap_err();
    assert_eq!(err.document, 2);
    assert_eq!(err.line, 4);
    assert_eq!(err.error.path, "spec.expressions[1]");
    assert_eq!(
        err.to_string(),
        "document 2 (line 4): spec.expressions[1]: invalid type: map, expected a string"
    );

    let err = parse("{\"type\": \"Namespace\"}\n{\"type\": \"Nope\"}").unwrap_err();
    assert_eq!((err.document, err.line), (2, 2));
    assert_eq!(err.error.path, "type");
    assert!(
        err.to_string().contains("unknown resource type \"Nope\""),
        "{err}"
    );

    let err = parse("type: Secret\napi_version: secrets/v1\nspec: {}\n").unwrap_err();
    assert_eq!(err.error.path, "api_version");
    assert!(
        err.to_string().contains("\"secrets/v1\" is not supported"),
        "{err}"
    );

    let err = parse("spec: {}\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1 (line 1): type: type must be set"
    );

    let err = parse("type: CheckConfig\nspec:\n  interval: soon\n").unwrap_err();
    assert_eq!(err.error.path, "spec.interval");

    // (serde would read an array as the struct's fields in order; Go would refuse it.)
    let err = parse("type: CheckConfig\nmetadata: 5\n").unwrap_err();
    assert_eq!(err.error.path, "metadata");

    let err =
        parse("type: CheckConfig\nspec:\n  check_hooks:\n  - {a: [x], b: [y]}\n").unwrap_err();
    assert_eq!(err.error.path, "spec.check_hooks[0]");

    // Syntax errors carry the parser's own line.
    let err = parse("type: Namespace\n---\ntype: Namespace\nspec: {name: [}\n").unwrap_err();
    assert_eq!(err.document, 2);
    assert_eq!(err.line, 4);
    assert!(err.error.message.starts_with("invalid YAML: "), "{err}");
    let err = parse("{\"type\": \"Namespace\"}\n{\"type\": ").unwrap_err();
    assert_eq!((err.document, err.line), (2, 2));
    assert!(err.error.message.starts_with("invalid JSON: "), "{err}");
    let err = parse("[1, 2]").unwrap_err();
    assert!(err.error.message.contains("expected an object"), "{err}");
}

#[test]
fn encodings() {
    let docs = vec![
        Wrapped::new(CheckConfig {
            interval: 60,
            metadata: proto_spec::ObjectMeta::new("default", "c"),
            ..Default::default()
        }),
        Wrapped::new(EventFilter {
            action: "allow".into(),
            expressions: Some(vec!["event.check.status == 0".into()]),
            ..Default::default()
        }),
    ];
    let json = wrapped::to_json(&docs);
    assert!(
        json.starts_with(
            "{\n  \"type\": \"CheckConfig\",\n  \"api_version\": \"core/v2\",\n  \"metadata\": {"
        ),
        "{json}"
    );
    assert_eq!(parse(&json).unwrap(), docs);
    let yaml = wrapped::to_yaml(&docs);
    assert!(
        yaml.starts_with("type: CheckConfig\napi_version: core/v2\nmetadata:\n"),
        "{yaml}"
    );
    assert_eq!(yaml.matches("\n---\n").count(), 1, "{yaml}");
    assert_eq!(parse(&yaml).unwrap(), docs);
    // The compact form is one line.
    assert!(!docs[0].to_json().contains('\n'));
}

#[test]
fn default_namespace_fills_only_namespaced_resources() {
    let mut docs = parse(
        "type: CheckConfig\nspec: {interval: 5}\n---\ntype: ClusterRole\nmetadata: {name: x}\n---\ntype: Event\nspec: {entity: {metadata: {name: e}}}\n",
    )
    .unwrap();
    for d in &mut docs {
        d.resource.set_default_namespace("default");
    }
    assert_eq!(docs[0].resource.namespace(), "default");
    assert_eq!(docs[1].resource.namespace(), "");
    let Resource::Event(e) = &docs[2].resource else {
        panic!("not an event")
    };
    assert_eq!(e.metadata.namespace, "default");
    assert_eq!(e.entity.as_ref().unwrap().metadata.namespace, "default");
}
