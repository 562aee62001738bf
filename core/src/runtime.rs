//! The assembled runtime: engine, linker, compile cache, registry and invoker, built once per
//! process and shared by every trigger and CLI command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use wasmtime::Engine;

use crate::bindings::types;
use crate::bundle::{BundleError, CompileCache};
use crate::engine::{build_engine, EpochTicker};
use crate::function_cache::FunctionCache;
use crate::guest_threads::GuestThreads;
use crate::host::InvocationState;
use crate::invoker::Invoker;
use crate::limits::{EngineLimits, Limits};
use crate::pool::PoolSettings;
use crate::registry::{load_version, Compilers, FunctionVersion, LoadOptions, Registry};
use crate::tiers::{Baseline, Compiler};

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled bundles (`.cwasm`) are kept.
    pub cache_dir: PathBuf,
    pub engine: EngineLimits,
    /// Limits for functions whose bundle sets none.
    pub default_limits: Limits,
    /// Instances made ahead of demand.
    pub pool: PoolSettings,
    /// Invocations running at once across the node; more wait in line (0: 4 per CPU core).
    pub max_running: usize,
    /// Threads that run functions, below the serving threads' priority (0: functions run on
    /// the runtime of whoever invokes them). See [`crate::guest_threads`].
    pub guest_threads: usize,
    /// A bundle whose Cranelift code is not cached is compiled by Winch and serves at once,
    /// while Cranelift compiles it in the background (see [`crate::tiers`]).
    pub baseline_tier: bool,
    /// Bound of Cranelift's function cache in `cache_dir`, in MiB (0: no function cache; every
    /// compile starts from nothing). See [`crate::function_cache`].
    pub function_cache_mb: u64,
}

/// What [`RuntimeConfig::function_cache_mb`] is unless set: room for the functions of about
/// ten componentize-py releases (one is ~30 MiB), or of many bundles of one release.
pub const DEFAULT_FUNCTION_CACHE_MB: u64 = 512;

/// Everything needed to load and run functions.
pub struct Runtime {
    engine: Engine,
    compiler: Compiler,
    baseline: Option<Baseline>,
    cache: CompileCache,
    config: RuntimeConfig,
    invoker: Invoker,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}

impl types::Host for InvocationState {}

/// The function cache in the compile cache directory; `None`, with a warning, when it is
/// turned off or the directory cannot be made (compiles then start from nothing).
fn open_function_cache(config: &RuntimeConfig) -> Option<Arc<FunctionCache>> {
    if config.function_cache_mb == 0 {
        return None;
    }
    let dir = crate::function_cache::dir_in(&config.cache_dir);
    match FunctionCache::open(&dir, config.function_cache_mb.saturating_mul(1 << 20)) {
        Ok(functions) => Some(Arc::new(functions)),
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(),
                "no function cache: every bundle is compiled from nothing");
            None
        }
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let functions = open_function_cache(&config);
        let engine = build_engine(&config.engine, functions.clone())?;
        let compiler = Compiler::new(engine.clone())?;
        let baseline = if config.baseline_tier {
            match Baseline::new(&config.engine) {
                Ok(baseline) => Some(baseline),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"),
                        "no baseline tier: new bundles wait for Cranelift");
                    None
                }
            }
        } else {
            None
        };
        let cache = CompileCache::new(&engine, &config.cache_dir, functions);
        let pool = config.pool.clone().bounded_by(config.engine.max_instances);
        let guests = GuestThreads::new(config.guest_threads);
        let invoker = Invoker::new(
            Arc::new(Registry::default()),
            pool,
            config.engine.max_instances,
            config.max_running,
            guests,
        );
        let ticker = EpochTicker::start(&engine);
        Ok(Self { engine, compiler, baseline, cache, config, invoker, _ticker: ticker })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }

    pub fn registry(&self) -> &Arc<Registry> {
        self.invoker.registry()
    }

    pub fn cache(&self) -> &CompileCache {
        &self.cache
    }

    /// Whether new bundles are compiled by Winch first (the baseline tier), and serve while
    /// Cranelift compiles them in the background.
    pub fn has_baseline_tier(&self) -> bool {
        self.baseline.is_some()
    }

    /// Compiles (or loads from cache) a bundle without activating it; `name` and `version`
    /// override the bundle's metadata. `bundle` is its bytes, or a [`crate::bundle::HashedBundle`]
    /// when the caller hashed them already.
    pub async fn prepare(
        &self,
        bundle: impl Into<crate::bundle::BundleBytes>,
        space: &str,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<FunctionVersion, BundleError> {
        let options = LoadOptions {
            space: space.to_string(),
            name,
            version,
            default_limits: self.config.default_limits.clone(),
            max_memory_mb: self.config.engine.max_memory_mb,
        };
        let compilers = Compilers {
            optimized: &self.compiler,
            baseline: self.baseline.as_ref(),
            cache: &self.cache,
        };
        load_version(compilers, bundle.into(), &options).await
    }

    /// Loads a bundle and makes it the active version of its function.
    pub async fn load(
        &self,
        bytes: Vec<u8>,
        space: &str,
        name: Option<String>,
    ) -> Result<Arc<FunctionVersion>, BundleError> {
        self.load_with_config(bytes, space, name, &BTreeMap::new()).await
    }

    /// [`Runtime::load`], with `config` replacing the bundle's configuration values key by key
    /// (a served folder's IXON dev values, see [`crate::dev_config`]).
    pub async fn load_with_config(
        &self,
        bundle: impl Into<crate::bundle::BundleBytes>,
        space: &str,
        name: Option<String>,
        config: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Arc<FunctionVersion>, BundleError> {
        let mut version = self.prepare(bundle, space, name, None).await?;
        version.config = version.config.with_overrides(config);
        self.registry().activate(version)
    }

    /// `wasmfn dev`'s reload of an edited folder: `bytes` (the last bundle built for it,
    /// normally in the compile cache already) activated with `sources` imported over its own by
    /// every call (see [`crate::registry::with_dev_sources`]).
    pub async fn load_dev(
        &self,
        bytes: Vec<u8>,
        space: &str,
        config: &BTreeMap<String, serde_json::Value>,
        sources: Arc<str>,
    ) -> Result<Arc<FunctionVersion>, BundleError> {
        let mut version = self.prepare(bytes, space, None, None).await?;
        version.config = version.config.with_overrides(config);
        let version = crate::registry::with_dev_sources(version, sources).await?;
        self.registry().activate(version)
    }
}
