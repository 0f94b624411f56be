//! `ClusterRing`: round robin across every backend sharing the store, so exactly one agent
//! runs each execution of a round-robin check wherever the agents are connected.
//!
//! **Membership.** Each backend keeps one store lease of its own (renewed every few seconds)
//! and, for every agent session it holds, an item `rings/<ns>/<sub>/items/<agent>` per
//! subscription, valued with the backend's id and attached to that lease. Items are written
//! when a session joins this backend's bus and deleted when it leaves (only if still this
//! backend's: the agent may already be on another one). A backend that dies takes its items
//! with its lease after `BACKEND_LEASE_TTL`.
//!
//! **Choosing.** Every backend fires the same execution at the same moment (deterministic
//! splay) and asks the ring: the first to get there reads the cursor
//! `rings/<ns>/<sub>/cursors/<check>` (the previous execution's agent), takes the next item
//! in key order (wrapping), and stores `{issued, agent}` with a compare-and-swap; the others
//! read the stored choice for that execution. Every backend then publishes on
//! `entity:<agent>`, and only the backend holding that session delivers it.
//!
//! This differs from Sensu's ring (a trigger key leased for the interval, watched for
//! deletion): an execution is identified by its `issued` time instead, which needs no timer
//! in the store; the scheduler already fires in step on every backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backend_store::{Compare, LeaseId, Op, RangeRequest, StoreError, Txn};
use futures_util::future::BoxFuture;
use proto_spec::v2::CheckRequest;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::publish::RoundRobinRing;
use crate::bus::{CheckBus, Membership};
use crate::keys;
use crate::repo::{Repo, RepoResult, encode};

/// A dead backend's ring items vanish after this long.
pub const BACKEND_LEASE_TTL: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Subscriptions never put in a ring: `entity:<name>` reaches one agent by definition.
const ENTITY_TOPIC: &str = "entity:";

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    issued: i64,
    agent: String,
}

pub struct ClusterRing {
    repo: Repo,
    bus: Arc<CheckBus>,
    /// Unique per backend process: ring items say which backend holds the session.
    backend_id: String,
}

impl ClusterRing {
    pub fn new(repo: Repo, bus: Arc<CheckBus>) -> Arc<Self> {
        Arc::new(ClusterRing {
            repo,
            bus,
            backend_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Keep this backend's sessions in the ring until shutdown: follows the bus's session
    /// joins and leaves, renews the backend lease, and rewrites every item when the lease had
    /// to be granted again (e.g. after the store was unreachable for longer than its TTL).
    pub async fn run_membership(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changes = self.bus.membership();
        // (namespace, subscription, agent) → sessions of this backend with that item.
        let mut held: HashMap<(String, String, String), usize> = HashMap::new();
        let mut lease: Option<LeaseId> = None;
        let mut renew = tokio::time::interval(RENEW_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = renew.tick() => {
                    lease = self.renew(lease, &held).await;
                }
                change = changes.recv() => {
                    let Some(change) = change else { break };
                    let mut pending = vec![change];
                    // Reconnect storms bring many at once: write them together.
                    while let Ok(more) = changes.try_recv() {
                        pending.push(more);
                    }
                    let (joined, left) = apply(&mut held, pending);
                    if lease.is_none() {
                        lease = self.renew(None, &held).await;
                    } else if let Some(id) = lease
                        && let Err(e) = self.write_items(id, &joined).await
                    {
                        tracing::warn!(error = %e, "Cannot add sessions to the round-robin ring");
                        lease = self.renew(None, &held).await;
                    }
                    if let Err(e) = self.remove_items(&left).await {
                        tracing::warn!(error = %e, "Cannot remove sessions from the round-robin ring");
                    }
                }
            }
        }
        // Leaving cleanly: the other backends stop choosing this backend's agents at once.
        if let Some(id) = lease {
            let _ = self.repo.store.revoke_lease(id).await;
        }
    }

    /// Renew the backend lease, or grant a new one and write every held item onto it.
    async fn renew(
        &self,
        lease: Option<LeaseId>,
        held: &HashMap<(String, String, String), usize>,
    ) -> Option<LeaseId> {
        if let Some(id) = lease {
            match self.repo.store.keep_alive(id).await {
                Ok(()) => return Some(id),
                Err(StoreError::LeaseNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot renew the backend's ring lease");
                    return Some(id);
                }
            }
        }
        let id = match self.repo.store.grant_lease(BACKEND_LEASE_TTL).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot obtain a ring lease");
                return None;
            }
        };
        let all: Vec<_> = held.keys().cloned().collect();
        if let Err(e) = self.write_items(id, &all).await {
            tracing::warn!(error = %e, "Cannot write the round-robin ring items");
        }
        Some(id)
    }

