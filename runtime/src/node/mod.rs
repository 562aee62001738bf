//! A serving node: the runtime plus everything `wasmfn serve` runs beside the HTTP server
//! (triggers, async workers, callback deliveries, invocation log, admin token), assembled one
//! way for the CLI and the tests alike: [`Node::new`] builds the parts, [`Node::start`] runs the
//! whole start-up in its one order, [`Node::shutdown`] stops it.

mod backends;
mod cluster;
mod indexes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::access::admin_token::AdminToken;
use crate::access::replay::{self, SeenSignatures};
use crate::access::signature::IngressVerifier;
use crate::access::{Access, AccessPolicy};
use crate::admin::AdminContext;
use crate::capabilities::Capabilities;
use crate::delivery::{Deliverer, DeliveryLog, DeliveryPolicy};
use crate::deploy::Deployments;
use crate::events::{EventBus, Sessions, SubscriptionStore};
use crate::function_config::ConfigStore;
use crate::invocation_log::{InvocationLog, LogOptions, LogTasks};
use crate::metrics::Metrics;
use crate::registry::FunctionVersion;
use crate::runtime::Runtime;
use crate::server::ServerContext;
pub use crate::signing_keys::node_secret;
use crate::state::StateDb;
use crate::triggers::async_invoke::jobs::{BodyFiles, SharedTrees};
use crate::triggers::async_invoke::{AsyncJobs, AsyncOptions};
use crate::triggers::cron::{Clock, CronTriggers, SystemClock, TickClaims};
use crate::triggers::lifecycle::FunctionTriggers;
use crate::triggers::mqtt::{MqttTriggers, RetryPolicy};
pub use backends::{open as open_capabilities, CapabilityOptions};

