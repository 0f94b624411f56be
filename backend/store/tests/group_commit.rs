//! Group commit in `EmbeddedStore`: concurrent writes share redb commits, yet every request
//! stays its own linearizable transaction with its own revision, fails alone, and is durable
//! once acknowledged.
//!
//! Batches form when requests arrive while a commit is in progress, so most cases use the file
//! store, whose fsync gives many concurrent writers time to queue up; they check through
//! [`WriteStats`] that requests really shared commits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backend_store::embedded::WriteStats;
use backend_store::{
    Compare, EmbeddedStore, KeyValue, LeaseId, Op, OpResult, RangeRequest, Revision, Store,
    StoreError, Txn, Watch, WatchEvent,
};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);
const UNKNOWN_LEASE: LeaseId = 0x7fff_fff0_1234_5678;

/// A file store in a fresh temporary directory (kept alive by the returned guard).
fn file_store() -> (tempfile::TempDir, PathBuf, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    let store = EmbeddedStore::open(&path).expect("file store");
    (dir, path, store)
}

async fn join<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(
            tokio::time::timeout(WAIT, task)
                .await
                .expect("task stalled")
                .expect("task panicked"),
        );
    }
    out
}

fn assert_batched(stats: WriteStats) {
    assert!(
        stats.largest_batch > 1 && stats.batches < stats.requests,
        "concurrent requests should have shared commits: {stats:?}"
    );
}

async fn range_all(s: &dyn Store, prefix: &str) -> Vec<KeyValue> {
    s.range(RangeRequest {
        prefix: prefix.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .kvs
}

async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(WAIT, w.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

/// 64 tasks increment one counter through compare-and-swap retry loops. Increments that land
/// in the same batch compare against the effects of the ones before them, so exactly one per
/// observed value wins: the counter ends at exactly 64 × N, and the successful increments,
/// ordered by revision, wrote 1, 2, …, 64 × N.
async fn cas_counter(s: Arc<dyn Store>) {
    const TASKS: u64 = 64;
    const INCREMENTS: u64 = 4;
    s.put("ctr", b"0".to_vec(), 0).await.unwrap();
    let tasks = (0..TASKS)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut wins = Vec::new();
                while (wins.len() as u64) < INCREMENTS {
                    let kv = s.get("ctr").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    let resp = s
                        .txn(Txn {
                            compares: vec![Compare::mod_revision("ctr", kv.mod_revision)],
                            success: vec![Op::put("ctr", (n + 1).to_string())],
                            failure: vec![],
                        })
                        .await
                        .unwrap();
                    if resp.succeeded {
                        wins.push((resp.revision, n + 1));
                    }
                }
                wins
            })
        })
        .collect();
    let mut wins: Vec<(Revision, u64)> = join(tasks).await.into_iter().flatten().collect();
    wins.sort();
    let written: Vec<u64> = wins.iter().map(|(_, n)| *n).collect();
    let expected: Vec<u64> = (1..=TASKS * INCREMENTS).collect();
    assert_eq!(written, expected, "each increment saw the one before it");
    let ctr = s.get("ctr").await.unwrap().unwrap();
    assert_eq!(ctr.value, (TASKS * INCREMENTS).to_string().into_bytes());
    assert_eq!(ctr.version, (TASKS * INCREMENTS + 1) as i64);
    assert_eq!(ctr.mod_revision, wins.last().unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_increments_are_linearizable_on_a_file() {
    let (_dir, _path, s) = file_store();
    cas_counter(s.clone()).await;
    assert_batched(s.write_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_increments_are_linearizable_in_memory() {
    cas_counter(EmbeddedStore::in_memory().unwrap()).await;
}

/// 64 tasks race to create the same key: exactly one succeeds, and every loser's failure
/// branch reads the winner's value, including losers committed in the winner's batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_concurrent_create_wins() {
    let (_dir, _path, s) = file_store();
    // Keep the committer busy so the racers queue up behind it and share a batch.
    let busy = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                s.put(&format!("busy/{i}"), vec![0; 2048], 0).await.unwrap();
            }
        })
    };
    let tasks = (0..64)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let resp = s
                    .txn(Txn {
                        compares: vec![Compare::absent("lock")],
                        success: vec![Op::put("lock", t.to_string())],
                        failure: vec![Op::Get { key: "lock".into() }],
                    })
                    .await
                    .unwrap();
                (t, resp)
            })
        })
        .collect();
    let outcomes = join(tasks).await;
    busy.await.unwrap();
    let winners: Vec<_> = outcomes.iter().filter(|(_, r)| r.succeeded).collect();
    assert_eq!(winners.len(), 1, "exactly one create wins");
    let (winner, won) = winners[0];
    let lock = s.get("lock").await.unwrap().unwrap();
    assert_eq!(
        (lock.value, lock.version, lock.mod_revision),
        (winner.to_string().into_bytes(), 1, won.revision)
    );
    for (_, resp) in outcomes.iter().filter(|(_, r)| !r.succeeded) {
        match resp.results.as_slice() {
            [OpResult::Get { kv: Some(kv) }] => {
                assert_eq!(kv.value, winner.to_string().into_bytes());
                assert!(resp.revision >= won.revision, "losers ran after the winner");
            }
            other => panic!("a loser should have read the winner's key, got {other:?}"),
        }
    }
    assert_batched(s.write_stats());
}