    async fn write_items(
        &self,
        lease: LeaseId,
        items: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        for chunk in items.chunks(crate::writer::MAX_BATCH_OPS) {
            let success = chunk
                .iter()
                .map(|(ns, sub, agent)| {
                    Op::put_with_lease(
                        keys::ring_item(ns, sub, agent),
                        self.backend_id.as_bytes().to_vec(),
                        lease,
                    )
                })
                .collect();
            self.repo
                .store
                .txn(Txn {
                    success,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    async fn remove_items(&self, items: &[(String, String, String)]) -> Result<(), StoreError> {
        for (ns, sub, agent) in items {
            let key = keys::ring_item(ns, sub, agent);
            // Only if still ours: the agent may have reconnected to another backend already.
            self.repo
                .store
                .txn(Txn {
                    compares: vec![Compare::value_equals(
                        key.clone(),
                        self.backend_id.as_bytes().to_vec(),
                    )],
                    success: vec![Op::delete(key)],
                    failure: vec![],
                })
                .await?;
        }
        Ok(())
    }

    /// The agent that runs this execution: chosen here, or read from the backend that chose.
    async fn choose(
        &self,
        ns: &str,
        subscription: &str,
        cursor_name: &str,
        request: &CheckRequest,
    ) -> RepoResult<Option<String>> {
        let store = &self.repo.store;
        let cursor_key = keys::ring_cursor(ns, subscription, cursor_name);
        let issued = request.issued;
        for _ in 0..5 {
            let current = store.get(&cursor_key).await?;
            let (previous, revision) = match &current {
                Some(kv) => {
                    let cursor: Option<Cursor> = serde_json::from_slice(&kv.value).ok();
                    if let Some(c) = &cursor {
                        if same_execution(c.issued, issued, request) {
                            return Ok(Some(c.agent.clone()));
                        }
                        if c.issued > issued {
                            // A later execution was already handed out: this one is stale.
                            return Ok(None);
                        }
                    }
                    (cursor.map(|c| c.agent), kv.mod_revision)
                }
                None => (None, 0),
            };
            let prefix = keys::ring_items_prefix(ns, subscription);
            let items = store
                .range(RangeRequest {
                    prefix: prefix.clone(),
                    start: None,
                    limit: 0,
                })
                .await?;
            let agents: Vec<&str> = items
                .kvs
                .iter()
                .filter_map(|kv| kv.key.strip_prefix(&prefix))
                .collect();
            let Some(next) = next_agent(&agents, previous.as_deref()) else {
                return Ok(None);
            };
            let guard = if revision == 0 {
                Compare::absent(cursor_key.clone())
            } else {
                Compare::mod_revision(cursor_key.clone(), revision)
            };
            let cursor = Cursor {
                issued,
                agent: next.to_string(),
            };
            let won = store
                .txn(Txn {
                    compares: vec![guard],
                    success: vec![Op::put(cursor_key.clone(), encode(&cursor))],
                    failure: vec![],
                })
                .await?
                .succeeded;
            if won {
                return Ok(Some(cursor.agent));
            }
            // Another backend chose meanwhile: read its choice.
        }
        Ok(None)
    }
}

/// Track per-item session counts; returns the items that appeared and those that went.
#[allow(clippy::type_complexity)]
fn apply(
    held: &mut HashMap<(String, String, String), usize>,
    changes: Vec<Membership>,
) -> (Vec<(String, String, String)>, Vec<(String, String, String)>) {
    let mut touched: Vec<(String, String, String)> = Vec::new();
    let before: HashMap<_, _> = held.clone();
    for change in changes {
        let (namespace, topics, delta) = match change {
            Membership::Join { namespace, topics } => (namespace, topics, 1i64),
            Membership::Leave { namespace, topics } => (namespace, topics, -1),
        };
        let Some(agent) = topics
            .iter()
            .find_map(|t| t.strip_prefix(ENTITY_TOPIC))
            .map(str::to_string)
        else {
            continue;
        };
        for sub in topics.iter().filter(|t| !t.starts_with(ENTITY_TOPIC)) {
            let item = (namespace.clone(), sub.clone(), agent.clone());
            let count = held.entry(item.clone()).or_default();
            *count = count.saturating_add_signed(delta as isize);
            if *count == 0 {
                held.remove(&item);
            }
            touched.push(item);
        }
    }
    touched.sort();
    touched.dedup();
    let joined = touched
        .iter()
        .filter(|i| !before.contains_key(*i) && held.contains_key(*i))
        .cloned()
        .collect();
    let left = touched
        .into_iter()
        .filter(|i| before.contains_key(i) && !held.contains_key(i))
        .collect();
    (joined, left)
}

/// Two backends firing the same execution may straddle a second: within half an interval
/// (cron: 30 s) of each other, two `issued` times are one execution.
fn same_execution(stored: i64, issued: i64, request: &CheckRequest) -> bool {
    let Some(config) = request.config.as_ref() else {
        return stored == issued;
    };
    let interval = i64::from(config.interval);
    let tolerance = if config.cron.is_empty() {
        (interval - 1) / 2
    } else {
        30
    };
    (stored - issued).abs() <= tolerance.max(0)
}

/// The agent after `previous` in key order, wrapping; the first when there was none.
fn next_agent<'a>(agents: &[&'a str], previous: Option<&str>) -> Option<&'a str> {
    let first = agents.first().copied()?;
    Some(
        previous
            .and_then(|p| agents.iter().copied().find(|a| *a > p))
            .unwrap_or(first),
    )
}

impl RoundRobinRing for ClusterRing {
    fn dispatch<'a>(
        &'a self,
        namespace: &'a str,
        subscription: &'a str,
        check: &'a str,
        request: Arc<CheckRequest>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            // Proxy executions rotate per proxy entity.
            let cursor_name = match request.config.as_ref() {
                Some(c) if !c.proxy_entity_name.is_empty() => {
                    format!("{check}/{}", c.proxy_entity_name)
                }
                _ => check.to_string(),
            };
            match self
                .choose(namespace, subscription, &cursor_name, &request)
                .await
            {
                Ok(Some(agent)) => {
                    let topic = format!("{ENTITY_TOPIC}{agent}");
                    self.bus.publish(namespace, &topic, request) > 0
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, check, subscription, "Round-robin ring unavailable; execution skipped");
                    false
                }
            }
        })
    }
}

