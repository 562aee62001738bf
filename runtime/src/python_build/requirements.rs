//! What pip installs into a bundle: the function's requirements.txt, the SDK's own dependencies
//! the function relies on without declaring them (as it may on IXON, where they arrive with
//! ixoncdkingress), and the rules that keep IXON's pins working on the bundle's CPython.
//!
//! It owns reading requirements.txt, the pip call and the translation of pip's failures into
//! build errors; it must not touch the staging layout or componentize-py (the parent module).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{discover_modules, io, last_lines, lock, BuildError};
use crate::toolchain::{wasmfn_home, Toolchain, GUEST_PYTHON_VERSION};

/// The platform tag of wheels built for componentize-py's CPython (WASI, 32-bit).
const WASI_PLATFORM: &str = "wasi_0_0_0_wasm32";

/// Where scripts/build-wasi-wheels.sh puts the WebAssembly builds of native packages:
/// `$WASMFN_WHEELS`, else `$WASMFN_HOME/wheels`.
pub fn wasi_wheels_dir() -> PathBuf {
    match std::env::var_os("WASMFN_WHEELS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => wasmfn_home().join("wheels"),
    }
}

/// Packages with native code that wasmfn's scripts build for WebAssembly into
/// [`wasi_wheels_dir`], with the script that builds each (docs/native-packages.md). A build that
/// needs one of them and finds no wheel says which script to run; none of them is ever tried as
/// a source build (their native code would only be compiled for the build machine).
const WASI_BUILT: &[(&str, &str)] = &[
    ("pydantic-core", "scripts/build-wasi-wheels.sh"),
    ("regex", "scripts/build-wasi-c-wheels.sh"),
];

/// The script that builds `name` for WebAssembly, when one does.
fn wasi_built(name: &str) -> Option<&'static str> {
    WASI_BUILT.iter().find(|(package, _)| *package == name).map(|(_, script)| *script)
}

/// The error for `package` needing `dependency` (`regex>=2024.9.11`), which wasmfn builds for
/// WebAssembly with `script`: no such wheel in the wheels directory `dir`, or only other
/// versions.
fn wasi_wheel_missing(package: String, dependency: String, script: &str, dir: &Path) -> BuildError {
    let prefix = format!("{}-", requirement_name(&dependency).replace('-', "_"));
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.strip_suffix(".whl")?.to_string();
            rest.contains("wasi").then(|| rest.split('-').next().unwrap_or_default().to_string())
        })
        .collect();
    found.sort();
    let wheels = dir.display().to_string();
    let script = script.to_string();
    if found.is_empty() {
        BuildError::WasiWheelMissing { package, dependency, wheels, script }
    } else {
        BuildError::WasiWheelVersion {
            package,
            dependency,
            wheels,
            found: found.join(", "),
            script,
        }
    }
}

/// ixoncdkingress's own pure-Python dependencies (and `packaging`, which IXON's platform has
/// too), each with its top-level module: on IXON they arrive with the SDK, and apps import them
/// without declaring them. Pinned to versions ixoncdkingress 1.0 accepts (`requests~=2.31.0`);
/// a requirement of the function's own with the same name wins.
const SDK_DEPENDENCIES: &[(&str, &str)] = &[
    ("requests==2.31.0", "requests"),
    ("urllib3==2.2.3", "urllib3"),
    ("idna==3.10", "idna"),
    ("certifi==2024.8.30", "certifi"),
    ("charset-normalizer==3.4.0", "charset_normalizer"),
    ("packaging==24.2", "packaging"),
];

/// The pydantic a bundle gets when its code imports pydantic without declaring it, or declares
/// a release that cannot run on the bundle's CPython 3.14 (ixoncdkingress 1.0 itself pins
/// `pydantic~=2.10.6`). 2.12 is the first release that supports 3.14; its pydantic-core (2.41.5)
/// is the one scripts/build-wasi-wheels.sh builds first. Only added on use: pydantic costs every
/// bundle ~7 MB and ~4 s of compile time.
const PYDANTIC: &str = "pydantic==2.12.5";
/// The first pydantic 2 minor release that runs on CPython 3.14 (docs/native-packages.md).
const PYDANTIC_FIRST_WORKING_MINOR: u32 = 12;

/// Requirements the guest package provides itself (backed by the host); installing the real
/// ones would pull in network clients, native code and docker, which cannot run in a component.
/// Our `pymongo` and `bson` cover what functions use of them (errors, results, ObjectId).
const PROVIDED: &[&str] = &["ixoncdkingress", "pymongo"];

