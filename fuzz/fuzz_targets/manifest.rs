#![no_main]
//! See wasmfn_runtime::fuzzing::manifest.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmfn_runtime::fuzzing::manifest(data);
});
