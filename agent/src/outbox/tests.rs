use std::time::Duration;

use proto_spec::ObjectMeta;
use proto_spec::v2::{Check, CheckConfig};

use super::*;

fn ev(seq: i64) -> Event {
    Event {
        sequence: seq,
        ..Default::default()
    }
}

/// An event whose JSON is about `size` bytes (through its output).
fn big(seq: i64, size: usize) -> Event {
    Event {
        sequence: seq,
        check: Some(Check {
            config: CheckConfig {
                metadata: ObjectMeta::new("default", "c"),
                ..Default::default()
            },
            output: "x".repeat(size),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn limits(max_events: usize, max_bytes: u64, segment_bytes: u64) -> Limits {
    Limits {
        max_events,
        max_bytes,
        segment_bytes,
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(SEGMENT_SUFFIX))
        .collect();
    names.sort();
    names
}

async fn take(q: &Outbox) -> i64 {
    tokio::time::timeout(Duration::from_secs(10), q.next())
        .await
        .expect("an event")
        .sequence
}

async fn take_all(q: &Outbox) -> Vec<i64> {
    let mut out = Vec::new();
    while !q.is_empty() {
        out.push(take(q).await);
    }
    out
}

#[test]
fn crc32_check_value() {
    // The standard check value of CRC-32/ISO-HDLC.
    assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
    assert_eq!(
        Crc32::new().update(b"1234").update(b"56789").finish(),
        0xCBF4_3926
    );
}

#[tokio::test]
async fn memory_queue_drops_oldest_when_full() {
    let q = Outbox::new(3);
    for i in 1..=3 {
        assert!(q.push(ev(i)).is_none());
    }
    assert_eq!(q.push(ev(4)).map(|e| e.sequence), Some(1));
    assert_eq!(q.len(), 3);
    assert_eq!(q.dropped(), 1);
    assert_eq!(take_all(&q).await, [2, 3, 4]);
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
}

#[tokio::test]
async fn next_wakes_on_push() {
    let q = Outbox::new(2);
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.next().await.sequence });
    tokio::task::yield_now().await;
    q.push(ev(7));
    assert_eq!(waiter.await.unwrap(), 7);
}

#[tokio::test]
async fn every_event_gets_an_id() {
    let q = Outbox::new(2);
    q.push(ev(1));
    let given = uuid::Uuid::new_v4();
    q.try_push(
        Event {
            id: Some(given),
            ..ev(2)
        },
        Source::Api,
    )
    .unwrap();
    assert!(q.next().await.id.is_some());
    assert_eq!(q.next().await.id, Some(given));
}

#[tokio::test]
async fn front_keeps_the_event_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    q.push(ev(1));
    q.try_push(ev(2), Source::Api).unwrap();
    let head = q.front().await;
    assert_eq!(head.event().unwrap().sequence, 1);
    assert_eq!(head.source, Source::Agent);
    assert!(head.frame().starts_with(b"event\n{"));
    // Not removed by looking, nor by acknowledging another one.
    assert_eq!(q.front().await.seq, head.seq);
    q.delivered(head.seq + 1);
    assert_eq!(q.len(), 2);
    q.delivered(head.seq);
    q.delivered(head.seq);
    assert_eq!(q.len(), 1);
    assert_eq!(q.delivered_total(), 1);
    let second = q.front().await;
    assert_eq!(second.source, Source::Api);
    assert_eq!(second.event().unwrap().sequence, 2);
}

#[tokio::test]
async fn order_survives_reopen_and_delivered_events_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        for i in 1..=3 {
            q.push(ev(i));
        }
        q.push_durable(ev(4), Source::Api).await.unwrap();
        q.try_push(ev(5), Source::Socket).unwrap();
        let head = q.front().await;
        q.delivered(head.seq);
        q.sync().unwrap();
    }
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert_eq!(q.len(), 4);
    let sources: Vec<Source> = {
        let st = q.lock();
        st.entries.iter().map(|e| e.source).collect()
    };
    assert_eq!(
        sources,
        [Source::Agent, Source::Agent, Source::Api, Source::Socket]
    );
    // New events go after the recovered ones.
    q.push(ev(6));
    assert_eq!(take_all(&q).await, [2, 3, 4, 5, 6]);
    drop(q);
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert!(q.is_empty());
    assert_eq!(segments(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn segments_roll_over_and_delivered_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut sample = big(1, 200);
    sample.id = Some(uuid::Uuid::new_v4());
    let record = record_size(&serde_json::to_vec(&sample).unwrap());
    // Room for two records per segment.
    let q = Outbox::open(dir.path(), limits(100, 1 << 20, 2 * record + 10)).unwrap();
    for i in 1..=5 {
        q.push(big(i, 200));
    }
    assert_eq!(segments(dir.path()).len(), 3);
    let first = segments(dir.path())[0].clone();
    assert_eq!(take(&q).await, 1);
    assert_eq!(
        segments(dir.path()).len(),
        3,
        "half-delivered segment stays"
    );
    assert_eq!(take(&q).await, 2);
    let left = segments(dir.path());
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&first));
    assert_eq!(take(&q).await, 3);
    assert_eq!(take(&q).await, 4);
    assert_eq!(segments(dir.path()).len(), 1);
    // The last one is the write segment: kept until it rotates, even when all delivered.
    assert_eq!(take(&q).await, 5);
    let write_segment = segments(dir.path());
    assert_eq!(write_segment.len(), 1);
    q.push(big(6, 200));
    assert_eq!(segments(dir.path()), write_segment);
    assert_eq!(take(&q).await, 6);
    // The full write segment rotates; everything in it was delivered, so it goes.
    q.push(big(7, 200));
    let after = segments(dir.path());
    assert_eq!(after.len(), 1);
    assert_ne!(after, write_segment);
    // A record larger than a segment gets one of its own.
    q.push(big(8, 4 * record as usize));
    assert_eq!(segments(dir.path()).len(), 2);
    assert_eq!(take_all(&q).await, [7, 8]);
}

