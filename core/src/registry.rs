//! Spaces, functions and their loaded versions: which compiled bundle answers for
//! `<space>/<function>`. Loading a version builds its `InstancePre` once; swapping the active
//! version is atomic, and invocations in flight keep the `Arc` of the version they started on.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use wasmfn_host_apis::config::FunctionConfig;
use wasmtime::{Store, Trap};

use crate::bindings::FunctionPre;
use crate::bundle::{self, BundleError, BundleMeta, CompileCache, LoadedFrom};
use crate::error::InvokeError;
use crate::host::InvocationState;
use crate::limits::Limits;
use crate::tiers::{self, Baseline, Code, Compiler, Tier};

/// A loaded, ready-to-instantiate version of a function.
pub struct FunctionVersion {
    pub space: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Exposed entries, `module.function`, sorted.
    pub entries: Vec<String>,
    pub default_entry: Option<String>,
    pub config: FunctionConfig,
    pub limits: Limits,
    /// Who may invoke it, as its `function.toml` says (`None`: the server's default).
    pub access: Option<crate::manifest::access::AccessPolicy>,
    /// The document store collection it uses (`[documents] collection`, default its name).
    pub collection: String,
    /// The field paths its collection is indexed on (`[[documents.index]]`).
    pub indexes: Vec<String>,
    /// The IXON API endpoints it may call.
    pub allowlist: wasmfn_host_apis::ixon_api::Allowlist,
    /// The outside hosts it may connect to (`[network] allow`).
    pub network: Arc<wasmfn_host_apis::outbound::NetworkAllowlist>,
    /// The triggers its `function.toml` declares; they run while this version is active.
    pub triggers: crate::manifest::DeclaredTriggers,
    /// The component, linked and ready to instantiate (`wasmfn bench` instantiates it itself):
    /// Winch's code until Cranelift's is ready, when it comes from the baseline tier.
    pub code: Arc<Code>,
    /// Bounds concurrent invocations of this version.
    pub(crate) gate: Arc<Semaphore>,
    /// Invocations waiting for the gate (a metric).
    pub waiting: AtomicUsize,
    /// Never-used instances made ahead of demand.
    pub(crate) pool: crate::pool::InstancePool,
    pub loaded_from: LoadedFrom,
    pub load_time: Duration,
    /// `default_entry` as the bundle's `function.toml` gives it, if it does.
    pub(crate) declared_default: Option<String>,
    /// `wasmfn dev` only: the function folder's current sources (see [`with_dev_sources`]),
    /// which every call imports over the ones built into the bundle.
    pub dev_sources: Option<Arc<str>>,
}

impl std::fmt::Debug for FunctionVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionVersion")
            .field("space", &self.space)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// What the HTTP API shows of a function.
#[derive(Debug, Serialize)]
pub struct FunctionSummary {
    pub space: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub entries: Vec<String>,
    pub default_entry: Option<String>,
    /// `baseline` while it runs Winch's code, `optimized` once Cranelift's is in service.
    pub tier: Tier,
}

impl FunctionVersion {
    /// Resolves the entry a caller asked for (or the default) to an exposed `module.function`,
    /// following ixoncdkingress: a name without a module means module `functions`.
    pub fn resolve_entry(&self, requested: Option<&str>) -> Result<String, InvokeError> {
        let Some(requested) = requested else {
            return self.default_entry.clone().ok_or_else(|| {
                InvokeError::EntryNotFound(format!(
                    "function '{}' exposes several entries and has no default_entry; name one as \
                     '{}:<entry>' (entries: {})",
                    self.name,
                    self.name,
                    self.entries.join(", ")
                ))
            });
        };
        let qualified = qualify_entry(requested);
        let function_part = |name: &str| name.rsplit('.').next().unwrap_or(name).to_string();
        let wanted = function_part(&qualified);
        // Other spellings of a listed function (`functions.notes.add` for `notes.add`) are the
        // guest's to resolve, by importing the module named, as ixoncdkingress does; so are the
        // entries the SDK answers itself.
        if self.entries.contains(&qualified)
            || SDK_ENTRIES.contains(&wanted.as_str())
            || self.entries.iter().any(|entry| function_part(entry) == wanted)
        {
            Ok(qualified)
        } else {
            Err(InvokeError::EntryNotFound(format!(
                "function '{qualified}' does not exist or is not exposed in '{}' (entries: {})",
                self.name,
                self.entries.join(", ")
            )))
        }
    }

    /// The code a call starting now instantiates; stores for it are made with its engine.
    pub fn pre(&self) -> FunctionPre<InvocationState> {
        self.code.pre()
    }

