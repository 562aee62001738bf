//! What a message becomes: one invocation per target function whose filter matches the topic,
//! run through the `Invoker` at the same time, each outcome counted and POSTed to the trigger's
//! callback URL; a QoS 1 message is acknowledged only after all of them ran and their callbacks
//! were delivered (or ten seconds passed).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::queue::MessageQueue;
use super::status::StatusCell;
use super::{MqttTarget, MqttTriggerConfig, TopicFilter};
use crate::delivery::{Deliverer, Delivery};
use crate::invoker::{Invocation, Invoker, RequestData};
use wasmfn_core::arguments::Arguments;

/// The `trigger` of every MQTT invocation.
pub const TRIGGER: &str = "mqtt";
/// Request header with the message's topic (as in the reference platform).
pub const TOPIC_HEADER: &str = "x-topic";
/// Request header naming the trigger that received the message.
pub const TRIGGER_HEADER: &str = "x-mqtt-trigger";
/// Request header with the message's QoS (0 or 1).
pub const QOS_HEADER: &str = "x-mqtt-qos";

/// Everything a trigger's workers share.
#[derive(Debug)]
pub struct TriggerShared {
    pub space: String,
    pub config: MqttTriggerConfig,
    pub invoker: Invoker,
    pub deliverer: Arc<Deliverer>,
    pub status: Arc<StatusCell>,
    pub queue: Arc<MessageQueue>,
    pub client: AsyncClient,
    /// The shared-subscription group its topics are subscribed in, on a node of a cluster.
    pub shared_group: Option<String>,
}

impl TriggerShared {
    /// `mqtt:<space>/<trigger>`, the source named in delivery records.
    pub fn source(&self) -> String {
        format!("mqtt:{}/{}", self.space, self.config.name)
    }

    /// The filters its topics are subscribed with: `$share/<group>/<topic>` in a shared group,
    /// else the topics as they are.
    pub fn filters(&self) -> Vec<String> {
        let topics = self.config.topics.iter().map(|topic| topic.as_str());
        match &self.shared_group {
            Some(group) => topics.map(|topic| format!("$share/{group}/{topic}")).collect(),
            None => topics.map(str::to_string).collect(),
        }
    }

    /// The invocation of `target` for `message`: `POST /` with the payload as body, the topic
    /// in `x-topic`; a JSON-object payload also becomes keyword arguments.
    pub fn invocation(&self, target: &MqttTarget, message: &Publish) -> Invocation {
        let qos = if message.qos == QoS::AtMostOnce { "0" } else { "1" };
        Invocation {
            space: self.space.clone(),
            function: target.function.clone(),
            entry: target.entry.clone(),
            arguments: payload_arguments(&message.payload),
            request: RequestData {
                method: "POST".into(),
                path: "/".into(),
                headers: vec![
                    (TOPIC_HEADER.into(), message.topic.clone()),
                    (TRIGGER_HEADER.into(), self.config.name.clone()),
                    (QOS_HEADER.into(), qos.into()),
                ],
                body: message.payload.clone(),
                ..RequestData::default()
            },
            trigger: TRIGGER.into(),
            ..Invocation::default()
        }
    }