/// Requests that fail (unknown lease, empty key inside a txn, revoking an unknown lease) are
/// committed in the same batches as valid ones: they apply nothing, take no revision, and the
/// valid requests around them are applied in full with consecutive revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_does_not_affect_its_batch() {
    let (_dir, _path, s) = file_store();
    let lease = s.grant_lease(Duration::from_secs(600)).await.unwrap();
    for round in 0..3 {
        let base = s.revision().await.unwrap();
        let tasks = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let good = format!("good/{round}/{i}");
                    let bad = format!("bad/{round}/{i}");
                    match i % 5 {
                        0 => {
                            let failed = s.put(&bad, b"x".to_vec(), UNKNOWN_LEASE).await;
                            assert!(
                                matches!(failed, Err(StoreError::LeaseNotFound(UNKNOWN_LEASE))),
                                "{failed:?}"
                            );
                            None
                        }
                        1 => {
                            let failed = s
                                .txn(Txn {
                                    success: vec![Op::put(bad, "x"), Op::put("", "empty key")],
                                    ..Default::default()
                                })
                                .await;
                            assert!(
                                matches!(failed, Err(StoreError::InvalidRequest(_))),
                                "{failed:?}"
                            );
                            None
                        }
                        2 => {
                            let failed = s.revoke_lease(UNKNOWN_LEASE).await;
                            assert!(
                                matches!(failed, Err(StoreError::LeaseNotFound(UNKNOWN_LEASE))),
                                "{failed:?}"
                            );
                            None
                        }
                        3 => {
                            let resp = s
                                .txn(Txn {
                                    success: vec![
                                        Op::put(format!("{good}/a"), "a"),
                                        Op::put_with_lease(format!("{good}/b"), "b", lease),
                                    ],
                                    ..Default::default()
                                })
                                .await
                                .unwrap();
                            Some((
                                resp.revision,
                                vec![format!("{good}/a"), format!("{good}/b")],
                            ))
                        }
                        _ => {
                            let r = s.put(&good, b"v".to_vec(), lease).await.unwrap();
                            Some((r, vec![good]))
                        }
                    }
                })
            })
            .collect();
        let mut acks: Vec<(Revision, Vec<String>)> =
            join(tasks).await.into_iter().flatten().collect();
        acks.sort();
        let revisions: Vec<Revision> = acks.iter().map(|(r, _)| *r).collect();
        let expected: Vec<Revision> = (base + 1..=base + acks.len() as Revision).collect();
        assert_eq!(
            revisions, expected,
            "valid requests got consecutive revisions; failed ones took none"
        );
        assert_eq!(s.revision().await.unwrap(), base + acks.len() as Revision);
        for (revision, keys) in &acks {
            for key in keys {
                let kv = s.get(key).await.unwrap().expect("acknowledged key");
                assert_eq!(kv.mod_revision, *revision, "{key}");
            }
        }
        assert!(
            range_all(&*s, "bad/").await.is_empty(),
            "failed requests applied nothing"
        );
    }
    assert_batched(s.write_stats());
}

