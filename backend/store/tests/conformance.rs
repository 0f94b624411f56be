//! Runs the store conformance suite (`conformance/suite.rs`) against every implementation, then
//! the embedded store's own guarantees that the shared suite cannot state portably (history and
//! lag bounds, close, file release).
//!
//! To add an implementation: write a `Harness` for it and add a module invoking
//! `conformance_suite!(YourHarness::new())`.

#[macro_use]
#[path = "conformance/suite.rs"]
mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use backend_store::{EmbeddedStore, Store};
use suite::Harness;

/// `EmbeddedStore::in_memory()`: fast, nothing to persist.
struct MemoryHarness;

#[async_trait]
impl Harness for MemoryHarness {
    async fn open(&mut self) -> Arc<dyn Store> {
        EmbeddedStore::in_memory().expect("in-memory store")
    }

    fn persistent(&self) -> bool {
        false
    }

    async fn reopen(&mut self) -> Arc<dyn Store> {
        unreachable!("the in-memory store does not persist")
    }
}

/// `EmbeddedStore::open()` on a file in a fresh temporary directory. The file sits in
/// directories that do not exist yet, so every case also checks that `open` creates them.
struct FileHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    current: Option<Arc<EmbeddedStore>>,
}

impl FileHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state/store/store.redb");
        FileHarness {
            _dir: dir,
            path,
            current: None,
        }
    }
}

#[async_trait]
impl Harness for FileHarness {
    async fn open(&mut self) -> Arc<dyn Store> {
        let store = EmbeddedStore::open(&self.path).expect("file store");
        self.current = Some(store.clone());
        store
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn reopen(&mut self) -> Arc<dyn Store> {
        // The suite may still hold its handle; closing releases the file regardless.
        if let Some(old) = self.current.take() {
            old.close().await;
        }
        self.open().await
    }
}

mod embedded_memory {
    conformance_suite!(crate::MemoryHarness);
}

mod embedded_file {
    conformance_suite!(crate::FileHarness::new());
}

mod embedded_only {
    use std::time::Duration;

    use backend_store::{
        EmbeddedOptions, EmbeddedStore, Op, Store, StoreError, Txn, Watch, WatchEvent,
    };

    use crate::suite::WAIT;

    async fn next(w: &mut Watch) -> Option<Result<WatchEvent, StoreError>> {
        tokio::time::timeout(WAIT, w.next())
            .await
            .expect("watch stalled")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_before_the_history_is_compacted() {
        let opts = EmbeddedOptions {
            history_limit: 10,
            watch_buffer: 64,
            ..Default::default()
        };
        let s = EmbeddedStore::in_memory_with(opts).unwrap();
        let mut revs = Vec::new();
        for i in 0..30 {
            revs.push(s.put(&format!("h/{i}"), vec![], 0).await.unwrap());
        }
        match s.watch("h/", revs[0]).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (revs[0] + 1, revs[20]));
            }
            Err(e) => panic!("expected Compacted, got {e}"),
            Ok(_) => panic!("expected Compacted, got a watch"),
        }
        let mut w = s.watch("h/", revs[19]).await.unwrap();
        for r in &revs[20..] {
            assert_eq!(next(&mut w).await.unwrap().unwrap().kv().mod_revision, *r);
        }

