//! `EmbeddedStore`: the store on a local redb database, so a single-node Picket needs no etcd.
//!
//! Design, and why:
//!
//! - **Tables.** `kv` maps key bytes to a record (encoding below); `leases` maps a lease id to
//!   its TTL in milliseconds; `lease_keys` (multimap) indexes the keys attached to each lease so
//!   revoking a lease does not scan the whole keyspace; `meta` holds the store revision, the
//!   next lease id and the record format. The revision lives in the same redb transaction as the
//!   keys it describes, so a reopened store continues exactly where the last commit left off.
//! - **Record encoding** (value of the `kv` table): one format byte (`1`), then four big-endian
//!   `i64`s — create_revision, mod_revision, version, lease — then the raw value bytes. A fixed
//!   33-byte header keeps decoding trivial and lets values be arbitrary bytes without escaping;
//!   the format byte leaves room to change the layout later.
//! - **Writers** hold `writer` across begin_write → commit → publish. redb already allows only
//!   one write transaction, but watchers must also *see* commits in revision order, so publishing
//!   happens under the same lock. Every redb call runs on tokio's blocking pool because commits
//!   fsync (file backend) and large ranges take time.
//! - **Watches** are fed from `Shared`, updated right after each commit. Registering a watcher,
//!   replaying the history and publishing new events all happen under the `shared` mutex, so a
//!   watcher sees every event after its start revision exactly once. Each watcher filters on its
//!   own start revision, which covers a commit that is already in redb (and visible to a read)
//!   but not yet published. Watchers never block writers: a full channel ends the watch with
//!   [`StoreError::WatcherLagged`].
//! - **Leases**: TTLs are persisted; deadlines are in memory only, so after a restart every lease
//!   gets a fresh full TTL (as etcd does after a leader change) instead of its keys vanishing
//!   before clients had a chance to send a keep-alive. A background task expires leases; it holds
//!   only a `Weak` to the store so dropping the last `Arc` stops it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::backends::InMemoryBackend;
use redb::{
    Database, MultimapTable, MultimapTableDefinition, ReadTransaction, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, Op, OpResult, RangeRequest,
    RangeResponse, Result, Revision, Store, StoreError, Txn, TxnResponse, Watch, WatchEvent, keys,
};

const KV: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("kv");
const LEASES: TableDefinition<'static, i64, i64> = TableDefinition::new("leases");
const LEASE_KEYS: MultimapTableDefinition<'static, i64, &[u8]> =
    MultimapTableDefinition::new("lease_keys");
const META: TableDefinition<'static, &str, i64> = TableDefinition::new("meta");

const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
const META_NEXT_LEASE: &str = "next_lease";
/// Bump when the table layout or the record encoding changes.
const FORMAT: i64 = 1;
const RECORD_FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4 * 8;

/// The lease-expiry task wakes at least this often, so a lease expires at most this late.
const REAP_INTERVAL: Duration = Duration::from_millis(200);

/// Bounds of the in-memory watch machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// How many recent changes are kept so a watch can start from a past revision. A watch
    /// starting before the oldest kept change gets [`StoreError::Compacted`] and must re-read.
    pub history_limit: usize,
    /// How many undelivered changes a watcher may have queued (on top of the history replayed
    /// when it started) before it is cancelled with [`StoreError::WatcherLagged`].
    pub watch_buffer: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_limit: 10_000,
            watch_buffer: 4_096,
        }
    }
}

/// The default [`Store`]: redb on a local file (or in memory for tests).
///
/// Constructors must run inside a tokio runtime, because lease expiry is a background task on
/// it. Only one `EmbeddedStore` may have a given file open at a time (redb locks it); call
/// [`EmbeddedStore::close`] before reopening a file in the same process.
pub struct EmbeddedStore {
    /// Lets `&self` methods hand an owned handle to the blocking pool.
    me: Weak<EmbeddedStore>,
    /// `None` once closed. Readers and writers hold the read side for the duration of a redb
    /// transaction; `close` takes the write side so it never pulls the database from under one.
    db: RwLock<Option<Database>>,
    /// Serialises write transactions together with publishing their events.
    writer: Mutex<()>,
    shared: Mutex<Shared>,
    /// Lease deadlines. Lock order: `writer` before `timers` or `shared`.
    timers: Mutex<HashMap<LeaseId, LeaseTimer>>,
    closed: AtomicBool,
    /// Wakes the lease-expiry task on close or drop so it exits without waiting a full tick.
    shutdown: Arc<Notify>,
    opts: EmbeddedOptions,
}

