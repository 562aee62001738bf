//! A trigger's broker session: the rumqttc event loop, polled in its own task, always. It
//! subscribes after every (re)connect, turns errors into a Failed status with the broker's
//! reason, retries with exponential back-off, and hands messages to the queue.
//!
//! The session is persistent (`clean_session = false`) and QoS 1 acknowledgements are manual,
//! so messages a crashed or restarted server never acknowledged are redelivered by the broker
//! to the next session with the same client id.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode, Transport,
};
use tokio::sync::watch;

use super::manager::RetryPolicy;
use super::queue::Pushed;
use super::status::TriggerState;
use super::worker::TriggerShared;
use super::{BrokerUrl, MqttTriggerConfig};

/// Capacity of the channel from the client handle (acks, subscribes) to the event loop.
pub const REQUEST_CHANNEL: usize = 1024;
/// Largest message accepted from the broker.
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// The rumqttc options of a trigger (on cluster node `node`, if any: its client id gets the
/// node's id as a suffix, as two nodes sharing one id would take the session from each other);
/// fails only when TLS is asked for and the platform's root certificates cannot be loaded.
pub fn options(
    config: &MqttTriggerConfig,
    space: &str,
    password: Option<String>,
    node: Option<&str>,
) -> Result<MqttOptions, String> {
    let broker = &config.broker;
    let client_id = match node {
        Some(node) => format!("{}-{node}", config.client_id(space)),
        None => config.client_id(space),
    };
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, 1024 * 1024)
        .set_request_channel_capacity(REQUEST_CHANNEL);
    if let Some(username) = &config.username {
        options.set_credentials(username.clone(), password.unwrap_or_default());
    }
    if broker.tls {
        // rumqttc panics when a certificate of the platform store cannot be read.
        let transport =
            std::panic::catch_unwind(Transport::tls_with_default_config).map_err(|_| {
                format!(
                "mqtt trigger '{}': the platform's root certificates could not be loaded for TLS",
                config.name
            )
            })?;
        options.set_transport(transport);
    }
    Ok(options)
}

/// Polls the event loop until `stop`, keeping the status true.
pub async fn run(
    shared: Arc<TriggerShared>,
    mut eventloop: EventLoop,
    retry: RetryPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let name = shared.config.name.clone();
    let qos = if shared.config.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let filters: Vec<SubscribeFilter> =
        shared.filters().into_iter().map(|filter| SubscribeFilter::new(filter, qos)).collect();
    let status = &shared.status;
    let counters = &status.counters;
    let mut backoff = retry.initial;
    let mut connected_before = false;
    loop {
        let polled = tokio::select! {
            biased;
            _ = stop.changed() => break,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if connected_before {
                    counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                connected_before = true;
                // Always resubscribe: the broker may have lost the session.
                if let Err(error) = shared.client.try_subscribe_many(filters.clone()) {
                    status.set(
                        &name,
                        TriggerState::Failed,
                        Some(format!("cannot subscribe: {error}")),
                    );
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused: Vec<&str> = ack
                    .return_codes
                    .iter()
                    .zip(&filters)
                    .filter(|(code, _)| matches!(code, SubscribeReasonCode::Failure))
                    .map(|(_, filter)| filter.path.as_str())
                    .collect();
                if refused.is_empty() {
                    status.set(&name, TriggerState::Running, None);
                    backoff = retry.initial;
                } else {
                    let reason =
                        format!("the broker refused the subscription to {}", refused.join(", "));
                    status.set(&name, TriggerState::Failed, Some(reason));
                    // Ask again after the back-off; the connection stays up meanwhile.
                    let (client, again, wait) = (shared.client.clone(), filters.clone(), backoff);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = client.try_subscribe_many(again);
                    });
                    backoff = (backoff * 2).min(retry.max);
                }
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if shared.queue.push(message) != Pushed::Queued {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(error) => {
                let reason = describe(&error, &shared.config.broker);
                status.set(&name, TriggerState::Failed, Some(reason));
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(retry.max);
            }
        }
    }
    status.set(&name, TriggerState::Stopped, None);
    // A polite DISCONNECT, if the broker is there to take it; never wait long.
    if shared.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
}

/// The broker's reason in words an operator acts on. Never includes the password.
pub fn describe(error: &ConnectionError, broker: &BrokerUrl) -> String {
    match error {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => {
            "bad credentials: the broker refused the username or password".into()
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            "bad credentials: the broker refused to authorize this client (not authorized)".into()
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => {
            "the broker refused the client id".into()
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?})")
        }
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("unreachable: {broker} refused the connection (is the broker running?)")
        }
        ConnectionError::Io(io) => format!("unreachable: {broker}: {io}"),
        ConnectionError::NetworkTimeout => format!("unreachable: connecting to {broker} timed out"),
        ConnectionError::Tls(tls) => format!("TLS with {broker} failed: {tls}"),
        ConnectionError::MqttState(state) => format!("connection to {broker} lost: {state}"),
        other => format!("connection to {broker} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_cause_without_secrets() {
        let broker = BrokerUrl::try_from("mqtt://127.0.0.1:1884".to_string()).unwrap();
        let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword);
        assert!(describe(&refused, &broker).starts_with("bad credentials"));
        let down = ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(
            describe(&down, &broker),
            "unreachable: mqtt://127.0.0.1:1884 refused the connection (is the broker running?)"
        );
    }

    #[test]
    fn sessions_are_persistent_with_manual_acks() {
        let config: MqttTriggerConfig = serde_json::from_value(serde_json::json!({
            "name": "t", "broker": "mqtt://127.0.0.1:1883", "topics": ["a/#"],
            "username": "u", "password": "p", "functions": [{"function": "f"}]
        }))
        .unwrap();
        let on_node = options(&config, "default", None, Some("n2")).unwrap();
        assert_eq!(on_node.client_id(), "wasmfn-default-t-n2", "one session per cluster node");
        let options = options(&config, "default", Some("p".into()), None).unwrap();
        assert_eq!(options.client_id(), "wasmfn-default-t");
        assert!(!options.clean_session() && options.manual_acks());
        let login = options.credentials().expect("credentials are set");
        assert_eq!((login.username.as_str(), login.password.as_str()), ("u", "p"));
    }
}
