//! The store conformance suite: every `Store` implementation must pass every case here.
//!
//! The cases only talk to `Arc<dyn Store>` obtained from a [`Harness`], so a new implementation
//! (etcd) plugs in with a harness and one `conformance_suite!` line; it does not get its own copy
//! of the expectations. Cases use relative revisions wherever they can, generous timeouts, and
//! short lease TTLs, because they check behaviour, not speed, on a loaded 2-core machine.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backend_store::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, Op, OpResult, RangeRequest,
    RangeResponse, Revision, Store, StoreError, Txn, Watch, WatchEvent,
};

/// The longest any case waits for something that should happen (an event, an expiry).
pub const WAIT: Duration = Duration::from_secs(15);

/// How the suite obtains stores of one implementation.
#[async_trait]
pub trait Harness: Send + 'static {
    /// A fresh, empty store.
    async fn open(&mut self) -> Arc<dyn Store>;
    /// Whether the data outlives the store handle, i.e. `reopen` is meaningful.
    fn persistent(&self) -> bool;
    /// Shut down the store returned last and open the same data again. Only called when
    /// `persistent()`.
    async fn reopen(&mut self) -> Arc<dyn Store>;
}

/// Generates one `#[tokio::test]` per case, for the harness expression given (evaluated once
/// per test, so each test gets its own store). Invoke inside a module per implementation.
macro_rules! conformance_suite {
    ($harness:expr) => {
        conformance_suite!(@cases $harness;
            fresh_store_starts_at_revision_one,
            put_get_and_versions,
            delete_and_recreate,
            delete_prefix_removes_only_the_prefix,
            range_prefix_boundaries,
            range_limit_and_continuation,
            txn_compare_kinds,
            txn_success_ops_and_results,
            txn_failure_branch,
            large_values_read_back_exactly,
            txn_without_writes_keeps_revision,
            txn_is_atomic,
            txn_concurrent_compare_and_swap,
            watch_delivers_many_writes_in_order,
            watch_filters_by_prefix,
            watch_from_past_revision,
            watch_sees_txn_changes_together,
            watch_sees_deletes,
            watch_sees_lease_expiry,
            watch_with_concurrent_writers,
            lease_expiry_deletes_keys,
            lease_keep_alive_extends,
            lease_revoke_deletes_keys_in_one_revision,
            lease_ids_are_unique_and_unknown_ids_fail,
            overwriting_a_key_moves_it_between_leases,
            persistence_across_reopen,
        );
    };
    (@cases $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::suite::$case($harness).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn keys_of(resp: &RangeResponse) -> Vec<String> {
    resp.kvs.iter().map(|kv| kv.key.clone()).collect()
}

fn prefix(p: &str) -> RangeRequest {
    RangeRequest {
        prefix: p.into(),
        ..Default::default()
    }
}

async fn all_keys(s: &dyn Store, p: &str) -> Vec<String> {
    keys_of(&s.range(prefix(p)).await.unwrap())
}

async fn rev(s: &dyn Store) -> Revision {
    s.revision().await.unwrap()
}

async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(WAIT, w.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("no watch event within {WAIT:?}"),
    }
}

fn put_kv(event: &WatchEvent) -> &KeyValue {
    match event {
        WatchEvent::Put(kv) => kv,
        other => panic!("expected a put event, got {other:?}"),
    }
}

fn delete_kv(event: &WatchEvent) -> &KeyValue {
    match event {
        WatchEvent::Delete(kv) => kv,
        other => panic!("expected a delete event, got {other:?}"),
    }
}

/// Polls `check` until it holds; panics after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_lease_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, lease: LeaseId) {
    match result {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
        other => panic!("expected LeaseNotFound({lease}), got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::InvalidRequest(_))),
        "expected InvalidRequest, got {result:?}"
    );
}

/// A lease id no implementation will have granted in a fresh store.
const UNKNOWN_LEASE: LeaseId = 0x7fff_fff0_1234_5678;

// ---------------------------------------------------------------------------------------------
// Revisions, get, put, delete

pub async fn fresh_store_starts_at_revision_one(mut h: impl Harness) {
    let s = h.open().await;
    assert_eq!(rev(&*s).await, 1);
    let all = s.range(RangeRequest::default()).await.unwrap();
    assert!(all.kvs.is_empty());
    assert!(!all.more);
    assert_eq!(all.next_key, None);
    assert_eq!(all.revision, 1);
}

pub async fn put_get_and_versions(mut h: impl Harness) {
    let s = h.open().await;
    let r0 = rev(&*s).await;
    let r1 = s.put("a", b("1"), 0).await.unwrap();
    assert_eq!(r1, r0 + 1, "every put bumps the revision by one");
    assert_eq!(
        s.get("a").await.unwrap().unwrap(),
        KeyValue {
            key: "a".into(),
            value: b("1"),
            create_revision: r1,
            mod_revision: r1,
            version: 1,
            lease: 0
        }
    );

    let r2 = s.put("a", b("2"), 0).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"2"[..], r1, r2, 2)
    );

    let r3 = s.put("b", b("x"), 0).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(rev(&*s).await, r3);
    assert_eq!(
        s.get("a").await.unwrap().unwrap().mod_revision,
        r2,
        "other keys are untouched"
    );
    assert_eq!(s.get("missing").await.unwrap(), None);

    // Values are bytes: empty and arbitrary binary values round-trip.
    s.put("empty", Vec::new(), 0).await.unwrap();
    assert_eq!(
        s.get("empty").await.unwrap().unwrap().value,
        Vec::<u8>::new()
    );
    let binary: Vec<u8> = (0..=255).collect();
    s.put("binary", binary.clone(), 0).await.unwrap();
    assert_eq!(s.get("binary").await.unwrap().unwrap().value, binary);

    let before = rev(&*s).await;
    assert_invalid(s.put("", b("x"), 0).await);
    assert_eq!(rev(&*s).await, before);
}

