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

mod batched {
    //! The batched receive on real loopback sockets: what one read returns, truncation, and
    //! that every datagram sent is either aggregated or counted as a kernel drop.

    use std::time::Instant;

    use ::statsd::{Aggregator, AggregatorConfig};

    use super::super::batch::{Datagram, RecvBatch};
    use super::super::drops;
    use super::super::receive::{Counts, drain};

    async fn pair() -> (tokio::net::UdpSocket, std::net::UdpSocket) {
        let receiver = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        (receiver, sender)
    }

    fn aggregator() -> Aggregator {
        Aggregator::new(AggregatorConfig::default()).unwrap()
    }

    fn whole(batch: &RecvBatch, i: usize) -> Vec<u8> {
        match batch.get(i) {
            Datagram::Whole(bytes) => bytes.to_vec(),
            Datagram::Truncated => panic!("datagram {i} truncated"),
        }
    }

    #[tokio::test]
    async fn one_read_returns_several_datagrams_in_order() {
        let (receiver, sender) = pair().await;
        let sent: Vec<String> = (0..5).map(|i| format!("d{i}:{i}|c")).collect();
        for d in &sent {
            sender.send(d.as_bytes()).unwrap();
        }
        receiver.readable().await.unwrap();
        let mut batch = RecvBatch::new(8, 64);
        let mut got = Vec::new();
        let mut reads = 0;
        while got.len() < sent.len() {
            let n = batch.recv(&receiver).unwrap();
            reads += 1;
            got.extend((0..n).map(|i| whole(&batch, i)));
        }
        let want: Vec<Vec<u8>> = sent.iter().map(|d| d.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
        if cfg!(target_os = "linux") {
            // Loopback delivery is done when `send` returns: all five wait in the socket.
            assert_eq!(reads, 1, "recvmmsg reads them in one call");
        }
        // Empty now: WouldBlock, which also clears the readiness.
        let e = batch.recv(&receiver).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_its_slots() {
        let (receiver, sender) = pair().await;
        for i in 0..7u8 {
            sender.send(&[b'a' + i]).unwrap();
        }
        receiver.readable().await.unwrap();
        let mut batch = RecvBatch::new(3, 16);
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while got.len() < 7 {
            let n = batch.recv(&receiver).unwrap();
            sizes.push(n);
            got.extend((0..n).flat_map(|i| whole(&batch, i)));
        }
        assert_eq!(got, b"abcdefg");
        assert!(sizes.iter().all(|&n| (1..=3).contains(&n)), "{sizes:?}");
        if cfg!(target_os = "linux") {
            assert_eq!(sizes, [3, 3, 1]);
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_datagram_longer_than_its_slot_is_reported_truncated_and_never_parsed() {
        let (receiver, sender) = pair().await;
        sender.send(b"short:1|c").unwrap();
        // 40 bytes into 16-byte slots: the kernel cuts it; a cut "…:12345|c" would otherwise
        // parse as a different value.
        sender
            .send(b"a.rather.long.metric.name:1234567890|c")
            .unwrap();
        sender.send(b"after:2|c").unwrap();
        receiver.readable().await.unwrap();
        let mut batch = RecvBatch::new(4, 16);
        let n = batch.recv(&receiver).unwrap();
        assert_eq!(n, 3);
        assert_eq!(batch.get(0), Datagram::Whole(b"short:1|c"));
        assert_eq!(batch.get(1), Datagram::Truncated);
        assert_eq!(batch.get(2), Datagram::Whole(b"after:2|c"));

        // Through `drain`: counted as a datagram and as truncated, not as metrics.
        sender.send(&[b'x'; 40]).unwrap();
        sender.send(b"ok:1|c").unwrap();
        receiver.readable().await.unwrap();
        let mut agg = aggregator();
        let mut counts = Counts::default();
        drain(&receiver, &mut batch, &mut agg, &mut counts);
        assert_eq!(counts.datagrams, 2);
        assert_eq!(counts.truncated, 1);
        assert_eq!(counts.metrics, 1);
        assert_eq!(counts.bad_lines, 0);
    }

    #[tokio::test]
    async fn mixed_valid_and_invalid_lines_are_counted_per_line() {
        let (receiver, sender) = pair().await;
        sender
            .send(b"hits:1|c\nnot a metric\ntemp:20|g\nhits:x|c")
            .unwrap();
        sender.send(b"\xff\xfe:1|c").unwrap();
        sender.send(b"hits:2|c|@0.5\nlat:12|ms").unwrap();
        receiver.readable().await.unwrap();
        let mut batch = RecvBatch::new(super::super::batch::SLOTS, 1024);
        let mut agg = aggregator();
        let mut counts = Counts::default();
        drain(&receiver, &mut batch, &mut agg, &mut counts);
        assert_eq!(counts.datagrams, 3);
        assert_eq!(counts.metrics, 4);
        assert_eq!(counts.bad_lines, 3);
        assert!(counts.last_parse_error.is_some());
        assert_eq!(counts.truncated, 0);
        assert_eq!(counts.recv_errors, 0);
        let points = agg.flush(Instant::now());
        let value = |name: &str| {
            points
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("no {name} in {points:?}"))
                .value
        };
        // 1 + 2 / 0.5
        assert_eq!(value("hits.value"), 5.0);
        assert_eq!(value("temp.value"), 20.0);
        assert_eq!(value("lat.max"), 12.0);
    }

    /// Every datagram sent is either received or in the kernel's drop count: a flood into a
    /// tiny receive buffer, drained afterwards by the batched reads.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn drops_and_receptions_add_up_to_what_was_sent() {
        let socket = drops::socket_with_tiny_buffer();
        socket.set_nonblocking(true).unwrap();
        let Some(inode) = drops::socket_inode(&socket) else {
            return;
        };
        let receiver = tokio::net::UdpSocket::from_std(socket).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        let sent = 300u64;
        let line = format!("flood:1|c\n{}", "pad:1|c\n".repeat(60));
        for _ in 0..sent {
            sender.send(line.as_bytes()).unwrap();
        }
        receiver.readable().await.unwrap();
        let mut batch = RecvBatch::new(super::super::batch::SLOTS, 1024);
        let mut agg = aggregator();
        let mut counts = Counts::default();
        // One drain empties the small buffer (fewer datagrams than RECV_BATCH fit in it).
        drain(&receiver, &mut batch, &mut agg, &mut counts);
        let dropped = drops::read(inode).await.unwrap();
        assert!(dropped > 0, "the tiny buffer overflowed");
        assert!(counts.datagrams > 0, "some datagrams fit");
        assert_eq!(counts.datagrams + dropped, sent);
        assert_eq!(counts.metrics, counts.datagrams * 61);
        let e = batch.recv(&receiver).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
}
