//! Sensu expressions, helpers, truthiness, result conversion, isolation and the compile cache.

use jsexpr::{Engine, Error, Limits, check_syntax};
use serde_json::{Value, json};

fn engine() -> Engine {
    Engine::new(Limits::default()).expect("engine")
}

fn entity() -> Value {
    json!({
        "entity_class": "proxy",
        "metadata": {"name": "router-01", "namespace": "default"},
        "labels": {"device_type": "router", "proxy_type": "website"},
        "system": {"os": "linux", "arch": "amd64", "platform_family": "rhel"},
        "subscriptions": ["linux", "entity:router-01"],
    })
}

fn event() -> Value {
    json!({
        "timestamp": 1617050501,
        "has_check": true,
        "is_incident": false,
        "check": {
            "name": "check_cpu",
            "metadata": {"name": "check_cpu", "namespace": "default"},
            "labels": {"region": "us-west-1"},
            "executed": 1617050501,
            "interval": 60,
            "timeout": 10,
            "occurrences": 180,
            "status": 2,
            "history": [{"status": 0, "executed": 1617050441}, {"status": 2, "executed": 1617050501}],
        },
        "entity": {
            "entity_class": "agent",
            "labels": {"environment": "production", "region": "us-west-2"},
            "annotations": {"keepalive_alert_minutes": "5"},
            "system": {"os": "linux"},
        },
    })
}

fn eval_entity(engine: &mut Engine, source: &str) -> Result<bool, Error> {
    let expr = engine.compile(source)?;
    engine.eval_bool(&expr, &[("entity", &entity())])
}

fn eval_event(engine: &mut Engine, source: &str) -> Result<bool, Error> {
    let expr = engine.compile(source)?;
    engine.eval_bool(&expr, &[("event", &event())])
}

#[test]
fn entity_attributes_match_and_miss() {
    let mut engine = engine();
    for source in [
        "entity.entity_class == 'proxy'",
        "entity.labels.device_type === 'router'",
        "entity.system.os == 'linux'",
        "entity.labels.proxy_type == 'website'",
        "entity.subscriptions.indexOf('linux') >= 0",
        "entity.metadata.name.match(/^router-\\d+$/)",
    ] {
        assert_eq!(eval_entity(&mut engine, source), Ok(true), "{source}");
    }
    for source in [
        "entity.entity_class == 'agent'",
        "entity.labels.device_type === 'switch'",
        "entity.system.os == 'windows'",
        "entity.system.arch == 'arm64'",
        "entity.metadata.name.match(/^switch/)",
    ] {
        assert_eq!(eval_entity(&mut engine, source), Ok(false), "{source}");
    }
}

#[test]
fn event_filter_expressions_match_and_miss() {
    let mut engine = engine();
    for source in [
        "event.check.occurrences == 1 || event.check.occurrences % 90 == 0",
        "event.check.occurrences == 1 || event.check.occurrences % (3600 / event.check.interval) == 0",
        "event.check.labels.region == 'us-west-1'",
        "event.entity.labels['environment'] == 'production'",
        "event.entity.labels.region.match(/us-west-\\b[1-3]\\b/)",
        "event.has_check",
        "event.check.status != 0 && !event.is_incident",
        "event.check.history.some(function (h) { return h.status != 0; })",
        "event.check.occurrences == 1 || event.check.occurrences % parseInt( 60 * ( 'keepalive_alert_minutes' in event.entity.annotations ? parseInt(event.entity.annotations.keepalive_alert_minutes): 15) / event.check.timeout ) == 0",
        "weekday(event.timestamp) == 1",
        "hour(event.check.executed) >= 9",
    ] {
        assert_eq!(eval_event(&mut engine, source), Ok(true), "{source}");
    }
    for source in [
        "event.check.occurrences == 1",
        "event.check.occurrences % 120 == 0",
        "event.check.labels.region == 'eu-central-1'",
        "event.entity.labels['environment'] == 'staging'",
        "event.is_incident",
        "weekday(event.timestamp) >= 2 && weekday(event.timestamp) <= 5",
        "hour(event.timestamp) >= 9 && hour(event.timestamp) <= 17",
        "event.check.name.match(/metrics$/)",
    ] {
        assert_eq!(eval_event(&mut engine, source), Ok(false), "{source}");
    }
}

