//! One QuickJS runtime and context, hardened once at creation.
//!
//! Everything here works on `rquickjs` types; `lib.rs` turns the results into the crate's
//! own `Error`. Compiled expressions live in the runtime's userdata (not in `Persistent`
//! handles held by Rust) because `Persistent` is not `Send`, and the engine must be.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::object::Property;
use rquickjs::{Array, Coerced, Context, Ctx, Function, Object, Runtime, Value};

use crate::Limits;

/// Deepest JSON nesting converted into JS; serde_json's own parser stops at 128, so only
/// values built in code get near this, and the cap keeps the recursive conversion off the
/// end of the thread's stack.
const MAX_INPUT_DEPTH: usize = 256;

/// Installs the Sensu helpers, then freezes everything reachable from the global object
/// (and the intrinsics only reachable through syntax), so that an expression cannot leave
/// state behind for the next one: no new globals, no prototype pollution, no redefining
/// `hour`. Runs in strict mode so a failed freeze throws instead of passing silently.
const PRELUDE: &str = r#"(function (g) {
  'use strict';
  function ts(v) {
    var n = Math.trunc(Number(v));
    return isFinite(n) ? n : 0;
  }
  function utc(v) { return new Date(ts(v) * 1000); }
  var helpers = {
    seconds_since: function (v) { return Math.floor(Date.now() / 1000) - ts(v); },
    second: function (v) { return utc(v).getUTCSeconds(); },
    minute: function (v) { return utc(v).getUTCMinutes(); },
    hour: function (v) { return utc(v).getUTCHours(); },
    weekday: function (v) { return utc(v).getUTCDay(); }
  };
  Object.keys(helpers).forEach(function (name) {
    Object.defineProperty(g, name, {
      value: helpers[name], writable: false, enumerable: false, configurable: false
    });
  });
  // Freezing makes inherited properties read-only for every object, so plain assignments
  // such as `o.toString = f` would silently do nothing (the "override mistake"). For the
  // members code commonly overrides, an accessor keeps the prototype unchanged but turns
  // assignment on an instance into an own property, as it would be without the freeze.
  function overridable(proto, names) {
    names.forEach(function (k) {
      var d = Object.getOwnPropertyDescriptor(proto, k);
      if (!d || !('value' in d) || !d.writable) { return; }
      var value = d.value;
      Object.defineProperty(proto, k, {
        get: function () { return value; },
        set: function (v) {
          if (this === proto) { return; }
          Object.defineProperty(this, k, {
            value: v, writable: true, enumerable: true, configurable: true
          });
        },
        enumerable: d.enumerable,
        configurable: false
      });
    });
  }
  overridable(Object.prototype, ['toString', 'toLocaleString', 'valueOf', 'constructor',
    'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable']);
  overridable(Function.prototype, ['toString', 'constructor', 'call', 'apply', 'bind']);
  overridable(Error.prototype, ['name', 'message', 'toString', 'constructor']);
  overridable(Array.prototype, ['toString', 'toLocaleString', 'constructor']);
  var roots = [
    g,
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(async function* () {}),
    Object.getPrototypeOf([][Symbol.iterator]()),
    Object.getPrototypeOf(''[Symbol.iterator]()),
    Object.getPrototypeOf(new Map().entries()),
    Object.getPrototypeOf(new Set().values()),
    Object.getPrototypeOf('a'.matchAll(/a/g))
  ];
  var seen = new Set();
  while (roots.length > 0) {
    var o = roots.pop();
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) {
      continue;
    }
    seen.add(o);
    roots.push(Object.getPrototypeOf(o));
    Reflect.ownKeys(o).forEach(function (k) {
      var d = Object.getOwnPropertyDescriptor(o, k);
      if ('value' in d) { roots.push(d.value); } else { roots.push(d.get, d.set); }
    });
    Object.freeze(o);
  }
})(globalThis);
"#;

/// Compiled expressions by slot number; kept inside the runtime so they are freed before
/// QuickJS tears the runtime down.
type Slots<'js> = RefCell<HashMap<u64, Function<'js>>>;

/// Bound scopes (see [`Vm::bind`]) by number, kept in the runtime for the same reason.
type Scopes<'js> = RefCell<BTreeMap<u64, Object<'js>>>;

