//! The runtime fuzz targets' corpus and crash reproductions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same entry points the fuzzer calls
//! (`wasmfn_runtime::fuzzing`): no input may make them panic, and the checks they make of every
//! input (an accepted cron schedule fires after now, a caller survives its JSON round trip, ...)
//! must hold. The document-store targets replay in host-apis/tests/fuzz_corpus.rs.

use std::path::PathBuf;

use wasmfn_runtime::fuzzing::{
    self, cron_schedule, http_arguments, ingress_body, manifest, Outcome,
};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn replay_both_ways(target: &str, entry: fn(&[u8]) -> Outcome) {
    fuzzing::replay_both_ways(&fuzz_dir(), target, entry);
}

#[test]
fn cron_schedule_corpus_replays_without_panics() {
    replay_both_ways("cron_schedule", cron_schedule);
}

#[test]
fn manifest_corpus_replays_without_panics() {
    replay_both_ways("manifest", manifest);
}

#[test]
fn ingress_body_corpus_replays_without_panics() {
    replay_both_ways("ingress_body", ingress_body);
}

#[test]
fn http_arguments_corpus_replays_without_panics() {
    replay_both_ways("http_arguments", http_arguments);
}
