//! The pinned componentize-py, installed on first use into a virtualenv wasmfn owns
//! (`$WASMFN_HOME/toolchain/componentize-py-<version>`), never into the user's Python.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The componentize-py release bundles are built with (it embeds CPython 3.14).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The Python version inside bundles; requirements are resolved for it, not the host's.
pub const GUEST_PYTHON_VERSION: &str = "3.14";

/// wasmfn's own directory: `$WASMFN_HOME`, else `$XDG_CACHE_HOME/wasmfn`, else `~/.cache/wasmfn`.
pub fn wasmfn_home() -> PathBuf {
    if let Some(home) = std::env::var_os("WASMFN_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(cache).join("wasmfn");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("wasmfn")
}

/// Where `scripts/setup-componentize-py.sh` puts the componentize-py it builds from the
/// crates.io source with wasmfn's reproducibility patch (`vendor/componentize-py/`), under
/// `$WASMFN_HOME/toolchain`.
pub const REPRODUCIBLE_DIR: &str = "componentize-py-0.25.1-reproducible";

/// An installed componentize-py.
#[derive(Debug, Clone)]
pub struct Toolchain {
    venv: PathBuf,
    /// The patched componentize-py binary, when it is built: bundles are then the same bytes
    /// wherever they are built (`python_build::reproducible`).
    reproducible: Option<PathBuf>,
}

impl Toolchain {
    /// The toolchain under `home`, installed now (with progress on stderr) if missing.
    pub fn ensure(home: &Path) -> Result<Self> {
        let root = home.join("toolchain");
        let toolchain = Self::at(home);
        if toolchain.is_installed() {
            return Ok(toolchain);
        }
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        // Several builds (parallel tests, two terminals) may start at once: one installs.
        let lock = File::create(root.join(".install.lock")).context("creating the install lock")?;
        lock.lock().context("waiting for the install lock")?;
        if !toolchain.is_installed() {
            toolchain.install()?;
        }
        Ok(toolchain)
    }

    /// The toolchain under `home` if it is installed; never installs.
    pub fn installed(home: &Path) -> Option<Self> {
        let toolchain = Self::at(home);
        toolchain.is_installed().then_some(toolchain)
    }

    fn at(home: &Path) -> Self {
        let root = home.join("toolchain");
        let patched = root.join(REPRODUCIBLE_DIR);
        let reproducible = (patched.join(".complete").exists()
            && patched.join("bin").join("componentize-py").exists())
        .then(|| patched.join("bin").join("componentize-py"));
        Self { venv: root.join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}")), reproducible }
    }

    /// Whether builds use the patched componentize-py, and so are byte-reproducible.
    pub fn is_reproducible(&self) -> bool {
        self.reproducible.is_some()
    }

    /// Where it is installed.
    pub fn dir(&self) -> &Path {
        &self.venv
    }

    fn is_installed(&self) -> bool {
        self.venv.join(".complete").exists()
            && self.venv.join("bin").join("componentize-py").exists()
    }

    fn install(&self) -> Result<()> {
        eprintln!(
            "wasmfn: installing componentize-py {COMPONENTIZE_PY_VERSION} into {} (first build only)",
            self.venv.display()
        );
        // A half-finished install (interrupted earlier) has no `.complete` marker: start over.
        let _ = std::fs::remove_dir_all(&self.venv);
        let python = find_python()?;
        run(Command::new(&python).arg("-m").arg("venv").arg(&self.venv), "creating a virtualenv")?;
        run(
            Command::new(self.pip())
                .args(["install", "--disable-pip-version-check", "--progress-bar", "on"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
            "installing componentize-py with pip",
        )?;
        std::fs::write(self.venv.join(".complete"), COMPONENTIZE_PY_VERSION)?;
        eprintln!("wasmfn: componentize-py {COMPONENTIZE_PY_VERSION} installed");
        Ok(())
    }

    /// The componentize-py builds run: the reproducible one when it is built, else PyPI's.
    pub fn componentize_py(&self) -> PathBuf {
        self.reproducible.clone().unwrap_or_else(|| self.venv.join("bin").join("componentize-py"))
    }

    /// The Python that runs componentize-py (the host's, not the bundle's CPython 3.14).
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    pub fn pip(&self) -> PathBuf {
        self.venv.join("bin").join("pip")
    }
}

/// The `python3` (or `python`) on PATH that would install the toolchain.
pub fn find_python() -> Result<PathBuf> {
    for candidate in ["python3", "python"] {
        let found = Command::new(candidate).arg("--version").output();
        if found.is_ok_and(|output| output.status.success()) {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!("python3 was not found on PATH: wasmfn needs Python 3.9 or newer (with venv) to install componentize-py")
}

/// Runs an install step with its output on stderr: stdout is `wasmfn build`'s answer (the
/// bundle's path), which scripts read; pip's progress there would break them on a first build.
fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("{what}: could not start {command:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