/// What one build installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// requirements.txt's requirements (comments, blank lines and provided packages left
    /// out), pins that cannot work replaced.
    declared: Vec<String>,
    /// Added for the SDK: (requirement, top-level module).
    implicit: Vec<(String, String)>,
    /// What the build changed of requirements.txt and why, shown as warnings.
    pub notes: Vec<String>,
}

impl Requirements {
    /// The requirements of the function in `dir` (whose staged sources are in `sources`).
    pub fn of(dir: &Path, sources: &Path) -> Result<Self, BuildError> {
        let lines = requirement_lines(dir)?;
        let uses_pydantic =
            imports_anywhere(sources, "pydantic").map_err(io("reading the function's sources"))?;
        Ok(Self::resolve(lines, uses_pydantic))
    }

    fn resolve(lines: Vec<String>, uses_pydantic: bool) -> Self {
        let mut notes = Vec::new();
        let declared: Vec<String> = lines
            .into_iter()
            .filter(|line| !PROVIDED.contains(&requirement_name(line).as_str()))
            .map(|line| match unworkable_pydantic(&line) {
                Some(pinned) => {
                    notes.push(format!(
                        "'{line}' cannot run on the bundle's CPython {GUEST_PYTHON_VERSION} \
                         (pydantic supports it from 2.{PYDANTIC_FIRST_WORKING_MINOR}); installing \
                         {PYDANTIC} instead, which has the same v2 API \
                         (docs/native-packages.md)"
                    ));
                    pinned
                }
                None => line,
            })
            .collect();
        let named = |name: &str| declared.iter().any(|line| requirement_name(line) == name);
        let mut implicit: Vec<(String, String)> = SDK_DEPENDENCIES
            .iter()
            .filter(|(requirement, _)| !named(&requirement_name(requirement)))
            .map(|(requirement, module)| (requirement.to_string(), module.to_string()))
            .collect();
        if uses_pydantic && !named("pydantic") {
            implicit.push((PYDANTIC.to_string(), "pydantic".to_string()));
        }
        Requirements { declared, implicit, notes }
    }

    /// Installs everything into `deps` with pip, for the bundle's CPython and platform: the
    /// pins of `folder`'s requirements.lock when it was written for the same request, else
    /// what pip resolves, then written to requirements.lock when the function declares any.
    pub fn install(
        &self,
        toolchain: &Toolchain,
        folder: &Path,
        deps: &Path,
        progress: &dyn Fn(&str),
    ) -> Result<(), BuildError> {
        let wanted: Vec<&str> = self
            .declared
            .iter()
            .map(String::as_str)
            .chain(self.implicit.iter().map(|(requirement, _)| requirement.as_str()))
            .collect();
        let key = lock::key(&wanted, GUEST_PYTHON_VERSION, WASI_PLATFORM);
        let locked = lock::read(folder).filter(|lock| lock.key == key);
        match (&locked, self.declared.is_empty()) {
            (Some(lock), _) => progress(&format!(
                "installing the {} pinned versions of {}",
                lock.pins.len(),
                lock::LOCK_FILE
            )),
            (None, false) => {
                progress(&format!("resolving requirements: {}", self.declared.join(", ")))
            }
            (None, true) => {}
        }
        let lines: Vec<&str> = match &locked {
            Some(lock) => lock.pins.iter().map(String::as_str).collect(),
            None => wanted.clone(),
        };
        let filtered = deps.with_extension("requirements.txt");
        std::fs::write(&filtered, lines.join("\n")).map_err(io("writing requirements"))?;
        self.pip_install(toolchain, deps, &filtered, locked.is_some(), progress)?;
        if locked.is_none() && !self.declared.is_empty() {
            let pins = lock::installed(deps).map_err(io("reading what pip installed"))?;
            lock::write(folder, &key, &pins)
                .map_err(io(format!("writing {}", folder.join(lock::LOCK_FILE).display())))?;
            progress(&format!("wrote {} ({} versions)", lock::LOCK_FILE, pins.len()));
        }
        Ok(())
    }

