//! The MQTT trigger: a connection to a broker, subscribed to topic filters, that invokes every
//! target function whose filter matches a message's topic. The payload is the request body,
//! the topic is in `x-topic`; each invocation goes through the same `Invoker::invoke` as an
//! HTTP call, in a fresh instance.
//!
//! The configuration, checked wherever it comes from (`[[mqtt]]` in `function.toml`, or the
//! admin API), belongs to the manifest (`crate::manifest::mqtt`). [`connection`] owns the
//! broker session and the Running/Failed status, [`queue`] the bounded per-trigger queue,
//! [`worker`] what a message becomes, [`manager`] the set of running triggers.

pub mod adopt;
pub mod connection;
pub mod manager;
pub mod queue;
pub mod status;
pub mod worker;

pub use crate::manifest::callback::CallbackUrl;
pub use crate::manifest::mqtt::*;
pub use manager::{MqttError, MqttTriggers, RetryPolicy, TriggerOrigin};
pub use status::{MqttStatus, TriggerState};