/// Puts attached to a lease race with the lease's revoke: puts committed before the revoke
/// (even in its batch) are deleted by it, puts after it fail alone; no key outlives the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_lease_amid_concurrent_puts_leaves_no_key_behind() {
    let (_dir, _path, s) = file_store();
    let lease = s.grant_lease(Duration::from_secs(600)).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let (mut ok, mut gone) = (0, 0);
                for i in 0..10 {
                    match s.put(&format!("lp/{t}/{i}"), b"v".to_vec(), lease).await {
                        Ok(_) => ok += 1,
                        Err(StoreError::LeaseNotFound(id)) if id == lease => gone += 1,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                    s.put(&format!("free/{t}/{i}"), b"v".to_vec(), 0)
                        .await
                        .unwrap();
                }
                (ok, gone)
            })
        })
        .collect();
    // Revoke once the first leased keys are in, while the writers are still going.
    while range_all(&*s, "lp/").await.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.revoke_lease(lease).await.unwrap();
    let outcomes = join(tasks).await;
    assert!(
        range_all(&*s, "lp/").await.is_empty(),
        "every key put with the lease went with it"
    );
    assert_eq!(range_all(&*s, "free/").await.len(), 64 * 10);
    let gone: u32 = outcomes.iter().map(|(_, gone)| gone).sum();
    assert!(gone > 0, "some puts came after the revoke: {outcomes:?}");
    assert_batched(s.write_stats());
}

/// What one acknowledged write must have produced, as seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Put(String),
    Delete(String),
}

/// Under 64 concurrent writers, a watch delivers every revision once, in revision order, each
/// revision's changes together and in op order, exactly matching what each writer was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_is_revision_order_under_concurrency() {
    let (_dir, _path, s) = file_store();
    let base = s.revision().await.unwrap();
    let mut w = s.watch("", base).await.unwrap();
    const TASKS: usize = 64;
    const WRITES: usize = 21;
    let tasks = (0..TASKS)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..WRITES {
                    let ack = match i % 3 {
                        0 => {
                            let key = format!("t/{t}/k{i}");
                            let r = s.put(&key, vec![i as u8; 100], 0).await.unwrap();
                            (r, vec![Change::Put(key)])
                        }
                        1 => {
                            let (a, b) = (format!("t/{t}/b"), format!("t/{t}/a"));
                            let resp = s
                                .txn(Txn {
                                    success: vec![Op::put(a.clone(), "1"), Op::put(b.clone(), "2")],
                                    ..Default::default()
                                })
                                .await
                                .unwrap();
                            (resp.revision, vec![Change::Put(a), Change::Put(b)])
                        }
                        _ => {
                            let key = format!("t/{t}/k{}", i - 2);
                            assert_eq!(s.delete(&key).await.unwrap(), 1);
                            (s.revision().await.unwrap(), vec![Change::Delete(key)])
                        }
                    };
                    acks.push(ack);
                }
                acks
            })
        })
        .collect();
    let per_task = join(tasks).await;
    // Deletes report no revision; take it from the watch, checking the rest exactly.
    let mut by_revision: BTreeMap<Revision, Vec<Change>> = BTreeMap::new();
    let mut deletes: BTreeSet<String> = BTreeSet::new();
    for acks in &per_task {
        let mut previous = base;
        for (r, changes) in acks {
            if let [Change::Delete(key)] = changes.as_slice() {
                deletes.insert(key.clone());
                continue;
            }
            assert!(
                *r > previous,
                "a writer's own writes get increasing revisions"
            );
            previous = *r;
            assert!(by_revision.insert(*r, changes.clone()).is_none());
        }
    }
    let last = s.revision().await.unwrap();
    assert_eq!(last - base, (TASKS * WRITES) as Revision);

    let mut seen_deletes = BTreeSet::new();
    let mut event = next(&mut w).await;
    for r in base + 1..=last {
        let mut changes = Vec::new();
        loop {
            let kv = event.kv().clone();
            assert!(kv.mod_revision >= r, "revisions never go back");
            if kv.mod_revision > r {
                break;
            }
            changes.push(match event {
                WatchEvent::Put(_) => Change::Put(kv.key),
                WatchEvent::Delete(_) => Change::Delete(kv.key),
            });
            if r == last && changes.len() == by_revision.get(&r).map_or(1, Vec::len) {
                break;
            }
            event = next(&mut w).await;
        }
        assert!(!changes.is_empty(), "revision {r} has no events");
        match by_revision.get(&r) {
            Some(expected) => assert_eq!(&changes, expected, "revision {r}"),
            None => match changes.as_slice() {
                [Change::Delete(key)] => assert!(seen_deletes.insert(key.clone())),
                other => panic!("revision {r}: unexpected {other:?}"),
            },
        }
    }
    assert_eq!(seen_deletes, deletes, "every delete was seen once");
    assert_batched(s.write_stats());
}

