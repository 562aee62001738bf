//! The per-trigger message queue between the broker connection and the workers.
//!
//! Policy when a burst outruns the workers: up to `limit` messages wait. Beyond that, a QoS 0
//! message makes room by dropping the oldest waiting QoS 0 message (or itself, when none
//! waits), counted in `dropped`. QoS 1 messages are never dropped: they are acknowledged only
//! after their invocations ran, so the broker stops sending once its in-flight window
//! (Mosquitto's `max_inflight_messages`, 20 by default) is full of unacknowledged messages, and
//! keeps the rest for this client. That window bounds how far QoS 1 can exceed `limit`.

use std::collections::VecDeque;
use std::sync::Mutex;

use rumqttc::{Publish, QoS};
use tokio::sync::Notify;

/// What [`MessageQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full: a waiting QoS 0 message was dropped to make room.
    DroppedOldest,
    /// The queue was full of QoS 1 messages: this QoS 0 message was dropped.
    DroppedThis,
}

/// A bounded FIFO of received messages.
#[derive(Debug)]
pub struct MessageQueue {
    messages: Mutex<VecDeque<Publish>>,
    ready: Notify,
    limit: usize,
}

impl MessageQueue {
    pub fn new(limit: usize) -> Self {
        Self { messages: Mutex::new(VecDeque::new()), ready: Notify::new(), limit }
    }

    pub fn push(&self, message: Publish) -> Pushed {
        let mut messages = self.messages.lock().expect("queue lock");
        let mut pushed = Pushed::Queued;
        if messages.len() >= self.limit && message.qos == QoS::AtMostOnce {
            match messages.iter().position(|m| m.qos == QoS::AtMostOnce) {
                Some(oldest) => {
                    messages.remove(oldest);
                    pushed = Pushed::DroppedOldest;
                }
                None => return Pushed::DroppedThis,
            }
        }
        messages.push_back(message);
        drop(messages);
        self.ready.notify_one();
        pushed
    }

    /// The next message, waiting for one.
    pub async fn pop(&self) -> Publish {
        loop {
            let ready = self.ready.notified();
            let (next, more) = {
                let mut messages = self.messages.lock().expect("queue lock");
                (messages.pop_front(), !messages.is_empty())
            };
            if let Some(message) = next {
                // Others may be waiting too: pass the wake-up on while messages remain.
                if more {
                    self.ready.notify_one();
                }
                return message;
            }
            ready.await;
        }
    }

    pub fn len(&self) -> usize {
        self.messages.lock().expect("queue lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &str, qos: QoS) -> Publish {
        Publish::new("t", qos, payload.as_bytes().to_vec())
    }

    fn payloads(queue: &MessageQueue) -> Vec<String> {
        let messages = queue.messages.lock().unwrap();
        messages.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect()
    }

    #[test]
    fn a_full_queue_drops_the_oldest_qos0_message_and_never_a_qos1_one() {
        let queue = MessageQueue::new(3);
        assert_eq!(queue.push(message("a0", QoS::AtMostOnce)), Pushed::Queued);
        assert_eq!(queue.push(message("b1", QoS::AtLeastOnce)), Pushed::Queued);
        assert_eq!(queue.push(message("c0", QoS::AtMostOnce)), Pushed::Queued);
        assert_eq!(queue.push(message("d0", QoS::AtMostOnce)), Pushed::DroppedOldest);
        assert_eq!(payloads(&queue), ["b1", "c0", "d0"]);
        // QoS 1 goes in beyond the limit: the broker's in-flight window bounds it.
        assert_eq!(queue.push(message("e1", QoS::AtLeastOnce)), Pushed::Queued);
        assert_eq!(payloads(&queue), ["b1", "c0", "d0", "e1"]);

        let only_qos1 = MessageQueue::new(1);
        only_qos1.push(message("x1", QoS::AtLeastOnce));
        assert_eq!(only_qos1.push(message("y0", QoS::AtMostOnce)), Pushed::DroppedThis);
        assert_eq!(payloads(&only_qos1), ["x1"]);
    }

    #[tokio::test]
    async fn pop_waits_for_a_message_and_keeps_order() {
        let queue = std::sync::Arc::new(MessageQueue::new(10));
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move {
                let first = queue.pop().await;
                let second = queue.pop().await;
                (first.payload, second.payload)
            }
        });
        tokio::task::yield_now().await;
        queue.push(message("1", QoS::AtLeastOnce));
        queue.push(message("2", QoS::AtLeastOnce));
        let (first, second) = waiting.await.unwrap();
        assert_eq!((&first[..], &second[..]), (&b"1"[..], &b"2"[..]));
        assert!(queue.is_empty());
    }
}
