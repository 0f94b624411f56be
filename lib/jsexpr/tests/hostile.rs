//! Hostile expressions must fail within their limits and leave the engine usable.

use std::time::{Duration, Instant};

use jsexpr::{Engine, Error, Limits};
use serde_json::json;

fn short_limits() -> Limits {
    Limits {
        time: Duration::from_millis(50),
        memory_bytes: 8 << 20,
        ..Limits::default()
    }
}

/// Runs `source`, checks the error with `expect`, that it came back well within a second,
/// and that the same engine still evaluates an ordinary expression.
fn assert_contained(engine: &mut Engine, source: &str, expect: impl Fn(&Error) -> bool) {
    let started = Instant::now();
    let shown: String = source.chars().take(80).collect();
    let result = engine
        .compile(source)
        .and_then(|expr| engine.eval_bool(&expr, &[("event", &json!({"n": 1}))]));
    let took = started.elapsed();
    let limit = engine.limits().time;
    match &result {
        Err(err) => assert!(expect(err), "{shown}: unexpected error {err}"),
        Ok(v) => panic!("{shown}: expected an error, got Ok({v})"),
    }
    assert!(
        took < limit + Duration::from_secs(1),
        "{shown}: took {took:?}"
    );
    let ok = engine.compile("event.n == 1").unwrap();
    assert_eq!(
        engine.eval_bool(&ok, &[("event", &json!({"n": 1}))]),
        Ok(true),
        "after {shown}"
    );
}

fn is_timeout(err: &Error) -> bool {
    matches!(err, Error::Timeout { limit, .. } if *limit == Duration::from_millis(50))
}

fn is_oom(err: &Error) -> bool {
    matches!(err, Error::OutOfMemory { .. })
}

fn is_runtime(err: &Error) -> bool {
    matches!(err, Error::Runtime { .. })
}

#[test]
fn endless_loops_time_out() {
    let mut engine = Engine::new(short_limits()).unwrap();
    for source in [
        "(function () { while (true) {} }())",
        "(function () { for (;;) { try { while (true) {} } catch (e) {} } }())",
        "(function () { var i = 0; do { i++; } while (i > 0); }())",
        "[1].map(function f() { for (;;) {} })",
        "(function () { while (true) { try { throw 1; } catch (e) {} } }())",
        "(function () { try { while (true) {} } finally { while (true) {} } }())",
        "/(a+)+b/.test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')",
        "(function () { var a = []; for (var i = 0; i < 2000; i++) a.push(i); while (true) a.sort(function (x, y) { return y - x; }); }())",
    ] {
        let started = Instant::now();
        assert_contained(&mut engine, source, is_timeout);
        assert!(
            started.elapsed() >= Duration::from_millis(45),
            "{source} stopped early"
        );
    }
}

#[test]
fn the_time_limit_is_per_evaluation() {
    let mut engine = Engine::new(Limits {
        time: Duration::from_millis(100),
        ..short_limits()
    })
    .unwrap();
    // 40 ms of work passes a 100 ms limit again and again (with room for a loaded machine).
    let busy = engine
        .compile("(function () { var end = Date.now() + 40; while (Date.now() < end) {} return true; }())")
        .unwrap();
    for _ in 0..5 {
        assert_eq!(engine.eval_bool(&busy, &[]), Ok(true));
    }
}

#[test]
fn runaway_recursion_is_a_runtime_error() {
    let mut engine = Engine::new(short_limits()).unwrap();
    for source in [
        "(function f() { return f(); }())",
        "(function f(n) { return f(n + 1) + 1; }(0))",
        "(function () { var o = {}; o.toString = function () { return String(o); }; return String(o); }())",
    ] {
        assert_contained(&mut engine, source, |e| {
            is_runtime(e) && e.to_string().contains("stack")
        });
    }
    // Deep nesting in the source itself stops the parser, not the process.
    let nested = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_contained(&mut engine, &nested, |e| {
        matches!(e, Error::Syntax { .. } | Error::OutOfMemory { .. })
    });
}

#[test]
fn huge_allocations_run_out_of_memory() {
    let mut engine = Engine::new(short_limits()).unwrap();
    for source in [
        "'x'.repeat(64 << 20)",
        "new Array(1 << 24).fill(0)",
        "(function () { var a = []; while (true) a.push([1, 2, 3, 4]); }())",
        "(function () { var a = []; while (true) a.push('x'.repeat(1 << 16) + a.length); }())",
        "(function () { var o = {}; for (var i = 0; ; i++) o['k' + i] = i; }())",
        "new ArrayBuffer(1 << 30)",
        "JSON.stringify(new Array(1 << 21).fill('abcdefgh'))",
    ] {
        assert_contained(&mut engine, source, |e| is_oom(e) || is_timeout(e));
    }
    assert!(engine.rebuild_count() >= 1);
}

#[test]
fn out_of_memory_is_reported_as_such() {
    // A generous time limit, so the memory limit is certainly hit first (unoptimised test
    // builds of QuickJS are slow).
    let mut engine = Engine::new(Limits {
        time: Duration::from_secs(5),
        memory_bytes: 2 << 20,
        ..Limits::default()
    })
    .unwrap();
    assert_contained(&mut engine, "'x'.repeat(64 << 20)", is_oom);
    assert_contained(
        &mut engine,
        "(function () { var a = []; while (true) a.push([1, 2, 3, 4]); }())",
        is_oom,
    );
}

