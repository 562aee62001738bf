//! The document-store fuzz targets' corpus and crash reproductions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same entry points the fuzzer calls
//! (`wasmfn_host_apis::fuzzing`): no input may make them panic, and the checks they make of
//! every input (`{"$nor": [F]}` matches what F does not, a refused update leaves the document
//! as it was, ...) must hold. The runtime's targets replay in tests/fuzz_corpus.rs.

use std::path::PathBuf;

use wasmfn_host_apis::fuzzing::{docstore_query, docstore_update, replay, Outcome};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Replays `target` and checks its corpus has inputs the parsers accept and inputs they refuse,
/// so that the corpus keeps exercising both paths.
fn replay_both_ways(target: &str, entry: fn(&[u8]) -> Outcome) {
    let outcomes = replay(&fuzz_dir(), target, entry);
    for wanted in [Outcome::Accepted, Outcome::Refused] {
        assert!(
            outcomes.iter().any(|(_, outcome)| *outcome == wanted),
            "no {wanted:?} input for {target}: {outcomes:?}"
        );
    }
}

#[test]
fn docstore_query_corpus_replays_without_panics() {
    replay_both_ways("docstore_query", docstore_query);
}

#[test]
fn docstore_update_corpus_replays_without_panics() {
    replay_both_ways("docstore_update", docstore_update);
}
