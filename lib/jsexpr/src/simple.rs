//! A small evaluator for the commonest filter expressions, without QuickJS.
//!
//! Most Sensu filter expressions are a few property reads compared with literals
//! (`event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval)
//! == 0`). Running them in QuickJS costs little per evaluation, but the event must first be
//! converted into JavaScript objects, which costs far more than the expression. This module
//! evaluates such expressions straight against the JSON the caller has (and only the parts the
//! expression reads), so a caller can skip the conversion.
//!
//! The subset: one root identifier's property paths (`event.check.status`), number, string,
//! `true`/`false`/`null`/`undefined` literals, parentheses, `!`, unary `-` and `+`, `*` `/`
//! `%` `+` `-`, `<` `<=` `>` `>=`, `==` `!=` `===` `!==`, `&&` `||`. Anything else does not
//! compile ([`Expr::compile`] returns `None`).
//!
//! Exactness comes before coverage: an evaluation returns `None` ("ask QuickJS") whenever
//! JavaScript's answer would need more than this module implements: reading a property of
//! anything but a plain object (`undefined` throws, strings and arrays have their own
//! properties), names that `Object.prototype` provides, objects in arithmetic or in `==`
//! against anything but `null`/`undefined`, string-to-number conversion and number-to-string
//! conversion. What it does answer is what QuickJS answers, which the differential tests
//! (`tests/simple.rs`) check over generated expressions and inputs.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value as Json;

/// The members every plain object inherits: reading one of these is not a JSON lookup.
const OBJECT_PROTOTYPE: &[&str] = &[
    "__proto__",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
    "constructor",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
];

/// Deepest nesting of parentheses and unary operators accepted (the parser recurses).
const MAX_DEPTH: usize = 64;

/// Longest expression accepted, in tokens: evaluation recurses once per operator, so this
/// bounds its stack use.
const MAX_TOKENS: usize = 512;

/// Where property paths are read from.
pub trait Scope {
    /// The value of `root.keys[0].keys[1]...`, read with JavaScript's rules (see [`walk`]);
    /// `None` when this scope cannot tell (unknown root, or a read [`walk`] declines).
    fn lookup(&self, root: &str, keys: &[Box<str>]) -> Option<Found<'_>>;
}

/// The outcome of a property read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'a> {
    Value(&'a Json),
    /// A plain object without that own property (nor an inherited one).
    Undefined,
}

/// Reads `keys` one after another from `value` as JavaScript reads properties of the object
/// graph `JSON.parse` would build from it; `None` where that needs more than a JSON lookup
/// (a property of a non-object, which throws or reaches `String`/`Array` members, or a name
/// every object inherits).
pub fn walk<'a>(value: &'a Json, keys: &[Box<str>]) -> Option<Found<'a>> {
    let mut current = value;
    for (i, key) in keys.iter().enumerate() {
        let Json::Object(map) = current else {
            return None;
        };
        if OBJECT_PROTOTYPE.contains(&&**key) {
            return None;
        }
        match map.get(&**key) {
            Some(v) => current = v,
            // `undefined.x` throws: only the last read may miss.
            None if i + 1 == keys.len() => return Some(Found::Undefined),
            None => return None,
        }
    }
    Some(Found::Value(current))
}

/// A compiled expression of the subset.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Str(Box<str>),
    Bool(bool),
    Null,
    Undefined,
    Path(Box<str>, Vec<Box<str>>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Plus(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    StrictEq,
    StrictNe,
}

/// A JavaScript value as far as this module can hold one; objects and arrays are opaque.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    /// An object or an array (only their truthiness and null-ness are known here).
    Object,
}

