//! The `wasmfn` command line: `serve`, `build` and `invoke`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::invoker::Invocation;
use crate::limits::{EngineLimits, Limits};
use crate::pool::PoolSettings;
use crate::python_build::{self, BuildOptions};
use crate::runtime::{Runtime, RuntimeConfig, DEFAULT_FUNCTION_CACHE_MB};
use crate::toolchain::wasmfn_home;

mod accounts;
mod admin_client;
mod bench;
mod config;
mod dev;
mod doctor;
mod functions;
mod keys;
mod logs;
mod new;
mod serve;
mod triggers;

pub use accounts::AccountsArgs;
pub use admin_client::AdminArgs;
pub use bench::BenchArgs;
pub use config::{ConfigArgs, SecretsArgs};
pub use dev::DevArgs;
pub use doctor::DoctorArgs;
pub use functions::{DeployArgs, FunctionsArgs};
pub use keys::KeysArgs;
pub use logs::LogsArgs;
pub use new::{NewArgs, Template};
pub use serve::ServeArgs;
pub use triggers::TriggersArgs;

#[derive(Debug, Parser)]
#[command(
    name = "wasmfn",
    version,
    about = "Run Python cloud functions as WebAssembly components, a fresh instance per call",
    long_about = "Run Python cloud functions (IXON Cloud Function style) as WebAssembly \
                  components: `wasmfn new` creates a function folder from a template, \
                  `wasmfn build` compiles a function folder with componentize-py, \
                  `wasmfn serve` serves bundles over HTTP with a fresh, isolated instance per \
                  invocation (plus cron, MQTT and asynchronous triggers), `wasmfn invoke` runs \
                  one call locally. `deploy`, `functions`, `keys`, `accounts`, `config`, `secrets`, \
                  `triggers` and `logs` talk to a running server's admin API, as its console \
                  does in a browser (/console)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter for wasmfn's own logs (tracing `EnvFilter` syntax, e.g. `debug`,
    /// `wasmfn_core::invoker=warn`); default `info` for `serve`, `warn` otherwise.
    #[arg(long, global = true, env = "WASMFN_LOG")]
    pub log: Option<String>,
}

impl Cli {
    /// The log filter in force: the flag, or the command's default.
    pub fn log_filter(&self) -> &str {
        match (&self.log, &self.command) {
            (Some(filter), _) => filter,
            (None, Command::Serve(_)) => "info",
            // The terminal shows every call already (see `dev::Console`).
            (None, Command::Dev(_)) => "warn",
            (None, _) => "warn",
        }
    }
}

// Parsed once per process: the size of the `serve` variant's many flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a function folder from a template, ready to build, serve and call.
    New(NewArgs),
    /// Serve function folders for development: reloaded on every save (a `.py` edit in about a
    /// second, without a build), every call shown with its output, no keys needed, a data
    /// directory of their own.
    Dev(DevArgs),
    /// Serve function folders (built if needed) and `.wasm` bundles over HTTP.
    Serve(ServeArgs),
    /// Build a function folder into a `.wasm` bundle (DIR/dist/<name>-<version>.wasm).
    Build(BuildArgs),
    /// Run one function call locally, without a server, and print its response.
    Invoke(InvokeArgs),
    /// Deploy a function folder or `.wasm` bundle to a running server as a new version.
    Deploy(DeployArgs),
    /// List, show, roll back and delete the functions of a running server.
    Functions(FunctionsArgs),
    /// Create, list, revoke and share the API keys callers invoke functions with.
    Keys(KeysArgs),
    /// List, invite, create, change and delete the console's operator accounts.
    Accounts(AccountsArgs),
    /// Show, set and unset the configuration values a running server gives a function.
    Config(ConfigArgs),
    /// List, set and unset a function's secrets on a running server (write-only).
    Secrets(SecretsArgs),
    /// Show the invocation log of a running server (filter, download, --follow).
    Logs(LogsArgs),
    /// List, show, create and delete the triggers of a running server (its admin API).
    Triggers(TriggersArgs),
    /// Check what wasmfn needs on this machine (Python, componentize-py, data directory,
    /// port, broker and database URLs) and say what to fix.
    Doctor(DoctorArgs),
    /// Time a bundle's cold start step by step: build, compile, cached load, instantiate,
    /// first call, call on a live instance, pooled call; memory per instance; throughput.
    Bench(BenchArgs),
}

