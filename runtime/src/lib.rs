//! wasmfn: run Python cloud functions as WebAssembly components, a fresh instance per call.
//!
//! The path of every call: a trigger builds an [`invoker::Invocation`], the [`invoker::Invoker`]
//! runs it in a fresh instance of the function's active version from the [`registry`], and
//! returns an [`invoker::Outcome`].

pub mod access;
pub mod admin;
pub mod bindings;
pub mod body_deadline;
pub mod bundle;
pub mod caller;
pub mod capabilities;
pub mod cli;
pub mod connections;
pub mod delivery;
pub mod deploy;
pub mod dev_config;
pub mod engine;
pub mod error;
pub mod events;
pub mod function_config;
#[doc(hidden)]
pub mod fuzzing;
pub mod guest_sources;
pub mod guest_threads;
pub mod host;
pub mod host_calls;
pub mod invoker;
pub mod limits;
pub mod logs;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod node;
pub mod output;
pub mod pool;
pub mod private_files;
pub mod python_build;
pub mod registry;
pub mod rejections;
pub mod response_body;
pub mod running;
pub mod runtime;
pub mod sealed;
pub mod server;
pub mod state;
pub mod toolchain;
pub mod triggers;

pub use wasmfn_host_apis as host_apis;
