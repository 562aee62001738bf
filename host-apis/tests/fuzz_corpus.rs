//! The document-store fuzz targets' corpus and crash reproductions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same entry points the fuzzer calls
//! (`wasmfn_host_apis::fuzzing`): no input may make them panic, and the checks they make of
//! every input (`{"$nor": [F]}` matches what F does not, a refused update leaves the document
//! as it was, ...) must hold. The runtime's targets replay in tests/fuzz_corpus.rs.

use std::path::PathBuf;

use wasmfn_host_apis::fuzzing::{self, docstore_query, docstore_update, Outcome};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn replay_both_ways(target: &str, entry: fn(&[u8]) -> Outcome) {
    fuzzing::replay_both_ways(&fuzz_dir(), target, entry);
}

#[test]
fn docstore_query_corpus_replays_without_panics() {
    replay_both_ways("docstore_query", docstore_query);
}

#[test]
fn docstore_update_corpus_replays_without_panics() {
    replay_both_ways("docstore_update", docstore_update);
}
