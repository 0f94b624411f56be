//! The validation rules of sensu-compat sections 0 and 1: one test per resource, each rule
//! checked by the field its error names.

use proto_spec::ObjectMeta;
use proto_spec::v2::*;
use proto_spec::validate::*;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta::new("default", name)
}

/// The field a validation error names, or "ok".
fn field<T>(r: Result<(), ValidationError>, _: &T) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => {
            assert!(!e.reason.is_empty());
            e.field
        }
    }
}

macro_rules! expect_field {
    ($value:expr, $field:expr) => {{
        let v = $value;
        assert_eq!(field(v.validate(), &v), $field, "{:?}", v.validate());
    }};
}

fn check() -> CheckConfig {
    CheckConfig {
        command: "true".into(),
        interval: 60,
        metadata: meta("check-cpu"),
        ..Default::default()
    }
}

#[test]
fn names() {
    assert!(validate_name("f", "web-01.example.com:8080_x").is_ok());
    assert!(validate_name("f", "").is_err());
    assert!(validate_name("f", "a b").is_err());
    assert!(validate_name("f", "a/b").is_err());
    assert!(validate_asset_name("f", "sensu/sensu-slack-handler").is_ok());
    assert!(validate_asset_name("f", "a b").is_err());
    assert!(validate_username("f", "bob.smith-1_x").is_ok());
    assert!(validate_username("f", "Bob").is_err());
    assert!(validate_subscription("f", "entity:web01").is_ok());
    assert!(validate_subscription("f", "a:b:c").is_err());
    assert!(validate_subscription("f", ":a").is_err());
    let e = validate_name("metadata.name", "a b").unwrap_err();
    assert!(e.to_string().starts_with("metadata.name: "), "{e}");
}

#[test]
fn check_schedule() {
    expect_field!(check(), "ok");
    expect_field!(
        CheckConfig {
            interval: 0,
            ..check()
        },
        "interval"
    );
    expect_field!(
        CheckConfig {
            interval: 0,
            cron: "*/5 * * * *".into(),
            ..check()
        },
        "ok"
    );
    expect_field!(
        CheckConfig {
            cron: "*/5 * * * *".into(),
            ..check()
        },
        "cron"
    );
    expect_field!(
        CheckConfig {
            interval: 0,
            cron: "* * * *".into(),
            ..check()
        },
        "cron"
    );
    expect_field!(
        CheckConfig {
            metadata: ObjectMeta::new("", "x"),
            ..check()
        },
        "metadata.namespace"
    );
    let e = CheckConfig {
        metadata: ObjectMeta::new("", "x"),
        ..check()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.reason, "namespace must be set");
}

#[test]
fn cron_syntax() {
    for ok in [
        "* * * * *",
        "0 9-17 * * mon-fri",
        "*/15 0,12 1 jan,JUL 0",
        "5/10 * ? * SUN",
        "@hourly",
        "@annually",
        "@midnight",
        "@every 1h30m",
        "@every 90s",
        "@every 1.5h",
        "CRON_TZ=America/New_York 0 6 * * *",
        "TZ=UTC @daily",
    ] {
        assert!(
            validate_cron("cron", ok).is_ok(),
            "{ok}: {:?}",
            validate_cron("cron", ok)
        );
    }
    for bad in [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 7",
        "5-1 * * * *",
        "*/0 * * * *",
        "1-2-3 * * * *",
        "a * * * *",
        "@fortnightly",
        "@every",
        "@every 5",
        "@every 1x",
        "TZ=UTC",
        "CRON_TZ= * * * * *",
    ] {
        assert!(
            validate_cron("cron", bad).is_err(),
            "{bad} should be invalid"
        );
    }
}

#[test]
fn check_ttl_and_flapping() {
    expect_field!(CheckConfig { ttl: 90, ..check() }, "ok");
    expect_field!(CheckConfig { ttl: 60, ..check() }, "ttl");
    expect_field!(CheckConfig { ttl: -1, ..check() }, "ttl");
    expect_field!(
        CheckConfig {
            interval: 1,
            ttl: 4,
            ..check()
        },
        "ttl"
    );
    expect_field!(
        CheckConfig {
            low_flap_threshold: 20,
            high_flap_threshold: 20,
            ..check()
        },
        "low_flap_threshold"
    );
    expect_field!(
        CheckConfig {
            low_flap_threshold: 20,
            ..check()
        },
        "ok"
    );
}