/// How a node is set up.
pub struct NodeOptions {
    /// Where admin-created triggers are saved; `None` keeps them in memory only.
    pub state: Option<StateDb>,
    /// The admin API's token (the cluster's, when the state is shared).
    pub admin_token: AdminToken,
    pub mqtt_retry: RetryPolicy,
    pub delivery: DeliveryPolicy,
    /// Versions kept per deployed function.
    pub keep_versions: usize,
    /// Access of functions whose `function.toml` sets none.
    pub default_access: AccessPolicy,
    /// Public keys ingress calls must be signed with (none: unsigned calls are accepted).
    pub ingress: IngressVerifier,
    /// Concurrency and queue limit of asynchronous invocations.
    pub async_options: AsyncOptions,
    /// Retention of the invocation log.
    pub log_options: LogOptions,
    /// Lifetime of webhooks' function sessions.
    pub events: EventOptions,
    /// The time cron triggers fire by and function sessions expire by (tests give a manual
    /// one).
    pub clock: Arc<dyn Clock>,
    /// Whether console session cookies are `Secure` (the server is reached over https).
    pub secure_cookies: bool,
    /// This node's id when it is one of several sharing the MQTT broker (`--node-id`).
    pub node_id: Option<String>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("keep_versions", &self.keep_versions)
            .field("default_access", &self.default_access)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Settings of event triggers.
#[derive(Debug)]
pub struct EventOptions {
    /// Minutes a `_function_session` token is valid (10-20).
    pub session_minutes: u64,
}

impl Default for EventOptions {
    fn default() -> Self {
        Self { session_minutes: crate::events::session::DEFAULT_MINUTES }
    }
}

/// A bundle given to `wasmfn serve`, loaded as the active version of its function.
#[derive(Debug)]
pub struct ServedBundle {
    pub space: String,
    /// Its bytes, hashed already where the caller had to (to say whether it compiles now).
    pub bytes: crate::bundle::BundleBytes,
    /// Replaces the bundle's configuration values key by key (a folder's IXON dev values).
    pub config: BTreeMap<String, serde_json::Value>,
    /// Where it came from (a path), for errors.
    pub source: String,
}

/// What [`Node::start`] did.
#[derive(Debug)]
pub struct Started {
    pub capabilities: Arc<Capabilities>,
    /// The served bundles' versions, in the order given.
    pub served: Vec<Arc<FunctionVersion>>,
    /// Deployed functions made active again.
    pub deployed: usize,
    /// Async jobs a crash interrupted, queued again, and callbacks delivered again.
    pub requeued: usize,
    pub redelivered: usize,
    /// Admin-created MQTT triggers started again.
    pub mqtt_restored: usize,
}

/// The runtime and the triggers around it.
#[derive(Debug)]
pub struct Node {
    pub runtime: Arc<Runtime>,
    pub mqtt: Arc<MqttTriggers>,
    pub deliverer: Arc<Deliverer>,
    pub deployments: Arc<Deployments>,
    pub access: Arc<Access>,
    pub metrics: Arc<Metrics>,
    pub async_jobs: Arc<AsyncJobs>,
    async_workers: Option<(watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>)>,
    pub logs: Arc<InvocationLog>,
    log_tasks: LogTasks,
    /// Set once everything is loaded and the server listens; cleared at shutdown.
    pub ready: Arc<AtomicBool>,
    admin_token: AdminToken,
    pub cron: Arc<CronTriggers>,
    /// Every trigger kind, started and stopped with the function versions that declare them.
    pub triggers: Arc<FunctionTriggers>,
    state: StateDb,
    pub config: Arc<ConfigStore>,
    pub subscriptions: Arc<SubscriptionStore>,
    pub sessions: Arc<Sessions>,
    pub events: Arc<EventBus>,
    /// Operators signed in to the console.
    pub console: Arc<crate::access::console::ConsoleSessions>,
    /// Operator accounts of the console.
    pub accounts: Arc<crate::access::accounts::Accounts>,
    /// Makes the document indexes active versions declare (kept here: the registry holds its
    /// listeners weakly).
    document_indexes: Option<Arc<indexes::DocumentIndexes>>,
    /// Follow the changes other nodes sharing the state make (none on a single node), and
    /// renew this node's record in the directory.
    followers: Vec<tokio::task::JoinHandle<()>>,
    /// The servers sharing this node's state (itself at least).
    pub directory: Arc<crate::directory::NodeDirectory>,
    /// Presign and session keys, rotated through the admin API.
    pub signing: Arc<crate::signing_keys::SigningKeys>,
}

impl Node {
    pub fn new(runtime: Arc<Runtime>, options: NodeOptions) -> Result<Self> {
        // Without a state directory, a temporary one: nothing survives the process.
        let state = match options.state {
            Some(state) => state,
            None => StateDb::temporary()?,
        };
        let deliverer =
            Deliverer::with_log(options.delivery, DeliveryLog::in_tree(state.tree("deliveries")?));
        let mqtt = Arc::new(
            MqttTriggers::new(
                runtime.invoker().clone(),
                deliverer.clone(),
                options.mqtt_retry,
                Some((state.tree("mqtt_triggers")?, state.sealer().clone())),
            )
            .in_cluster(options.node_id.clone()),
        );
        // Before anything starts: a stored password that does not open ends the start here.
        mqtt.reseal()?;
        let mut deployments = Deployments::new(
            runtime.clone(),
            state.bundles_dir(),
            state.tree("functions")?,
            options.keep_versions,
        );
        // This server's id in the directory, the versions it compiles and (without
        // `--node-id`, random) its async leases.
        let node_id =
            options.node_id.clone().unwrap_or_else(|| hex::encode(rand::random::<[u8; 4]>()));
        if state.shared() {
            deployments = deployments.in_cluster(state.tree("bundles")?, node_id.clone());
        }
        let deployments = Arc::new(deployments);
        let seen = SeenSignatures::open(state.tree("ingress_seen")?, replay::DEFAULT_CAPACITY);
        let access = Arc::new(Access::new(
            state.tree("api_keys")?,
            options.default_access,
            options.ingress,
            seen,
        ));
        let async_jobs = if state.shared() {
            // One queue for the cluster: records, bodies and leases in the shared state.
            let trees = SharedTrees {
                records: state.tree("async_jobs")?,
                bodies: state.tree("async_bodies")?,
                leases: state
                    .backend()
                    .leases("async")
                    .context("the shared state store keeps no job leases")?,
            };
            AsyncJobs::shared(
                trees,
                node_id.clone(),
                runtime.invoker().clone(),
                deliverer.clone(),
                options.async_options,
            )
        } else {
            AsyncJobs::new(
                state.tree("async_jobs")?,
                BodyFiles::open(state.data_dir().join("async-bodies"))?,
                runtime.invoker().clone(),
                deliverer.clone(),
                options.async_options,
            )
        };
        let directory = Arc::new(crate::directory::NodeDirectory::new(
            state.tree("nodes")?,
            node_id,
            runtime.registry().clone(),
            runtime.invoker().run_slots().clone(),
        ));
        let metrics = Metrics::new();
        runtime.invoker().observe(metrics.clone());
        let (logs, log_tasks) = InvocationLog::start(
            state.tree("log_records")?,
            state.tree("log_ids")?,
            options.log_options,
            Arc::new(SystemClock),
        );
        runtime.invoker().observe(logs.clone());
        let config =
            Arc::new(ConfigStore::open(state.tree("function_config")?, state.sealer().clone())?);
        runtime.invoker().set_config_store(config.clone());
        let subscriptions = Arc::new(SubscriptionStore::open(
            state.tree("event_subscriptions")?,
            state.sealer().clone(),
        )?);
        let signing = Arc::new(crate::signing_keys::SigningKeys::new(state.clone()));
        let sessions = Arc::new(
            Sessions::with_keys(
                signing.ring("sessions")?,
                options.events.session_minutes,
                options.clock.clone(),
            )
            .map_err(anyhow::Error::msg)?,
        );
        let accounts = Arc::new(crate::access::accounts::Accounts::open(
            state.tree("console_accounts")?,
            state.tree("console_invitations")?,
            state.tree("console_account_ids")?,
        ));
        let claims = match state.shared() {
            true => Some(TickClaims::new(state.tree("cron_ticks")?)),
            false => None,
        };
        let cron = Arc::new(
            CronTriggers::new(runtime.invoker().clone(), deliverer.clone(), options.clock.clone())
                .in_cluster(claims),
        );
        let triggers = Arc::new(FunctionTriggers::new(vec![
            cron.clone(),
            mqtt.clone(),
            subscriptions.clone(),
        ]));
        let listener: Arc<dyn crate::registry::ActivationListener> = triggers.clone();
        runtime.registry().listen(&listener);
        let events = EventBus::new(
            subscriptions.clone(),
            async_jobs.clone(),
            deliverer.clone(),
            sessions.clone(),
        );
        Ok(Self {
            runtime,
            mqtt,
            deliverer,
            deployments,
            access,
            metrics,
            async_jobs,
            async_workers: None,
            logs,
            log_tasks,
            ready: Arc::new(AtomicBool::new(false)),
            admin_token: options.admin_token,
            cron,
            triggers,
            state,
            config,
            subscriptions,
            sessions,
            events,
            console: Arc::new(crate::access::console::ConsoleSessions::new(options.secure_cookies)),
            accounts,
            document_indexes: None,
            followers: Vec::new(),
            directory,
            signing,
        })
    }

