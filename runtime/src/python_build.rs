//! `wasmfn build`: an IXON-style function folder → a `.wasm` component built by componentize-py.
//!
//! The folder holds a `functions/` package or plain `.py` files, an optional
//! `requirements.txt` (pure-Python packages only) and an optional `function.toml`. The user's
//! modules are imported at build time, so syntax and import errors surface here, with file and
//! line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::bundle::{self, BundleMeta};
use crate::guest_sources;
use crate::manifest::{FunctionManifest, ManifestError, MANIFEST_FILE};
use crate::toolchain::{wasmfn_home, Toolchain};

mod bounded;
pub mod exports;
pub mod immortal;
mod lock;
pub mod reproducible;
mod requirements;
pub mod syntax;
pub use requirements::wasi_wheels_dir;
use requirements::Requirements;

/// Why a build failed; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no Python module found in {0}: add a .py file (or a functions/ package)")]
    NoModules(String),
    #[error("requirement '{0}' has no pure-Python wheel: packages with native code cannot run inside a WebAssembly component unless built for WASI (docs/native-packages.md)")]
    NativeRequirement(String),
    #[error("requirement '{package}' needs '{dependency}', which has no pure-Python wheel: packages with native code cannot run inside a WebAssembly component unless built for WASI (docs/native-packages.md)")]
    NativeDependency { package: String, dependency: String },
    #[error("requirement '{package}' needs {dependency} built for WebAssembly (WASI), which is not in {wheels}: run {script} once (docs/native-packages.md)")]
    WasiWheelMissing { package: String, dependency: String, wheels: String, script: String },
    #[error("requirement '{package}' needs {dependency}, and the WebAssembly (WASI) build of it in {wheels} is another version ({found}): use a requirement that accepts it, or build that version with {script} (docs/native-packages.md)")]
    WasiWheelVersion {
        package: String,
        dependency: String,
        wheels: String,
        found: String,
        script: String,
    },
    #[error("installing requirements.txt failed:\n{0}")]
    Requirements(String),
    #[error("{location}: {summary}\n{traceback}")]
    Python { location: String, summary: String, traceback: String },
    #[error("componentize-py did not finish within {seconds} s, so it was stopped: the function's module-level code or one of its [[warmup]] calls may never return (a build that is only slow can have more time: wasmfn build --timeout)")]
    Deadline { seconds: u64 },
    #[error(
        "no exposed function in {0}: decorate at least one function with @FunctionContext.expose"
    )]
    NoExposedFunction(String),
    #[error("{0}")]
    DefaultEntry(String),
    #[error("componentize-py failed:\n{0}")]
    Componentize(String),
    #[error("{0:#}")]
    Toolchain(anyhow::Error),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub wasm: PathBuf,
    pub manifest: FunctionManifest,
    /// False when an up-to-date bundle was reused.
    pub rebuilt: bool,
}

/// How long componentize-py may run by default: it runs the function's module-level code and
/// its `[[warmup]]` calls, which may never return. A large bundle takes a minute at most here.
pub const DEFAULT_COMPONENTIZE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Build options.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where the `.wasm` goes (default `DIR/dist`).
    pub out_dir: Option<PathBuf>,
    /// Print progress to stderr.
    pub progress: bool,
    /// How long componentize-py may run (default [`DEFAULT_COMPONENTIZE_DEADLINE`]).
    pub deadline: Option<std::time::Duration>,
    /// Leave the pre-initialized heap's reference counts as CPython left them, instead of
    /// making its objects immortal ([`immortal`]).
    pub mortal_heap: bool,
    /// Keep every core function export, instead of removing those no module imports
    /// ([`exports`]).
    pub keep_exports: bool,
}

