//! Token substitution (sensu-compat 5.6): the part of Go's `text/template` that Sensu checks
//! and hooks use, evaluated against the agent's entity as Go sees it.
//!
//! Supported, with Go's semantics:
//! - text and actions `{{ ... }}`, trim markers `{{- ` and ` -}}`, comments `{{/* ... */}}`;
//! - operands: field chains from the entity (`.name`, `.labels.disk_warning`,
//!   `.system.hostname`), `.` and `$` (the whole entity), `$.field`, string literals (`"..."`
//!   with Go escapes, `` `raw` ``), integers, floats, `true`, `false`, `nil`, parenthesised
//!   pipelines;
//! - pipes (`{{ .labels.x | default "y" }}`: the value becomes the last argument);
//! - functions `default` (Sensu: the fallback replaces a missing/nil value only; an empty
//!   string is kept), `assetPath` (see [`asset_env_name`]) and Go's builtin `index` (for keys
//!   that are not identifiers: `{{ index .labels "disk.warning" }}`).
//!
//! Everything else (`if`, `range`, `with`, variables, other functions) is an error, as an
//! unknown function is in Go. A missing value renders Go's `<no value>`; like Sensu, a result
//! containing `<no value>` is an "unmatched token" error, naming the action that produced it.
//!
//! Everything here is pure: no I/O, no clock.

use std::fmt;

use crate::v2::{CheckConfig, Entity, HookConfig};
use serde_json::{Map, Number, Value};

/// What Go prints for a missing value. Its presence in a result is an error.
pub const NO_VALUE: &str = "<no value>";