/// `Object.freeze`, taken before any expression runs (the global is frozen too, but this
/// keeps bound inputs independent of what the global object offers).
type Freezer<'js> = Option<Function<'js>>;

/// Where an evaluation's variables come from.
pub(crate) enum Globals<'a> {
    /// Fresh, mutable copies of these values, for this evaluation only.
    Fresh(&'a [(&'a str, &'a serde_json::Value)]),
    /// A scope made by [`Vm::bind`].
    Bound(u64),
}

/// Shared with the interrupt handler, which QuickJS calls every few thousand bytecodes.
struct Deadline {
    epoch: Instant,
    /// Nanoseconds since `epoch`; `u64::MAX` while no evaluation runs.
    at: AtomicU64,
    fired: AtomicBool,
}

impl Deadline {
    fn expired(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if now >= self.at.load(Ordering::Relaxed) {
            self.fired.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// What went wrong inside the VM, before it is tied to an expression's text.
#[derive(Debug)]
pub(crate) enum Failure {
    Syntax(String),
    Thrown(String),
    /// An exception that carried no value: QuickJS throws `null` when it cannot even
    /// allocate the "out of memory" error object.
    ThrownNothing,
    OutOfMemory,
    Timeout,
    Input(String),
    Output(String),
}

pub(crate) struct Vm {
    // Field order is drop order: the context goes before the runtime it lives in.
    ctx: Context,
    rt: Runtime,
    deadline: Arc<Deadline>,
    time_limit: Duration,
    memory_budget: usize,
    next_slot: u64,
}

impl Vm {
    pub(crate) fn new(limits: &Limits) -> Result<Vm, String> {
        let rt = Runtime::new().map_err(|e| format!("cannot create QuickJS runtime: {e}"))?;
        rt.set_max_stack_size(limits.stack_bytes);
        let deadline = Arc::new(Deadline {
            epoch: Instant::now(),
            at: AtomicU64::new(u64::MAX),
            fired: AtomicBool::new(false),
        });
        let watch = Arc::clone(&deadline);
        rt.set_interrupt_handler(Some(Box::new(move || watch.expired())));
        let ctx = Context::full(&rt).map_err(|e| format!("cannot create QuickJS context: {e}"))?;
        let vm = Vm {
            ctx,
            rt,
            deadline,
            time_limit: limits.time,
            memory_budget: limits.memory_bytes,
            next_slot: 0,
        };
        vm.ctx.with(|ctx| -> Result<(), String> {
            ctx.eval::<(), _>(PRELUDE).map_err(|e| match e {
                rquickjs::Error::Exception => format!("prelude failed: {}", describe(&ctx.catch())),
                other => format!("prelude failed: {other}"),
            })?;
            ctx.store_userdata::<Slots<'_>>(RefCell::new(HashMap::new()))
                .map_err(|_| "cannot store the expression table".to_owned())?;
            ctx.store_userdata::<Scopes<'_>>(RefCell::new(BTreeMap::new()))
                .map_err(|_| "cannot store the scope table".to_owned())?;
            let freeze = eval_function(&ctx, "Object.freeze", 0)
                .map_err(|f| format!("cannot find Object.freeze: {f:?}"))?;
            ctx.store_userdata::<Freezer<'_>>(Some(freeze))
                .map_err(|_| "cannot store the freeze helper".to_owned())?;
            Ok(())
        })?;
        vm.rebase_memory_limit();
        Ok(vm)
    }

    /// The memory limit is a budget on top of what the engine already holds (intrinsics and
    /// compiled expressions), so a full cache does not eat into what an evaluation may use.
    /// Computing usage walks the heap, so this runs only after compiles and evictions.
    pub(crate) fn rebase_memory_limit(&self) {
        self.rt.run_gc();
        let used = usize::try_from(self.rt.memory_usage().malloc_size).unwrap_or(0);
        self.rt
            .set_memory_limit(used.saturating_add(self.memory_budget));
    }

    fn arm(&self) {
        self.deadline.fired.store(false, Ordering::Relaxed);
        let at = self
            .deadline
            .epoch
            .elapsed()
            .saturating_add(self.time_limit);
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.deadline.at.store(at, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline.at.store(u64::MAX, Ordering::Relaxed);
    }

    /// Compiles `source` into a slot.
    ///
    /// The text is placed in a function body twice, once as `( … )` and once as `[ … ]`. Text
    /// that closes the first wrapper early (`1); evil(); (1`) needs a `)` at its top level,
    /// which the second cannot match, so only a single expression passes both. rquickjs has
    /// no compile-only mode for scripts, so escaping text may run once while a wrapper is
    /// evaluated; it runs under the same deadline, memory limit and frozen globals as any
    /// evaluation, and is then rejected.
    pub(crate) fn compile(&mut self, source: &str) -> Result<u64, Failure> {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.arm();
        let lines = u32::try_from(source.split('\n').count()).unwrap_or(u32::MAX);
        let result = self.ctx.with(|ctx| {
            let func = eval_function(
                &ctx,
                &format!("(function (__g) {{ with (__g) {{ return (\n{source}\n); }} }})"),
                lines,
            )?;
            eval_function(
                &ctx,
                &format!("(function () {{ return [\n{source}\n]; }})"),
                lines,
            )
            .map_err(|f| match f {
                Failure::Syntax(_) => {
                    Failure::Syntax("not a single JavaScript expression".to_owned())
                }
                other => other,
            })?;
            let slots = ctx
                .userdata::<Slots<'_>>()
                .ok_or_else(|| Failure::Thrown("expression table missing".to_owned()))?;
            slots.borrow_mut().insert(slot, func);
            Ok(slot)
        });
        self.disarm();
        result.map_err(|f| self.timeout_wins(f))
    }

    pub(crate) fn forget(&mut self, slot: u64) {
        self.ctx.with(|ctx| {
            if let Some(slots) = ctx.userdata::<Slots<'_>>() {
                slots.borrow_mut().remove(&slot);
            }
        });
    }

    /// Makes a scope holding `globals` for several evaluations: each value is converted once
    /// and frozen, object by object as it is built, so the evaluations sharing it cannot
    /// change what the next one sees. The scope lives until [`Vm::unbind`].
    pub(crate) fn bind(&mut self, globals: &[(&str, &serde_json::Value)]) -> Result<u64, Failure> {
        let id = self.next_slot;
        self.next_slot += 1;
        self.arm();
        let result = self.ctx.with(|ctx| {
            let freeze = ctx
                .userdata::<Freezer<'_>>()
                .and_then(|f| f.clone())
                .ok_or_else(|| Failure::Thrown("Object.freeze missing".to_owned()))?;
            let scope = scope_object(&ctx, globals, Some(&freeze))?;
            let _: Value<'_> = freeze
                .call((scope.clone(),))
                .map_err(|e| js_failure(&ctx, e))?;
            let scopes = ctx
                .userdata::<Scopes<'_>>()
                .ok_or_else(|| Failure::Thrown("scope table missing".to_owned()))?;
            scopes.borrow_mut().insert(id, scope);
            Ok(id)
        });
        self.disarm();
        result.map_err(|f| self.timeout_wins(f))
    }

    pub(crate) fn unbind(&mut self, id: u64) {
        self.ctx.with(|ctx| {
            if let Some(scopes) = ctx.userdata::<Scopes<'_>>() {
                scopes.borrow_mut().remove(&id);
            }
        });
    }

    /// Runs the slot's function with `globals` in scope and hands its result to `output`
    /// while the deadline still applies (converting a result may run `toJSON` or `toString`).
    pub(crate) fn run<T>(
        &mut self,
        slot: u64,
        globals: Globals<'_>,
        output: impl for<'js> FnOnce(&Ctx<'js>, Value<'js>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.arm();
        let result = self.ctx.with(|ctx| {
            let func = ctx
                .userdata::<Slots<'_>>()
                .and_then(|slots| slots.borrow().get(&slot).cloned())
                .ok_or_else(|| Failure::Thrown("compiled expression missing".to_owned()))?;
            let scope = match globals {
                Globals::Fresh(globals) => scope_object(&ctx, globals, None)?,
                Globals::Bound(id) => ctx
                    .userdata::<Scopes<'_>>()
                    .and_then(|scopes| scopes.borrow().get(&id).cloned())
                    .ok_or_else(|| Failure::Thrown("bound scope missing".to_owned()))?,
            };
            let value: Value<'_> = func.call((scope,)).map_err(|e| js_failure(&ctx, e))?;
            output(&ctx, value)
        });
        self.disarm();
        result.map_err(|f| self.timeout_wins(f))
    }

    /// Once the deadline has fired, whatever error surfaced is a consequence of it.
    fn timeout_wins(&self, failure: Failure) -> Failure {
        if self.deadline.fired.load(Ordering::Relaxed) {
            Failure::Timeout
        } else {
            failure
        }
    }
}

pub(crate) fn truthy<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<bool, Failure> {
    if let Some(b) = value.as_bool() {
        return Ok(b);
    }
    value
        .get::<Coerced<bool>>()
        .map(|c| c.0)
        .map_err(|e| js_failure(ctx, e))
}

pub(crate) fn to_json<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
) -> Result<Option<serde_json::Value>, Failure> {
    let Some(text) = ctx.json_stringify(value).map_err(|e| js_failure(ctx, e))? else {
        return Ok(None);
    };
    let text = text.to_string().map_err(|e| js_failure(ctx, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Failure::Output(e.to_string()))
}

fn data_property<'js>(value: Value<'js>) -> Property<Value<'js>> {
    Property::from(value).writable().enumerable().configurable()
}

