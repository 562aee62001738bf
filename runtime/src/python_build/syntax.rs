//! A syntax check of the folder's modules by the toolchain's own Python (the host's, which runs
//! componentize-py), in a fraction of a second, before the bundle build of many seconds.
//!
//! The bundle runs CPython 3.14, which has the last word: a host Python at least that new gives
//! the same answer, so its syntax error ends the build at once. An older one may not know newer
//! syntax (PEP 701 f-strings, `type` statements), so its finding is printed at once as a
//! likely error and the build goes on to let the bundle's Python decide.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::toolchain::GUEST_PYTHON_VERSION;

/// The bundle's Python, as (major, minor).
pub fn guest_python() -> (u32, u32) {
    let (major, minor) = GUEST_PYTHON_VERSION.split_once('.').expect("a major.minor version");
    (major.parse().expect("a number"), minor.parse().expect("a number"))
}

/// The checker never holds a build longer than this; past it, it is skipped.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

const SCRIPT: &str = r#"
import ast, json, sys
found = {"version": list(sys.version_info[:2])}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as source:
            compile(source.read(), path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        found.update(file=path, line=error.lineno or 0,
                     message=f"{type(error).__name__}: {error.msg}")
        break
print(json.dumps(found))
"#;

/// A syntax error the host's Python found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: u32,
    pub message: String,
    /// The host Python's version.
    pub python: (u32, u32),
}

impl Finding {
    /// Whether the bundle's Python would say the same (the host's is at least as new).
    pub fn is_certain(&self) -> bool {
        self.python >= guest_python()
    }
}

/// The first syntax error in `files`, as `python` sees it; `None` when there is none or the
/// check could not run (it is a shortcut, never a reason to fail a build by itself).
pub fn check(python: &Path, files: &[PathBuf]) -> Option<Finding> {
    if files.is_empty() {
        return None;
    }
    let mut child = Command::new(python)
        .args(["-I", "-c", SCRIPT])
        .args(files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut output = String::new();
    child.stdout.take()?.take(1 << 20).read_to_string(&mut output).ok()?;
    let found: serde_json::Value = serde_json::from_str(output.trim()).ok()?;
    let version = found["version"].as_array()?;
    let part = |i: usize| version.get(i).and_then(|v| v.as_u64()).map(|v| v as u32);
    Some(Finding {
        file: PathBuf::from(found["file"].as_str()?),
        line: found["line"].as_u64().unwrap_or(0) as u32,
        message: found["message"].as_str()?.to_string(),
        python: (part(0)?, part(1)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> PathBuf {
        PathBuf::from("python3")
    }

    #[test]
    fn the_first_syntax_error_is_found_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.py");
        let bad = dir.path().join("bad.py");
        std::fs::write(&good, "def f():\n    return 1\n").unwrap();
        std::fs::write(&bad, "x = 1\ndef broken(:\n    pass\n").unwrap();
        assert_eq!(check(&python(), std::slice::from_ref(&good)), None);
        let found = check(&python(), &[good, bad.clone()]).expect("a finding");
        assert_eq!((found.file, found.line), (bad, 2));
        assert!(found.message.starts_with("SyntaxError"), "{}", found.message);
        assert!(found.python.0 == 3);
    }

    #[test]
    fn only_a_python_as_new_as_the_bundles_is_certain() {
        let finding =
            |python| Finding { file: "f.py".into(), line: 1, message: "m".into(), python };
        assert_eq!(guest_python(), (3, 14));
        assert!(!finding((3, 11)).is_certain());
        assert!(finding((3, 14)).is_certain());
        assert!(finding((4, 0)).is_certain());
    }

    #[test]
    fn a_missing_python_skips_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.py");
        std::fs::write(&file, "def (:\n").unwrap();
        assert_eq!(check(Path::new("/nonexistent/python"), &[file]), None);
    }
}