/// Where a function folder's modules are imported from, as ixoncdkingress imports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// IXON's app layout: `DIR/functions/` exists. Like `CBC_PATH=./functions python -m
    /// ixoncdkingress` run in `DIR`, both `functions/` (first) and `DIR` are import roots: a file
    /// `functions/notes.py` is module `notes` (and `functions.notes`), and bare entry names are
    /// served by module `functions` (`functions/functions.py`, else `functions/__init__.py`).
    Ixon,
    /// `.py` files directly in `DIR`, the only import root.
    Flat,
}

impl Layout {
    pub fn of(dir: &Path) -> Self {
        if dir.join("functions").is_dir() {
            Layout::Ixon
        } else {
            Layout::Flat
        }
    }
}

/// The folder whose modules are importable by their own names: `DIR/functions` if it exists (as
/// IXON's `CBC_PATH=./functions`), otherwise `DIR`.
pub fn function_root(dir: &Path) -> PathBuf {
    match Layout::of(dir) {
        Layout::Ixon => dir.join("functions"),
        Layout::Flat => dir.to_path_buf(),
    }
}

/// The files module `module` of `dir` may be, in the order Python looks: in IXON's layout the
/// bare-name module `functions` is `functions/functions.py`, else `functions/__init__.py`.
fn module_candidates(dir: &Path, module: &str) -> Vec<PathBuf> {
    let root = function_root(dir);
    let path = module.replace('.', "/");
    if module == "functions" && Layout::of(dir) == Layout::Ixon {
        vec![root.join("functions.py"), root.join("__init__.py")]
    } else {
        vec![root.join(format!("{path}.py")), root.join(&path).join("__init__.py")]
    }
}

/// The source files of `modules` (as [`entry_modules`] names them) that exist.
fn module_files(dir: &Path, modules: &[String]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for module in modules {
        files.extend(module_candidates(dir, module).into_iter().find(|file| file.is_file()));
    }
    files.sort();
    files.dedup();
    files
}

/// Checks that `default_entry` names a module of the folder whose source mentions the function.
/// A textual check, so that it can only err on the side of letting the build run (the load
/// checks the exposed entries exactly): a module that star-imports is not judged.
fn check_default_entry(
    dir: &Path,
    manifest: &FunctionManifest,
    modules: &[String],
) -> Result<(), BuildError> {
    let Some(entry) = &manifest.default_entry else { return Ok(()) };
    let (module, function) = match entry.rsplit_once('.') {
        // `functions.notes` is module `notes` in IXON's layout, where both are import roots.
        Some((module, function)) => match module.strip_prefix("functions.") {
            Some(inner)
                if Layout::of(dir) == Layout::Ixon && !modules.iter().any(|m| m == module) =>
            {
                (inner.to_string(), function)
            }
            _ => (module.to_string(), function),
        },
        // A bare name is served from module `functions`, as ixoncdkingress does.
        None => ("functions".to_string(), entry.as_str()),
    };
    let refuse = |why: String| {
        BuildError::DefaultEntry(format!(
            "{MANIFEST_FILE}: default_entry '{entry}': {why}; name an exposed function as \
             module.function"
        ))
    };
    if !modules.contains(&module) {
        return Err(refuse(format!(
            "there is no module '{module}' in {} (modules: {})",
            function_root(dir).display(),
            modules.join(", ")
        )));
    }
    let files = module_candidates(dir, &module);
    let Some(source) = files.iter().find_map(|file| std::fs::read_to_string(file).ok()) else {
        return Ok(());
    };
    let mentioned =
        source.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| word == function);
    if !mentioned && !source.contains("import *") {
        return Err(refuse(format!("module '{module}' has no '{function}'")));
    }
    Ok(())
}

/// The modules a build imports (so that calls find them in the snapshot): those under the
/// function root and, in IXON's layout, the `functions` package bare names are served from.
pub fn entry_modules(dir: &Path) -> Result<Vec<String>, BuildError> {
    let root = function_root(dir);
    let mut modules = discover_modules(&root)?;
    let shadowed = modules.iter().any(|m| m == "functions");
    if Layout::of(dir) == Layout::Ixon && !shadowed && root.join("__init__.py").is_file() {
        modules.push("functions".to_string());
        modules.sort();
    }
    Ok(modules)
}

