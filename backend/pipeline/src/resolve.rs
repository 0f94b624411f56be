//! From an event to the workflows to run (sensu-compat 3).
//!
//! * Explicit pipelines: each `event.pipelines` reference of type `Pipeline` names a stored
//!   [`Pipeline`]; its workflows run in their order. A workflow's handler may be a `set`
//!   (expanded like the legacy pipeline's); unknown references are skipped with a warning.
//! * The legacy pipeline (named `legacy-pipeline`): handler names `check.handlers` ∪
//!   `metrics.handlers`, `set`s expanded, one workflow per handler sorted by handler name,
//!   with the handler's `filters` and `mutator`.
//!
//! Set expansion follows Sensu's `expandHandlers`: the names given are level 1; a set's
//! members are one level deeper; a set met at level 3 is dropped with an error (so
//! set → set → handler works, and cycles end); missing handlers are skipped with a warning;
//! duplicates collapse.

use std::collections::{BTreeMap, HashMap};

use proto_spec::v2::handler::HANDLER_TYPE_SET;
use proto_spec::v2::pipeline::Pipeline;
use proto_spec::v2::{Event, EventFilter, Handler, Mutator};

/// Name of the synthetic pipeline built from `check.handlers` and `metrics.handlers`.
pub const LEGACY_PIPELINE: &str = "legacy-pipeline";

/// Deepest level at which a set is still expanded.
const MAX_SET_LEVEL: usize = 2;

/// One namespace's definitions, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub handlers: HashMap<String, Handler>,
    pub filters: HashMap<String, EventFilter>,
    pub mutators: HashMap<String, Mutator>,
    pub pipelines: HashMap<String, Pipeline>,
    /// For handlers' and mutators' `runtime_assets`.
    pub assets: HashMap<String, proto_spec::v2::Asset>,
}

impl Catalog {
    pub fn with_handlers(handlers: impl IntoIterator<Item = Handler>) -> Self {
        Catalog {
            handlers: handlers
                .into_iter()
                .map(|h| (h.metadata.name.clone(), h))
                .collect(),
            ..Default::default()
        }
    }
}

/// One filter → mutator → handler chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub name: String,
    /// Filter names in order: built-ins (`is_incident`, `not_silenced`, `has_metrics`) or
    /// stored [`EventFilter`]s.
    pub filters: Vec<String>,
    /// Empty: the `json` mutator.
    pub mutator: String,
    pub handler: Handler,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPipeline {
    pub name: String,
    pub workflows: Vec<Workflow>,
}

/// Every pipeline of `event`: its explicit ones, then the legacy one (if it has handlers).
pub fn resolve(event: &Event, catalog: &Catalog) -> Vec<ResolvedPipeline> {
    let mut out = Vec::new();
    for r in event.pipelines.as_deref().unwrap_or_default() {
        if r.type_ != "Pipeline" {
            tracing::warn!(pipeline = %r.name, kind = %r.type_, "Pipeline reference of an unsupported type skipped");
            continue;
        }
        let Some(p) = catalog.pipelines.get(&r.name) else {
            tracing::warn!(pipeline = %r.name, "Pipeline not found; skipped");
            continue;
        };
        out.push(explicit_pipeline(p, catalog));
    }
    if let Some(legacy) = legacy_pipeline(event, catalog) {
        out.push(legacy);
    }
    out
}

/// The workflows of a stored pipeline (handler sets expanded into one workflow per member).
pub fn explicit_pipeline(p: &Pipeline, catalog: &Catalog) -> ResolvedPipeline {
    let mut workflows = Vec::new();
    for w in p.workflows() {
        let Some(h) = &w.handler else { continue };
        let filters: Vec<String> = w.filters.iter().map(|f| f.name.clone()).collect();
        let mutator = w
            .mutator
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        for handler in expand_handlers(std::slice::from_ref(&h.name), catalog) {
            workflows.push(Workflow {
                name: w.name.clone(),
                filters: filters.clone(),
                mutator: mutator.clone(),
                handler,
            });
        }
    }
    ResolvedPipeline {
        name: p.metadata.name.clone(),
        workflows,
    }
}

/// The legacy pipeline, or `None` when the event names no handler.
pub fn legacy_pipeline(event: &Event, catalog: &Catalog) -> Option<ResolvedPipeline> {
    let mut names: Vec<String> = Vec::new();
    if let Some(c) = &event.check {
        names.extend(c.config.handlers.iter().cloned());
    }
    if let Some(m) = &event.metrics {
        names.extend(m.handlers.iter().flatten().cloned());
    }
    if names.is_empty() {
        return None;
    }
    let workflows = expand_handlers(&names, catalog)
        .into_iter()
        .map(|h| Workflow {
            name: format!("legacy-{}", h.metadata.name),
            filters: h.filters().to_vec(),
            mutator: h.mutator.clone(),
            handler: h,
        })
        .collect();
    Some(ResolvedPipeline {
        name: LEGACY_PIPELINE.to_string(),
        workflows,
    })
}

/// The non-set handlers `names` designate, sorted by name, each once.
pub fn expand_handlers(names: &[String], catalog: &Catalog) -> Vec<Handler> {
    let mut found = BTreeMap::new();
    expand(names, catalog, 0, &mut found);
    found.into_values().collect()
}