    /// Starts the node, in the one order the CLI and the tests share:
    /// 1. opens the document store, object storage and IXON API client, used by every
    ///    invocation from then on;
    /// 2. loads the served bundles (each version's declared triggers start as it becomes
    ///    active, see [`crate::triggers::lifecycle`]);
    /// 3. activates the functions deployed in an earlier run (they take over from a served
    ///    function of the same name, triggers included);
    /// 4. starts the admin-created MQTT triggers saved by an earlier run;
    /// 5. requeues the async jobs a crash interrupted and starts the async workers.
    ///
    /// Then the caller listens, and calls [`Node::mark_ready`].
    pub async fn start(
        &mut self,
        capabilities: &CapabilityOptions,
        served: Vec<ServedBundle>,
    ) -> Result<Started> {
        let capabilities = self.open_capabilities(capabilities).await?;
        let indexes = Arc::new(indexes::DocumentIndexes::new(capabilities.documents.clone()));
        let listener: Arc<dyn crate::registry::ActivationListener> = indexes.clone();
        self.runtime.registry().listen(&listener);
        self.document_indexes = Some(indexes);
        let mut versions = Vec::new();
        for bundle in served {
            let kept = bundle.bytes.bytes().to_vec();
            let version = self
                .runtime
                .load_with_config(bundle.bytes, &bundle.space, None, &bundle.config)
                .await
                .with_context(|| format!("loading {}", bundle.source))?;
            // Writing a CPython bundle and its fsync take ~30 ms: not on an async worker.
            let (deployments, served) = (self.deployments.clone(), version.clone());
            tokio::task::spawn_blocking(move || deployments.note_served(&served, &kept))
                .await?
                .with_context(|| format!("keeping {} for rollback", bundle.source))?;
            versions.push(version);
        }
        // Listening before restoring: a deploy made on another node meanwhile is not missed.
        if let Some(changes) = self.state.backend().changes() {
            self.followers = cluster::follow(
                changes,
                cluster::Followed {
                    deployments: self.deployments.clone(),
                    config: self.config.clone(),
                    subscriptions: self.subscriptions.clone(),
                    mqtt: self.mqtt.clone(),
                    signing: self.signing.clone(),
                    admin_token: self.admin_token.clone(),
                },
            );
        }
        let deployed = self.deployments.restore().await?;
        let mqtt_restored = self.mqtt.restore()?;
        let (requeued, redelivered) = self.async_jobs.restore()?;
        let (stop, watcher) = watch::channel(false);
        let workers = self.async_jobs.start(watcher);
        self.async_workers = Some((stop, workers));
        Ok(Started {
            capabilities,
            served: versions,
            deployed,
            requeued,
            redelivered,
            mqtt_restored,
        })
    }

