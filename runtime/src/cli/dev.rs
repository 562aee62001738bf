//! `wasmfn dev DIR...`: `serve` for the one writing the functions. Every folder is watched;
//! when a source changes it is reloaded and the new version swapped in atomically (calls in
//! flight finish on the old one, a broken edit leaves the old one answering and prints why).
//! Every invocation is shown on the terminal with its output, calls need no key, and the
//! document store, objects and invocation log live in a data directory of their own.
//!
//! An edit that leaves `function.toml` and the requirements alone is not built: the folder's
//! last bundle is activated again with the current sources, which each call imports over the
//! ones built into it ([`reload_sources`]); about a second instead of a build and a compile.
//!
//! Folders are watched by polling the newest modification time of their sources
//! ([`python_build::newest_source`], the same rule that decides whether a folder is stale):
//! a few `stat` calls per folder and poll, it works the same on every file system (network
//! mounts, containers, editors that replace files), and the rebuild that follows takes seconds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser};

use super::folder_dev_config;
use super::serve::ServeArgs;
use crate::invoker::{Outcome, OutcomeObserver};
use crate::python_build::{self, BuildOptions};
use crate::registry::FunctionVersion;
use crate::runtime::Runtime;
use crate::toolchain::wasmfn_home;

/// The file that marks a data directory as made by `wasmfn dev`: only such a one is wiped by
/// `--reset`.
const MARKER: &str = "wasmfn-dev-data";

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Function folders to serve, reloaded whenever one of their sources changes: a `.py` edit
    /// by giving calls the new sources over the last build (no build), a change of
    /// `function.toml` or the requirements by a full build.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "WASMFN_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Space the functions are served in: /spaces/<space>/functions/<name>/invoke.
    #[arg(long, default_value = "default")]
    pub space: String,
    /// Where the development documents, objects and invocation log are kept (default:
    /// $WASMFN_HOME/dev, ~/.cache/wasmfn/dev). Compiled bundles are cached where `serve`
    /// caches them.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Start with an empty data directory: forget the documents, objects and log of earlier
    /// runs (only a directory `wasmfn dev` made is wiped).
    #[arg(long)]
    pub reset: bool,
    /// How often the folders are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    pub poll_ms: u64,
}

/// What the watcher needs to know.
#[derive(Debug, Clone, Copy)]
pub struct DevMode {
    /// Changes after this are rebuilt (taken before the first build, so none is missed).
    pub since: SystemTime,
    pub poll: Duration,
}

