//! Silencing (sensu-compat 2.5): which silenced entries apply to an event, clearing
//! `expire_on_resolve` entries on resolution, and removing expired entries.
//!
//! Entries change rarely and are read for every event, so each backend keeps them in memory,
//! reloaded whenever the store's `silenced` prefix changes (a watch), instead of a store read
//! per event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use proto_spec::v2::silenced::SILENCED_WILDCARD;
use proto_spec::v2::{Event, Silenced};
use tokio_util::sync::CancellationToken;

use crate::keys;
use crate::repo::{Repo, RepoResult};
use crate::timefmt::now_unix;

/// How often expired entries are deleted from the store.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct Silences {
    repo: Repo,
    /// Entries by namespace. Never locked across an await.
    entries: RwLock<HashMap<String, Vec<Silenced>>>,
}

impl Silences {
    pub fn new(repo: Repo) -> Arc<Self> {
        Arc::new(Silences {
            repo,
            entries: RwLock::new(HashMap::new()),
        })
    }

    /// Re-read every entry.
    pub async fn reload(&self) -> RepoResult<()> {
        let all = self
            .repo
            .list_all::<Silenced>(&keys::resources_prefix("silenced", None))
            .await?;
        let mut by_ns: HashMap<String, Vec<Silenced>> = HashMap::new();
        for (_, entry) in all {
            by_ns
                .entry(entry.metadata.namespace.clone())
                .or_default()
                .push(entry);
        }
        *self.entries.write().expect("silences lock") = by_ns;
        Ok(())
    }

    /// Names of the entries silencing `event` now, sorted.
    pub fn matching(&self, event: &Event, now: i64) -> Vec<String> {
        let (Some(entity), Some(check)) = (&event.entity, &event.check) else {
            return Vec::new();
        };
        let entries = self.entries.read().expect("silences lock");
        let Some(candidates) = entries.get(event.namespace()) else {
            return Vec::new();
        };
        let mut subscriptions = vec![format!("entity:{}", entity.metadata.name)];
        if !check.config.proxy_entity_name.is_empty() {
            subscriptions.extend(entity.subscriptions().iter().cloned());
        } else {
            let own = entity.subscriptions();
            subscriptions.extend(
                check
                    .config
                    .subscriptions
                    .iter()
                    .filter(|s| own.contains(s))
                    .cloned(),
            );
        }
        let wild = |field: &str, value: &str| {
            field.is_empty() || field == SILENCED_WILDCARD || field == value
        };
        let mut names: Vec<String> = candidates
            .iter()
            .filter(|s| !(s.expire_at > 0 && s.expire_at <= now) && s.begin <= now)
            .filter(|s| {
                wild(&s.check, check.name())
                    && subscriptions.iter().any(|sub| wild(&s.subscription, sub))
            })
            .map(|s| s.metadata.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// On a resolution, delete the entries among `names` that expire on resolve; returns the
    /// names deleted.
    pub async fn clear_on_resolve(&self, ns: &str, names: &[String]) -> RepoResult<Vec<String>> {
        let to_clear: Vec<String> = {
            let entries = self.entries.read().expect("silences lock");
            entries
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|s| s.expire_on_resolve && names.contains(&s.metadata.name))
                .map(|s| s.metadata.name.clone())
                .collect()
        };
        for name in &to_clear {
            self.repo
                .store
                .delete(&keys::resource("silenced", ns, name))
                .await?;
        }
        if !to_clear.is_empty() {
            self.forget(ns, &to_clear);
        }
        Ok(to_clear)
    }

    fn forget(&self, ns: &str, names: &[String]) {
        if let Some(list) = self.entries.write().expect("silences lock").get_mut(ns) {
            list.retain(|s| !names.contains(&s.metadata.name));
        }
    }

    /// Delete expired entries from the store.
    async fn sweep(&self) -> RepoResult<()> {
        let now = now_unix();
        let expired: Vec<(String, String)> = {
            let entries = self.entries.read().expect("silences lock");
            entries
                .values()
                .flatten()
                .filter(|s| s.expire_at > 0 && s.expire_at <= now)
                .map(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()))
                .collect()
        };
        for (ns, name) in expired {
            self.repo
                .store
                .delete(&keys::resource("silenced", &ns, &name))
                .await?;
            self.forget(&ns, std::slice::from_ref(&name));
        }
        Ok(())
    }

    /// Keep the cache current (watch) and sweep expired entries until shutdown. The sweep
    /// also reloads, which repairs the cache if a watch ever had to skip history.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let sweeper = {
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    if let Err(e) = this.reload().await {
                        tracing::error!(error = %e, "Cannot read silenced entries");
                    }
                    if let Err(e) = this.sweep().await {
                        tracing::warn!(error = %e, "Cannot delete expired silenced entries");
                    }
                }
            })
        };
        let prefix = keys::resources_prefix("silenced", None);
        let this = self.clone();
        crate::repo::follow(self.repo.store.clone(), prefix, shutdown, |_| {
            let this = this.clone();
            async move {
                if let Err(e) = this.reload().await {
                    tracing::error!(error = %e, "Cannot reload silenced entries");
                }
            }
        })
        .await;
        sweeper.abort();
    }
}