/// What watchers need, kept consistent under one mutex.
struct Shared {
    /// Last published revision.
    revision: Revision,
    /// Recent events in revision order, whole revisions only.
    history: VecDeque<WatchEvent>,
    /// Every event with a revision greater than this is still in `history`.
    history_start: Revision,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: Vec<u8>,
    after: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

impl Watcher {
    /// Offers one event; false when the watcher is gone (closed or lagged) and must be dropped.
    fn offer(&self, event: &WatchEvent, lag_limit: usize) -> bool {
        let kv = event.kv();
        if kv.mod_revision <= self.after || !kv.key.as_bytes().starts_with(&self.prefix) {
            return !self.tx.is_closed();
        }
        // Only this (publishing) side sends, so capacity cannot shrink under us; the last slot
        // is kept for the error so the receiver learns why its watch ended.
        if self.tx.capacity() <= 1 {
            let _ = self.tx.try_send(Err(StoreError::WatcherLagged(lag_limit)));
            return false;
        }
        self.tx.try_send(Ok(event.clone())).is_ok()
    }
}

#[derive(Debug, Clone, Copy)]
struct LeaseTimer {
    ttl: Duration,
    deadline: Instant,
}

impl EmbeddedStore {
    /// Open (or create) the store in a database file, creating its parent directories.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::open`] with non-default watch bounds.
    pub fn open_with(path: &Path, opts: EmbeddedOptions) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| backend(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::builder()
            .create(path)
            .map_err(|e| backend(format!("opening {}: {e}", path.display())))?;
        Self::start(db, opts)
    }

