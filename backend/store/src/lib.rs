//! Picket's store API, shaped like etcd's v3 KV API because production runs on etcd.
//!
//! Every implementation offers the same semantics, checked by one conformance suite
//! (`tests/conformance.rs`, written once and run against each implementation):
//!
//! - a single, cluster-wide, monotonically increasing **revision**; every successful write
//!   (put, delete that removed something, or transaction with at least one such write) bumps it
//!   by exactly one, and every key remembers `create_revision`, `mod_revision` and `version`;
//! - `get`, `put`, `delete`, prefix `range` with a `limit` and continuation;
//! - compare-and-swap **transactions** (`Txn`): compares on value, version or mod revision,
//!   then a list of operations applied atomically;
//! - **watches** on a prefix that deliver every change after a start revision, in revision
//!   order, without gaps;
//! - **leases**: a TTL that keys can be attached to; when the lease expires (or is revoked)
//!   all its keys are deleted, which watchers see as ordinary deletes.
//!
//! Layout:
//! - `lib.rs`: the `Store` trait and its request/response types (this file);
//! - `embedded.rs`: `EmbeddedStore`, the default implementation on redb (file or memory);
//! - `etcd.rs` (feature `etcd`): `EtcdStore` on an external etcd cluster, and `etcd::testing`,
//!   real etcd processes on loopback ports for tests and benches;
//! - `codec.rs`: values at rest (large values LZ4-compressed, transparently to callers);
//! - `keys.rs`: helpers for prefix ranges.

use std::time::Duration;

use async_trait::async_trait;

mod codec;
pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod keys;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdOptions, EtcdStore};

/// A revision of the whole store. Starts at 1 for an empty store, as etcd does.
pub type Revision = i64;

/// A lease identifier; never 0 (0 means "no lease" in etcd and here).
pub type LeaseId = i64;

/// One stored key with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 after creation.
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// Answer to a `range` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut the answer short; continue from `next_key`.
    pub more: bool,
    /// When `more`, the first key not returned: pass it as `RangeRequest::start` to continue.
    pub next_key: Option<String>,
    /// The store revision the answer was read at.
    pub revision: Revision,
}

/// A prefix range read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeRequest {
    /// Every returned key starts with this prefix ("" = the whole store).
    pub prefix: String,
    /// Start reading at this key (inclusive) instead of at the prefix; used for continuation.
    /// Must itself start with `prefix`.
    pub start: Option<String>,
    /// At most this many keys; 0 = no limit.
    pub limit: usize,
}

/// What a transaction compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's value. A missing key fails every value comparison, `NotEqual` included, as in
    /// etcd (which cannot tell a missing value from an empty one); compare `Version(0)` to test
    /// for absence.
    Value(Vec<u8>),
    /// The key's version; a missing key has version 0 (so `Version(0)` = "key absent").
    Version(i64),
    /// The key's mod revision; a missing key has 0.
    ModRevision(Revision),
    /// The key's create revision; a missing key has 0.
    CreateRevision(Revision),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::Version(0),
        }
    }
    /// The key exists.
    pub fn present(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Greater,
            target: CompareTarget::Version(0),
        }
    }
    /// The key was last written at `rev` (optimistic concurrency).
    pub fn mod_revision(key: impl Into<String>, rev: Revision) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::ModRevision(rev),
        }
    }
    pub fn value_equals(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::Value(value.into()),
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
        /// Answer the key's previous state in [`OpResult::Put`] (etcd's `prev_kv`). Writers
        /// that do not look at it turn it off: the store then neither reads nor sends the old
        /// value (a whole event on the hot path).
        prev_kv: bool,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    Get {
        key: String,
    },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: true,
        }
    }
    /// A put whose [`OpResult::Put`] leaves out the previous state (`prev: None`).
    pub fn put_without_prev(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
        }
    }
    pub fn put_with_lease(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease,
            prev_kv: true,
        }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }
}

/// A compare-and-swap transaction: if every compare holds, apply `success`, else `failure`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// The result of one operation of a transaction, in the order of the operations applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `prev`: the key before the put (`None` if it was absent or the op had `prev_kv` off).
    Put {
        prev: Option<KeyValue>,
    },
    Delete {
        deleted: u64,
    },
    Get {
        kv: Option<KeyValue>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// True when every compare held and `success` was applied.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: Revision,
    pub results: Vec<OpResult>,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or updated; `kv` is its new state.
    Put(KeyValue),
    /// The key was deleted (explicitly or by lease expiry); `kv` holds the key, the deleting
    /// revision as `mod_revision`, and an empty value.
    Delete(KeyValue),
}

impl WatchEvent {
    pub fn kv(&self) -> &KeyValue {
        match self {
            WatchEvent::Put(kv) | WatchEvent::Delete(kv) => kv,
        }
    }
}

/// A live watch: changes arrive in revision order. Dropping it cancels the watch.
pub struct Watch {
    pub(crate) rx: tokio::sync::mpsc::Receiver<Result<WatchEvent, StoreError>>,
}

impl Watch {
    /// The next change; `None` once the store shuts down. An `Err` (e.g. the watcher fell too
    /// far behind) ends the watch: re-read the range and start a new watch.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        self.rx.recv().await
    }

    /// Build a watch from a channel; for store implementations outside this crate.
    pub fn from_channel(rx: tokio::sync::mpsc::Receiver<Result<WatchEvent, StoreError>>) -> Self {
        Watch { rx }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    #[error("revision {requested} has been compacted (oldest available: {oldest})")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("watcher fell behind by more than {0} changes and was cancelled")]
    WatcherLagged(usize),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The store cannot be reached or has no quorum right now (etcd down, partitioned, or
    /// without a leader); the request may succeed later. The API answers 503 for it.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store is closed")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store API. Implementations are cheap to share behind `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Read keys under a prefix in ascending key order.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Write one key (optionally attached to a lease); returns the new store revision.
    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision>;

    /// Delete one key; returns how many keys were deleted (0 or 1).
    async fn delete(&self, key: &str) -> Result<u64>;

    /// Delete every key under a prefix; returns how many keys were deleted.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Apply a compare-and-swap transaction atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Watch every change to keys under `prefix` with revision > `after_revision`
    /// (pass the revision of a preceding read to miss nothing; 0 = from now on).
    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<Watch>;

    /// Grant a lease with a time-to-live.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Restart a lease's TTL.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Revoke a lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// The current store revision.
    async fn revision(&self) -> Result<Revision>;
}
