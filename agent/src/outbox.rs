//! The bounded queue of events waiting for the backend.
//!
//! Capacity 10 like Sensu's send queue. Policy when full: the **oldest** queued event is
//! dropped (and counted) so that `push` never blocks its producer and the freshest results
//! win. Keepalives never go through this queue: the session task writes them directly to the
//! socket, so a keepalive never waits behind queued events (Sensu's agent could delay its
//! keepalive behind a full queue and be declared dead while busy).
//!
//! Events stay queued while the agent is disconnected and are sent once the next session has
//! sent its first keepalive. Nothing leaves the queue silently: every drop is logged (with the
//! event's check and entity) and counted in [`Outbox::dropped`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto_spec::v2::Event;
use tokio::sync::Notify;

/// Sensu's agent send-queue capacity.
pub const DEFAULT_CAPACITY: usize = 10;

/// A cloneable handle to the queue: producers `push`, the session task takes.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // A std Mutex: it is held only for a push or a pop, never across an `.await`.
    queue: Mutex<VecDeque<Event>>,
    capacity: usize,
    ready: Notify,
    dropped: AtomicU64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(DEFAULT_CAPACITY)
    }
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                queue: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity: capacity.max(1),
                ready: Notify::new(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queue an event; when the queue is full the oldest event is dropped and returned.
    pub fn push(&self, event: Event) -> Option<Event> {
        let dropped = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.inner.capacity {
                q.pop_front()
            } else {
                None
            };
            q.push_back(event);
            dropped
        };
        if let Some(old) = &dropped {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                capacity = self.inner.capacity,
                check = old.check_name(),
                entity = old.entity_name(),
                "Outgoing queue full; dropped the oldest event"
            );
        }
        self.inner.ready.notify_one();
        dropped
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Wait for the next event. Cancel-safe: an event is only removed in the poll that
    /// returns it.
    pub async fn next(&self) -> Event {
        loop {
            if let Some(e) = self.lock().pop_front() {
                return e;
            }
            // `notify_one` stores a permit when nobody waits, so a push between the pop above
            // and this await is not lost.
            self.inner.ready.notified().await;
        }
    }

    /// Put back an event whose sending failed, at the front. It is the oldest event, so when
    /// the queue refilled meanwhile it is the one dropped (and counted), as `push` would.
    pub(crate) fn requeue(&self, event: Event) {
        let mut q = self.lock();
        if q.len() < self.inner.capacity {
            q.push_front(event);
            drop(q);
            self.inner.ready.notify_one();
            return;
        }
        drop(q);
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            capacity = self.inner.capacity,
            check = event.check_name(),
            entity = event.entity_name(),
            "Outgoing queue full; dropped an event whose sending failed"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        // A panic while holding the lock cannot leave the deque inconsistent (push/pop only).
        self.inner.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64) -> Event {
        Event {
            sequence: seq,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn drops_oldest_when_full() {
        let q = Outbox::new(3);
        for i in 1..=3 {
            assert!(q.push(ev(i)).is_none());
        }
        assert_eq!(q.push(ev(4)).map(|e| e.sequence), Some(1));
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 1);
        let order: Vec<i64> = [q.next().await, q.next().await, q.next().await]
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(order, [2, 3, 4]);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn requeue_goes_first_or_is_counted() {
        let q = Outbox::new(2);
        q.push(ev(2));
        q.requeue(ev(1));
        assert_eq!(q.next().await.sequence, 1);
        q.push(ev(3));
        q.requeue(ev(0));
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 1);
    }

    #[tokio::test]
    async fn next_wakes_on_push() {
        let q = Outbox::new(2);
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await.sequence });
        tokio::task::yield_now().await;
        q.push(ev(7));
        assert_eq!(waiter.await.unwrap(), 7);
    }
}
