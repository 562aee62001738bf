//! `Invocation -> Outcome`: the one path every trigger uses. Picks the function's active
//! version, waits for a concurrency slot, runs the call in a fresh instance and `Store` under
//! its limits (memory, timeout via epochs), and classifies whatever happened.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::Trap;

use crate::bindings::types;
pub use crate::caller::{AccessToken, Caller, Resource};
use crate::capabilities::{Capabilities, HostScope};
use crate::error::InvokeError;
use crate::guest_threads::GuestThreads;
use crate::host::MemoryLimitExceeded;
use crate::pool::{self, InstanceSlot, PoolBudget, PoolSettings};
use crate::registry::{FunctionVersion, Registry};
use crate::running::{RunSlot, RunSlots};
use wasmfn_host_apis::config::FunctionConfig;
use wasmfn_host_apis::log::LogLine;

/// The HTTP-like request a function sees.
#[derive(Clone, Debug, Default)]
pub struct RequestData {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

/// One call of one function, from any trigger.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    pub space: String,
    pub function: String,
    /// The entry asked for; `None` means the function's default entry.
    pub entry: Option<String>,
    pub arguments: crate::arguments::Arguments,
    pub request: RequestData,
    pub trigger: String,
    pub caller: Caller,
    /// Configuration sent with the call (the IXON call format's `config`, any JSON values);
    /// each key overrides the function's own value.
    pub config: BTreeMap<String, serde_json::Value>,
    /// The id the outcome and its log record get; `None`: a new one. Async jobs pass their
    /// own, so the id in the 202, the callback and the invocation log is one.
    pub id: Option<uuid::Uuid>,
}

/// What a function answered.
#[derive(Clone, Debug)]
pub struct FunctionResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

/// Time spent in each step of an invocation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timing {
    pub queued: Duration,
    pub instantiate: Duration,
    pub call: Duration,
    pub total: Duration,
}

/// Everything that happened in one invocation: the result and what the function printed.
#[derive(Debug)]
pub struct Outcome {
    pub id: uuid::Uuid,
    pub space: String,
    pub function: String,
    pub version: Option<String>,
    pub entry: Option<String>,
    pub trigger: String,
    /// The arguments as the function got them (JSON text), for the invocation log.
    pub arguments: String,
    pub result: Result<FunctionResponse, InvokeError>,
    /// The Python traceback, when the function raised.
    pub traceback: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub logs: Vec<LogLine>,
    /// The outbound requests it sent (`wasi:http`).
    pub outbound: Vec<crate::outbound::OutboundCall>,
    pub timing: Timing,
}

impl Outcome {
    /// The HTTP status this outcome maps to.
    pub fn status(&self) -> u16 {
        match &self.result {
            Ok(response) => response.status,
            Err(error) => error.status().as_u16(),
        }
    }
}

/// Sees every finished outcome (metrics, the invocation log). Called on the invocation's
/// task: it must not block.
pub trait OutcomeObserver: Send + Sync + 'static {
    fn observe(&self, outcome: &Outcome);
}

#[derive(Clone, Default)]
struct Observers(Arc<std::sync::RwLock<Vec<Arc<dyn OutcomeObserver>>>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.read().map(|o| o.len()).unwrap_or(0);
        f.debug_struct("Observers").field("count", &count).finish()
    }
}

/// Runs invocations against the functions in a registry.
#[derive(Clone, Debug)]
pub struct Invoker {
    registry: Arc<Registry>,
    observers: Observers,
    /// Storage and the IXON API, once the server has opened them (`wasmfn serve`).
    capabilities: Arc<std::sync::OnceLock<Arc<Capabilities>>>,
    /// Configuration set through the admin API, once the node has opened it.
    config_store: Arc<std::sync::OnceLock<Arc<dyn ConfigSource>>>,
    /// Bounds the never-used instances made ahead of demand, and holds the node's instance
    /// slots (one per store, `--max-instances`).
    pool: Arc<PoolBudget>,
    /// Bounds the invocations running at once across the node.
    running: Arc<RunSlots>,
    /// Where the calls run: threads of their own, below the serving threads, or in place.
    guests: GuestThreads,
}