/// Go's space characters, for trim markers.
const SPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// Why a string could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// Where the string sits in the substituted object (`command`, `env_vars[1]`).
    pub path: String,
    pub kind: TokenErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenErrorKind {
    /// Malformed template or unsupported syntax.
    Parse(String),
    /// An evaluation error (wrong argument type, bad index, ...).
    Exec(String),
    /// The result contains `<no value>`: the action that produced it, if known.
    Unmatched(Option<String>),
    /// The substituted object no longer decodes (cannot happen for string-only changes;
    /// kept so nothing panics).
    Decode(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "template"
        } else {
            &self.path
        };
        match &self.kind {
            TokenErrorKind::Parse(d) => write!(f, "{path}: could not parse the template: {d}"),
            TokenErrorKind::Exec(d) => write!(f, "{path}: could not execute the template: {d}"),
            TokenErrorKind::Unmatched(Some(token)) => {
                write!(f, "unmatched token {token} in {path}")
            }
            TokenErrorKind::Unmatched(None) => write!(
                f,
                "unmatched token in {path}: found an undefined value but could not identify the token"
            ),
            TokenErrorKind::Decode(d) => write!(f, "{path}: {d}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The environment variable that holds an asset's path: the name upper-cased, every run of
/// non-alphanumeric characters replaced by `_`, then `_PATH` (Sensu's `environment.Key`,
/// whose regex `[^a-zA-Z0-9]+` collapses runs). `{{ assetPath "name" }}` yields this literal
/// text, as sensu-compat 5.6 specifies.
pub fn asset_env_name(asset: &str) -> String {
    let mut out = String::with_capacity(asset.len() + 5);
    let mut in_run = false;
    for c in asset.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out.push_str("_PATH");
    out
}

/// The data templates see: the entity's JSON with the fields of its `metadata` (name,
/// namespace, labels, annotations, created_by) lifted to the top level, as Sensu's
/// `dynamic.Synthesize` flattens the embedded ObjectMeta. Go synthesizes a nil list as an
/// empty one, so JSON `null`s become `[]`. Values are not redacted (Sensu substitutes the
/// real ones; the event keeps the unsubstituted command so they do not leak).
pub fn synthesize_entity(entity: &Entity) -> Value {
    let mut v = serde_json::to_value(entity).unwrap_or_else(|_| Value::Object(Map::new()));
    if let Value::Object(map) = &mut v
        && let Some(Value::Object(meta)) = map.remove("metadata")
    {
        for (k, val) in meta {
            map.insert(k, val);
        }
    }
    nulls_to_lists(&mut v);
    v
}

fn nulls_to_lists(v: &mut Value) {
    match v {
        Value::Null => *v = Value::Array(Vec::new()),
        Value::Array(items) => items.iter_mut().for_each(nulls_to_lists),
        Value::Object(map) => map.values_mut().for_each(nulls_to_lists),
        _ => {}
    }
}

/// Substitute every string of a check definition (recursively through lists and objects;
/// object keys are left alone, as Sensu does).
pub fn substitute_check(config: &CheckConfig, data: &Value) -> Result<CheckConfig, TokenError> {
    substitute_typed(config, data)
}

/// Substitute every string of a hook definition.
pub fn substitute_hook(hook: &HookConfig, data: &Value) -> Result<HookConfig, TokenError> {
    substitute_typed(hook, data)
}

fn substitute_typed<T>(item: &T, data: &Value) -> Result<T, TokenError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let decode = |e: serde_json::Error| TokenError {
        path: String::new(),
        kind: TokenErrorKind::Decode(format!("could not re-read the substituted definition: {e}")),
    };
    let mut v = serde_json::to_value(item).map_err(decode)?;
    substitute_json(&mut v, data, "")?;
    serde_json::from_value(v).map_err(decode)
}

/// Substitute every string inside `value`; `path` names `value` in errors.
pub fn substitute_json(value: &mut Value, data: &Value, path: &str) -> Result<(), TokenError> {
    match value {
        Value::String(s) => {
            // Every string is evaluated, even without `{{`: Go also refuses a literal
            // `<no value>`.
            *s = render(s, data, path)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_json(item, data, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute_json(item, data, &sub)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Render one template against `data`. `path` names the template in errors.
pub fn render(template: &str, data: &Value, path: &str) -> Result<String, TokenError> {
    let err = |kind| TokenError {
        path: path.to_string(),
        kind,
    };
    let nodes = parse(template).map_err(|e| err(TokenErrorKind::Parse(e)))?;
    let mut out = String::with_capacity(template.len());
    let mut unmatched = None;
    for node in &nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action { pipe, source } => {
                let v = eval_pipeline(pipe, data).map_err(|e| err(TokenErrorKind::Exec(e)))?;
                match v {
                    None => {
                        out.push_str(NO_VALUE);
                        unmatched.get_or_insert_with(|| source.clone());
                    }
                    Some(v) => print_value(&v, &mut out, true),
                }
            }
        }
    }
    if out.contains(NO_VALUE) {
        return Err(err(TokenErrorKind::Unmatched(unmatched)));
    }
    Ok(out)
}

// === Parsing ===

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// `source`: the action as written, for error messages (`{{ .labels.x }}`).
    Action {
        pipe: Pipeline,
        source: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.a.b` (empty: `.`), evaluated from the entity.
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Func(Func),
    Sub(Pipeline),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Default,
    AssetPath,
    Index,
}

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        match name {
            "default" => Some(Func::Default),
            "assetPath" => Some(Func::AssetPath),
            "index" => Some(Func::Index),
            _ => None,
        }
    }
}

/// Go's control keywords: valid Go, but not something this subset evaluates.
const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn parse(src: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    let mut rest = src;
    // Text whose leading spaces a preceding ` -}}` removes.
    let mut trim_next = false;
    loop {
        let Some(open) = rest.find("{{") else {
            push_text(&mut nodes, rest, trim_next, false);
            return Ok(nodes);
        };
        let mut after = &rest[open + 2..];
        let trim_left = after.starts_with('-') && after[1..].starts_with(SPACE);
        if trim_left {
            after = &after[2..];
        }
        push_text(&mut nodes, &rest[..open], trim_next, trim_left);

        if let Some(comment) = after.strip_prefix("/*") {
            let close = comment.find("*/").ok_or("unclosed comment")?;
            let tail = &comment[close + 2..];
            let (rest_after, trim_right) = if let Some(t) = tail.strip_prefix("}}") {
                (t, false)
            } else if tail.starts_with(SPACE) && tail[1..].starts_with("-}}") {
                (&tail[4..], true)
            } else {
                return Err("comment ends before closing delimiter".into());
            };
            rest = rest_after;
            trim_next = trim_right;
            continue;
        }

        let (body, trim_right, rest_after) = scan_action(after)?;
        let tokens = lex(body)?;
        let pipe = parse_action(&tokens)?;
        nodes.push(Node::Action {
            pipe,
            source: format!("{{{{ {} }}}}", body.trim_matches(SPACE)),
        });
        rest = rest_after;
        trim_next = trim_right;
    }
}

fn push_text(nodes: &mut Vec<Node>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start_matches(SPACE);
    }
    if trim_end {
        t = t.trim_end_matches(SPACE);
    }
    if !t.is_empty() {
        nodes.push(Node::Text(t.to_string()));
    }
}

/// Split `s` (just after `{{`) at the closing `}}` that is outside quotes: (body, right trim
/// marker present, rest after `}}`).
fn scan_action(s: &str) -> Result<(&str, bool, &str), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_quoted(bytes, i, b'"')?,
            b'`' => i = skip_quoted(bytes, i, b'`')?,
            b'\'' => i = skip_quoted(bytes, i, b'\'')?,
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                let body = &s[..i];
                let rest = &s[i + 2..];
                // ` -}}`: a space, then the marker, right before the delimiter.
                if body.len() >= 2 && body.ends_with('-') && body[..body.len() - 1].ends_with(SPACE)
                {
                    return Ok((&body[..body.len() - 1], true, rest));
                }
                return Ok((body, false, rest));
            }
            _ => i += 1,
        }
    }
    Err("unclosed action".into())
}

/// Index just past the quote closing the one at `start`.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Result<usize, String> {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == quote {
            return Ok(i + 1);
        }
        if quote != b'`' {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'\n' {
                break;
            }
        }
        i += 1;
    }
    Err(match quote {
        b'`' => "unterminated raw quoted string".into(),
        b'\'' => "unterminated character constant".into(),
        _ => "unterminated quoted string".into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.a.b`, `.` (empty) or `$.a` / `$`.
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Num(String),
    Pipe,
    LParen,
    RParen,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lex(body: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = body.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident_at = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < chars.len() && is_ident_char(chars[j]) {
            j += 1;
        }
        (chars[i..j].iter().collect(), j)
    };
    // A chain of `.ident` from `i` (which is at a '.').
    let fields_at = |mut i: usize| -> (Vec<String>, usize) {
        let mut path = Vec::new();
        while i + 1 < chars.len() && chars[i] == '.' && is_ident_start(chars[i + 1]) {
            let (name, j) = ident_at(i + 1);
            path.push(name);
            i = j;
        }
        (path, i)
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return Err("field access on a parenthesised pipeline is not supported".into());
                }
            }
            '"' | '`' => {
                let (s, j) = lex_string(&chars, i)?;
                toks.push(Tok::Str(s));
                i = j;
            }
            '\'' => return Err("character constants are not supported".into()),
            '.' if next.is_some_and(is_ident_start) => {
                let (path, j) = fields_at(i);
                toks.push(Tok::Field(path));
                i = j;
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let j = number_end(&chars, i);
                toks.push(Tok::Num(chars[i..j].iter().collect()));
                i = j;
            }
            '.' => {
                toks.push(Tok::Field(Vec::new()));
                i += 1;
            }
            '$' => {
                let (name, j) = ident_at(i + 1);
                if !name.is_empty() {
                    return Err(format!(
                        "undefined variable \"${name}\" (variables are not supported)"
                    ));
                }
                let (path, j) = fields_at(j);
                toks.push(Tok::Field(path));
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let j = number_end(&chars, i);
                toks.push(Tok::Num(chars[i..j].iter().collect()));
                i = j;
            }
            c if is_ident_start(c) => {
                let (name, j) = ident_at(i);
                if chars.get(j) == Some(&'.') {
                    return Err(format!("unexpected \".\" after {name:?}"));
                }
                toks.push(Tok::Ident(name));
                i = j;
            }
            ':' | '=' => return Err("variable declarations are not supported".into()),
            other => return Err(format!("unexpected {other:?} in command")),
        }
    }
    Ok(toks)
}

