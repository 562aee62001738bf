//! `requirements.lock`: the exact distributions a build of `requirements.txt` installed, written
//! next to it, so that later builds (on this machine or any other) install the same versions
//! instead of resolving again. It is reused while what the build asks pip for is unchanged (its
//! `key`: requirements.txt's requirements, the SDK's pins, the bundle's Python and platform);
//! edit requirements.txt, or delete the lock, to resolve again.

use std::path::Path;

use sha2::{Digest, Sha256};

pub const LOCK_FILE: &str = "requirements.lock";

const KEY_PREFIX: &str = "# key: ";

/// A lock file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// What was asked for when it was written ([`key`]).
    pub key: String,
    /// `name==version`, one per distribution installed, sorted.
    pub pins: Vec<String>,
}

/// The key of a pip request: the requirements asked for (in order) and where they run.
pub fn key(wanted: &[&str], python: &str, platform: &str) -> String {
    let mut hash = Sha256::new();
    for part in [python, platform].iter().chain(wanted) {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// The lock in `dir`, if there is one that parses.
pub fn read(dir: &Path) -> Option<Lock> {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    let key = text.lines().find_map(|line| line.strip_prefix(KEY_PREFIX))?.trim().to_string();
    let pins: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    pins.iter().all(|pin| pin.contains("==")).then_some(Lock { key, pins })
}

/// The distributions pip installed into `deps` (`--target`), as sorted `name==version` pins.
pub fn installed(deps: &Path) -> std::io::Result<Vec<String>> {
    let mut pins = Vec::new();
    for entry in std::fs::read_dir(deps)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some((distribution, version)) =
            name.strip_suffix(".dist-info").and_then(|stem| stem.rsplit_once('-'))
        {
            pins.push(format!("{distribution}=={version}"));
        }
    }
    pins.sort();
    Ok(pins)
}

/// Writes the lock of what was installed into `deps` for `key` into `dir`.
pub fn write(dir: &Path, key: &str, pins: &[String]) -> std::io::Result<()> {
    let mut text = format!(
        "# Written by `wasmfn build`: the exact versions requirements.txt resolved to. Builds\n\
         # install these while requirements.txt is unchanged; commit it to build the same bundle\n\
         # everywhere, delete it to resolve again.\n{KEY_PREFIX}{key}\n"
    );
    for pin in pins {
        text.push_str(pin);
        text.push('\n');
    }
    let path = dir.join(LOCK_FILE);
    let temporary = dir.join(format!(".{LOCK_FILE}.tmp"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_lock_reads_back_and_its_key_follows_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("deps");
        for name in
            ["requests-2.31.0.dist-info", "python_dateutil-2.9.0.post0.dist-info", "requests"]
        {
            std::fs::create_dir_all(deps.join(name)).unwrap();
        }
        let pins = installed(&deps).unwrap();
        assert_eq!(pins, vec!["python_dateutil==2.9.0.post0", "requests==2.31.0"]);
        let asked = key(&["requests", "python-dateutil"], "3.14", "wasi_0_0_0_wasm32");
        write(dir.path(), &asked, &pins).unwrap();
        assert_eq!(read(dir.path()), Some(Lock { key: asked.clone(), pins }));
        assert_ne!(asked, key(&["requests"], "3.14", "wasi_0_0_0_wasm32"));
        assert_ne!(asked, key(&["requests", "python-dateutil"], "3.15", "wasi_0_0_0_wasm32"));
        std::fs::write(dir.path().join(LOCK_FILE), "# key: x\nnot a pin\n").unwrap();
        assert_eq!(read(dir.path()), None, "a lock that does not parse is not used");
    }
}