/// Configuration set for a function outside its bundle (the admin API's, kept by the node),
/// applied over the bundle's at every invocation.
pub trait ConfigSource: Send + Sync + std::fmt::Debug {
    /// The configuration `space/function` runs with: `bundle`'s, with what was set applied.
    fn config(&self, space: &str, function: &str, bundle: &FunctionConfig) -> FunctionConfig;

    /// The outside hosts `space/function` may reach when the operator replaced its
    /// `[network] allow`; `None`: the bundle's.
    fn network(
        &self,
        _space: &str,
        _function: &str,
    ) -> Option<Arc<wasmfn_host_apis::outbound::NetworkAllowlist>> {
        None
    }
}

impl Invoker {
    /// `max_running` invocations run at once across the node (0: 4 per CPU core); calls run on
    /// `guests`.
    pub fn new(
        registry: Arc<Registry>,
        pool: PoolSettings,
        max_instances: u32,
        max_running: usize,
        guests: GuestThreads,
    ) -> Self {
        Self {
            registry,
            observers: Observers::default(),
            capabilities: Arc::default(),
            config_store: Arc::default(),
            pool: PoolBudget::new(pool, max_instances),
            running: RunSlots::new(max_running),
            guests,
        }
    }

    /// The node's run slots: how many invocations may run at once and how many do.
    pub fn run_slots(&self) -> &Arc<RunSlots> {
        &self.running
    }

    /// Never-used instances ready across the node.
    pub fn pooled_instances(&self) -> usize {
        self.pool.ready()
    }

    /// Instance slots no store holds now (of `--max-instances`).
    pub fn free_instance_slots(&self) -> usize {
        self.pool.free_slots()
    }

    /// Applies the admin API's configuration to every later invocation. Set once.
    pub fn set_config_store(&self, store: Arc<dyn ConfigSource>) {
        let _ = self.config_store.set(store);
    }

    /// The function's configuration as every invocation starts from: the bundle's, with what
    /// the admin API set applied.
    fn function_config(&self, version: &FunctionVersion) -> FunctionConfig {
        match self.config_store.get() {
            Some(store) => store.config(&version.space, &version.name, &version.config),
            None => version.config.clone(),
        }
    }

    /// The outside hosts the function may reach: the operator's list, else its bundle's.
    fn network(
        &self,
        version: &FunctionVersion,
    ) -> Arc<wasmfn_host_apis::outbound::NetworkAllowlist> {
        self.config_store
            .get()
            .and_then(|store| store.network(&version.space, &version.name))
            .unwrap_or_else(|| version.network.clone())
    }

    /// Refuses a caller's `config` that names a secret of the function (a `[secrets]` key of
    /// its bundle or one set through the admin API): callers never replace secrets.
    pub fn check_caller_config(
        &self,
        version: &FunctionVersion,
        config: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), InvokeError> {
        if config.is_empty() {
            return Ok(());
        }
        let function_config = self.function_config(version);
        match config.keys().find(|key| function_config.is_secret(key)) {
            Some(key) => Err(InvokeError::SecretOverride { key: key.clone() }),
            None => Ok(()),
        }
    }

    /// Gives every later invocation the document store, object storage and IXON API client.
    /// Set once; later calls are ignored.
    pub fn set_capabilities(&self, capabilities: Arc<Capabilities>) {
        let _ = self.capabilities.set(capabilities);
    }

    pub fn capabilities(&self) -> Option<&Arc<Capabilities>> {
        self.capabilities.get()
    }

    /// Adds an observer of every outcome from now on.
    pub fn observe(&self, observer: Arc<dyn OutcomeObserver>) {
        self.observers.0.write().unwrap_or_else(|e| e.into_inner()).push(observer);
    }