    fn pip_install(
        &self,
        toolchain: &Toolchain,
        deps: &Path,
        filtered: &Path,
        pinned: bool,
        progress: &dyn Fn(&str),
    ) -> Result<(), BuildError> {
        // Wheels built here from source distributions, for packages that publish no wheel.
        let from_source = deps.with_extension("from-source");
        let mut built_from_source: Vec<String> = Vec::new();
        loop {
            let mut pip = Command::new(toolchain.pip());
            pip.args(["install", "--disable-pip-version-check", "--no-compile", "--quiet"])
                .arg("--target")
                .arg(deps)
                .args(["--python-version", GUEST_PYTHON_VERSION])
                .args(["--only-binary", ":all:", "--platform", "any", "--platform", WASI_PLATFORM]);
            // Native packages built for WebAssembly by the scripts of [`WASI_BUILT`]
            // (pydantic-core, regex).
            let wheels = wasi_wheels_dir();
            if wheels.is_dir() {
                pip.arg("--find-links").arg(&wheels);
            }
            if !built_from_source.is_empty() {
                pip.arg("--find-links").arg(&from_source);
            }
            if pinned {
                // Every distribution is in the lock: nothing to resolve.
                pip.arg("--no-deps");
            }
            let result = pip.arg("-r").arg(filtered).output().map_err(io("running pip"))?;
            if result.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&result.stderr);
            let buildable = missing_wheel(&stderr).filter(|requirement| {
                built_from_source.len() < MAX_SOURCE_BUILDS
                    && !built_from_source.contains(requirement)
                    && wasi_built(&requirement_name(requirement)).is_none()
            });
            let Some(requirement) = buildable else { return Err(pip_failure(&stderr, &wheels)) };
            progress(&format!("{requirement} publishes no wheel: building it from source"));
            if !build_pure_wheel(toolchain, &requirement, &from_source)? {
                return Err(pip_failure(&stderr, &wheels));
            }
            built_from_source.push(requirement);
        }
    }

    /// The top-level modules of the requirements (preloaded at build time), except those of the
    /// SDK's own dependencies the function did not ask for: they load when a module imports them.
    pub fn declared_modules(&self, deps: &Path) -> Result<Vec<String>, BuildError> {
        Ok(discover_modules(deps)?
            .into_iter()
            .filter(|m| {
                !m.contains('.')
                    && !m.starts_with('_')
                    && !self.implicit.iter().any(|(_, module)| module == m)
            })
            .collect())
    }
}

/// Requirements without a wheel a build builds from source at most (one pip run each).
const MAX_SOURCE_BUILDS: usize = 8;

/// The requirement pip found no installable wheel for (`zenpy==2.0.25`, or a dependency's
/// `regex>=2024`), when that is why it failed.
fn missing_wheel(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let (_, rest) =
            line.split_once("Could not find a version that satisfies the requirement ")?;
        Some(rest.split(" (").next()?.trim().to_string())
    })
}

/// How long building one requirement from its source distribution may take: a pure-Python
/// package builds in seconds; anything slower is not worth waiting for (its result could not
/// run in a bundle anyway when it compiles native code).
const SOURCE_BUILD_DEADLINE: Duration = Duration::from_secs(120);