/// A prototype-less object (so `with` cannot surface Object.prototype members such as
/// `constructor` as if they were variables) with one property per global. With `freeze`
/// every object and array is frozen once built.
fn scope_object<'js>(
    ctx: &Ctx<'js>,
    globals: &[(&str, &serde_json::Value)],
    freeze: Option<&Function<'js>>,
) -> Result<Object<'js>, Failure> {
    let scope = Object::new(ctx.clone()).map_err(|e| js_failure(ctx, e))?;
    scope.set_prototype(None).map_err(|e| js_failure(ctx, e))?;
    for (name, value) in globals {
        let value = to_js(ctx, value, 0, freeze).map_err(|f| match f {
            Failure::Input(m) => Failure::Input(format!("global `{name}`: {m}")),
            other => other,
        })?;
        scope
            .prop(*name, data_property(value))
            .map_err(|e| js_failure(ctx, e))?;
    }
    Ok(scope)
}

/// Properties are defined, not assigned: assignment would run setters on the (frozen)
/// prototypes, silently drop keys such as `constructor` or `toString`, and turn a
/// `__proto__` key into a prototype change.
fn to_js<'js>(
    ctx: &Ctx<'js>,
    value: &serde_json::Value,
    depth: usize,
    freeze: Option<&Function<'js>>,
) -> Result<Value<'js>, Failure> {
    use serde_json::Value as J;
    if depth > MAX_INPUT_DEPTH {
        return Err(Failure::Input(format!(
            "nested deeper than {MAX_INPUT_DEPTH} levels"
        )));
    }
    let js = |e| js_failure(ctx, e);
    let container = match value {
        J::Null => return Ok(Value::new_null(ctx.clone())),
        J::Bool(b) => return Ok(Value::new_bool(ctx.clone(), *b)),
        J::Number(n) => {
            return Ok(match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Value::new_int(ctx.clone(), i),
                None => Value::new_float(ctx.clone(), n.as_f64().unwrap_or(f64::NAN)),
            });
        }
        J::String(s) => {
            return Ok(rquickjs::String::from_str(ctx.clone(), s)
                .map_err(js)?
                .into_value());
        }
        J::Array(items) => {
            let array = Array::new(ctx.clone()).map_err(js)?;
            for (i, item) in items.iter().enumerate() {
                let item = to_js(ctx, item, depth + 1, freeze)?;
                array.set(i, item).map_err(js)?;
            }
            array.into_value()
        }
        J::Object(map) => {
            let object = Object::new(ctx.clone()).map_err(js)?;
            for (key, item) in map {
                let item = to_js(ctx, item, depth + 1, freeze)?;
                object.prop(key.as_str(), data_property(item)).map_err(js)?;
            }
            object.into_value()
        }
    };
    match freeze {
        Some(freeze) => freeze.call((container,)).map_err(js),
        None => Ok(container),
    }
}

