use std::sync::Arc;
use std::time::Duration;

use ::statsd::{FlushedPoint, SeriesTag};
use proto_spec::ObjectMeta;
use proto_spec::v2::{Entity, Event, MetricTag};
use proto_spec::wire;
use tokio::time::timeout;

use super::flush::build_events;
use super::*;
use crate::config::StatsdConfig;

fn config(port: u16, flush: Duration) -> StatsdConfig {
    StatsdConfig {
        disabled: false,
        host: "127.0.0.1".into(),
        port,
        flush_interval: flush,
        event_handlers: vec!["influx".into()],
        percentiles: vec![90.0],
    }
}

fn entity() -> Entity {
    Entity {
        metadata: ObjectMeta::new("default", "web-1"),
        entity_class: "agent".into(),
        ..Default::default()
    }
}

fn sink(outbox: &Outbox) -> EventSink {
    EventSink {
        namespace: "default".into(),
        handlers: vec!["influx".into(), "graphite".into()],
        entity: Arc::new(entity),
        outbox: outbox.clone(),
    }
}

fn point(name: &str, value: f64, tags: &[(&str, &str)]) -> FlushedPoint {
    FlushedPoint {
        name: name.into(),
        value,
        tags: tags
            .iter()
            .map(|(n, v)| SeriesTag {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
    }
}

#[test]
fn events_carry_entity_handlers_and_second_timestamps() {
    let points = vec![
        point("a.value", 1.5, &[("env", "prod")]),
        point("overflow.value", f64::INFINITY, &[]),
        point("b.value", -2.0, &[]),
    ];
    let built = build_events(
        points,
        entity(),
        "default",
        &["influx".to_string()],
        1_700_000_000,
    );
    assert_eq!(built.points, 2);
    assert_eq!(built.non_finite, 1);
    let [event] = &built.events[..] else {
        panic!("{:?}", built.events)
    };
    assert_eq!(event.timestamp, 1_700_000_000);
    assert_eq!(event.entity_name(), "web-1");
    assert!(event.check.is_none());
    assert!(event.id.is_some());
    assert_eq!(event.metadata.namespace, "default");
    event.validate().unwrap();
    let metrics = event.metrics.as_ref().unwrap();
    assert_eq!(
        metrics.handlers.as_deref(),
        Some(&["influx".to_string()][..])
    );
    let points = metrics.points.as_ref().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].name, "a.value");
    assert_eq!(points[0].value, 1.5);
    assert_eq!(points[0].timestamp, 1_700_000_000);
    assert_eq!(
        points[0].tags,
        Some(vec![MetricTag {
            name: "env".into(),
            value: "prod".into()
        }])
    );
    // No tags: `null`, as Sensu sends.
    assert_eq!(points[1].tags, None);
    let json = serde_json::to_value(event).unwrap();
    assert_eq!(
        json["metrics"]["points"][1]["tags"],
        serde_json::Value::Null
    );
}

#[test]
fn a_large_flush_is_split_into_frames_that_fit() {
    let tag = "t".repeat(100);
    let points: Vec<FlushedPoint> = (0..30_000)
        .map(|i| point(&format!("series.{i:05}.value"), i as f64, &[("k", &tag)]))
        .collect();
    let built = build_events(points, entity(), "default", &[], 1);
    assert!(built.events.len() > 1, "{}", built.events.len());
    let mut names = Vec::new();
    for (i, event) in built.events.iter().enumerate() {
        let frame = wire::encode(&wire::Message::Event(Box::new(event.clone())));
        assert!(frame.len() <= wire::MAX_FRAME_BYTES, "{}", frame.len());
        // And not wastefully small: more than half a frame, except the last.
        if i + 1 < built.events.len() {
            assert!(frame.len() > wire::MAX_FRAME_BYTES / 2, "{}", frame.len());
        }
        names.extend(
            event
                .metrics
                .as_ref()
                .unwrap()
                .points
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| p.name.clone()),
        );
    }
    assert_eq!(names.len(), 30_000);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "order kept");
    assert_eq!(built.points, 30_000);
}

#[test]
fn nothing_to_flush_builds_nothing() {
    let built = build_events(vec![], entity(), "default", &[], 1);
    assert!(built.events.is_empty());
}

