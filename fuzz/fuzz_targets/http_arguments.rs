#![no_main]
//! See wasmfn_runtime::fuzzing::http_arguments.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmfn_runtime::fuzzing::http_arguments(data);
});
