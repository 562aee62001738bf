//! wasmfn's invocation core: `Invocation → Outcome`.
//!
//! A trigger builds an [`invoker::Invocation`]; the [`invoker::Invoker`] runs it in a fresh
//! instance of the function's active version from the [`registry`] and returns an
//! [`invoker::Outcome`]. Around that path: the wasmtime [`engine`], [`bundle`] loading and the
//! compile cache, the instance [`pool`], the node's [`running`] slots, the host side of the WIT
//! world ([`host`], [`host_calls`], [`output`], [`response_body`]) and the [`capabilities`]
//! functions reach through it.
//!
//! This crate knows nothing of HTTP servers, the CLI, MQTT or the state database: triggers and
//! the server are built on it, never the other way round (`scripts/test.sh` checks).

pub mod arguments;
pub mod bindings;
pub mod bundle;
pub mod caller;
pub mod capabilities;
pub mod engine;
pub mod error;
pub mod function_cache;
pub mod guest_threads;
pub mod host;
pub mod host_calls;
pub mod invoker;
pub mod limits;
pub mod outbound;
pub mod output;
pub mod pool;
pub mod registry;
pub mod response_body;
pub mod running;
pub mod runtime;
pub mod tiers;
pub mod world;

pub use wasmfn_host_apis as host_apis;
pub use wasmfn_manifest as manifest;
pub use wasmfn_manifest::names;