/// Modules of `modules` whose source mentions `expose`: a build fails when one of them cannot be
/// imported (its functions could not be called), and only warns for the others.
fn exposing_modules(dir: &Path, modules: &[String]) -> Vec<String> {
    modules
        .iter()
        .filter(|module| {
            module_candidates(dir, module)
                .iter()
                .any(|file| std::fs::read_to_string(file).is_ok_and(|text| text.contains("expose")))
        })
        .cloned()
        .collect()
}

/// Module names under `root`, as Python would import them with `root` on `sys.path`.
pub fn discover_modules(root: &Path) -> Result<Vec<String>, BuildError> {
    let mut modules = Vec::new();
    walk(root, "", &mut modules).map_err(io(format!("reading {}", root.display())))?;
    modules.sort();
    Ok(modules)
}

fn skipped_dir(name: &str) -> bool {
    name.starts_with('.')
        || ["__pycache__", "dist", "tests", "test", "venv", "node_modules", "site-packages"]
            .contains(&name)
}

fn walk(dir: &Path, prefix: &str, modules: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let qualified =
            |n: &str| if prefix.is_empty() { n.to_string() } else { format!("{prefix}.{n}") };
        if path.is_dir() {
            if !skipped_dir(&name) && path.join("__init__.py").exists() && is_identifier(&name) {
                modules.push(qualified(&name));
                walk(&path, &qualified(&name), modules)?;
            }
        } else if let Some(stem) = name.strip_suffix(".py") {
            let is_test =
                stem.starts_with("test_") || stem.ends_with("_test") || stem == "conftest";
            if stem != "__init__" && stem != "setup" && !is_test && is_identifier(stem) {
                modules.push(qualified(stem));
            }
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The bundle path a build of `dir` writes.
pub fn output_path(manifest: &FunctionManifest, dir: &Path, options: &BuildOptions) -> PathBuf {
    let out_dir = options.out_dir.clone().unwrap_or_else(|| dir.join("dist"));
    out_dir.join(format!("{}-{}.wasm", manifest.name, manifest.version))
}

/// Builds `dir` unless its bundle is newer than every source (`.py`, `requirements.txt`,
/// `function.toml`) and was built by this wasmfn.
pub fn build_if_stale(dir: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    let manifest = FunctionManifest::load(dir)?;
    let wasm = output_path(&manifest, dir, options);
    if is_fresh(dir, &wasm)? {
        return Ok(Built { wasm, manifest, rebuilt: false });
    }
    build(dir, options)
}

fn is_fresh(dir: &Path, wasm: &Path) -> Result<bool, BuildError> {
    let Ok(built_at) = wasm.metadata().and_then(|m| m.modified()) else { return Ok(false) };
    let newest = newest_source(dir).map_err(io(format!("reading {}", dir.display())))?;
    if newest > built_at {
        return Ok(false);
    }
    let bytes = std::fs::read(wasm).map_err(io(format!("reading {}", wasm.display())))?;
    let meta = bundle::read_meta(&bytes).ok().flatten();
    Ok(meta.is_some_and(|m| m.build_id == guest_sources::build_id()))
}

/// When a source of the folder (`.py`, `requirements.txt`, `function.toml`) last changed.
pub fn newest_source(dir: &Path) -> std::io::Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if !skipped_dir(&name) {
                newest = newest.max(newest_source(&path)?);
            }
        } else if name.ends_with(".py") || name == "requirements.txt" || name == MANIFEST_FILE {
            newest = newest.max(entry.metadata()?.modified()?);
        }
    }
    Ok(newest)
}

