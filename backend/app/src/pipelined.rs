//! pipelined: every event published on the event bus runs through its pipelines
//! (sensu-compat 3) on `backend-pipeline`'s bounded [`Runner`].
//!
//! Per event: skip it if it names no pipeline and no handler; otherwise take the namespace's
//! [`Catalog`] (handlers, filters, mutators, pipelines, assets) from a cache, reading the store
//! on a miss, and submit the event to the runner, which never waits (a full queue drops and
//! counts). The cache is invalidated per namespace by store watches on the five prefixes; a
//! generation counter keeps a read that raced with a change from being cached.
//!
//! The bus is a broadcast channel: if this loop falls behind, the oldest events are lost for
//! the pipeline (never for eventd); they are counted (`picket_pipeline_events_lagged_total`)
//! and logged.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_pipeline::{Catalog, Counters, PipelineAssets, Runner, RunnerConfig};
use proto_spec::v2::pipeline::Pipeline;
use proto_spec::v2::{Asset, Event, EventFilter, Handler, Mutator};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::keys;
use crate::metrics::Metrics;
use crate::repo::{Repo, RepoResult};

/// Store prefixes (sensu-compat 6.4) of the definitions a catalog holds.
const KINDS: [&str; 5] = [
    "handlers",
    "event-filters",
    "mutators",
    "pipelines",
    "assets",
];

#[derive(Default)]
struct Cache {
    generation: u64,
    by_namespace: HashMap<String, Arc<Catalog>>,
}

pub struct Pipelined {
    repo: Repo,
    metrics: Arc<Metrics>,
    runner: Runner,
    cache: Arc<Mutex<Cache>>,
}