#[test]
fn check_lists_and_formats() {
    expect_field!(
        CheckConfig {
            handlers: vec!["slack".into(), " ".into()],
            ..check()
        },
        "handlers[1]"
    );
    expect_field!(
        CheckConfig {
            subscriptions: vec![String::new()],
            ..check()
        },
        "subscriptions[0]"
    );
    expect_field!(
        CheckConfig {
            runtime_assets: Some(vec!["bad asset".into()]),
            ..check()
        },
        "runtime_assets[0]"
    );
    expect_field!(
        CheckConfig {
            proxy_entity_name: "a b".into(),
            ..check()
        },
        "proxy_entity_name"
    );
    expect_field!(
        CheckConfig {
            output_metric_format: "json".into(),
            ..check()
        },
        "output_metric_format"
    );
    expect_field!(
        CheckConfig {
            output_metric_format: "prometheus_text".into(),
            ..check()
        },
        "ok"
    );
    expect_field!(
        CheckConfig {
            env_vars: Some(vec!["PATH=/bin".into(), "NOVALUE".into()]),
            ..check()
        },
        "env_vars[1]"
    );
    let hooks = |t: &str| CheckConfig {
        check_hooks: Some(vec![HookList {
            type_: t.into(),
            hooks: Some(vec!["restart".into()]),
        }]),
        ..check()
    };
    for ok in [
        "0", "255", "ok", "warning", "critical", "unknown", "non-zero",
    ] {
        expect_field!(hooks(ok), "ok");
    }
    for bad in ["256", "-1", "fatal", "", "01x"] {
        expect_field!(hooks(bad), "check_hooks[0].type");
    }
}

#[test]
fn check_proxy_requests() {
    let proxy = |splay, splay_coverage| CheckConfig {
        proxy_requests: Some(ProxyRequests {
            entity_attributes: Some(vec!["entity.entity_class == 'proxy'".into()]),
            splay,
            splay_coverage,
        }),
        ..check()
    };
    expect_field!(proxy(true, 90), "ok");
    expect_field!(proxy(false, 0), "ok");
    expect_field!(proxy(true, 0), "proxy_requests.splay_coverage");
    expect_field!(proxy(false, 101), "proxy_requests.splay_coverage");
}

#[test]
fn check_subdue_and_subdues() {
    let range = |begin: &str, end: &str| TimeWindowTimeRange {
        begin: begin.into(),
        end: end.into(),
    };
    let subdue = |r| CheckConfig {
        subdue: Some(TimeWindowWhen {
            days: TimeWindowDays {
                monday: vec![r],
                ..Default::default()
            },
        }),
        ..check()
    };
    expect_field!(subdue(range("5:00PM", "8:00AM")), "ok");
    expect_field!(
        subdue(range("17:00", "8:00AM")),
        "subdue.days.monday[0].begin"
    );
    expect_field!(subdue(range("5:00PM", "8:00")), "subdue.days.monday[0].end");

    let repeated = |begin: &str, end: &str, repeat: &[&str]| CheckConfig {
        subdues: vec![TimeWindowRepeated {
            begin: begin.into(),
            end: end.into(),
            repeat: Some(repeat.iter().map(|s| s.to_string()).collect()),
        }],
        ..check()
    };
    expect_field!(
        repeated(
            "2022-04-01T18:00:00-07:00",
            "2022-04-02T07:00:00-07:00",
            &["weekdays"]
        ),
        "ok"
    );
    expect_field!(
        repeated("2022-04-01T18:00:00Z", "2022-04-01T17:00:00Z", &[]),
        "subdues[0].end"
    );
    expect_field!(
        repeated("2022-04-01 18:00", "2022-04-02T07:00:00Z", &[]),
        "subdues[0].begin"
    );
    expect_field!(
        repeated(
            "2022-04-01T18:00:00Z",
            "2022-04-02T07:00:00Z",
            &["fortnightly"]
        ),
        "subdues[0].repeat[0]"
    );
}

