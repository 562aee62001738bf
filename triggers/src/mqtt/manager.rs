//! The MQTT triggers of a server: started from `function.toml` tables when functions load, or
//! created and deleted through the admin API (those are saved in the state database, their
//! password sealed, and started again after a restart). Each running trigger is one connection task plus its
//! workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::AsyncClient;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::adopt::Adopted;
use super::connection::{self, REQUEST_CHANNEL};
use super::queue::MessageQueue;
use super::status::{MqttStatus, StatusCell};
use super::worker::{self, TriggerShared};
use super::MqttTriggerConfig;
use crate::delivery::Deliverer;
use crate::invoker::Invoker;
use crate::lifecycle::TriggerKind;
pub use crate::lifecycle::TriggerOrigin;
use crate::registry::FunctionVersion;
use crate::sealed::{open_failed, Sealer};
use wasmfn_host_apis::state::StateTree;

/// Back-off between connection attempts of a Failed trigger.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// Why a trigger cannot be created, found or deleted.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{0}")]
    Invalid(String),
    #[error("a trigger named '{name}' already exists in space '{space}'")]
    Exists { space: String, name: String },
    #[error("no trigger named '{name}' in space '{space}'")]
    NotFound { space: String, name: String },
    #[error(
        "mqtt trigger '{name}': the environment variable {var} named by password_env is not set"
    )]
    MissingPassword { name: String, var: String },
    #[error(
        "trigger '{name}' comes from the function.toml of function '{function}': change it \
         there and redeploy"
    )]
    Declared { name: String, function: String },
    #[error("could not save the trigger: {0}")]
    Store(String),
    /// A saved password does not open with the secrets key (says which trigger, not the value).
    #[error("{0}")]
    Sealed(String),
}

/// A trigger as the admin API and `wasmfn triggers` show it (never with its password).
#[derive(Clone, Debug, Serialize)]
pub struct TriggerView {
    pub space: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub origin: TriggerOrigin,
    pub config: MqttTriggerConfig,
    pub status: MqttStatus,
}

/// What the state database keeps of an admin-created trigger.
#[derive(Serialize, Deserialize)]
struct Saved {
    space: String,
    config: MqttTriggerConfig,
    /// Kept apart because the config never serialises its password; sealed (older versions
    /// kept it in plain text).
    password: Option<String>,
}

/// The record a trigger's password is sealed for.
fn password_label(space: &str, name: &str) -> String {
    format!("mqtt/{space}/{name}")
}

struct Running {
    origin: TriggerOrigin,
    shared: Arc<TriggerShared>,
    stop_connection: watch::Sender<bool>,
    stop_workers: watch::Sender<bool>,
    connection: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

/// The running MQTT triggers, by `(space, name)`.
pub struct MqttTriggers {
    invoker: Invoker,
    deliverer: Arc<Deliverer>,
    retry: RetryPolicy,
    store: Option<(StateTree, Arc<Sealer>)>,
    /// This node's id in a cluster (`--node-id`): client ids get it as a suffix and topics are
    /// subscribed to as shared subscriptions, so each message goes to one node.
    node: Option<String>,
    running: Mutex<BTreeMap<(String, String), Running>>,
}

impl std::fmt::Debug for MqttTriggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.running.lock().expect("triggers lock").keys().cloned().collect();
        f.debug_struct("MqttTriggers").field("running", &names).finish_non_exhaustive()
    }
}

impl MqttTriggers {
    /// `store`: where admin-created triggers are saved and what seals their passwords (none:
    /// they last until shutdown).
    pub fn new(
        invoker: Invoker,
        deliverer: Arc<Deliverer>,
        retry: RetryPolicy,
        store: Option<(StateTree, Arc<Sealer>)>,
    ) -> Self {
        Self { invoker, deliverer, retry, store, node: None, running: Mutex::new(BTreeMap::new()) }
    }

