#![no_main]
//! See wasmfn_runtime::fuzzing::ingress_body.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmfn_runtime::fuzzing::ingress_body(data);
});
