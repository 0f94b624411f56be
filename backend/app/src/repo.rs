//! Typed access to the store: JSON of proto-spec types under the key layout of `keys`.

use std::sync::Arc;

use std::future::Future;
use std::time::Duration;

use backend_store::{KeyValue, RangeRequest, Revision, Store, StoreError, WatchEvent};
use base64::Engine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// A stored value could not be read back or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored value at {key} is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid continue token")]
    BadContinueToken,
}

pub type RepoResult<T> = Result<T, RepoError>;

/// One page of a typed list.
pub struct Page<T> {
    pub items: Vec<T>,
    /// Token for the next page (`Sensu-Continue`), when there is one.
    pub continue_token: Option<String>,
}

#[derive(Clone)]
pub struct Repo {
    pub store: Arc<dyn Store>,
}

impl Repo {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Repo { store }
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> RepoResult<Option<T>> {
        match self.store.get(key).await? {
            Some(kv) => decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    pub async fn get_with_revision<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> RepoResult<Option<(T, Revision)>> {
        match self.store.get(key).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> RepoResult<Revision> {
        Ok(self.store.put(key, encode(value), 0).await?)
    }

    /// Store `value` at `key` only if nothing is there: `false` when something already is.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> RepoResult<bool> {
        let txn = backend_store::Txn {
            compares: vec![backend_store::Compare::absent(key.to_string())],
            success: vec![backend_store::Op::put(key.to_string(), encode(value))],
            failure: vec![],
        };
        Ok(self.store.txn(txn).await?.succeeded)
    }

    pub async fn exists(&self, key: &str) -> RepoResult<bool> {
        Ok(self.store.get(key).await?.is_some())
    }

    /// One page of values under `prefix`. The continue token is the base64url (no padding)
    /// of the next key, as Sensu's `Sensu-Continue` header.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
        limit: usize,
        continue_token: Option<&str>,
    ) -> RepoResult<Page<T>> {
        let start = match continue_token {
            Some(tok) if !tok.is_empty() => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(tok)
                    .map_err(|_| RepoError::BadContinueToken)?;
                let key = String::from_utf8(raw).map_err(|_| RepoError::BadContinueToken)?;
                if !key.starts_with(prefix) {
                    return Err(RepoError::BadContinueToken);
                }
                Some(key)
            }
            _ => None,
        };
        let resp = self
            .store
            .range(RangeRequest {
                prefix: prefix.to_string(),
                start,
                limit,
            })
            .await?;
        let items = resp
            .kvs
            .iter()
            .map(decode)
            .collect::<RepoResult<Vec<T>>>()?;
        let continue_token = match (resp.more, resp.next_key) {
            (true, Some(next)) => {
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next.as_bytes()))
            }
            _ => None,
        };
        Ok(Page {
            items,
            continue_token,
        })
    }

    /// Every value under `prefix` (for internal walks, not for API pages).
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> RepoResult<Vec<(String, T)>> {
        let resp = self
            .store
            .range(RangeRequest {
                prefix: prefix.to_string(),
                start: None,
                limit: 0,
            })
            .await?;
        resp.kvs
            .iter()
            .map(|kv| Ok((kv.key.clone(), decode(kv)?)))
            .collect()
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // proto-spec types serialise infallibly to JSON (string map keys only, no I/O).
    serde_json::to_vec(value).expect("JSON encoding of a proto-spec value")
}

pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> RepoResult<T> {
    serde_json::from_slice(&kv.value).map_err(|e| RepoError::Corrupt {
        key: kv.key.clone(),
        reason: e.to_string(),
    })
}

/// Follow every change under `prefix` from now on until shutdown, handing each to
/// `on_change` in revision order. A watch that ends with an error (the watcher lagged, the
/// store restarted it) is resumed from the last revision seen, so nothing is skipped while
/// the store still has that history.
pub async fn follow<F, Fut>(
    store: Arc<dyn Store>,
    prefix: String,
    shutdown: CancellationToken,
    on_change: F,
) where
    F: FnMut(WatchEvent) -> Fut,
    Fut: Future<Output = ()>,
{
    follow_from(store, prefix, 0, shutdown, on_change).await
}

/// [`follow`] from the changes after revision `after` (0: from now): a caller that read the
/// prefix at revision `after` misses nothing written since.
pub async fn follow_from<F, Fut>(
    store: Arc<dyn Store>,
    prefix: String,
    mut after: Revision,
    shutdown: CancellationToken,
    mut on_change: F,
) where
    F: FnMut(WatchEvent) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if after == 0 {
            after = store.revision().await.unwrap_or(0);
        }
        let mut watch = match store.watch(&prefix, after).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, prefix = %prefix, "Cannot watch the store; retrying in 1s");
                if matches!(e, StoreError::Compacted { .. }) {
                    after = 0; // the missed history is gone: resume from now
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = watch.next() => n,
            };
            match next {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, prefix = %prefix, "Store watch ended; resuming it");
                    break;
                }
                Some(Ok(change)) => {
                    after = change.kv().mod_revision;
                    on_change(change).await;
                }
            }
        }
    }
}
