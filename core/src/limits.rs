//! Every bound an invocation runs under: the per-function limits a function declares (from the
//! manifest) and the engine-wide ones the server is started with.

pub use crate::engine::{default_keep_resident_max_mb, default_keep_resident_mb, EngineLimits};
pub use wasmfn_manifest::limits::*;