/// The checks that need no Python, made first: they answer in milliseconds, a build in
/// seconds. The folder's manifest and the modules a build imports.
fn quick_checks(dir: &Path) -> Result<(FunctionManifest, Vec<String>), BuildError> {
    if !dir.is_dir() {
        return Err(BuildError::NotADirectory(dir.display().to_string()));
    }
    let manifest = FunctionManifest::load(dir)?;
    let modules = entry_modules(dir)?;
    if modules.is_empty() {
        return Err(BuildError::NoModules(function_root(dir).display().to_string()));
    }
    check_default_entry(dir, &manifest, &modules)?;
    Ok((manifest, modules))
}

/// Builds `dir` into a bundle.
pub fn build(dir: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    let (manifest, modules) = quick_checks(dir)?;
    let layout = Layout::of(dir);
    let progress = |message: &str| {
        if options.progress {
            eprintln!("wasmfn build: {message}");
        }
    };
    let progress: &dyn Fn(&str) = &progress;
    progress(&format!("{} {} (modules: {})", manifest.name, manifest.version, modules.join(", ")));
    if !dir.join(MANIFEST_FILE).exists() {
        progress(&format!(
            "note: no {MANIFEST_FILE}: the function may call every IXON API endpoint with its caller's rights, as on IXON's platform; list the ones it needs in [ixon_api] allow to narrow that"
        ));
    }
    let toolchain = Toolchain::ensure(&wasmfn_home()).map_err(BuildError::Toolchain)?;
    if !toolchain.is_reproducible() {
        progress(
            "note: componentize-py from PyPI: this bundle will not be byte-reproducible \
             (bash scripts/setup-componentize-py.sh builds the patched one; docs/writing-functions.md)",
        );
    }
    check_syntax(&toolchain, dir, &modules, progress)?;

    let staging = tempfile::tempdir().map_err(io("creating a staging directory"))?;
    let guest = staging.path().join("guest");
    let app = staging.path().join("app");
    let deps = staging.path().join("deps");
    std::fs::create_dir_all(&deps).map_err(io("creating the staging directory"))?;
    stage_sources(dir, &app).map_err(io(format!("copying the sources of {}", dir.display())))?;
    let requirements = Requirements::of(dir, &app)?;
    for note in &requirements.notes {
        progress(&format!("warning: {note}"));
    }
    {
        let _elapsed = options.progress.then(|| crate::progress::Elapsed::start("  requirements"));
        requirements.install(&toolchain, dir, &deps, &progress)?;
    }
    let requirements = requirements.declared_modules(&deps)?;

    // componentize-py mounts each `-p` folder at /0, /1, ... in that order; the guest maps the
    // mounts back to the names the user knows in tracebacks.
    let mut mounts: Vec<(PathBuf, String)> = vec![(guest.clone(), "<wasmfn>/".into())];
    for (folder, shown) in user_mounts(layout) {
        mounts.push((app.join(folder), shown.to_string()));
    }
    mounts.push((deps.clone(), "<requirements>/".into()));
    let manifest_py = GuestManifest {
        modules: &modules,
        exposing: &exposing_modules(dir, &modules),
        requirements: &requirements,
        user_roots: (1..mounts.len() - 1).map(|i| format!("/{i}")).collect(),
        source_roots: mounts
            .iter()
            .enumerate()
            .map(|(i, (_, shown))| (format!("/{i}"), shown.clone()))
            .collect(),
        warmup: serde_json::json!({
            "calls": manifest.warmup_calls(),
            "config": manifest.config,
        }),
    };
    write_guest_sources(staging.path(), &manifest_py)?;

    // componentize-py adds the site-packages of $VIRTUAL_ENV (else of whatever `python3` is on
    // PATH) to the bundle's path: an empty one keeps the host's packages out of every bundle.
    let no_site_packages = staging.path().join("no-venv");
    std::fs::create_dir_all(no_site_packages.join("lib").join("site-packages"))
        .map_err(io("creating the staging directory"))?;
    let seed = reproducible::settle(staging.path()).map_err(io("reading the staged sources"))?;

    progress("compiling Python into a component with componentize-py (takes 5-20 s)");
    let out = staging.path().join("out.wasm");
    let mut command = Command::new(toolchain.componentize_py());
    command.arg("-d").arg(staging.path().join("wit")).args([
        "-w",
        "function",
        "componentize",
        "wasmfn_entry",
    ]);
    for (path, _) in &mounts {
        command.arg("-p").arg(path);
    }
    let elapsed = options.progress.then(|| crate::progress::Elapsed::start("  componentize-py"));
    command
        .arg("-o")
        .arg(&out)
        .env("VIRTUAL_ENV", &no_site_packages)
        .env(reproducible::SEED_VARIABLE, seed.to_string())
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0");
    let deadline = options.deadline.unwrap_or(DEFAULT_COMPONENTIZE_DEADLINE);
    let (status, stderr) = bounded::run_bounded(command, deadline)
        .map_err(io("running componentize-py"))?
        .ok_or(BuildError::Deadline { seconds: deadline.as_secs() })?;
    let succeeded = status.success();
    drop(elapsed);
    if !succeeded {
        let stderr = String::from_utf8_lossy(&stderr);
        let shown: Vec<(String, String)> = manifest_py
            .source_roots
            .iter()
            .map(|(mount, shown)| {
                let user = !shown.starts_with('<');
                (
                    mount.clone(),
                    if user { format!("{}/{shown}", dir.display()) } else { shown.clone() },
                )
            })
            .collect();
        return Err(componentize_error(&stderr, &shown, dir));
    }

    let mut bytes = std::fs::read(&out).map_err(io("reading componentize-py's output"))?;
    if !options.mortal_heap {
        match immortal::immortalize(&mut bytes) {
            Ok(Some(done)) => progress(&format!(
                "made the pre-initialized heap immortal ({} of {} objects)",
                done.written, done.listed
            )),
            Ok(None) => progress("note: no heap table in the component: its objects stay mortal"),
            Err(error) => {
                return Err(BuildError::Componentize(format!(
                    "its output is not a component: {error}"
                )));
            }
        }
    }
    if !options.keep_exports {
        match exports::strip_unused_exports(&bytes) {
            Ok(Some((smaller, done))) => {
                bytes = smaller;
                progress(&format!(
                    "made {} core functions no module imports private ({} modules)",
                    done.functions, done.modules
                ));
            }
            Ok(None) => {}
            Err(error) => {
                return Err(BuildError::Componentize(format!(
                    "its output is not a component: {error}"
                )));
            }
        }
    }
    let meta = BundleMeta::from_manifest(&manifest, crate::guest_sources::build_id());
    let wasm = output_path(&manifest, dir, options);
    if let Some(parent) = wasm.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let tmp = wasm.with_extension("wasm.partial");
    std::fs::write(&tmp, bundle::with_meta(&bytes, &meta))
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &wasm).map_err(io(format!("writing {}", wasm.display())))?;
    progress(&format!("wrote {}", wasm.display()));
    Ok(Built { wasm, manifest, rebuilt: true })
}

