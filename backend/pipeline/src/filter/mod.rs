//! Filters (sensu-compat 3.1, 3.2): the built-ins and stored JavaScript [`EventFilter`]s.
//!
//! Evaluation is synchronous and CPU-bound: the runner calls [`FilterSet::filtered`] on one
//! of its filter threads, each with its own [`jsexpr::Engine`], for every workflow of an event
//! in one go (one [`EventScope`]).

mod event_json;
pub mod when;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use jsexpr::{Bound, Engine, simple};
use proto_spec::v2::filter::{FILTER_ACTION_ALLOW, FILTER_ACTION_DENY};
use proto_spec::v2::{Event, EventFilter};

pub use event_json::{
    FilterObject, event_for_filters, is_incident, is_resolution, is_silenced, needs_redaction,
};

pub const IS_INCIDENT: &str = "is_incident";
pub const NOT_SILENCED: &str = "not_silenced";
pub const HAS_METRICS: &str = "has_metrics";

pub fn is_builtin(name: &str) -> bool {
    matches!(name, IS_INCIDENT | NOT_SILENCED | HAS_METRICS)
}

/// Whether the built-in filter `name` lets `event` through; `None` if `name` is no built-in.
pub fn builtin_passes(name: &str, event: &Event) -> Option<bool> {
    match name {
        IS_INCIDENT => Some(is_incident(event) || is_resolution(event)),
        NOT_SILENCED => Some(!is_silenced(event)),
        HAS_METRICS => Some(event.metrics.is_some()),
        _ => None,
    }
}

/// The outcome of one stored filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The event is filtered out (the workflow stops).
    pub filtered: bool,
    /// Expressions that failed to evaluate (skipped, as Sensu does).
    pub errors: u32,
}

/// Sensu's `evaluateEventFilter`: the `when` window first (allow outside it → filtered;
/// deny outside it → allowed), then the expressions in order, an erroring one skipped:
/// allow filters the event at the first false expression, deny lets it through at the first
/// false one; when every (non-erroring) expression held, allow passes and deny filters.
///
/// Each expression is answered by `jsexpr::simple` where it can, else by QuickJS against
/// the event bound once per event ([`EventScope`]); `now` is Unix seconds. `Err` only from a
/// scope that defers QuickJS work ([`EventScope::deferring`]), before anything was counted.
pub fn evaluate(
    event: &mut EventScope<'_>,
    filter: &EventFilter,
    now: i64,
) -> Result<Verdict, NeedsEngine> {
    let allow = filter.action == FILTER_ACTION_ALLOW;
    let deny = filter.action == FILTER_ACTION_DENY;
    let mut verdict = Verdict {
        filtered: false,
        errors: 0,
    };
    if let Some(w) = &filter.when {
        let inside = when::in_windows(w, now);
        if allow && !inside {
            verdict.filtered = true;
            return Ok(verdict);
        }
        if deny && !inside {
            return Ok(verdict);
        }
    }
    for source in filter.expressions() {
        let matched = match event.eval_bool(source)? {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(filter = %filter.metadata.name, error = %e, "Error evaluating a filter expression; skipped");
                verdict.errors += 1;
                continue;
            }
        };
        if !matched {
            verdict.filtered = allow;
            return Ok(verdict);
        }
    }
    verdict.filtered = deny;
    Ok(verdict)
}

/// An expression needs QuickJS and the scope defers it (the caller hands the event to a
/// filter thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsEngine;