    /// Which compiler made the code calls run now.
    pub fn tier(&self) -> Tier {
        self.code.tier()
    }

    pub fn summary(&self) -> FunctionSummary {
        FunctionSummary {
            space: self.space.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
            entries: self.entries.clone(),
            default_entry: self.default_entry.clone(),
            tier: self.tier(),
        }
    }
}

/// How to name and configure a bundle being loaded; unset fields come from its metadata.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub space: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub default_limits: Limits,
    pub max_memory_mb: u64,
}

/// What compiles and links bundles: Cranelift's engine and linker, the compile cache, and the
/// baseline tier when there is one (see [`crate::tiers`]).
#[derive(Clone, Copy)]
pub struct Compilers<'a> {
    pub optimized: &'a Compiler,
    pub baseline: Option<&'a Baseline>,
    pub cache: &'a CompileCache,
}

/// Compiles (or maps from cache) a bundle and prepares it for instantiation. The first compile
/// of a Python bundle takes seconds with Cranelift, under one with the baseline tier (which
/// then has Cranelift compile it in the background); it runs on a blocking thread.
pub async fn load_version(
    compilers: Compilers<'_>,
    bundle: bundle::BundleBytes,
    options: &LoadOptions,
) -> Result<FunctionVersion, BundleError> {
    let started = std::time::Instant::now();
    bundle::check_header(bundle.bytes())?;
    // Before the compile, and with a reason a user can act on (a bundle built for an older
    // platform, say, kept from before an upgrade).
    crate::world::check_world(bundle.bytes())?;
    let meta = bundle::read_meta(bundle.bytes())?.unwrap_or_default();
    let (bytes, sha256, compiled) = {
        let engine = compilers.optimized.engine.clone();
        let baseline = compilers.baseline.map(|baseline| baseline.engine().clone());
        let cache = compilers.cache.clone();
        // The hash too (unless the caller has it): ~20 ms for a CPython bundle, which would
        // hold up an async worker.
        wasmfn_host_apis::background::spawn(move || {
            let (bytes, sha256) = bundle.hashed().into_parts();
            let compiled = tiers::compile(&engine, baseline.as_ref(), &cache, &bytes, &sha256);
            (bytes, sha256, compiled)
        })
        .await
        .map_err(|e| BundleError::Cache(format!("compile task failed: {e}")))?
    };
    let compiled = compiled?;
    let compiler = tiers::compiler_for(compiled.tier, compilers.optimized, compilers.baseline);
    let pre = compiler.link(&compiled.component)?;
    let limits = meta.limits.clone().unwrap_or_default().apply(&options.default_limits);
    limits.validate(options.max_memory_mb).map_err(BundleError::BadMeta)?;
    let entries = list_entries(&pre, &limits).await?;
    if entries.is_empty() {
        return Err(BundleError::NoEntries);
    }
    let default_entry = resolve_default(meta.default_entry.as_deref(), &entries)?;
    let name = options.name.clone().filter(|n| !n.is_empty()).unwrap_or(meta.name.clone());
    if name.is_empty() {
        return Err(BundleError::BadMeta("the bundle has no function name; give one".into()));
    }
    let config = function_config(&name, &meta)?;
    let allowlist = wasmfn_host_apis::ixon_api::Allowlist::parse(&meta.ixon_api.allow)
        .map_err(BundleError::BadMeta)?;
    let network = wasmfn_host_apis::outbound::NetworkAllowlist::parse(&meta.network.allow)
        .map_err(BundleError::BadMeta)?;
    meta.documents.validate().map_err(BundleError::BadMeta)?;
    let collection = meta.documents.collection.clone().unwrap_or_else(|| name.clone());
    let indexes = meta.documents.index_paths();
    let code = Arc::new(Code::new(pre, compiled.tier));
    if compiled.tier == Tier::Baseline {
        let label = format!("{}/{}", options.space, name);
        let (compiler, cache) = (compilers.optimized.clone(), compilers.cache.clone());
        code.optimize(compiler, cache, bytes, sha256.clone(), label);
    }
    Ok(FunctionVersion {
        space: options.space.clone(),
        name,
        version: options.version.clone().unwrap_or_else(|| {
            if meta.version.is_empty() {
                "0.0.0".into()
            } else {
                meta.version.clone()
            }
        }),
        sha256,
        entries,
        default_entry,
        config,
        access: meta.access,
        collection,
        indexes,
        allowlist,
        network: Arc::new(network),
        triggers: crate::manifest::DeclaredTriggers {
            cron: meta.cron.clone(),
            mqtt: meta.mqtt.clone(),
            events: meta.events.clone(),
        },
        gate: Arc::new(Semaphore::new(limits.max_concurrency)),
        waiting: AtomicUsize::new(0),
        pool: Default::default(),
        limits,
        code,
        loaded_from: compiled.loaded_from,
        load_time: started.elapsed(),
        declared_default: meta.default_entry.clone(),
        dev_sources: None,
    })
}

