//! The embedded store's file format: large values are stored compressed (record format 2,
//! store format 2), callers get their exact bytes back, and a file written before compression
//! existed (store format 1, raw records) still opens and reads, and takes new writes.
//!
//! The old file is built here with redb directly, record by record as format 1 defined it
//! (format byte 1, four big-endian i64 — create revision, mod revision, version, lease — then
//! the raw value), so the test does not depend on an old binary.

use std::path::Path;

use backend_store::{Compare, EmbeddedStore, Op, Store, Txn};
use redb::{Database, ReadableDatabase, TableDefinition};

const KV: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<'static, &str, i64> = TableDefinition::new("meta");

/// A stored event's worth of JSON: repetitive, as events are (21 history entries).
fn event_json(seed: u32) -> Vec<u8> {
    let history: Vec<String> = (0..21)
        .map(|i| {
            format!(
                r#"{{"status":{},"executed":{}}}"#,
                (i + seed) % 3,
                1_764_000_000 + 60 * i
            )
        })
        .collect();
    format!(
        r#"{{"check":{{"output":"DISK OK - free space: /srv {seed} GiB","history":[{}]}},"entity":{{"system":{{"hostname":"host-{seed}"}}}}}}"#,
        history.join(",")
    )
    .into_bytes()
}

fn record_v1(create: i64, modified: i64, version: i64, value: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    for n in [create, modified, version, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// The raw record of `key` as redb holds it.
fn raw_record(path: &Path, key: &str) -> Vec<u8> {
    let db = Database::open(path).expect("open the store file");
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(KV).unwrap();
    let record = table.get(key.as_bytes()).unwrap().expect("record present");
    record.value().to_vec()
}

fn stored_format(path: &Path) -> i64 {
    let db = Database::open(path).expect("open the store file");
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get("format")
        .unwrap()
        .expect("format recorded")
        .value()
}

#[tokio::test]
async fn large_values_are_stored_compressed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let event = event_json(7);
    let small = b"alive".to_vec();
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put("/e", event.clone(), 0).await.unwrap();
        store.put("/s", small.clone(), 0).await.unwrap();
        // A value compare reads the value through the compression.
        let resp = store
            .txn(Txn {
                compares: vec![Compare::value_equals("/e", event.clone())],
                success: vec![Op::put("/e", event_json(8))],
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(resp.succeeded, "the compare sees the value as stored");
        let kv = store.get("/e").await.unwrap().unwrap();
        assert_eq!(kv.value, event_json(8));
        assert_eq!(kv.version, 2);
        store.close().await;
    }
    let record = raw_record(&path, "/e");
    assert_eq!(record[0], 2, "a large value is a compressed record");
    assert!(
        record.len() * 2 < event.len(),
        "{} bytes stored for {}",
        record.len(),
        event.len()
    );
    assert_eq!(raw_record(&path, "/s")[0], 1, "a small value stays raw");
    assert_eq!(stored_format(&path), 2);

    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get("/e").await.unwrap().unwrap().value, event_json(8));
    assert_eq!(store.get("/s").await.unwrap().unwrap().value, small);
    store.close().await;
}

#[tokio::test]
async fn a_store_written_before_compression_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let old_event = event_json(1);
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut kv = txn.open_table(KV).unwrap();
            kv.insert(
                b"/old/event".as_slice(),
                record_v1(2, 3, 2, &old_event).as_slice(),
            )
            .unwrap();
            kv.insert(
                b"/old/small".as_slice(),
                record_v1(4, 4, 1, b"1").as_slice(),
            )
            .unwrap();
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("format", 1).unwrap();
            meta.insert("revision", 4).unwrap();
        }
        txn.commit().unwrap();
    }

    let store = EmbeddedStore::open(&path).expect("a format-1 store opens");
    let kv = store.get("/old/event").await.unwrap().unwrap();
    assert_eq!(kv.value, old_event);
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(store.get("/old/small").await.unwrap().unwrap().value, b"1");
    assert_eq!(store.revision().await.unwrap(), 4);
    // New writes next to the old records, guarded by the old record's revision.
    let resp = store
        .txn(Txn {
            compares: vec![Compare::mod_revision("/old/event", 3)],
            success: vec![Op::put_without_prev("/old/event", event_json(2))],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 5);
    store.close().await;

    assert_eq!(stored_format(&path), 2, "opening raised the store format");
    assert_eq!(
        raw_record(&path, "/old/small")[0],
        1,
        "untouched records stay"
    );
    assert_eq!(raw_record(&path, "/old/event")[0], 2);
    let store = EmbeddedStore::open(&path).unwrap();
    let kv = store.get("/old/event").await.unwrap().unwrap();
    assert_eq!((kv.value, kv.version), (event_json(2), 3));
    store.close().await;
}

#[tokio::test]
async fn an_unknown_store_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("format", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = match EmbeddedStore::open(&path) {
        Ok(_) => panic!("a format-99 store must not open"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("store format 99 is not supported"), "{err}");
}