/// Evaluates a wrapper script that must yield a function; `source_lines` is the number of
/// lines of the expression inside it, for error positions.
fn eval_function<'js>(
    ctx: &Ctx<'js>,
    script: &str,
    source_lines: u32,
) -> Result<Function<'js>, Failure> {
    let mut options = EvalOptions::default();
    // Sensu's otto VM is sloppy-mode ES5, and `with` needs sloppy mode.
    options.strict = false;
    options.filename = Some("expression".to_owned());
    let value: Value<'js> = ctx
        .eval_with_options(script.as_bytes().to_vec(), options)
        .map_err(|e| match e {
            rquickjs::Error::Exception => syntax_failure(ctx, source_lines),
            rquickjs::Error::InvalidString(_) => {
                Failure::Syntax("expression contains a NUL character".to_owned())
            }
            other => Failure::Syntax(other.to_string()),
        })?;
    value
        .into_function()
        .ok_or_else(|| Failure::Syntax("not a single JavaScript expression".to_owned()))
}

fn syntax_failure(ctx: &Ctx<'_>, source_lines: u32) -> Failure {
    let thrown = ctx.catch();
    let Some(exception) = thrown.as_exception() else {
        return classify(thrown);
    };
    let name: Option<String> = exception.get("name").ok();
    if name.as_deref() != Some("SyntaxError") {
        // A RangeError here is the parser running out of stack on deep nesting.
        return match classify(thrown) {
            Failure::Thrown(message) => Failure::Syntax(message),
            other => other,
        };
    }
    let message = exception.message().unwrap_or_default();
    // The wrapper puts the expression on line 2 of the script it compiles; errors found on
    // the wrapper's closing line mean the expression ended too early.
    match exception.stack().as_deref().and_then(position) {
        Some((line, column)) if line >= 2 && line - 1 <= source_lines => {
            Failure::Syntax(format!("{message} (line {}, column {column})", line - 1))
        }
        Some((line, _)) if line >= 2 => {
            Failure::Syntax(format!("{message} (at the end of the expression)"))
        }
        _ => Failure::Syntax(message),
    }
}

