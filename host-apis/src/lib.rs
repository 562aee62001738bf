//! Capabilities wasmfn gives to functions, each a plain Rust type (or trait plus backends) that
//! knows nothing about wasmtime or triggers: the runtime's host bindings delegate to these.
//!
//! - [`background`]: host work run for functions, on lower-priority threads;
//! - [`config`]: per-function configuration values and secrets;
//! - [`log`]: the bounded per-invocation function log;
//! - [`docstore`]: the document store (MongoDB's query language; sled or PostgreSQL);
//! - [`objects`]: object storage (object_store: local filesystem, memory or S3);
//! - [`ixon_api`]: the IXON API client (discovery, caller credentials, endpoint allowlist);
//! - [`outbound`]: functions' own HTTP(S) requests, checked against their `[network] allow`;
//! - [`quota`]: per-space storage quotas, shared by the document store and object storage;
//! - [`state`]: where a node keeps its own records (sled, or PostgreSQL shared by a cluster);
//! - [`postgres`]: connections to PostgreSQL, shared by the document store and the state;
//! - [`signing`]: signing keys rotated while the server runs (presigned URLs, sessions).

pub mod background;
pub mod config;
pub mod docstore;
#[doc(hidden)]
pub mod fuzzing;
pub mod ixon_api;
pub mod log;
pub mod objects;
pub mod outbound;
pub mod postgres;
pub mod quota;
pub mod signing;
pub mod state;
pub mod tls;
