//! What a node does when its state is shared with other nodes (`--state postgres://…`):
//! follows the changes they make to what this node caches. A deploy, rollback or delete on any
//! node reaches the others' registries; a configuration change reaches their invocations;
//! event subscriptions are read again; an MQTT trigger created, replaced or deleted through
//! one server's admin API is started, restarted or stopped on the others; rotated signing keys
//! and a new admin token are loaded. Missed notices (the listening connection was lost) make
//! it read everything again.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use wasmfn_host_apis::state::StateChange;

use crate::access::admin_token::{AdminToken, DIGEST_KEY};
use crate::deploy::Deployments;
use crate::events::SubscriptionStore;
use crate::function_config::ConfigStore;
use crate::triggers::mqtt::MqttTriggers;

/// The records a node follows.
pub(super) struct Followed {
    pub deployments: Arc<Deployments>,
    pub config: Arc<ConfigStore>,
    pub subscriptions: Arc<SubscriptionStore>,
    pub mqtt: Arc<MqttTriggers>,
    pub signing: Arc<crate::signing_keys::SigningKeys>,
    pub admin_token: AdminToken,
}

/// Which function a deploy notice is about (`None`: all of them).
type FunctionKey = Option<(String, String)>;

/// Starts following `changes`; the tasks end when the backend closes or are aborted.
pub(super) fn follow(
    mut changes: broadcast::Receiver<StateChange>,
    followed: Followed,
) -> Vec<JoinHandle<()>> {
    let Followed { deployments, config, subscriptions, mqtt, signing, admin_token } = followed;
    // Deploys take seconds (a compile); they go one at a time in their own task so that
    // configuration changes are not held up behind them, and in order.
    let (deploys, mut deploy_queue) = mpsc::unbounded_channel::<FunctionKey>();
    let deployer = tokio::spawn(async move {
        while let Some(function) = deploy_queue.recv().await {
            let followed = match function {
                Some((space, name)) => deployments.follow(&space, &name).await,
                None => deployments.follow_all().await,
            };
            if let Err(error) = followed {
                tracing::error!(%error, "could not follow another node's deploy");
            }
        }
    });
    let watcher = tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "state change notices came too fast; reading all");
                    StateChange::Resync
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let (config, subscriptions) = (config.clone(), subscriptions.clone());
            let (signing, token) = (signing.clone(), admin_token.clone());
            match change {
                StateChange::Key { tree, key } => match tree.as_str() {
                    "functions" => {
                        let text = String::from_utf8_lossy(&key);
                        if let Some((space, name)) = text.split_once('/') {
                            let _ = deploys.send(Some((space.to_string(), name.to_string())));
                        }
                    }
                    "function_config" => {
                        reload("configuration", move || config.reload(&key)).await;
                    }
                    "event_subscriptions" => {
                        reload("event subscriptions", move || subscriptions.reload()).await;
                    }
                    "secrets" if key == DIGEST_KEY.as_bytes() => {
                        reload("admin token", move || token.reload()).await;
                    }
                    "secrets" => {
                        reload("signing keys", move || signing.reload()).await;
                    }
                    "mqtt_triggers" => {
                        if let Err(error) = mqtt.follow(&key) {
                            tracing::error!(%error, "could not follow another node's mqtt trigger");
                        }
                    }
                    _ => {}
                },
                StateChange::Resync => {
                    let _ = deploys.send(None);
                    reload("configuration", move || config.load_all().map(drop)).await;
                    reload("event subscriptions", move || subscriptions.reload()).await;
                    reload("signing keys", move || signing.reload()).await;
                    reload("admin token", move || token.reload()).await;
                    if let Err(error) = mqtt.follow_all() {
                        tracing::error!(%error, "could not follow the cluster's mqtt triggers");
                    }
                }
            }
        }
    });
    vec![deployer, watcher]
}

/// Runs a blocking reload off the async threads, logging a failure.
async fn reload(what: &str, work: impl FnOnce() -> anyhow::Result<()> + Send + 'static) {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(())) => tracing::debug!(what, "reloaded after another node's change"),
        Ok(Err(error)) => tracing::error!(what, error = %format!("{error:#}"),
            "could not reload after another node's change"),
        Err(error) => tracing::error!(what, %error, "reload task failed"),
    }
}
