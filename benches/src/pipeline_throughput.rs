//! Events per second through pipelined's workflow (two JavaScript filters, the `json`
//! mutator, a `tcp` handler) and filter evaluations per second (`bench-pipeline`).
//!
//! The pipeline run drives `backend_pipeline::runner::process`, the body of each of the
//! runner's workers, from `concurrency` tasks (the backend's `--pipelined-workers`), so every
//! event is handled (the runner's bounded queue would drop and count instead). The handler
//! dials a TCP sink in the same process; every event must arrive there as one connection
//! carrying the event JSON, or the run fails. Figures are wall-clock rates and rates per
//! CPU-second of the whole process (sink included); `benches/run pipeline` pins the process to
//! one core.
//!
//! The filter run evaluates the stored filters the way the runner's filter threads do (one
//! `EventScope` per event: the `event_for_filters` object built and bound to the engine once,
//! each expression compiled once and cached by jsexpr) on the calling thread.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backend_pipeline::filter::{EventScope, FilterSet, evaluate, event_for_filters};
use backend_pipeline::runner::process;
use backend_pipeline::{Catalog, Counters, FilterPool};
use jsexpr::{Engine, Limits};
use proto_spec::ObjectMeta;
use proto_spec::v2::{Check, CheckConfig, Event, EventFilter, Handler};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::events_throughput::{NAMESPACE, entity};
use crate::stats::process_cpu_time;

/// Acceptance step 4's repeat filter: first occurrence, then every 30 minutes.
pub const OCCURRENCE_FILTER: &str =
    "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0";
/// A deny filter that lets production events through.
pub const ENVIRONMENT_FILTER: &str = "event.entity.labels.env == \"dev\"";

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub events: usize,
    /// Events handled at once (the backend's `--pipelined-workers`, default 100).
    pub concurrency: usize,
    /// Give up when the sink has not received everything this long after the last event.
    pub drain_timeout: Duration,
    /// Attach the two filters to the handler (off: the same pipeline without them, to see
    /// their share).
    pub filters: bool,
}

#[derive(Debug)]
pub struct PipelineReport {
    pub events: usize,
    pub wall: Duration,
    pub cpu: Duration,
    /// Connections the sink accepted, each carrying one event.
    pub delivered: u64,
    pub bytes: u64,
    pub filter_evaluations: u64,
}

impl PipelineReport {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn per_cpu_second(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(0.01)
    }
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pipeline: {} events ({}json mutator, tcp handler), {} delivered, {:.1} MiB",
            self.events,
            if self.filter_evaluations > 0 {
                "2 JavaScript filters, "
            } else {
                "no filters, "
            },
            self.delivered,
            self.bytes as f64 / 1048576.0
        )?;
        writeln!(
            f,
            "wall {:.2} s, CPU {:.2} s ({:.2} cores): {:.0} events/s, {:.0} events per CPU-second",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9),
            self.per_second(),
            self.per_cpu_second()
        )?;
        write!(f, "filter evaluations: {}", self.filter_evaluations)
    }
}

fn filter(name: &str, action: &str, expression: &str) -> Result<EventFilter> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "action": action,
        "expressions": [expression],
    }))?)
}

/// The two filters of the benchmark workflow, in order.
pub fn filters() -> Result<Vec<EventFilter>> {
    Ok(vec![
        filter("repeats", "allow", OCCURRENCE_FILTER)?,
        filter("not-dev", "deny", ENVIRONMENT_FILTER)?,
    ])
}

