//! What one cron trigger of one function is, and the invocation a tick of it becomes: `POST /`
//! with the trigger's name and the scheduled time as headers, handed to a [`CronTarget`] (the
//! `Invoker`, so a cron run takes the same path as an HTTP call). Timing belongs to `scheduler`.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, SecondsFormat, Utc};

use super::CronTriggerConfig;
use crate::invoker::{Invocation, Invoker, Outcome, RequestData};

/// The `trigger` of every cron invocation.
pub const TRIGGER: &str = "cron";
/// Request header naming the cron trigger that fired.
pub const TRIGGER_HEADER: &str = "x-cron-trigger";
/// Request header with the scheduled (not the actual) fire time, RFC 3339 in UTC.
pub const SCHEDULED_TIME_HEADER: &str = "x-scheduled-time";

/// One cron trigger of one function.
#[derive(Clone, Debug)]
pub struct CronJob {
    pub space: String,
    pub function: String,
    pub trigger: CronTriggerConfig,
}

impl CronJob {
    /// The first fire time strictly after `after`.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.trigger.schedule.next_after(after, self.trigger.tz())
    }

    /// The invocation a tick scheduled for `scheduled` runs: `POST /` with the trigger name and
    /// scheduled time as headers.
    pub fn invocation(&self, scheduled: DateTime<Utc>) -> Invocation {
        Invocation {
            space: self.space.clone(),
            function: self.function.clone(),
            entry: self.trigger.entry.clone(),
            request: RequestData {
                method: "POST".into(),
                path: "/".into(),
                headers: vec![
                    (TRIGGER_HEADER.into(), self.trigger.name.clone()),
                    (SCHEDULED_TIME_HEADER.into(), rfc3339(scheduled)),
                ],
                ..RequestData::default()
            },
            trigger: TRIGGER.into(),
            ..Invocation::default()
        }
    }
}

/// RFC 3339 in UTC with a `Z`, as the `x-scheduled-time` header carries it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What a scheduler hands invocations to.
pub trait CronTarget: Send + Sync + 'static {
    /// Runs one invocation to its outcome.
    fn run(&self, invocation: Invocation) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;
}

impl CronTarget for Invoker {
    fn run(&self, invocation: Invocation) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        let invoker = self.clone();
        Box::pin(async move { invoker.invoke(invocation).await })
    }
}

/// The invoker plus the triggers' callback URLs: each outcome of a trigger that names one is
/// POSTed there through the delivery component.
pub struct CallbackTarget {
    pub invoker: Invoker,
    pub deliverer: std::sync::Arc<crate::delivery::Deliverer>,
    /// `(space, function, trigger name)` → callback URL.
    pub callbacks: std::collections::HashMap<(String, String, String), url::Url>,
}

impl CronTarget for CallbackTarget {
    fn run(&self, invocation: Invocation) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        let name = invocation
            .request
            .headers
            .iter()
            .find(|(header, _)| header == TRIGGER_HEADER)
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let key = (invocation.space.clone(), invocation.function.clone(), name);
        let callback = self.callbacks.get(&key).cloned();
        let (invoker, deliverer) = (self.invoker.clone(), self.deliverer.clone());
        Box::pin(async move {
            let outcome = invoker.invoke(invocation).await;
            if let Some(url) = callback {
                let source = format!("cron:{}/{}", key.0, key.2);
                deliverer.submit(crate::delivery::Delivery::of_outcome(source, url, &outcome, 1));
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::CronSchedule;

    #[test]
    fn a_tick_becomes_a_post_to_root_with_trigger_and_scheduled_time() {
        let job = CronJob {
            space: "default".into(),
            function: "report".into(),
            trigger: CronTriggerConfig {
                name: "nightly".into(),
                schedule: CronSchedule::parse("@daily").unwrap(),
                entry: Some("report.nightly".into()),
                timezone: None,
                callback_url: None,
            },
        };
        let scheduled = DateTime::parse_from_rfc3339("2026-01-07T00:00:00+00:00").unwrap();
        let invocation = job.invocation(scheduled.to_utc());
        assert_eq!(
            (invocation.space.as_str(), invocation.function.as_str()),
            ("default", "report")
        );
        assert_eq!(invocation.entry.as_deref(), Some("report.nightly"));
        assert_eq!(invocation.trigger, "cron");
        assert_eq!(
            (invocation.request.method.as_str(), invocation.request.path.as_str()),
            ("POST", "/")
        );
        assert_eq!(
            invocation.request.headers,
            [
                ("x-cron-trigger".to_string(), "nightly".to_string()),
                ("x-scheduled-time".to_string(), "2026-01-07T00:00:00Z".to_string()),
            ]
        );
        assert!(invocation.arguments.is_empty() && invocation.request.body.is_empty());
    }
}