    /// Opens the document store, object storage and IXON API client and gives them to every
    /// invocation from now on.
    async fn open_capabilities(&self, options: &CapabilityOptions) -> Result<Arc<Capabilities>> {
        let capabilities = Arc::new(backends::open(options, &self.state).await?);
        self.signing.adopt("presign", capabilities.presigner.keys().clone());
        // Links signed with the key before the last rotation stay valid.
        self.signing.reload()?;
        capabilities.documents.subscribe(self.events.listener());
        capabilities.objects.subscribe(self.events.listener());
        self.runtime.invoker().set_capabilities(capabilities.clone());
        Ok(capabilities)
    }

    /// Lists this node in the directory as reachable at `address`, renewed until shutdown.
    pub fn announce(&mut self, address: String) {
        let (mqtt, deployments) = (self.mqtt.clone(), self.deployments.clone());
        self.directory.on_gone(Box::new(move |gone| {
            drop(mqtt.adopt(gone));
            let (deployments, gone) = (deployments.clone(), gone.to_string());
            tokio::spawn(async move {
                if let Err(error) = deployments.adopt_compiles(&gone).await {
                    tracing::error!(%gone, %error, "could not take over a gone server's compiles");
                }
            });
        }));
        self.followers.push(self.directory.announce(address));
    }

    /// Marks the node ready for traffic (`/readyz` answers 200).
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The state of every request handler.
    pub fn app_state(&self, ingress_root: Option<(String, String)>) -> ServerContext {
        ServerContext {
            invoker: self.runtime.invoker().clone(),
            ingress_root,
            runtime: self.runtime.clone(),
            access: self.access.clone(),
            async_jobs: self.async_jobs.clone(),
            ready: self.ready.clone(),
            admin: AdminContext {
                token: self.admin_token.clone(),
                mqtt: self.mqtt.clone(),
                cron: self.cron.clone(),
                deliverer: self.deliverer.clone(),
                deployments: self.deployments.clone(),
                access: self.access.clone(),
                metrics: self.metrics.clone(),
                logs: self.logs.clone(),
                registry: self.runtime.registry().clone(),
                config: self.config.clone(),
                events: self.subscriptions.clone(),
                run_slots: self.runtime.invoker().run_slots().clone(),
                async_jobs: self.async_jobs.clone(),
                capabilities: self.runtime.invoker().capabilities().cloned(),
                invoker: self.runtime.invoker().clone(),
                console: self.console.clone(),
                accounts: self.accounts.clone(),
                event_bus: self.events.clone(),
                nodes: self.directory.clone(),
                signing: self.signing.clone(),
            },
            sessions: self.sessions.clone(),
            state: self.state.backend().clone(),
            readiness: Arc::default(),
        }
    }

    /// Stops the triggers, letting runs in flight finish.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::SeqCst);
        for follower in &self.followers {
            follower.abort();
        }
        self.triggers.shutdown().await;
        // After the triggers disconnected: another server then takes over their broker
        // sessions (what was left in them) without kicking a connection still acknowledging.
        let directory = self.directory.clone();
        let _ = tokio::task::spawn_blocking(move || directory.leave()).await;
        if let Some((stop, workers)) = self.async_workers {
            let _ = stop.send(true);
            for worker in workers {
                let _ = worker.await;
            }
        }
        // Last, so the outcomes of everything above are in it.
        self.log_tasks.shutdown().await;
        // sled writes to disk every half second; what came since (seen ingress signatures
        // among it) must survive a restart.
        if let Err(error) = self.state.db().flush_async().await {
            tracing::error!(%error, "flushing the state database at shutdown failed");
        }
    }
}
