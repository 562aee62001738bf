#![no_main]
//! See wasmfn_runtime::fuzzing::cron_schedule.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmfn_runtime::fuzzing::cron_schedule(data);
});
