//! The bounded executor: events wait in one queue (`buffer_size`) for a pool of `workers`
//! tasks. [`Runner::submit`] never waits: with the queue full the event is dropped and
//! counted, so event processing is never held up by slow handlers.
//!
//! A worker takes one event: resolves its pipelines, evaluates every workflow's filters (on
//! the worker while `jsexpr::simple` answers every expression, else in one job on a
//! [`FilterPool`] thread with QuickJS), then runs each pipeline's workflows in order: mutator,
//! then handler. A mutator or handler error stops the rest of that pipeline (sensu-compat 3.4);
//! other pipelines go on. A pipe handler's exit status or timeout is not an error.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsexpr::{Engine, Limits};
use proto_spec::v2::Event;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::assets::PipelineAssets;
use crate::filter::{EventScope, FilterSet, NeedsEngine};
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
        let filters = FilterPool::start(
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(config.workers.max(1)),
        );
        for _ in 0..config.workers.max(1) {
            let rx = rx.clone();
            let counters = counters.clone();
            let assets = assets.clone();
            let filters = filters.clone();
            tokio::spawn(async move {
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { break };
                    process(
                        &job.event,
                        &job.catalog,
                        &counters,
                        &filters,
                        assets.as_deref(),
                    )
                    .await;
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

/// Per pipeline, per workflow: `Some(filter name)` for a workflow a filter stopped.
type Verdicts = Vec<Vec<Option<String>>>;

struct FilterJob {
    event: Arc<Event>,
    catalog: Arc<Catalog>,
    pipelines: Vec<ResolvedPipeline>,
    counters: Arc<Counters>,
    reply: oneshot::Sender<(Vec<ResolvedPipeline>, Verdicts)>,
}

/// The threads that run JavaScript filters, off the async workers (an expression may run for
/// its whole time limit). Each thread keeps one [`Engine`] for its lifetime, so expressions
/// stay compiled, and takes every workflow of an event in one job; with events waiting, a
/// thread goes from one job to the next without sleeping. In-flight jobs are bounded by the
/// runner's workers (each waits for its reply). The threads end when every handle is gone.
#[derive(Clone)]
pub struct FilterPool {
    tx: std::sync::mpsc::Sender<FilterJob>,
}

impl FilterPool {
    /// Start `threads` filter threads (at least one); their engines are made on first use.
    pub fn start(threads: usize) -> FilterPool {
        let (tx, rx) = std::sync::mpsc::channel::<FilterJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pipeline-filters-{i}"))
                .spawn(move || filter_thread(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "Cannot start a pipeline filter thread");
            }
        }
        FilterPool { tx }
    }

    /// A pool whose threads are gone, as after a failure to start them.
    #[cfg(test)]
    fn stopped() -> FilterPool {
        let (tx, _) = std::sync::mpsc::channel::<FilterJob>();
        FilterPool { tx }
    }

    /// One filter thread per core the process may run on.
    pub fn per_core() -> FilterPool {
        FilterPool::start(std::thread::available_parallelism().map_or(1, usize::from))
    }

    async fn evaluate(
        &self,
        event: &Arc<Event>,
        catalog: &Arc<Catalog>,
        pipelines: Vec<ResolvedPipeline>,
        counters: &Arc<Counters>,
    ) -> Option<(Vec<ResolvedPipeline>, Verdicts)> {
        let (reply, verdicts) = oneshot::channel();
        let job = FilterJob {
            event: event.clone(),
            catalog: catalog.clone(),
            pipelines,
            counters: counters.clone(),
            reply,
        };
        if self.tx.send(job).is_err() {
            tracing::error!("No pipeline filter thread is running; event not handled");
            return None;
        }
        match verdicts.await {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::error!("Filter evaluation panicked; event not handled");
                None
            }
        }
    }
}

fn filter_thread(rx: &std::sync::Mutex<std::sync::mpsc::Receiver<FilterJob>>) {
    let mut engine: Option<Engine> = None;
    loop {
        // The lock is only held while waiting; a poisoned one still guards a sound receiver.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        if engine.is_none() {
            match Engine::new(Limits::default()) {
                Ok(e) => engine = Some(e),
                Err(e) => tracing::error!(error = %e, "Cannot start the filter JavaScript engine"),
            }
        }
        let FilterJob {
            event,
            catalog,
            pipelines,
            counters,
            reply,
        } = job;
        let run = std::panic::AssertUnwindSafe(|| {
            let scope = EventScope::new(&event, engine.as_mut());
            evaluate_filters(&catalog, &pipelines, &counters, scope)
        });
        match std::panic::catch_unwind(run) {
            Ok(Ok(verdicts)) => {
                let _ = reply.send((pipelines, verdicts));
            }
            // A scope with an engine (or none at all) never defers; dropping the reply tells
            // the worker, which logs it.
            Ok(Err(NeedsEngine)) => {}
            // The engine may be mid-way through something, so the next job gets a new one.
            Err(_) => engine = None,
        }
    }
}

