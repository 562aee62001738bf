//! wasmfn: run Python cloud functions as WebAssembly components, a fresh instance per call.
//!
//! The path of every call: a trigger builds an [`invoker::Invocation`], the [`invoker::Invoker`]
//! runs it in a fresh instance of the function's active version from the [`registry`], and
//! returns an [`invoker::Outcome`].

pub mod access;
pub mod admin;
pub mod body_deadline;
pub mod cli;
pub mod connections;
pub mod console;
pub mod deploy;
pub mod dev_config;
pub mod directory;
pub mod error_response;
pub mod function_config;
#[doc(hidden)]
pub mod fuzzing;
pub mod guest_sources;
pub mod invocation_log;
pub mod metrics;
pub mod node;
pub mod progress;
pub mod python_build;
pub mod rejections;
pub mod server;
pub mod signing_keys;
pub mod state;
pub mod toolchain;
pub mod triggers;

/// The invocation core, in a crate of its own, under the paths it always had.
pub use wasmfn_core::{
    arguments, bindings, bundle, caller, capabilities, engine, error, function_cache,
    guest_threads, host, host_calls, invoker, limits, outbound, output, pool, registry,
    response_body, running, runtime, tiers, world,
};
pub use wasmfn_host_apis as host_apis;
/// What a function declares, in a crate of its own (the bottom layer).
pub use wasmfn_manifest as manifest;
pub use wasmfn_manifest::names;
/// The triggers, deliveries and what they keep, in a crate of their own.
pub use wasmfn_triggers::{clock, delivery, events, private_files, sealed};
