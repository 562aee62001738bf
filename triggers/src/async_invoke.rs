//! Asynchronous invocations: the durable queue ([`jobs`]) behind `…/async-invoke`, which the
//! HTTP edge (the server's `server::async_invoke`) and event triggers fill and background workers
//! drain, delivering each result to its callback.

pub mod jobs;

pub use jobs::{AsyncJobs, AsyncOptions};
