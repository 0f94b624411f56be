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
//! The filter run evaluates the stored filters the way the runner does (one `EventScope` per
//! event: `jsexpr::simple` answers what it can from the parts of the event object it reads;
//! the rest goes to QuickJS, the object built and bound to the engine once) on the calling
//! thread. The same filters written just outside the simple subset (`0, <expression>`, which
//! is the same JavaScript) measure the QuickJS path.
//!
//! The TCP floor run does only what the tcp handler's kernel work is: connect, write the
//! event JSON, close, against the same in-process sink, from tokio tasks and from a plain
//! blocking loop, to tell the kernel's share from the pipeline's.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::events_throughput::{NAMESPACE, entity};
use crate::stats::{process_cpu_time, thread_cpu_time};

/// Acceptance step 4's repeat filter: first occurrence, then every 30 minutes.
pub const OCCURRENCE_FILTER: &str =
    "event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0";
/// A deny filter that lets production events through.
pub const ENVIRONMENT_FILTER: &str = "event.entity.labels.env == \"dev\"";

/// Prefixed to an expression, the same JavaScript outside `jsexpr::simple`'s subset (the
/// comma operator), so it runs on QuickJS.
const QUICKJS_ONLY: &str = "0, ";

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
    /// Write the filters just outside `jsexpr::simple`'s subset, so QuickJS runs them.
    pub quickjs: bool,
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
    pub quickjs: bool,
    /// CPU time of the sink's thread (part of `cpu`).
    pub sink_cpu: Duration,
}

impl PipelineReport {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn per_cpu_second(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(0.01)
    }

