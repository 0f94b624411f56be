//! The bounded executor: events wait in one queue (`buffer_size`) for a pool of `workers`
//! tasks. [`Runner::submit`] never waits: with the queue full the event is dropped and
//! counted, so event processing is never held up by slow handlers.
//!
//! A worker takes one event: resolves its pipelines, evaluates every workflow's filters on a
//! blocking thread (JavaScript), then runs each pipeline's workflows in order: mutator, then
//! handler. A mutator or handler error stops the rest of that pipeline (sensu-compat 3.4);
//! other pipelines go on. A pipe handler's exit status or timeout is not an error.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsexpr::{Engine, Limits};
use proto_spec::v2::Event;
use tokio::sync::{Mutex, mpsc};

use crate::assets::PipelineAssets;
use crate::filter::FilterSet;
use crate::resolve::{Catalog, ResolvedPipeline, resolve};
use crate::{handler, mutator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Events handled concurrently (`--pipelined-workers`).
    pub workers: usize,
    /// Events waiting for a worker before new ones are dropped (`--pipelined-buffer-size`).
    pub buffer_size: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: 100,
            buffer_size: 1000,
        }
    }
}

/// The pipeline's counters (relaxed atomics), for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events taken by a worker and run through their pipelines.
    pub events_handled: AtomicU64,
    /// Events dropped because the queue was full.
    pub events_dropped: AtomicU64,
    /// Workflows stopped by a filter.
    pub workflows_filtered: AtomicU64,
    /// Filter expressions that failed to evaluate (skipped).
    pub filter_errors: AtomicU64,
    pub mutator_errors: AtomicU64,
    pub handler_executions: AtomicU64,
    pub handler_errors: AtomicU64,
    /// Pipe handlers killed at their timeout.
    pub handler_timeouts: AtomicU64,
}

