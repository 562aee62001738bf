//! A serving node: the runtime plus everything `wasmfn serve` runs beside the HTTP server (cron
//! scheduler, MQTT triggers, callback deliveries, admin token), assembled one way for the CLI
//! and the tests alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::access::replay::{self, SeenSignatures};
use crate::access::signature::IngressVerifier;
use crate::access::{Access, AccessPolicy};
use crate::admin::{AdminState, CronInfo};
use crate::capabilities::{Capabilities, CapabilityOptions};
use crate::delivery::{Deliverer, DeliveryPolicy};
use crate::deploy::Deployments;
use crate::events::subscriptions::Origin;
use crate::events::{EventBus, EventKind, Sessions, Subscription, SubscriptionStore, Target};
use crate::function_config::ConfigStore;
use crate::logs::{InvocationLog, LogOptions, LogTasks};
use crate::metrics::Metrics;
use crate::registry::FunctionVersion;
use crate::runtime::Runtime;
use crate::server::AppState;
use crate::state::StateDb;
use crate::triggers::async_invoke::jobs::BodyFiles;
use crate::triggers::async_invoke::{AsyncJobs, AsyncOptions};
use crate::triggers::cron::{self, CallbackTarget, Clock, CronJob, CronScheduler, SystemClock};
use crate::triggers::mqtt::{MqttTriggers, RetryPolicy, TriggerOrigin};

/// How a node is set up.
#[derive(Debug)]
pub struct NodeOptions {
    /// Where admin-created triggers are saved; `None` keeps them in memory only.
    pub state: Option<StateDb>,
    pub admin_token: String,
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
    /// Lifetime of webhooks' function sessions, and the clock they are checked against.
    pub events: EventOptions,
}

/// Settings of event triggers.
pub struct EventOptions {
    /// Minutes a `_function_session` token is valid (10-20).
    pub session_minutes: u64,
    pub clock: Arc<dyn Clock>,
}