    /// Events per CPU-second of the pipeline alone (the process less the sink's thread).
    pub fn per_pipeline_cpu_second(&self) -> f64 {
        self.events as f64
            / self
                .cpu
                .saturating_sub(self.sink_cpu)
                .as_secs_f64()
                .max(0.01)
    }
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pipeline: {} events ({}json mutator, tcp handler), {} delivered, {:.1} MiB",
            self.events,
            if self.filter_evaluations > 0 && self.quickjs {
                "2 JavaScript filters on QuickJS, "
            } else if self.filter_evaluations > 0 {
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
        writeln!(
            f,
            "of which the sink's thread {:.2} s: {:.0} events per CPU-second of the pipeline alone",
            self.sink_cpu.as_secs_f64(),
            self.per_pipeline_cpu_second()
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

/// The same two filters, written so that QuickJS runs them.
pub fn quickjs_filters() -> Result<Vec<EventFilter>> {
    Ok(vec![
        filter(
            "repeats",
            "allow",
            &format!("{QUICKJS_ONLY}{OCCURRENCE_FILTER}"),
        )?,
        filter(
            "not-dev",
            "deny",
            &format!("{QUICKJS_ONLY}{ENVIRONMENT_FILTER}"),
        )?,
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

/// The receiving end of the tcp handler: one connection per event, read to its end, on a
/// thread of its own (its own single-threaded runtime), so its CPU time can be told apart
/// from the pipeline's: in production the receiver is another process.
struct Sink {
    port: u16,
    delivered: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    /// Connections that failed or did not carry a whole event JSON.
    bad: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<Duration>>,
}

impl Sink {
    fn start() -> Result<Sink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let delivered = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let (d, b, x) = (delivered.clone(), bytes.clone(), bad.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || -> Result<Duration> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let accept = async {
                        while let Ok((mut conn, _)) = listener.accept().await {
                            let (delivered, bytes, bad) = (d.clone(), b.clone(), x.clone());
                            tokio::spawn(async move {
                                let mut buf = Vec::with_capacity(4096);
                                if conn.read_to_end(&mut buf).await.is_err() {
                                    bad.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                                if !whole_event(&buf) {
                                    bad.fetch_add(1, Ordering::Relaxed);
                                }
                                bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                                delivered.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stopped => {}
                    }
                    anyhow::Ok(())
                })?;
                Ok(thread_cpu_time()?)
            })?;
        Ok(Sink {
            port,
            delivered,
            bytes,
            bad,
            stop,
            thread,
        })
    }

    /// Stops the sink; the CPU time its thread used.
    fn stop(self) -> Result<Duration> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the sink thread panicked"))?
    }
}

/// A cheap check that the json mutator's output arrived whole: the event JSON object, naming
/// the check.
fn whole_event(buf: &[u8]) -> bool {
    buf.first() == Some(&b'{')
        && buf.last() == Some(&b'}')
        && buf.windows(12).any(|w| w == b"\"check-http\"")
}

/// Run `config.events` events through the workflow; fails unless every one reaches the sink.
pub async fn run_pipeline(config: &PipelineConfig) -> Result<PipelineReport> {
    ensure!(
        config.events > 0 && config.concurrency > 0,
        "nothing to run"
    );
    let sink = Sink::start()?;
    let (port, delivered, bytes, bad) = (
        sink.port,
        sink.delivered.clone(),
        sink.bytes.clone(),
        sink.bad.clone(),
    );

    let handler: Handler = serde_json::from_value(json!({
        "metadata": {"name": "tcp", "namespace": NAMESPACE},
        "type": "tcp",
        "socket": {"host": "127.0.0.1", "port": port},
        "timeout": 10,
        "mutator": "json",
        "filters": if config.filters { vec!["repeats", "not-dev"] } else { vec![] },
    }))?;
    let mut catalog = Catalog::with_handlers([handler]);
    for f in if config.quickjs {
        quickjs_filters()?
    } else {
        filters()?
    } {
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
    let sink_cpu = sink.stop()?;

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
        quickjs: config.quickjs,
        sink_cpu,
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
    /// Evaluations of the occurrence expression against one event (as the runner evaluates
    /// every expression of an event against one scope).
    pub single: Stage,
    /// Evaluations of `true` against the same event: the fixed cost of an evaluation.
    pub trivial: Stage,
    /// The occurrence expression on QuickJS, against the event bound once.
    pub quickjs_single: Stage,
    /// `event_for_filters` objects built (what QuickJS needs per event).
    pub objects: Stage,
    /// Events through both filters, each event with its own scope (the per-event cost
    /// included).
    pub events: Stage,
    /// The same on QuickJS (each event's object built and bound to the engine).
    pub quickjs_events: Stage,
}

impl fmt::Display for FilterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "filter evaluations, occurrence filter: {} (one event)",
            self.single
        )?;
        writeln!(
            f,
            "filter evaluations, `true`:            {} (one event)",
            self.trivial
        )?;
        writeln!(
            f,
            "occurrence filter on QuickJS:          {} (one bound event)",
            self.quickjs_single
        )?;
        writeln!(f, "event_for_filters objects:             {}", self.objects)?;
        writeln!(
            f,
            "events through both filters:           {} ({:.0} evaluations per CPU-second)",
            self.events,
            2.0 * self.events.per_cpu_second()
        )?;
        write!(
            f,
            "events through both filters, QuickJS:  {}",
            self.quickjs_events
        )
    }
}

/// Evaluate filters on this thread: `evaluations` of the occurrence filter (and of `true`)
/// against one event, then `events` distinct events through both filters as the runner does;
/// each also on QuickJS.
pub fn run_filters(evaluations: u64, events: u64) -> Result<FilterReport> {
    let mut engine = Engine::new(Limits::default())?;
    let simple = filters()?;
    let quickjs = quickjs_filters()?;
    let trivial = filter("trivial", "allow", "true")?;
    let now = 1_764_000_000;
    let event = failing_event(7, &["tcp"]);
    let run = |f: &EventFilter, engine: &mut Engine| -> Result<()> {
        let mut scope = EventScope::new(&event, Some(engine));
        for _ in 0..evaluations {
            let v = evaluate(&mut scope, f, now).map_err(|_| anyhow::anyhow!("deferred"))?;
            ensure!(v.errors == 0 && !v.filtered, "unexpected verdict {v:?}");
        }
        Ok(())
    };
    let single = Stage::measure(evaluations, || run(&simple[0], &mut engine))?;
    let trivial = Stage::measure(evaluations, || run(&trivial, &mut engine))?;
    let quickjs_single = Stage::measure(evaluations, || run(&quickjs[0], &mut engine))?;

    let distinct: Vec<Event> = (0..1000).map(|i| failing_event(i, &["tcp"])).collect();
    let objects = Stage::measure(events, || {
        for i in 0..events {
            let o = event_for_filters(&distinct[i as usize % distinct.len()]);
            ensure!(o.is_object(), "not an object");
        }
        Ok(())
    })?;
    let through = |filters: &[EventFilter], engine: &mut Engine| -> Result<Stage> {
        let names: Vec<String> = filters.iter().map(|f| f.metadata.name.clone()).collect();
        let lookup = |name: &str| filters.iter().find(|f| f.metadata.name == name);
        let set = FilterSet {
            names: &names,
            lookup: &lookup,
        };
        let errors = AtomicU64::new(0);
        let stage = Stage::measure(events, || {
            for i in 0..events {
                let event = &distinct[i as usize % distinct.len()];
                let mut scope = EventScope::new(event, Some(&mut *engine));
                let filtered = set
                    .filtered(&mut scope, now, &errors)
                    .map_err(|_| anyhow::anyhow!("deferred"))?;
                if let Some(name) = filtered {
                    bail!("event {i} filtered by {name}");
                }
            }
            Ok(())
        })?;
        ensure!(
            errors.load(Ordering::Relaxed) == 0,
            "filter expressions failed"
        );
        Ok(stage)
    };
    let events_stage = through(&simple, &mut engine)?;
    let quickjs_events = through(&quickjs, &mut engine)?;
    Ok(FilterReport {
        single,
        trivial,
        quickjs_single,
        objects,
        events: events_stage,
        quickjs_events,
    })
}

/// Connections per second doing only what the tcp handler asks of the kernel.
#[derive(Debug)]
pub struct TcpFloorReport {
    /// Tokio tasks (`concurrency` of them), each connect, write, shutdown, close, against the
    /// benchmark's sink; `cpu` is the whole process's.
    pub tokio: Stage,
    /// CPU time of the sink's thread during `tokio`.
    pub tokio_sink_cpu: Duration,
    /// One thread in a blocking loop against a blocking sink thread; `cpu` is both threads'.
    pub blocking: Stage,
    /// CPU time of the blocking loop's thread alone.
    pub blocking_client_cpu: Duration,
    pub bytes_per_event: usize,
}

fn per_cpu_second(count: u64, cpu: Duration) -> f64 {
    count as f64 / cpu.as_secs_f64().max(0.01)
}

impl fmt::Display for TcpFloorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tcp floor ({} bytes per connection), tokio tasks: {}; without the sink's thread ({:.2} s): {:.0} per CPU-second",
            self.bytes_per_event,
            self.tokio,
            self.tokio_sink_cpu.as_secs_f64(),
            per_cpu_second(
                self.tokio.count,
                self.tokio.cpu.saturating_sub(self.tokio_sink_cpu)
            )
        )?;
        write!(
            f,
            "tcp floor, blocking loop and sink thread: {}; the loop's thread alone {:.2} s: {:.0} per CPU-second",
            self.blocking,
            self.blocking_client_cpu.as_secs_f64(),
            per_cpu_second(self.blocking.count, self.blocking_client_cpu)
        )
    }
}