/// Settings shared by every command that runs functions: where things are kept and the
/// default limits of one call ([`FunctionArgs`]), and the server's instances and threads
/// ([`PoolArgs`], which `invoke` has no use for).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub function: FunctionArgs,
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// Where things are kept and the default limits of one call.
#[derive(Debug, Clone, Args)]
pub struct FunctionArgs {
    /// Where compiled bundles, the state database and the admin token are kept (default:
    /// $WASMFN_HOME, ~/.cache/wasmfn).
    #[arg(long, env = "WASMFN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where compiled bundles (`.cwasm`) are cached (default: <data-dir>/compiled); several
    /// servers may share one.
    #[arg(long, env = "WASMFN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Default timeout of one invocation, in milliseconds (a function.toml may override it).
    #[arg(long, default_value_t = Limits::default().timeout_ms)]
    pub timeout_ms: u64,
    /// Default memory limit of one instance, in MiB.
    #[arg(long, default_value_t = Limits::default().memory_mb)]
    pub memory_mb: u64,
    /// Default largest request body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// The largest memory limit any function may ask for, in MiB.
    #[arg(long, default_value_t = EngineLimits::default().max_memory_mb)]
    pub max_memory_mb: u64,
    /// Bound, in MiB, of Cranelift's function cache in the cache directory: the machine code
    /// of every function compiled, by a hash of its code, so that compiling a bundle is mostly
    /// lookups once this machine has compiled any other bundle of the same componentize-py
    /// (about 3x faster); the least recently used part goes beyond the bound (0: no function
    /// cache, every bundle is compiled from nothing).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_FUNCTION_CACHE_MB)]
    pub function_cache_mb: u64,
}

/// The server's instances, run slots and threads.
#[derive(Debug, Clone, Args)]
pub struct PoolArgs {
    /// Instances alive at once, across all functions (sizes the pooling allocator); a call
    /// beyond them waits for one to end, until its timeout.
    #[arg(long, default_value_t = EngineLimits::default().max_instances)]
    pub max_instances: u32,
    /// MiB of each used instance memory that is reset by copying its dirty pages back and kept
    /// resident rather than given back to the kernel: no page faults or TLB shootdowns, so
    /// calls are faster and scale across cores; a slot keeps the pages its instances have
    /// dirtied, up to this much (0: give everything back, lowest memory) [default: 2 where
    /// the kernel has PAGEMAP_SCAN (Linux 6.7+), else 0].
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = EngineLimits::default().keep_resident_mb,
        hide_default_value = true
    )]
    pub keep_resident_mb: u64,
    /// MiB a used memory slot may keep resident when a bundle's calls typically write more
    /// than --keep-resident-mb: learned per bundle from its last 16 instances (75th percentile
    /// of what they wrote), so its next calls take no page faults for it, while a rare call
    /// that writes twice that or more (a memory bomb) has its slot given back whole; the worst
    /// case is this much per slot (not above --keep-resident-mb, or --keep-resident-mb 0: no
    /// learning) [default: 32 where the kernel has PAGEMAP_SCAN (Linux 6.7+), else 0].
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = EngineLimits::default().keep_resident_max_mb,
        hide_default_value = true
    )]
    pub keep_resident_max_mb: u64,
    /// Never-used instances each function keeps ready, made ahead of demand in the background
    /// and sized by its recent traffic (0: instantiate every call on the request path).
    #[arg(long, default_value_t = PoolSettings::default().per_function)]
    pub pool_per_function: usize,
    /// Never-used instances across all functions (at most a quarter of --max-instances).
    #[arg(long, default_value_t = PoolSettings::default().total)]
    pub pool_total: usize,
    /// Invocations running at once across the node; more wait in line, and a function's
    /// timeout counts from when it starts running [default: 4 per CPU core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running: Option<u32>,
    /// Threads that run functions once they first wait (after ~5 ms of CPU, or at a host call
    /// waiting for I/O), at a lower scheduling priority (nice 10) than the threads that accept
    /// connections and answer requests, so that `/healthz` and new callers are served at once
    /// however busy functions keep the CPU (0: every call stays on the serving threads)
    /// [default: one per CPU core].
    #[arg(long, value_name = "N")]
    pub guest_threads: Option<u32>,
    /// Serve a bundle whose compiled code is not cached yet within a second or two: compile it
    /// first with Winch (fast to compile, slower to run) and swap in Cranelift's code, compiled
    /// in the background, when it is ready (false: calls wait for Cranelift) [default: true].
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, hide_default_value = true)]
    pub baseline_tier: bool,
}

