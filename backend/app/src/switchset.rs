//! Switch sets: liveness keys attached to store leases, and the watch that reacts when one
//! lapses. Keepalives (`switchsets/keepalived/<ns>/<entity>`) and check TTLs
//! (`switchsets/eventd/<ns>/<check>/<entity>`) both use them.
//!
//! A switch is one key per watched thing, attached to a lease whose TTL is the allowed
//! silence. Each sign of life only renews the lease (one lease per switch, reused; no key
//! write). When the lease expires the store deletes the key; every backend watching the prefix
//! sees the delete, and the one that wins a create-if-absent transaction re-arming the switch
//! as `dead` (leased again for the same TTL) handles the expiry. The re-armed switch expires
//! again after another TTL, so the handling repeats while the silence lasts. Leases live in
//! the store, so a backend restart loses no pending expiry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_store::{Compare, LeaseId, Op, Store, StoreError, Txn, WatchEvent};
use tokio_util::sync::CancellationToken;

const ALIVE: &[u8] = b"alive";
const DEAD: &[u8] = b"dead";

pub struct Switchset {
    store: Arc<dyn Store>,
    prefix: String,
    /// The lease of each switch and its TTL in seconds. The lock is never held across an
    /// await; callers serialise signs of life per switch (the eventd shards do).
    leases: Mutex<HashMap<String, (LeaseId, u64)>>,
}

impl Switchset {
    /// `prefix` ends with `/`; switch ids are appended to it.
    pub fn new(store: Arc<dyn Store>, prefix: String) -> Self {
        Switchset {
            store,
            prefix,
            leases: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// A sign of life: renew the switch's lease, or (first time, expired lease, changed TTL)
    /// attach the switch to a new one.
    pub async fn alive(&self, id: &str, ttl_secs: u64) -> Result<(), StoreError> {
        let cached = self
            .leases
            .lock()
            .expect("switch lease lock")
            .get(id)
            .copied();
        if let Some((lease, cached_ttl)) = cached {
            if cached_ttl == ttl_secs {
                match self.store.keep_alive(lease).await {
                    Ok(()) => return Ok(()),
                    Err(StoreError::LeaseNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            } else {
                let _ = self.store.revoke_lease(lease).await;
            }
        }
        let lease = self
            .store
            .grant_lease(Duration::from_secs(ttl_secs))
            .await?;
        self.store.put(&self.key(id), ALIVE.to_vec(), lease).await?;
        self.leases
            .lock()
            .expect("switch lease lock")
            .insert(id.to_string(), (lease, ttl_secs));
        Ok(())
    }

    /// Stop watching a switch (its subject was deleted or no longer wants watching).
    pub async fn bury(&self, id: &str) -> Result<(), StoreError> {
        let lease = self.leases.lock().expect("switch lease lock").remove(id);
        self.store.delete(&self.key(id)).await?;
        if let Some((lease, _)) = lease {
            let _ = self.store.revoke_lease(lease).await;
        }
        Ok(())
    }

    /// After an expiry: re-arm the switch as dead for another `ttl_secs`, if no other backend
    /// (or a fresh sign of life) got there first. Only the winner handles the expiry.
    pub async fn lead_expiry(
        &self,
        id: &str,
        ttl_secs: u64,
    ) -> Result<Option<LeaseId>, StoreError> {
        let lease = self
            .store
            .grant_lease(Duration::from_secs(ttl_secs))
            .await?;
        let key = self.key(id);
        let won = self
            .store
            .txn(Txn {
                compares: vec![Compare::absent(key.clone())],
                success: vec![Op::put_with_lease(key, DEAD.to_vec(), lease)],
                failure: vec![],
            })
            .await?
            .succeeded;
        if !won {
            let _ = self.store.revoke_lease(lease).await;
            return Ok(None);
        }
        self.leases.lock().expect("switch lease lock").remove(id);
        Ok(Some(lease))
    }

    /// Revoke a lease obtained from `lead_expiry` (its switch is no longer needed).
    pub async fn release(&self, lease: LeaseId) {
        let _ = self.store.revoke_lease(lease).await;
    }

    /// Watch for lapsed switches until shutdown, calling `on_expiry(id)` off the watch loop
    /// for each (ids are what was passed to `alive`).
    pub async fn watch_expiries<F, Fut>(self: Arc<Self>, shutdown: CancellationToken, on_expiry: F)
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let prefix = self.prefix.clone();
        crate::repo::follow(self.store.clone(), prefix.clone(), shutdown, |change| {
            if let WatchEvent::Delete(kv) = change
                && let Some(id) = kv.key.strip_prefix(&prefix)
            {
                // Off the watch: handling an expiry does several writes.
                tokio::spawn(on_expiry(id.to_string()));
            }
            std::future::ready(())
        })
        .await;
    }
}
