//! Triggers turn outside events into `Invocation`s for the `Invoker`: the cron schedulers, the
//! MQTT connections, the durable queue of asynchronous invocations, and the lifecycle every kind
//! a function declares follows. They live in the `wasmfn-triggers` crate and know nothing about
//! wasmtime or the HTTP server: its endpoints (`crate::server`) hand them work, never the other
//! way round.

pub use wasmfn_triggers::{async_invoke, cron, lifecycle, mqtt};