/// Checks the syntax of the modules with the toolchain's Python (a fraction of a second): a
/// certain error fails at once; one only this machine's older Python sees is a warning.
fn check_syntax(
    toolchain: &Toolchain,
    dir: &Path,
    modules: &[String],
    progress: &dyn Fn(&str),
) -> Result<(), BuildError> {
    let Some(found) = syntax::check(&toolchain.python(), &module_files(dir, modules)) else {
        return Ok(());
    };
    let location = format!("{}:{}", found.file.display(), found.line);
    if found.is_certain() {
        return Err(BuildError::Python {
            location,
            summary: found.message,
            traceback: String::new(),
        });
    }
    let (major, minor) = found.python;
    progress(&format!(
        "warning: {location}: {} (so says this machine's Python {major}.{minor}; the bundle's \
         Python {}.{} has the last word, building to let it decide)",
        found.message,
        syntax::guest_python().0,
        syntax::guest_python().1
    ));
    Ok(())
}

/// The folders of the staged sources that componentize-py mounts as the user's code, in mount
/// order (`/1`, `/2`, ...), and how tracebacks show each.
fn user_mounts(layout: Layout) -> &'static [(&'static str, &'static str)] {
    match layout {
        // Bare module names are served from `functions/`, and the folder is a root too.
        Layout::Ixon => &[("functions", "functions/"), ("", "")],
        Layout::Flat => &[("", "")],
    }
}

