//! wasmfn's triggers: what turns outside events into invocations, and delivers what comes out.
//! The cron schedulers ([`cron`]), the MQTT connections ([`mqtt`]), the durable queue of
//! asynchronous invocations ([`async_invoke`]), the event bus with its subscriptions and
//! sessions ([`events`]), callbacks and webhooks with retries ([`delivery`]), and the one
//! lifecycle every kind a function declares follows ([`lifecycle`]: `TriggerKind`, started,
//! swapped and stopped with the version that declares it). With them, what they keep: the
//! node's time ([`clock`]), secrets sealed at rest ([`sealed`]) and private files
//! ([`private_files`]).
//!
//! Built on the invocation core; no HTTP server and no CLI (`scripts/test.sh` checks): the
//! server's endpoints hand triggers work, never the other way round.

pub mod async_invoke;
pub mod clock;
pub mod cron;
pub mod delivery;
pub mod events;
pub mod lifecycle;
pub mod mqtt;
pub mod private_files;
pub mod sealed;

// The layers below, under the paths the code has always used.
pub(crate) use wasmfn_core::{capabilities, error, invoker, registry};
pub(crate) use wasmfn_manifest as manifest;
pub(crate) use wasmfn_manifest::names;