/// Builds `requirement` from its source distribution into `into` (`pip wheel`, on the build
/// machine, as `pip install` would): true when the result is pure Python (`*-none-any`), which
/// runs in a bundle as any wheel from PyPI; false when it has native code or could not be built.
///
/// Native code is never compiled: the C, C++ and Rust compilers the build backends look for
/// are `false`, so a package with extensions (numpy, regex) fails in seconds instead of
/// compiling for minutes a result the bundle could not use; and the whole build, with the
/// processes it starts, is stopped at [`SOURCE_BUILD_DEADLINE`].
fn build_pure_wheel(
    toolchain: &Toolchain,
    requirement: &str,
    into: &Path,
) -> Result<bool, BuildError> {
    let scratch = into.with_extension("scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(into).map_err(io("creating the wheel directory"))?;
    let mut pip = Command::new(toolchain.pip());
    // Only the requirement from source: its build dependencies (setuptools, meson-python, …)
    // come as wheels, or pip would build each of them from source too (minutes).
    pip.args(["wheel", "--disable-pip-version-check", "--quiet", "--no-deps"])
        .arg("--no-binary")
        .arg(requirement_name(requirement))
        .arg("--wheel-dir")
        .arg(&scratch)
        .arg(requirement);
    for compiler in ["CC", "CXX", "CARGO", "RUSTC"] {
        pip.env(compiler, "false");
    }
    if !run_within(pip, SOURCE_BUILD_DEADLINE).map_err(io("running pip wheel"))? {
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(false);
    }
    let mut pure = false;
    for entry in std::fs::read_dir(&scratch).map_err(io("reading the built wheel"))? {
        let path = entry.map_err(io("reading the built wheel"))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.ends_with("-none-any.whl") {
            std::fs::rename(&path, into.join(&name)).map_err(io("keeping the built wheel"))?;
            pure = true;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(pure)
}

/// Runs `command` (output discarded) in a process group of its own: true when it succeeded
/// within `deadline`; when the deadline passes, the group (the command and every process it
/// started) is killed and the answer is false.
fn run_within(command: Command, deadline: Duration) -> std::io::Result<bool> {
    let finished = super::bounded::run_bounded(command, deadline)?;
    Ok(finished.is_some_and(|(status, _)| status.success()))
}

/// The build error pip's `stderr` stands for: a package with native code only is named (with
/// the requirement that needs it, and the script that builds it for WebAssembly when one does;
/// `wheels` is where such builds are looked for), anything else is shown as pip said it.
fn pip_failure(stderr: &str, wheels: &Path) -> BuildError {
    if let Some((dependency, package)) = stderr.lines().find_map(|line| {
        let (_, rest) =
            line.split_once("Could not find a version that satisfies the requirement ")?;
        let (requirement, after) = rest.split_once(" (")?;
        // `(from versions: none)` follows a requirement of the function's own.
        let package = after.strip_prefix("from ").filter(|p| !p.starts_with("versions"))?;
        let package = package.split(')').next()?;
        Some((requirement.trim().to_string(), requirement_name(package)))
    }) {
        // A dependency of a requirement, as `regex (from dateparser)`.
        if let Some(script) = wasi_built(&requirement_name(&dependency)) {
            return wasi_wheel_missing(package, dependency, script, wheels);
        }
        return BuildError::NativeDependency { package, dependency: requirement_name(&dependency) };
    }
    if let Some(name) = stderr.lines().find_map(|line| {
        line.split_once("No matching distribution found for ").map(|(_, n)| n.trim())
    }) {
        // A requirement of the function's own (`regex==2026.11.19`).
        if let Some(script) = wasi_built(&requirement_name(name)) {
            return wasi_wheel_missing(requirement_name(name), name.to_string(), script, wheels);
        }
        return BuildError::NativeRequirement(name.to_string());
    }
    if let Some((package, dependency)) = unresolvable_dependency(stderr) {
        if let Some(script) = wasi_built(&requirement_name(&dependency)) {
            return wasi_wheel_missing(package, dependency, script, wheels);
        }
        return BuildError::NativeDependency { package, dependency: requirement_name(&dependency) };
    }
    BuildError::Requirements(last_lines(stderr, 15))
}

/// For a requirement that pins pydantic 2 below 2.12 (`==2.10.6`, `~=2.10.6`, `==2.11.*`): the
/// same requirement (extras and marker kept) pinned to [`PYDANTIC`] instead.
fn unworkable_pydantic(line: &str) -> Option<String> {
    if requirement_name(line) != "pydantic" {
        return None;
    }
    let (requirement, marker) = match line.split_once(';') {
        Some((requirement, marker)) => (requirement.trim(), Some(marker.trim())),
        None => (line.trim(), None),
    };
    let specifier = requirement.find(['=', '~', '<', '>', '!']).map(|i| &requirement[i..])?;
    let version = specifier.strip_prefix("==").or_else(|| specifier.strip_prefix("~="))?;
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse::<u32>().ok()?;
    let minor = parts.next()?.parse::<u32>().ok()?;
    if major != 2 || minor >= PYDANTIC_FIRST_WORKING_MINOR || specifier.contains(',') {
        return None;
    }
    let name_and_extras = requirement[..requirement.len() - specifier.len()].trim();
    let pinned = PYDANTIC.trim_start_matches("pydantic");
    Some(match marker {
        Some(marker) => format!("{name_and_extras}{pinned} ; {marker}"),
        None => format!("{name_and_extras}{pinned}"),
    })
}

/// Whether any `.py` file under `dir` imports `module` (`import module`, `import module.x`,
/// `from module import ...`, `from module.x import ...`), at any indentation.
fn imports_anywhere(dir: &Path, module: &str) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let found = if path.is_dir() {
            imports_anywhere(&path, module)?
        } else if path.extension().is_some_and(|e| e == "py") {
            imports(&std::fs::read_to_string(&path).unwrap_or_default(), module)
        } else {
            false
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether Python source `text` has an import statement naming `module` or one of its
/// submodules. A line scan, not a parse: a string that looks like an import counts too, which
/// only costs an unneeded package.
fn imports(text: &str, module: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("import ").or_else(|| line.strip_prefix("from ")) else {
            return false;
        };
        rest.split(',').any(|name| {
            let name = name.trim_start();
            name.strip_prefix(module).is_some_and(|after| {
                after.is_empty() || after.starts_with(['.', ' ', '\t', ',', '#'])
            })
        })
    })
}

/// requirements.txt's requirements, comments and blank lines left out (none without the file).
fn requirement_lines(dir: &Path) -> Result<Vec<String>, BuildError> {
    let path = dir.join("requirements.txt");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect())
}

/// From pip's "The conflict is caused by:" lines (`dateparser 1.2.0 depends on regex>=2024`):
/// the package and the dependency (`regex>=2024`) no version of which could be installed. With `--only-binary
/// :all: --platform any`, that is a dependency with native code only.
fn unresolvable_dependency(stderr: &str) -> Option<(String, String)> {
    let causes = stderr.split_once("The conflict is caused by:")?.1;
    let (package, dependency) =
        causes.lines().find_map(|line| line.trim().split_once(" depends on "))?;
    let package = package.split_whitespace().next()?.to_string();
    Some((package, dependency.trim().to_string()))
}

/// `name[extra]>=1.0 ; marker` → `name`, normalised as pip does.
fn requirement_name(line: &str) -> String {
    let end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(line.len());
    line[..end].to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_source_build_past_its_deadline_is_stopped_with_everything_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        let started = Instant::now();
        assert!(!run_within(command, Duration::from_millis(500)).unwrap());
        assert!(started.elapsed() < Duration::from_secs(10));
        // The grandchild (`sleep 60`) went with the group: gone or a zombie, never running.
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running =
                state.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'));
            if state.is_empty() || !running {
                break;
            }
            assert!(Instant::now() < deadline, "sleep {pid} still runs: {state}");
            std::thread::sleep(Duration::from_millis(20));
        }

        assert!(run_within(Command::new("true"), Duration::from_secs(10)).unwrap());
        assert!(!run_within(Command::new("false"), Duration::from_secs(10)).unwrap());
    }

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_dependency_with_native_code_only_is_named_with_its_dependent() {
        let stderr = "ERROR: Cannot install -r r.txt (line 1) because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    dateparser 1.5.0 depends on regex>=2024.9.11\n    dateparser 1.1.8 depends on regex!=2019.02.19 and !=2021.8.27\n\nTo fix this you could try to:\n";
        assert_eq!(
            unresolvable_dependency(stderr),
            Some(("dateparser".to_string(), "regex>=2024.9.11".to_string()))
        );
        assert_eq!(unresolvable_dependency("ERROR: something else"), None);
        let stderr = stderr.replace("regex", "numpy");
        assert!(matches!(
            pip_failure(&stderr, Path::new("/nonexistent")),
            BuildError::NativeDependency { package, dependency }
                if package == "dateparser" && dependency == "numpy"
        ));
    }

    #[test]
    fn a_missing_wasi_build_says_which_script_makes_it() {
        let none = Path::new("/nonexistent");
        let stderr = "ERROR: Could not find a version that satisfies the requirement pydantic-core==2.41.5 (from pydantic) (from versions: none)\nERROR: No matching distribution found for pydantic-core==2.41.5\n";
        let message = pip_failure(stderr, none).to_string();
        assert!(message.contains("'pydantic' needs pydantic-core==2.41.5"), "{message}");
        assert!(message.contains("scripts/build-wasi-wheels.sh"), "{message}");
        // regex, a C extension: as a dependency (both ways pip says it) and as a requirement.
        for stderr in [
            "ERROR: Could not find a version that satisfies the requirement regex>=2024.9.11 (from dateparser) (from versions: none)\n",
            "ERROR: Cannot install -r r.txt (line 1) because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    dateparser 1.5.0 depends on regex>=2024.9.11\n",
        ] {
            let message = pip_failure(stderr, none).to_string();
            assert_eq!(
                message,
                "requirement 'dateparser' needs regex>=2024.9.11 built for WebAssembly (WASI), which is not in /nonexistent: run scripts/build-wasi-c-wheels.sh once (docs/native-packages.md)"
            );
        }
        let own = "ERROR: Could not find a version that satisfies the requirement regex==2024.11.6 (from versions: none)\nERROR: No matching distribution found for regex==2024.11.6\n";
        let message = pip_failure(own, none).to_string();
        assert!(
            message.starts_with(
                "requirement 'regex' needs regex==2024.11.6 built for WebAssembly (WASI)"
            ),
            "{message}"
        );
        // With another version built, the message says which one is there.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("regex-2026.11.19-cp314-cp314-wasi_0_0_0_wasm32.whl"), "")
            .unwrap();
        let message = pip_failure(own, dir.path()).to_string();
        assert!(message.contains("is another version (2026.11.19)"), "{message}");
        assert!(message.contains("'regex' needs regex==2024.11.6"), "{message}");
    }

    #[test]
    fn the_requirement_without_a_wheel_is_read_from_pips_error() {
        let own = "Looking in links: /x\nERROR: Could not find a version that satisfies the requirement zenpy==2.0.25 (from versions: 2.0.27, 2.0.56)\nERROR: No matching distribution found for zenpy==2.0.25\n";
        assert_eq!(missing_wheel(own).as_deref(), Some("zenpy==2.0.25"));
        let dependency = "ERROR: Could not find a version that satisfies the requirement regex>=2024.9.11 (from dateparser) (from versions: none)\n";
        assert_eq!(missing_wheel(dependency).as_deref(), Some("regex>=2024.9.11"));
        assert_eq!(missing_wheel("ERROR: the conflict is caused by"), None);
    }

    #[test]
    fn requirement_names_are_normalised() {
        assert_eq!(requirement_name("ixoncdkingress==1.0.0"), "ixoncdkingress");
        assert_eq!(requirement_name("Some_Pkg[extra]>=2 ; python_version>'3'"), "some-pkg");
    }

    #[test]
    fn pydantic_pins_older_than_2_12_are_moved_to_a_working_release() {
        assert_eq!(unworkable_pydantic("pydantic==2.10.6").as_deref(), Some("pydantic==2.12.5"));
        assert_eq!(unworkable_pydantic("pydantic~=2.10.6").as_deref(), Some("pydantic==2.12.5"));
        assert_eq!(unworkable_pydantic("pydantic==2.11.*").as_deref(), Some("pydantic==2.12.5"));
        assert_eq!(
            unworkable_pydantic("Pydantic[email] == 2.10.6 ; python_version >= '3.8'").as_deref(),
            Some("Pydantic[email]==2.12.5 ; python_version >= '3.8'")
        );
        // Releases that work, ranges pip can resolve itself, v1 (pure Python) and other
        // packages are left alone.
        for line in [
            "pydantic==2.12.5",
            "pydantic==2.14.4",
            "pydantic>=2.0",
            "pydantic==1.10.21",
            "pydantic",
            "pydantic>=2.10,<2.13",
            "pydantic-settings==2.10.1",
        ] {
            assert_eq!(unworkable_pydantic(line), None, "{line}");
        }
    }

    #[test]
    fn pydantic_comes_with_the_sdk_only_when_the_code_imports_it() {
        let plain = Requirements::resolve(Vec::new(), false);
        assert!(plain.implicit.iter().all(|(_, module)| module != "pydantic"));
        assert!(plain.implicit.iter().any(|(_, module)| module == "requests"));
        let using = Requirements::resolve(Vec::new(), true);
        assert!(using.implicit.contains(&(PYDANTIC.to_string(), "pydantic".to_string())));
        assert!(using.notes.is_empty());
        // IXON's usual pin: replaced, with a note; not added a second time.
        let pinned = Requirements::resolve(lines(&["pydantic==2.10.6", "ixoncdkingress"]), true);
        assert_eq!(pinned.declared, vec![PYDANTIC.to_string()]);
        assert!(pinned.implicit.iter().all(|(_, module)| module != "pydantic"));
        assert_eq!(pinned.notes.len(), 1);
        assert!(pinned.notes[0].contains("'pydantic==2.10.6' cannot run"), "{:?}", pinned.notes);
        // A declared SDK dependency wins over ours.
        let own = Requirements::resolve(lines(&["requests==2.32.3"]), false);
        assert!(own.implicit.iter().all(|(_, module)| module != "requests"));
    }

    #[test]
    fn imports_are_recognised_in_their_python_spellings() {
        for source in [
            "import pydantic",
            "from pydantic import BaseModel",
            "    from pydantic.fields import Field  # lazily",
            "import os, pydantic",
            "import pydantic as pd",
        ] {
            assert!(imports(source, "pydantic"), "{source}");
        }
        for source in [
            "import pydantic_settings",
            "from mypydantic import X",
            "# pydantic is not used",
            "x = 'pydantic'",
        ] {
            assert!(!imports(source, "pydantic"), "{source}");
        }
    }
}
