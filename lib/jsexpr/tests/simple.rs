//! Differential tests of `jsexpr::simple` against QuickJS: generated expressions of the
//! subset, over inputs of every JSON type (and mixed-up types under the same names). Every
//! answer the simple evaluator gives must be exactly QuickJS's (same type, same number down to
//! the sign of zero, same string); where it declines, QuickJS answers instead.

use jsexpr::simple::{Expr, Found, Scope, Value, walk};
use jsexpr::{Engine, Limits};
use serde_json::{Value as Json, json};

struct Event(Json);

impl Scope for Event {
    fn lookup(&self, root: &str, keys: &[Box<str>]) -> Option<Found<'_>> {
        (root == "event").then(|| walk(&self.0, keys)).flatten()
    }
}

/// xorshift64*: deterministic, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn inputs() -> Vec<Json> {
    vec![
        json!({
            "n": 7, "zero": 0, "neg": -3, "f": 2.5, "tenth": 0.1, "big": 1e300,
            "huge": 9007199254740993u64, "s": "abc", "e": "", "num": "5", "u": "é😀\u{ff61}",
            "t": true, "fa": false, "nul": null,
            "o": {"x": 1, "s": "a", "constructor": "own", "inner": {"y": 2}},
            "l": [1, 2], "interval": 60, "occurrences": 30,
        }),
        // The same names holding other types.
        json!({
            "n": "7", "zero": false, "neg": null, "f": [], "tenth": {}, "big": -0.0,
            "huge": "", "s": 3, "e": 0, "num": 5, "u": "\u{1f600}", "t": 1, "fa": "false",
            "nul": "null", "o": {"x": "1"}, "l": {"length": 2}, "interval": 0,
            "occurrences": -1,
        }),
        json!({
            "n": -7.25, "zero": -0.0, "neg": 1e21, "f": 1e-7, "tenth": 3, "big": true,
            "s": "ABC", "e": " ", "num": "0x10", "u": "", "t": false, "fa": 0, "nul": 0,
            "o": null, "l": "list", "interval": 7, "occurrences": 1,
        }),
        json!({}),
    ]
}

const PATHS: &[&str] = &[
    "event.n",
    "event.zero",
    "event.neg",
    "event.f",
    "event.tenth",
    "event.big",
    "event.huge",
    "event.s",
    "event.e",
    "event.num",
    "event.u",
    "event.t",
    "event.fa",
    "event.nul",
    "event.o",
    "event.o.x",
    "event.o.s",
    "event.o.constructor",
    "event.o.inner.y",
    "event.o.missing",
    "event.l",
    "event.missing",
    "event.interval",
    "event.occurrences",
    "event.missing.deeper",
    "event.s.length",
    "event.toString",
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "60",
    "1800",
    "2.5",
    ".5",
    "1e3",
    "1E-7",
    "0.1",
    "1e21",
    "1.",
    "7.25",
    "''",
    "'abc'",
    "\"5\"",
    "'é'",
    "\"😀\"",
    "'a\\'b'",
    "\"\\n\"",
    "'ABC'",
    "true",
    "false",
    "null",
    "undefined",
];

const BINARY: &[&str] = &[
    "==", "!=", "===", "!==", "<", "<=", ">", ">=", "&&", "||", "+", "-", "*", "/", "%",
];

fn expression(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.below(10) < 3 {
        return if rng.below(2) == 0 {
            rng.pick(PATHS).to_owned()
        } else {
            rng.pick(LITERALS).to_owned()
        };
    }
    match rng.below(10) {
        0 => format!("!{}", expression(rng, depth - 1)),
        // Spaced: `--x` and `a--b` are the decrement operator, not two minus signs.
        1 => format!("- {}", expression(rng, depth - 1)),
        2 => format!("+ {}", expression(rng, depth - 1)),
        3 => format!("({})", expression(rng, depth - 1)),
        _ => {
            let op = rng.pick(BINARY);
            let space = if rng.below(2) == 0 || op == "+" || op == "-" {
                " "
            } else {
                ""
            };
            format!(
                "{}{space}{op}{space}{}",
                expression(rng, depth - 1),
                expression(rng, depth - 1)
            )
        }
    }
}