/// The last bundle built for `dir`, when it can take the folder's current sources as
/// `wasmfn dev` reloads them ([`dev_sources`]): built by this wasmfn from the same
/// `function.toml` (the same metadata, so the same name, version, limits, triggers) and no
/// requirements file newer than it. `None`: the folder must be built.
pub fn reload_base(dir: &Path) -> Option<PathBuf> {
    let manifest = FunctionManifest::load(dir).ok()?;
    let wasm = output_path(&manifest, dir, &BuildOptions::default());
    let built_at = wasm.metadata().and_then(|m| m.modified()).ok()?;
    for file in ["requirements.txt", lock::LOCK_FILE] {
        let changed = dir.join(file).metadata().and_then(|m| m.modified());
        if changed.is_ok_and(|at| at > built_at) {
            return None;
        }
    }
    let bytes = std::fs::read(&wasm).ok()?;
    let meta = bundle::read_meta(&bytes).ok().flatten()?;
    let wanted = BundleMeta::from_manifest(&manifest, guest_sources::build_id());
    (meta == wanted).then_some(wasm)
}

/// `wasmfn dev`'s reload of an edit (see `Runtime::load_dev`): the checks a build makes first
/// (function.toml, modules, `default_entry`, syntax), then the folder's sources as the guest
/// takes them, JSON: `files`, a `[path, base64]` pair for each file a build copies, at each
/// mount a build gives it; `modules` and `exposing`, as a build lists them.
pub fn dev_sources(dir: &Path) -> Result<String, BuildError> {
    use base64::Engine as _;
    let (_, modules) = quick_checks(dir)?;
    let toolchain = Toolchain::ensure(&wasmfn_home()).map_err(BuildError::Toolchain)?;
    check_syntax(&toolchain, dir, &modules, &|message| eprintln!("wasmfn dev: {message}"))?;
    let reading = || io(format!("reading the sources of {}", dir.display()));
    let mut staged = Vec::new();
    for (relative, path) in BundleFiles::of(dir).map_err(reading())?.files {
        let data = std::fs::read(&path).map_err(reading())?;
        staged.push((relative, base64::engine::general_purpose::STANDARD.encode(data)));
    }
    let mut files = Vec::new();
    for (index, (folder, _)) in user_mounts(Layout::of(dir)).iter().enumerate() {
        let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        for (relative, encoded) in &staged {
            if let Some(inside) = relative.strip_prefix(&prefix) {
                files.push(serde_json::json!([format!("/{}/{inside}", index + 1), encoded]));
            }
        }
    }
    Ok(serde_json::json!({
        "files": files,
        "modules": modules,
        "exposing": exposing_modules(dir, &modules),
    })
    .to_string())
}

/// What the guest's `_wasmfn_manifest` module tells the entry module about this build.
struct GuestManifest<'a> {
    /// Modules to import at build time.
    modules: &'a [String],
    /// Of those, the ones whose import failure fails the build.
    exposing: &'a [String],
    /// Top-level packages of requirements.txt, preloaded.
    requirements: &'a [String],
    /// Mounts holding the user's code (modules elsewhere are not the user's).
    user_roots: Vec<String>,
    /// Mount → how tracebacks show it.
    source_roots: Vec<(String, String)>,
    /// `[[warmup]]` calls (entries filled in) and the `[config]` they see, as JSON.
    warmup: serde_json::Value,
}