/// What a scope does with an expression `jsexpr::simple` does not answer.
enum QuickJs<'e> {
    /// Not bound yet.
    Engine(&'e mut Engine),
    Bound(Bound<'e>),
    /// The engine could not start: a filter with such an expression is skipped as one error.
    Unavailable,
    /// Give up with [`NeedsEngine`].
    Defer,
}

/// Compiled `jsexpr::simple` expressions by source (`None`: outside the subset), shared by
/// every runner worker and filter thread. Filters are few, so it is cleared, not evicted, when
/// it reaches this size (stored filters come and go).
const SIMPLE_CACHE_CAPACITY: usize = 4096;

type SimpleCache = std::collections::HashMap<Box<str>, Option<Arc<simple::Expr>>>;

fn simple_cache() -> &'static RwLock<SimpleCache> {
    static CACHE: OnceLock<RwLock<SimpleCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `source` compiled by `jsexpr::simple`, once per process.
fn simple_expr(source: &str) -> Option<Arc<simple::Expr>> {
    let cache = simple_cache();
    if let Some(hit) = cache.read().unwrap_or_else(|p| p.into_inner()).get(source) {
        return hit.clone();
    }
    let compiled = simple::Expr::compile(source).map(Arc::new);
    let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= SIMPLE_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(source.into(), compiled.clone());
    compiled
}

/// One event as every JavaScript filter of its workflows sees it: the [`FilterObject`] whose
/// parts are built as expressions read them, and, for expressions outside the simple subset,
/// the whole object bound to a QuickJS engine at most once per event and shared, read-only, by
/// every such expression after that.
pub struct EventScope<'e> {
    event: &'e Event,
    object: FilterObject<'e>,
    quickjs: QuickJs<'e>,
}

impl<'e> EventScope<'e> {
    /// A scope whose expressions outside the subset run on `engine` (`None`: the engine could
    /// not start, and filters with such expressions are skipped as errors).
    pub fn new(event: &'e Event, engine: Option<&'e mut Engine>) -> Self {
        EventScope {
            event,
            object: FilterObject::new(event),
            quickjs: engine.map_or(QuickJs::Unavailable, QuickJs::Engine),
        }
    }

    /// A scope without an engine that gives up ([`NeedsEngine`]) at the first expression
    /// outside the subset, for running filters where blocking on JavaScript must not happen.
    pub fn deferring(event: &'e Event) -> Self {
        EventScope {
            event,
            object: FilterObject::new(event),
            quickjs: QuickJs::Defer,
        }
    }

    pub fn event(&self) -> &'e Event {
        self.event
    }

    /// Whether this scope has no engine at all (as opposed to deferring to one).
    fn engine_unavailable(&self) -> bool {
        matches!(self.quickjs, QuickJs::Unavailable)
    }

    /// Evaluates `source` with JavaScript truthiness: `jsexpr::simple` when it answers, else
    /// QuickJS against the bound event.
    pub fn eval_bool(&mut self, source: &str) -> Result<Result<bool, jsexpr::Error>, NeedsEngine> {
        if let Some(expr) = simple_expr(source)
            && let Some(answer) = expr.eval_bool(&self.object)
        {
            return Ok(Ok(answer));
        }
        if let QuickJs::Engine(_) = self.quickjs {
            let QuickJs::Engine(engine) = std::mem::replace(&mut self.quickjs, QuickJs::Defer)
            else {
                unreachable!("matched above");
            };
            let object = self.object.take_whole();
            self.quickjs = QuickJs::Bound(engine.bind(vec![("event".to_owned(), object)]));
        }
        match &mut self.quickjs {
            QuickJs::Bound(bound) => Ok(bound
                .compile(source)
                .and_then(|expr| bound.eval_bool(&expr))),
            QuickJs::Unavailable | QuickJs::Defer | QuickJs::Engine(_) => Err(NeedsEngine),
        }
    }
}

/// Resolved filter names of one workflow, looked up in a catalog's filters.
pub struct FilterSet<'a> {
    pub names: &'a [String],
    pub lookup: &'a dyn Fn(&str) -> Option<&'a EventFilter>,
}

