//! Taking over the broker session a gone cluster node left behind.
//!
//! A node's triggers subscribe with shared subscriptions from persistent sessions
//! (`<client id>-<node>`). When a node dies (or stops and does not come back), Mosquitto keeps
//! its session: the QoS 1 messages it had received but not acknowledged, and its share of every
//! message published since, wait there until that client id connects again. So another node
//! connects with the gone node's client id (the session is resumed, the broker sends what it
//! holds), unsubscribes at once (no new messages are assigned to the session), processes and
//! acknowledges what comes, and disconnects once nothing has come for [`QUIET`] and nothing is
//! being processed. What is left is an empty session without subscriptions.
//!
//! If the gone node comes back meanwhile, its connection takes the session back (the broker
//! drops ours); what we had not acknowledged is sent to it again: at least once, as always.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connection::REQUEST_CHANNEL;
use super::queue::MessageQueue;
use super::worker::TriggerShared;

/// No message for this long, with none being processed: the session is drained.
pub const QUIET: Duration = Duration::from_secs(2);
/// An adoption ends after this long in any case (its session keeps what is left).
pub const LONGEST: Duration = Duration::from_secs(300);

/// How an adoption ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// The broker held no session for the client id.
    NoSession,
    /// The session's messages were processed; it is left empty, without subscriptions.
    Drained { messages: u64 },
    /// The connection ended first (the gone node came back and took its session, or the
    /// broker is unreachable); the session keeps what was not acknowledged.
    Interrupted { messages: u64, reason: String },
    /// [`LONGEST`] passed.
    TimedOut { messages: u64 },
}

/// Connects as the gone node's session of `trigger` (its `options`, client id included),
/// drains it as the module says, and reports how that went.
pub async fn drain(trigger: &TriggerShared, options: MqttOptions) -> Adopted {
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
    // The messages are processed as the trigger's own (its counters count them), but
    // acknowledged on the adopted session.
    let shared = Arc::new(TriggerShared {
        space: trigger.space.clone(),
        config: trigger.config.clone(),
        invoker: trigger.invoker.clone(),
        deliverer: trigger.deliverer.clone(),
        status: trigger.status.clone(),
        queue: Arc::new(MessageQueue::new(0)),
        client: client.clone(),
        shared_group: trigger.shared_group.clone(),
    });
    let filters = shared.filters();
    let slots = Arc::new(Semaphore::new(trigger.config.concurrency.max(1)));
    let mut processing = JoinSet::new();
    let mut messages = 0u64;
    let (mut unsubscribed, mut unsubscribed_from) = (false, 0);
    let started = Instant::now();
    let mut last_message = Instant::now();
    let outcome = loop {
        while processing.try_join_next().is_some() {}
        if unsubscribed && processing.is_empty() && last_message.elapsed() >= QUIET {
            break Adopted::Drained { messages };
        }
        if started.elapsed() >= LONGEST {
            break Adopted::TimedOut { messages };
        }
        let polled = match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await
        {
            Ok(polled) => polled,
            Err(_) => continue,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if !ack.session_present {
                    break Adopted::NoSession;
                }
                // No more messages for this session; those it holds still come. (A request
                // that cannot be queued means the connection task is gone: the next poll says.)
                for filter in &filters {
                    let _ = client.try_unsubscribe(filter.clone());
                }
                last_message = Instant::now();
            }
            Ok(Event::Incoming(Packet::UnsubAck(_))) => {
                unsubscribed_from += 1;
                unsubscribed = unsubscribed_from >= filters.len();
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                messages += 1;
                last_message = Instant::now();
                shared.status.counters.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (shared, slots) = (shared.clone(), slots.clone());
                processing.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    shared.process(message).await;
                });
            }
            Ok(_) => {}
            Err(error) => break Adopted::Interrupted { messages, reason: error.to_string() },
        }
    };
    // Acknowledgements still queued go out before the DISCONNECT (one channel, in order).
    processing.shutdown().await;
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
    outcome
}
