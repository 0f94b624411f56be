//! `Mailbox`: a bounded queue with one async receiver, for the per-session queues of agentd
//! (check requests from the bus, entity configuration updates).
//!
//! Why not a tokio `mpsc` channel: every agent session keeps its queues for its whole life,
//! and an `mpsc` channel costs ~800 bytes before the first message (a cache-padded shared
//! state of ~512 bytes and a first block of 32 slots), twice per session. A mailbox is an
//! `Arc` of a mutex, an empty `VecDeque` (no allocation until used) and a `Notify`: ~100 bytes.
//! Senders never wait: a full mailbox refuses the message, as `try_send` did.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

pub struct Mailbox<T> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    /// One permit per "something arrived"; the receiver drains the queue before waiting, so
    /// several pushes under one permit are not lost.
    arrived: Notify,
}

impl<T> Mailbox<T> {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Mailbox {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            arrived: Notify::new(),
        })
    }

    /// Queues `item`; gives it back when the mailbox is full.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= self.capacity {
                return Err(item);
            }
            queue.push_back(item);
        }
        self.arrived.notify_one();
        Ok(())
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let item = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            // An idle session keeps no queue storage.
            *queue = VecDeque::new();
        }
        item
    }

    /// The next item, waiting for one. Cancel-safe: an item is taken only when returned.
    pub async fn recv(&self) -> T {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            self.arrived.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_a_full_mailbox_refuses() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.try_push(1), Ok(()));
        assert_eq!(mailbox.try_push(2), Ok(()));
        assert_eq!(mailbox.try_push(3), Err(3));
        assert_eq!(mailbox.recv().await, 1);
        assert_eq!(mailbox.try_push(4), Ok(()));
        assert_eq!(mailbox.recv().await, 2);
        assert_eq!(mailbox.recv().await, 4);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_push_from_another_task() {
        let mailbox = Mailbox::new(4);
        let sender = mailbox.clone();
        let push = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sender.try_push("config").unwrap();
        });
        let got = tokio::time::timeout(Duration::from_secs(5), mailbox.recv()).await;
        assert_eq!(got, Ok("config"));
        push.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_receive_loses_nothing() {
        let mailbox = Mailbox::new(4);
        // A receive abandoned while waiting (as a `select!` branch that lost) ...
        let waited = tokio::time::timeout(Duration::from_millis(10), mailbox.recv()).await;
        assert!(waited.is_err());
        // ... takes nothing that arrives afterwards, nor the permit that announces it.
        mailbox.try_push(7).unwrap();
        mailbox.try_push(8).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), mailbox.recv()).await;
        assert_eq!(next, Ok(7));
        let next = tokio::time::timeout(Duration::from_secs(5), mailbox.recv()).await;
        assert_eq!(next, Ok(8));
    }
}