impl FilterSet<'_> {
    /// `Some(name)` of the first filter that rejects the event. Unknown filters are skipped
    /// with a warning (Sensu looks for an extension and, finding none, goes on). An expression
    /// that fails counts as an error and is skipped, as Sensu skips failing expressions; a
    /// filter that needs QuickJS where no engine could start is skipped as one error.
    /// `Err` from a deferring scope, with nothing counted.
    pub fn filtered(
        &self,
        event: &mut EventScope<'_>,
        now: i64,
        errors: &AtomicU64,
    ) -> Result<Option<String>, NeedsEngine> {
        let mut counted = 0;
        for name in self.names {
            if let Some(passes) = builtin_passes(name, event.event()) {
                if !passes {
                    errors.fetch_add(counted, Ordering::Relaxed);
                    return Ok(Some(name.clone()));
                }
                continue;
            }
            let Some(filter) = (self.lookup)(name) else {
                tracing::warn!(filter = %name, "Filter not found; skipped");
                continue;
            };
            let v = match evaluate(event, filter, now) {
                Ok(v) => v,
                // As when no engine could run any stored filter: skipped, one error.
                Err(NeedsEngine) if event.engine_unavailable() => {
                    counted += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            counted += u64::from(v.errors);
            if v.filtered {
                errors.fetch_add(counted, Ordering::Relaxed);
                return Ok(Some(name.clone()));
            }
        }
        errors.fetch_add(counted, Ordering::Relaxed);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use proto_spec::v2::time_window::{TimeWindowDays, TimeWindowTimeRange, TimeWindowWhen};
    use serde_json::json;

    fn event(status: u32, history: &[u32], occurrences: i64) -> Event {
        serde_json::from_value(json!({
            "entity": {"metadata": {"name": "web-1", "namespace": "default",
                        "labels": {"region": "eu", "api_token": "secret"}},
                       "entity_class": "agent"},
            "check": {"metadata": {"name": "cpu", "namespace": "default"},
                      "status": status, "interval": 60, "occurrences": occurrences,
                      "history": history.iter().map(|s| json!({"status": s, "executed": 1})).collect::<Vec<_>>()},
            "metadata": {"namespace": "default"}
        }))
        .unwrap()
    }

    fn filter(action: &str, exprs: &[&str]) -> EventFilter {
        EventFilter {
            metadata: ObjectMeta {
                name: "f".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            action: action.into(),
            expressions: Some(exprs.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn engine() -> Engine {
        Engine::new(jsexpr::Limits::default()).unwrap()
    }

    // 2024-06-03 is a Monday; 10:30 UTC.
    const MONDAY_1030: i64 = 1_717_410_600;

    fn run(f: &EventFilter, e: &Event) -> Verdict {
        let mut engine = engine();
        let mut scope = EventScope::new(e, Some(&mut engine));
        evaluate(&mut scope, f, MONDAY_1030).unwrap()
    }

    #[test]
    fn builtins() {
        let failing = event(2, &[0, 2], 1);
        let resolution = event(0, &[2, 0], 1);
        let ok = event(0, &[0, 0], 2);
        assert_eq!(builtin_passes(IS_INCIDENT, &failing), Some(true));
        assert_eq!(builtin_passes(IS_INCIDENT, &resolution), Some(true));
        assert_eq!(builtin_passes(IS_INCIDENT, &ok), Some(false));
        assert_eq!(builtin_passes(HAS_METRICS, &ok), Some(false));
        assert_eq!(builtin_passes(NOT_SILENCED, &ok), Some(true));
        let mut silenced = ok.clone();
        silenced.check.as_mut().unwrap().silenced = vec!["*:cpu".into()];
        assert_eq!(builtin_passes(NOT_SILENCED, &silenced), Some(false));
        assert_eq!(builtin_passes("custom", &ok), None);
    }

    #[test]
    fn the_event_object_has_lifted_metadata_and_synthesized_flags() {
        let e = event(0, &[2, 0], 1);
        let f = filter(
            "allow",
            &[
                "event.check.name == 'cpu' && event.entity.name == 'web-1'",
                "event.entity.metadata.name == 'web-1' && event.entity.labels.region == 'eu'",
                "event.is_resolution && !event.is_incident && event.has_check && !event.has_metrics",
                "!event.is_silenced && !event.is_flapping_start && !event.is_flapping_end",
                "event.entity.labels.api_token == 'REDACTED'",
                "typeof event.check.labels == 'object' && event.check.labels !== null",
                "event.name === undefined || event.name === ''",
            ],
        );
        assert_eq!(
            run(&f, &e),
            Verdict {
                filtered: false,
                errors: 0
            }
        );
    }

    #[test]
    fn allow_and_deny_with_several_expressions() {
        let e = event(2, &[2, 2], 3);
        assert!(
            !run(
                &filter(
                    "allow",
                    &["event.check.status == 2", "event.check.occurrences == 3"]
                ),
                &e
            )
            .filtered
        );
        assert!(
            run(
                &filter(
                    "allow",
                    &["event.check.status == 2", "event.check.occurrences == 1"]
                ),
                &e
            )
            .filtered
        );
        assert!(
            run(
                &filter(
                    "deny",
                    &["event.check.status == 2", "event.check.occurrences == 3"]
                ),
                &e
            )
            .filtered
        );
        assert!(
            !run(
                &filter(
                    "deny",
                    &["event.check.status == 2", "event.check.occurrences == 1"]
                ),
                &e
            )
            .filtered
        );
    }

    #[test]
    fn occurrence_filter_of_the_sensu_docs() {
        let f = filter(
            "allow",
            &[
                "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0",
            ],
        );
        let passes: Vec<i64> = (1..=61)
            .filter(|n| !run(&f, &event(2, &[2], *n)).filtered)
            .collect();
        assert_eq!(passes, [1, 30, 60]);
    }

    #[test]
    fn a_throwing_expression_is_skipped_and_counted() {
        let e = event(2, &[2], 1);
        let v = run(
            &filter(
                "allow",
                &["event.nothing.here == 1", "event.check.status == 2"],
            ),
            &e,
        );
        assert_eq!(
            v,
            Verdict {
                filtered: false,
                errors: 1
            }
        );
        let v = run(&filter("deny", &["event.nothing.here == 1"]), &e);
        assert_eq!(
            v,
            Verdict {
                filtered: true,
                errors: 1
            }
        );
    }

    /// Without an engine, simple expressions still run; a filter that needs QuickJS is
    /// skipped as one error. A deferring scope gives up instead, counting nothing.
    #[test]
    fn without_an_engine() {
        let e = event(2, &[2], 3);
        let quickjs = filter("deny", &["event.check.status == 2", "hour(0) == 0"]);
        let mut simple = filter("allow", &["event.check.occurrences == 1"]);
        simple.metadata.name = "simple".into();
        let filters = [quickjs, simple];
        let lookup = |name: &str| filters.iter().find(|f| f.metadata.name == name);
        let names = vec!["f".to_owned(), "simple".to_owned()];
        let set = FilterSet {
            names: &names,
            lookup: &lookup,
        };
        let errors = AtomicU64::new(0);
        let mut scope = EventScope::new(&e, None);
        assert_eq!(
            set.filtered(&mut scope, MONDAY_1030, &errors),
            Ok(Some("simple".to_owned()))
        );
        assert_eq!(errors.load(Ordering::Relaxed), 1);
        let mut deferring = EventScope::deferring(&e);
        assert_eq!(
            set.filtered(&mut deferring, MONDAY_1030, &errors),
            Err(NeedsEngine)
        );
        assert_eq!(errors.load(Ordering::Relaxed), 1);
    }

    fn window(begin: &str, end: &str) -> TimeWindowWhen {
        TimeWindowWhen {
            days: TimeWindowDays {
                monday: vec![TimeWindowTimeRange {
                    begin: begin.into(),
                    end: end.into(),
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn when_windows_gate_allow_and_deny() {
        let e = event(2, &[2], 1);
        let mut allow = filter("allow", &["true"]);
        allow.when = Some(window("9:00AM", "5:00PM"));
        assert!(!run(&allow, &e).filtered, "inside the window");
        allow.when = Some(window("11:00AM", "5:00PM"));
        assert!(run(&allow, &e).filtered, "outside the window");

        let mut deny = filter("deny", &["true"]);
        deny.when = Some(window("9:00AM", "5:00PM"));
        assert!(run(&deny, &e).filtered, "deny inside the window");
        deny.when = Some(window("11:00AM", "5:00PM"));
        assert!(!run(&deny, &e).filtered, "deny outside the window");
    }
}