#[test]
fn asset_build_filters() {
    let mut engine = engine();
    let asset_entity = json!({"system": {"os": "linux", "arch": "amd64", "platform": "alpine"}});
    for (source, want) in [
        ("entity.system.os == 'linux'", true),
        ("entity.system.arch == 'amd64'", true),
        ("entity.system.platform == 'alpine'", true),
        ("entity.system.os == 'darwin'", false),
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(
            engine.eval_bool(&expr, &[("entity", &asset_entity)]),
            Ok(want),
            "{source}"
        );
    }
}

#[test]
fn helpers_use_utc_and_unix_seconds() {
    let mut engine = engine();
    // 2021-03-29T20:41:41Z is a Monday; 1970-01-01 a Thursday; 2000-02-29T23:59:59Z a Tuesday.
    for (source, want) in [
        ("hour(1617050501)", json!(20)),
        ("minute(1617050501)", json!(41)),
        ("second(1617050501)", json!(41)),
        ("weekday(1617050501)", json!(1)),
        ("weekday(0)", json!(4)),
        ("hour(0)", json!(0)),
        (
            "[hour(951868799), minute(951868799), second(951868799), weekday(951868799)]",
            json!([23, 59, 59, 2]),
        ),
        ("[hour(-1), weekday(-1)]", json!([23, 3])),
        // Fractions are truncated and non-numbers count as 0, as in Sensu's Go helpers.
        ("second(1617050501.9)", json!(41)),
        ("[hour(), hour('x'), weekday(null)]", json!([0, 0, 4])),
        ("hour('1617050501')", json!(20)),
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(
            engine.eval_json(&expr, &[]).unwrap(),
            Some(want),
            "{source}"
        );
    }
}

#[test]
fn seconds_since_counts_from_now() {
    let mut engine = engine();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts = json!(now - 100);
    let expr = engine.compile("seconds_since(ts)").unwrap();
    let got = engine.eval_json(&expr, &[("ts", &ts)]).unwrap().unwrap();
    let got = got.as_i64().unwrap();
    assert!((100..=102).contains(&got), "seconds_since gave {got}");
    let expr = engine.compile("seconds_since(ts) > 30").unwrap();
    assert_eq!(engine.eval_bool(&expr, &[("ts", &ts)]), Ok(true));
}

#[test]
fn results_convert_with_js_truthiness() {
    let mut engine = engine();
    for (source, want) in [
        ("true", true),
        ("false", false),
        ("1", true),
        ("0", false),
        ("-0", false),
        ("NaN", false),
        ("0.5", true),
        ("'a'", true),
        ("''", false),
        ("'false'", true),
        ("null", false),
        ("undefined", false),
        ("({})", true),
        ("[]", true),
        ("[0]", true),
        ("(function () {})", true),
        ("'abc'.match(/b/)", true),
        ("'abc'.match(/z/)", false),
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(engine.eval_bool(&expr, &[]), Ok(want), "{source}");
    }
}

