//! The check-request bus: how the scheduler reaches agent sessions on this backend.
//!
//! Each agent session registers under `(namespace, subscription)` topics — its subscriptions
//! plus `entity:<name>` — and receives the check requests published to them. Publishing never
//! blocks: a session whose queue is full misses that request (counted), as a slow agent must
//! not stall the scheduler for everyone. Every backend runs its own bus; requests reach the
//! agents connected to the backend that publishes them (sensu-compat section 4), and the
//! cluster-wide round-robin ring (a later issue) only changes which backend publishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto_spec::v2::CheckRequest;
use tokio::sync::mpsc;

use crate::mailbox::Mailbox;

/// Capacity of one session's queue of pending check requests.
pub const SESSION_QUEUE: usize = 100;

type Topic = (String, String);
/// A session's queue of check requests.
pub type RequestQueue = Arc<Mailbox<Arc<CheckRequest>>>;
/// A registered session: its id and its queue.
type SessionQueue = (u64, RequestQueue);

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Sessions per topic, in registration order; round robin rotates over it.
    topics: HashMap<Topic, Vec<SessionQueue>>,
    /// Round-robin position per topic.
    cursors: HashMap<Topic, usize>,
}

#[derive(Default)]
pub struct CheckBus {
    /// Never held across an await.
    inner: Mutex<Inner>,
    pub dropped: AtomicU64,
    /// Who hears about sessions joining and leaving (the cluster-wide round-robin ring).
    membership: Mutex<Option<mpsc::UnboundedSender<Membership>>>,
}

/// A session joined or left the bus, with the topics it registered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Join {
        namespace: String,
        topics: Vec<String>,
    },
    Leave {
        namespace: String,
        topics: Vec<String>,
    },
}

impl CheckBus {
    /// Hear about every session registering and unregistering from now on (one listener).
    pub fn membership(&self) -> mpsc::UnboundedReceiver<Membership> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.membership.lock().expect("bus membership lock") = Some(tx);
        rx
    }

    fn announce(&self, change: Membership) {
        if let Some(tx) = self
            .membership
            .lock()
            .expect("bus membership lock")
            .as_ref()
        {
            let _ = tx.send(change);
        }
    }
}

/// A session's registration; dropping it unsubscribes the session from every topic.
pub struct BusSubscription {
    bus: Arc<CheckBus>,
    id: u64,
    topics: Vec<Topic>,
    pub requests: RequestQueue,
}

impl Drop for BusSubscription {
    fn drop(&mut self) {
        if let Some((namespace, _)) = self.topics.first() {
            self.bus.announce(Membership::Leave {
                namespace: namespace.clone(),
                topics: self.topics.iter().map(|(_, t)| t.clone()).collect(),
            });
        }
        let mut inner = self.bus.inner.lock().expect("bus lock");
        for topic in &self.topics {
            if let Some(list) = inner.topics.get_mut(topic) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    inner.topics.remove(topic);
                    inner.cursors.remove(topic);
                }
            }
        }
    }
}

impl CheckBus {
    pub fn new() -> Arc<Self> {
        Arc::new(CheckBus::default())
    }

    /// Register a session under `subscriptions` of `namespace`.
    pub fn subscribe(
        self: &Arc<Self>,
        namespace: &str,
        subscriptions: &[String],
    ) -> BusSubscription {
        let queue = Mailbox::new(SESSION_QUEUE);
        let mut inner = self.inner.lock().expect("bus lock");
        inner.next_id += 1;
        let id = inner.next_id;
        let mut topics: Vec<Topic> = Vec::new();
        for sub in subscriptions {
            let topic = (namespace.to_string(), sub.clone());
            if topics.contains(&topic) {
                continue;
            }
            inner
                .topics
                .entry(topic.clone())
                .or_default()
                .push((id, queue.clone()));
            topics.push(topic);
        }
        drop(inner);
        if !topics.is_empty() {
            self.announce(Membership::Join {
                namespace: namespace.to_string(),
                topics: topics.iter().map(|(_, t)| t.clone()).collect(),
            });
        }
        BusSubscription {
            bus: self.clone(),
            id,
            topics,
            requests: queue,
        }
    }