fn number_end(chars: &[char], start: usize) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        let c = chars[j];
        let exp_sign = (c == '+' || c == '-') && matches!(chars[j - 1], 'e' | 'E');
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exp_sign {
            j += 1;
        } else {
            break;
        }
    }
    j
}

/// A Go string literal from `chars[start]` (`"` or `` ` ``): its value and the index after it.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if quote == '`' || c != '\\' {
            if quote == '"' && c == '\n' {
                break;
            }
            out.push(c);
            i += 1;
            continue;
        }
        // An escape sequence.
        let e = *chars.get(i + 1).ok_or("unterminated quoted string")?;
        i += 2;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                i -= 1;
                (3, 8)
            }
            other => return Err(format!("invalid escape sequence \\{other} in string")),
        };
        let text: String = chars
            .get(i..i + digits)
            .unwrap_or_default()
            .iter()
            .collect();
        let code = u32::from_str_radix(&text, radix)
            .ok()
            .filter(|_| text.len() == digits)
            .ok_or_else(|| format!("invalid escape sequence in string near {text:?}"))?;
        i += digits;
        if radix == 8 || e == 'x' {
            // Bytes: valid UTF-8 only as ASCII here (Go would build raw bytes).
            let b = u8::try_from(code).map_err(|_| "octal escape value > 255".to_string())?;
            if !b.is_ascii() {
                return Err("non-ASCII byte escapes are not supported".into());
            }
            out.push(char::from(b));
        } else {
            out.push(
                char::from_u32(code).ok_or("escape sequence is an invalid Unicode code point")?,
            );
        }
    }
    Err("unterminated quoted string".into())
}