    fn finish(&self, outcome: &Outcome) {
        log_outcome(outcome);
        for observer in self.observers.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            observer.observe(outcome);
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Resolves the function and runs the invocation.
    pub async fn invoke(&self, invocation: Invocation) -> Outcome {
        match self.registry.get(&invocation.space, &invocation.function) {
            Ok(version) => self.invoke_version(version, invocation).await,
            Err(error) => {
                let outcome = Outcome::failed(&invocation, None, error);
                self.finish(&outcome);
                outcome
            }
        }
    }

    /// Runs the invocation on a version the caller already resolved (the HTTP trigger does, to
    /// apply the function's body limit before reading the body).
    pub async fn invoke_version(
        &self,
        version: Arc<FunctionVersion>,
        invocation: Invocation,
    ) -> Outcome {
        let started = Instant::now();
        let mut outcome = match version.resolve_entry(invocation.entry.as_deref()) {
            Ok(entry) => match acquire(&version).await {
                Ok(_permit) => {
                    // In line for the node's CPU after the function's own concurrency limit;
                    // the timeout counts from here.
                    let slot = self.running.acquire().await;
                    let queued = started.elapsed();
                    // Only what an outcome without a call needs, kept should the call's task
                    // end without one (a panic in host code).
                    let lost = Invocation {
                        space: invocation.space.clone(),
                        function: invocation.function.clone(),
                        entry: invocation.entry.clone(),
                        trigger: invocation.trigger.clone(),
                        id: invocation.id,
                        ..Invocation::default()
                    };
                    let this = self.clone();
                    let running = version.clone();
                    let call = async move { this.run(&running, &entry, &invocation, slot).await };
                    let mut outcome = match self.guests.run(call).await {
                        Some(outcome) => outcome,
                        None => Outcome::failed(
                            &lost,
                            Some(&version),
                            InvokeError::Trap("the call ended in an error of the server".into()),
                        ),
                    };
                    outcome.timing.queued = queued;
                    outcome
                }
                Err(error) => Outcome::failed(&invocation, Some(&version), error),
            },
            Err(error) => Outcome::failed(&invocation, Some(&version), error),
        };
        outcome.timing.total = started.elapsed();
        self.finish(&outcome);
        outcome
    }

    /// An instance slot for a new store: at once when one is free; else waited for until
    /// `deadline` with the run slot given up meanwhile, since the slots may be held by calls
    /// that gave theirs up to wait on the network and need one back to finish.
    async fn instance_slot(
        &self,
        run_slot: &mut RunSlot,
        deadline: Instant,
    ) -> Option<InstanceSlot> {
        if let Some(free) = self.pool.try_instance_slot() {
            return Some(free);
        }
        run_slot.park();
        let waited = self.pool.instance_slot(deadline).await;
        run_slot.resume().await;
        waited
    }

    async fn run(
        &self,
        version: &Arc<FunctionVersion>,
        entry: &str,
        invocation: &Invocation,
        mut slot: RunSlot,
    ) -> Outcome {
        let limits = &version.limits;
        let config = self.function_config(version);
        // Callers' config never replaces a secret: refused at the door (see
        // `check_caller_config`), and left out here should any other path carry one.
        let caller_config: BTreeMap<String, serde_json::Value> = invocation
            .config
            .iter()
            .filter(|(key, _)| !config.is_secret(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let config = config.with_overrides(&caller_config);
        let scope = self.capabilities.get().map(|capabilities| {
            HostScope::new(
                capabilities.clone(),
                &version.space,
                &version.collection,
                version.allowlist.clone(),
                self.network(version),
                &invocation.caller,
            )
        });
        let mut wit_invocation = to_wit(version, entry, invocation, &config);
        let mut timing = Timing::default();
        // A guest blocked inside a host call is not interrupted by epochs; this outer timeout
        // is the backstop, a little later so that the epoch trap normally wins.
        let backstop = limits.timeout() + Duration::from_millis(50);
        let deadline = Instant::now() + limits.timeout();
        // A never-used instance made ahead of demand when one waits; else one made now.
        let instantiate_started = Instant::now();
        let (mut store, ready, instance_slot) = match pool::take(version, &self.pool) {
            Some(ready) => (ready.store, Ok(ready.instance), ready.slot),
            None => match self.instance_slot(&mut slot, deadline).await {
                Some(instance_slot) => {
                    let pre = version.pre();
                    (pool::new_store(&pre, version), Err(pre), instance_slot)
                }
                // Every slot stayed taken until the call's deadline.
                None => {
                    return Outcome::failed(invocation, Some(version), InvokeError::NoInstanceSlot)
                }
            },
        };
        // The slot is held until the store is dropped: the memory reset is this call's work too.
        store.data_mut().bind(config.clone(), scope, deadline, slot);
        pool::set_deadline(&mut store, deadline, pool::YIELD_SLICE_TICKS);
        let call = async {
            // A never-used instance made ahead of demand, or the code to make one from now.
            let instance = match ready {
                Ok(instance) => instance,
                Err(pre) => pre.instantiate_async(&mut store).await?,
            };
            timing.instantiate = instantiate_started.elapsed();
            let call_started = Instant::now();
            let result =
                instance.wasmfn_platform_handler().call_handle(&mut store, &wit_invocation).await;
            timing.call = call_started.elapsed();
            result
        };
        let raw = tokio::time::timeout(backstop, call).await;

        let mut traceback = None;
        let too_large =
            |size: u64| InvokeError::ResponseTooLarge { size, limit: limits.max_response_bytes };
        // A refused piece of the body decides the answer whatever the function did next.
        let refused = store.data().response.refused();
        let result = match raw {
            Err(_elapsed) => Err(InvokeError::Timeout { timeout_ms: limits.timeout_ms }),
            Ok(Err(error)) => Err(classify_trap(&error, store.data().limiter.exceeded, limits)),
            Ok(Ok(_)) if let Some(size) = refused => Err(too_large(size)),
            Ok(Ok(Err(function_error))) => Err(match function_error {
                types::FunctionError::NotFound(message) => InvokeError::EntryNotFound(message),
                types::FunctionError::BadArguments(message) => InvokeError::BadArguments(message),
                types::FunctionError::ResponseTooLarge(size) => too_large(size),
                types::FunctionError::Exception(info) => {
                    traceback = Some(info.traceback);
                    InvokeError::FunctionException {
                        type_name: info.type_name,
                        message: info.message,
                    }
                }
            }),
            Ok(Ok(Ok(response))) => Ok(FunctionResponse {
                status: response.status,
                headers: response.headers,
                body: store.data_mut().response.take().into(),
            }),
        };
        let result = result.and_then(valid_headers);
        let state = store.data_mut();
        let mut outcome = Outcome {
            id: invocation.id.unwrap_or_else(uuid::Uuid::new_v4),
            space: version.space.clone(),
            function: version.name.clone(),
            version: Some(version.version.clone()),
            entry: Some(entry.to_string()),
            trigger: invocation.trigger.clone(),
            // Already serialised for the guest: the log takes it as it is, at no extra cost.
            arguments: std::mem::take(&mut wit_invocation.arguments),
            result,
            traceback,
            stdout: state.stdout.text(),
            stderr: state.stderr.text(),
            logs: state.take_logs(),
            outbound: state.outbound.take_calls(),
            timing,
        };
        // The answer does not wait for the memory reset: the store is dropped in a task of its
        // own (about 0.1-0.2 ms of copying dirty pages back), and only then is the keeper told
        // to make the next instance, so that it takes the slot just reset, still warm
        // (refilling before the reset made it take a cold one: page faults and more resident
        // memory). The run slot goes with the store.
        let version = version.clone();
        tokio::spawn(async move {
            drop(store);
            drop(instance_slot);
            pool::refill(&version);
        });
        if config.has_secrets() {
            outcome.redact(&config);
        }
        outcome
    }
}

/// A response whose headers are all valid HTTP, else the first bad one as the function's
/// error: a value with CR, LF or NUL would otherwise be dropped silently from the answer and
/// fail every callback attempt.
fn valid_headers(response: FunctionResponse) -> Result<FunctionResponse, InvokeError> {
    for (name, value) in &response.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(InvokeError::InvalidResponse(format!(
                "{name:?} is not a valid header name"
            )));
        }
        if http::HeaderValue::from_bytes(value.as_bytes()).is_err() {
            return Err(InvokeError::InvalidResponse(format!(
                "the value of header '{name}' contains a control character (CR, LF, NUL)"
            )));
        }
    }
    Ok(response)
}

impl Outcome {
    /// Removes secret values from everything recorded about the call: output, log lines, the
    /// traceback and the error message (the function's own response body is its business).
    fn redact(&mut self, config: &FunctionConfig) {
        self.stdout = config.redact(&self.stdout);
        self.stderr = config.redact(&self.stderr);
        self.traceback = self.traceback.as_deref().map(|t| config.redact(t));
        self.arguments = config.redact(&self.arguments);
        for line in &mut self.logs {
            line.message = config.redact(&line.message);
        }
        if let Err(InvokeError::FunctionException { message, .. }) = &mut self.result {
            *message = config.redact(message);
        }
    }