#[test]
fn time_formats() {
    assert_eq!(parse_kitchen("3:04PM"), Some(15 * 60 + 4));
    assert_eq!(parse_kitchen("12:00AM"), Some(0));
    assert_eq!(parse_kitchen("12:30PM"), Some(12 * 60 + 30));
    assert_eq!(parse_kitchen("09:15AM"), Some(9 * 60 + 15));
    for bad in [
        "3:04pm", "13:00PM", "3:4PM", "3:04 PM", "3:60AM", "", "3PM", "٣:04PM",
    ] {
        assert_eq!(parse_kitchen(bad), None, "{bad}");
    }
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
    assert_eq!(
        parse_rfc3339("2022-04-01T18:00:00.5-07:00"),
        Some((1_648_861_200, 500_000_000))
    );
    assert_eq!(
        parse_rfc3339("2024-02-29T00:00:00Z"),
        Some((1_709_164_800, 0))
    );
    for bad in [
        "2023-02-29T00:00:00Z",
        "2022-04-01T18:00:00",
        "2022-04-01 18:00:00Z",
        "2022-13-01T00:00:00Z",
        "2022-04-01T18:00:00+0700",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
    assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
    assert_eq!(parse_go_duration("-1.5s"), Some(-1.5));
    assert_eq!(parse_go_duration("300ms"), Some(0.3));
    assert_eq!(parse_go_duration("0"), Some(0.0));
    for bad in ["", "5", "1x", "1.2.3s", "h", "-"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}

#[test]
fn check_in_event_needs_no_namespace() {
    let c = Check::from_config(CheckConfig {
        metadata: ObjectMeta {
            name: "keepalive".into(),
            ..Default::default()
        },
        ..check()
    });
    expect_field!(c, "ok");
}

fn entity() -> Entity {
    Entity {
        entity_class: "agent".into(),
        metadata: meta("web01"),
        ..Default::default()
    }
}

#[test]
fn entities() {
    expect_field!(entity(), "ok");
    expect_field!(
        Entity {
            entity_class: String::new(),
            ..entity()
        },
        "entity_class"
    );
    expect_field!(
        Entity {
            metadata: ObjectMeta::new("", "web01"),
            ..entity()
        },
        "metadata.namespace"
    );
    expect_field!(
        EntityConfig {
            entity_class: "proxy".into(),
            metadata: meta("db"),
            ..Default::default()
        },
        "ok"
    );
}

#[test]
fn events() {
    let event = Event {
        entity: Some(entity()),
        check: Some(Check::from_config(check())),
        ..Default::default()
    };
    expect_field!(event.clone(), "ok");
    expect_field!(
        Event {
            entity: None,
            ..event.clone()
        },
        "entity"
    );
    expect_field!(
        Event {
            check: None,
            ..event.clone()
        },
        "check"
    );
    expect_field!(
        Event {
            check: None,
            metrics: Some(Metrics::default()),
            ..event.clone()
        },
        "ok"
    );
    expect_field!(
        Event {
            metadata: ObjectMeta::new("default", "named"),
            ..event.clone()
        },
        "metadata.name"
    );
    let mut bad_check = event.clone();
    bad_check.check.as_mut().unwrap().config.interval = 0;
    expect_field!(bad_check, "check.interval");
    let mut bad_entity = event.clone();
    bad_entity.entity.as_mut().unwrap().metadata.name = "a b".into();
    expect_field!(bad_entity, "entity.metadata.name");
    expect_field!(
        Event {
            pipelines: Some(vec![proto_spec::ResourceReference::new(
                "core/v2", "Handler", "x"
            )]),
            ..event.clone()
        },
        "pipelines[0].type"
    );
    let mut nan = event.clone();
    nan.metrics = Some(Metrics {
        points: Some(vec![MetricPoint {
            value: f64::NAN,
            ..Default::default()
        }]),
        ..Default::default()
    });
    expect_field!(nan, "metrics.points[0].value");
}

#[test]
fn handlers() {
    let h = |t: &str| Handler {
        metadata: meta("h"),
        type_: t.into(),
        ..Default::default()
    };
    expect_field!(h(""), "type");
    expect_field!(h("email"), "type");
    expect_field!(h("pipe"), "command");
    expect_field!(
        Handler {
            command: "notify".into(),
            ..h("pipe")
        },
        "ok"
    );
    expect_field!(h("tcp"), "socket");
    let sock = |host: &str, port| Handler {
        socket: Some(HandlerSocket {
            host: host.into(),
            port,
        }),
        ..h("udp")
    };
    expect_field!(sock("", 2003), "socket.host");
    expect_field!(sock("graphite", 0), "socket.port");
    expect_field!(sock("graphite", 2003), "ok");
    expect_field!(
        Handler {
            handlers: Some(vec!["slack".into(), "pagerduty".into()]),
            ..h("set")
        },
        "ok"
    );
}

#[test]
fn filters() {
    let f = |action: &str, exprs: &[&str]| EventFilter {
        metadata: meta("f"),
        action: action.into(),
        expressions: Some(exprs.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    expect_field!(f("allow", &["event.check.occurrences == 1"]), "ok");
    expect_field!(
        f("deny", &["event.check.output.match(/fo[)o]/i) && x"]),
        "ok"
    );
    expect_field!(f("maybe", &["true"]), "action");
    expect_field!(f("allow", &[]), "expressions");
    expect_field!(f("allow", &["true", "(a"]), "expressions[1]");
    expect_field!(f("allow", &["'unterminated"]), "expressions[0]");
    expect_field!(f("allow", &["a)"]), "expressions[0]");
    expect_field!(
        EventFilter {
            when: Some(TimeWindowWhen {
                days: TimeWindowDays {
                    all: vec![TimeWindowTimeRange {
                        begin: "noon".into(),
                        end: "1:00PM".into(),
                    }],
                    ..Default::default()
                },
            }),
            ..f("allow", &["true"])
        },
        "when.days.all[0].begin"
    );
}

#[test]
fn mutators() {
    let m = |t: &str, command: &str, eval: &str| Mutator {
        metadata: meta("m"),
        type_: t.into(),
        command: command.into(),
        eval: eval.into(),
        ..Default::default()
    };
    expect_field!(m("", "jq .", ""), "ok");
    expect_field!(m("pipe", "", ""), "command");
    expect_field!(m("javascript", "", "return event;"), "ok");
    expect_field!(m("javascript", "jq", "return event;"), "command");
    expect_field!(m("javascript", "", ""), "eval");
    expect_field!(m("javascript", "", "return {"), "eval");
    expect_field!(m("lua", "x", ""), "type");
}

#[test]
fn assets() {
    let sha = "a".repeat(128);
    let a = |url: &str, sha512: &str| Asset {
        metadata: meta("sensu/check-cpu"),
        url: url.into(),
        sha512: sha512.into(),
        ..Default::default()
    };
    expect_field!(a("https://example.com/a.tar.gz", &sha), "ok");
    expect_field!(a("", &sha), "url");
    expect_field!(a("ftp://example.com/a.tar.gz", &sha), "url");
    expect_field!(a("https://example.com/a.tar.gz", ""), "sha512");
    expect_field!(
        a("https://example.com/a.tar.gz", &"a".repeat(127)),
        "sha512"
    );
    expect_field!(
        a("https://example.com/a.tar.gz", &"g".repeat(128)),
        "sha512"
    );
    // Tokens are substituted on the agent: the URL cannot be checked here.
    expect_field!(a("{{ .labels.asset_url }}/a.tar.gz", &sha), "ok");
    let build = |url: &str| AssetBuild {
        url: url.into(),
        sha512: sha.clone(),
        filters: Some(vec!["entity.system.os == 'linux'".into()]),
        headers: None,
    };
    expect_field!(
        Asset {
            builds: Some(vec![build("https://example.com/a.tar.gz"), build("")]),
            ..a("", "")
        },
        "builds[1].url"
    );
    expect_field!(
        Asset {
            builds: Some(vec![build("https://example.com/a.tar.gz")]),
            ..a("https://example.com/b.tar.gz", &sha)
        },
        "builds"
    );
}

#[test]
fn hooks() {
    let h = |command: &str, timeout| HookConfig {
        metadata: meta("restart"),
        command: command.into(),
        timeout,
        ..Default::default()
    };
    expect_field!(h("systemctl restart nginx", 10), "ok");
    expect_field!(h("", 10), "command");
    expect_field!(h("true", 0), "timeout");
}

#[test]
fn silenced() {
    let s = |sub: &str, check: &str| Silenced {
        metadata: meta(""),
        subscription: sub.into(),
        check: check.into(),
        ..Default::default()
    };
    expect_field!(s("linux", ""), "ok");
    expect_field!(s("", "check_cpu"), "ok");
    expect_field!(s("entity:web01", "check_cpu"), "ok");
    expect_field!(s("", ""), "subscription");
    expect_field!(s("*", "*"), "subscription");
    expect_field!(s("a:b:c", ""), "subscription");
    expect_field!(s("", "bad check"), "check");
    assert_eq!(s("linux", "").derived_name(), "linux:*");
    assert_eq!(s("", "check_cpu").derived_name(), "*:check_cpu");
    let mut named = s("linux", "check_cpu");
    named.fill_name();
    assert_eq!(named.metadata.name, "linux:check_cpu");
    expect_field!(
        Silenced {
            expire: -2,
            ..s("linux", "")
        },
        "expire"
    );
}

#[test]
fn rbac() {
    let rule = |verbs: &[&str], resources: &[&str]| Rule {
        verbs: Some(verbs.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        resource_names: None,
    };
    let role = |rules| Role {
        rules: Some(rules),
        metadata: meta("r"),
    };
    expect_field!(role(vec![rule(&["get", "list"], &["checks"])]), "ok");
    expect_field!(role(vec![]), "rules");
    expect_field!(
        role(vec![rule(&["get", "read"], &["checks"])]),
        "rules[0].verbs[1]"
    );
    expect_field!(role(vec![rule(&[], &["checks"])]), "rules[0].verbs");
    expect_field!(role(vec![rule(&["*"], &[])]), "rules[0].resources");
    expect_field!(
        ClusterRole {
            rules: Some(vec![rule(&["*"], &["*"])]),
            metadata: ObjectMeta::new("", "cluster-admin"),
        },
        "ok"
    );
    let subject = |t: &str| Subject {
        type_: t.into(),
        name: "ops".into(),
    };
    let binding = |s: Subject, t: &str| RoleBinding {
        subjects: Some(vec![s]),
        role_ref: RoleRef {
            type_: t.into(),
            name: "r".into(),
        },
        metadata: meta("b"),
    };
    expect_field!(binding(subject("Group"), "Role"), "ok");
    expect_field!(binding(subject("User"), "ClusterRole"), "ok");
    expect_field!(binding(subject("Team"), "Role"), "subjects[0].type");
    expect_field!(binding(subject("User"), "Admin"), "role_ref.type");
    expect_field!(
        ClusterRoleBinding {
            subjects: Some(vec![subject("Group")]),
            role_ref: RoleRef {
                type_: "Role".into(),
                name: "r".into(),
            },
            metadata: ObjectMeta::new("", "b"),
        },
        "role_ref.type"
    );
}

#[test]
fn pipelines() {
    let r = |api: &str, t: &str, n: &str| proto_spec::ResourceReference::new(api, t, n);
    let p = |w: PipelineWorkflow| Pipeline {
        metadata: meta("p"),
        workflows: Some(vec![w]),
    };
    let workflow = PipelineWorkflow {
        name: "w".into(),
        filters: vec![r("core/v2", "EventFilter", "is_incident")],
        mutator: None,
        handler: Some(r("core/v2", "Handler", "slack")),
    };
    expect_field!(p(workflow.clone()), "ok");
    // Commercial handler types are valid definitions.
    expect_field!(
        p(PipelineWorkflow {
            handler: Some(r("pipeline/v1", "TCPStreamHandler", "logs")),
            ..workflow.clone()
        }),
        "ok"
    );
    expect_field!(
        p(PipelineWorkflow {
            handler: None,
            ..workflow.clone()
        }),
        "workflows[0].handler"
    );
    expect_field!(
        p(PipelineWorkflow {
            filters: vec![r("", "EventFilter", "x")],
            ..workflow.clone()
        }),
        "workflows[0].filters[0].api_version"
    );
}

#[test]
fn users_and_others() {
    let u = |name: &str, password: &str| User {
        username: name.into(),
        password: password.into(),
        ..Default::default()
    };
    expect_field!(u("alice", "P@ssw0rd!"), "ok");
    expect_field!(u("alice", ""), "ok");
    expect_field!(u("Alice", ""), "username");
    expect_field!(u("alice", "short"), "password");
    expect_field!(
        Namespace {
            name: "prod".into()
        },
        "ok"
    );
    expect_field!(Namespace { name: "".into() }, "name");
    expect_field!(
        APIKey {
            metadata: ObjectMeta::new("", "83abef1e-e7d7-4beb-91fc-79ad90084d5b"),
            username: String::new(),
            created_at: 0,
        },
        "username"
    );
    expect_field!(TessenConfig { opt_out: true }, "ok");
    expect_field!(
        AdhocRequest {
            subscriptions: vec!["".into()],
            metadata: meta("check-cpu"),
            ..Default::default()
        },
        "subscriptions[0]"
    );
    expect_field!(Tokens::default(), "access_token");
    expect_field!(
        KeepaliveRecord {
            metadata: meta("web01"),
            time: 1
        },
        "ok"
    );
    expect_field!(
        CheckRequest {
            config: Some(check()),
            ..Default::default()
        },
        "ok"
    );
    expect_field!(CheckRequest::default(), "config");
}

/// `n` distinct names with a prefix.
fn many(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn labelled(name: &str, labels: usize, annotations: usize) -> ObjectMeta {
    let mut m = meta(name);
    m.labels = many("l", labels)
        .into_iter()
        .map(|k| (k, "v".into()))
        .collect();
    m.annotations = many("a", annotations)
        .into_iter()
        .map(|k| (k, "v".into()))
        .collect();
    m
}

#[test]
fn size_limits() {
    // Entities: the backend's own entity:<name> does not count against the limit.
    let mut subs = many("sub", MAX_SUBSCRIPTIONS);
    subs.push("entity:web01".into());
    let at_limit = Entity {
        subscriptions: Some(subs.clone()),
        metadata: labelled("web01", MAX_LABELS, MAX_LABELS),
        ..entity()
    };
    expect_field!(at_limit.clone(), "ok");
    subs.push("one-more".into());
    expect_field!(
        Entity {
            subscriptions: Some(subs.clone()),
            ..at_limit.clone()
        },
        "subscriptions"
    );
    expect_field!(
        Entity {
            metadata: labelled("web01", MAX_LABELS + 1, 0),
            ..entity()
        },
        "metadata.labels"
    );
    expect_field!(
        Entity {
            metadata: labelled("web01", 0, MAX_LABELS + 1),
            ..entity()
        },
        "metadata.annotations"
    );
    let err = Entity {
        subscriptions: Some(subs.clone()),
        ..entity()
    }
    .validate_limits()
    .unwrap_err();
    assert!(err.to_string().contains("exceed the limit of 256"), "{err}");
    expect_field!(
        EntityConfig {
            entity_class: "proxy".into(),
            subscriptions: Some(subs),
            metadata: meta("db"),
            ..Default::default()
        },
        "subscriptions"
    );

    // Checks, stored or inside an event.
    expect_field!(
        CheckConfig {
            subscriptions: many("sub", MAX_SUBSCRIPTIONS),
            metadata: labelled("check-cpu", MAX_LABELS, MAX_LABELS),
            ..check()
        },
        "ok"
    );
    expect_field!(
        CheckConfig {
            subscriptions: many("sub", MAX_SUBSCRIPTIONS + 1),
            ..check()
        },
        "subscriptions"
    );
    expect_field!(
        CheckConfig {
            metadata: labelled("check-cpu", MAX_LABELS + 1, 0),
            ..check()
        },
        "metadata.labels"
    );
}