impl Value<'_> {
    /// JavaScript's `ToBoolean`.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Object => true,
        }
    }

    fn from_json(j: &Json) -> Value<'_> {
        match j {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Value::String(Cow::Borrowed(s)),
            Json::Array(_) | Json::Object(_) => Value::Object,
        }
    }

    /// `ToNumber` for the types where it needs no string parsing.
    fn to_number(&self) -> Option<f64> {
        match self {
            Value::Undefined => Some(f64::NAN),
            Value::Null => Some(0.0),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => Some(*n),
            Value::String(_) | Value::Object => None,
        }
    }
}

impl Expr {
    /// `None` unless `source` is an expression of the subset (a source outside it is not
    /// necessarily invalid JavaScript).
    pub fn compile(source: &str) -> Option<Expr> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let node = parser.or()?;
        (parser.peek() == &Token::End).then_some(Expr { node })
    }

    /// The expression's value; `None` where QuickJS must answer (see the module docs).
    pub fn eval<'s>(&'s self, scope: &'s dyn Scope) -> Option<Value<'s>> {
        eval(&self.node, scope)
    }

    /// [`Expr::eval`] converted with JavaScript truthiness, as [`crate::Engine::eval_bool`].
    pub fn eval_bool(&self, scope: &dyn Scope) -> Option<bool> {
        self.eval(scope).map(|v| v.truthy())
    }
}

fn eval<'s>(node: &'s Node, scope: &'s dyn Scope) -> Option<Value<'s>> {
    Some(match node {
        Node::Num(n) => Value::Number(*n),
        Node::Str(s) => Value::String(Cow::Borrowed(s)),
        Node::Bool(b) => Value::Bool(*b),
        Node::Null => Value::Null,
        Node::Undefined => Value::Undefined,
        Node::Path(root, keys) => match scope.lookup(root, keys)? {
            Found::Value(j) => Value::from_json(j),
            Found::Undefined => Value::Undefined,
        },
        Node::Not(a) => Value::Bool(!eval(a, scope)?.truthy()),
        Node::Neg(a) => Value::Number(-eval(a, scope)?.to_number()?),
        Node::Plus(a) => Value::Number(eval(a, scope)?.to_number()?),
        Node::And(a, b) => {
            let left = eval(a, scope)?;
            if left.truthy() { eval(b, scope)? } else { left }
        }
        Node::Or(a, b) => {
            let left = eval(a, scope)?;
            if left.truthy() { left } else { eval(b, scope)? }
        }
        Node::Binary(op, a, b) => binary(*op, eval(a, scope)?, eval(b, scope)?)?,
    })
}

fn binary<'s>(op: Op, a: Value<'s>, b: Value<'s>) -> Option<Value<'s>> {
    let arithmetic =
        |f: fn(f64, f64) -> f64| Some(Value::Number(f(a.to_number()?, b.to_number()?)));
    match op {
        Op::Mul => arithmetic(|x, y| x * y),
        Op::Div => arithmetic(|x, y| x / y),
        // Rust's `%` on floats is C's fmod, as ECMAScript specifies it.
        Op::Rem => arithmetic(|x, y| x % y),
        Op::Sub => arithmetic(|x, y| x - y),
        Op::Add => match (&a, &b) {
            (Value::String(x), Value::String(y)) => {
                Some(Value::String(Cow::Owned(format!("{x}{y}"))))
            }
            (Value::String(_), other) | (other, Value::String(_)) => {
                let text = match other {
                    Value::Undefined => "undefined",
                    Value::Null => "null",
                    Value::Bool(true) => "true",
                    Value::Bool(false) => "false",
                    // Number-to-string and objects' `toString` are QuickJS's.
                    _ => return None,
                };
                Some(Value::String(Cow::Owned(match a {
                    Value::String(x) => format!("{x}{text}"),
                    _ => format!("{text}{}", string(&b)?),
                })))
            }
            _ => arithmetic(|x, y| x + y),
        },
        Op::Lt => compare(&a, &b).map(|o| Value::Bool(o == Some(Ordering::Less))),
        Op::Gt => compare(&a, &b).map(|o| Value::Bool(o == Some(Ordering::Greater))),
        Op::Le => compare(&a, &b)
            .map(|o| Value::Bool(matches!(o, Some(Ordering::Less | Ordering::Equal)))),
        Op::Ge => compare(&a, &b)
            .map(|o| Value::Bool(matches!(o, Some(Ordering::Greater | Ordering::Equal)))),
        Op::Eq => loose_eq(&a, &b).map(Value::Bool),
        Op::Ne => loose_eq(&a, &b).map(|e| Value::Bool(!e)),
        Op::StrictEq => strict_eq(&a, &b).map(Value::Bool),
        Op::StrictNe => strict_eq(&a, &b).map(|e| Value::Bool(!e)),
    }
}

