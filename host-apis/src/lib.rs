//! Capabilities wasmfn gives to functions, each a plain Rust type (or trait plus backends) that
//! knows nothing about wasmtime or triggers: the runtime's host bindings delegate to these.
//!
//! Today: per-function configuration ([`config`]) and the bounded per-invocation function log
//! ([`log`]). Storage and the IXON API client arrive with their own work.

pub mod config;
pub mod log;