#[test]
fn disabled_or_unbindable_means_no_listener() {
    let mut cfg = config(0, Duration::from_secs(10));
    cfg.disabled = true;
    assert_eq!(Server::bind(&cfg).local_addr(), None);

    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::bind(&config(port, Duration::from_secs(10)));
    assert_eq!(server.local_addr(), None);
    assert!(matches!(server.state, State::Failed { .. }));
}

async fn next_event(outbox: &Outbox) -> Event {
    timeout(Duration::from_secs(10), outbox.next())
        .await
        .expect("no StatsD event in time")
}

fn values(event: &Event) -> Vec<(String, f64)> {
    event
        .metrics
        .as_ref()
        .unwrap()
        .points
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value))
        .collect()
}

#[tokio::test]
async fn datagrams_become_one_event_per_interval() {
    let server = Server::bind(&config(0, Duration::from_millis(300)));
    let addr = server.local_addr().unwrap();
    let outbox = Outbox::new(10);
    let stop = CancellationToken::new();
    let task = server.spawn(sink(&outbox), stop.clone()).unwrap();

    // Nothing received: no event, interval after interval.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(outbox.is_empty());

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"hits:2|c|@0.5\nhits:1|c\ngarbage\ntemp:7|g|#room:a", addr)
        .await
        .unwrap();
    let event = next_event(&outbox).await;
    // 2/0.5 + 1 = 5 over 0.3 s.
    assert_eq!(
        values(&event),
        [
            ("hits.value".to_string(), 5.0),
            ("hits.per_second".to_string(), 5.0 / 0.3),
            ("temp.value".to_string(), 7.0),
        ]
    );
    let metrics = event.metrics.as_ref().unwrap();
    assert_eq!(
        metrics.handlers.as_deref(),
        Some(&["influx".to_string(), "graphite".to_string()][..])
    );
    let now = unix_now();
    for p in metrics.points.iter().flatten() {
        assert!((now - 5..=now).contains(&p.timestamp), "{}", p.timestamp);
    }
    // The series live on: the next interval reports them zeroed / kept.
    let event = next_event(&outbox).await;
    assert_eq!(
        values(&event),
        [
            ("hits.value".to_string(), 0.0),
            ("hits.per_second".to_string(), 0.0),
            ("temp.value".to_string(), 7.0),
        ]
    );

    stop.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    // The socket is closed: the port can be bound again.
    std::net::UdpSocket::bind(addr).unwrap();
}

#[tokio::test]
async fn configured_percentiles_name_the_timer_points() {
    let server = Server::bind(&StatsdConfig {
        percentiles: vec![50.0, 99.9],
        ..config(0, Duration::from_millis(300))
    });
    let addr = server.local_addr().unwrap();
    let outbox = Outbox::new(10);
    let stop = CancellationToken::new();
    let task = server.spawn(sink(&outbox), stop.clone()).unwrap();

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"t:10|ms\nt:20|ms\nt:30|ms\nt:40|ms", addr)
        .await
        .unwrap();
    let event = next_event(&outbox).await;
    let got: Vec<(String, f64)> = values(&event)
        .into_iter()
        .filter(|(name, _)| name.contains("percentile_upper"))
        .collect();
    // 50th of four values: the lowest two, upper 20; 99.9th: all four, upper 40.
    assert_eq!(
        got,
        [
            ("t.percentile_upper_50".to_string(), 20.0),
            ("t.percentile_upper_99_9".to_string(), 40.0),
        ]
    );
    stop.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_burst_larger_than_one_batch_is_received_whole() {
    let server = Server::bind(&config(0, Duration::from_millis(500)));
    let addr = server.local_addr().unwrap();
    let outbox = Outbox::new(10);
    let stop = CancellationToken::new();
    let task = server.spawn(sink(&outbox), stop.clone()).unwrap();

    // 4 × RECV_BATCH datagrams of 10 lines each, well within the receive buffer.
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = "burst:1|c\n".repeat(10);
    let sends = 4 * RECV_BATCH;
    for i in 0..sends {
        client.send_to(datagram.as_bytes(), addr).await.unwrap();
        // The test's runtime has one thread: let the receive task drain now and then, so
        // the kernel buffer (its size is the host's business) never overflows.
        if i % 32 == 31 {
            tokio::task::yield_now().await;
        }
    }
    let mut total = 0.0;
    while total < (sends * 10) as f64 {
        let event = next_event(&outbox).await;
        total += values(&event)[0].1;
    }
    assert_eq!(total, (sends * 10) as f64);

    stop.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