impl RunArgs {
    /// Every setting at its default (and its environment variable, where it has one).
    fn defaults() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            run: RunArgs,
        }
        Defaults::parse_from(["wasmfn"]).run
    }

    /// The data directory: `--data-dir`, else $WASMFN_HOME (default ~/.cache/wasmfn).
    pub fn data_dir(&self) -> PathBuf {
        self.function.data_dir()
    }

    pub(crate) fn runtime_config(&self) -> RuntimeConfig {
        self.function.runtime_config(&self.pool)
    }
}

impl FunctionArgs {
    /// The data directory: `--data-dir`, else $WASMFN_HOME (default ~/.cache/wasmfn).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(wasmfn_home)
    }

    pub(crate) fn runtime_config(&self, pool: &PoolArgs) -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: self.cache_dir.clone().unwrap_or_else(|| self.data_dir().join("compiled")),
            engine: EngineLimits {
                max_instances: pool.max_instances,
                max_memory_mb: self.max_memory_mb,
                keep_resident_mb: pool.keep_resident_mb,
                keep_resident_max_mb: pool.keep_resident_max_mb,
            },
            default_limits: Limits {
                timeout_ms: self.timeout_ms,
                memory_mb: self.memory_mb,
                max_body_bytes: self.max_body_bytes,
                ..Limits::default()
            },
            pool: PoolSettings {
                per_function: pool.pool_per_function,
                total: pool.pool_total,
                ..PoolSettings::default()
            },
            max_running: pool.max_running.map_or(0, |n| n as usize),
            guest_threads: pool.guest_threads.map_or_else(crate::running::cores, |n| n as usize),
            baseline_tier: pool.baseline_tier,
            function_cache_mb: self.function_cache_mb,
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The function folder: .py files or a functions/ package, requirements.txt, function.toml.
    pub dir: PathBuf,
    /// Directory to write the bundle to (default: DIR/dist).
    #[arg(long, short)]
    pub out_dir: Option<PathBuf>,
    /// Also compile the bundle for this machine into the compiled-bundle cache that
    /// `wasmfn serve` and `wasmfn invoke` read, so the first call after serving or deploying it
    /// here skips the Cranelift compile (seconds for a Python function). Checks that the
    /// bundle loads, too.
    #[arg(long)]
    pub precompile: bool,
    /// With --precompile: the data directory whose cache to fill (default: $WASMFN_HOME).
    #[arg(long, env = "WASMFN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// With --precompile: the compiled-bundle cache to fill (default: <data-dir>/compiled).
    #[arg(long, env = "WASMFN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long componentize-py may run (it runs the module-level code and [[warmup]] calls,
    /// which may never return): `90s`, `10m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Leave the objects of the pre-initialized heap mortal. By default the build makes them
    /// immortal (CPython's PEP 683), so calls read them without writing their reference counts:
    /// fewer memory pages copied per call. For comparing, or if a function relies on
    /// `sys.getrefcount` of module-level objects.
    #[arg(long)]
    pub mortal_heap: bool,
    /// Keep every function the component's core modules export. By default the build removes
    /// the exports no other module imports (libpython and libc export every symbol): wasmtime
    /// then compiles no entry for them and writes no function reference for them in each
    /// instance. For comparing.
    #[arg(long)]
    pub keep_exports: bool,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// A function folder (built if needed) or a `.wasm` bundle.
    pub path: PathBuf,
    /// The exposed function to call (`module.function`; default: the function's default entry).
    pub entry: Option<String>,
    /// Keyword arguments, as a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// A configuration value (`context.config`), KEY=VALUE; repeatable. VALUE is read as JSON
    /// when it is valid JSON (`port=8080` is a number, `sa={"user":"x"}` an object), otherwise
    /// as a string; quote it to force a string (`port='"8080"'`).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Where the function's documents and objects are kept: `wasmfn dev`'s data directory by
    /// default ($WASMFN_HOME/dev), so `invoke` and `dev` see the same ones (not while a `dev`
    /// runs on it: the directory is locked).
    #[arg(long, value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
    /// The space the call is made in (its documents and objects are the space's).
    #[arg(long, default_value = "default")]
    pub space: String,
    #[command(flatten)]
    pub run: FunctionArgs,
}