pub async fn delete_and_recreate(mut h: impl Harness) {
    let s = h.open().await;
    s.put("a", b("1"), 0).await.unwrap();
    s.put("a", b("2"), 0).await.unwrap();
    let before = rev(&*s).await;
    assert_eq!(s.delete("a").await.unwrap(), 1);
    assert_eq!(rev(&*s).await, before + 1);
    assert_eq!(s.get("a").await.unwrap(), None);

    assert_eq!(
        s.delete("a").await.unwrap(),
        0,
        "deleting a missing key deletes nothing"
    );
    assert_eq!(s.delete("never").await.unwrap(), 0);
    assert_eq!(
        rev(&*s).await,
        before + 1,
        "a delete that deleted nothing does not bump"
    );

    let r = s.put("a", b("3"), 0).await.unwrap();
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (r, r, 1),
        "recreation starts over"
    );
}

pub async fn delete_prefix_removes_only_the_prefix(mut h: impl Harness) {
    let s = h.open().await;
    for key in ["o", "p", "p/1", "p/2", "p/2/x", "p0", "q"] {
        s.put(key, b(key), 0).await.unwrap();
    }
    let before = rev(&*s).await;
    assert_eq!(s.delete_prefix("p/").await.unwrap(), 3);
    assert_eq!(
        rev(&*s).await,
        before + 1,
        "one revision for the whole prefix"
    );
    assert_eq!(all_keys(&*s, "").await, ["o", "p", "p0", "q"]);

    assert_eq!(s.delete_prefix("p/").await.unwrap(), 0);
    assert_eq!(rev(&*s).await, before + 1);

    assert_eq!(
        s.delete_prefix("").await.unwrap(),
        4,
        "the empty prefix is everything"
    );
    assert!(all_keys(&*s, "").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Ranges

pub async fn range_prefix_boundaries(mut h: impl Harness) {
    let s = h.open().await;
    let stored = [
        "a",
        "a.",
        "a/",
        "a/B",
        "a/a",
        "a/b/c",
        "a/z",
        "a/\u{e9}",
        "a/\u{10FFFF}",
        "a0",
        "b",
        "x\u{ff}",
        "x\u{ff}1",
        "x\u{100}",
        "\u{7f}",
    ];
    // Insert out of order: the answer's order must come from the store, not from insertion.
    for key in stored.iter().rev() {
        s.put(key, b(key), 0).await.unwrap();
    }

    assert_eq!(
        all_keys(&*s, "a/").await,
        [
            "a/",
            "a/B",
            "a/a",
            "a/b/c",
            "a/z",
            "a/\u{e9}",
            "a/\u{10FFFF}"
        ],
        "a key equal to the prefix is included, neighbours are not, order is by bytes"
    );
    assert_eq!(
        all_keys(&*s, "a").await,
        [
            "a",
            "a.",
            "a/",
            "a/B",
            "a/a",
            "a/b/c",
            "a/z",
            "a/\u{e9}",
            "a/\u{10FFFF}",
            "a0"
        ]
    );
    assert_eq!(all_keys(&*s, "a/b").await, ["a/b/c"]);
    // The prefix ends in a multi-byte character whose successor is not valid UTF-8.
    assert_eq!(all_keys(&*s, "x\u{ff}").await, ["x\u{ff}", "x\u{ff}1"]);
    assert!(all_keys(&*s, "nothing").await.is_empty());

    let mut everything: Vec<String> = stored.iter().map(|k| k.to_string()).collect();
    everything.sort(); // String order is byte order.
    let all = s.range(prefix("")).await.unwrap();
    assert_eq!(keys_of(&all), everything);
    assert_eq!(all.revision, rev(&*s).await);
    for kv in &all.kvs {
        assert_eq!(kv.value, b(&kv.key));
    }
}

pub async fn range_limit_and_continuation(mut h: impl Harness) {
    let s = h.open().await;
    const N: usize = 1000;
    let expected: Vec<String> = (0..N).map(|i| format!("big/{i:05}")).collect();
    // Insert in batches and shuffled order (reverse within batch) to keep setup quick.
    for chunk in expected.chunks(100) {
        let success = chunk
            .iter()
            .rev()
            .map(|k| Op::put(k.clone(), b(k)))
            .collect();
        let resp = s
            .txn(Txn {
                success,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(resp.succeeded);
    }
    for key in ["bif/x", "big", "big0", "bih"] {
        s.put(key, b(key), 0).await.unwrap();
    }
    let at = rev(&*s).await;

    let mut seen = Vec::new();
    let mut start = None;
    let mut pages = 0;
    loop {
        let page = s
            .range(RangeRequest {
                prefix: "big/".into(),
                start: start.clone(),
                limit: 7,
            })
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.revision, at);
        assert!(page.kvs.len() <= 7);
        seen.extend(keys_of(&page));
        if !page.more {
            assert_eq!(page.next_key, None);
            break;
        }
        assert_eq!(page.kvs.len(), 7, "a cut-short page is full");
        let next = page.next_key.expect("more implies next_key");
        assert!(next.as_str() > page.kvs.last().unwrap().key.as_str());
        start = Some(next);
        assert!(pages <= N, "continuation does not terminate");
    }
    assert_eq!(seen, expected, "the walk sees every key once, in order");
    assert_eq!(pages, N.div_ceil(7));

    let unlimited = s.range(prefix("big/")).await.unwrap();
    assert_eq!(keys_of(&unlimited), expected);
    assert!(!unlimited.more);

    let exact = s
        .range(RangeRequest {
            prefix: "big/".into(),
            start: None,
            limit: N,
        })
        .await
        .unwrap();
    assert_eq!(exact.kvs.len(), N);
    assert!(!exact.more, "a limit equal to the count is not cut short");
    assert_eq!(exact.next_key, None);

    let one_short = s
        .range(RangeRequest {
            prefix: "big/".into(),
            start: None,
            limit: N - 1,
        })
        .await
        .unwrap();
    assert!(one_short.more);
    assert_eq!(one_short.next_key.as_deref(), Some("big/00999"));

    let from_middle = s
        .range(RangeRequest {
            prefix: "big/".into(),
            start: Some("big/00990".into()),
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(keys_of(&from_middle), &expected[990..]);

    assert_invalid(
        s.range(RangeRequest {
            prefix: "big/".into(),
            start: Some("bif/x".into()),
            limit: 1,
        })
        .await,
    );
}

// ---------------------------------------------------------------------------------------------
// Transactions

pub async fn txn_compare_kinds(mut h: impl Harness) {
    let s = h.open().await;
    let created = s.put("k", b("m"), 0).await.unwrap();
    let modified = s.put("k", b("m"), 0).await.unwrap();
    let cmp = |op, target| Compare {
        key: "k".into(),
        op,
        target,
    };
    let missing = |op, target| Compare {
        key: "nope".into(),
        op,
        target,
    };
    use CompareOp::{Equal, Greater, Less, NotEqual};
    use CompareTarget::{CreateRevision, ModRevision, Value, Version};
    let cases = vec![
        (cmp(Equal, Value(b("m"))), true),
        (cmp(Equal, Value(b("x"))), false),
        (cmp(NotEqual, Value(b("x"))), true),
        (cmp(NotEqual, Value(b("m"))), false),
        (cmp(Greater, Value(b("a"))), true),
        (cmp(Greater, Value(b("m"))), false),
        (cmp(Less, Value(b("z"))), true),
        (cmp(Less, Value(b("m"))), false),
        (cmp(Equal, Version(2)), true),
        (cmp(NotEqual, Version(2)), false),
        (cmp(NotEqual, Version(1)), true),
        (cmp(Greater, Version(1)), true),
        (cmp(Greater, Version(2)), false),
        (cmp(Less, Version(3)), true),
        (cmp(Less, Version(2)), false),
        (cmp(Equal, ModRevision(modified)), true),
        (cmp(Equal, ModRevision(created)), false),
        (cmp(NotEqual, ModRevision(created)), true),
        (cmp(Greater, ModRevision(created)), true),
        (cmp(Less, ModRevision(modified + 1)), true),
        (cmp(Less, ModRevision(modified)), false),
        (cmp(Equal, CreateRevision(created)), true),
        (cmp(NotEqual, CreateRevision(created)), false),
        (cmp(Greater, CreateRevision(created - 1)), true),
        (cmp(Less, CreateRevision(created)), false),
        (cmp(Less, CreateRevision(modified)), true),
        // A missing key has version and revisions 0 and fails every value comparison.
        (missing(Equal, Version(0)), true),
        (missing(Greater, Version(0)), false),
        (missing(Equal, ModRevision(0)), true),
        (missing(Less, ModRevision(1)), true),
        (missing(Equal, CreateRevision(0)), true),
        (missing(Greater, CreateRevision(0)), false),
        (missing(Equal, Value(Vec::new())), false),
        (missing(NotEqual, Value(b("x"))), false),
        (missing(Greater, Value(Vec::new())), false),
        (missing(Less, Value(b("z"))), false),
        // The helper constructors.
        (Compare::present("k"), true),
        (Compare::absent("k"), false),
        (Compare::present("nope"), false),
        (Compare::absent("nope"), true),
        (Compare::mod_revision("k", modified), true),
        (Compare::mod_revision("k", created), false),
        (Compare::value_equals("k", "m"), true),
        (Compare::value_equals("k", "n"), false),
    ];
    let at = rev(&*s).await;
    for (compare, expected) in cases {
        let resp = s
            .txn(Txn {
                compares: vec![compare.clone()],
                success: vec![Op::Get { key: "k".into() }],
                failure: vec![],
            })
            .await
            .unwrap();
        assert_eq!(resp.succeeded, expected, "{compare:?}");
        assert_eq!(resp.results.len(), usize::from(expected), "{compare:?}");
        assert_eq!(resp.revision, at);
    }

    // All compares must hold; none is an unconditional success.
    let both = |second| Txn {
        compares: vec![Compare::present("k"), second],
        ..Default::default()
    };
    assert!(
        s.txn(both(Compare::absent("nope")))
            .await
            .unwrap()
            .succeeded
    );
    assert!(
        !s.txn(both(Compare::present("nope")))
            .await
            .unwrap()
            .succeeded
    );
    assert!(s.txn(Txn::default()).await.unwrap().succeeded);
    assert_eq!(
        rev(&*s).await,
        at,
        "comparisons alone never bump the revision"
    );
}

pub async fn txn_success_ops_and_results(mut h: impl Harness) {
    let s = h.open().await;
    s.put("t/a", b("1"), 0).await.unwrap();
    s.put("t/x/1", b("x1"), 0).await.unwrap();
    s.put("t/x/2", b("x2"), 0).await.unwrap();
    let a_before = s.get("t/a").await.unwrap().unwrap();
    let before = rev(&*s).await;

    let resp = s
        .txn(Txn {
            compares: vec![Compare::present("t/a"), Compare::absent("t/b")],
            success: vec![
                Op::put("t/a", "2"),
                Op::put("t/b", "new"),
                Op::delete("t/nothing"),
                Op::DeletePrefix {
                    prefix: "t/x/".into(),
                },
                Op::Get {
                    key: "t/x/1".into(),
                },
                Op::Get { key: "t/a".into() },
            ],
            failure: vec![Op::put("t/failed", "yes")],
        })
        .await
        .unwrap();
    let after = before + 1;
    assert!(resp.succeeded);
    assert_eq!(
        resp.revision, after,
        "one revision for the whole transaction"
    );
    assert_eq!(rev(&*s).await, after);
    assert_eq!(resp.results.len(), 6);
    assert_eq!(
        resp.results[0],
        OpResult::Put {
            prev: Some(a_before.clone())
        }
    );
    assert_eq!(resp.results[1], OpResult::Put { prev: None });
    assert_eq!(resp.results[2], OpResult::Delete { deleted: 0 });
    assert_eq!(resp.results[3], OpResult::Delete { deleted: 2 });
    assert_eq!(
        resp.results[4],
        OpResult::Get { kv: None },
        "later ops see earlier ones"
    );
    let OpResult::Get { kv: Some(a) } = &resp.results[5] else {
        panic!("expected a get result, got {:?}", resp.results[5]);
    };
    assert_eq!(a.value, b("2"));
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (a_before.create_revision, after, 2)
    );

    let tb = s.get("t/b").await.unwrap().unwrap();
    assert_eq!(
        (tb.create_revision, tb.mod_revision, tb.version),
        (after, after, 1)
    );
    assert_eq!(all_keys(&*s, "t/").await, ["t/a", "t/b"]);
}

/// Values of every size and shape come back byte for byte through get, range, watch, prev and
/// value compares, however the store keeps them (both stores compress large values); a put
/// without `prev_kv` answers no previous value.
pub async fn large_values_read_back_exactly(mut h: impl Harness) {
    let s = h.open().await;
    let history = r#"{"status":0,"executed":1764000000},"#.repeat(21);
    let event = format!(r#"{{"check":{{"history":[{history}]}},"output":"DISK OK"}}"#).into_bytes();
    // A value that begins like etcd's value framing, and bytes that do not compress.
    let framed_like = [&[0xC1, b'P', b'K', b'V', 1][..], &event].concat();
    let noise: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let framed_short = vec![0xC1, b'P', b'K', b'V', 1, 2, 3];
    let values = [event.clone(), framed_like, noise, framed_short, b("short")];
    let start = rev(&*s).await;
    let mut watch = s.watch("big/", start).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        s.put(&format!("big/{i}"), v.clone(), 0).await.unwrap();
    }
    for (i, v) in values.iter().enumerate() {
        let kv = s.get(&format!("big/{i}")).await.unwrap().unwrap();
        assert_eq!(&kv.value, v, "get big/{i}");
        assert_eq!(&put_kv(&next(&mut watch).await).value, v, "watch big/{i}");
    }
    let listed = s.range(prefix("big/")).await.unwrap().kvs;
    assert_eq!(
        listed.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        values
    );
    let resp = s
        .txn(Txn {
            compares: vec![Compare::value_equals("big/0", event.clone())],
            success: vec![
                Op::put("big/0", b("replaced")),
                Op::put_without_prev("big/1", b("replaced too")),
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(resp.succeeded, "a large value compares equal to itself");
    let OpResult::Put { prev: Some(prev) } = &resp.results[0] else {
        panic!("expected the previous value, got {:?}", resp.results[0]);
    };
    assert_eq!(prev.value, event);
    assert_eq!(
        resp.results[1],
        OpResult::Put { prev: None },
        "no previous value when not asked for"
    );
    assert_eq!(
        s.get("big/1").await.unwrap().unwrap().value,
        b("replaced too")
    );
}

pub async fn txn_failure_branch(mut h: impl Harness) {
    let s = h.open().await;
    s.put("k", b("v1"), 0).await.unwrap();
    let v1 = s.get("k").await.unwrap().unwrap();
    let before = rev(&*s).await;
    let resp = s
        .txn(Txn {
            compares: vec![Compare::value_equals("k", "other")],
            success: vec![Op::put("k", "success"), Op::put("s", "success")],
            failure: vec![Op::put("k", "failure"), Op::Get { key: "s".into() }],
        })
        .await
        .unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.revision, before + 1);
    assert_eq!(resp.results[0], OpResult::Put { prev: Some(v1) });
    assert_eq!(
        resp.results[1],
        OpResult::Get { kv: None },
        "the success branch did not run"
    );
    assert_eq!(s.get("k").await.unwrap().unwrap().value, b("failure"));
    assert_eq!(s.get("s").await.unwrap(), None);

    let resp = s
        .txn(Txn {
            compares: vec![Compare::absent("k")],
            success: vec![Op::put("k", "x")],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(!resp.succeeded);
    assert!(resp.results.is_empty());
    assert_eq!(
        resp.revision,
        before + 1,
        "an empty failure branch writes nothing"
    );
}

pub async fn txn_without_writes_keeps_revision(mut h: impl Harness) {
    let s = h.open().await;
    s.put("k", b("v"), 0).await.unwrap();
    let before = rev(&*s).await;
    let resp = s
        .txn(Txn {
            compares: vec![],
            success: vec![
                Op::Get { key: "k".into() },
                Op::delete("missing"),
                Op::DeletePrefix {
                    prefix: "nothing/".into(),
                },
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, before);
    assert_eq!(rev(&*s).await, before);
    assert_eq!(
        resp.results,
        [
            OpResult::Get {
                kv: s.get("k").await.unwrap()
            },
            OpResult::Delete { deleted: 0 },
            OpResult::Delete { deleted: 0 }
        ]
    );
}

pub async fn txn_is_atomic(mut h: impl Harness) {
    let s = h.open().await;
    s.put("keep", b("old"), 0).await.unwrap();
    let before = rev(&*s).await;
    let failed = s
        .txn(Txn {
            compares: vec![],
            success: vec![
                Op::put("a", "1"),
                Op::delete("keep"),
                Op::put_with_lease("b", "2", UNKNOWN_LEASE),
                Op::put("c", "3"),
            ],
            failure: vec![],
        })
        .await;
    assert_lease_not_found(failed, UNKNOWN_LEASE);
    assert_eq!(rev(&*s).await, before, "nothing was applied");
    assert_eq!(all_keys(&*s, "").await, ["keep"]);

    assert_lease_not_found(s.put("d", b("4"), UNKNOWN_LEASE).await, UNKNOWN_LEASE);
    assert_eq!(s.get("d").await.unwrap(), None);

    let invalid = s
        .txn(Txn {
            success: vec![Op::put("a", "1"), Op::put("", "empty key")],
            ..Default::default()
        })
        .await;
    assert_invalid(invalid);
    assert_eq!(all_keys(&*s, "").await, ["keep"]);
    assert_eq!(rev(&*s).await, before);
}

pub async fn txn_concurrent_compare_and_swap(mut h: impl Harness) {
    let s = h.open().await;
    s.put("ctr", b("0"), 0).await.unwrap();
    const TASKS: u64 = 4;
    const INCREMENTS: u64 = 25;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < INCREMENTS {
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
                    done += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ctr = s.get("ctr").await.unwrap().unwrap();
    assert_eq!(
        ctr.value,
        b(&(TASKS * INCREMENTS).to_string()),
        "no increment was lost"
    );
    assert_eq!(ctr.version, (TASKS * INCREMENTS + 1) as i64);
}

// ---------------------------------------------------------------------------------------------
// Watches

pub async fn watch_delivers_many_writes_in_order(mut h: impl Harness) {
    let s = h.open().await;
    let mut w = s.watch("w/", 0).await.unwrap();
    // (is_put, key, value, revision)
    let mut expected = Vec::new();
    for i in 0..200 {
        let key = format!("w/{}", i % 7);
        let r = s.put(&key, b(&i.to_string()), 0).await.unwrap();
        expected.push((true, key.clone(), i.to_string(), r));
        if i % 5 == 4 {
            assert_eq!(s.delete(&key).await.unwrap(), 1);
            expected.push((false, key, String::new(), r + 1));
        }
    }
    let mut last = 0;
    for (is_put, key, value, r) in expected {
        let event = next(&mut w).await;
        let kv = event.kv();
        assert_eq!(matches!(event, WatchEvent::Put(_)), is_put, "{event:?}");
        assert_eq!(
            (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision),
            (key.as_str(), value.as_bytes(), r)
        );
        assert!(kv.mod_revision > last, "revisions strictly increase");
        last = kv.mod_revision;
    }
    s.put("w/last", b("x"), 0).await.unwrap();
    assert_eq!(
        put_kv(&next(&mut w).await).key,
        "w/last",
        "nothing extra was delivered"
    );
}

pub async fn watch_filters_by_prefix(mut h: impl Harness) {
    let s = h.open().await;
    let mut w = s.watch("f/a/", 0).await.unwrap();
    for key in ["f/a", "f/a/1", "f/b/1", "f/a0", "f/a.", "f/a/2", "g"] {
        s.put(key, b(key), 0).await.unwrap();
    }
    s.delete("f/b/1").await.unwrap();
    s.delete("f/a/1").await.unwrap();
    s.put("f/a/zz", b("sentinel"), 0).await.unwrap();

    assert_eq!(put_kv(&next(&mut w).await).key, "f/a/1");
    assert_eq!(put_kv(&next(&mut w).await).key, "f/a/2");
    assert_eq!(delete_kv(&next(&mut w).await).key, "f/a/1");
    assert_eq!(
        put_kv(&next(&mut w).await).key,
        "f/a/zz",
        "keys outside the prefix are filtered"
    );

    // The empty prefix watches everything.
    let mut all = s.watch("", 0).await.unwrap();
    s.put("zzz", b("1"), 0).await.unwrap();
    assert_eq!(put_kv(&next(&mut all).await).key, "zzz");
}

pub async fn watch_from_past_revision(mut h: impl Harness) {
    let s = h.open().await;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(
            s.put(&format!("p/{i}"), b(&i.to_string()), 0)
                .await
                .unwrap(),
        );
    }
    s.put("other", b("x"), 0).await.unwrap();

    let mut from_middle = s.watch("p/", revs[4]).await.unwrap();
    let mut from_start = s.watch("p/", revs[0] - 1).await.unwrap();
    let mut from_now = s.watch("p/", rev(&*s).await).await.unwrap();
    let live = s.put("p/10", b("10"), 0).await.unwrap();

    for (i, r) in revs.iter().enumerate().skip(5) {
        let kv = put_kv(&next(&mut from_middle).await).clone();
        assert_eq!((kv.key, kv.mod_revision), (format!("p/{i}"), *r));
    }
    assert_eq!(
        put_kv(&next(&mut from_middle).await).mod_revision,
        live,
        "history then live, no gap"
    );
    for (i, r) in revs.iter().enumerate() {
        let kv = put_kv(&next(&mut from_start).await).clone();
        assert_eq!((kv.key, kv.mod_revision), (format!("p/{i}"), *r));
    }
    assert_eq!(put_kv(&next(&mut from_start).await).mod_revision, live);
    assert_eq!(
        put_kv(&next(&mut from_now).await).mod_revision,
        live,
        "only changes after the start"
    );

    // A read's revision is a safe starting point: nothing between the read and the watch is lost.
    let snapshot = s.range(prefix("p/")).await.unwrap();
    let r = s.put("p/11", b("11"), 0).await.unwrap();
    let mut after_read = s.watch("p/", snapshot.revision).await.unwrap();
    assert_eq!(put_kv(&next(&mut after_read).await).mod_revision, r);
}

pub async fn watch_sees_txn_changes_together(mut h: impl Harness) {
    let s = h.open().await;
    for key in ["x/c", "x/d/1", "x/d/2"] {
        s.put(key, b(key), 0).await.unwrap();
    }
    let mut w = s.watch("x/", 0).await.unwrap();
    let resp = s
        .txn(Txn {
            compares: vec![],
            success: vec![
                Op::put("x/b", "b"),
                Op::put("x/a", "a"),
                Op::delete("x/c"),
                Op::put("y/other", "not watched"),
                Op::DeletePrefix {
                    prefix: "x/d/".into(),
                },
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    let r = resp.revision;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next(&mut w).await);
    }
    for event in &got {
        assert_eq!(
            event.kv().mod_revision,
            r,
            "every change of a txn carries its revision"
        );
    }
    assert_eq!(put_kv(&got[0]).key, "x/b", "op order, not key order");
    assert_eq!(put_kv(&got[1]).key, "x/a");
    assert_eq!(put_kv(&got[1]).version, 1);
    assert_eq!(delete_kv(&got[2]).key, "x/c");
    let mut prefix_deletes = vec![
        delete_kv(&got[3]).key.clone(),
        delete_kv(&got[4]).key.clone(),
    ];
    prefix_deletes.sort();
    assert_eq!(prefix_deletes, ["x/d/1", "x/d/2"]);

    let later = s.put("x/z", b("z"), 0).await.unwrap();
    assert_eq!(later, r + 1);
    assert_eq!(put_kv(&next(&mut w).await).mod_revision, later);
}

pub async fn watch_sees_deletes(mut h: impl Harness) {
    let s = h.open().await;
    for key in ["d/1", "d/1", "d/2", "d/3"] {
        s.put(key, b(key), 0).await.unwrap();
    }
    let mut w = s.watch("d/", 0).await.unwrap();
    s.delete("d/1").await.unwrap();
    let r1 = rev(&*s).await;
    assert_eq!(s.delete("d/missing").await.unwrap(), 0);
    assert_eq!(s.delete_prefix("d/").await.unwrap(), 2);
    let r2 = rev(&*s).await;
    assert_eq!(r2, r1 + 1);
    s.put("d/sentinel", b("s"), 0).await.unwrap();

    let d1 = delete_kv(&next(&mut w).await).clone();
    assert_eq!(
        (d1.key.as_str(), d1.mod_revision, d1.value.len()),
        ("d/1", r1, 0)
    );
    let mut rest = BTreeSet::new();
    for _ in 0..2 {
        let kv = delete_kv(&next(&mut w).await).clone();
        assert_eq!(kv.mod_revision, r2);
        assert!(kv.value.is_empty());
        rest.insert(kv.key);
    }
    assert_eq!(rest.into_iter().collect::<Vec<_>>(), ["d/2", "d/3"]);
    assert_eq!(
        put_kv(&next(&mut w).await).key,
        "d/sentinel",
        "deleting nothing is no event"
    );
}

pub async fn watch_sees_lease_expiry(mut h: impl Harness) {
    let s = h.open().await;
    let lease = s.grant_lease(Duration::from_secs(1)).await.unwrap();
    s.put("l/a", b("a"), lease).await.unwrap();
    s.put("l/b", b("b"), lease).await.unwrap();
    s.put("l/c", b("c"), 0).await.unwrap();
    let mut w = s.watch("l/", 0).await.unwrap();
    let first = delete_kv(&next(&mut w).await).clone();
    let second = delete_kv(&next(&mut w).await).clone();
    assert_eq!(
        first.mod_revision, second.mod_revision,
        "expiry deletes in one revision"
    );
    let mut keys = vec![first.key, second.key];
    keys.sort();
    assert_eq!(keys, ["l/a", "l/b"]);
    assert_eq!(all_keys(&*s, "l/").await, ["l/c"]);
}

pub async fn watch_with_concurrent_writers(mut h: impl Harness) {
    let s = h.open().await;
    let base = rev(&*s).await;
    let mut everything = s.watch("", base).await.unwrap();
    let mut only_c = s.watch("c/", base).await.unwrap();

    const WRITERS: usize = 4;
    const PUTS: usize = 40;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PUTS {
                s.put(&format!("c/{w}/{i:03}"), b(&i.to_string()), 0)
                    .await
                    .unwrap();
            }
        }));
    }
    let outsider = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..PUTS {
                s.put(&format!("other/{i:03}"), b("o"), 0).await.unwrap();
            }
        })
    };
    // Watchers started mid-stream, from a read's revision, must see everything after it.
    let mut late = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = s
            .range(RangeRequest {
                prefix: "c/".into(),
                start: None,
                limit: 1,
            })
            .await
            .unwrap();
        late.push((r.revision, s.watch("", r.revision).await.unwrap()));
    }
    for task in tasks {
        task.await.unwrap();
    }
    outsider.await.unwrap();
    let last = rev(&*s).await;
    assert_eq!(last, base + ((WRITERS + 1) * PUTS) as i64);

    let expect_contiguous = async |w: &mut Watch, from: Revision| {
        for r in from + 1..=last {
            assert_eq!(next(w).await.kv().mod_revision, r, "no gap, no duplicate");
        }
    };
    expect_contiguous(&mut everything, base).await;
    for (from, mut w) in late {
        expect_contiguous(&mut w, from).await;
    }

    let mut per_writer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut previous = base;
    for _ in 0..WRITERS * PUTS {
        let kv = put_kv(&next(&mut only_c).await).clone();
        assert!(kv.mod_revision > previous);
        previous = kv.mod_revision;
        let (writer, _) = kv.key[2..].split_once('/').unwrap();
        per_writer
            .entry(writer.to_owned())
            .or_default()
            .push(kv.key.clone());
    }
    assert_eq!(per_writer.len(), WRITERS);
    for (writer, keys) in per_writer {
        let expected: Vec<String> = (0..PUTS).map(|i| format!("c/{writer}/{i:03}")).collect();
        assert_eq!(keys, expected, "each writer's changes arrive in its order");
    }
}

// ---------------------------------------------------------------------------------------------
// Leases

pub async fn lease_expiry_deletes_keys(mut h: impl Harness) {
    let s = h.open().await;
    let lease = s.grant_lease(Duration::from_secs(1)).await.unwrap();
    assert_ne!(lease, 0);
    s.put("e/a", b("a"), lease).await.unwrap();
    s.put("e/b", b("b"), 0).await.unwrap();
    assert_eq!(s.get("e/a").await.unwrap().unwrap().lease, lease);
    let before = rev(&*s).await;

    eventually("the leased key to expire", || async {
        s.get("e/a").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        rev(&*s).await,
        before + 1,
        "expiry is one deleting revision"
    );
    assert!(
        s.get("e/b").await.unwrap().is_some(),
        "keys without the lease stay"
    );
    assert_lease_not_found(s.keep_alive(lease).await, lease);
    assert_lease_not_found(s.put("e/c", b("c"), lease).await, lease);
    assert_lease_not_found(s.revoke_lease(lease).await, lease);
}

pub async fn lease_keep_alive_extends(mut h: impl Harness) {
    let s = h.open().await;
    let lease = s.grant_lease(Duration::from_secs(2)).await.unwrap();
    s.put("k", b("v"), lease).await.unwrap();
    // Four seconds of keep-alives: twice the TTL.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.keep_alive(lease).await.unwrap();
        assert!(
            s.get("k").await.unwrap().is_some(),
            "a kept-alive lease keeps its keys"
        );
    }
    eventually("the key to expire once keep-alives stop", || async {
        s.get("k").await.unwrap().is_none()
    })
    .await;
}

pub async fn lease_revoke_deletes_keys_in_one_revision(mut h: impl Harness) {
    let s = h.open().await;
    let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    s.put("r/a", b("a"), lease).await.unwrap();
    s.put("r/b", b("b"), lease).await.unwrap();
    s.put("r/c", b("c"), 0).await.unwrap();
    let mut w = s.watch("r/", 0).await.unwrap();
    let before = rev(&*s).await;
    s.revoke_lease(lease).await.unwrap();
    assert_eq!(rev(&*s).await, before + 1);
    let mut deleted = BTreeSet::new();
    for _ in 0..2 {
        let kv = delete_kv(&next(&mut w).await).clone();
        assert_eq!(kv.mod_revision, before + 1);
        deleted.insert(kv.key);
    }
    assert_eq!(deleted.into_iter().collect::<Vec<_>>(), ["r/a", "r/b"]);
    assert_eq!(all_keys(&*s, "r/").await, ["r/c"]);
    assert_lease_not_found(s.revoke_lease(lease).await, lease);
    assert_lease_not_found(s.keep_alive(lease).await, lease);

    let empty = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    s.revoke_lease(empty).await.unwrap();
    assert_eq!(
        rev(&*s).await,
        before + 1,
        "revoking a lease without keys deletes nothing"
    );
}

pub async fn lease_ids_are_unique_and_unknown_ids_fail(mut h: impl Harness) {
    let s = h.open().await;
    let mut ids = HashSet::new();
    for _ in 0..10 {
        let id = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        assert_ne!(id, 0);
        assert!(ids.insert(id), "lease id {id} granted twice");
    }
    assert!(!ids.contains(&UNKNOWN_LEASE));
    assert_lease_not_found(s.keep_alive(UNKNOWN_LEASE).await, UNKNOWN_LEASE);
    assert_lease_not_found(s.revoke_lease(UNKNOWN_LEASE).await, UNKNOWN_LEASE);
    assert_lease_not_found(s.put("k", b("v"), UNKNOWN_LEASE).await, UNKNOWN_LEASE);
    for id in ids {
        s.keep_alive(id).await.unwrap();
        s.revoke_lease(id).await.unwrap();
    }
}

pub async fn overwriting_a_key_moves_it_between_leases(mut h: impl Harness) {
    let s = h.open().await;
    let a = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    let b_lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    let c = s.grant_lease(Duration::from_secs(60)).await.unwrap();

    s.put("m/1", b("leased"), a).await.unwrap();
    s.put("m/1", b("free"), 0).await.unwrap();
    assert_eq!(s.get("m/1").await.unwrap().unwrap().lease, 0);
    s.revoke_lease(a).await.unwrap();
    assert!(
        s.get("m/1").await.unwrap().is_some(),
        "a put with lease 0 detaches the key"
    );

    s.put("m/2", b("on c"), c).await.unwrap();
    s.put("m/2", b("on b"), b_lease).await.unwrap();
    assert_eq!(s.get("m/2").await.unwrap().unwrap().lease, b_lease);
    s.revoke_lease(c).await.unwrap();
    assert!(
        s.get("m/2").await.unwrap().is_some(),
        "the key moved to the other lease"
    );
    s.revoke_lease(b_lease).await.unwrap();
    assert_eq!(s.get("m/2").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Persistence

pub async fn persistence_across_reopen(mut h: impl Harness) {
    if !h.persistent() {
        return;
    }
    let s = h.open().await;
    s.put("keep/a", b("1"), 0).await.unwrap();
    s.put("keep/a", b("2"), 0).await.unwrap();
    s.put("keep/gone", b("x"), 0).await.unwrap();
    s.delete("keep/gone").await.unwrap();
    s.txn(Txn {
        success: vec![
            Op::put("keep/t1", "t1"),
            Op::put("keep/t2", vec![0u8, 255, 7]),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let long = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    s.put("keep/leased", b("long"), long).await.unwrap();
    let short = s.grant_lease(Duration::from_secs(2)).await.unwrap();
    s.put("keep/short", b("short"), short).await.unwrap();
    let revoked = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    s.revoke_lease(revoked).await.unwrap();

    let snapshot = s.range(prefix("")).await.unwrap();
    let at = rev(&*s).await;
    assert_eq!(snapshot.revision, at);
    drop(s);

    let s = h.reopen().await;
    let reread = s.range(prefix("")).await.unwrap();
    assert_eq!(
        reread.kvs, snapshot.kvs,
        "every key and its metadata survive"
    );
    assert_eq!(reread.revision, at);
    assert_eq!(rev(&*s).await, at, "the revision survives");

    // Leases come back; their keys do not vanish on restart.
    s.keep_alive(long).await.unwrap();
    assert_lease_not_found(s.keep_alive(revoked).await, revoked);
    let fresh = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    assert!(
        ![long, short, revoked].contains(&fresh),
        "lease ids are not reused after reopen"
    );
    let r = s.put("keep/after", b("after"), long).await.unwrap();
    assert_eq!(r, at + 1, "the revision continues");

    // The restored short lease still expires when nobody keeps it alive.
    eventually("the restored short lease to expire", || async {
        s.get("keep/short").await.unwrap().is_none()
    })
    .await;
    assert!(s.get("keep/leased").await.unwrap().is_some());
    let at = rev(&*s).await;
    drop(s);

    let s = h.reopen().await;
    assert_eq!(rev(&*s).await, at);
    assert_eq!(s.get("keep/short").await.unwrap(), None);
    s.revoke_lease(long).await.unwrap();
    assert_eq!(
        all_keys(&*s, "keep/").await,
        ["keep/a", "keep/t1", "keep/t2"]
    );
    assert_eq!(rev(&*s).await, at + 1);
}