#[test]
fn catching_the_limit_does_not_escape_it() {
    let mut engine = Engine::new(short_limits()).unwrap();
    // The interrupt is uncatchable; an allocation failure is catchable, but then time runs out.
    assert_contained(
        &mut engine,
        "(function () { for (;;) { try { while (true) {} } catch (e) {} } }())",
        is_timeout,
    );
    assert_contained(
        &mut engine,
        "(function () { for (;;) { try { var a = []; while (true) a.push([1, 2]); } catch (e) {} } }())",
        |e| is_timeout(e) || is_oom(e),
    );
}

#[test]
fn doubling_strings_fails_cleanly() {
    let mut engine = Engine::new(short_limits()).unwrap();
    // QuickJS concatenates lazily (ropes), so this ends at the maximum string length, or at
    // the memory limit once the string is flattened.
    assert_contained(
        &mut engine,
        "(function () { var s = 'x'; while (true) s += s; }())",
        |e| is_runtime(e) || is_oom(e),
    );
    assert_contained(
        &mut engine,
        "(function () { var s = 'x'; while (true) { s += s; s.charCodeAt(s.length - 1); } }())",
        |e| is_runtime(e) || is_oom(e),
    );
}

#[test]
fn thrown_values_are_runtime_errors() {
    let mut engine = Engine::new(short_limits()).unwrap();
    for (source, fragment) in [
        (
            "(function () { throw new Error('boom'); }())",
            "Error: boom",
        ),
        ("(function () { throw 'text'; }())", "string \"text\""),
        ("(function () { throw 42; }())", "number 42"),
        (
            "(function () { throw { toString: function () { while (true) {} } }; }())",
            "object",
        ),
        ("(function () { throw null; }())", "null"),
        ("JSON.parse('{')", "SyntaxError"),
        ("undefined_function()", "ReferenceError"),
        ("null.x", "TypeError"),
    ] {
        assert_contained(&mut engine, source, |e| {
            is_runtime(e) && e.to_string().contains(fragment)
        });
    }
}

#[test]
fn hostile_code_at_compile_time_is_contained() {
    let mut engine = Engine::new(short_limits()).unwrap();
    // Tries to close the wrapper and run a loop while the wrapper script itself is evaluated.
    let escape = "1); } }); while (true) {} (function (__g) { with (__g) { return (1";
    assert_contained(&mut engine, escape, |e| {
        matches!(e, Error::Syntax { .. } | Error::Timeout { .. })
    });
}

#[test]
fn deeply_nested_input_is_rejected() {
    let mut engine = Engine::new(short_limits()).unwrap();
    let mut deep = json!(1);
    for _ in 0..1000 {
        deep = json!([deep]);
    }
    let expr = engine.compile("deep.length").unwrap();
    match engine.eval_bool(&expr, &[("deep", &deep)]) {
        Err(Error::Input { message, .. }) => assert!(message.contains("deep"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
    let ok = engine.compile("1 == 1").unwrap();
    assert_eq!(engine.eval_bool(&ok, &[]), Ok(true));
}

#[test]
fn no_host_access() {
    let mut engine = Engine::new(short_limits()).unwrap();
    let expr = engine
        .compile(
            "[typeof require, typeof process, typeof std, typeof os, typeof fetch, \
             typeof XMLHttpRequest, typeof setTimeout, typeof import_meta]",
        )
        .unwrap();
    let all = engine.eval_json(&expr, &[]).unwrap().unwrap();
    assert!(
        all.as_array().unwrap().iter().all(|t| t == "undefined"),
        "{all}"
    );
    // Dynamic import has no module loader to reach.
    let expr = engine.compile("import('os')").unwrap();
    let _ = engine.eval_bool(&expr, &[]);
}

#[test]
fn limits_hold_under_a_binding_and_the_binding_survives() {
    let mut engine = Engine::new(short_limits()).unwrap();
    let event = json!({"n": 1, "check": {"status": 2}});
    let mut bound = engine.bind(vec![("event".into(), event.clone())]);
    let ok = bound.compile("event.n == 1").unwrap();
    assert_eq!(bound.eval_bool(&ok), Ok(true));

    let spin = bound
        .compile("(function () { while (true) {} }())")
        .unwrap();
    let started = Instant::now();
    assert!(matches!(bound.eval_bool(&spin), Err(e) if is_timeout(&e)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(bound.eval_bool(&ok), Ok(true), "after the timeout");

    drop(bound);

    // Running out of memory rebuilds the runtime, which drops the bound scope: the next
    // evaluation binds the inputs again. (A generous time limit, so memory runs out first.)
    let mut engine = Engine::new(Limits {
        time: Duration::from_secs(5),
        memory_bytes: 2 << 20,
        ..Limits::default()
    })
    .unwrap();
    let mut bound = engine.bind(vec![("event".into(), event.clone())]);
    let ok = bound
        .compile("event.n == 1 && event.check.status == 2")
        .unwrap();
    assert_eq!(bound.eval_bool(&ok), Ok(true));
    let hog = bound.compile("'x'.repeat(64 << 20)").unwrap();
    assert!(matches!(bound.eval_bool(&hog), Err(e) if is_oom(&e)));
    assert_eq!(
        bound.eval_bool(&ok),
        Ok(true),
        "after running out of memory"
    );
    drop(bound);
    assert_eq!(engine.rebuild_count(), 1);
}