/// The reserved configuration key that carries [`FunctionVersion::dev_sources`] to the guest
/// (the guest takes it off before the function sees its configuration). Its NUL byte keeps it
/// out of reach of `function.toml`, the admin API and callers.
pub const DEV_SOURCES_KEY: &str = "\u{0}wasmfn-dev-sources";

/// The entry the guest answers, with dev sources only, by importing them and listing what they
/// expose.
const DEV_ENTRIES: &str = "wasmfn-dev-entries";

/// `wasmfn dev`'s fast path for an edit that leaves `function.toml` and the requirements alone:
/// the last bundle built for the folder, with `sources` (JSON, as `wasmfn dev` makes it: the
/// folder's files and modules) imported by every call over the sources built into it, so that
/// an edit costs no componentize-py and no compile. The sources are imported once here, in a
/// throwaway instance, to learn the entries they expose; an edit that does not import (or
/// exposes nothing, or drops the declared `default_entry`) is refused with the guest's
/// traceback, and the version in service stays.
pub async fn with_dev_sources(
    mut version: FunctionVersion,
    sources: Arc<str>,
) -> Result<FunctionVersion, BundleError> {
    version.dev_sources = Some(sources);
    // A call of the reserved entry with no configuration: the guest sees only the sources.
    let trigger = crate::invoker::Invocation { trigger: "dev".into(), ..Default::default() };
    let mut invocation =
        crate::invoker::to_wit(&version, DEV_ENTRIES, &trigger, &FunctionConfig::default());
    invocation.max_response_bytes = LOAD_RESPONSE_BYTES as u64;
    let (pre, limits) = (version.pre(), version.limits.clone());
    let entries =
        on_load_thread(async move { call_dev_entries(&pre, &limits, &invocation).await }).await?;
    if entries.is_empty() {
        return Err(BundleError::NoEntries);
    }
    version.default_entry = resolve_default(version.declared_default.as_deref(), &entries)?;
    version.entries = entries;
    Ok(version)
}

async fn call_dev_entries(
    pre: &FunctionPre<InvocationState>,
    limits: &Limits,
    invocation: &crate::bindings::types::Invocation,
) -> Result<Vec<String>, BundleError> {
    use crate::bindings::types::FunctionError;
    let (mut store, instance) = load_instance(pre, limits).await?;
    let failed = |what: &str, error| load_failure(limits, what, error);
    let answer = instance
        .wasmfn_platform_handler()
        .call_handle(&mut store, invocation)
        .await
        .map_err(|e| failed("importing the edited sources", e))?;
    match answer {
        Ok(_) => {
            let body = store.data_mut().response.take();
            serde_json::from_slice::<Vec<String>>(&body)
                .map(|mut entries| {
                    entries.sort();
                    entries
                })
                .map_err(|e| BundleError::Entries(format!("the guest's list of entries: {e}")))
        }
        Err(FunctionError::Exception(info)) => Err(BundleError::Entries(format!(
            "importing the edited sources raised {}: {}\n{}",
            info.type_name, info.message, info.traceback
        ))),
        Err(FunctionError::NotFound(_)) => Err(BundleError::Entries(
            "this bundle was built by an older wasmfn that cannot reload sources; it is rebuilt"
                .into(),
        )),
        Err(other) => Err(BundleError::Entries(format!("importing the edited sources: {other:?}"))),
    }
}

/// The environment variable that overrides config `key` of function `name`:
/// `WASMFN_CONFIG__<NAME>__<KEY>`, upper case, other characters as `_`.
pub fn config_env_var(name: &str, key: &str) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect()
    };
    format!("WASMFN_CONFIG__{}__{}", part(name), part(key))
}

/// Replaces `value` (the config value at `path`, keys joined by `__`) from its environment
/// variable, then each member of an object from theirs: `WASMFN_CONFIG__FN__SA__USERNAME`
/// replaces `config["sa"]["username"]`. A string takes the variable's text as it is; any other
/// value reads it as JSON, so a number stays a number.
fn override_from_env(name: &str, path: &str, value: &mut Value) -> Result<(), String> {
    let variable = config_env_var(name, path);
    if let Ok(text) = std::env::var(&variable) {
        *value = match value {
            Value::String(_) => Value::String(text),
            _ => serde_json::from_str(&text).map_err(|e| {
                format!("{variable} must be JSON, as config value '{path}' is not a string: {e}")
            })?,
        };
    }
    if let Value::Object(members) = value {
        for (key, member) in members.iter_mut() {
            override_from_env(name, &format!("{path}__{key}"), member)?;
        }
    }
    Ok(())
}

