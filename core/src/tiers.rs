//! Two compilers, so that a new version answers within a second of its load.
//!
//! Cranelift compiles a CPython component in 5-10 s on two cores; until its code is cached, a
//! deploy (or the first `serve` of a bundle) would answer nothing for that long. With the
//! baseline tier, a version whose Cranelift code is not in the compile cache is compiled by
//! Winch, wasmtime's single-pass compiler (several times faster, code that runs slower), and
//! serves at once; Cranelift compiles it meanwhile on a background thread, writes the cache,
//! and the version's code is swapped in place ([`Code::optimize`]): calls that start after the
//! swap run the optimized code, calls in flight finish on the code they started with, and
//! nothing else about the version (its triggers, pool, configuration) changes.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::Engine;

use crate::bindings::{Function, FunctionPre};
use crate::bundle::{BundleError, CompileCache, LoadedFrom};
use crate::engine::{build_baseline_engine, EngineLimits, EpochTicker};
use crate::host::InvocationState;

/// Which compiler made the code a version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Winch, while Cranelift compiles in the background.
    Baseline,
    /// Cranelift: the code every version ends up running.
    Optimized,
}

/// The linker every bundle is linked with: WASI, wasi:http and the platform's interfaces.
pub fn linker(engine: &Engine) -> Result<Linker<InvocationState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Function::add_to_linker::<_, HasSelf<InvocationState>>(&mut linker, |state| state)?;
    crate::response_body::add_to_linker(&mut linker, |state| &mut state.response)?;
    Ok(linker)
}

/// An engine and its linker: what compiles and links bundles for one tier.
#[derive(Clone)]
pub struct Compiler {
    pub engine: Engine,
    pub linker: Linker<InvocationState>,
}

impl Compiler {
    pub fn new(engine: Engine) -> Result<Self> {
        let linker = linker(&engine)?;
        Ok(Self { engine, linker })
    }

    /// `component` linked with this compiler's linker, ready to instantiate.
    pub fn link(&self, component: &Component) -> Result<FunctionPre<InvocationState>, BundleError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| BundleError::WrongWorld(describe_link_error(&e)))?;
        FunctionPre::new(instance_pre).map_err(|e| BundleError::WrongWorld(format!("{e:#}")))
    }
}

/// The baseline tier: Winch's engine, its linker and its epoch ticker.
pub struct Baseline {
    compiler: Compiler,
    _ticker: EpochTicker,
}

impl Baseline {
    pub fn new(limits: &EngineLimits) -> Result<Self> {
        let engine = build_baseline_engine(limits)?;
        let ticker = EpochTicker::start(&engine);
        Ok(Self { compiler: Compiler::new(engine)?, _ticker: ticker })
    }

    pub fn engine(&self) -> &Engine {
        &self.compiler.engine
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }
}

/// What [`compile`] made: the component, which tier, and whether it came from the cache.
pub struct Compiled {
    pub component: Component,
    pub tier: Tier,
    pub loaded_from: LoadedFrom,
}

/// Cranelift's code for `bytes` when the cache has it; else, with a baseline tier, Winch's
/// (Cranelift's is then for [`Code::optimize`] to make); else Cranelift's, compiled now.
/// A bundle Winch cannot compile (a proposal it lacks) is compiled by Cranelift now.
/// Blocking: call it from a blocking thread.
pub fn compile(
    optimized: &Engine,
    baseline: Option<&Engine>,
    cache: &CompileCache,
    bytes: &[u8],
    sha256: &str,
) -> Result<Compiled, BundleError> {
    if let Some(baseline) = baseline.filter(|_| !cache.path_for(sha256).exists()) {
        let started = Instant::now();
        match Component::new(baseline, bytes) {
            Ok(component) => {
                tracing::debug!(
                    seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                    "compiled with Winch (the baseline tier)"
                );
                return Ok(Compiled {
                    component,
                    tier: Tier::Baseline,
                    loaded_from: LoadedFrom::Compiled,
                });
            }
            Err(error) => tracing::info!(
                error = %format!("{error:#}"),
                "the baseline compiler cannot compile this bundle; compiling it with Cranelift"
            ),
        }
    }
    let (component, loaded_from) = cache.load(optimized, bytes, sha256)?;
    Ok(Compiled { component, tier: Tier::Optimized, loaded_from })
}

/// The compiler of `tier`.
pub fn compiler_for<'a>(
    tier: Tier,
    optimized: &'a Compiler,
    baseline: Option<&'a Baseline>,
) -> &'a Compiler {
    match (tier, baseline) {
        (Tier::Baseline, Some(baseline)) => &baseline.compiler,
        _ => optimized,
    }
}

/// A version's linked code, swapped once from the baseline tier to Cranelift's.
pub struct Code {
    current: RwLock<(FunctionPre<InvocationState>, Tier)>,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code").field("tier", &self.tier()).finish_non_exhaustive()
    }
}

impl Code {
    pub fn new(pre: FunctionPre<InvocationState>, tier: Tier) -> Self {
        Self { current: RwLock::new((pre, tier)) }
    }

    /// The code a call starting now instantiates (a cheap clone: reference counts).
    pub fn pre(&self) -> FunctionPre<InvocationState> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    pub fn tier(&self) -> Tier {
        self.current.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Compiles `bytes` with Cranelift on a background thread, caches it, and swaps it in.
    /// On failure (which Winch's success makes unlikely) the version keeps its baseline code,
    /// and says so in the log.
    pub fn optimize(
        self: &Arc<Self>,
        compiler: Compiler,
        cache: CompileCache,
        bytes: Arc<Vec<u8>>,
        sha256: String,
        label: String,
    ) {
        let code = Arc::clone(self);
        tokio::spawn(async move {
            let started = Instant::now();
            let linked = wasmfn_host_apis::background::spawn(move || {
                let (component, _) = cache.load(&compiler.engine, &bytes, &sha256)?;
                compiler.link(&component)
            })
            .await;
            match linked {
                Ok(Ok(pre)) => {
                    *code.current.write().unwrap_or_else(|e| e.into_inner()) =
                        (pre, Tier::Optimized);
                    tracing::info!(
                        function = %label,
                        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                        "Cranelift code compiled and in service (was serving Winch's meanwhile)"
                    );
                }
                Ok(Err(error)) => tracing::warn!(
                    function = %label, %error,
                    "Cranelift could not compile the bundle; it keeps running Winch's code"
                ),
                Err(error) => tracing::warn!(
                    function = %label, %error, "the background Cranelift compile failed"
                ),
            }
        });
    }
}

fn describe_link_error(error: &wasmtime::Error) -> String {
    // wasmtime says which import has no implementation; that is the useful part.
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}