        // A transaction larger than the history leaves as a whole: never half a transaction.
        let success = (0..15).map(|i| Op::put(format!("h/t{i}"), "t")).collect();
        let big = s
            .txn(Txn {
                success,
                ..Default::default()
            })
            .await
            .unwrap()
            .revision;
        assert!(matches!(
            s.watch("h/", big - 1).await,
            Err(StoreError::Compacted { .. })
        ));
        s.watch("h/", big).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_history_is_bounded_by_bytes_and_replays_values_exactly() {
        // Compressible 4 KiB values (the history keeps them as stored, compressed) and
        // incompressible ones (kept raw): a replay returns each exactly as written.
        let compressible: Vec<u8> = b"{\"status\":0,\"output\":\"ok\"}".repeat(160);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let opts = EmbeddedOptions {
            history_bytes: 64 << 10,
            ..Default::default()
        };
        let s = EmbeddedStore::in_memory_with(opts).unwrap();
        let first = s.put("b/first", random.clone(), 0).await.unwrap();
        let second = s.put("b/second", compressible.clone(), 0).await.unwrap();
        s.delete("b/first").await.unwrap();
        let mut w = s.watch("b/", first - 1).await.unwrap();
        let put = next(&mut w).await.unwrap().unwrap();
        assert!(
            matches!(&put, WatchEvent::Put(kv) if kv.value == random && kv.mod_revision == first)
        );
        let put = next(&mut w).await.unwrap().unwrap();
        assert!(
            matches!(&put, WatchEvent::Put(kv) if kv.value == compressible && kv.mod_revision == second)
        );
        let gone = next(&mut w).await.unwrap().unwrap();
        assert!(matches!(&gone, WatchEvent::Delete(kv) if kv.key == "b/first"));

        // 64 KiB hold about 16 incompressible 4 KiB values but thousands of compressed ones:
        // the byte bound, not the 10,000-change one, decides how far back a watch may start.
        let mut revs = Vec::new();
        for i in 0..40 {
            revs.push(s.put(&format!("b/r{i}"), random.clone(), 0).await.unwrap());
        }
        assert!(matches!(
            s.watch("b/", revs[0]).await,
            Err(StoreError::Compacted { .. })
        ));
        let mut w = s.watch("b/", revs[30]).await.unwrap();
        for r in &revs[31..] {
            assert_eq!(next(&mut w).await.unwrap().unwrap().kv().mod_revision, *r);
        }
        for i in 0..40 {
            s.put(&format!("b/c{i}"), compressible.clone(), 0)
                .await
                .unwrap();
        }
        s.watch("b/", revs[39]).await.unwrap();
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_watcher_is_cancelled_without_blocking_writers() {
        let opts = EmbeddedOptions {
            history_limit: 100,
            watch_buffer: 8,
            ..Default::default()
        };
        let s = EmbeddedStore::in_memory_with(opts).unwrap();
        let mut slow = s.watch("", 0).await.unwrap();
        tokio::time::timeout(WAIT, async {
            for i in 0..50 {
                s.put(&format!("k{i}"), vec![], 0).await.unwrap();
            }
        })
        .await
        .expect("writers were blocked by a slow watcher");
        for i in 0..8 {
            let event = next(&mut slow).await.unwrap().unwrap();
            assert_eq!(event.kv().key, format!("k{i}"));
        }
        assert!(matches!(
            next(&mut slow).await,
            Some(Err(StoreError::WatcherLagged(8)))
        ));
        assert!(
            next(&mut slow).await.is_none(),
            "the lag error ends the watch"
        );

        // Re-watching from the last delivered revision catches up from the history.
        let mut again = s.watch("", 2 + 7).await.unwrap();
        assert_eq!(next(&mut again).await.unwrap().unwrap().kv().key, "k8");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_ends_watches_and_rejects_calls() {
        let s = EmbeddedStore::in_memory().unwrap();
        let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        let mut w = s.watch("", 0).await.unwrap();
        s.put("k", b"v".to_vec(), 0).await.unwrap();
        s.close().await;
        assert_eq!(
            next(&mut w).await.unwrap().unwrap().kv().key,
            "k",
            "queued events stay"
        );
        assert!(next(&mut w).await.is_none(), "then the watch ends");
        assert!(matches!(s.get("k").await, Err(StoreError::Closed)));
        assert!(matches!(
            s.put("k", vec![], 0).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(s.watch("", 0).await, Err(StoreError::Closed)));
        assert!(matches!(s.keep_alive(lease).await, Err(StoreError::Closed)));
        assert!(matches!(s.revision().await, Err(StoreError::Closed)));
        s.close().await; // idempotent
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let s = EmbeddedStore::open(&path).unwrap();
        let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        s.put("k", b"v".to_vec(), lease).await.unwrap();
        let _w = s.watch("", 0).await.unwrap();
        drop(s);
        // The expiry task may hold the store for one pass; after that the file must be free.
        let deadline = tokio::time::Instant::now() + WAIT;
        let s = loop {
            match EmbeddedStore::open(&path) {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("file not released yet: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the dropped store never released its file: {e}"),
            }
        };
        assert_eq!(s.get("k").await.unwrap().unwrap().lease, lease);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reopened_store_has_no_history_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let s = EmbeddedStore::open(&path).unwrap();
        let first = s.put("a", vec![], 0).await.unwrap();
        let second = s.put("b", vec![], 0).await.unwrap();
        s.close().await;
        drop(s);
        let s = EmbeddedStore::open(&path).unwrap();
        assert!(matches!(
            s.watch("", first).await,
            Err(StoreError::Compacted { .. })
        ));
        let mut w = s.watch("", second).await.unwrap();
        let third = s.put("c", vec![], 0).await.unwrap();
        assert_eq!(
            next(&mut w).await.unwrap().unwrap().kv().mod_revision,
            third
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_requests_are_rejected() {
        let s = EmbeddedStore::in_memory().unwrap();
        assert!(matches!(
            s.watch("", -1).await,
            Err(StoreError::InvalidRequest(_))
        ));
        assert!(matches!(
            s.grant_lease(Duration::ZERO).await,
            Err(StoreError::InvalidRequest(_))
        ));
    }

    #[test]
    fn opening_outside_a_tokio_runtime_fails_cleanly() {
        assert!(matches!(
            EmbeddedStore::in_memory(),
            Err(StoreError::Backend(_))
        ));
    }
}

/// A real etcd started for each case (fresh data, free loopback ports): one member, or a
/// three-member cluster. `reopen` stops every member and starts them again on their data.
#[cfg(feature = "etcd")]
struct EtcdHarness {
    members: usize,
    cluster: Option<backend_store::etcd::testing::EtcdCluster>,
}

#[cfg(feature = "etcd")]
impl EtcdHarness {
    fn new(members: usize) -> Self {
        EtcdHarness {
            members,
            cluster: None,
        }
    }
}

#[cfg(feature = "etcd")]
#[async_trait]
impl Harness for EtcdHarness {
    async fn open(&mut self) -> Arc<dyn Store> {
        let cluster = backend_store::etcd::testing::EtcdCluster::with_members(self.members)
            .await
            .expect("etcd cluster");
        let store = cluster.connect().await.expect("etcd client");
        self.cluster = Some(cluster);
        store
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn reopen(&mut self) -> Arc<dyn Store> {
        let cluster = self.cluster.as_mut().expect("opened before");
        cluster.stop_all();
        cluster.restart_all().await.expect("etcd restarts");
        cluster.connect().await.expect("etcd client")
    }
}

#[cfg(feature = "etcd")]
mod etcd_single {
    conformance_suite!(crate::EtcdHarness::new(1));
}

#[cfg(feature = "etcd")]
mod etcd_cluster {
    conformance_suite!(crate::EtcdHarness::new(3));
}

/// What only a real etcd can show: failures of members and of the whole cluster.
#[cfg(feature = "etcd")]
mod etcd_only {
    use std::time::Duration;

    use backend_store::etcd::testing::EtcdCluster;
    use backend_store::{EtcdOptions, EtcdStore, Op, Store, StoreError, Txn};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn losing_one_member_of_three_keeps_reads_and_writes() {
        let mut cluster = EtcdCluster::with_members(3).await.unwrap();
        let s = cluster.connect().await.unwrap();
        s.put("k", b"1".to_vec(), 0).await.unwrap();
        let mut w = s.watch("k", 0).await.unwrap();
        // Kill each member in turn (with the others up): whichever was the leader or the
        // member the client talked to, the store keeps answering.
        for i in 0..3 {
            cluster.kill(i);
            let value = format!("after-kill-{i}").into_bytes();
            let rev = s.put("k", value.clone(), 0).await.unwrap();
            assert_eq!(s.get("k").await.unwrap().unwrap().value, value);
            let seen = tokio::time::timeout(Duration::from_secs(30), w.next())
                .await
                .expect("watch stalled");
            match seen {
                Some(Ok(event)) => assert_eq!(event.kv().mod_revision, rev),
                // A watch on the killed member ends with an error; a new one resumes.
                Some(Err(_)) | None => {
                    w = s.watch("k", rev).await.unwrap();
                }
            }
            cluster.restart(i).unwrap();
            cluster.wait_ready().await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_cluster_is_unavailable_then_recovers() {
        let mut cluster = EtcdCluster::single().await.unwrap();
        let mut opts = cluster.store_options();
        opts.request_timeout = Duration::from_secs(2);
        opts.connect_timeout = Duration::from_secs(1);
        let s = EtcdStore::connect(opts).await.unwrap();
        s.put("k", b"v".to_vec(), 0).await.unwrap();
        cluster.stop_all();
        match s.put("k", b"w".to_vec(), 0).await {
            Err(StoreError::Unavailable(message)) => assert!(!message.is_empty()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(matches!(s.get("k").await, Err(StoreError::Unavailable(_))));
        cluster.restart_all().await.unwrap();
        // The same client reconnects by itself.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match s.get("k").await {
                Ok(kv) => {
                    assert_eq!(kv.unwrap().value, b"v", "the failed write left nothing");
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("not back yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("etcd did not come back: {e}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_beyond_etcds_limits_get_a_clear_error() {
        let cluster = EtcdCluster::single().await.unwrap();
        let mut opts = cluster.store_options();
        opts.max_request_bytes = 64 * 1024;
        let s = EtcdStore::connect(opts).await.unwrap();
        match s.put("big", vec![b'x'; 100 * 1024], 0).await {
            Err(StoreError::InvalidRequest(m)) => assert!(m.contains("--etcd-max-request-bytes")),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
        let too_many = Txn {
            success: (0..129).map(|i| Op::put(format!("t/{i}"), "v")).collect(),
            ..Default::default()
        };
        assert!(matches!(
            s.txn(too_many).await,
            Err(StoreError::InvalidRequest(_))
        ));
        let at_limit = Txn {
            success: (0..128).map(|i| Op::put(format!("t/{i}"), "v")).collect(),
            ..Default::default()
        };
        assert!(s.txn(at_limit).await.unwrap().succeeded);
        assert!(s.get("big").await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_range_larger_than_grpcs_default_message_limit_is_read() {
        let cluster = EtcdCluster::single().await.unwrap();
        let s = cluster.connect().await.unwrap();
        for i in 0..6 {
            s.put(&format!("big/{i}"), vec![b'x'; 1024 * 1024], 0)
                .await
                .unwrap();
        }
        let all = s
            .range(backend_store::RangeRequest {
                prefix: "big/".into(),
                start: None,
                limit: 0,
            })
            .await
            .unwrap();
        assert_eq!(all.kvs.len(), 6, "6 MiB in one answer");
    }

    #[test]
    fn client_urls_are_checked() {
        assert_eq!(
            EtcdOptions::parse_endpoints("http://a:2379, https://b:2379").unwrap(),
            ["http://a:2379", "https://b:2379"]
        );
        assert!(EtcdOptions::parse_endpoints(" , ").is_err());
        assert!(EtcdOptions::parse_endpoints("a:2379").is_err());
    }
}