/// The function's configuration: `[config]` with environment overrides, plus its secrets read
/// from the server's environment (an unset variable is an error naming it, not the value).
fn function_config(name: &str, meta: &BundleMeta) -> Result<FunctionConfig, BundleError> {
    let mut values = meta.config.clone();
    for (key, value) in values.iter_mut() {
        override_from_env(name, key, value).map_err(BundleError::BadMeta)?;
    }
    let mut secrets = BTreeMap::new();
    for (key, source) in &meta.secrets {
        let value = std::env::var(&source.env).map_err(|_| {
            BundleError::BadMeta(format!(
                "secret '{key}' reads environment variable {}, which is not set on the server",
                source.env
            ))
        })?;
        secrets.insert(key.clone(), value);
    }
    Ok(FunctionConfig::new(values).with_secrets(secrets))
}

/// Entries ixoncdkingress answers itself, whatever module the name gives
/// (`list-agent-tools`, `x.list-agent-tools`).
pub const SDK_ENTRIES: &[&str] =
    &["list-agent-tools", "list-agent-tools-issues", "app-description"];

/// `module.function` as given, or a bare name in module `functions` (ixoncdkingress's
/// `parse_function_location`).
fn qualify_entry(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("functions.{name}")
    }
}

/// The entry a call that names none runs: `declared` (function.toml's `default_entry`), which
/// must be exposed, else the only entry there is.
fn resolve_default(
    declared: Option<&str>,
    entries: &[String],
) -> Result<Option<String>, BundleError> {
    match declared {
        Some(entry) => {
            let qualified = qualify_entry(entry);
            if entries.contains(&qualified) {
                Ok(Some(qualified))
            } else {
                Err(BundleError::BadMeta(format!(
                    "default_entry '{entry}' is not an exposed function (entries: {})",
                    entries.join(", ")
                )))
            }
        }
        None if entries.len() == 1 => Ok(Some(entries[0].clone())),
        None => Ok(None),
    }
}

/// Runs the bundle's `entries()` export once, in a throwaway instance. The export is guest code,
/// so it gets what an invocation gets: the function's memory limit and an epoch deadline at its
/// `timeout_ms` (the pool's [`crate::pool::set_deadline`]), after which it is interrupted, on a
/// thread of its own ([`on_load_thread`]).
async fn list_entries(
    pre: &FunctionPre<InvocationState>,
    limits: &Limits,
) -> Result<Vec<String>, BundleError> {
    let (pre, limits) = (pre.clone(), limits.clone());
    on_load_thread(async move { call_entries(&pre, &limits).await }).await
}

/// Runs guest code of a load on a blocking thread, driven by its own `block_on`, so that a
/// guest spinning until its deadline never holds one of the async workers that answer
/// `/healthz` and other requests.
async fn on_load_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, BundleError>> + Send + 'static,
) -> Result<T, BundleError> {
    let runtime = tokio::runtime::Handle::current();
    wasmfn_host_apis::background::spawn(move || runtime.block_on(work))
        .await
        .map_err(|e| BundleError::Entries(format!("the task listing entries failed: {e}")))?
}

/// The largest answer guest code run at load may write (a list of entries).
const LOAD_RESPONSE_BYTES: usize = 1 << 20;

/// An instance for guest code run once at load (listing entries, importing dev sources): the
/// function's memory limit, a 1 MiB answer, and one slice up to its timeout (on the dedicated
/// thread it runs on there is nobody to yield to).
async fn load_instance(
    pre: &FunctionPre<InvocationState>,
    limits: &Limits,
) -> Result<(Store<InvocationState>, crate::bindings::Function), BundleError> {
    let mut state = InvocationState::new(Default::default(), limits.memory_bytes(), 4096, None);
    state.limit_response(LOAD_RESPONSE_BYTES);
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    crate::pool::set_deadline(&mut store, Instant::now() + limits.timeout(), u64::MAX);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| load_failure(limits, "instantiating the bundle", e))?;
    Ok((store, instance))
}

/// Why guest code run at load failed: past the function's timeout, or the error.
fn load_failure(limits: &Limits, what: &str, error: wasmtime::Error) -> BundleError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => BundleError::Entries(format!(
            "{what} did not finish within the function's timeout ({} ms)",
            limits.timeout_ms
        )),
        _ => BundleError::Entries(format!("{what} failed: {error:#}")),
    }
}

