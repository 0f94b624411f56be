//! `CountingStore`: a `Store` that counts the requests passed to the store under it, so a
//! benchmark can report store requests per event for any implementation (embedded or etcd).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backend_store::{
    KeyValue, LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse,
    Watch,
};

/// Requests by kind, since creation.
#[derive(Debug, Default)]
pub struct Counts {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub leases: AtomicU64,
    pub watches: AtomicU64,
}

impl Counts {
    /// Every request (reads, writes, lease calls, watch creations).
    pub fn total(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
            + self.writes.load(Ordering::Relaxed)
            + self.leases.load(Ordering::Relaxed)
            + self.watches.load(Ordering::Relaxed)
    }
}

pub struct CountingStore {
    inner: Arc<dyn Store>,
    pub counts: Arc<Counts>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            counts: Arc::new(Counts::default()),
        })
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        bump(&self.counts.reads);
        self.inner.get(key).await
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        bump(&self.counts.reads);
        self.inner.range(req).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        bump(&self.counts.writes);
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> Result<u64> {
        bump(&self.counts.writes);
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        bump(&self.counts.writes);
        self.inner.delete_prefix(prefix).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        bump(&self.counts.writes);
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<Watch> {
        bump(&self.counts.watches);
        self.inner.watch(prefix, after_revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        bump(&self.counts.leases);
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        bump(&self.counts.leases);
        self.inner.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        bump(&self.counts.leases);
        self.inner.revoke_lease(lease).await
    }
    async fn revision(&self) -> Result<Revision> {
        bump(&self.counts.reads);
        self.inner.revision().await
    }
}