/// Which workflows (per pipeline) the filters stop, all workflows of the event against one
/// [`EventScope`]. `Err` from a deferring scope (nothing counted then).
fn evaluate_filters(
    catalog: &Catalog,
    pipelines: &[ResolvedPipeline],
    counters: &Counters,
    mut scope: EventScope<'_>,
) -> Result<Verdicts, NeedsEngine> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let lookup = |name: &str| catalog.filters.get(name);
    let mut verdicts = Vec::with_capacity(pipelines.len());
    let mut filtered = 0;
    for p in pipelines {
        let mut per_workflow = Vec::with_capacity(p.workflows.len());
        for w in &p.workflows {
            let set = FilterSet {
                names: &w.filters,
                lookup: &lookup,
            };
            let errors = AtomicU64::new(0);
            per_workflow.push(set.filtered(&mut scope, now, &errors)?);
            filtered += errors.into_inner();
        }
        verdicts.push(per_workflow);
    }
    // Counted once every workflow is through: a deferring scope that gives up part-way
    // leaves the counters untouched for the filter thread that runs it all again.
    counters
        .filter_errors
        .fetch_add(filtered, Ordering::Relaxed);
    Ok(verdicts)
}

/// Run every pipeline of `event` to completion (what a worker does with one event).
/// Filters run on the worker while `jsexpr::simple` answers every expression (and the
/// built-ins); an event with an expression that needs QuickJS goes to `filters` instead.
pub async fn process(
    event: &Arc<Event>,
    catalog: &Arc<Catalog>,
    counters: &Arc<Counters>,
    filters: &FilterPool,
    assets: Option<&PipelineAssets>,
) {
    inc(&counters.events_handled);
    let pipelines = resolve(event, catalog);
    if pipelines.iter().all(|p| p.workflows.is_empty()) {
        return;
    }
    let inline = evaluate_filters(catalog, &pipelines, counters, EventScope::deferring(event));
    let (pipelines, verdicts) = match inline {
        Ok(verdicts) => (pipelines, verdicts),
        Err(NeedsEngine) => match filters.evaluate(event, catalog, pipelines, counters).await {
            Some(done) => done,
            None => return,
        },
    };
    // The json mutator's output, made once for all the workflows that use it.
    let mut json: Option<Vec<u8>> = None;
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
            let mutated;
            let data: &[u8] = if mutator::is_json(&w.mutator) {
                json.get_or_insert_with(|| mutator::event_json(event))
            } else {
                match mutator::mutate(&w.mutator, mutator_def.as_deref(), event).await {
                    Ok(d) => {
                        mutated = d;
                        &mutated
                    }
                    Err(e) => {
                        inc(&counters.mutator_errors);
                        tracing::error!(pipeline = %p.name, workflow = %w.name, error = %e, "Mutator failed; rest of the pipeline skipped");
                        break;
                    }
                }
            };
            let handler_def = match with_asset_env(Some(&w.handler), catalog, assets).await {
                Ok(h) => h.unwrap_or(Cow::Borrowed(&w.handler)),
                Err(e) => {
                    inc(&counters.handler_errors);
                    tracing::error!(pipeline = %p.name, workflow = %w.name, handler = %handler_name, error = %e, "Handler assets not installed; rest of the pipeline skipped");
                    break;
                }
            };
            inc(&counters.handler_executions);
            match handler::handle(&handler_def, data).await {
                Ok(done) if done.timed_out => {
                    inc(&counters.handler_timeouts);
                    tracing::warn!(handler = %handler_name, timeout = w.handler.timeout, output = %done.output, "Handler killed at its timeout");
                }
                Ok(done) if done.status.is_some_and(|s| s != 0) => {
                    // The command ran but says it failed: the operator must see it, and
                    // `/metrics` counts it with the handlers that could not run at all.
                    inc(&counters.handler_errors);
                    tracing::warn!(handler = %handler_name, status = ?done.status, output = %done.output, "Handler exited with a non-zero status");
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
async fn with_asset_env<'d, T: HasAssets + Clone>(
    def: Option<&'d T>,
    catalog: &Catalog,
    assets: Option<&PipelineAssets>,
) -> Result<Option<Cow<'d, T>>, String> {
    let Some(def) = def else { return Ok(None) };
    let wanted = def.runtime_assets();
    if wanted.is_empty() {
        return Ok(Some(Cow::Borrowed(def)));
    }
    let Some(assets) = assets else {
        return Err("this backend has no asset cache".into());
    };
    let mut env = assets.environment(&catalog.assets, wanted).await?;
    let mut def = def.clone();
    env.append(def.env_vars_mut());
    *def.env_vars_mut() = env;
    Ok(Some(Cow::Owned(def)))
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
    async fn a_handler_exiting_non_zero_is_counted_and_the_others_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut failing = file_handler("a-failing", &out);
        failing.command = "cat > /dev/null; exit 3".into();
        let catalog = Arc::new(Catalog::with_handlers([
            failing,
            file_handler("b-file", &out),
        ]));
        let runner = Runner::start(RunnerConfig {
            workers: 1,
            buffer_size: 10,
        });
        let counters = runner.counters();
        assert!(runner.submit(event(2, &["a-failing", "b-file"]), catalog));
        for _ in 0..200 {
            // The file handler appends a newline after the event once it has written it.
            let written = std::fs::read_to_string(&out).is_ok_and(|t| t.ends_with('\n'));
            if written && counters.handler_errors.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(counters.handler_executions.load(Ordering::Relaxed), 2);
        assert_eq!(counters.handler_errors.load(Ordering::Relaxed), 1);
        assert!(std::fs::read_to_string(&out).unwrap().contains("status 2"));
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

    fn js_filter(name: &str, action: &str, expressions: &[&str]) -> proto_spec::v2::EventFilter {
        proto_spec::v2::EventFilter {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            },
            action: action.into(),
            expressions: Some(expressions.iter().map(|e| e.to_string()).collect()),
            ..Default::default()
        }
    }

    fn occurrence(status: u32, occurrences: i64, handlers: &[&str]) -> Arc<Event> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "entity": {"metadata": {"name": "e", "namespace": "default",
                                        "labels": {"env": "prod"}}},
                "check": {"metadata": {"name": "c", "namespace": "default"}, "status": status,
                          "output": format!("occurrence {occurrences}"), "interval": 60,
                          "occurrences": occurrences, "handlers": handlers},
            }))
            .unwrap(),
        )
    }

    /// Every JavaScript filter of an event's workflows runs in one job on a filter thread; a
    /// hostile expression is stopped at its time limit, counted and skipped, and the thread
    /// (and its engine) goes on serving the next events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn javascript_filters_run_on_the_filter_threads() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut first = file_handler("a-first", &out);
        first.filters = Some(vec![
            "is_incident".into(),
            "hostile".into(),
            "repeats".into(),
            "not-dev".into(),
        ]);
        first.mutator = "only_check_output".into();
        let mut second = file_handler("b-second", &out);
        second.mutator = "only_check_output".into();
        second.filters = Some(vec!["throws".into(), "repeats".into()]);
        let mut catalog = Catalog::with_handlers([first, second]);
        for f in [
            js_filter("hostile", "allow", &["(function () { while (true) {} }())"]),
            js_filter(
                "repeats",
                "allow",
                &[
                    "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0",
                ],
            ),
            js_filter("not-dev", "deny", &["event.entity.labels.env == 'dev'"]),
            js_filter("throws", "allow", &["event.no.such.thing"]),
        ] {
            catalog.filters.insert(f.metadata.name.clone(), f);
        }
        let catalog = Arc::new(catalog);
        let counters = Arc::new(Counters::default());
        let filters = FilterPool::start(1);
        let started = std::time::Instant::now();
        for occurrences in [1, 2, 30] {
            let event = occurrence(2, occurrences, &["a-first", "b-second"]);
            process(&event, &catalog, &counters, &filters, None).await;
        }
        // Three events through the hostile filter's 100 ms limit, not stuck in it.
        assert!(started.elapsed() < Duration::from_secs(10));
        let got = std::fs::read_to_string(&out).unwrap();
        let mut lines: Vec<&str> = got.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "occurrence 1",
                "occurrence 1",
                "occurrence 30",
                "occurrence 30"
            ]
        );
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Per event: the hostile expression in the first workflow, the throwing one in the
        // second.
        assert_eq!(c(&counters.filter_errors), 6);
        assert_eq!(c(&counters.workflows_filtered), 2);
        assert_eq!(c(&counters.handler_executions), 4);
    }

    /// Expressions `jsexpr::simple` answers run on the worker: with no filter thread at all,
    /// such an event is still filtered and handled; one with an expression that needs QuickJS
    /// needs a filter thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simple_filters_run_on_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut simple = file_handler("simple", &out);
        simple.mutator = "only_check_output".into();
        simple.filters = Some(vec!["repeats".into(), "not-dev".into()]);
        let mut quickjs = simple.clone();
        quickjs.metadata.name = "quickjs".into();
        quickjs.filters = Some(vec!["hourly".into()]);
        let mut catalog = Catalog::with_handlers([simple, quickjs]);
        for f in [
            js_filter(
                "repeats",
                "allow",
                &[
                    "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0",
                ],
            ),
            js_filter("not-dev", "deny", &["event.entity.labels.env == 'dev'"]),
            js_filter("hourly", "allow", &["hour(event.check.executed) >= 0"]),
        ] {
            catalog.filters.insert(f.metadata.name.clone(), f);
        }
        let catalog = Arc::new(catalog);
        let counters = Arc::new(Counters::default());
        let stopped = FilterPool::stopped();
        for occurrences in [1, 2, 30] {
            let event = occurrence(2, occurrences, &["simple"]);
            process(&event, &catalog, &counters, &stopped, None).await;
        }
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "occurrence 1\noccurrence 30\n");
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(c(&counters.workflows_filtered), 1);
        assert_eq!(c(&counters.filter_errors), 0);

        let event = occurrence(2, 5, &["quickjs"]);
        process(&event, &catalog, &counters, &stopped, None).await;
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            got,
            "no filter thread"
        );
        process(&event, &catalog, &counters, &FilterPool::start(1), None).await;
        assert!(
            std::fs::read_to_string(&out)
                .unwrap()
                .ends_with("occurrence 5\n")
        );
        assert_eq!(c(&counters.handler_executions), 3);
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