/// `events` connections carrying the benchmark's event JSON, without the pipeline: the same
/// sink and concurrency as [`run_pipeline`], then plain blocking sockets.
pub async fn run_tcp_floor(events: usize, concurrency: usize) -> Result<TcpFloorReport> {
    ensure!(events > 0 && concurrency > 0, "nothing to run");
    let payload: Arc<[u8]> = serde_json::to_vec(&failing_event(7, &["tcp"]))?.into();
    let sink = Sink::start()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sink.port));
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.min(events) {
        let (next, payload) = (next.clone(), payload.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let mut conn = tokio::net::TcpStream::connect(addr).await?;
                conn.write_all(&payload).await?;
                conn.shutdown().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a connecting task panicked")??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.delivered.load(Ordering::Relaxed) < events as u64 {
        ensure!(
            Instant::now() < deadline,
            "the sink did not receive everything"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let tokio_stage = Stage {
        count: events as u64,
        wall: started.elapsed(),
        cpu: process_cpu_time()? - cpu_before,
    };
    let bad = sink.bad.load(Ordering::Relaxed);
    let tokio_sink_cpu = sink.stop()?;
    ensure!(bad == 0, "{bad} bad payloads");

    let floor_payload = payload.clone();
    let (blocking, blocking_client_cpu) =
        tokio::task::spawn_blocking(move || blocking_floor(events, &floor_payload))
            .await
            .context("the blocking loop panicked")??;
    Ok(TcpFloorReport {
        tokio: tokio_stage,
        tokio_sink_cpu,
        blocking,
        blocking_client_cpu,
        bytes_per_event: payload.len(),
    })
}

/// The blocking loop: the stage (both threads' CPU) and the loop thread's own CPU time.
fn blocking_floor(events: usize, payload: &[u8]) -> Result<(Stage, Duration)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sink = std::thread::spawn(move || -> Result<u64> {
        let mut buf = Vec::with_capacity(4096);
        let mut whole = 0;
        for _ in 0..events {
            let (mut conn, _) = listener.accept()?;
            buf.clear();
            conn.read_to_end(&mut buf)?;
            whole += u64::from(whole_event(&buf));
        }
        Ok(whole)
    });
    let cpu_before = process_cpu_time()?;
    let thread_before = thread_cpu_time()?;
    let started = Instant::now();
    let sent = (|| -> Result<()> {
        for _ in 0..events {
            let mut conn = std::net::TcpStream::connect(addr)?;
            conn.write_all(payload)?;
            conn.shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    })();
    let client_cpu = thread_cpu_time()? - thread_before;
    // Measured once the sink has read everything: its CPU counts too.
    let whole = sink
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
    let stage = Stage {
        count: events as u64,
        wall: started.elapsed(),
        cpu: process_cpu_time()? - cpu_before,
    };
    sent?;
    ensure!(whole == events as u64, "{whole} of {events} payloads whole");
    Ok((stage, client_cpu))
}