impl Default for EventOptions {
    fn default() -> Self {
        Self {
            session_minutes: crate::events::session::DEFAULT_MINUTES,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for EventOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventOptions").field("session_minutes", &self.session_minutes).finish()
    }
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
    admin_token: Arc<str>,
    cron_jobs: Vec<CronJob>,
    cron: Option<(CronScheduler, Arc<Vec<CronInfo>>)>,
    state: StateDb,
    pub config: Arc<ConfigStore>,
    pub subscriptions: Arc<SubscriptionStore>,
    pub sessions: Arc<Sessions>,
    pub events: Arc<EventBus>,
}

impl Node {
    pub fn new(runtime: Arc<Runtime>, options: NodeOptions) -> Result<Self> {
        let deliverer = Deliverer::new(options.delivery);
        // Without a state directory, a temporary one: nothing survives the process.
        let state = match options.state {
            Some(state) => state,
            None => StateDb::temporary()?,
        };
        let mqtt = Arc::new(MqttTriggers::new(
            runtime.invoker().clone(),
            deliverer.clone(),
            options.mqtt_retry,
            Some((state.tree("mqtt_triggers")?, state.sealer().clone())),
        ));
        // Before anything starts: a stored password that does not open ends the start here.
        mqtt.reseal()?;
        let deployments = Arc::new(Deployments::new(
            runtime.clone(),
            state.bundles_dir(),
            state.tree("functions")?,
            options.keep_versions,
        ));
        let seen = SeenSignatures::open(state.tree("ingress_seen")?, replay::DEFAULT_CAPACITY);
        let access = Arc::new(Access::new(
            state.tree("api_keys")?,
            options.default_access,
            options.ingress,
            seen,
        ));
        let async_jobs = AsyncJobs::new(
            state.tree("async_jobs")?,
            BodyFiles::open(state.data_dir().join("async-bodies"))?,
            runtime.invoker().clone(),
            deliverer.clone(),
            options.async_options,
        );
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
        let session_key = crate::capabilities::node_secret(&state, "sessions")?;
        let sessions = Arc::new(
            Sessions::new(session_key, options.events.session_minutes, options.events.clock)
                .map_err(anyhow::Error::msg)?,
        );
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
            admin_token: options.admin_token.into(),
            cron_jobs: Vec::new(),
            cron: None,
            state,
            config,
            subscriptions,
            sessions,
            events,
        })
    }

    /// Opens the document store, object storage and IXON API client and gives them to every
    /// invocation from now on. Call before loading functions.
    pub async fn open_capabilities(
        &self,
        options: &CapabilityOptions,
    ) -> Result<Arc<Capabilities>> {
        let capabilities = Arc::new(Capabilities::open(options, &self.state).await?);
        capabilities.documents.subscribe(self.events.clone());
        capabilities.objects.subscribe(self.events.clone());
        self.runtime.invoker().set_capabilities(capabilities.clone());
        Ok(capabilities)
    }

    /// Loads a bundle as the active version of its function and starts the triggers its
    /// `function.toml` declares (cron ones when [`Node::start_cron`] runs).
    pub async fn load(&mut self, bytes: Vec<u8>, space: &str) -> Result<Arc<FunctionVersion>> {
        self.load_with_config(bytes, space, &Default::default()).await
    }

    /// [`Node::load`], with `config` replacing the bundle's configuration values key by key.
    pub async fn load_with_config(
        &mut self,
        bytes: Vec<u8>,
        space: &str,
        config: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<Arc<FunctionVersion>> {
        // Unreadable metadata fails `load` below, with its own message.
        let meta = crate::bundle::read_meta(&bytes).ok().flatten().unwrap_or_default();
        let version = self.runtime.load_with_config(bytes, space, None, config).await?;
        self.cron_jobs.extend(cron::jobs_for(&version, &meta.cron)?);
        for trigger in &meta.mqtt {
            let config = trigger.for_function(&version.name);
            version
                .resolve_entry(config.functions[0].entry.as_deref())
                .with_context(|| format!("mqtt trigger '{}'", trigger.name))?;
            let origin = TriggerOrigin::FunctionToml { function: version.name.clone() };
            self.mqtt.create(space, config, origin)?;
        }
        self.subscriptions.remove_manifest(space, &version.name);
        for trigger in &meta.events {
            version
                .resolve_entry(trigger.entry.as_deref())
                .with_context(|| format!("event trigger '{}'", trigger.name))?;
            let events =
                trigger.events.iter().map(|e| EventKind::parse(e)).collect::<Result<Vec<_>, _>>();
            self.subscriptions
                .add(Subscription {
                    space: space.to_string(),
                    name: trigger.name.clone(),
                    events: events.map_err(anyhow::Error::msg)?,
                    collection: trigger.collection.clone(),
                    key_prefix: trigger.key_prefix.clone(),
                    target: Target::Function {
                        function: version.name.clone(),
                        entry: trigger.entry.clone(),
                    },
                    callback_url: trigger.callback_url.clone(),
                    origin: Origin::Manifest,
                })
                .with_context(|| format!("event trigger '{}'", trigger.name))?;
        }
        Ok(version)
    }

    /// Activates the functions deployed through the admin API in an earlier run; they take
    /// over from a function of the same name served from a path.
    pub async fn restore_deployments(&self) -> Result<usize> {
        Ok(self.deployments.restore().await?)
    }

    /// Starts the admin-created MQTT triggers saved by an earlier run.
    pub fn restore_triggers(&self) -> Result<usize> {
        Ok(self.mqtt.restore()?)
    }

    /// Starts the cron triggers of every function loaded so far.
    pub fn start_cron(&mut self, clock: Arc<dyn Clock>) {
        for job in &self.cron_jobs {
            tracing::info!(
                function = %job.function, cron_trigger = %job.trigger.name,
                schedule = %job.trigger.schedule.source(), timezone = %job.trigger.tz(),
                "cron trigger started"
            );
        }
        let jobs = std::mem::take(&mut self.cron_jobs);
        let callbacks = jobs
            .iter()
            .filter_map(|job| {
                let url = job.trigger.callback_url.as_ref()?.0.clone();
                Some(((job.space.clone(), job.function.clone(), job.trigger.name.clone()), url))
            })
            .collect();
        let target = Arc::new(CallbackTarget {
            invoker: self.runtime.invoker().clone(),
            deliverer: self.deliverer.clone(),
            callbacks,
        });
        let scheduler = CronScheduler::start(jobs.clone(), target, clock, None);
        let infos = jobs
            .iter()
            .zip(scheduler.stats())
            .map(|(job, (_, stats))| CronInfo {
                space: job.space.clone(),
                function: job.function.clone(),
                name: job.trigger.name.clone(),
                schedule: job.trigger.schedule.source().to_string(),
                timezone: job.trigger.tz().name().to_string(),
                stats: stats.clone(),
            })
            .collect();
        self.cron = Some((scheduler, Arc::new(infos)));
    }

    /// Requeues the async jobs a crash interrupted, redelivers their pending callbacks and
    /// starts the async workers. Returns (jobs requeued, callbacks redelivered).
    pub fn start_async(&mut self) -> Result<(usize, usize)> {
        let restored = self.async_jobs.restore()?;
        let (stop, watcher) = watch::channel(false);
        let workers = self.async_jobs.start(watcher);
        self.async_workers = Some((stop, workers));
        Ok(restored)
    }

    /// Marks the node ready for traffic (`/readyz` answers 200).
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The state of every request handler.
    pub fn app_state(&self, ingress_root: Option<(String, String)>) -> AppState {
        let cron = self.cron.as_ref().map(|(_, infos)| infos.clone()).unwrap_or_default();
        AppState {
            invoker: self.runtime.invoker().clone(),
            ingress_root,
            runtime: self.runtime.clone(),
            access: self.access.clone(),
            async_jobs: self.async_jobs.clone(),
            ready: self.ready.clone(),
            admin: AdminState {
                token: self.admin_token.clone(),
                mqtt: self.mqtt.clone(),
                cron,
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
            },
            sessions: self.sessions.clone(),
        }
    }

    /// Stops the triggers, letting runs in flight finish.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::SeqCst);
        if let Some((scheduler, _)) = self.cron {
            scheduler.shutdown().await;
        }
        self.mqtt.shutdown().await;
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