#[tokio::test]
async fn a_new_segment_at_every_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        q.push(ev(1));
    }
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    q.push(ev(2));
    let names = segments(dir.path());
    assert_eq!(names.len(), 2);
    assert!(names[0] < names[1]);
    assert_eq!(take_all(&q).await, [1, 2]);
    // The first segment went with its last event; the write segment stays.
    assert_eq!(segments(dir.path()), [names[1].clone()]);
}

#[tokio::test]
async fn api_pushes_are_refused_when_full() {
    let q = Outbox::memory(limits(2, 1 << 20, 1 << 20));
    q.try_push(ev(1), Source::Api).unwrap();
    q.push_durable(ev(2), Source::Api).await.unwrap();
    let err = q.try_push(ev(3), Source::Api).unwrap_err();
    assert!(matches!(err, PushError::Full { events: 2, .. }), "{err}");
    assert!(matches!(
        q.push_durable(ev(3), Source::Socket).await,
        Err(PushError::Full { .. })
    ));
    assert_eq!(q.len(), 2);
    assert_eq!(q.dropped(), 0);
    // The agent's own events make room instead.
    assert_eq!(q.push(ev(4)).map(|e| e.sequence), Some(1));
    assert_eq!(take_all(&q).await, [2, 4]);
}

#[tokio::test]
async fn byte_bound() {
    let one = record_size(&serde_json::to_vec(&big(1, 1000)).unwrap()) + 50;
    let q = Outbox::memory(limits(100, 2 * one, 1 << 20));
    q.try_push(big(1, 1000), Source::Api).unwrap();
    q.try_push(big(2, 1000), Source::Api).unwrap();
    assert!(matches!(
        q.try_push(big(3, 1000), Source::Api),
        Err(PushError::Full { .. })
    ));
    assert!(q.bytes() <= 2 * one);
    assert_eq!(q.push(big(4, 1000)).map(|e| e.sequence), Some(1));
    // Larger than the whole queue: dropped at once, nothing else is.
    assert_eq!(q.push(big(5, 5000)).map(|e| e.sequence), Some(5));
    assert_eq!(take_all(&q).await, [2, 4]);
}