impl Counters {
    /// `(name, value)` pairs, names without a prefix.
    pub fn snapshot(&self) -> [(&'static str, u64); 8] {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("events_handled", l(&self.events_handled)),
            ("events_dropped", l(&self.events_dropped)),
            ("workflows_filtered", l(&self.workflows_filtered)),
            ("filter_errors", l(&self.filter_errors)),
            ("mutator_errors", l(&self.mutator_errors)),
            ("handler_executions", l(&self.handler_executions)),
            ("handler_errors", l(&self.handler_errors)),
            ("handler_timeouts", l(&self.handler_timeouts)),
        ]
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Job {
    event: Arc<Event>,
    catalog: Arc<Catalog>,
}

/// Handle to the worker pool; the workers stop once every handle is dropped and the queue
/// is drained.
#[derive(Clone)]
pub struct Runner {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl Runner {
    /// Spawn the workers on the current tokio runtime.
    pub fn start(config: RunnerConfig) -> Runner {
        Runner::start_with_assets(config, None)
    }

    /// [`Runner::start`], installing handlers' and mutators' runtime assets with `assets`
    /// (without it, a handler or mutator naming assets fails).
    pub fn start_with_assets(config: RunnerConfig, assets: Option<Arc<PipelineAssets>>) -> Runner {
        let (tx, rx) = mpsc::channel::<Job>(config.buffer_size.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for _ in 0..config.workers.max(1) {
            let rx = rx.clone();
            let counters = counters.clone();
            let assets = assets.clone();
            tokio::spawn(async move {
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { break };
                    process(&job.event, &job.catalog, &counters, assets.as_deref()).await;
                }
            });
        }
        Runner { tx, counters }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Queue `event` with its namespace's definitions; `false` (and counted) when the queue
    /// is full or the workers are gone.
    pub fn submit(&self, event: Arc<Event>, catalog: Arc<Catalog>) -> bool {
        match self.tx.try_send(Job { event, catalog }) {
            Ok(()) => true,
            Err(_) => {
                inc(&self.counters.events_dropped);
                tracing::warn!("Pipeline queue full: event dropped");
                false
            }
        }
    }
}

thread_local! {
    static FILTER_ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Which workflows (per pipeline) the filters stop: `Some(filter name)` for a stopped one.
fn evaluate_filters(
    event: &Event,
    catalog: &Catalog,
    pipelines: &[ResolvedPipeline],
    counters: &Counters,
) -> Vec<Vec<Option<String>>> {
    FILTER_ENGINE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            match Engine::new(Limits::default()) {
                Ok(e) => *cell = Some(e),
                Err(e) => tracing::error!(error = %e, "Cannot start the filter JavaScript engine"),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let lookup = |name: &str| catalog.filters.get(name);
        let mut event_json = None;
        pipelines
            .iter()
            .map(|p| {
                p.workflows
                    .iter()
                    .map(|w| {
                        let set = FilterSet {
                            names: &w.filters,
                            lookup: &lookup,
                        };
                        match cell.as_mut() {
                            Some(engine) => set.filtered(
                                engine,
                                event,
                                &mut event_json,
                                now,
                                &counters.filter_errors,
                            ),
                            // Without an engine only the built-ins can run: the stored
                            // filters count as erroring and are skipped, as Sensu skips
                            // failing expressions.
                            None => w
                                .filters
                                .iter()
                                .find(|n| crate::filter::builtin_passes(n, event) == Some(false))
                                .cloned(),
                        }
                    })
                    .collect()
            })
            .collect()
    })
}

/// Run every pipeline of `event` to completion (what a worker does with one event).
pub async fn process(
    event: &Arc<Event>,
    catalog: &Arc<Catalog>,
    counters: &Arc<Counters>,
    assets: Option<&PipelineAssets>,
) {
    inc(&counters.events_handled);
    let pipelines = resolve(event, catalog);
    if pipelines.iter().all(|p| p.workflows.is_empty()) {
        return;
    }
    let verdicts = {
        let (event, catalog, counters) = (event.clone(), catalog.clone(), counters.clone());
        let pipelines = pipelines.clone();
        match tokio::task::spawn_blocking(move || {
            evaluate_filters(&event, &catalog, &pipelines, &counters)
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "Filter evaluation panicked; event not handled");
                return;
            }
        }
    };
    for (p, verdicts) in pipelines.iter().zip(verdicts) {
        for (w, filtered) in p.workflows.iter().zip(verdicts) {
            let handler_name = &w.handler.metadata.name;
            if let Some(filter) = filtered {
                inc(&counters.workflows_filtered);
                tracing::debug!(pipeline = %p.name, workflow = %w.name, filter = %filter, "Event filtered");
                continue;
            }
            let mutator_def = match with_asset_env(
                catalog.mutators.get(&w.mutator),
                catalog,
                assets,
            )
            .await
            {
                Ok(m) => m,
                Err(e) => {
                    inc(&counters.mutator_errors);
                    tracing::error!(pipeline = %p.name, workflow = %w.name, mutator = %w.mutator, error = %e, "Mutator assets not installed; rest of the pipeline skipped");
                    break;
                }
            };
            let data = match mutator::mutate(&w.mutator, mutator_def.as_ref(), event).await {
                Ok(d) => d,
                Err(e) => {
                    inc(&counters.mutator_errors);
                    tracing::error!(pipeline = %p.name, workflow = %w.name, error = %e, "Mutator failed; rest of the pipeline skipped");
                    break;
                }
            };
            let handler_def = match with_asset_env(Some(&w.handler), catalog, assets).await {
                Ok(h) => h.unwrap_or_else(|| w.handler.clone()),
                Err(e) => {
                    inc(&counters.handler_errors);
                    tracing::error!(pipeline = %p.name, workflow = %w.name, handler = %handler_name, error = %e, "Handler assets not installed; rest of the pipeline skipped");
                    break;
                }
            };
            inc(&counters.handler_executions);
            match handler::handle(&handler_def, &data).await {
                Ok(done) if done.timed_out => {
                    inc(&counters.handler_timeouts);
                    tracing::warn!(handler = %handler_name, timeout = w.handler.timeout, output = %done.output, "Handler killed at its timeout");
                }
                Ok(done) => {
                    tracing::debug!(handler = %handler_name, status = ?done.status, output = %done.output, "Handler finished");
                }
                Err(e) => {
                    inc(&counters.handler_errors);
                    tracing::error!(pipeline = %p.name, workflow = %w.name, error = %e, "Handler failed; rest of the pipeline skipped");
                    break;
                }
            }
        }
    }
}

/// A definition whose `runtime_assets` are installed, with their environment put before its
/// own `env_vars` (which win on a clash). Definitions without assets pass unchanged.
async fn with_asset_env<T: HasAssets + Clone>(
    def: Option<&T>,
    catalog: &Catalog,
    assets: Option<&PipelineAssets>,
) -> Result<Option<T>, String> {
    let Some(def) = def else { return Ok(None) };
    let wanted = def.runtime_assets();
    if wanted.is_empty() {
        return Ok(Some(def.clone()));
    }
    let Some(assets) = assets else {
        return Err("this backend has no asset cache".into());
    };
    let mut env = assets.environment(&catalog.assets, wanted).await?;
    let mut def = def.clone();
    env.append(def.env_vars_mut());
    *def.env_vars_mut() = env;
    Ok(Some(def))
}

trait HasAssets {
    fn runtime_assets(&self) -> &[String];
    fn env_vars_mut(&mut self) -> &mut Vec<String>;
}

impl HasAssets for proto_spec::v2::Handler {
    fn runtime_assets(&self) -> &[String] {
        self.runtime_assets.as_deref().unwrap_or_default()
    }
    fn env_vars_mut(&mut self) -> &mut Vec<String> {
        self.env_vars.get_or_insert_with(Vec::new)
    }
}

impl HasAssets for proto_spec::v2::Mutator {
    fn runtime_assets(&self) -> &[String] {
        self.runtime_assets.as_deref().unwrap_or_default()
    }
    fn env_vars_mut(&mut self) -> &mut Vec<String> {
        self.env_vars.get_or_insert_with(Vec::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use proto_spec::v2::Handler;
    use std::time::Duration;

    fn file_handler(name: &str, path: &std::path::Path) -> Handler {
        Handler {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            },
            type_: "pipe".into(),
            command: format!("cat >> {}; echo >> {}", path.display(), path.display()),
            filters: Some(vec!["is_incident".into()]),
            ..Default::default()
        }
    }

    fn event(status: u32, handlers: &[&str]) -> Arc<Event> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "entity": {"metadata": {"name": "e", "namespace": "default"}},
                "check": {"metadata": {"name": "c", "namespace": "default"}, "status": status,
                          "output": format!("status {status}"),
                          "handlers": handlers},
            }))
            .unwrap(),
        )
    }

    async fn wait_for(counters: &Counters, handled: u64) {
        for _ in 0..200 {
            if counters.events_handled.load(Ordering::Relaxed) >= handled
                && counters.handler_executions.load(Ordering::Relaxed)
                    + counters.workflows_filtered.load(Ordering::Relaxed)
                    + counters.handler_errors.load(Ordering::Relaxed)
                    > 0
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("events not handled in time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filters_mutators_handlers_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut only_output = file_handler("b-file", &out);
        only_output.mutator = "only_check_output".into();
        let mut broken = file_handler("a-broken", &out);
        broken.type_ = "tcp".into();
        broken.timeout = 1;
        broken.socket = Some(proto_spec::v2::HandlerSocket {
            host: "127.0.0.1".into(),
            port: 1,
        });
        let catalog = Arc::new(Catalog::with_handlers([only_output, broken]));
        let runner = Runner::start(RunnerConfig {
            workers: 2,
            buffer_size: 10,
        });
        let counters = runner.counters();
        // The failing tcp handler comes first (sorted by name) and stops the pipeline.
        assert!(runner.submit(event(2, &["a-broken", "b-file"]), catalog.clone()));
        wait_for(&counters, 1).await;
        assert_eq!(counters.handler_errors.load(Ordering::Relaxed), 1);
        assert!(!out.exists());
        // Filtered by is_incident: status 0 without a failing history.
        assert!(runner.submit(event(0, &["b-file"]), catalog.clone()));
        assert!(runner.submit(event(2, &["b-file"]), catalog.clone()));
        for _ in 0..100 {
            if out.exists() && counters.workflows_filtered.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "status 2\n");
        assert_eq!(counters.workflows_filtered.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut slow = file_handler("slow", &dir.path().join("x"));
        slow.command = "sleep 1".into();
        slow.filters = None;
        let catalog = Arc::new(Catalog::with_handlers([slow]));
        let runner = Runner::start(RunnerConfig {
            workers: 1,
            buffer_size: 2,
        });
        let started = std::time::Instant::now();
        let accepted = (0..10)
            .filter(|_| runner.submit(event(2, &["slow"]), catalog.clone()))
            .count();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!((2..=3).contains(&accepted), "{accepted}");
        assert_eq!(
            runner.counters().events_dropped.load(Ordering::Relaxed),
            10 - accepted as u64
        );
    }
}