async fn call_entries(
    pre: &FunctionPre<InvocationState>,
    limits: &Limits,
) -> Result<Vec<String>, BundleError> {
    let (mut store, instance) = load_instance(pre, limits).await?;
    let failed = |what: &str, error| load_failure(limits, what, error);
    let mut entries = instance
        .wasmfn_platform_handler()
        .call_entries(&mut store)
        .await
        .map_err(|e| failed("its entries() export", e))?;
    entries.sort();
    Ok(entries)
}

/// Told when the active version of a function changes: the triggers a version declares start,
/// change and stop with it (`crate::triggers::lifecycle` implements this; the registry knows
/// nothing about triggers).
pub trait ActivationListener: Send + Sync {
    /// May refuse `version` before it becomes active (a trigger it declares cannot start);
    /// the version then never serves.
    fn check(&self, version: &FunctionVersion) -> Result<(), String>;
    /// `version` is now the active version of its function.
    fn activated(&self, version: &Arc<FunctionVersion>);
    /// `space/function` was taken out of service.
    fn removed(&self, space: &str, function: &str);
}

/// All loaded functions, by space and name.
#[derive(Default)]
pub struct Registry {
    spaces: RwLock<HashMap<String, HashMap<String, Arc<FunctionVersion>>>>,
    /// Held weakly: listeners reach back to the invoker, which holds the registry; the node
    /// owns them, and when it goes they stop being told.
    listeners: RwLock<Vec<Weak<dyn ActivationListener>>>,
    /// Held across check, swap and notification, so that listeners see activations in the
    /// order they took effect. Listeners do little (start tasks), never wait.
    changing: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("spaces", &self.spaces).finish_non_exhaustive()
    }
}

impl Registry {
    /// From now on, `listener` is told about every activation and removal, for as long as
    /// someone else keeps it.
    pub fn listen(&self, listener: &Arc<dyn ActivationListener>) {
        self.listeners.write().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(listener));
    }

    fn listeners(&self) -> Vec<Arc<dyn ActivationListener>> {
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        listeners.iter().filter_map(Weak::upgrade).collect()
    }

    /// Makes `version` the active version of its function (replacing any other atomically),
    /// once every listener accepted it; then tells them.
    pub fn activate(&self, version: FunctionVersion) -> Result<Arc<FunctionVersion>, BundleError> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let listeners = self.listeners();
        for listener in &listeners {
            listener.check(&version).map_err(BundleError::Triggers)?;
        }
        let version = Arc::new(version);
        {
            let mut spaces = self.spaces.write().unwrap_or_else(|e| e.into_inner());
            spaces
                .entry(version.space.clone())
                .or_default()
                .insert(version.name.clone(), version.clone());
        }
        for listener in &listeners {
            listener.activated(&version);
        }
        Ok(version)
    }

    /// Takes `space/function` out of service; invocations in flight finish on their version.
    pub fn remove(&self, space: &str, function: &str) -> Option<Arc<FunctionVersion>> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let removed = {
            let mut spaces = self.spaces.write().unwrap_or_else(|e| e.into_inner());
            let functions = spaces.get_mut(space)?;
            let removed = functions.remove(function);
            if functions.is_empty() {
                spaces.remove(space);
            }
            removed
        };
        if removed.is_some() {
            for listener in self.listeners() {
                listener.removed(space, function);
            }
        }
        removed
    }

    /// The active version of `space/function`.
    pub fn get(&self, space: &str, function: &str) -> Result<Arc<FunctionVersion>, InvokeError> {
        let spaces = self.spaces.read().unwrap_or_else(|e| e.into_inner());
        let functions =
            spaces.get(space).ok_or_else(|| InvokeError::SpaceNotFound(space.to_string()))?;
        functions.get(function).cloned().ok_or_else(|| InvokeError::FunctionNotFound {
            space: space.to_string(),
            function: function.to_string(),
        })
    }

    /// Every active version (for metrics read at scrape time).
    pub fn versions(&self) -> Vec<Arc<FunctionVersion>> {
        let spaces = self.spaces.read().unwrap_or_else(|e| e.into_inner());
        spaces.values().flat_map(|fs| fs.values().cloned()).collect()
    }

    /// Every active function, sorted by space and name.
    pub fn list(&self) -> Vec<FunctionSummary> {
        let spaces = self.spaces.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> =
            spaces.values().flat_map(|fs| fs.values().map(|f| f.summary())).collect();
        all.sort_by(|a, b| (&a.space, &a.name).cmp(&(&b.space, &b.name)));
        all
    }
}