/// Finds `expression:LINE:COL` in a QuickJS stack trace.
fn position(stack: &str) -> Option<(u32, u32)> {
    let rest = &stack[stack.find("expression:")? + "expression:".len()..];
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.parse().ok()?;
    let column: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((line, column.parse().ok()?))
}

fn js_failure(ctx: &Ctx<'_>, error: rquickjs::Error) -> Failure {
    match error {
        rquickjs::Error::Exception => classify(ctx.catch()),
        rquickjs::Error::Allocation => Failure::OutOfMemory,
        other => Failure::Thrown(other.to_string()),
    }
}

fn classify(thrown: Value<'_>) -> Failure {
    if thrown.is_null() || thrown.is_undefined() {
        return Failure::ThrownNothing;
    }
    if let Some(exception) = thrown.as_exception() {
        let name: Option<String> = exception.get("name").ok();
        let message = exception.message().unwrap_or_default();
        if name.as_deref() == Some("InternalError") && message == "out of memory" {
            return Failure::OutOfMemory;
        }
        return Failure::Thrown(match name {
            Some(name) => format!("{name}: {message}"),
            None => message,
        });
    }
    Failure::Thrown(format!("uncaught {}", describe(&thrown)))
}

/// A short description of a thrown non-Error value; avoids calling into JS
/// (`toString` could be hostile), so objects are only named by type.
fn describe(value: &Value<'_>) -> String {
    if let Some(exception) = value.as_exception() {
        return exception.message().unwrap_or_default();
    }
    if let Some(s) = value.as_string().and_then(|s| s.to_string().ok()) {
        return format!("string {s:?}");
    }
    if let Some(n) = value.as_number() {
        return format!("number {n}");
    }
    if let Some(b) = value.as_bool() {
        return format!("boolean {b}");
    }
    format!("{} value", value.type_name())
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn finds_the_position_in_a_stack_trace() {
        assert_eq!(position("    at expression:2:14\n"), Some((2, 14)));
        assert_eq!(position("    at <eval> (expression:3:1)\n"), Some((3, 1)));
        assert_eq!(position("no position"), None);
    }
}