    /// An outcome for an invocation that never reached an instance.
    pub fn failed(
        invocation: &Invocation,
        version: Option<&FunctionVersion>,
        error: InvokeError,
    ) -> Self {
        Self {
            id: invocation.id.unwrap_or_else(uuid::Uuid::new_v4),
            space: invocation.space.clone(),
            function: invocation.function.clone(),
            version: version.map(|v| v.version.clone()),
            entry: invocation.entry.clone(),
            trigger: invocation.trigger.clone(),
            arguments: arguments_json(invocation),
            result: Err(error),
            traceback: None,
            stdout: String::new(),
            stderr: String::new(),
            logs: Vec::new(),
            outbound: Vec::new(),
            timing: Timing::default(),
        }
    }
}

/// One server log line per invocation; a Python exception's traceback and the function's output
/// go with it, so the operator sees what the caller's error body leaves out.
fn log_outcome(outcome: &Outcome) {
    let status = outcome.status();
    let version = outcome.version.as_deref().unwrap_or("-");
    let entry = outcome.entry.as_deref().unwrap_or("-");
    let duration_us = outcome.timing.total.as_micros() as u64;
    // Where the time went: waiting for a concurrency slot, making the instance, the call.
    let queued_us = outcome.timing.queued.as_micros() as u64;
    let instantiate_us = outcome.timing.instantiate.as_micros() as u64;
    let call_us = outcome.timing.call.as_micros() as u64;
    match &outcome.result {
        Ok(_) => tracing::info!(
            invocation_id = %outcome.id, space = %outcome.space, function = %outcome.function,
            version, entry, trigger = %outcome.trigger, status, duration_us, queued_us,
            instantiate_us, call_us, "invocation finished"
        ),
        Err(error) => tracing::warn!(
            invocation_id = %outcome.id, space = %outcome.space, function = %outcome.function,
            version, entry, trigger = %outcome.trigger, status, duration_us, queued_us,
            instantiate_us, call_us, code = error.code(), error = %error,
            traceback = outcome.traceback.as_deref().unwrap_or(""),
            "invocation failed"
        ),
    }
    if !outcome.stdout.is_empty() || !outcome.stderr.is_empty() || !outcome.logs.is_empty() {
        tracing::debug!(
            invocation_id = %outcome.id, stdout = %outcome.stdout, stderr = %outcome.stderr,
            logs = ?outcome.logs, "function output"
        );
    }
}

/// Waits for a concurrency slot, or refuses when too many callers already wait.
async fn acquire(
    version: &FunctionVersion,
) -> Result<tokio::sync::OwnedSemaphorePermit, InvokeError> {
    if let Ok(permit) = version.gate.clone().try_acquire_owned() {
        return Ok(permit);
    }
    let overloaded = || InvokeError::Overloaded { function: version.name.clone() };
    if version.waiting.fetch_add(1, Ordering::SeqCst) >= version.limits.max_queue {
        version.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(overloaded());
    }
    // Counted down however the wait ends, also when the caller goes away meanwhile (a
    // dropped future), so the count cannot creep up into permanent 503s.
    struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _waiting = Waiting(&version.waiting);
    version.gate.clone().acquire_owned().await.map_err(|_| overloaded())
}

/// What an error out of a guest call means for the caller: the function's timeout or memory
/// limit, no free instance slot, a trap, or a failure of the host (logged, not shown).
pub fn classify_trap(
    error: &wasmtime::Error,
    memory_exceeded: bool,
    limits: &crate::limits::Limits,
) -> InvokeError {
    if memory_exceeded || error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return InvokeError::MemoryLimit { limit_mb: limits.memory_mb };
    }
    if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        return InvokeError::NoInstanceSlot;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout { timeout_ms: limits.timeout_ms },
        Some(Trap::StackOverflow) => InvokeError::Trap("stack overflow".into()),
        Some(trap) => InvokeError::Trap(trap.to_string()),
        None => {
            tracing::warn!(error = %format!("{error:#}"), "invocation failed in the host");
            InvokeError::Trap("the instance failed".into())
        }
    }
}