    /// A store that lives only in memory; for tests and throwaway backends.
    pub fn in_memory() -> Result<Arc<Self>> {
        Self::in_memory_with(EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::in_memory`] with non-default watch bounds.
    pub fn in_memory_with(opts: EmbeddedOptions) -> Result<Arc<Self>> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .be()?;
        Self::start(db, opts)
    }

    /// Close the database now: later calls fail with [`StoreError::Closed`], watches end, the
    /// lease-expiry task stops and the file is released (so it can be reopened). Dropping the
    /// last `Arc` does the same, but only once every in-flight call has finished.
    pub async fn close(&self) {
        let Some(me) = self.me.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || me.close_blocking()).await;
    }

    fn start(db: Database, opts: EmbeddedOptions) -> Result<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            backend("EmbeddedStore must be opened inside a tokio runtime (lease expiry runs on it)")
        })?;
        let (revision, leases) = init(&db)?;
        let now = Instant::now();
        let timers = leases
            .into_iter()
            .map(|(id, ttl_ms)| {
                let ttl = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(1));
                (
                    id,
                    LeaseTimer {
                        ttl,
                        deadline: now + ttl,
                    },
                )
            })
            .collect();
        let shutdown = Arc::new(Notify::new());
        let store = Arc::new_cyclic(|me| EmbeddedStore {
            me: me.clone(),
            db: RwLock::new(Some(db)),
            writer: Mutex::new(()),
            shared: Mutex::new(Shared {
                revision,
                history: VecDeque::new(),
                history_start: revision,
                watchers: Vec::new(),
            }),
            timers: Mutex::new(timers),
            closed: AtomicBool::new(false),
            shutdown: shutdown.clone(),
            opts,
        });
        runtime.spawn(expire_leases(Arc::downgrade(&store), shutdown));
        Ok(store)
    }

    fn close_blocking(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _writer = lock(&self.writer);
        let db = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(db) = db
            && let Err(e) = db.close()
        {
            tracing::warn!(error = %e, "closing the embedded store failed");
        }
        {
            let mut shared = lock(&self.shared);
            // Dropping the senders ends every watch with `None`.
            shared.watchers.clear();
            shared.history.clear();
        }
        lock(&self.timers).clear();
        self.shutdown.notify_one();
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `f` on the blocking pool: redb calls block (fsync, page reads).
    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&EmbeddedStore) -> Result<R> + Send + 'static,
    {
        self.check_open()?;
        let me = self.me.upgrade().ok_or(StoreError::Closed)?;
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| backend(format!("store task failed: {e}")))?
    }

    fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R>) -> Result<R> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let txn = db.begin_read().be()?;
        f(&txn)
    }

    /// Runs `f` in one redb write transaction and publishes its changes. Returns `f`'s output
    /// and the store revision after the transaction. When `f` fails nothing is applied.
    fn write<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<(R, Revision)> {
        let _writer = lock(&self.writer);
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let txn = db.begin_write().be()?;
        let (out, events, revision, dirty) = {
            let mut tx = Tx::open(&txn)?;
            let out = f(&mut tx)?;
            let revision = tx.finish()?;
            (out, std::mem::take(&mut tx.events), revision, tx.dirty)
        };
        if dirty {
            txn.commit().be()?;
        } else {
            txn.abort().be()?;
        }
        if !events.is_empty() {
            self.publish(revision, events);
        }
        Ok((out, revision))
    }

    fn publish(&self, revision: Revision, events: Vec<WatchEvent>) {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        shared.revision = revision;
        let lag_limit = self.opts.watch_buffer;
        for event in events {
            shared.watchers.retain(|w| w.offer(&event, lag_limit));
            shared.history.push_back(event);
        }
        while shared.history.len() > self.opts.history_limit {
            let Some(oldest) = shared.history.pop_front() else {
                break;
            };
            // Drop the whole revision: a watch must never get half of a transaction.
            let dropped = oldest.kv().mod_revision;
            while shared
                .history
                .front()
                .is_some_and(|e| e.kv().mod_revision == dropped)
            {
                shared.history.pop_front();
            }
            shared.history_start = dropped;
        }
    }

    fn get_blocking(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(|txn| {
            let kv = txn.open_table(KV).be()?;
            let found = kv.get(key.as_bytes()).be()?;
            found.map(|v| decode(key.to_owned(), v.value())).transpose()
        })
    }

    fn range_blocking(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let start = match &req.start {
            Some(start) if !start.starts_with(&req.prefix) => {
                return Err(StoreError::InvalidRequest(format!(
                    "range start {start:?} is not under prefix {:?}",
                    req.prefix
                )));
            }
            Some(start) => start.as_bytes(),
            None => req.prefix.as_bytes(),
        };
        let end = keys::prefix_end(&req.prefix);
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (
            Bound::Included(start),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        self.read(|txn| {
            let revision = stored_revision(&txn.open_table(META).be()?)?;
            let table = txn.open_table(KV).be()?;
            let mut kvs = Vec::new();
            let mut next_key = None;
            for entry in table.range::<&[u8]>(bounds).be()? {
                let (key, value) = entry.be()?;
                let key = key_string(key.value())?;
                if req.limit != 0 && kvs.len() == req.limit {
                    next_key = Some(key);
                    break;
                }
                kvs.push(decode(key, value.value())?);
            }
            Ok(RangeResponse {
                kvs,
                more: next_key.is_some(),
                next_key,
                revision,
            })
        })
    }

    fn txn_blocking(&self, txn: Txn) -> Result<TxnResponse> {
        let ((succeeded, results), revision) = self.write(|tx| {
            let mut succeeded = true;
            for compare in &txn.compares {
                if !compare_holds(tx.get(&compare.key)?.as_ref(), compare) {
                    succeeded = false;
                    break;
                }
            }
            let ops = if succeeded { txn.success } else { txn.failure };
            let results = ops
                .into_iter()
                .map(|op| tx.apply(op))
                .collect::<Result<Vec<_>>>()?;
            Ok((succeeded, results))
        })?;
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
        })
    }

    fn grant_blocking(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl_ms = i64::try_from(ttl.as_millis())
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| StoreError::InvalidRequest(format!("invalid lease TTL {ttl:?}")))?;
        let (id, _) = self.write(|tx| {
            let id = tx.meta.get(META_NEXT_LEASE).be()?.map_or(1, |g| g.value());
            tx.meta.insert(META_NEXT_LEASE, id + 1).be()?;
            tx.leases.insert(id, ttl_ms).be()?;
            tx.dirty = true;
            Ok(id)
        })?;
        let ttl = Duration::from_millis(ttl_ms.unsigned_abs());
        lock(&self.timers).insert(
            id,
            LeaseTimer {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        Ok(id)
    }

    /// Revokes a lease and deletes its keys in one revision. With `only_if_expired` (the expiry
    /// task) a lease that was kept alive meanwhile, or is already gone, is left alone.
    fn revoke_blocking(&self, id: LeaseId, only_if_expired: bool) -> Result<()> {
        // The closure answers whether the lease is gone, i.e. whether to forget its timer.
        let (gone, _) = self.write(|tx| {
            if only_if_expired
                && lock(&self.timers)
                    .get(&id)
                    .is_some_and(|t| t.deadline > Instant::now())
            {
                return Ok(false);
            }
            if tx.leases.remove(id).be()?.is_none() {
                return if only_if_expired {
                    Ok(true)
                } else {
                    Err(StoreError::LeaseNotFound(id))
                };
            }
            tx.dirty = true;
            let keys = tx
                .lease_keys
                .remove_all(id)
                .be()?
                .map(|k| k.map(|k| k.value().to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .be()?;
            for key in keys {
                let key = key_string(&key)?;
                // The index is kept in step with the records; the check guards against a key
                // that moved to another lease being deleted with this one.
                if tx.get(&key)?.is_some_and(|kv| kv.lease == id) {
                    tx.delete(&key)?;
                }
            }
            Ok(true)
        })?;
        if gone {
            lock(&self.timers).remove(&id);
        }
        Ok(())
    }

    fn keep_alive_now(&self, id: LeaseId) -> Result<()> {
        self.check_open()?;
        let now = Instant::now();
        match lock(&self.timers).get_mut(&id) {
            // A lease past its deadline is as good as expired, even if not yet reaped.
            Some(timer) if timer.deadline > now => {
                timer.deadline = now + timer.ttl;
                Ok(())
            }
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    fn watch_now(&self, prefix: &str, after_revision: Revision) -> Result<Watch> {
        if after_revision < 0 {
            return Err(StoreError::InvalidRequest(format!(
                "negative watch revision {after_revision}"
            )));
        }
        self.check_open()?;
        let mut shared = lock(&self.shared);
        let after = if after_revision == 0 {
            shared.revision
        } else {
            after_revision
        };
        if after < shared.history_start {
            return Err(StoreError::Compacted {
                requested: after + 1,
                oldest: shared.history_start + 1,
            });
        }
        let prefix = prefix.as_bytes().to_vec();
        let replay: Vec<&WatchEvent> = shared
            .history
            .iter()
            .filter(|e| e.kv().mod_revision > after && e.kv().key.as_bytes().starts_with(&prefix))
            .collect();
        // Room for the replay, the lag allowance, and the final lag error.
        let (tx, rx) = mpsc::channel(replay.len() + self.opts.watch_buffer + 1);
        for event in replay {
            tx.try_send(Ok(event.clone()))
                .map_err(|e| backend(format!("watch replay: {e}")))?;
        }
        shared.watchers.retain(|w| !w.tx.is_closed());
        shared.watchers.push(Watcher { prefix, after, tx });
        Ok(Watch { rx })
    }

    /// Leases past their deadline.
    fn expired_leases(&self, now: Instant) -> Vec<LeaseId> {
        lock(&self.timers)
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How long the expiry task may sleep.
    fn next_expiry_check(&self, now: Instant) -> Duration {
        let next = lock(&self.timers).values().map(|t| t.deadline).min();
        next.map_or(REAP_INTERVAL, |d| d.saturating_duration_since(now))
            .clamp(Duration::from_millis(10), REAP_INTERVAL)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

/// Expires leases until the store is closed or dropped. Holds the store only while working, so
/// it never keeps a dropped store (and its file lock) alive for more than one pass.
async fn expire_leases(store: Weak<EmbeddedStore>, shutdown: Arc<Notify>) {
    loop {
        let wait = {
            let Some(store) = store.upgrade() else { return };
            if store.closed.load(Ordering::SeqCst) {
                return;
            }
            let expired = store.expired_leases(Instant::now());
            if !expired.is_empty() {
                let worker = store.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    for id in expired {
                        if let Err(e) = worker.revoke_blocking(id, true) {
                            tracing::warn!(lease = id, error = %e, "expiring lease failed");
                        }
                    }
                })
                .await;
                if outcome.is_err() {
                    return;
                }
            }
            store.next_expiry_check(Instant::now())
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.notified() => {}
        }
    }
}

/// Creates the tables, checks the format, and deletes keys whose lease no longer exists.
/// Returns the store revision and the persisted leases with their TTL in milliseconds.
fn init(db: &Database) -> Result<(Revision, HashMap<LeaseId, i64>)> {
    let txn = db.begin_write().be()?;
    let (revision, leases) = {
        let mut tx = Tx::open(&txn)?;
        let format = tx.meta.get(META_FORMAT).be()?.map(|g| g.value());
        match format {
            Some(FORMAT) => {}
            None => {
                tx.meta.insert(META_FORMAT, FORMAT).be()?;
                tx.meta.insert(META_REVISION, tx.rev - 1).be()?;
            }
            Some(other) => {
                return Err(backend(format!(
                    "store format {other} is not supported (expected {FORMAT})"
                )));
            }
        }
        let mut leases = HashMap::new();
        for entry in tx.leases.iter().be()? {
            let (id, ttl) = entry.be()?;
            leases.insert(id.value(), ttl.value());
        }
        let mut orphans = Vec::new();
        for entry in tx.kv.iter().be()? {
            let (key, value) = entry.be()?;
            let lease = decode_lease(value.value())?;
            if lease != 0 && !leases.contains_key(&lease) {
                orphans.push(key_string(key.value())?);
            }
        }
        for key in orphans {
            tx.delete(&key)?;
        }
        let mut stale = HashSet::new();
        for entry in tx.lease_keys.iter().be()? {
            let (id, _) = entry.be()?;
            if !leases.contains_key(&id.value()) {
                stale.insert(id.value());
            }
        }
        for id in stale {
            tx.lease_keys.remove_all(id).be()?;
        }
        // No watcher can exist yet, so the orphan deletions need no events.
        (tx.finish()?, leases)
    };
    txn.commit().be()?;
    Ok((revision, leases))
}

/// The tables of one write transaction and the changes it made so far.
struct Tx<'t> {
    kv: Table<'t, &'static [u8], &'static [u8]>,
    leases: Table<'t, i64, i64>,
    lease_keys: MultimapTable<'t, i64, &'static [u8]>,
    meta: Table<'t, &'static str, i64>,
    /// The revision every change of this transaction carries.
    rev: Revision,
    events: Vec<WatchEvent>,
    /// Something was written (a key, or lease bookkeeping that does not bump the revision).
    dirty: bool,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        let meta = txn.open_table(META).be()?;
        let rev = stored_revision(&meta)? + 1;
        Ok(Tx {
            kv: txn.open_table(KV).be()?,
            leases: txn.open_table(LEASES).be()?,
            lease_keys: txn.open_multimap_table(LEASE_KEYS).be()?,
            meta,
            rev,
            events: Vec::new(),
            dirty: false,
        })
    }

    /// Records the new revision if any key changed; returns the revision after the transaction.
    fn finish(&mut self) -> Result<Revision> {
        if self.events.is_empty() {
            return Ok(self.rev - 1);
        }
        self.meta.insert(META_REVISION, self.rev).be()?;
        self.dirty = true;
        Ok(self.rev)
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let found = self.kv.get(key.as_bytes()).be()?;
        found.map(|v| decode(key.to_owned(), v.value())).transpose()
    }

    fn put(&mut self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Option<KeyValue>> {
        if key.is_empty() {
            return Err(StoreError::InvalidRequest("empty key".into()));
        }
        if lease != 0 && self.leases.get(lease).be()?.is_none() {
            return Err(StoreError::LeaseNotFound(lease));
        }
        let prev = self.get(key)?;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.as_ref().map_or(self.rev, |p| p.create_revision),
            mod_revision: self.rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        self.kv
            .insert(key.as_bytes(), encode(&kv).as_slice())
            .be()?;
        if let Some(prev) = &prev
            && prev.lease != 0
            && prev.lease != lease
        {
            self.lease_keys.remove(prev.lease, key.as_bytes()).be()?;
        }
        if lease != 0 {
            self.lease_keys.insert(lease, key.as_bytes()).be()?;
        }
        self.events.push(WatchEvent::Put(kv));
        self.dirty = true;
        Ok(prev)
    }

    fn delete(&mut self, key: &str) -> Result<bool> {
        let removed = self
            .kv
            .remove(key.as_bytes())
            .be()?
            .map(|v| decode_lease(v.value()));
        let Some(lease) = removed.transpose()? else {
            return Ok(false);
        };
        if lease != 0 {
            self.lease_keys.remove(lease, key.as_bytes()).be()?;
        }
        // Like etcd: a delete event carries only the key and the deleting revision.
        self.events.push(WatchEvent::Delete(KeyValue {
            key: key.to_owned(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: self.rev,
            version: 0,
            lease: 0,
        }));
        self.dirty = true;
        Ok(true)
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<u64> {
        let end = keys::prefix_end(prefix);
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (
            Bound::Included(prefix.as_bytes()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut doomed = Vec::new();
        for entry in self.kv.range::<&[u8]>(bounds).be()? {
            doomed.push(key_string(entry.be()?.0.value())?);
        }
        for key in &doomed {
            self.delete(key)?;
        }
        Ok(doomed.len() as u64)
    }

    fn apply(&mut self, op: Op) -> Result<OpResult> {
        Ok(match op {
            Op::Put { key, value, lease } => OpResult::Put {
                prev: self.put(&key, value, lease)?,
            },
            Op::Delete { key } => OpResult::Delete {
                deleted: u64::from(self.delete(&key)?),
            },
            Op::DeletePrefix { prefix } => OpResult::Delete {
                deleted: self.delete_prefix(&prefix)?,
            },
            Op::Get { key } => OpResult::Get {
                kv: self.get(&key)?,
            },
        })
    }
}

fn compare_holds(kv: Option<&KeyValue>, compare: &Compare) -> bool {
    let ordering = match (&compare.target, kv) {
        // As in etcd, a missing key fails every value comparison, `NotEqual` included.
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(want), Some(kv)) => kv.value.as_slice().cmp(want.as_slice()),
        (CompareTarget::Version(want), kv) => kv.map_or(0, |kv| kv.version).cmp(want),
        (CompareTarget::ModRevision(want), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(want),
        (CompareTarget::CreateRevision(want), kv) => {
            kv.map_or(0, |kv| kv.create_revision).cmp(want)
        }
    };
    match compare.op {
        CompareOp::Equal => ordering.is_eq(),
        CompareOp::NotEqual => ordering.is_ne(),
        CompareOp::Greater => ordering.is_gt(),
        CompareOp::Less => ordering.is_lt(),
    }
}

fn stored_revision(meta: &impl ReadableTable<&'static str, i64>) -> Result<Revision> {
    Ok(meta.get(META_REVISION).be()?.map_or(1, |g| g.value()))
}

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + kv.value.len());
    out.push(RECORD_FORMAT);
    for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&kv.value);
    out
}

fn header_field(bytes: &[u8], index: usize) -> Result<i64> {
    if bytes.len() < HEADER_LEN || bytes[0] != RECORD_FORMAT {
        return Err(backend("corrupt record in the kv table"));
    }
    let start = 1 + index * 8;
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[start..start + 8]);
    Ok(i64::from_be_bytes(field))
}

fn decode(key: String, bytes: &[u8]) -> Result<KeyValue> {
    Ok(KeyValue {
        key,
        create_revision: header_field(bytes, 0)?,
        mod_revision: header_field(bytes, 1)?,
        version: header_field(bytes, 2)?,
        lease: header_field(bytes, 3)?,
        value: bytes[HEADER_LEN..].to_vec(),
    })
}

fn decode_lease(bytes: &[u8]) -> Result<LeaseId> {
    header_field(bytes, 3)
}

fn key_string(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| backend("non-UTF-8 key in the kv table"))
}

fn backend(message: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(message.to_string())
}

/// Maps redb's many error types to `StoreError::Backend` without making them part of our API.
trait OrBackend<T> {
    fn be(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrBackend<T> for Result<T, E> {
    fn be(self) -> Result<T> {
        self.map_err(backend)
    }
}

/// A poisoned lock only means another thread panicked mid-update of in-memory bookkeeping;
/// the durable state is in redb, so carrying on beats cascading panics.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |s| s.get_blocking(&key)).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.blocking(move |s| s.range_blocking(&req)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        let key = key.to_owned();
        self.blocking(move |s| Ok(s.write(|tx| tx.put(&key, value, lease))?.1))
            .await
    }

    async fn delete(&self, key: &str) -> Result<u64> {
        let key = key.to_owned();
        self.blocking(move |s| Ok(u64::from(s.write(|tx| tx.delete(&key))?.0)))
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.blocking(move |s| Ok(s.write(|tx| tx.delete_prefix(&prefix))?.0))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.blocking(move |s| s.txn_blocking(txn)).await
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<Watch> {
        self.watch_now(prefix, after_revision)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.blocking(move |s| s.grant_blocking(ttl)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.keep_alive_now(lease)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |s| s.revoke_blocking(lease, false))
            .await
    }

    async fn revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(lock(&self.shared).revision)
    }
}