/// Runs the parsed command; the error is printed by `main`.
pub async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::New(args) => new::run(args),
        Command::Serve(args) => serve::serve(args).await,
        Command::Dev(args) => dev::dev(args).await,
        Command::Triggers(args) => triggers::run(args).await,
        Command::Deploy(args) => functions::deploy(args).await,
        Command::Functions(args) => functions::functions(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Config(args) => config::config(args).await,
        Command::Secrets(args) => config::secrets(args).await,
        Command::Build(args) => build(args).await,
        Command::Invoke(args) => invoke(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Doctor(args) => doctor::run(args),
    }
}

async fn build(args: BuildArgs) -> Result<std::process::ExitCode> {
    let options = BuildOptions {
        out_dir: args.out_dir.clone(),
        progress: true,
        deadline: Some(args.timeout),
        mortal_heap: args.mortal_heap,
        keep_exports: args.keep_exports,
    };
    let dir = args.dir.clone();
    let built = tokio::task::spawn_blocking(move || python_build::build(&dir, &options)).await??;
    if args.precompile {
        let mut run = RunArgs::defaults();
        run.function.data_dir = args.data_dir;
        run.function.cache_dir = args.cache_dir;
        let mut config = run.runtime_config();
        // The cache is what it fills: Cranelift's code, compiled now.
        config.baseline_tier = false;
        let cache_dir = config.cache_dir.clone();
        let runtime = Runtime::new(config)?;
        let bytes = tokio::fs::read(&built.wasm)
            .await
            .with_context(|| format!("reading {}", built.wasm.display()))?;
        let started = std::time::Instant::now();
        let version = runtime
            .prepare(bytes, "default", None, None)
            .await
            .with_context(|| format!("precompiling {}", built.wasm.display()))?;
        eprintln!(
            "precompiled {} {} into {} in {:.1} s ({})",
            version.name,
            version.version,
            cache_dir.display(),
            started.elapsed().as_secs_f64(),
            match version.loaded_from {
                crate::bundle::LoadedFrom::Compiled => "compiled now",
                crate::bundle::LoadedFrom::Cache => "already cached",
            }
        );
    }
    println!("{}", built.wasm.display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// A function folder's IXON dev configuration (`context_values.yaml`, ...); none for a `.wasm`.
pub fn folder_dev_config(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    if path.is_dir() {
        crate::dev_config::read(path)
    } else {
        Ok(Default::default())
    }
}

/// The bundle bytes for a folder (building it if stale) or a `.wasm` file.
pub async fn bundle_bytes(path: &Path) -> Result<Vec<u8>> {
    let wasm = if path.is_dir() {
        let dir = path.to_path_buf();
        let options = BuildOptions { out_dir: None, progress: true, ..BuildOptions::default() };
        tokio::task::spawn_blocking(move || python_build::build_if_stale(&dir, &options))
            .await??
            .wasm
    } else if path.exists() {
        path.to_path_buf()
    } else {
        bail!("{} does not exist", path.display());
    };
    tokio::fs::read(&wasm).await.with_context(|| format!("reading {}", wasm.display()))
}

/// [`bundle_bytes`] and their sha256, computed once (on a blocking thread: ~20 ms for a
/// CPython bundle) for both the compile cache's lookup and the load.
pub async fn hashed_bundle(path: &Path) -> Result<crate::bundle::HashedBundle> {
    let bytes = bundle_bytes(path).await?;
    Ok(tokio::task::spawn_blocking(move || crate::bundle::HashedBundle::new(bytes)).await?)
}

/// The state database `invoke` keeps documents and objects in: `dir`, or `wasmfn dev`'s data
/// directory. That one may be held by a running `dev` (or another `invoke`): then the call gets
/// temporary storage, with a warning; a `dir` given explicitly must be free.
fn open_storage(dir: Option<&Path>) -> Result<crate::state::StateDb> {
    let storage_dir = dir.map(Path::to_path_buf).unwrap_or_else(dev::default_data_dir);
    dev::prepare_data_dir(&storage_dir, false)?;
    match (crate::state::StateDb::open(&storage_dir), dir) {
        (Ok(state), _) => Ok(state),
        (Err(_), None) => {
            eprintln!(
                "warning: {} is in use (a running `wasmfn dev`?): this call gets empty temporary \
                 storage; call that server's URL to use its documents",
                storage_dir.display()
            );
            crate::state::StateDb::temporary()
        }
        (Err(error), Some(_)) => Err(error.context(format!(
            "{} holds the documents and objects `wasmfn invoke` uses; if a `wasmfn dev` runs on \
             it, call that server's URL instead, or give --storage-dir another directory",
            storage_dir.display()
        ))),
    }
}

/// Says on stderr that `bytes` will be compiled to machine code before it can run (seconds,
/// once per bundle and machine), when the compile cache does not have it yet; then, on a
/// terminal, counts the seconds until the answer is dropped (hold it over the load).
pub(crate) fn announce_compile(
    runtime: &Runtime,
    bundle: &crate::bundle::HashedBundle,
    what: &str,
) -> Option<crate::progress::Elapsed> {
    if runtime.cache().path_for(bundle.sha256()).exists() {
        return None;
    }
    if runtime.has_baseline_tier() {
        // It serves once Winch has compiled it; Cranelift's code takes over when ready.
        eprintln!(
            "wasmfn: compiling {what} to machine code (Winch, about a second; then Cranelift in \
             the background, once)…"
        );
        return Some(crate::progress::Elapsed::start("  Winch"));
    }
    eprintln!("wasmfn: compiling {what} to machine code (Cranelift, typically 5-40 s, once)…");
    Some(crate::progress::Elapsed::start("  Cranelift"))
}

/// A `--config` VALUE: JSON when it parses as JSON, otherwise the text itself.
pub(crate) fn config_arg_value(value: &str) -> serde_json::Value {
    serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

async fn invoke(args: InvokeArgs) -> Result<std::process::ExitCode> {
    let arguments = match serde_json::from_str(&args.args) {
        Ok(serde_json::Value::Object(arguments)) => arguments,
        Ok(_) => bail!("--args must be a JSON object, like '{{\"name\": \"Ada\"}}'"),
        Err(error) => bail!("--args is not valid JSON: {error}"),
    };
    let mut config = std::collections::BTreeMap::new();
    for pair in &args.config {
        let (key, value) =
            pair.split_once('=').with_context(|| format!("--config {pair}: expected KEY=VALUE"))?;
        config.insert(key.to_string(), config_arg_value(value));
    }
    let mut runtime_config = args.run.runtime_config(&RunArgs::defaults().pool);
    // One call: nothing to make ahead of, and no time for a background compile to finish;
    // Cranelift's code, compiled now, is cached for the next `invoke`.
    runtime_config.pool.per_function = 0;
    runtime_config.baseline_tier = false;
    let runtime = Runtime::new(runtime_config)?;
    crate::names::validate_name(&args.space).map_err(|e| anyhow::anyhow!("--space: {e}"))?;
    let state = open_storage(args.storage_dir.as_deref())?;
    let options = crate::node::CapabilityOptions::default();
    let capabilities = crate::node::open_capabilities(&options, &state).await?;
    runtime.invoker().set_capabilities(std::sync::Arc::new(capabilities));
    let bundle = hashed_bundle(&args.path).await?;
    let compiling = announce_compile(&runtime, &bundle, &args.path.display().to_string());
    // `--config` is the operator's, applied at load like the folder's dev configuration: it may
    // replace secrets too, which a call's own `config` never may.
    let mut load_config = folder_dev_config(&args.path)?;
    load_config.extend(config);
    let version = runtime.load_with_config(bundle, &args.space, None, &load_config).await?;
    drop(compiling);
    let invocation = Invocation {
        space: args.space.clone(),
        function: version.name.clone(),
        entry: args.entry,
        arguments: arguments.into(),
        request: crate::invoker::RequestData {
            method: "POST".into(),
            path: "/".into(),
            ..Default::default()
        },
        trigger: "cli".into(),
        ..Invocation::default()
    };
    let outcome = runtime.invoker().invoke(invocation).await;
    // sled writes to disk every half second: what the call stored must be there before exit.
    if let Err(error) = state.db().flush_async().await {
        eprintln!("warning: saving the documents the call wrote failed: {error}");
    }
    for (label, text) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        if !text.is_empty() {
            eprintln!("--- function {label} ---\n{}", text.trim_end());
        }
    }
    for line in &outcome.logs {
        eprintln!("[{}] {}", line.level.as_str(), line.message);
    }
    let status = outcome.status();
    match &outcome.result {
        Ok(response) => {
            eprintln!("status: {status}");
            println!("{}", String::from_utf8_lossy(&response.body));
        }
        Err(error) => {
            eprintln!("status: {status} ({})", error.code());
            println!("{}", error.body());
        }
    }
    Ok(if (200..300).contains(&status) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