    /// Runs the triggers as `node` of a cluster: each trigger's client id becomes
    /// `<client id>-<node>` and its topics `$share/wasmfn-<space>-<trigger>/<topic>`, so the
    /// nodes serving one trigger share its messages (each goes to one node) instead of each
    /// processing all of them.
    pub fn in_cluster(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }

    /// Opens the password of every saved trigger, sealing again those kept in plain text or
    /// under the previous key; returns how many were sealed again. A password that does not
    /// open stops here, before anything starts.
    pub fn reseal(&self) -> Result<usize, MqttError> {
        let Some((store, sealer)) = &self.store else { return Ok(0) };
        let mut resealed = 0;
        for entry in store.iter() {
            let (key, value) = entry.map_err(|e| MqttError::Store(e.to_string()))?;
            // Unreadable records are skipped (and logged) by `restore`.
            let Ok(mut saved) = serde_json::from_slice::<Saved>(&value) else { continue };
            let Some((password, stale)) = self.unseal(&saved)? else { continue };
            if stale {
                let label = password_label(&saved.space, &saved.config.name);
                saved.password = Some(
                    sealer
                        .seal(&label, password.as_bytes())
                        .map_err(|e| MqttError::Store(e.to_string()))?,
                );
                let bytes = serde_json::to_vec(&saved).expect("trigger config serialises");
                store
                    .insert(key, bytes)
                    .and_then(|_| store.flush())
                    .map_err(|e| MqttError::Store(e.to_string()))?;
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    /// Starts the admin-created triggers saved by an earlier run; returns how many.
    pub fn restore(&self) -> Result<usize, MqttError> {
        let Some((store, _)) = &self.store else { return Ok(0) };
        let mut restored = 0;
        for entry in store.iter() {
            let (_, value) = entry.map_err(|e| MqttError::Store(e.to_string()))?;
            let saved: Saved = match serde_json::from_slice(&value) {
                Ok(saved) => saved,
                Err(error) => {
                    tracing::error!(%error, "skipping an unreadable saved mqtt trigger");
                    continue;
                }
            };
            let (space, config) = self.opened(saved)?;
            match self.launch(&space, config, TriggerOrigin::Admin, None) {
                Ok(_) => restored += 1,
                Err(error) => tracing::error!(%error, "could not restore a saved mqtt trigger"),
            }
        }
        Ok(restored)
    }

    /// A saved trigger's password, opened, and whether it was sealed in plain text or under
    /// the previous key; an error names the trigger, never the value.
    fn unseal(&self, saved: &Saved) -> Result<Option<(String, bool)>, MqttError> {
        let Some((_, sealer)) = &self.store else { unreachable!("saved triggers have a store") };
        let Some(stored) = &saved.password else { return Ok(None) };
        let label = password_label(&saved.space, &saved.config.name);
        let opened = sealer.unseal_text(&label, stored).map_err(|e| {
            let record = format!(
                "password of mqtt trigger '{}' in space '{}'",
                saved.config.name, saved.space
            );
            MqttError::Sealed(format!("{:#}", open_failed(&record, &e)))
        })?;
        Ok(Some(opened))
    }

    /// A saved trigger's space and configuration, its password opened.
    fn opened(&self, saved: Saved) -> Result<(String, MqttTriggerConfig), MqttError> {
        let password = self.unseal(&saved)?;
        let mut config = saved.config;
        config.password = password.map(|(password, _)| super::Secret(password));
        Ok((saved.space, config))
    }

    /// Does here what another server of the cluster did to the admin-created trigger saved
    /// under `stored_key` (`<space>/<name>`): starts it, restarts it with its new
    /// configuration, or stops it when it was deleted. Triggers functions declare are left
    /// alone.
    pub fn follow(&self, stored_key: &[u8]) -> Result<(), MqttError> {
        let Some((store, _)) = &self.store else { return Ok(()) };
        let text = String::from_utf8_lossy(stored_key);
        let Some((space, name)) = text.split_once('/') else { return Ok(()) };
        let saved = store.get(stored_key).map_err(|e| MqttError::Store(e.to_string()))?;
        let saved: Option<Saved> = match saved {
            Some(value) => {
                Some(serde_json::from_slice(&value).map_err(|e| MqttError::Store(e.to_string()))?)
            }
            None => None,
        };
        let old = {
            let mut running = self.running.lock().expect("triggers lock");
            let key = key(space, name);
            match running.get(&key).map(|t| &t.origin) {
                Some(TriggerOrigin::Admin) => running.remove(&key),
                _ => None,
            }
        };
        let stopping = old.map(|old| tokio::spawn(stop(old)));
        if let Some(saved) = saved {
            let (space, config) = self.opened(saved)?;
            self.launch(&space, config, TriggerOrigin::Admin, stopping)?;
            tracing::info!(%space, mqtt_trigger = %name, "mqtt trigger changed on another server; following");
        } else if stopping.is_some() {
            tracing::info!(%space, mqtt_trigger = %name, "mqtt trigger deleted on another server; stopped");
        }
        Ok(())
    }

    /// [`MqttTriggers::follow`] for every admin-created trigger, saved or running.
    pub fn follow_all(&self) -> Result<(), MqttError> {
        let Some((store, _)) = &self.store else { return Ok(()) };
        let mut keys = std::collections::BTreeSet::new();
        for entry in store.iter() {
            keys.insert(entry.map_err(|e| MqttError::Store(e.to_string()))?.0);
        }
        let running = self.running.lock().expect("triggers lock");
        for ((space, name), trigger) in running.iter() {
            if trigger.origin == TriggerOrigin::Admin {
                keys.insert(store_key(space, name));
            }
        }
        drop(running);
        for key in keys {
            if let Err(error) = self.follow(&key) {
                tracing::error!(%error, "could not follow an mqtt trigger");
            }
        }
        Ok(())
    }

    /// Checks and starts a trigger (it connects in the background), then saves an admin one.
    /// Nothing is saved for a trigger that could not start.
    pub fn create(
        &self,
        space: &str,
        config: MqttTriggerConfig,
        origin: TriggerOrigin,
    ) -> Result<TriggerView, MqttError> {
        config.validate(false).map_err(MqttError::Invalid)?;
        let view = self.launch(space, config.clone(), origin.clone(), None)?;
        if origin == TriggerOrigin::Admin {
            if let Err(error) = self.save(space, config) {
                // Not kept, so not running either: a restart would not bring it back.
                let trigger =
                    self.running.lock().expect("triggers lock").remove(&key(space, &view.name));
                if let Some(trigger) = trigger {
                    tokio::spawn(stop(trigger));
                }
                return Err(error);
            }
        }
        Ok(view)
    }

    /// Keeps an admin-created trigger in the state database (its password sealed).
    fn save(&self, space: &str, config: MqttTriggerConfig) -> Result<(), MqttError> {
        let Some((store, sealer)) = &self.store else { return Ok(()) };
        let label = password_label(space, &config.name);
        let password = config
            .password
            .as_ref()
            .map(|p| sealer.seal(&label, p.0.as_bytes()))
            .transpose()
            .map_err(|e| MqttError::Store(e.to_string()))?;
        let saved = Saved { space: space.to_string(), password, config };
        let bytes = serde_json::to_vec(&saved).expect("trigger config serialises");
        store
            .insert(store_key(space, &saved.config.name), bytes)
            .and_then(|_| store.flush())
            .map(drop)
            .map_err(|e| MqttError::Store(e.to_string()))
    }

    /// Replaces an admin-created trigger's configuration (the name stays): the new one is
    /// checked first, so a refused one leaves the trigger running as it was; then the old
    /// connection stops and the new one starts after it (they share the client id). Without a
    /// new `password` or `password_env`, and with the same `username`, the trigger keeps its
    /// password.
    pub fn replace(
        &self,
        space: &str,
        mut config: MqttTriggerConfig,
    ) -> Result<TriggerView, MqttError> {
        config.validate(false).map_err(MqttError::Invalid)?;
        let trigger_key = key(space, &config.name);
        let previous = {
            let running = self.running.lock().expect("triggers lock");
            match running.get(&trigger_key) {
                None => return Err(MqttError::NotFound { space: space.into(), name: config.name }),
                Some(Running { origin: TriggerOrigin::FunctionToml { function, .. }, .. }) => {
                    return Err(MqttError::Declared {
                        name: config.name,
                        function: function.clone(),
                    })
                }
                Some(trigger) => trigger.shared.config.clone(),
            }
        };
        if config.password.is_none()
            && config.password_env.is_none()
            && config.username == previous.username
        {
            config.password = previous.password.clone();
        }
        let password = password(&config)?;
        connection::options(&config, space, password, self.node.as_deref())
            .map_err(MqttError::Invalid)?;
        let old = self.running.lock().expect("triggers lock").remove(&trigger_key);
        let stopping = old.map(|old| tokio::spawn(stop(old)));
        let view = self.launch(space, config.clone(), TriggerOrigin::Admin, stopping)?;
        self.save(space, config)?;
        tracing::info!(space, mqtt_trigger = %view.name, "mqtt trigger replaced");
        Ok(view)
    }

    /// Starts a trigger. `after`: the stopping of the trigger it replaces, which shares its
    /// client id; the new connection waits for it, or the two would take the broker session
    /// from each other.
    fn launch(
        &self,
        space: &str,
        config: MqttTriggerConfig,
        origin: TriggerOrigin,
        after: Option<JoinHandle<()>>,
    ) -> Result<TriggerView, MqttError> {
        let password = password(&config)?;
        // Built before taking the lock: loading the platform's certificates may fail.
        let options = connection::options(&config, space, password, self.node.as_deref())
            .map_err(MqttError::Invalid)?;
        let mut running = self.running.lock().expect("triggers lock");
        let key = key(space, &config.name);
        if running.contains_key(&key) {
            return Err(MqttError::Exists { space: space.into(), name: config.name });
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
        let concurrency = config.concurrency;
        let shared = Arc::new(TriggerShared {
            shared_group: self.node.as_ref().map(|_| format!("wasmfn-{space}-{}", config.name)),
            space: space.to_string(),
            queue: Arc::new(MessageQueue::new(config.queue_limit)),
            config,
            invoker: self.invoker.clone(),
            deliverer: self.deliverer.clone(),
            status: Arc::new(StatusCell::default()),
            client,
        });
        let (stop_connection, _) = watch::channel(false);
        let (stop_workers, _) = watch::channel(false);
        let run = connection::run(
            shared.clone(),
            eventloop,
            self.retry.clone(),
            stop_connection.subscribe(),
        );
        let connection = tokio::spawn(async move {
            if let Some(previous) = after {
                let _ = previous.await;
            }
            run.await
        });
        let workers = (0..concurrency)
            .map(|_| tokio::spawn(worker::run(shared.clone(), stop_workers.subscribe())))
            .collect();
        tracing::info!(
            space, mqtt_trigger = %shared.config.name, broker = %shared.config.broker,
            topics = %shared.config.topics.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            "mqtt trigger started"
        );
        let trigger =
            Running { origin, shared, stop_connection, stop_workers, connection, workers };
        let view = view(&trigger);
        running.insert(key, trigger);
        Ok(view)
    }

    /// Stops an admin-created trigger and forgets it. Messages being processed are finished;
    /// unacknowledged QoS 1 messages stay with the broker.
    pub async fn delete(&self, space: &str, name: &str) -> Result<(), MqttError> {
        let trigger = {
            let mut running = self.running.lock().expect("triggers lock");
            let key = key(space, name);
            match running.get(&key).map(|t| t.origin.clone()) {
                None => return Err(MqttError::NotFound { space: space.into(), name: name.into() }),
                Some(TriggerOrigin::FunctionToml { function, .. }) => {
                    return Err(MqttError::Declared { name: name.into(), function })
                }
                Some(TriggerOrigin::Admin) => running.remove(&key).expect("present"),
            }
        };
        if let Some((store, _)) = &self.store {
            store
                .remove(store_key(space, name))
                .and_then(|_| store.flush())
                .map_err(|e| MqttError::Store(e.to_string()))?;
        }
        stop(trigger).await;
        Ok(())
    }

    /// Every trigger, or those of one space, by space and name.
    pub fn list(&self, space: Option<&str>) -> Vec<TriggerView> {
        let running = self.running.lock().expect("triggers lock");
        running
            .iter()
            .filter(|((trigger_space, _), _)| space.is_none_or(|s| s == trigger_space))
            .map(|(_, trigger)| view(trigger))
            .collect()
    }

    pub fn get(&self, space: &str, name: &str) -> Option<TriggerView> {
        self.running.lock().expect("triggers lock").get(&key(space, name)).map(view)
    }

    /// Takes over the broker sessions cluster node `gone` left behind, one per trigger this
    /// node runs, and processes the messages they hold (see [`super::adopt`]); returns the
    /// tasks doing it, which log how each went. Nothing outside a cluster, or for this node.
    pub fn adopt(&self, gone: &str) -> Vec<JoinHandle<Adopted>> {
        if self.node.as_deref().is_none_or(|own| own == gone) {
            return Vec::new();
        }
        let triggers: Vec<Arc<TriggerShared>> = {
            let running = self.running.lock().expect("triggers lock");
            running.values().map(|trigger| trigger.shared.clone()).collect()
        };
        let mut adopting = Vec::new();
        for trigger in triggers {
            let name = trigger.config.name.clone();
            let options = password(&trigger.config)
                .map_err(|e| e.to_string())
                .and_then(|p| connection::options(&trigger.config, &trigger.space, p, Some(gone)));
            let options = match options {
                Ok(options) => options,
                Err(error) => {
                    tracing::error!(mqtt_trigger = %name, gone, %error,
                        "cannot take over a gone node's mqtt session");
                    continue;
                }
            };
            let gone = gone.to_string();
            adopting.push(tokio::spawn(async move {
                let outcome = super::adopt::drain(&trigger, options).await;
                match &outcome {
                    Adopted::NoSession => {}
                    Adopted::Drained { messages } => tracing::info!(space = %trigger.space,
                        mqtt_trigger = %name, gone, messages,
                        "took over a gone node's mqtt session and processed what it held"),
                    Adopted::Interrupted { messages, reason } => tracing::warn!(
                        space = %trigger.space, mqtt_trigger = %name, gone, messages, reason,
                        "taking over a gone node's mqtt session ended early; the session keeps \
                         the rest"),
                    Adopted::TimedOut { messages } => tracing::warn!(space = %trigger.space,
                        mqtt_trigger = %name, gone, messages,
                        "taking over a gone node's mqtt session took too long; the session keeps \
                         the rest"),
                }
                outcome
            }));
        }
        adopting
    }

    /// Stops every trigger, finishing messages being processed.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = {
            let mut running = self.running.lock().expect("triggers lock");
            std::mem::take(&mut *running).into_values().collect()
        };
        for trigger in all {
            stop(trigger).await;
        }
    }
}

/// The `[[mqtt]]` triggers of function versions.
impl TriggerKind for MqttTriggers {
    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn check(&self, version: &FunctionVersion) -> Result<(), String> {
        let running = self.running.lock().expect("triggers lock");
        for trigger in &version.triggers.mqtt {
            let config = trigger.for_function(&version.name);
            config.validate(false)?;
            let name = &config.name;
            version
                .resolve_entry(config.functions[0].entry.as_deref())
                .map_err(|e| format!("mqtt trigger '{name}': {e}"))?;
            password(&config).map_err(|e| e.to_string())?;
            match running.get(&key(&version.space, name)).map(|t| &t.origin) {
                Some(origin) if !origin.is_declared_by(&version.name) => {
                    let holder = match origin {
                        TriggerOrigin::Admin => "an admin-created trigger".to_string(),
                        TriggerOrigin::FunctionToml { function, .. } => {
                            format!("a trigger of function '{function}'")
                        }
                    };
                    return Err(format!(
                        "mqtt trigger '{name}': the name is taken in space '{}' by {holder}",
                        version.space
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn start(&self, version: &Arc<FunctionVersion>) {
        let mut stopping = self.take_declared(&version.space, &version.name);
        for trigger in &version.triggers.mqtt {
            let after = stopping.remove(&trigger.name);
            let config = trigger.for_function(&version.name);
            let origin = TriggerOrigin::declared_by(version);
            if let Err(error) = self.launch(&version.space, config, origin, after) {
                tracing::error!(space = %version.space, function = %version.name,
                    mqtt_trigger = %trigger.name, %error, "mqtt trigger could not start");
            }
        }
    }

    fn stop(&self, space: &str, function: &str) {
        drop(self.take_declared(space, function));
    }

    fn list(&self, space: Option<&str>) -> Vec<serde_json::Value> {
        let views = self.list(space).into_iter();
        views.map(|view| serde_json::to_value(view).expect("trigger view serialises")).collect()
    }

    fn shutdown(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(MqttTriggers::shutdown(self))
    }
}

impl MqttTriggers {
    /// Takes the triggers `function` declared out of the running set and starts stopping them;
    /// returns the stopping tasks by trigger name.
    fn take_declared(&self, space: &str, function: &str) -> BTreeMap<String, JoinHandle<()>> {
        let mut running = self.running.lock().expect("triggers lock");
        let names: Vec<(String, String)> = running
            .iter()
            .filter(|((s, _), t)| s == space && t.origin.is_declared_by(function))
            .map(|(key, _)| key.clone())
            .collect();
        let mut stopping = BTreeMap::new();
        for key in names {
            let trigger = running.remove(&key).expect("present");
            tracing::info!(space, function, mqtt_trigger = %key.1, "mqtt trigger stopping");
            stopping.insert(key.1, tokio::spawn(stop(trigger)));
        }
        stopping
    }
}

/// The trigger's password: given, or read from the environment variable `password_env` names.
fn password(config: &MqttTriggerConfig) -> Result<Option<String>, MqttError> {
    match (&config.password, &config.password_env) {
        (Some(password), _) => Ok(Some(password.0.clone())),
        (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| MqttError::MissingPassword {
            name: config.name.clone(),
            var: var.clone(),
        }),
        (None, None) => Ok(None),
    }
}

/// Stops the workers first (messages being processed finish, and their acknowledgements go
/// out over the still-open connection), then the connection.
async fn stop(trigger: Running) {
    let _ = trigger.stop_workers.send(true);
    for worker in trigger.workers {
        let _ = worker.await;
    }
    let _ = trigger.stop_connection.send(true);
    let _ = trigger.connection.await;
}

fn view(trigger: &Running) -> TriggerView {
    let shared = &trigger.shared;
    TriggerView {
        space: shared.space.clone(),
        name: shared.config.name.clone(),
        kind: "mqtt",
        origin: trigger.origin.clone(),
        config: shared.config.clone(),
        status: shared.status.snapshot(shared.queue.len()),
    }
}

fn key(space: &str, name: &str) -> (String, String) {
    (space.to_string(), name.to_string())
}

fn store_key(space: &str, name: &str) -> Vec<u8> {
    format!("{space}/{name}").into_bytes()
}
