//! `BatchWriter`: the write economy of the hot path. Concurrent small writes (events, entity
//! states) are grouped into one store transaction, so the store sees one request per batch
//! instead of one per write.
//!
//! Sensu Go wrote every event with its own etcd request and events were ~95 % of its etcd
//! load; etcd accepts up to 128 operations and 1.5 MiB in one transaction, and a transaction
//! costs about what a single put costs (one raft proposal, one fsync). So writes queue here
//! and one task sends them in batches: while a batch is in flight the next one fills up (group
//! commit), so batches grow with the load and an idle backend still writes at once.
//!
//! Each write carries its own compares (e.g. "the event key is still at the revision I read").
//! A batch is one transaction whose compares are all the writes' compares: when it fails, some
//! write's compare did not hold, so every write of the batch is retried alone and only the
//! ones whose compare fails report [`Written::Conflict`]. Conflicts are rare (another backend
//! changed the same key), so the fallback costs little.

use std::collections::HashSet;
use std::sync::Arc;

use backend_store::{Compare, Op, Revision, Store, StoreError, Txn};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;

/// etcd's default `--max-txn-ops`.
pub const MAX_BATCH_OPS: usize = 128;
/// Keys and values of one batch stay under this, well inside etcd's default 1.5 MiB request
/// limit (the rest is protobuf framing and compares).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Batches in flight at once: two keep the store busy while the next batch fills.
const IN_FLIGHT: usize = 2;
/// Writes waiting for a batch; a full queue makes writers wait (back-pressure to the shards).
const QUEUE: usize = 4096;

/// The outcome of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Applied at this store revision.
    At(Revision),
    /// A compare did not hold; nothing was written.
    Conflict,
}

struct Pending {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    bytes: usize,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

impl Pending {
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().filter_map(|op| match op {
            Op::Put { key, .. } | Op::Delete { key } => Some(key.as_str()),
            _ => None,
        })
    }
}

#[derive(Clone)]
pub struct BatchWriter {
    tx: mpsc::Sender<Pending>,
}

impl BatchWriter {
    /// Start the batching task (it ends when the last writer handle is dropped).
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, metrics, rx));
        BatchWriter { tx }
    }

    /// Apply `ops` if every compare holds, in some batch with other writes. Only puts and
    /// single-key deletes belong here (one key at most once per write).
    pub async fn write(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<Written, StoreError> {
        let bytes = compares.iter().map(|c| c.key.len() + 16).sum::<usize>()
            + ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value, .. } => key.len() + value.len(),
                    Op::Delete { key } | Op::Get { key } => key.len(),
                    Op::DeletePrefix { prefix } => prefix.len(),
                })
                .sum::<usize>();
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                compares,
                ops,
                bytes,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait for a free slot before filling the batch, so it fills while others fly.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH_OPS);
        batch.push(first);
        let mut ops = batch[0].ops.len();
        let mut bytes = batch[0].bytes;
        let mut keys: HashSet<String> = batch[0].keys().map(str::to_string).collect();
        while let Ok(next) = rx.try_recv() {
            // etcd refuses a transaction that touches a key twice; such a write starts the
            // next batch, as does one that would overflow the limits.
            let clash = next.keys().any(|k| keys.contains(k));
            if clash || ops + next.ops.len() > MAX_BATCH_OPS || bytes + next.bytes > MAX_BATCH_BYTES
            {
                carry = Some(next);
                break;
            }
            ops += next.ops.len();
            bytes += next.bytes;
            keys.extend(next.keys().map(str::to_string));
            batch.push(next);
        }
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            commit(&*store, &metrics, batch).await;
            drop(permit);
        });
    }
}

async fn commit(store: &dyn Store, metrics: &Metrics, batch: Vec<Pending>) {
    Metrics::inc(&metrics.store_write_batches_total);
    metrics
        .store_batched_writes_total
        .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    if batch.len() == 1 {
        let single = batch.into_iter().next().expect("one write");
        let result = apply_one(store, single.compares, single.ops).await;
        let _ = single.reply.send(result);
        return;
    }
    // The ops are cloned, values and all: a failed batch is retried write by write.
    let mut compares = Vec::with_capacity(batch.iter().map(|p| p.compares.len()).sum());
    let mut success = Vec::with_capacity(batch.iter().map(|p| p.ops.len()).sum());
    for p in &batch {
        compares.extend_from_slice(&p.compares);
        success.extend_from_slice(&p.ops);
    }
    let txn = Txn {
        compares,
        success,
        failure: vec![],
    };
    match store.txn(txn).await {
        Ok(resp) if resp.succeeded => {
            for p in batch {
                let _ = p.reply.send(Ok(Written::At(resp.revision)));
            }
        }
        Ok(_) | Err(StoreError::InvalidRequest(_)) => {
            // Some compare failed (or the store found the batch too large): each write on
            // its own tells which.
            Metrics::inc(&metrics.store_write_batch_retries_total);
            for p in batch {
                let result = apply_one(store, p.compares, p.ops).await;
                let _ = p.reply.send(result);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for p in batch {
                let _ = p.reply.send(Err(same_error(&e, &message)));
            }
        }
    }
}

async fn apply_one(
    store: &dyn Store,
    compares: Vec<Compare>,
    ops: Vec<Op>,
) -> Result<Written, StoreError> {
    let resp = store
        .txn(Txn {
            compares,
            success: ops,
            failure: vec![],
        })
        .await?;
    Ok(if resp.succeeded {
        Written::At(resp.revision)
    } else {
        Written::Conflict
    })
}

/// `StoreError` is not `Clone`: rebuild the variants callers tell apart.
fn same_error(e: &StoreError, message: &str) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::LeaseNotFound(id) => StoreError::LeaseNotFound(*id),
        StoreError::Closed => StoreError::Closed,
        _ => StoreError::Backend(message.to_string()),
    }
}