    /// Runs the message's invocations, reports their outcomes, then acknowledges a QoS 1
    /// message.
    pub async fn process(&self, message: Publish) {
        let counters = &self.status.counters;
        let mut running = JoinSet::new();
        let mut callbacks = Vec::new();
        for target in &self.config.functions {
            if !invokes(target, &message.topic, &self.config.topics) {
                continue;
            }
            // `max_body_bytes` is not applied: the broker already took the message, and the
            // connection's own packet limit (16 MiB) bounds it (docs/triggers.md).
            let invoker = self.invoker.clone();
            let invocation = self.invocation(target, &message);
            running.spawn(async move { invoke_with_retry(&invoker, invocation).await });
        }
        while let Some(joined) = running.join_next().await {
            counters.invocations.fetch_add(1, Ordering::Relaxed);
            let Ok(outcome) = joined else {
                counters.failed_invocations.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if outcome.result.is_err() {
                counters.failed_invocations.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(callback) = &self.config.callback_url {
                let delivery = Delivery::of_outcome(self.source(), callback.0.clone(), &outcome, 1);
                callbacks.push(self.deliverer.submit(delivery));
            }
        }
        if message.qos != QoS::AtMostOnce {
            // The outcome reaches its callback before the broker hears the message was
            // processed: a server killed in between gets the message again (at least once end
            // to end). A slow or failing receiver holds the acknowledgement at most
            // ACK_WAITS_FOR_CALLBACK; its delivery goes on after that.
            let delivered = futures::future::join_all(callbacks);
            let _ = tokio::time::timeout(ACK_WAITS_FOR_CALLBACK, delivered).await;
            // Fails only when the connection task is gone; the broker then redelivers the
            // message to the next session with this client id.
            if self.client.ack(&message).await.is_ok() {
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How long a QoS 1 message's acknowledgement waits for its callbacks to be delivered.
const ACK_WAITS_FOR_CALLBACK: std::time::Duration = std::time::Duration::from_secs(10);

/// Invokes, trying again a few times with back-off while the platform is only busy (no
/// instance slot, too many callers waiting), so a burst does not turn into lost messages.
async fn invoke_with_retry(invoker: &Invoker, invocation: Invocation) -> crate::invoker::Outcome {
    let mut wait = std::time::Duration::from_millis(100);
    for _ in 0..5 {
        let outcome = invoker.invoke(invocation.clone()).await;
        let busy = matches!(
            outcome.result,
            Err(crate::error::InvokeError::Overloaded { .. }
                | crate::error::InvokeError::NoInstanceSlot)
        );
        if !busy {
            return outcome;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    invoker.invoke(invocation).await
}

/// Takes messages off the queue until told to stop; a message being processed is finished.
pub async fn run(shared: Arc<TriggerShared>, mut stop: watch::Receiver<bool>) {
    loop {
        let message = tokio::select! {
            message = shared.queue.pop() => message,
            _ = stop.changed() => return,
        };
        shared.process(message).await;
    }
}

/// Whether a message on `topic` invokes `target`, given the trigger's own filters. MQTT
/// matching: `+` is one level, a trailing `#` any number (including none); filters starting
/// with a wildcard do not match topics starting with `$`.
fn invokes(target: &MqttTarget, topic: &str, trigger_topics: &[TopicFilter]) -> bool {
    target.filters(trigger_topics).iter().any(|filter| rumqttc::matches(topic, filter.as_str()))
}

/// A JSON-object payload as keyword arguments, as it came; any other payload gives none (it
/// still reaches the function as `context.request.body`).
pub fn payload_arguments(payload: &[u8]) -> Arguments {
    Arguments::from_json_text(payload).ok().flatten().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_mqtt_defines() {
        let target = |topics: &[&str]| MqttTarget {
            function: "f".into(),
            entry: None,
            topics: topics.iter().map(|t| TopicFilter::try_from(t.to_string()).unwrap()).collect(),
        };
        let own = |filter: &str, topic: &str| invokes(&target(&[filter]), topic, &[]);
        assert!(own("plant/+/temp", "plant/a/temp"));
        assert!(!own("plant/+/temp", "plant/a/b/temp"));
        assert!(own("plant/#", "plant/a/b"));
        assert!(own("plant/#", "plant"), "'#' also matches the parent level");
        assert!(!own("plant/#", "factory/a"));
        assert!(!own("#", "$SYS/broker/uptime"), "wildcards skip $ topics");
        assert!(own("exact/topic", "exact/topic"));
        assert!(!own("exact/topic", "exact/topic/more"));
        let trigger_topics = target(&["plant/#"]).topics;
        assert!(invokes(&target(&[]), "plant/a", &trigger_topics), "the trigger's filters");
        assert!(!invokes(&target(&["other/#"]), "plant/a", &trigger_topics), "its own first");
    }

    #[test]
    fn only_json_object_payloads_become_arguments() {
        let args = payload_arguments(br#"{"temperature": 21.5}"#);
        assert_eq!(args.as_str(), r#"{"temperature": 21.5}"#);
        assert!(payload_arguments(b"21.5").is_empty());
        assert!(payload_arguments(b"{not json").is_empty());
        assert!(payload_arguments(b"").is_empty());
    }
}