/// A JavaScript literal that evaluates to exactly `n`.
fn number_literal(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n == 0.0 && n.is_sign_negative() {
        "-0".into()
    } else {
        // Rust prints the shortest digits that round-trip; JavaScript reads them back
        // correctly rounded.
        format!("({n:e})")
    }
}

/// A QuickJS expression that is `true` exactly when `source` evaluates to `value`.
fn same_as(source: &str, value: &Value<'_>) -> String {
    let expected = match value {
        Value::Undefined => "undefined".to_owned(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_literal(*n),
        Value::String(s) => serde_json::to_string(s).unwrap(),
        Value::Object => {
            return format!(
                "(function (v) {{ return typeof v === 'object' && v !== null; }})(({source}))"
            );
        }
    };
    format!("Object.is(({source}), {expected})")
}

#[test]
fn generated_expressions_agree_with_quickjs() {
    let mut engine = Engine::new(Limits::default()).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let inputs = inputs();
    let (mut answered, mut declined) = (0u32, 0u32);
    let mut failures = Vec::new();
    for _ in 0..1500 {
        let source = expression(&mut rng, 4);
        let expr = Expr::compile(&source)
            .unwrap_or_else(|| panic!("`{source}` is in the subset but did not compile"));
        for input in &inputs {
            let scope = Event(input.clone());
            let mut bound = engine.bind(vec![("event".to_owned(), input.clone())]);
            let Some(value) = expr.eval(&scope) else {
                declined += 1;
                continue;
            };
            answered += 1;
            let check = bound.compile(&same_as(&source, &value)).unwrap();
            let plain = bound.compile(&source).unwrap();
            let agree = bound.eval_bool(&check);
            let truthy = bound.eval_bool(&plain);
            if agree != Ok(true) || truthy != Ok(value.truthy()) {
                failures.push(format!(
                    "`{source}` on {input}: simple says {value:?}, QuickJS: same {agree:?}, truthy {truthy:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most of the generated cases must be answered, or this test says little.
    assert!(
        answered > declined,
        "answered {answered}, declined {declined}"
    );
}

/// Where the simple evaluator declines, QuickJS either throws (so the caller's error path is
/// QuickJS's) or answers with a conversion this module leaves alone.
#[test]
fn declined_reads_are_the_ones_quickjs_treats_specially() {
    let mut engine = Engine::new(Limits::default()).unwrap();
    let input = inputs().remove(0);
    let scope = Event(input.clone());
    let mut bound = engine.bind(vec![("event".to_owned(), input)]);
    for (source, throws) in [
        ("event.missing.deeper", true),
        ("event.nul.x", true),
        ("event.s.length == 3", false),
        ("event.l.length == 2", false),
        ("event.o.toString === undefined", false),
        ("event.num == 5", false),
        ("event.n + 'x' == '7x'", false),
    ] {
        let expr = Expr::compile(source).unwrap();
        assert_eq!(expr.eval(&scope), None, "{source}");
        let compiled = bound.compile(source).unwrap();
        let result = bound.eval_bool(&compiled);
        assert_eq!(result.is_err(), throws, "{source}: {result:?}");
    }
}

/// Sensu's documented filter expressions that the subset covers, each answered without
/// QuickJS and as QuickJS answers.
#[test]
fn documented_filter_expressions() {
    let mut engine = Engine::new(Limits::default()).unwrap();
    let event = json!({
        "check": {"occurrences": 30, "interval": 60, "status": 2, "name": "check_cpu",
                  "labels": {"region": "us-west-1"}, "issued": 1617050501},
        "entity": {"labels": {"environment": "production"}, "entity_class": "agent"},
        "is_incident": true, "is_resolution": false, "has_metrics": false,
    });
    let scope = Event(event.clone());
    let mut bound = engine.bind(vec![("event".to_owned(), event)]);
    for source in [
        "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0",
        "event.check.status != 0",
        "event.check.occurrences > 5",
        "event.entity.labels.environment == 'production'",
        "event.entity.entity_class === \"agent\" && event.check.labels.region == 'us-west-1'",
        "event.is_incident && !event.is_resolution",
        "!event.has_metrics",
        "event.check.name == 'check_cpu' || event.check.name == 'check_mem'",
    ] {
        let fast = Expr::compile(source).and_then(|e| e.eval_bool(&scope));
        let compiled = bound.compile(source).unwrap();
        assert_eq!(fast, Some(bound.eval_bool(&compiled).unwrap()), "{source}");
    }
}