fn parse_action(toks: &[Tok]) -> Result<Pipeline, String> {
    if let Some(Tok::Ident(kw)) = toks.first()
        && KEYWORDS.contains(&kw.as_str())
    {
        return Err(format!("{{{{{kw}}}}} actions are not supported"));
    }
    let mut pos = 0;
    let pipe = parse_pipeline(toks, &mut pos, false)?;
    Ok(pipe)
}

fn parse_pipeline(toks: &[Tok], pos: &mut usize, in_paren: bool) -> Result<Pipeline, String> {
    let mut cmds = Vec::new();
    loop {
        let mut args = Vec::new();
        while let Some(t) = toks.get(*pos) {
            let op = match t {
                Tok::Pipe | Tok::RParen => break,
                Tok::LParen => {
                    *pos += 1;
                    Operand::Sub(parse_pipeline(toks, pos, true)?)
                }
                Tok::Field(path) => {
                    *pos += 1;
                    Operand::Field(path.clone())
                }
                Tok::Str(s) => {
                    *pos += 1;
                    Operand::Str(s.clone())
                }
                Tok::Num(n) => {
                    *pos += 1;
                    parse_number(n)?
                }
                Tok::Ident(name) => {
                    *pos += 1;
                    match name.as_str() {
                        "true" => Operand::Bool(true),
                        "false" => Operand::Bool(false),
                        "nil" => Operand::Nil,
                        n if KEYWORDS.contains(&n) => {
                            return Err(format!("unexpected {n:?} in command"));
                        }
                        n => Operand::Func(
                            Func::lookup(n).ok_or_else(|| format!("function {n:?} not defined"))?,
                        ),
                    }
                }
            };
            args.push(op);
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        cmds.push(Command { args });
        match toks.get(*pos) {
            Some(Tok::Pipe) => *pos += 1,
            Some(Tok::RParen) if in_paren => {
                *pos += 1;
                return Ok(Pipeline { cmds });
            }
            Some(Tok::RParen) => return Err("unexpected right paren".into()),
            None if in_paren => return Err("unclosed left paren".into()),
            None => return Ok(Pipeline { cmds }),
            Some(_) => unreachable!("the operand loop stops only at a pipe, a paren or the end"),
        }
    }
}

fn parse_number(text: &str) -> Result<Operand, String> {
    let clean = text.replace('_', "");
    if let Ok(i) = clean.parse::<i64>() {
        return Ok(Operand::Int(i));
    }
    if let Ok(f) = clean.parse::<f64>()
        && f.is_finite()
    {
        return Ok(Operand::Float(f));
    }
    Err(format!("bad number syntax: {text:?}"))
}

// === Evaluation ===

/// A value: `None` is Go's missing/nil value.
type Val = Option<Value>;

fn eval_pipeline(pipe: &Pipeline, data: &Value) -> Result<Val, String> {
    let mut last: Option<Val> = None;
    for cmd in &pipe.cmds {
        last = Some(eval_command(cmd, data, last.take())?);
    }
    Ok(last.flatten())
}

/// `piped`: the previous command's value, which becomes the last argument.
fn eval_command(cmd: &Command, data: &Value, piped: Option<Val>) -> Result<Val, String> {
    match &cmd.args[0] {
        Operand::Func(f) => {
            let mut args = cmd.args[1..]
                .iter()
                .map(|a| eval_operand(a, data))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(p) = piped {
                args.push(p);
            }
            call(*f, args)
        }
        Operand::Nil => Err("nil is not a command".into()),
        first => {
            if cmd.args.len() > 1 || piped.is_some() {
                return Err(format!(
                    "can't give argument to non-function {}",
                    describe(first)
                ));
            }
            eval_operand(first, data)
        }
    }
}

fn eval_operand(op: &Operand, data: &Value) -> Result<Val, String> {
    Ok(match op {
        Operand::Field(path) => field(data, path)?,
        Operand::Str(s) => Some(Value::String(s.clone())),
        Operand::Int(i) => Some(Value::Number((*i).into())),
        Operand::Float(f) => Number::from_f64(*f).map(Value::Number),
        Operand::Bool(b) => Some(Value::Bool(*b)),
        Operand::Nil => None,
        // A function named as an argument is called without arguments, as in Go.
        Operand::Func(f) => call(*f, Vec::new())?,
        Operand::Sub(p) => eval_pipeline(p, data)?,
    })
}

fn describe(op: &Operand) -> String {
    match op {
        Operand::Field(p) if p.is_empty() => ".".into(),
        Operand::Field(p) => format!(".{}", p.join(".")),
        Operand::Str(s) => format!("{s:?}"),
        Operand::Int(i) => i.to_string(),
        Operand::Float(f) => f.to_string(),
        Operand::Bool(b) => b.to_string(),
        Operand::Nil => "nil".into(),
        Operand::Func(_) => "function".into(),
        Operand::Sub(_) => "(pipeline)".into(),
    }
}

/// Go's field chain over maps: a missing key gives the missing value, and so does every
/// field after it; a field of JSON `null` or of a non-map is an error.
fn field(data: &Value, path: &[String]) -> Result<Val, String> {
    let mut cur = Some(data);
    for name in path {
        cur = match cur {
            None => return Ok(None),
            Some(Value::Object(m)) => m.get(name),
            Some(Value::Null) => {
                return Err(format!("nil pointer evaluating interface {{}}.{name}"));
            }
            Some(other) => {
                return Err(format!(
                    "can't evaluate field {name} in type {}",
                    go_type(other)
                ));
            }
        };
    }
    Ok(cur.filter(|v| !v.is_null()).cloned())
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn call(f: Func, args: Vec<Val>) -> Result<Val, String> {
    match f {
        // Sensu's defaultFunc: one argument is the fallback itself; with two, the second (the
        // piped value) wins unless it is nil.
        Func::Default => Ok(match args.len() {
            1 => args.into_iter().next().flatten(),
            2 => {
                let mut it = args.into_iter();
                let fallback = it.next().flatten();
                it.next().flatten().or(fallback)
            }
            _ => None,
        }),
        Func::AssetPath => {
            if args.len() != 1 {
                return Err(format!(
                    "wrong number of args for assetPath: want 1 got {}",
                    args.len()
                ));
            }
            match &args[0] {
                Some(Value::String(name)) => Ok(Some(Value::String(asset_env_name(name)))),
                None => Err("error calling assetPath: invalid value; expected string".into()),
                Some(other) => Err(format!(
                    "wrong type for value; expected string; got {}",
                    go_type(other)
                )),
            }
        }
        Func::Index => {
            let mut it = args.into_iter();
            let mut item = it
                .next()
                .ok_or("wrong number of args for index: want at least 1 got 0")?;
            for idx in it {
                item = index(item, idx)?;
            }
            Ok(item)
        }
    }
}

fn index(item: Val, idx: Val) -> Result<Val, String> {
    let Some(item) = item else {
        return Err("error calling index: index of untyped nil".into());
    };
    let Some(idx) = idx else {
        return Err("error calling index: cannot index with nil".into());
    };
    match (&item, &idx) {
        // A missing key gives the map's zero value: nil.
        (Value::Object(m), Value::String(k)) => Ok(m.get(k).filter(|v| !v.is_null()).cloned()),
        (Value::Object(_), other) => Err(format!(
            "error calling index: value has type {}; should be string",
            go_type(other)
        )),
        (Value::Array(items), Value::Number(n)) => {
            let i = n
                .as_i64()
                .ok_or_else(|| format!("error calling index: cannot index slice/array with {n}"))?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .map(|v| Some(v.clone()).filter(|v| !v.is_null()))
                .ok_or_else(|| format!("error calling index: index out of range: {i}"))
        }
        (Value::String(s), Value::Number(n)) => {
            let i = n.as_i64().unwrap_or(-1);
            usize::try_from(i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Some(Value::Number((*b).into())))
                .ok_or_else(|| format!("error calling index: index out of range: {i}"))
        }
        (other, _) => Err(format!(
            "error calling index: can't index item of type {}",
            go_type(other)
        )),
    }
}

// === Printing, as Go's fmt prints interface values ===

/// `top`: the value of an action (a nil inside a list prints `<nil>`, Go's `%v` of nil).
fn print_value(v: &Value, out: &mut String, top: bool) {
    match v {
        Value::Null => out.push_str(if top { NO_VALUE } else { "<nil>" }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&go_float(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_value(item, out, false);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go's fmt sorts map keys (serde_json keeps insertion order when another crate
            // enables its preserve_order feature, so sort here).
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_value(item, out, false);
            }
            out.push(']');
        }
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form when the exponent is below -4 or at
/// least 6 (`1e+06`, `1.5e-05`, `123456`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: `-1.2345e-7`.
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or_default();
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if (point as usize) >= digits.len() {
        format!("{}{}", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{s}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::ObjectMeta;
    use crate::v2::System;
    use serde_json::json;

    use super::*;

    fn entity() -> Entity {
        let mut labels = BTreeMap::new();
        labels.insert("disk_warning".to_string(), "80".to_string());
        labels.insert("empty".to_string(), String::new());
        labels.insert("disk.critical".to_string(), "95".to_string());
        labels.insert("password".to_string(), "hunter2".to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert("team".to_string(), "ops".to_string());
        Entity {
            entity_class: "agent".into(),
            system: System {
                hostname: "web-1.example.com".into(),
                os: "linux".into(),
                arch: "amd64".into(),
                ..Default::default()
            },
            subscriptions: Some(vec!["linux".into(), "entity:web-1".into()]),
            last_seen: 1700000000,
            metadata: ObjectMeta {
                name: "web-1".into(),
                namespace: "default".into(),
                labels,
                annotations,
                created_by: String::new(),
            },
            ..Default::default()
        }
    }

    fn data() -> Value {
        synthesize_entity(&entity())
    }

    #[test]
    fn synthesized_entity_lifts_metadata() {
        let d = data();
        assert_eq!(d["name"], "web-1");
        assert_eq!(d["namespace"], "default");
        assert_eq!(d["labels"]["disk_warning"], "80");
        assert_eq!(d["annotations"]["team"], "ops");
        assert!(d.get("metadata").is_none());
        assert_eq!(d["system"]["hostname"], "web-1.example.com");
        // Go synthesizes nil lists as empty ones.
        assert_eq!(d["system"]["network"]["interfaces"], json!([]));
        assert_eq!(d["system"]["processes"], json!([]));
        // Values are the real ones: redaction applies when an entity leaves the agent.
        assert_eq!(d["labels"]["password"], "hunter2");
    }

    #[test]
    fn renders() {
        // (template, expected)
        let cases: &[(&str, &str)] = &[
            ("no tokens at all", "no tokens at all"),
            ("", ""),
            ("{{ .name }}", "web-1"),
            ("{{.name}}", "web-1"),
            (
                "host={{ .system.hostname }} os={{ .system.os }}",
                "host=web-1.example.com os=linux",
            ),
            (
                "check_disk -w {{ .labels.disk_warning }}%",
                "check_disk -w 80%",
            ),
            ("{{ .namespace }}/{{ .entity_class }}", "default/agent"),
            ("{{ .last_seen }}", "1700000000"),
            ("{{ .subscriptions }}", "[linux entity:web-1]"),
            ("{{ .deregister }}", "false"),
            ("{{ .annotations }}", "map[team:ops]"),
            // Pipes and default.
            (r#"{{ .labels.disk_warning | default "90" }}"#, "80"),
            (r#"{{ .labels.missing | default "90" }}"#, "90"),
            (r#"{{ .labels.empty | default "90" }}"#, ""),
            (r#"{{ .nosuch.deeply.nested | default "x" }}"#, "x"),
            (r#"{{ default "90" .labels.missing }}"#, "90"),
            (r#"{{ default "90" .labels.disk_warning }}"#, "80"),
            (r#"{{ default "only" }}"#, "only"),
            (
                r#"{{ .labels.missing | default .labels.disk_warning }}"#,
                "80",
            ),
            (r#"{{ .labels.missing | default 5 }}"#, "5"),
            (r#"{{ .labels.missing | default 2.5 }}"#, "2.5"),
            (
                r#"{{ (.labels.missing | default "in-paren") }}"#,
                "in-paren",
            ),
            // index, for keys that are not identifiers.
            (r#"{{ index .labels "disk.critical" }}"#, "95"),
            (r#"{{ index .labels "missing" | default "d" }}"#, "d"),
            (r#"{{ index .subscriptions 1 }}"#, "entity:web-1"),
            // assetPath: the env var name.
            (
                r#"{{ assetPath "check-disk" }}/bin/check"#,
                "CHECK_DISK_PATH/bin/check",
            ),
            (
                r#"{{ "sensu/sensu-ruby-runtime" | assetPath }}"#,
                "SENSU_SENSU_RUBY_RUNTIME_PATH",
            ),
            // Trim markers.
            ("a   {{- .name }}", "aweb-1"),
            ("{{ .name -}}   b", "web-1b"),
            ("a \n\t {{- .name -}} \n b", "aweb-1b"),
            ("a {{-3}}", "a -3"),
            // Literals and escapes.
            (r#"{{ "quoted \"x\"\t}}" }}"#, "quoted \"x\"\t}}"),
            ("{{ `raw \\n` }}", "raw \\n"),
            (r#"{{ "\u00e9\x41" }}"#, "éA"),
            ("{{ true }} {{ 42 }} {{ -1.5 }}", "true 42 -1.5"),
            // Comments vanish.
            ("a{{/* a comment */}}b", "ab"),
            ("a {{- /* c */ -}} b", "ab"),
            // Root variable and dot.
            ("{{ $.name }}", "web-1"),
            ("{{ .system.arch }} {{ $.system.arch }}", "amd64 amd64"),
            // A lone closing delimiter is text.
            ("}} {{ .name }}", "}} web-1"),
            ("{ .name }", "{ .name }"),
        ];
        let d = data();
        for (template, expected) in cases {
            assert_eq!(
                render(template, &d, "command").as_deref(),
                Ok(*expected),
                "template {template:?}"
            );
        }
    }

    #[test]
    fn refuses() {
        // (template, expected error text)
        let cases: &[(&str, &str)] = &[
            (
                "{{ .labels.nope }}",
                "unmatched token {{ .labels.nope }} in command",
            ),
            (
                "x {{.nosuch}} y",
                "unmatched token {{ .nosuch }} in command",
            ),
            (
                "{{ .labels.a | default .labels.b }}",
                "unmatched token {{ .labels.a | default .labels.b }} in command",
            ),
            (
                "a <no value> b",
                "unmatched token in command: found an undefined value but could not identify the token",
            ),
            (
                "{{ .name",
                "command: could not parse the template: unclosed action",
            ),
            (
                "{{ upper .name }}",
                "command: could not parse the template: function \"upper\" not defined",
            ),
            (
                "{{ if .name }}x{{ end }}",
                "command: could not parse the template: {{if}} actions are not supported",
            ),
            (
                "{{ range .subscriptions }}{{ . }}{{ end }}",
                "command: could not parse the template: {{range}} actions are not supported",
            ),
            (
                "{{ $x := 1 }}",
                "command: could not parse the template: undefined variable \"$x\" (variables are not supported)",
            ),
            (
                "{{ }}",
                "command: could not parse the template: missing value for command",
            ),
            (
                "{{ \"open }}",
                "command: could not parse the template: unterminated quoted string",
            ),
            (
                "{{ .name | }}",
                "command: could not parse the template: missing value for command",
            ),
            (
                "{{ (.name }}",
                "command: could not parse the template: unclosed left paren",
            ),
            (
                "{{ .name) }}",
                "command: could not parse the template: unexpected right paren",
            ),
            (
                "{{/* open ",
                "command: could not parse the template: unclosed comment",
            ),
            (
                "{{ 'c' }}",
                "command: could not parse the template: character constants are not supported",
            ),
            (
                "{{ 1x }}",
                "command: could not parse the template: bad number syntax: \"1x\"",
            ),
            (
                "{{ .name | .labels }}",
                "command: could not execute the template: can't give argument to non-function .labels",
            ),
            (
                "{{ .name .labels }}",
                "command: could not execute the template: can't give argument to non-function .name",
            ),
            (
                "{{ nil }}",
                "command: could not execute the template: nil is not a command",
            ),
            (
                "{{ .name.first }}",
                "command: could not execute the template: can't evaluate field first in type string",
            ),
            (
                "{{ assetPath }}",
                "command: could not execute the template: wrong number of args for assetPath: want 1 got 0",
            ),
            (
                "{{ assetPath 3 }}",
                "command: could not execute the template: wrong type for value; expected string; got int64",
            ),
            (
                "{{ index .nolabels \"x\" }}",
                "command: could not execute the template: error calling index: index of untyped nil",
            ),
            (
                "{{ index .subscriptions 7 }}",
                "command: could not execute the template: error calling index: index out of range: 7",
            ),
        ];
        let d = data();
        for (template, expected) in cases {
            let err = render(template, &d, "command").expect_err(template);
            assert_eq!(err.to_string(), *expected, "template {template:?}");
        }
    }

    #[test]
    fn go_floats() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (2.5, "2.5"),
            (-0.25, "-0.25"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000015, "1.5e-05"),
            (0.0, "0"),
        ];
        for (f, s) in cases {
            assert_eq!(go_float(*f), *s, "{f}");
        }
    }

    #[test]
    fn asset_env_names() {
        let cases: &[(&str, &str)] = &[
            ("check-disk", "CHECK_DISK_PATH"),
            ("sensu/check-disk-usage", "SENSU_CHECK_DISK_USAGE_PATH"),
            ("a--b..c", "A_B_C_PATH"),
            ("ruby_2.4", "RUBY_2_4_PATH"),
            ("Mixed.Case", "MIXED_CASE_PATH"),
        ];
        for (name, env) in cases {
            assert_eq!(asset_env_name(name), *env, "{name}");
        }
    }

    #[test]
    fn substitutes_a_whole_check() {
        let config: CheckConfig = serde_json::from_value(json!({
            "metadata": {"name": "disk", "namespace": "default", "labels": {"host": "{{ .name }}"}},
            "command": "check_disk -w {{ .labels.disk_warning | default \"85\" }} -c {{ index .labels \"disk.critical\" }}",
            "interval": 60,
            "subscriptions": ["linux"],
            "handlers": [],
            "env_vars": ["HOST={{ .system.hostname }}", "PLAIN=1"],
            "proxy_entity_name": "",
        }))
        .unwrap();
        let out = substitute_check(&config, &data()).unwrap();
        assert_eq!(out.command, "check_disk -w 80 -c 95");
        assert_eq!(out.env_vars(), ["HOST=web-1.example.com", "PLAIN=1"]);
        assert_eq!(out.metadata.labels["host"], "web-1");
        // Nothing else moved.
        assert_eq!(
            CheckConfig {
                command: config.command.clone(),
                env_vars: config.env_vars.clone(),
                metadata: config.metadata.clone(),
                ..out.clone()
            },
            config
        );

        let bad = CheckConfig {
            env_vars: Some(vec!["OK=1".into(), "X={{ .labels.nope }}".into()]),
            ..config
        };
        let err = substitute_check(&bad, &data()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unmatched token {{ .labels.nope }} in env_vars[1]"
        );
    }

    #[test]
    fn substitutes_a_hook() {
        let hook = HookConfig {
            metadata: ObjectMeta::new("default", "ps"),
            command: "ps -u {{ .labels.user | default \"root\" }}".into(),
            timeout: 10,
            ..Default::default()
        };
        assert_eq!(
            substitute_hook(&hook, &data()).unwrap().command,
            "ps -u root"
        );
    }
}