fn expand(names: &[String], catalog: &Catalog, level: usize, out: &mut BTreeMap<String, Handler>) {
    for name in names {
        let Some(h) = catalog.handlers.get(name) else {
            // Debug, not warn: every keepalive names the `keepalive` handler, which most
            // installations never define, so a warning would repeat per agent per interval.
            tracing::debug!(handler = %name, "Handler not found; skipped");
            continue;
        };
        if h.type_ == HANDLER_TYPE_SET {
            if level >= MAX_SET_LEVEL {
                tracing::error!(handler = %name, "Handler sets cannot be nested more than two deep; set dropped");
                continue;
            }
            expand(h.handlers(), catalog, level + 1, out);
        } else {
            out.entry(name.clone()).or_insert_with(|| h.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use proto_spec::v2::{Check, CheckConfig, Metrics};

    fn pipe(name: &str) -> Handler {
        Handler {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            },
            type_: "pipe".into(),
            command: "cat".into(),
            ..Default::default()
        }
    }

    fn set(name: &str, members: &[&str]) -> Handler {
        Handler {
            type_: "set".into(),
            command: String::new(),
            handlers: Some(members.iter().map(|s| s.to_string()).collect()),
            ..pipe(name)
        }
    }

    fn names(hs: &[Handler]) -> Vec<&str> {
        hs.iter().map(|h| h.metadata.name.as_str()).collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sets_expand_two_levels_and_collapse_duplicates() {
        let c = Catalog::with_handlers([
            pipe("a"),
            pipe("b"),
            pipe("c"),
            set("inner", &["b", "c"]),
            set("outer", &["a", "inner", "b"]),
        ]);
        let got = expand_handlers(&strings(&["outer", "a", "missing"]), &c);
        assert_eq!(names(&got), ["a", "b", "c"]);
    }

    #[test]
    fn a_third_level_set_is_dropped_and_cycles_end() {
        let c = Catalog::with_handlers([
            pipe("leaf"),
            pipe("deep-leaf"),
            set("l3", &["deep-leaf"]),
            set("l2", &["l3", "leaf"]),
            set("l1", &["l2"]),
            set("x", &["y"]),
            set("y", &["x", "leaf"]),
        ]);
        assert_eq!(names(&expand_handlers(&strings(&["l1"]), &c)), ["leaf"]);
        assert_eq!(names(&expand_handlers(&strings(&["x"]), &c)), ["leaf"]);
        // Starting one level lower, l3's members are reachable.
        assert_eq!(
            names(&expand_handlers(&strings(&["l2"]), &c)),
            ["deep-leaf", "leaf"]
        );
    }

    #[test]
    fn legacy_pipeline_from_check_and_metrics_handlers() {
        let mut z = pipe("zeta");
        z.filters = Some(strings(&["is_incident", "hourly"]));
        z.mutator = "only_check_output".into();
        let c = Catalog::with_handlers([z, pipe("alpha"), pipe("influx"), set("ops", &["alpha"])]);
        let event = Event {
            check: Some(Check::from_config(CheckConfig {
                handlers: strings(&["zeta", "ops"]),
                ..Default::default()
            })),
            metrics: Some(Metrics {
                handlers: Some(strings(&["influx", "alpha"])),
                points: None,
            }),
            ..Default::default()
        };
        let p = legacy_pipeline(&event, &c).unwrap();
        assert_eq!(p.name, LEGACY_PIPELINE);
        let hs: Vec<&str> = p
            .workflows
            .iter()
            .map(|w| w.handler.metadata.name.as_str())
            .collect();
        assert_eq!(hs, ["alpha", "influx", "zeta"]);
        let zeta = &p.workflows[2];
        assert_eq!(zeta.filters, strings(&["is_incident", "hourly"]));
        assert_eq!(zeta.mutator, "only_check_output");
        assert_eq!(p.workflows[0].mutator, "");
        assert!(legacy_pipeline(&Event::default(), &c).is_none());
    }

    #[test]
    fn explicit_pipelines_resolve_references() {
        let pipeline: Pipeline = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p1", "namespace": "default"},
            "workflows": [
                {"name": "w1", "filters": [{"name": "is_incident", "type": "EventFilter", "api_version": "core/v2"}],
                 "mutator": {"name": "m", "type": "Mutator", "api_version": "core/v2"},
                 "handler": {"name": "alpha", "type": "Handler", "api_version": "core/v2"}},
                {"name": "w2", "handler": {"name": "gone", "type": "Handler", "api_version": "core/v2"}}
            ]
        }))
        .unwrap();
        let mut c = Catalog::with_handlers([pipe("alpha")]);
        c.pipelines.insert("p1".into(), pipeline);
        let event: Event = serde_json::from_value(serde_json::json!({
            "pipelines": [
                {"name": "p1", "type": "Pipeline", "api_version": "core/v2"},
                {"name": "nope", "type": "Pipeline", "api_version": "core/v2"}
            ]
        }))
        .unwrap();
        let ps = resolve(&event, &c);
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].workflows.len(), 1);
        assert_eq!(ps[0].workflows[0].name, "w1");
        assert_eq!(ps[0].workflows[0].filters, strings(&["is_incident"]));
        assert_eq!(ps[0].workflows[0].mutator, "m");
    }
}
