//! StatsD through the running agent: a real client library (Python's `statsd` package, from
//! PyPI: `pip install statsd`) sends to the agent's listener, and the flushed metrics event
//! reaches the scripted backend of `backend.rs`, where every point is checked against values
//! computed by hand.
//!
//! Timing: the flush interval is 1 s. The test first sends a marker metric and waits for
//! the event that flushes it, which just started an interval; the Python client, already
//! started and waiting on its stdin, then sends everything within a few milliseconds, so all
//! of it lands in that one interval.

use std::process::Stdio;
use std::time::Duration;

use agent::{Agent, CancellationToken, Config};
use proto_spec::ObjectMeta;
use proto_spec::v2::{EntityConfig, Event};
use proto_spec::wire;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::time::{Instant, timeout};

use crate::backend::{Backend, Conn, STEP};

/// The client side, in Python: waits for a line on stdin, then sends. `random.random` is
/// pinned so that sampled calls are always sent (the client drops a call with probability
/// 1 − rate before adding `|@rate`), which makes the expected values exact.
const CLIENT: &str = r#"
import random, sys
try:
    import statsd
except ImportError as e:
    sys.exit("cannot import the Python statsd package (pip install statsd): %s" % e)
random.random = lambda: 0.0
c = statsd.StatsClient("127.0.0.1", int(sys.argv[1]), prefix="app")
print("ready", flush=True)
sys.stdin.readline()
c.incr("requests", 3, rate=0.5)        # app.requests:3|c|@0.5
c.incr("requests")                     # app.requests:1|c
c.decr("requests", 2)                  # app.requests:-2|c
c.gauge("temp", 20)                    # app.temp:20|g
c.gauge("temp", 5, delta=True)         # app.temp:+5|g
c.gauge("temp", -3, delta=True)        # app.temp:-3|g
c.gauge("level", -4)                   # one datagram: app.level:0|g, app.level:-4|g
for ms in (30, 10, 50, 20, 40):
    c.timing("latency", ms)            # app.latency:30.000000|ms ...
c.timing("latency", 60, rate=0.25)     # app.latency:60.000000|ms|@0.25
c.set("users", "alice")
c.set("users", "bob")
c.set("users", "alice")
with c.pipeline() as pipe:             # one datagram, five lines
    pipe.incr("batch.hits")
    pipe.incr("batch.hits", 4)
    pipe.timing("batch.t", 5)
    pipe.gauge("batch.g", 7)
    pipe.set("batch.s", "x")
print("sent", flush=True)
"#;

fn config(backend: &Backend, name: &str, extra: &[&str]) -> Config {
    crate::support::test_config(&backend.url(), name, &crate::support::cache_dir(), extra)
}

fn entity_config(name: &str) -> wire::Message {
    wire::Message::EntityConfig(Box::new(EntityConfig {
        metadata: ObjectMeta::new("default", name),
        entity_class: "agent".into(),
        subscriptions: Some(vec![]),
        ..Default::default()
    }))
}

/// Fail with instructions, not with a puzzling timeout, when the client library is missing.
async fn require_python_statsd() {
    let out = Command::new("python3")
        .args(["-c", "import statsd"])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "this test needs the Python statsd package (install it with `pip install statsd`): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("this test needs python3 with the statsd package (pip install statsd): {e}")
        }
    }
}

