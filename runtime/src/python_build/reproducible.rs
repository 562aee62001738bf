//! What makes two builds of one folder the same bundle, byte for byte.
//!
//! componentize-py runs CPython at build time and keeps its memory (pre-initialization).
//! Three things from the build machine would get into that memory: the time (clocks), random
//! bytes (CPython's hash secret, the `random` module's state, and the heap laid out with them),
//! and what `stat` says of the files it imports (times and inode numbers, kept by the import
//! system or left in freed memory). The componentize-py wasmfn builds
//! (`scripts/setup-componentize-py.sh`, patch in `vendor/componentize-py/`), given a seed in
//! [`SEED_VARIABLE`], seeds its randomness, stops its clocks, and reports fixed times and
//! renumbered inodes; this module derives the seed from what is built and gives the staged
//! files one modification time too (so the tree it hashes and the one it stages agree).

use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// The environment variable the patched componentize-py reads its pre-initialization seed from.
pub const SEED_VARIABLE: &str = "COMPONENTIZE_PY_PREINIT_SEED";

/// The modification time every staged file and folder gets: 1980-01-01T00:00:00Z, the
/// earliest a zip archive can hold (as other reproducible-build tools choose).
const STAGED_MTIME: Duration = Duration::from_secs(315_532_800);

/// Sets every file's and folder's modification time under `root` to one fixed time and returns
/// a seed derived from the tree's names and contents: the same sources, requirements and
/// guest package give the same seed; different functions get different hash secrets.
pub fn settle(root: &Path) -> std::io::Result<u64> {
    let mut digest = Sha256::new();
    visit(root, Path::new(""), &mut digest)?;
    let hash = digest.finalize();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&hash[..8]);
    Ok(u64::from_le_bytes(seed))
}

fn visit(dir: &Path, relative: &Path, digest: &mut Sha256) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = relative.join(entry.file_name());
        let kind = entry.file_type()?;
        // Names end with a NUL so that no two trees hash alike by moving bytes between them.
        digest.update(name.as_os_str().as_encoded_bytes());
        digest.update([0]);
        if kind.is_dir() {
            digest.update(b"d");
            visit(&path, &name, digest)?;
        } else if kind.is_file() {
            let contents = std::fs::read(&path)?;
            digest.update(b"f");
            digest.update((contents.len() as u64).to_le_bytes());
            digest.update(&contents);
            set_mtime(&path)?;
        } else if kind.is_symlink() {
            digest.update(b"l");
            digest.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
            digest.update([0]);
        }
    }
    // Last: creating the entries above changed the folder's time.
    set_mtime(dir)
}

fn set_mtime(path: &Path) -> std::io::Result<()> {
    let time = SystemTime::UNIX_EPOCH + STAGED_MTIME;
    std::fs::File::open(path)?
        .set_times(std::fs::FileTimes::new().set_modified(time).set_accessed(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (name, contents) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
    }

    #[test]
    fn the_seed_follows_names_and_contents_and_every_time_is_the_same() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        tree(a.path(), &[("app/main.py", "x = 1\n"), ("deps/pkg/__init__.py", "")]);
        tree(b.path(), &[("deps/pkg/__init__.py", ""), ("app/main.py", "x = 1\n")]);
        tree(c.path(), &[("app/main.py", "x = 2\n"), ("deps/pkg/__init__.py", "")]);
        let seeds =
            [settle(a.path()).unwrap(), settle(b.path()).unwrap(), settle(c.path()).unwrap()];
        assert_eq!(seeds[0], seeds[1], "the same tree, written in another order");
        assert_ne!(seeds[0], seeds[2], "one byte changed");
        let fixed = SystemTime::UNIX_EPOCH + STAGED_MTIME;
        for path in
            [a.path().to_path_buf(), a.path().join("app"), a.path().join("deps/pkg/__init__.py")]
        {
            assert_eq!(
                std::fs::metadata(&path).unwrap().modified().unwrap(),
                fixed,
                "{}",
                path.display()
            );
        }
    }
}