/// 64 writers write until the store is closed under them. After reopening, the store holds
/// exactly what was acknowledged: every acknowledged write, and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_acknowledged_survives_close_and_reopen() {
    let (_dir, path, s) = file_store();
    let tasks = (0..64)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                // key -> (value, revision) of its last acknowledged write
                let mut acked: BTreeMap<String, (Vec<u8>, Revision)> = BTreeMap::new();
                for i in 0usize.. {
                    let key = format!("p/{t}/{}", i % 5);
                    let value = format!("{t}-{i}").into_bytes();
                    let outcome = if i % 4 == 3 {
                        let other = format!("p/{t}/txn");
                        s.txn(Txn {
                            success: vec![
                                Op::put(key.clone(), value.clone()),
                                Op::put(other.clone(), value.clone()),
                            ],
                            ..Default::default()
                        })
                        .await
                        .map(|resp| {
                            acked.insert(other, (value.clone(), resp.revision));
                            resp.revision
                        })
                    } else {
                        s.put(&key, value.clone(), 0).await
                    };
                    match outcome {
                        Ok(r) => {
                            acked.insert(key, (value, r));
                        }
                        Err(StoreError::Closed) => break,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
                acked
            })
        })
        .collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.close().await;
    let acked: BTreeMap<String, (Vec<u8>, Revision)> =
        join(tasks).await.into_iter().flatten().collect();
    assert_batched(s.write_stats());
    drop(s);

    let s = EmbeddedStore::open(&path).unwrap();
    let stored: BTreeMap<String, (Vec<u8>, Revision)> = range_all(&*s, "")
        .await
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    assert_eq!(stored, acked, "exactly the acknowledged writes survive");
    let highest = acked.values().map(|(_, r)| *r).max().unwrap();
    assert_eq!(s.revision().await.unwrap(), highest);
}

/// Far more concurrent writers than a batch may hold: batches stay within the bound and every
/// write still gets its own revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_bounded() {
    let (_dir, _path, s) = file_store();
    let base = s.revision().await.unwrap();
    let tasks = (0..1_500)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.put(&format!("b/{i}"), vec![1; 64], 0).await.unwrap() })
        })
        .collect();
    let mut revisions = join(tasks).await;
    revisions.sort();
    assert_eq!(revisions, (base + 1..=base + 1_500).collect::<Vec<_>>());
    let stats = s.write_stats();
    assert!(stats.largest_batch <= 1_000, "{stats:?}");
    assert_batched(stats);
}
