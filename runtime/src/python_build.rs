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
use crate::toolchain::{wasmfn_home, Toolchain, GUEST_PYTHON_VERSION};

/// Why a build failed; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no Python module found in {0}: add a .py file (or a functions/ package)")]
    NoModules(String),
    #[error("requirement '{0}' has no pure-Python wheel: packages with native code cannot run inside a WebAssembly component")]
    NativeRequirement(String),
    #[error("installing requirements.txt failed:\n{0}")]
    Requirements(String),
    #[error("{location}: {summary}\n{traceback}")]
    Python { location: String, summary: String, traceback: String },
    #[error(
        "no exposed function in {0}: decorate at least one function with @FunctionContext.expose"
    )]
    NoExposedFunction(String),
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

/// Build options.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where the `.wasm` goes (default `DIR/dist`).
    pub out_dir: Option<PathBuf>,
    /// Print progress to stderr.
    pub progress: bool,
}

/// The folder whose modules are importable: `DIR/functions` if it exists (as IXON's
/// `CBC_PATH=./functions`), otherwise `DIR`.
pub fn function_root(dir: &Path) -> PathBuf {
    let functions = dir.join("functions");
    if functions.is_dir() {
        functions
    } else {
        dir.to_path_buf()
    }
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

fn newest_source(dir: &Path) -> std::io::Result<SystemTime> {
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

/// Builds `dir` into a bundle.
pub fn build(dir: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    if !dir.is_dir() {
        return Err(BuildError::NotADirectory(dir.display().to_string()));
    }
    let manifest = FunctionManifest::load(dir)?;
    let root = function_root(dir);
    let modules = discover_modules(&root)?;
    if modules.is_empty() {
        return Err(BuildError::NoModules(root.display().to_string()));
    }
    let progress = |message: &str| {
        if options.progress {
            eprintln!("wasmfn build: {message}");
        }
    };
    progress(&format!("{} {} (modules: {})", manifest.name, manifest.version, modules.join(", ")));
    let toolchain = Toolchain::ensure(&wasmfn_home()).map_err(BuildError::Toolchain)?;

    let staging = tempfile::tempdir().map_err(io("creating a staging directory"))?;
    let guest = staging.path().join("guest");
    let deps = staging.path().join("deps");
    std::fs::create_dir_all(&deps).map_err(io("creating the staging directory"))?;
    install_requirements(&toolchain, dir, &deps, &progress)?;
    let requirements = discover_modules(&deps)?
        .into_iter()
        .filter(|m| !m.contains('.') && !m.starts_with('_'))
        .collect::<Vec<_>>();
    write_guest_sources(staging.path(), &modules, &requirements)?;

    progress("compiling Python into a component with componentize-py (takes ~20 s)");
    let out = staging.path().join("out.wasm");
    let result = Command::new(toolchain.componentize_py())
        .arg("-d")
        .arg(staging.path().join("wit"))
        .args(["-w", "function", "componentize", "wasmfn_entry", "-p"])
        .arg(&guest)
        .arg("-p")
        .arg(&root)
        .arg("-p")
        .arg(&deps)
        .arg("-o")
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .map_err(io("running componentize-py"))?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        return Err(componentize_error(&stderr, &root, dir));
    }

    let bytes = std::fs::read(&out).map_err(io("reading componentize-py's output"))?;
    let meta = BundleMeta {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        default_entry: manifest.default_entry.clone(),
        config: manifest.config.clone(),
        limits: manifest.limits.clone(),
        access: manifest.access,
        cron: manifest.cron.clone(),
        mqtt: manifest.mqtt.clone(),
        documents: manifest.documents.clone(),
        ixon_api: manifest.ixon_api.clone(),
        secrets: manifest.secrets.clone(),
        events: manifest.events.clone(),
        build_id: guest_sources::build_id(),
    };
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

fn write_guest_sources(
    staging: &Path,
    modules: &[String],
    requirements: &[String],
) -> Result<(), BuildError> {
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
    let manifest =
        format!("MODULES = [{}]\nREQUIREMENTS = [{}]\n", list(modules), list(requirements));
    std::fs::write(staging.join("guest").join("_wasmfn_manifest.py"), manifest)
        .map_err(io("writing the module list"))
}

/// Requirements the guest package provides itself (backed by the host); installing the real
/// ones would pull in network clients, native code and docker, which cannot run in a component.
/// Our `pymongo` and `bson` cover what functions use of them (errors, results, ObjectId).
const PROVIDED: &[&str] = &["ixoncdkingress", "pymongo"];

fn install_requirements(
    toolchain: &Toolchain,
    dir: &Path,
    deps: &Path,
    progress: &dyn Fn(&str),
) -> Result<(), BuildError> {
    let path = dir.join("requirements.txt");
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    let wanted: Vec<&str> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .filter(|line| !PROVIDED.contains(&requirement_name(line).as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    progress(&format!("installing pure-Python requirements: {}", wanted.join(", ")));
    let filtered = deps.with_extension("requirements.txt");
    std::fs::write(&filtered, wanted.join("\n")).map_err(io("writing requirements"))?;
    let result = Command::new(toolchain.pip())
        .args(["install", "--disable-pip-version-check", "--no-compile", "--quiet", "--target"])
        .arg(deps)
        .args(["--python-version", GUEST_PYTHON_VERSION])
        .args(["--only-binary", ":all:", "--platform", "any", "-r"])
        .arg(&filtered)
        .output()
        .map_err(io("running pip"))?;
    if result.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&result.stderr);
    if let Some(name) = stderr.lines().find_map(|line| {
        line.split_once("No matching distribution found for ").map(|(_, n)| n.trim())
    }) {
        return Err(BuildError::NativeRequirement(name.to_string()));
    }
    Err(BuildError::Requirements(last_lines(&stderr, 15)))
}

/// `name[extra]>=1.0 ; marker` → `name`, normalised as pip does.
fn requirement_name(line: &str) -> String {
    let end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(line.len());
    line[..end].to_ascii_lowercase().replace('_', "-")
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Turns componentize-py's failure into the user's error: the Python traceback with paths
/// mapped back to their folder, and `file:line` of the innermost user frame.
fn componentize_error(stderr: &str, root: &Path, dir: &Path) -> BuildError {
    let Some(start) = stderr.find("Traceback (most recent call last):").map(|i| {
        // The first traceback is componentize-py's own wrapper; the guest's follows it.
        stderr[i + 1..].find("Traceback (most recent call last):").map_or(i, |j| i + 1 + j)
    }) else {
        return BuildError::Componentize(last_lines(stderr, 20));
    };
    let end = stderr[start..].find("\n\nCaused by:").map_or(stderr.len(), |e| start + e);
    let shown_root = root.strip_prefix(dir).ok().filter(|p| !p.as_os_str().is_empty());
    let user_prefix = match shown_root {
        Some(sub) => format!("{}/{}/", dir.display(), sub.display()),
        None => format!("{}/", dir.display()),
    };
    let traceback = stderr[start..end]
        .replace("\"/1/", &format!("\"{user_prefix}"))
        .replace("\"/0/", "\"<wasmfn>/")
        .replace("\"/2/", "\"<requirements>/");
    let summary =
        traceback.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    if summary.contains("no exposed function found") {
        return BuildError::NoExposedFunction(dir.display().to_string());
    }
    // The innermost frame in the user's folder is where the problem is.
    let location = traceback
        .lines()
        .rev()
        .find_map(|line| {
            let rest = line.trim().strip_prefix(&format!("File \"{user_prefix}"))?;
            let (file, after) = rest.split_once('"')?;
            let line_no =
                after.split("line ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?;
            Some(format!("{user_prefix}{file}:{line_no}"))
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
    fn requirement_names_are_normalised() {
        assert_eq!(requirement_name("ixoncdkingress==1.0.0"), "ixoncdkingress");
        assert_eq!(requirement_name("Some_Pkg[extra]>=2 ; python_version>'3'"), "some-pkg");
    }

    #[test]
    fn syntax_errors_point_at_the_users_file_and_line() {
        let stderr = "Traceback (most recent call last):\n  File \"/x/componentize-py\", line 8\nAssertionError: Traceback (most recent call last):\n  File \"/0/wasmfn_entry.py\", line 19, in <module>\n  File \"/1/functions.py\", line 5\n    return {1:\n           ^\nSyntaxError: '{' was never closed\n\n\nCaused by:\n    SyntaxError";
        let error = componentize_error(stderr, Path::new("fn"), Path::new("fn"));
        match error {
            BuildError::Python { location, summary, traceback } => {
                assert_eq!(location, "fn/functions.py:5");
                assert_eq!(summary, "SyntaxError: '{' was never closed");
                assert!(traceback.contains("<wasmfn>/wasmfn_entry.py"), "{traceback}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
