#![no_main]
//! See wasmfn_host_apis::fuzzing::docstore_query.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmfn_host_apis::fuzzing::docstore_query(data);
});