#[test]
fn missing_properties() {
    let mut engine = engine();
    assert_eq!(
        eval_entity(&mut engine, "entity.labels.missing == undefined"),
        Ok(true)
    );
    assert_eq!(
        eval_entity(&mut engine, "entity.labels.missing === undefined"),
        Ok(true)
    );
    assert_eq!(
        eval_entity(&mut engine, "entity.labels.missing == 'x'"),
        Ok(false)
    );
    assert_eq!(
        eval_entity(&mut engine, "'missing' in entity.labels"),
        Ok(false)
    );
    match eval_entity(&mut engine, "entity.nolabel.x") {
        Err(Error::Runtime { expr, message }) => {
            assert_eq!(expr, "entity.nolabel.x");
            assert!(message.starts_with("TypeError"), "{message}");
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
    // An unbound variable is a ReferenceError, as in otto.
    match eval_entity(&mut engine, "event.check.status == 0") {
        Err(Error::Runtime { message, .. }) => {
            assert!(message.starts_with("ReferenceError"), "{message}")
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
    // The engine is fine afterwards.
    assert_eq!(
        eval_entity(&mut engine, "entity.entity_class == 'proxy'"),
        Ok(true)
    );
}

#[test]
fn eval_json_returns_results() {
    let mut engine = engine();
    let ev = event();
    for (source, want) in [
        ("event.check.labels", Some(json!({"region": "us-west-1"}))),
        ("event.check.occurrences * 2", Some(json!(360))),
        ("event.check.interval / 7 > 8", Some(json!(true))),
        (
            "event.entity.labels.environment.toUpperCase()",
            Some(json!("PRODUCTION")),
        ),
        ("null", Some(Value::Null)),
        ("undefined", None),
        ("event.nothing", None),
        ("(function () {})", None),
        ("1 / 0", Some(Value::Null)),
        (
            "(function () { event.check.status = 0; return event.check.status; }())",
            Some(json!(0)),
        ),
        (
            "({a: [1, 'x', {b: null}]})",
            Some(json!({"a": [1, "x", {"b": null}]})),
        ),
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(
            engine.eval_json(&expr, &[("event", &ev)]).unwrap(),
            want,
            "{source}"
        );
    }
    let cyclic = engine
        .compile("(function () { var o = {}; o.o = o; return o; }())")
        .unwrap();
    assert!(matches!(
        engine.eval_json(&cyclic, &[]),
        Err(Error::Runtime { .. })
    ));
}

#[test]
fn json_values_round_trip_exactly() {
    let mut engine = engine();
    let tricky = json!({
        "constructor": "c",
        "toString": "t",
        "__proto__": {"polluted": true},
        "hasOwnProperty": 1,
        "big": 9007199254740993u64,
        "neg": -2147483649i64,
        "float": 1.5,
        "unicode": "é ☃ 😀",
        "empty": {},
        "list": [],
    });
    let expr = engine.compile("value").unwrap();
    let back = engine
        .eval_json(&expr, &[("value", &tricky)])
        .unwrap()
        .unwrap();
    let mut expected = tricky.clone();
    // JS numbers are doubles, as in otto.
    expected["big"] = json!(9007199254740992u64);
    assert_eq!(back, expected);
    let proto = engine
        .compile("value.polluted === undefined && value.constructor === 'c'")
        .unwrap();
    assert_eq!(engine.eval_bool(&proto, &[("value", &tricky)]), Ok(true));
}

#[test]
fn several_globals_are_bound_and_unbound() {
    let mut engine = engine();
    let (a, b) = (json!(2), json!({"x": 3}));
    let expr = engine.compile("a + b.x == 5").unwrap();
    assert_eq!(engine.eval_bool(&expr, &[("a", &a), ("b", &b)]), Ok(true));
    let expr = engine.compile("typeof a").unwrap();
    assert_eq!(
        engine.eval_json(&expr, &[]).unwrap(),
        Some(json!("undefined"))
    );
}

#[test]
fn expressions_cannot_leave_state_behind() {
    let mut engine = engine();
    let ev = event();
    for source in [
        "(leaked = 1)",
        "(Object.prototype.entity_class = 'proxy')",
        "(Array.prototype.indexOf = function () { return 0; })",
        "(String.prototype.match = function () { return true; })",
        "(hour = function () { return 12; })",
        "(Math.trunc = function () { return 0; })",
        "(globalThis.weekday = null)",
        "delete globalThis.JSON",
        "(Object.getPrototypeOf(function* () {}).polluted = 1)",
        "(event.check.status = 0)",
    ] {
        let expr = engine.compile(source).unwrap();
        let _ = engine.eval_bool(&expr, &[("event", &ev)]);
    }
    assert_eq!(ev["check"]["status"], json!(2), "inputs are copies");
    // Overriding an inherited member on an object of one's own still works.
    for source in [
        "(function () { var o = {}; o.toString = function () { return 'x'; }; return String(o) == 'x'; }())",
        "(function () { function C() {} C.prototype.constructor = C; return new C().constructor === C; }())",
        "(function () { var e = new Error('m'); e.name = 'Custom'; return String(e) == 'Custom: m'; }())",
        "(function () { var o = {}; o.valueOf = function () { return 41; }; return o + 1 == 42; }())",
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(engine.eval_bool(&expr, &[]), Ok(true), "{source}");
    }
    for (source, want) in [
        ("typeof leaked == 'undefined'", true),
        ("({}).entity_class === undefined", true),
        ("[1, 2].indexOf(2) == 1", true),
        ("'abc'.match(/z/) === null", true),
        ("hour(1617050501) == 20", true),
        ("Math.trunc(1.5) == 1", true),
        (
            "typeof weekday == 'function' && typeof JSON == 'object'",
            true,
        ),
        (
            "Object.getPrototypeOf(function* () {}).polluted === undefined",
            true,
        ),
        ("event.check.status == 2", true),
    ] {
        let expr = engine.compile(source).unwrap();
        assert_eq!(
            engine.eval_bool(&expr, &[("event", &ev)]),
            Ok(want),
            "{source}"
        );
    }
}

#[test]
fn syntax_is_checked() {
    assert_eq!(check_syntax("entity.entity_class == 'proxy'"), Ok(()));
    assert_eq!(check_syntax("a, b"), Ok(()));
    assert_eq!(check_syntax("x // trailing comment"), Ok(()));
    for source in [
        "",
        "   ",
        "entity.entity_class ==",
        "entity.labels.",
        "(a",
        "a)",
        "var x = 1",
        "x = 1; x == 1",
        "if (a) { b }",
        "a; b",
        "return 1",
        "1 /* unterminated",
        "'unterminated",
        "a\0b",
        // Attempts to close the wrapper the engine puts around the expression.
        "1); }}); (function () {{ return (1",
        "1]; }); (function () { return [1",
        "a, b) => (1",
    ] {
        match check_syntax(source) {
            Err(Error::Syntax { expr, message }) => {
                assert_eq!(expr, source);
                assert!(!message.is_empty());
            }
            other => panic!("{source:?}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors_point_into_the_expression() {
    let err = check_syntax("entity.a == 1 &&").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`entity.a == 1 &&`"), "{text}");
    assert!(text.contains("end of the expression"), "{text}");
    let text = check_syntax("entity.a == = 1").unwrap_err().to_string();
    assert!(text.contains("line 1, column 13"), "{text}");
    let text = check_syntax("entity.a == 1 &&\n  entity.b == )")
        .unwrap_err()
        .to_string();
    assert!(text.contains("line 2, column 15"), "{text}");
}

#[test]
fn error_messages_name_the_expression() {
    let mut engine = engine();
    let long = format!("entity.nolabel.x || {}", "1 + ".repeat(100) + "1");
    let expr = engine.compile(&long).unwrap();
    let err = engine
        .eval_bool(&expr, &[("entity", &entity())])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("JavaScript expression `entity.nolabel.x || 1 + 1"),
        "{text}"
    );
    assert!(text.contains('…'), "long expressions are shortened: {text}");
    assert!(err.expr().ends_with('…'));
}

#[test]
fn compile_cache_reuses_compiled_expressions() {
    let mut engine = engine();
    assert_eq!(engine.compile_count(), 0);
    let a = engine.compile("entity.entity_class == 'proxy'").unwrap();
    let b = engine.compile("entity.entity_class == 'proxy'").unwrap();
    assert_eq!(a, b);
    assert_eq!(engine.compile_count(), 1);
    for _ in 0..5 {
        assert_eq!(engine.eval_bool(&a, &[("entity", &entity())]), Ok(true));
    }
    assert_eq!(engine.compile_count(), 1, "evaluating does not recompile");
    engine.compile("entity.entity_class == 'agent'").unwrap();
    assert_eq!(engine.compile_count(), 2);
    assert_eq!(engine.cached(), 2);
    // Syntax errors are not cached.
    assert!(engine.compile("entity ==").is_err());
    assert_eq!(engine.cached(), 2);
}

#[test]
fn compile_cache_is_bounded_and_evicts_least_recently_used() {
    let mut engine = engine();
    let keep = engine.compile("0 == 0").unwrap();
    for i in 1..jsexpr::CACHE_CAPACITY + 10 {
        engine.compile(&format!("{i} == {i}")).unwrap();
        // Keep the first one recently used.
        engine.eval_bool(&keep, &[]).unwrap();
    }
    assert_eq!(engine.cached(), jsexpr::CACHE_CAPACITY);
    let compiled = engine.compile_count();
    assert_eq!(engine.eval_bool(&keep, &[]), Ok(true));
    assert_eq!(
        engine.compile_count(),
        compiled,
        "recently used entry survived"
    );
    // "1 == 1" was the least recently used and was evicted; its handle still works.
    let evicted = engine.compile("1 == 1").unwrap();
    assert_eq!(engine.compile_count(), compiled + 1);
    assert_eq!(engine.eval_bool(&evicted, &[]), Ok(true));
}

#[test]
fn expr_handles_work_across_engines() {
    let mut first = engine();
    let mut second = engine();
    let expr = first.compile("entity.system.os == 'linux'").unwrap();
    assert_eq!(second.eval_bool(&expr, &[("entity", &entity())]), Ok(true));
    assert_eq!(second.compile_count(), 1);
}

#[test]
fn engine_is_send_and_runs_on_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let mut engine = engine();
    assert_send(&engine);
    let expr = engine.compile("entity.entity_class == 'proxy'").unwrap();
    let handle = std::thread::spawn(move || engine.eval_bool(&expr, &[("entity", &entity())]));
    assert_eq!(handle.join().unwrap(), Ok(true));
}

#[test]
fn bound_inputs_serve_several_expressions() {
    let mut engine = engine();
    let ev = event();
    let mut bound = engine.bind(vec![("event".into(), ev.clone())]);
    for (source, want) in [
        ("event.check.occurrences == 180", true),
        (
            "event.check.occurrences % (1800 / event.check.interval) == 0",
            true,
        ),
        ("event.entity.labels.environment == 'production'", true),
        ("event.check.history[0].status == 2", false),
        ("typeof entity == 'undefined'", true),
    ] {
        let expr = bound.compile(source).unwrap();
        assert_eq!(bound.eval_bool(&expr), Ok(want), "{source}");
    }
    let expr = bound.compile("event.check.labels").unwrap();
    assert_eq!(
        bound.eval_json(&expr).unwrap(),
        Some(json!({"region": "us-west-1"}))
    );
    drop(bound);
    // Unbound evaluations on the same engine still see their own globals only.
    let expr = engine.compile("typeof event").unwrap();
    assert_eq!(
        engine.eval_json(&expr, &[]).unwrap(),
        Some(json!("undefined"))
    );
}

#[test]
fn bound_inputs_are_read_only_for_every_evaluation() {
    let mut engine = engine();
    let ev = event();
    let mut bound = engine.bind(vec![("event".into(), ev.clone())]);
    for source in [
        "(event.check.status = 0)",
        "(event.check.history.push({status: 0}))",
        "(event.check.history[1].status = 0)",
        "delete event.check",
        "(event.added = 1)",
        "(event = null)",
        "(Object.setPrototypeOf(event.entity, {polluted: 1}))",
    ] {
        let expr = bound.compile(source).unwrap();
        let _ = bound.eval_bool(&expr);
    }
    for source in [
        "event.check.status == 2",
        "event.check.history.length == 2 && event.check.history[1].status == 2",
        "event.added === undefined && event.entity.polluted === undefined",
        // Within one expression, too, an assignment does not stick (sloppy mode ignores it).
        "(event.check.status = 7, event.check.status == 2)",
        "Object.isFrozen(event) && Object.isFrozen(event.check.history[0])",
    ] {
        let expr = bound.compile(source).unwrap();
        assert_eq!(bound.eval_bool(&expr), Ok(true), "{source}");
    }
    drop(bound);
    // An unbound evaluation gets its own mutable copy, as before.
    let expr = engine
        .compile("(event.check.status = 0, event.check.status == 0)")
        .unwrap();
    assert_eq!(engine.eval_bool(&expr, &[("event", &ev)]), Ok(true));
}

#[test]
fn bound_inputs_keep_json_exactly() {
    let mut engine = engine();
    let tricky = json!({
        "constructor": "c",
        "__proto__": {"polluted": true},
        "neg": -2147483649i64,
        "float": 1.5,
        "unicode": "é ☃ 😀 \"quoted\" \\ \n",
        "empty": {},
        "list": [null, true, 0],
    });
    let mut bound = engine.bind(vec![("value".into(), tricky.clone())]);
    let expr = bound.compile("value").unwrap();
    assert_eq!(bound.eval_json(&expr).unwrap(), Some(tricky.clone()));
    let expr = bound
        .compile("value.polluted === undefined && value.constructor === 'c'")
        .unwrap();
    assert_eq!(bound.eval_bool(&expr), Ok(true));
}

#[test]
fn errors_under_a_binding_name_the_expression() {
    let mut engine = engine();
    let mut deep = json!(1);
    for _ in 0..1000 {
        deep = json!([deep]);
    }
    let mut bound = engine.bind(vec![("deep".into(), deep)]);
    let expr = bound.compile("deep.length == 1").unwrap();
    match bound.eval_bool(&expr) {
        Err(Error::Input { expr, message }) => {
            assert_eq!(expr, "deep.length == 1");
            assert!(message.contains("global `deep`"), "{message}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    drop(bound);
    let ev = event();
    let mut bound = engine.bind(vec![("event".into(), ev.clone())]);
    let throws = bound.compile("event.nothing.here").unwrap();
    assert!(
        matches!(bound.eval_bool(&throws), Err(Error::Runtime { expr, .. }) if expr == "event.nothing.here")
    );
    let fine = bound.compile("event.check.status == 2").unwrap();
    assert_eq!(bound.eval_bool(&fine), Ok(true));
}