/// What a bundle takes of `dir`: every `.py` file and, inside packages (folders with
/// `__init__.py`), their data files; never the folder's own dev files (`context_values.yaml`
/// may hold credentials), tests, virtualenvs, `dist/` or front-end folders. Paths relative to
/// `dir`, with `/`, sorted: the folders walked (`""` first), then the files and where they are.
struct BundleFiles {
    folders: Vec<String>,
    files: Vec<(String, PathBuf)>,
}

impl BundleFiles {
    fn of(dir: &Path) -> std::io::Result<Self> {
        let mut found = Self { folders: Vec::new(), files: Vec::new() };
        found.walk(dir, "")?;
        Ok(found)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> std::io::Result<()> {
        self.folders.push(prefix.trim_end_matches('/').to_string());
        let in_package = dir.join("__init__.py").is_file();
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                if !skipped_dir(&name) {
                    self.walk(&path, &format!("{prefix}{name}/"))?;
                }
            } else if name.ends_with(".py") || (in_package && !name.ends_with(".pyc")) {
                self.files.push((format!("{prefix}{name}"), path));
            }
        }
        Ok(())
    }
}

/// Copies what a bundle takes of `dir` ([`BundleFiles`]) into `to`.
fn stage_sources(dir: &Path, to: &Path) -> std::io::Result<()> {
    let found = BundleFiles::of(dir)?;
    for folder in &found.folders {
        std::fs::create_dir_all(to.join(folder))?;
    }
    for (relative, path) in &found.files {
        std::fs::copy(path, to.join(relative))?;
    }
    Ok(())
}