fn string<'a>(v: &'a Value<'_>) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// The abstract relational comparison; `Some(None)` when it is undefined (a NaN), which
/// makes every relational operator false.
fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<Option<Ordering>> {
    if let (Value::String(x), Value::String(y)) = (a, b) {
        // JavaScript compares strings by UTF-16 code units, not by code points.
        return Some(Some(x.encode_utf16().cmp(y.encode_utf16())));
    }
    Some(a.to_number()?.partial_cmp(&b.to_number()?))
}

/// `==` (IsLooselyEqual) where it needs no string or object conversion.
fn loose_eq(a: &Value<'_>, b: &Value<'_>) -> Option<bool> {
    use Value::*;
    Some(match (a, b) {
        (Undefined | Null, Undefined | Null) => true,
        // Only `null` and `undefined` are loosely equal to them (`0 == null` is false).
        (Undefined | Null, _) | (_, Undefined | Null) => false,
        (Number(x), Number(y)) => x == y,
        (String(x), String(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        // A boolean compares as its number: `true == 1`.
        (Bool(_), Number(_)) | (Number(_), Bool(_)) => a.to_number()? == b.to_number()?,
        // String-to-number conversion, objects' identity or `ToPrimitive`: QuickJS's.
        _ => return None,
    })
}

/// `===` (IsStrictlyEqual); two objects compare by identity, which is QuickJS's to know.
fn strict_eq(a: &Value<'_>, b: &Value<'_>) -> Option<bool> {
    use Value::*;
    Some(match (a, b) {
        (Undefined, Undefined) | (Null, Null) => true,
        (Number(x), Number(y)) => x == y,
        (String(x), String(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Object, Object) => return None,
        _ => false,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Str(Box<str>),
    Ident(Box<str>),
    Punct(&'static str),
    End,
}

/// Longest first, so `===` is not read as `==` then `=`.
const PUNCTUATORS: &[&str] = &[
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "+", "-", "*", "/", "%", "!", "(",
    ")", ".",
];

fn tokenize(source: &str) -> Option<Vec<Token>> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'0'..=b'9' => {
                let (n, end) = number(source, i)?;
                tokens.push(Token::Num(n));
                i = end;
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (n, end) = number(source, i)?;
                tokens.push(Token::Num(n));
                i = end;
            }
            b'\'' | b'"' => {
                let (s, end) = string_literal(source, i)?;
                tokens.push(Token::Str(s));
                i = end;
            }
            c if is_ident_start(c) => {
                let end = ident_end(bytes, i);
                tokens.push(Token::Ident(source[i..end].into()));
                i = end;
            }
            _ => {
                let rest = &source[i..];
                // `++`, `--`, `//`, `/*`, `<<`, `>>`, `=` and the rest are outside the subset.
                if ["++", "--", "//", "/*", "<<", ">>", "=>"]
                    .iter()
                    .any(|p| rest.starts_with(p))
                {
                    return None;
                }
                let p = PUNCTUATORS.iter().find(|p| rest.starts_with(**p))?;
                // `a ==== b`, `a !=== b`: no longer punctuator exists, so JS would fail too.
                if (*p == "===" || *p == "!==") && rest[3..].starts_with('=') {
                    return None;
                }
                tokens.push(Token::Punct(p));
                i += p.len();
            }
        }
    }
    tokens.push(Token::End);
    (tokens.len() <= MAX_TOKENS).then_some(tokens)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$'
}

fn ident_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && (is_ident_start(bytes[end]) || bytes[end].is_ascii_digit()) {
        end += 1;
    }
    end
}

/// A decimal literal: `0` or `[1-9][0-9]*`, optional fraction, optional exponent (legacy
/// octal `010`, hex, separators and the like are left to QuickJS).
fn number(source: &str, start: usize) -> Option<(f64, usize)> {
    let bytes = source.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = start;
    if bytes[i] != b'.' {
        let end = digits(i);
        if bytes[i] == b'0' && end - i > 1 {
            return None;
        }
        i = end;
        if bytes.get(i) == Some(&b'.') {
            i = digits(i + 1);
        }
    } else {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            return None;
        }
        i = end;
    }
    // `3in`, `1.5.x`, `1_000`: an identifier or a dot right after a number.
    if bytes
        .get(i)
        .is_some_and(|&c| is_ident_start(c) || c == b'.' || c == b'\\' || !c.is_ascii())
    {
        return None;
    }
    // Rust's parser is correctly rounded, as ECMAScript requires.
    let text = &source[start..i];
    let n: f64 = if let Some(rest) = text.strip_prefix('.') {
        format!("0.{rest}").parse().ok()?
    } else {
        text.parse().ok()?
    };
    Some((n, i))
}

fn string_literal(source: &str, start: usize) -> Option<(Box<str>, usize)> {
    let quote = source.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out.into(), start + 1 + off + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '\\' => '\\',
                    '\'' => '\'',
                    '"' => '"',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    // \0, \x, \u, octal escapes, line continuations: QuickJS's.
                    _ => return None,
                });
            }
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => return None,
            c => out.push(c),
        }
    }
    None
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Token::Punct(p) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Left-associative binary levels, lowest precedence first.
    fn level(&mut self, ops: &[(&str, Op)], next: fn(&mut Parser) -> Option<Node>) -> Option<Node> {
        let mut left = next(self)?;
        'outer: loop {
            for (p, op) in ops {
                if self.eat(p) {
                    left = Node::Binary(*op, Box::new(left), Box::new(next(self)?));
                    continue 'outer;
                }
            }
            return Some(left);
        }
    }

    fn or(&mut self) -> Option<Node> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Node> {
        let mut left = self.equality()?;
        while self.eat("&&") {
            left = Node::And(Box::new(left), Box::new(self.equality()?));
        }
        Some(left)
    }

    fn equality(&mut self) -> Option<Node> {
        self.level(
            &[
                ("===", Op::StrictEq),
                ("!==", Op::StrictNe),
                ("==", Op::Eq),
                ("!=", Op::Ne),
            ],
            Parser::relational,
        )
    }

    fn relational(&mut self) -> Option<Node> {
        self.level(
            &[("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)],
            Parser::additive,
        )
    }

    fn additive(&mut self) -> Option<Node> {
        self.level(&[("+", Op::Add), ("-", Op::Sub)], Parser::multiplicative)
    }

    fn multiplicative(&mut self) -> Option<Node> {
        self.level(
            &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
            Parser::unary,
        )
    }

    fn unary(&mut self) -> Option<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let node = if self.eat("!") {
            Node::Not(Box::new(self.unary()?))
        } else if self.eat("-") {
            Node::Neg(Box::new(self.unary()?))
        } else if self.eat("+") {
            Node::Plus(Box::new(self.unary()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Some(node)
    }

    fn primary(&mut self) -> Option<Node> {
        let token = self.peek().clone();
        self.pos += 1;
        Some(match token {
            Token::Num(n) => Node::Num(n),
            Token::Str(s) => Node::Str(s),
            Token::Punct("(") => {
                let inner = self.or()?;
                if !self.eat(")") {
                    return None;
                }
                inner
            }
            Token::Ident(name) => match &*name {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                "null" => Node::Null,
                // A global property that cannot be redefined (the engine freezes it too).
                "undefined" => Node::Undefined,
                _ if is_reserved(&name) => return None,
                _ => {
                    let mut keys = Vec::new();
                    while self.eat(".") {
                        match self.peek().clone() {
                            Token::Ident(key) => {
                                self.pos += 1;
                                keys.push(key);
                            }
                            _ => return None,
                        }
                    }
                    // A call (`hour(...)`) or an index (`a[0]`) is not in the subset; the
                    // `(` and `[` tokens make the whole expression fail to compile.
                    Node::Path(name, keys)
                }
            },
            _ => return None,
        })
    }
}

/// Words that cannot name a variable (ES5 reserved words, strict-mode ones included, and
/// the literals handled above); a root of the subset must not be one of them.
fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "break"
            | "case"
            | "catch"
            | "class"
            | "const"
            | "continue"
            | "debugger"
            | "default"
            | "delete"
            | "do"
            | "else"
            | "enum"
            | "export"
            | "extends"
            | "finally"
            | "for"
            | "function"
            | "if"
            | "import"
            | "in"
            | "instanceof"
            | "new"
            | "return"
            | "super"
            | "switch"
            | "this"
            | "throw"
            | "try"
            | "typeof"
            | "var"
            | "void"
            | "while"
            | "with"
            | "yield"
            | "let"
            | "static"
            | "implements"
            | "interface"
            | "package"
            | "private"
            | "protected"
            | "public"
            | "await"
            | "async"
            | "of"
            | "arguments"
            | "eval"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct One(Json);

    impl Scope for One {
        fn lookup(&self, root: &str, keys: &[Box<str>]) -> Option<Found<'_>> {
            (root == "event").then(|| walk(&self.0, keys)).flatten()
        }
    }

    fn run(src: &str, event: &Json) -> Option<bool> {
        Expr::compile(src)?.eval_bool(&One(event.clone()))
    }

    #[test]
    fn the_occurrence_filter() {
        let src = "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0";
        let at = |n: i64| run(src, &json!({"check": {"occurrences": n, "interval": 60}}));
        assert_eq!(at(1), Some(true));
        assert_eq!(at(2), Some(false));
        assert_eq!(at(30), Some(true));
    }

    #[test]
    fn outside_the_subset_does_not_compile() {
        for src in [
            "typeof event",
            "event.a = 1",
            "event.a[0]",
            "hour(event.timestamp)",
            "event.a ? 1 : 2",
            "010",
            "0x10",
            "1_000",
            "'\\x41'",
            "event.a // comment",
            "a++",
            "(1",
            "1)",
            "",
            "event.a in event",
            "new event",
            "3in",
            "1 ==== 1",
            "event.",
        ] {
            assert_eq!(Expr::compile(src), None, "{src}");
        }
    }

    #[test]
    fn unsure_reads_defer_to_quickjs() {
        let e = json!({"a": {"b": 1}, "s": "text", "l": [1]});
        assert_eq!(run("event.a.b == 1", &e), Some(true));
        assert_eq!(run("event.missing === undefined", &e), Some(true));
        // `undefined.x` throws; strings and arrays have properties of their own.
        assert_eq!(run("event.missing.x", &e), None);
        assert_eq!(run("event.s.length == 4", &e), None);
        assert_eq!(run("event.l.length == 1", &e), None);
        assert_eq!(run("event.a.constructor", &e), None);
        assert_eq!(run("other.a", &e), None);
        // Conversions QuickJS owns.
        assert_eq!(run("event.s == 5", &e), None);
        assert_eq!(run("event.a.b + 's'", &e), None);
        assert_eq!(run("event.a == event.a", &e), None);
        // Short-circuits never look at the other side.
        assert_eq!(run("true || event.missing.x", &e), Some(true));
    }
}