    /// Deliver to every session of the topic; returns how many received it.
    pub fn publish(
        &self,
        namespace: &str,
        subscription: &str,
        request: Arc<CheckRequest>,
    ) -> usize {
        let inner = self.inner.lock().expect("bus lock");
        let topic = (namespace.to_string(), subscription.to_string());
        let mut delivered = 0;
        for (_, queue) in inner.topics.get(&topic).into_iter().flatten() {
            if queue.try_push(request.clone()).is_ok() {
                delivered += 1;
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        delivered
    }

    /// Deliver to one session of the topic, rotating between calls (round robin within this
    /// backend). Returns whether some session took it.
    pub fn publish_one(
        &self,
        namespace: &str,
        subscription: &str,
        request: Arc<CheckRequest>,
    ) -> bool {
        let mut inner = self.inner.lock().expect("bus lock");
        let topic = (namespace.to_string(), subscription.to_string());
        let Some(len) = inner.topics.get(&topic).map(Vec::len) else {
            return false;
        };
        let start = *inner.cursors.get(&topic).unwrap_or(&0);
        for step in 0..len {
            let idx = (start + step) % len;
            let queue = inner.topics[&topic][idx].1.clone();
            if queue.try_push(request.clone()).is_ok() {
                inner.cursors.insert(topic, (idx + 1) % len);
                return true;
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Number of sessions subscribed to a topic on this backend.
    pub fn subscribers(&self, namespace: &str, subscription: &str) -> usize {
        let inner = self.inner.lock().expect("bus lock");
        inner
            .topics
            .get(&(namespace.to_string(), subscription.to_string()))
            .map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(issued: i64) -> Arc<CheckRequest> {
        Arc::new(CheckRequest {
            issued,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn fan_out_and_entity_topics() {
        let bus = CheckBus::new();
        let a = bus.subscribe("default", &["linux".into(), "entity:a".into()]);
        let b = bus.subscribe("default", &["linux".into(), "entity:b".into()]);
        let _other_ns = bus.subscribe("prod", &["linux".into()]);
        assert_eq!(bus.publish("default", "linux", req(1)), 2);
        assert_eq!(bus.publish("default", "entity:b", req(2)), 1);
        assert_eq!(a.requests.recv().await.issued, 1);
        assert_eq!(b.requests.recv().await.issued, 1);
        assert_eq!(b.requests.recv().await.issued, 2);
        assert!(a.requests.try_recv().is_none());
        drop(b);
        assert_eq!(bus.subscribers("default", "linux"), 1);
        assert_eq!(bus.subscribers("default", "entity:b"), 0);
    }

    #[tokio::test]
    async fn round_robin_rotates_and_skips_gone_sessions() {
        let bus = CheckBus::new();
        let mut subs: Vec<_> = (0..3)
            .map(|_| bus.subscribe("default", &["db".into()]))
            .collect();
        for i in 0..6 {
            assert!(bus.publish_one("default", "db", req(i)));
        }
        for s in &mut subs {
            let got: Vec<i64> =
                std::iter::from_fn(|| s.requests.try_recv().map(|r| r.issued)).collect();
            assert_eq!(
                got.len(),
                2,
                "each session runs every third execution: {got:?}"
            );
        }
        subs.remove(1);
        for i in 0..4 {
            assert!(bus.publish_one("default", "db", req(i)));
        }
        let counts: Vec<usize> = subs
            .iter_mut()
            .map(|s| std::iter::from_fn(|| s.requests.try_recv()).count())
            .collect();
        assert_eq!(counts, [2, 2]);
        drop(subs);
        assert!(!bus.publish_one("default", "db", req(9)), "no session left");
    }
}