fn write_guest_sources(staging: &Path, manifest: &GuestManifest) -> Result<(), BuildError> {
    for (path, contents) in guest_sources::FILES {
        let relative = path.strip_prefix("guest-python/").map(|p| format!("guest/{p}"));
        let target = staging.join(relative.as_deref().unwrap_or(path));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("writing guest sources"))?;
        }
        std::fs::write(&target, contents).map_err(io("writing guest sources"))?;
    }
    let list =
        |names: &[String]| names.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ");
    let pairs = manifest
        .source_roots
        .iter()
        .map(|(mount, shown)| format!("({mount:?}, {shown:?})"))
        .collect::<Vec<_>>()
        .join(", ");
    // A JSON string is a Python string literal (serde_json escapes as Python reads them).
    let warmup = serde_json::to_string(&manifest.warmup.to_string()).expect("a string");
    let text = format!(
        "MODULES = [{}]\nEXPOSING = [{}]\nREQUIREMENTS = [{}]\nUSER_ROOTS = [{}]\nSOURCE_ROOTS = [{pairs}]\nWARMUP_JSON = {warmup}\n",
        list(manifest.modules),
        list(manifest.exposing),
        list(manifest.requirements),
        list(&manifest.user_roots),
    );
    std::fs::write(staging.join("guest").join("_wasmfn_manifest.py"), text)
        .map_err(io("writing the module list"))
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Turns componentize-py's failure into the user's error: the Python traceback with each mount
/// (`/0`, `/1`, ...) shown as `mounts` says, and `file:line` of the innermost user frame (a
/// mount shown as a path, not as `<...>`).
fn componentize_error(stderr: &str, mounts: &[(String, String)], dir: &Path) -> BuildError {
    let Some(start) = stderr.find("Traceback (most recent call last):").map(|i| {
        // The first traceback is componentize-py's own wrapper; the guest's follows it.
        stderr[i + 1..].find("Traceback (most recent call last):").map_or(i, |j| i + 1 + j)
    }) else {
        return BuildError::Componentize(last_lines(stderr, 20));
    };
    let end = stderr[start..].find("\n\nCaused by:").map_or(stderr.len(), |e| start + e);
    let mut traceback = stderr[start..end].to_string();
    for (mount, shown) in mounts {
        traceback = traceback.replace(&format!("\"{mount}/"), &format!("\"{shown}"));
    }
    let summary =
        traceback.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    if summary.contains("no exposed function found") {
        return BuildError::NoExposedFunction(dir.display().to_string());
    }
    let user_prefixes: Vec<&str> =
        mounts.iter().map(|(_, shown)| shown.as_str()).filter(|s| !s.starts_with('<')).collect();
    // The innermost frame in the user's folder is where the problem is.
    let location = traceback
        .lines()
        .rev()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("File \"")?;
            user_prefixes.iter().find(|prefix| rest.starts_with(*prefix))?;
            let (file, after) = rest.split_once('"')?;
            let line_no =
                after.split("line ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?;
            Some(format!("{file}:{line_no}"))
        })
        .unwrap_or_else(|| dir.display().to_string());
    BuildError::Python { location, summary, traceback }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_found_as_python_would_import_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("functions.py"), "").unwrap();
        std::fs::write(root.join("test_functions.py"), "").unwrap();
        std::fs::create_dir_all(root.join("pkg/sub")).unwrap();
        std::fs::write(root.join("pkg/__init__.py"), "").unwrap();
        std::fs::write(root.join("pkg/a.py"), "").unwrap();
        std::fs::write(root.join("pkg/sub/b.py"), "").unwrap();
        std::fs::create_dir_all(root.join("dist")).unwrap();
        std::fs::write(root.join("dist/x.py"), "").unwrap();
        assert_eq!(discover_modules(root).unwrap(), vec!["functions", "pkg", "pkg.a"]);
    }

    #[test]
    fn functions_folder_is_the_root_like_cbc_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(function_root(dir.path()), dir.path());
        std::fs::create_dir(dir.path().join("functions")).unwrap();
        assert_eq!(function_root(dir.path()), dir.path().join("functions"));
    }

    #[test]
    fn syntax_errors_point_at_the_users_file_and_line() {
        let stderr = "Traceback (most recent call last):\n  File \"/x/componentize-py\", line 8\nAssertionError: Traceback (most recent call last):\n  File \"/0/wasmfn_entry.py\", line 19, in <module>\n  File \"/1/functions.py\", line 5\n    return {1:\n           ^\nSyntaxError: '{' was never closed\n\n\nCaused by:\n    SyntaxError";
        let mounts = [("/0".to_string(), "<wasmfn>/".to_string()), ("/1".into(), "fn/".into())];
        let error = componentize_error(stderr, &mounts, Path::new("fn"));
        match error {
            BuildError::Python { location, summary, traceback } => {
                assert_eq!(location, "fn/functions.py:5");
                assert_eq!(summary, "SyntaxError: '{' was never closed");
                assert!(traceback.contains("<wasmfn>/wasmfn_entry.py"), "{traceback}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_default_entry_that_is_not_there_is_refused_before_any_python_runs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("functions");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("notes.py"), "@FunctionContext.expose\ndef add(context):\n")
            .unwrap();
        std::fs::write(root.join("star.py"), "from .notes import *\n").unwrap();
        let check = |entry: &str| {
            let toml = format!("name = \"n\"\nversion = \"1.0.0\"\ndefault_entry = \"{entry}\"\n");
            std::fs::write(dir.path().join(MANIFEST_FILE), toml).unwrap();
            let manifest = FunctionManifest::load(dir.path()).unwrap();
            let modules = entry_modules(dir.path()).unwrap();
            check_default_entry(dir.path(), &manifest, &modules).map_err(|e| e.to_string())
        };
        assert_eq!(check("notes.add"), Ok(()));
        assert_eq!(check("functions.notes.add"), Ok(()));
        assert_eq!(check("star.add"), Ok(()), "a star import is not judged");
        let typo = check("notes.ad").unwrap_err();
        assert!(typo.contains("default_entry 'notes.ad': module 'notes' has no 'ad'"), "{typo}");
        let missing = check("note.add").unwrap_err();
        assert!(
            missing.contains("there is no module 'note'") && missing.contains("notes"),
            "{missing}"
        );
    }
}
