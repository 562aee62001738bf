//! The cron trigger: a function's `[[cron]]` tables in `function.toml` (carried in the bundle's
//! metadata), checked when the manifest is parsed, and turned into scheduled invocations that
//! go through the same `Invoker::invoke` as HTTP calls.
//!
//! The configuration and the expression dialect ([`fields`], [`schedule`]) belong to the
//! manifest (`crate::manifest::cron`); here [`job`] is what a tick invokes, [`scheduler`] the
//! timing, overlap policy and shutdown; the time source is the node's (`crate::clock`). Nothing here knows about
//! wasmtime.

pub mod claims;
pub mod job;
pub mod manager;
pub mod scheduler;

#[cfg(test)]
mod proptests;

use crate::error::InvokeError;
use crate::registry::FunctionVersion;

// The configuration and the expression dialect are part of what a function declares.
pub use crate::manifest::cron::{
    fields, schedule, validate_triggers, CronTimezone, CronTriggerConfig,
};
// The node's time source, which the invocation log also keeps its time by.
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use claims::TickClaims;
pub use job::{CallbackTarget, CronJob, CronTarget};
pub use manager::CronTriggers;
pub use schedule::{CronSchedule, ScheduleError};
pub use scheduler::{CronEvent, CronRun, CronScheduler, CronSkip, CronStats};

/// Why a function's cron triggers cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("cron trigger '{trigger}' of function '{function}': {source}")]
    Entry { function: String, trigger: String, source: InvokeError },
}

/// The scheduled jobs of a loaded version, each checked to name an entry the version exposes.
pub fn jobs_for(
    version: &FunctionVersion,
    triggers: &[CronTriggerConfig],
) -> Result<Vec<CronJob>, CronError> {
    triggers
        .iter()
        .map(|trigger| {
            version.resolve_entry(trigger.entry.as_deref()).map_err(|source| CronError::Entry {
                function: version.name.clone(),
                trigger: trigger.name.clone(),
                source,
            })?;
            Ok(CronJob {
                space: version.space.clone(),
                function: version.name.clone(),
                trigger: trigger.clone(),
            })
        })
        .collect()
}
