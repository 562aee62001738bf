//! What an MQTT trigger reports: its connection state (Running, Failed with the broker's
//! reason, …) and counters, shared between the connection task, the workers and the admin API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Where a trigger's broker session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TriggerState {
    /// Connecting or subscribing (first attempt, or after a Failed one).
    Connecting,
    /// Connected and every topic filter subscribed.
    Running,
    /// Not connected, or a subscription refused; `reason` says why. Retried with back-off.
    Failed,
    /// Deleted or shutting down.
    Stopped,
}

/// Counters of one trigger, updated without locks.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub invocations: AtomicU64,
    pub failed_invocations: AtomicU64,
    pub dropped: AtomicU64,
    pub acknowledged: AtomicU64,
    pub reconnects: AtomicU64,
}

#[derive(Debug)]
struct StateCell {
    state: TriggerState,
    reason: Option<String>,
    since: DateTime<Utc>,
}

/// The live status of one trigger.
#[derive(Debug)]
pub struct StatusCell {
    cell: Mutex<StateCell>,
    pub counters: Counters,
}

impl Default for StatusCell {
    fn default() -> Self {
        Self {
            cell: Mutex::new(StateCell {
                state: TriggerState::Connecting,
                reason: None,
                since: Utc::now(),
            }),
            counters: Counters::default(),
        }
    }
}

impl StatusCell {
    /// Moves to `state`; logs the change (a Failed with a new reason counts as a change).
    pub fn set(&self, trigger: &str, state: TriggerState, reason: Option<String>) {
        let mut cell = self.cell.lock().expect("status lock");
        if cell.state == state && cell.reason == reason {
            return;
        }
        match (state, &reason) {
            (TriggerState::Failed, Some(reason)) => {
                tracing::warn!(mqtt_trigger = %trigger, %reason, "mqtt trigger failed")
            }
            _ => tracing::info!(mqtt_trigger = %trigger, state = ?state, "mqtt trigger state"),
        }
        *cell = StateCell { state, reason, since: Utc::now() };
    }

    pub fn state(&self) -> TriggerState {
        self.cell.lock().expect("status lock").state
    }

    /// A snapshot for the admin API, with the current queue length.
    pub fn snapshot(&self, queued: usize) -> MqttStatus {
        let cell = self.cell.lock().expect("status lock");
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        MqttStatus {
            state: cell.state,
            reason: cell.reason.clone(),
            since: cell.since.to_rfc3339_opts(SecondsFormat::Millis, true),
            received: load(&counters.received),
            invocations: load(&counters.invocations),
            failed_invocations: load(&counters.failed_invocations),
            dropped: load(&counters.dropped),
            acknowledged: load(&counters.acknowledged),
            reconnects: load(&counters.reconnects),
            queued,
        }
    }
}

/// A trigger's status as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MqttStatus {
    pub state: TriggerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the state last changed (RFC 3339, UTC).
    pub since: String,
    /// Messages received from the broker.
    pub received: u64,
    /// Function invocations run (a message matching two functions counts two).
    pub invocations: u64,
    /// Invocations whose outcome was an error (the function raised, timed out, …).
    pub failed_invocations: u64,
    /// QoS 0 messages dropped because the queue was full.
    pub dropped: u64,
    /// QoS 1 messages acknowledged to the broker after their invocations ran.
    pub acknowledged: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Messages waiting for a worker now.
    pub queued: usize,
}