/// The arguments as the guest receives them, JSON text (and so the invocation log).
fn arguments_json(invocation: &Invocation) -> String {
    invocation.arguments.as_str().to_string()
}

/// The configuration as the guest receives it: each value as JSON text; last, under
/// [`crate::registry::DEV_SOURCES_KEY`], the sources `wasmfn dev` reloads, if any.
fn wit_config(version: &FunctionVersion, config: &FunctionConfig) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(sources) = &version.dev_sources {
        pairs.push((crate::registry::DEV_SOURCES_KEY.to_string(), sources.to_string()));
    }
    pairs
}

/// What the guest's `handle` receives for `invocation` (public for `wasmfn bench`).
pub fn to_wit(
    version: &FunctionVersion,
    entry: &str,
    invocation: &Invocation,
    config: &FunctionConfig,
) -> types::Invocation {
    let request = &invocation.request;
    types::Invocation {
        function: version.name.clone(),
        entry: entry.to_string(),
        arguments: arguments_json(invocation),
        request: types::Request {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body: request.body.to_vec(),
        },
        trigger: invocation.trigger.clone(),
        caller: caller_to_wit(&invocation.caller),
        // JSON text: the guest decodes each value (`context.config` holds any JSON, as on IXON).
        config: wit_config(version, config),
        max_response_bytes: u64::try_from(version.limits.max_response_bytes).unwrap_or(u64::MAX),
    }
}

fn caller_to_wit(caller: &Caller) -> types::Caller {
    let resource = |r: &Option<Resource>| {
        r.as_ref().map(|r| types::FunctionResource {
            public_id: r.public_id.clone(),
            name: r.name.clone(),
            custom_properties: serde_json::Value::Object(r.custom.clone()).to_string(),
            permissions: r.permissions.clone(),
        })
    };
    types::Caller {
        user: resource(&caller.user),
        company: resource(&caller.company),
        agent: resource(&caller.agent),
        asset: resource(&caller.asset),
        template: resource(&caller.template),
        api_application: resource(&caller.api_application),
    }
}
