//! What the fuzz targets in the repository's `fuzz/` folder call, and the replay of their corpus
//! and crash reproductions as ordinary tests. Not an API. See docs/security.md, "Fuzzing".

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

pub use crate::docstore::query::fuzzing::{
    query as docstore_query, sample_documents, update as docstore_update, Outcome,
};

/// Every input kept for `target`: the files of `fuzz/corpus/<target>/` and
/// `fuzz/regressions/<target>/` under `fuzz_dir`, in name order.
pub fn inputs(fuzz_dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir.join(kind).join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "README.md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `entry` on every input kept for `target` (see [`inputs`]) and panics, naming every input
/// at fault, when the entry point panicked on any of them (its checks of what must hold are
/// assertions). Also panics when there is no input at all, so that a moved corpus cannot pass
/// silently. Returns each input's outcome.
pub fn replay(
    fuzz_dir: &Path,
    target: &str,
    entry: impl Fn(&[u8]) -> Outcome,
) -> Vec<(PathBuf, Outcome)> {
    let files = inputs(fuzz_dir, target);
    assert!(!files.is_empty(), "no corpus for fuzz target {target} in {}", fuzz_dir.display());
    let mut outcomes = Vec::new();
    let mut panicked = Vec::new();
    for file in files {
        let data = std::fs::read(&file).expect("a readable corpus file");
        match catch_unwind(AssertUnwindSafe(|| entry(&data))) {
            Ok(outcome) => outcomes.push((file, outcome)),
            Err(_) => panicked.push(file.display().to_string()),
        }
    }
    assert!(panicked.is_empty(), "fuzz target {target} panicked on: {}", panicked.join(", "));
    outcomes
}

/// [`replay`], then checks that the corpus holds inputs the parser accepts and inputs it
/// refuses, so that it keeps exercising both paths.
pub fn replay_both_ways(fuzz_dir: &Path, target: &str, entry: impl Fn(&[u8]) -> Outcome) {
    let outcomes = replay(fuzz_dir, target, entry);
    for wanted in [Outcome::Accepted, Outcome::Refused] {
        assert!(
            outcomes.iter().any(|(_, outcome)| *outcome == wanted),
            "no {wanted:?} input for {target}: {outcomes:?}"
        );
    }
}