impl Pipelined {
    /// Start the runner's workers (on the current runtime). `assets` installs handlers' and
    /// mutators' runtime assets; without it those fail (logged).
    pub fn new(
        repo: Repo,
        metrics: Arc<Metrics>,
        config: RunnerConfig,
        assets: Option<Arc<PipelineAssets>>,
    ) -> Self {
        Pipelined {
            repo,
            metrics,
            runner: Runner::start_with_assets(config, assets),
            cache: Arc::default(),
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.runner.counters()
    }

    /// Consume the bus until shutdown (or until the bus closes).
    pub async fn run(
        self,
        mut events: broadcast::Receiver<Arc<Event>>,
        shutdown: CancellationToken,
    ) {
        let mut tasks = Vec::new();
        for kind in KINDS {
            tasks.push(tokio::spawn(invalidate_on_change(
                self.repo.clone(),
                self.cache.clone(),
                kind,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(export_counters(
            self.runner.counters(),
            self.metrics.clone(),
            shutdown.clone(),
        )));
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = events.recv() => n,
            };
            match next {
                Ok(event) => self.dispatch(event).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.metrics
                        .pipeline_events_lagged_total
                        .fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(
                        missed = n,
                        "pipelined fell behind the event bus; events not handled"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        for t in tasks {
            t.abort();
        }
    }

    async fn dispatch(&self, event: Arc<Event>) {
        let has_handlers = event
            .check
            .as_ref()
            .is_some_and(|c| !c.config.handlers.is_empty())
            || event
                .metrics
                .as_ref()
                .is_some_and(|m| !m.handlers.as_deref().unwrap_or_default().is_empty());
        if !has_handlers && event.pipelines.as_deref().unwrap_or_default().is_empty() {
            return;
        }
        let ns = event.namespace().to_string();
        match self.catalog(&ns).await {
            Ok(catalog) => {
                self.runner.submit(redact(event), catalog);
            }
            Err(e) => {
                tracing::error!(namespace = %ns, error = %e, "Cannot read pipeline definitions; event not handled");
            }
        }
    }

    async fn catalog(&self, ns: &str) -> RepoResult<Arc<Catalog>> {
        let generation = {
            let cache = self.cache.lock().expect("cache lock");
            if let Some(c) = cache.by_namespace.get(ns) {
                return Ok(c.clone());
            }
            cache.generation
        };
        let catalog = Arc::new(load_catalog(&self.repo, ns).await?);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.generation == generation {
            cache.by_namespace.insert(ns.to_string(), catalog.clone());
        }
        Ok(catalog)
    }
}

/// Read one namespace's definitions from the store.
/// The event as the pipeline sees it: entity labels and annotations named by its `redact`
/// list (or the default list) read `REDACTED` (sensu-compat 1.3), so no filter, mutator,
/// handler or log line of the pipeline ever holds the secret. The stored event keeps the real
/// values; an event with nothing to hide is passed on without a copy.
fn redact(event: Arc<Event>) -> Arc<Event> {
    let Some(entity) = event.entity.as_ref() else {
        return event;
    };
    let redacted = entity.redacted();
    if redacted == *entity {
        return event;
    }
    let mut copy = (*event).clone();
    copy.entity = Some(redacted);
    Arc::new(copy)
}

pub async fn load_catalog(repo: &Repo, ns: &str) -> RepoResult<Catalog> {
    async fn named<T: DeserializeOwned>(
        repo: &Repo,
        kind: &str,
        ns: &str,
        name: impl Fn(&T) -> String,
    ) -> RepoResult<HashMap<String, T>> {
        let items: Vec<(String, T)> = repo
            .list_all(&keys::resources_prefix(kind, Some(ns)))
            .await?;
        Ok(items.into_iter().map(|(_, v)| (name(&v), v)).collect())
    }
    let filters = named(repo, "event-filters", ns, |f: &EventFilter| {
        f.metadata.name.clone()
    })
    .await?;
    for (name, filter) in &filters {
        if filter
            .runtime_assets
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            // Logged whenever the namespace's catalog is (re)loaded, not per event.
            tracing::warn!(
                namespace = ns,
                filter = %name,
                assets = ?filter.runtime_assets,
                "Filter names runtime_assets: JavaScript libraries from assets are not implemented for filters; its expressions run without them (a call into the library fails and is counted as a filter error)"
            );
        }
    }
    Ok(Catalog {
        handlers: named(repo, "handlers", ns, |h: &Handler| h.metadata.name.clone()).await?,
        filters,
        mutators: named(repo, "mutators", ns, |m: &Mutator| m.metadata.name.clone()).await?,
        pipelines: named(repo, "pipelines", ns, |p: &Pipeline| {
            p.metadata.name.clone()
        })
        .await?,
        assets: named(repo, "assets", ns, |a: &Asset| a.metadata.name.clone()).await?,
    })
}

async fn invalidate_on_change(
    repo: Repo,
    cache: Arc<Mutex<Cache>>,
    kind: &'static str,
    shutdown: CancellationToken,
) {
    let prefix = keys::resources_prefix(kind, None);
    let store = repo.store.clone();
    crate::repo::follow(store, prefix.clone(), shutdown, |change| {
        let ns = change
            .kv()
            .key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string();
        let mut cache = cache.lock().expect("cache lock");
        cache.generation += 1;
        cache.by_namespace.remove(&ns);
        std::future::ready(())
    })
    .await;
}

/// Copy the runner's counters into the backend's `/metrics` counters once a second.
async fn export_counters(
    counters: Arc<Counters>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = &counters;
        let m = &metrics;
        let pairs = [
            (&c.events_handled, &m.pipeline_events_handled_total),
            (&c.events_dropped, &m.pipeline_events_dropped_total),
            (&c.workflows_filtered, &m.pipeline_workflows_filtered_total),
            (&c.filter_errors, &m.pipeline_filter_errors_total),
            (&c.mutator_errors, &m.pipeline_mutator_errors_total),
            (&c.handler_executions, &m.pipeline_handler_executions_total),
            (&c.handler_errors, &m.pipeline_handler_errors_total),
            (&c.handler_timeouts, &m.pipeline_handler_timeouts_total),
        ];
        for (from, to) in pairs {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}