#[tokio::test]
async fn too_large_for_a_frame() {
    let q = Outbox::new(5);
    let huge = big(1, wire::MAX_FRAME_BYTES);
    assert!(matches!(
        q.try_push(huge.clone(), Source::Api),
        Err(PushError::TooLarge { .. })
    ));
    assert_eq!(q.push(huge).map(|e| e.sequence), Some(1));
    assert!(q.is_empty());
}

#[tokio::test]
async fn torn_last_record_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        for i in 1..=3 {
            q.push(big(i, 100));
        }
    }
    let path = dir.path().join(&segments(dir.path())[0]);
    let full = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of writing the third record.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 40).unwrap();
    drop(f);
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    // Three records of the same size; the file now ends after the second.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * (full / 3));
    assert_eq!(take_all(&q).await, [1, 2]);

    // A torn header (fewer bytes than a header) is discarded the same way.
    drop(q);
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        q.push(ev(1));
    }
    let path = dir.path().join(&segments(dir.path())[0]);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    io::Write::write_all(&mut f, &[MAGIC, 0, 0, 0, 9]).unwrap();
    drop(f);
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert_eq!(take_all(&q).await, [1]);
}

#[tokio::test]
async fn damaged_records_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        for i in 1..=3 {
            q.push(big(i, 100));
        }
    }
    let path = dir.path().join(&segments(dir.path())[0]);
    let len = std::fs::metadata(&path).unwrap().len();
    // Flip one payload byte of the last record: its checksum no longer matches.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, len - 10).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], len - 10).unwrap();
    drop(f);
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert_eq!(take_all(&q).await, [1, 2]);

    // Zeros where the kernel had not written the data yet (delayed allocation).
    drop(q);
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path(), Limits::default()).unwrap();
        q.push(ev(1));
    }
    let path = dir.path().join(&segments(dir.path())[0]);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + 4096).unwrap();
    drop(f);
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert_eq!(take_all(&q).await, [1]);
}

#[test]
fn scan_stops_at_the_first_bad_record() {
    let a = encode_record(Source::Agent, b"{}");
    let b = encode_record(Source::Api, b"{\"x\":1}");
    let mut done = encode_record(Source::Agent, b"{}");
    done[1] = STATE_DONE;
    let mut data = [done.clone(), a.clone(), b.clone()].concat();
    let scan = scan_segment(&data);
    assert_eq!(
        scan.records,
        [
            ScannedRecord {
                offset: done.len() as u64,
                len: 2,
                source: Source::Agent
            },
            ScannedRecord {
                offset: (done.len() + a.len()) as u64,
                len: 7,
                source: Source::Api
            },
        ]
    );
    assert_eq!(scan.valid_len, data.len() as u64);
    // An unknown source code is damage too.
    data[done.len() + 2] = 9;
    let scan = scan_segment(&data);
    assert!(scan.records.is_empty());
    assert_eq!(scan.valid_len, done.len() as u64);
}

#[tokio::test]
async fn one_agent_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    let err = Outbox::open(dir.path(), Limits::default()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(err.to_string().contains("in use"), "{err}");
    drop(q);
    Outbox::open(dir.path(), Limits::default()).unwrap();
}

#[tokio::test]
async fn syncer_stops_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(dir.path(), Limits::default()).unwrap();
    q.push(ev(1));
    let stop = CancellationToken::new();
    let task = tokio::spawn(q.clone().run_syncer(stop.clone()));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert!(q.lock().disk.as_ref().unwrap().dirty.is_empty());
}

#[tokio::test]
async fn lowered_limits_drop_nothing_until_the_next_push() {
    let q = Outbox::new(5);
    for i in 1..=4 {
        q.push(ev(i));
    }
    q.set_limits(limits(2, 1 << 20, 1 << 20));
    assert_eq!(q.len(), 4);
    assert!(q.try_push(ev(5), Source::Api).is_err());
    q.push(ev(6));
    assert_eq!(q.dropped(), 3);
    assert_eq!(take_all(&q).await, [4, 6]);
}