/// Feed for tests: lets a caller wait until `n` items are in a ring.
pub async fn ring_size(repo: &Repo, ns: &str, subscription: &str) -> RepoResult<usize> {
    Ok(repo
        .store
        .range(RangeRequest {
            prefix: keys::ring_items_prefix(ns, subscription),
            start: None,
            limit: 0,
        })
        .await?
        .kvs
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_agent_wraps_in_key_order() {
        let agents = ["a", "b", "c"];
        assert_eq!(next_agent(&agents, None), Some("a"));
        assert_eq!(next_agent(&agents, Some("a")), Some("b"));
        assert_eq!(next_agent(&agents, Some("c")), Some("a"));
        // The previous agent left: its successor in key order.
        assert_eq!(next_agent(&agents, Some("bb")), Some("c"));
        assert_eq!(next_agent(&[], Some("a")), None);
    }

    #[test]
    fn membership_counts_sessions_per_item() {
        let mut held = HashMap::new();
        let join = |subs: &[&str]| Membership::Join {
            namespace: "default".into(),
            topics: subs.iter().map(|s| s.to_string()).collect(),
        };
        let leave = |subs: &[&str]| Membership::Leave {
            namespace: "default".into(),
            topics: subs.iter().map(|s| s.to_string()).collect(),
        };
        let (joined, left) = apply(&mut held, vec![join(&["db", "entity:a"])]);
        assert_eq!(joined.len(), 1);
        assert!(left.is_empty());
        // A re-subscription (new topics first, then the old ones dropped) writes only the change.
        let (joined, left) = apply(
            &mut held,
            vec![join(&["db", "web", "entity:a"]), leave(&["db", "entity:a"])],
        );
        assert_eq!(
            joined,
            [("default".to_string(), "web".to_string(), "a".to_string())]
        );
        assert!(left.is_empty());
        let (_, left) = apply(&mut held, vec![leave(&["db", "web", "entity:a"])]);
        assert_eq!(left.len(), 2);
        assert!(held.is_empty());
    }

    #[test]
    fn executions_straddling_a_second_are_one() {
        let mut request = CheckRequest {
            config: Some(Default::default()),
            ..Default::default()
        };
        request.config.as_mut().unwrap().interval = 10;
        assert!(same_execution(100, 101, &request));
        assert!(!same_execution(100, 110, &request));
        request.config.as_mut().unwrap().interval = 1;
        assert!(!same_execution(100, 101, &request));
    }
}