/// The next `event` frame, skipping keepalives.
async fn next_event(conn: &mut Conn) -> Event {
    loop {
        match conn.frame().await {
            wire::Message::Event(e) => return *e,
            wire::Message::Keepalive(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn expect_line(lines: &mut Lines<BufReader<ChildStdout>>, want: &str) {
    let line = timeout(STEP, lines.next_line())
        .await
        .expect("the Python client did not answer in time")
        .unwrap();
    assert_eq!(
        line.as_deref(),
        Some(want),
        "the Python client failed (see its stderr above)"
    );
}

/// A point as compared here: name, value, tags.
type Point = (String, f64, Vec<(String, String)>);

/// Every point of an event, in order.
fn points(event: &Event) -> Vec<Point> {
    event
        .metrics
        .as_ref()
        .expect("a metrics event")
        .points
        .iter()
        .flatten()
        .map(|p| {
            let tags = p
                .tags
                .iter()
                .flatten()
                .map(|t| (t.name.clone(), t.value.clone()))
                .collect();
            (p.name.clone(), p.value, tags)
        })
        .collect()
}

#[tokio::test]
async fn python_statsd_client_metrics_reach_the_backend() {
    require_python_statsd().await;
    let backend = Backend::start().await;
    let agent = Agent::new(config(
        &backend,
        "agent-s",
        &[
            "--statsd-metrics-port",
            "0",
            "--statsd-flush-interval",
            "1",
            "--statsd-event-handlers",
            "influx,graphite",
        ],
    ))
    .unwrap();
    let statsd_addr = agent.statsd_addr().expect("the StatsD listener is bound");
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move { agent.run(t).await.unwrap() });

    // The client starts now (Python takes a moment) and waits for "go".
    let mut client = Command::new("python3")
        .args(["-c", CLIENT, &statsd_addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run python3");
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap()).lines();
    expect_line(&mut stdout, "ready").await;

    let mut conn = backend.accept().await;
    conn.send(entity_config("agent-s")).await;
    conn.keepalive().await;

    // Nothing sent yet: flush after flush, no event (only keepalives).
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while let Ok(frame) = tokio::time::timeout_at(quiet_until, conn.frame()).await {
        assert!(
            matches!(frame, wire::Message::Keepalive(_)),
            "no metrics were sent, yet: {frame:?}"
        );
    }

    // The marker's event starts a fresh interval.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"marker:1|c", statsd_addr).await.unwrap();
    let marker = next_event(&mut conn).await;
    assert_eq!(
        points(&marker),
        [
            ("marker.value".into(), 1.0, vec![]),
            ("marker.per_second".into(), 1.0, vec![])
        ]
    );

    // Everything now, within the interval: DogStatsD tags (the Python client has none) in
    // both orders, plus a bad line that must not spoil its datagram; then the client.
    udp.send_to(
        b"tagged.count:2|c|#env:prod,az:eu-1\nnot a metric\ntagged.count:3|c|#az:eu-1,env:prod",
        statsd_addr,
    )
    .await
    .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    expect_line(&mut stdout, "sent").await;

    let event = next_event(&mut conn).await;
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let tags = || vec![("az".into(), "eu-1".into()), ("env".into(), "prod".into())];
    let p = |name: &str, value: f64| (name.to_string(), value, vec![]);
    // Counters, timers, gauges, sets; each kind by name, then tags.
    let want: Vec<Point> = vec![
        // 1 + 4
        p("app.batch.hits.value", 5.0),
        p("app.batch.hits.per_second", 5.0),
        // 3/0.5 + 1 − 2
        p("app.requests.value", 5.0),
        p("app.requests.per_second", 5.0),
        // Idle since the last flush: still emitted, zeroed.
        p("marker.value", 0.0),
        p("marker.per_second", 0.0),
        // 2 + 3, one series whatever the tag order.
        ("tagged.count.value".into(), 5.0, tags()),
        ("tagged.count.per_second".into(), 5.0, tags()),
        // One value, 5: it is its own 90th percentile.
        p("app.batch.t.min", 5.0),
        p("app.batch.t.max", 5.0),
        p("app.batch.t.count", 1.0),
        p("app.batch.t.per_second", 1.0),
        p("app.batch.t.mean", 5.0),
        p("app.batch.t.median", 5.0),
        p("app.batch.t.stddev", 0.0),
        p("app.batch.t.sum", 5.0),
        p("app.batch.t.sum_squares", 25.0),
        p("app.batch.t.percentile_count_90", 1.0),
        p("app.batch.t.percentile_mean_90", 5.0),
        p("app.batch.t.percentile_sum_90", 5.0),
        p("app.batch.t.percentile_sum_squares_90", 25.0),
        p("app.batch.t.percentile_upper_90", 5.0),
        // Sorted 10 20 30 40 50 60; the 60 was sampled at 0.25: count 5 + 1/0.25 = 9.
        // mean = median = 210/6 = 35; Σv² = 9100; stddev = √(2·(25² + 15² + 5²)/6).
        // p90: round(0.9·6) = 5 values, 10..50: sum 150, mean 30, Σv² 5500, upper 50.
        p("app.latency.min", 10.0),
        p("app.latency.max", 60.0),
        p("app.latency.count", 9.0),
        p("app.latency.per_second", 9.0),
        p("app.latency.mean", 35.0),
        p("app.latency.median", 35.0),
        p("app.latency.stddev", (1750.0f64 / 6.0).sqrt()),
        p("app.latency.sum", 210.0),
        p("app.latency.sum_squares", 9100.0),
        p("app.latency.percentile_count_90", 5.0),
        p("app.latency.percentile_mean_90", 30.0),
        p("app.latency.percentile_sum_90", 150.0),
        p("app.latency.percentile_sum_squares_90", 5500.0),
        p("app.latency.percentile_upper_90", 50.0),
        p("app.batch.g.value", 7.0),
        // The client sends a negative gauge as 0 then the (delta) -4.
        p("app.level.value", -4.0),
        // 20 + 5 − 3
        p("app.temp.value", 22.0),
        p("app.batch.s.value", 1.0),
        // alice, bob, alice
        p("app.users.value", 2.0),
    ];
    let got = points(&event);
    let names = |v: &[Point]| -> Vec<String> { v.iter().map(|x| x.0.clone()).collect() };
    assert_eq!(names(&got), names(&want), "point names and order");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.1 - w.1).abs() <= 1e-9 * w.1.abs().max(1.0),
            "{}: got {}, want {}",
            g.0,
            g.1,
            w.1
        );
        assert_eq!(g.2, w.2, "tags of {}", g.0);
    }

    // The event: the agent's entity, the configured handlers, no check; timestamps in
    // seconds (Sensu's are nanoseconds, a quirk Picket does not copy).
    assert_eq!(event.entity_name(), "agent-s");
    assert_eq!(event.metadata.namespace, "default");
    assert!(event.check.is_none());
    assert!(event.id.is_some());
    event.validate().unwrap();
    let metrics = event.metrics.as_ref().unwrap();
    assert_eq!(
        metrics.handlers.as_deref(),
        Some(&["influx".to_string(), "graphite".to_string()][..])
    );
    assert!(
        (before..=after).contains(&event.timestamp),
        "{}",
        event.timestamp
    );
    for point in metrics.points.iter().flatten() {
        assert_eq!(point.timestamp, event.timestamp, "{}", point.name);
    }

    assert!(client.wait().await.unwrap().success());
    token.cancel();
    conn.closed_by_agent().await;
    timeout(STEP, handle).await.unwrap().unwrap();
    // The listener closed its socket with the agent.
    std::net::UdpSocket::bind(statsd_addr).expect("the StatsD port is free again");
}

#[tokio::test]
async fn statsd_disable_binds_nothing() {
    let backend = Backend::start().await;
    let agent = Agent::new(config(
        &backend,
        "agent-n",
        &["--statsd-disable", "--statsd-metrics-port", "0"],
    ))
    .unwrap();
    assert_eq!(agent.statsd_addr(), None);
}