/// A failing check result on agent `index`, first occurrence (every filter lets it through).
pub fn failing_event(index: usize, handlers: &[&str]) -> Event {
    let entity = entity(index);
    let executed = 1_764_000_000 + index as i64;
    let config = CheckConfig {
        metadata: ObjectMeta::new(NAMESPACE, "check-http"),
        command: "/usr/lib/nagios/plugins/check_http -H 127.0.0.1 -u /health".into(),
        interval: 60,
        timeout: 10,
        publish: true,
        handlers: handlers.iter().map(|h| h.to_string()).collect(),
        subscriptions: vec!["web".into()],
        ..Default::default()
    };
    let check = Check {
        config,
        executed,
        issued: executed,
        output: "HTTP CRITICAL: HTTP/1.1 500 Internal Server Error - 212 bytes in 0.002 second response time".into(),
        status: 2,
        occurrences: 1,
        occurrences_watermark: 1,
        state: "failing".into(),
        scheduler: "memory".into(),
        ..Default::default()
    };
    Event {
        timestamp: executed,
        entity: Some(entity),
        check: Some(check),
        metadata: ObjectMeta::new(NAMESPACE, ""),
        id: Some(uuid::Uuid::new_v4()),
        sequence: 1,
        ..Default::default()
    }
}

/// Run `config.events` events through the workflow; fails unless every one reaches the sink.
pub async fn run_pipeline(config: &PipelineConfig) -> Result<PipelineReport> {
    ensure!(
        config.events > 0 && config.concurrency > 0,
        "nothing to run"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let delivered = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let sink = {
        let (delivered, bytes, bad) = (delivered.clone(), bytes.clone(), bad.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (delivered, bytes, bad) = (delivered.clone(), bytes.clone(), bad.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(4096);
                    if conn.read_to_end(&mut buf).await.is_err() {
                        bad.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // A cheap check that the json mutator's output arrived whole: the event
                    // JSON object, naming the check.
                    let whole = buf.first() == Some(&b'{')
                        && buf.last() == Some(&b'}')
                        && buf.windows(12).any(|w| w == b"\"check-http\"");
                    if !whole {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    delivered.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
    };

    let handler: Handler = serde_json::from_value(json!({
        "metadata": {"name": "tcp", "namespace": NAMESPACE},
        "type": "tcp",
        "socket": {"host": "127.0.0.1", "port": port},
        "timeout": 10,
        "mutator": "json",
        "filters": if config.filters { vec!["repeats", "not-dev"] } else { vec![] },
    }))?;
    let mut catalog = Catalog::with_handlers([handler]);
    for f in filters()? {
        catalog.filters.insert(f.metadata.name.clone(), f);
    }
    let catalog = Arc::new(catalog);
    let events: Arc<Vec<Arc<Event>>> = Arc::new(
        (0..config.events)
            .map(|i| Arc::new(failing_event(i % 1000, &["tcp"])))
            .collect(),
    );
    let counters = Arc::new(Counters::default());
    let next = Arc::new(AtomicUsize::new(0));
    // As the runner sizes it: one filter thread per core the process may use.
    let pool = FilterPool::per_core();

    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..config.concurrency.min(config.events) {
        let (events, catalog, counters, next, pool) = (
            events.clone(),
            catalog.clone(),
            counters.clone(),
            next.clone(),
            pool.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = events.get(i) else { break };
                process(event, &catalog, &counters, &pool, None).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a pipeline task panicked")?;
    }
    let deadline = Instant::now() + config.drain_timeout;
    while delivered.load(Ordering::Relaxed) < config.events as u64 {
        if Instant::now() > deadline {
            bail!(
                "the sink received {} of {} events",
                delivered.load(Ordering::Relaxed),
                config.events
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = started.elapsed();
    let cpu = process_cpu_time()? - cpu_before;
    sink.abort();

    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    ensure!(
        c(&counters.handler_executions) == config.events as u64,
        "{} handler executions for {} events",
        c(&counters.handler_executions),
        config.events
    );
    for (what, n) in [
        ("filtered workflows", c(&counters.workflows_filtered)),
        ("filter errors", c(&counters.filter_errors)),
        ("mutator errors", c(&counters.mutator_errors)),
        ("handler errors", c(&counters.handler_errors)),
        ("handler timeouts", c(&counters.handler_timeouts)),
        ("payloads that were not the event JSON", c(&bad)),
    ] {
        ensure!(n == 0, "{n} {what}");
    }
    Ok(PipelineReport {
        events: config.events,
        wall,
        cpu,
        delivered: c(&delivered),
        bytes: c(&bytes),
        filter_evaluations: if config.filters {
            2 * config.events as u64
        } else {
            0
        },
    })
}

/// Work done on one thread: how much, in how long, on how much CPU.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub count: u64,
    pub wall: Duration,
    pub cpu: Duration,
}

impl Stage {
    fn measure(count: u64, mut body: impl FnMut() -> Result<()>) -> Result<Stage> {
        let cpu_before = process_cpu_time()?;
        let started = Instant::now();
        body()?;
        Ok(Stage {
            count,
            wall: started.elapsed(),
            cpu: process_cpu_time()? - cpu_before,
        })
    }

    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn per_cpu_second(&self) -> f64 {
        self.count as f64 / self.cpu.as_secs_f64().max(0.01)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in {:.2} s wall, {:.2} s CPU: {:.0}/s, {:.0} per CPU-second",
            self.count,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.per_second(),
            self.per_cpu_second()
        )
    }
}

#[derive(Debug)]
pub struct FilterReport {
    /// Evaluations of the occurrence expression against one event, bound to the engine once
    /// (as the runner binds each event once for all its filters).
    pub single: Stage,
    /// Evaluations of `true` against the same bound event: the fixed cost of an evaluation,
    /// whatever the expression.
    pub trivial: Stage,
    /// `event_for_filters` objects built (the per-event preparation).
    pub objects: Stage,
    /// Events through both filters, each with its own `event_for_filters` object bound to the
    /// engine (the per-event cost included).
    pub events: Stage,
}

impl fmt::Display for FilterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "filter evaluations, occurrence filter: {} (one bound event)",
            self.single
        )?;
        writeln!(
            f,
            "filter evaluations, `true`:            {} (one bound event)",
            self.trivial
        )?;
        writeln!(f, "event_for_filters objects:             {}", self.objects)?;
        write!(
            f,
            "events through both filters:           {} ({:.0} evaluations per CPU-second)",
            self.events,
            2.0 * self.events.per_cpu_second()
        )
    }
}

/// Evaluate filters on this thread: `evaluations` of the occurrence filter (and of `true`)
/// against one event object, then `events` distinct events through both filters as the
/// runner does.
pub fn run_filters(evaluations: u64, events: u64) -> Result<FilterReport> {
    let mut engine = Engine::new(Limits::default())?;
    let filters = filters()?;
    let trivial = filter("trivial", "allow", "true")?;
    let now = 1_764_000_000;
    let event = failing_event(7, &["tcp"]);
    let run = |f: &EventFilter, engine: &mut Engine| -> Result<()> {
        let mut scope = EventScope::new(&event, Some(engine));
        let bound = scope.bound().context("no engine")?;
        for _ in 0..evaluations {
            let v = evaluate(bound, f, now);
            ensure!(v.errors == 0 && !v.filtered, "unexpected verdict {v:?}");
        }
        Ok(())
    };
    let single = Stage::measure(evaluations, || run(&filters[0], &mut engine))?;
    let trivial = Stage::measure(evaluations, || run(&trivial, &mut engine))?;

    let distinct: Vec<Event> = (0..1000).map(|i| failing_event(i, &["tcp"])).collect();
    let objects = Stage::measure(events, || {
        for i in 0..events {
            let o = event_for_filters(&distinct[i as usize % distinct.len()]);
            ensure!(o.is_object(), "not an object");
        }
        Ok(())
    })?;
    let names: Vec<String> = filters.iter().map(|f| f.metadata.name.clone()).collect();
    let lookup = |name: &str| filters.iter().find(|f| f.metadata.name == name);
    let set = FilterSet {
        names: &names,
        lookup: &lookup,
    };
    let errors = AtomicU64::new(0);
    let through = Stage::measure(events, || {
        for i in 0..events {
            let event = &distinct[i as usize % distinct.len()];
            let mut scope = EventScope::new(event, Some(&mut engine));
            if let Some(name) = set.filtered(&mut scope, now, &errors) {
                bail!("event {i} filtered by {name}");
            }
        }
        Ok(())
    })?;
    ensure!(
        errors.load(Ordering::Relaxed) == 0,
        "filter expressions failed"
    );
    Ok(FilterReport {
        single,
        trivial,
        objects,
        events: through,
    })
}
