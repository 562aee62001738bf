//! Triggers turn outside events into `Invocation`s for the `Invoker`. They know nothing about
//! wasmtime.

pub mod async_invoke;
pub mod cron;
pub mod http;
pub mod ingress;
pub mod mqtt;
pub mod objects;
