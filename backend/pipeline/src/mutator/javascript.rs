//! `javascript` mutators on `jsexpr`: the `eval` body becomes a function expression, so
//! `jsexpr`'s single-expression rule holds, and its result is tagged for the caller.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use jsexpr::{Engine, Limits};
use proto_spec::v2::{Event, Mutator};
use serde_json::Value;

use super::MutatorError;

/// Time limit of a javascript mutator with `timeout: 0`.
pub const DEFAULT_JS_TIMEOUT: Duration = Duration::from_secs(10);

/// The expression `jsexpr` evaluates for `eval`: `{"data": s}` for a string result,
/// `{"event": event}` for `undefined`/`null`, `{"bad": typeof r}` otherwise.
pub fn wrap_eval(eval: &str) -> String {
    format!(
        "(function () {{ var __picket_r = (function () {{\n{eval}\n}}()); \
         if (__picket_r === undefined || __picket_r === null) {{ return {{\"event\": event}}; }} \
         if (typeof __picket_r === \"string\") {{ return {{\"data\": __picket_r}}; }} \
         return {{\"bad\": typeof __picket_r}}; }}())"
    )
}

/// Whether `eval` compiles as a mutator body (for the API).
pub fn check_eval_syntax(eval: &str) -> Result<(), jsexpr::Error> {
    jsexpr::check_syntax(&wrap_eval(eval))
}

thread_local! {
    /// One engine per time limit on each blocking thread: building one costs milliseconds.
    static ENGINES: RefCell<HashMap<Duration, Engine>> = RefCell::new(HashMap::new());
}

pub(super) async fn run(m: &Mutator, event: &Event) -> Result<Vec<u8>, MutatorError> {
    let name = m.metadata.name.clone();
    let time = if m.timeout > 0 {
        Duration::from_secs(u64::from(m.timeout))
    } else {
        DEFAULT_JS_TIMEOUT
    };
    let source = wrap_eval(&m.eval);
    let mut e = event.clone();
    if let Some(entity) = &e.entity {
        e.entity = Some(entity.redacted());
    }
    let event = serde_json::to_value(&e).unwrap_or(Value::Null);
    let env: Vec<(String, Value)> = m
        .env_vars
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let fail = {
        let name = name.clone();
        move |message: String| MutatorError::Javascript {
            name: name.clone(),
            message,
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        ENGINES.with(|engines| {
            let mut engines = engines.borrow_mut();
            let engine = match engines.entry(time) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let limits = Limits {
                        time,
                        ..Limits::default()
                    };
                    v.insert(Engine::new(limits).map_err(|e| e.to_string())?)
                }
            };
            let expr = engine.compile(&source).map_err(|e| e.to_string())?;
            let mut globals: Vec<(&str, &Value)> =
                env.iter().map(|(k, v)| (k.as_str(), v)).collect();
            globals.push(("event", &event));
            engine.eval_json(&expr, &globals).map_err(|e| e.to_string())
        })
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(&fail)?;
    let Some(Value::Object(mut tagged)) = result else {
        return Err(fail("no result".to_string()));
    };
    if let Some(Value::String(data)) = tagged.remove("data") {
        return Ok(data.into_bytes());
    }
    if let Some(ev) = tagged.remove("event") {
        return serde_json::to_vec(&ev).map_err(|e| fail(e.to_string()));
    }
    let kind = tagged
        .remove("bad")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Err(fail(format!(
        "eval must return a string, undefined or null, not a value of type {kind}"
    )))
}