pub async fn dev(args: DevArgs) -> Result<std::process::ExitCode> {
    for dir in &args.dirs {
        if !dir.is_dir() {
            bail!("{} is not a function folder (`wasmfn dev` watches folders; `wasmfn serve` serves .wasm bundles)", dir.display());
        }
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    prepare_data_dir(&data_dir, args.reset)?;
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let mut serve = Defaults::parse_from(["wasmfn"]).serve;
    serve.paths = args.dirs.clone();
    serve.listen = args.listen;
    serve.space = args.space.clone();
    // Local development: no keys to manage.
    serve.default_access = "public".into();
    serve.run.function.data_dir = Some(data_dir);
    if serve.run.function.cache_dir.is_none() {
        serve.run.function.cache_dir = Some(wasmfn_home().join("compiled"));
    }
    let mode = DevMode { since: SystemTime::now(), poll: Duration::from_millis(args.poll_ms) };
    super::serve::run(serve, Some(mode)).await
}

/// `wasmfn dev`'s data directory, which `wasmfn invoke` keeps its storage in too.
pub fn default_data_dir() -> PathBuf {
    wasmfn_home().join("dev")
}

/// Creates the data directory (marked as `wasmfn dev`'s), or wipes it for `--reset`.
pub(super) fn prepare_data_dir(dir: &Path, reset: bool) -> Result<()> {
    let marker = dir.join(MARKER);
    if reset && dir.exists() {
        if !marker.exists() {
            bail!(
                "--reset: {} was not made by `wasmfn dev`, so it is not wiped; remove it yourself \
                 or give another --data-dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
        eprintln!("wasmfn dev: wiped {}", dir.display());
    }
    crate::state::create_private_dir(dir)?;
    if !marker.exists() {
        std::fs::write(
            &marker,
            "made by `wasmfn dev`; `wasmfn dev --reset` may wipe this directory\n",
        )
        .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(())
}

/// Builds `dir` when stale and makes it the active version of its function; says when the
/// compile to machine code (seconds) comes first.
pub async fn load_folder(
    runtime: &Arc<Runtime>,
    space: &str,
    dir: &Path,
) -> Result<Arc<FunctionVersion>> {
    let folder = dir.to_path_buf();
    let options = BuildOptions { out_dir: None, progress: true, ..BuildOptions::default() };
    let built =
        tokio::task::spawn_blocking(move || python_build::build_if_stale(&folder, &options))
            .await??;
    let bundle = super::hashed_bundle(&built.wasm).await?;
    let what = format!("{} {}", built.manifest.name, built.manifest.version);
    let _compiling = super::announce_compile(runtime, &bundle, &what);
    let config = folder_dev_config(dir)?;
    Ok(runtime.load_with_config(bundle, space, None, &config).await?)
}

/// An edit that leaves `function.toml` and the requirements alone: the folder's last bundle
/// (`wasm`, compiled already) with its current sources, which every call imports (see
/// `Runtime::load_dev`). No componentize-py, no compile: the checks and one import of the
/// sources to list what they expose.
async fn reload_sources(
    runtime: &Arc<Runtime>,
    space: &str,
    dir: &Path,
    wasm: &Path,
) -> Result<Arc<FunctionVersion>> {
    let (folder, wasm) = (dir.to_path_buf(), wasm.to_path_buf());
    let (sources, bytes) = tokio::task::spawn_blocking(move || -> Result<(String, Vec<u8>)> {
        let sources = python_build::dev_sources(&folder)?;
        let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
        Ok((sources, bytes))
    })
    .await??;
    let config = folder_dev_config(dir)?;
    Ok(runtime.load_dev(bytes, space, &config, sources.into()).await?)
}

/// Rebuilds and reloads each folder when its sources change, until the task is aborted.
pub async fn watch(runtime: Arc<Runtime>, space: String, dirs: Vec<PathBuf>, mode: DevMode) {
    let mut seen = vec![mode.since; dirs.len()];
    loop {
        tokio::time::sleep(mode.poll).await;
        for (dir, seen) in dirs.iter().zip(seen.iter_mut()) {
            let Some(newest) = newest_source(dir).await else { continue };
            if newest <= *seen {
                continue;
            }
            // An editor or `git checkout` writes several files: wait until one poll sees no
            // further change.
            tokio::time::sleep(mode.poll).await;
            if newest_source(dir).await != Some(newest) {
                continue;
            }
            *seen = newest;
            let started = Instant::now();
            let folder = dir.clone();
            let base = tokio::task::spawn_blocking(move || python_build::reload_base(&folder))
                .await
                .ok()
                .flatten();
            let (loaded, how) = match base {
                Some(wasm) => {
                    eprintln!(
                        "wasmfn dev: {} changed, reloading its sources (function.toml and \
                         requirements unchanged: no build)…",
                        dir.display()
                    );
                    (reload_sources(&runtime, &space, dir, &wasm).await, "sources reloaded")
                }
                None => {
                    eprintln!("wasmfn dev: {} changed, rebuilding…", dir.display());
                    (load_folder(&runtime, &space, dir).await, "rebuilt")
                }
            };
            match loaded {
                Ok(version) => eprintln!(
                    "wasmfn dev: {} {} is live, {how} ({:.1} s after the change was seen)",
                    version.name,
                    version.version,
                    started.elapsed().as_secs_f64()
                ),
                Err(error) => eprintln!(
                    "wasmfn dev: {}: this edit does not load; the previous version keeps \
                     answering:\n{error:#}",
                    dir.display()
                ),
            }
        }
    }
}

async fn newest_source(dir: &Path) -> Option<SystemTime> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || python_build::newest_source(&dir).ok()).await.ok()?
}

/// Shows every invocation on the terminal: status, function, entry, trigger and time, then
/// the function's output, log lines and traceback.
pub struct Console;

impl OutcomeObserver for Console {
    fn observe(&self, outcome: &Outcome) {
        let mut text = format!(
            "{} {} {}/{} {} {} via {} in {:.1} ms\n",
            chrono::Local::now().format("%H:%M:%S"),
            outcome.status(),
            outcome.space,
            outcome.function,
            outcome.version.as_deref().unwrap_or("-"),
            outcome.entry.as_deref().unwrap_or("-"),
            outcome.trigger,
            outcome.timing.total.as_secs_f64() * 1000.0,
        );
        let mut quote = |prefix: &str, body: &str| {
            for line in body.lines() {
                text.push_str(&format!("  {prefix} {line}\n"));
            }
        };
        quote("|", &outcome.stdout);
        quote("!", &outcome.stderr);
        for line in &outcome.logs {
            quote(&format!("[{}]", line.level.as_str()), &line.message);
        }
        if let Err(error) = &outcome.result {
            quote("error:", &format!("{} ({})", error, error.code()));
        }
        if let Some(traceback) = &outcome.traceback {
            quote("!", traceback);
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
