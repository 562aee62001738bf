//! The cron triggers of a node: one [`CronScheduler`] per function, running the `[[cron]]`
//! tables of its active version. A newer version (deployed, rolled back to) replaces the
//! scheduler; deleting the function stops it. Runs in flight finish on their own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

use super::{jobs_for, CallbackTarget, Clock, CronJob, CronScheduler, TickClaims};
use crate::delivery::Deliverer;
use crate::invoker::Invoker;
use crate::lifecycle::{TriggerKind, TriggerOrigin};
use crate::registry::FunctionVersion;

/// The schedulers of one function's active version.
struct Running {
    origin: TriggerOrigin,
    scheduler: CronScheduler,
    /// Each trigger, in the scheduler's order.
    triggers: Vec<CronJob>,
}

/// How many next fire times a listed cron trigger shows.
const NEXT_FIRES: usize = 3;

/// A cron trigger as listed, shaped like the MQTT trigger view.
#[derive(Serialize)]
struct CronView<'a> {
    space: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    origin: &'a TriggerOrigin,
    config: Value,
    status: Value,
}

/// Every function's cron triggers, by `(space, function)`.
pub struct CronTriggers {
    invoker: Invoker,
    deliverer: Arc<Deliverer>,
    clock: Arc<dyn Clock>,
    running: Mutex<BTreeMap<(String, String), Running>>,
    /// Where the servers of a cluster claim ticks (none: a single server fires every tick).
    claims: Option<TickClaims>,
}

impl std::fmt::Debug for CronTriggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<_> = running.keys().cloned().collect();
        f.debug_struct("CronTriggers").field("running", &names).finish_non_exhaustive()
    }
}

impl CronTriggers {
    /// Fire times are computed from `clock`; outcomes of triggers with a `callback_url` are
    /// delivered by `deliverer`.
    pub fn new(invoker: Invoker, deliverer: Arc<Deliverer>, clock: Arc<dyn Clock>) -> Self {
        Self { invoker, deliverer, clock, running: Mutex::default(), claims: None }
    }

    /// Fires each tick once among the servers sharing `claims` (see [`TickClaims`]).
    pub fn in_cluster(mut self, claims: Option<TickClaims>) -> Self {
        self.claims = claims;
        self
    }

    /// `(space, trigger name)` of every running cron trigger.
    pub fn names(&self) -> Vec<(String, String)> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let triggers = running.iter().flat_map(|((space, _), run)| {
            run.triggers.iter().map(move |job| (space.clone(), job.trigger.name.clone()))
        });
        triggers.collect()
    }

    /// Whether `space` has a cron trigger `name` (they are changed in function.toml only).
    pub fn contains(&self, space: &str, name: &str) -> bool {
        self.names().iter().any(|(s, n)| s == space && n == name)
    }

    /// Takes `space/function`'s scheduler out and stops it in the background.
    fn take(&self, space: &str, function: &str) {
        let previous = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.remove(&(space.to_string(), function.to_string()))
        };
        if let Some(previous) = previous {
            tracing::info!(space, function, "cron triggers stopping");
            tokio::spawn(previous.scheduler.shutdown());
        }
    }
}

impl TriggerKind for CronTriggers {
    fn kind(&self) -> &'static str {
        "cron"
    }

    /// Each trigger must name an entry the version exposes. Names need not be unique in the
    /// space (two functions may each have a `nightly`): cron triggers are not addressed by
    /// name alone, and this was allowed before versions owned their triggers.
    fn check(&self, version: &FunctionVersion) -> Result<(), String> {
        jobs_for(version, &version.triggers.cron).map(drop).map_err(|e| e.to_string())
    }

    fn start(&self, version: &Arc<FunctionVersion>) {
        self.take(&version.space, &version.name);
        let jobs = match jobs_for(version, &version.triggers.cron) {
            Ok(jobs) if !jobs.is_empty() => jobs,
            Ok(_) => return,
            // `check` refused such a version before it became active.
            Err(error) => {
                tracing::error!(%error, "cron triggers could not start");
                return;
            }
        };
        let callbacks = jobs
            .iter()
            .filter_map(|job| {
                let url = job.trigger.callback_url.as_ref()?.0.clone();
                Some(((job.space.clone(), job.function.clone(), job.trigger.name.clone()), url))
            })
            .collect();
        let target = Arc::new(CallbackTarget {
            invoker: self.invoker.clone(),
            deliverer: self.deliverer.clone(),
            callbacks,
        });
        for job in &jobs {
            tracing::info!(
                space = %job.space, function = %job.function, version = %version.version,
                cron_trigger = %job.trigger.name,
                schedule = %job.trigger.schedule.source(), timezone = %job.trigger.tz(),
                "cron trigger started"
            );
        }
        let triggers = jobs.clone();
        let scheduler = CronScheduler::start_claimed(
            jobs,
            target,
            self.clock.clone(),
            None,
            self.claims.clone(),
        );
        let run = Running { origin: TriggerOrigin::declared_by(version), scheduler, triggers };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert((version.space.clone(), version.name.clone()), run);
    }

    fn stop(&self, space: &str, function: &str) {
        self.take(space, function);
    }

    fn list(&self, space: Option<&str>) -> Vec<Value> {
        let now = self.clock.now();
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut listed = Vec::new();
        for ((trigger_space, _), run) in running.iter() {
            if space.is_some_and(|s| s != trigger_space) {
                continue;
            }
            let stats = run.scheduler.stats().iter().map(|(_, stats)| stats);
            for (job, stats) in run.triggers.iter().zip(stats) {
                // The next fire times, so an operator can check a schedule means what they meant.
                let mut next = Vec::new();
                let mut after = now;
                while next.len() < NEXT_FIRES {
                    let Some(fire) = job.next_fire(after) else { break };
                    next.push(super::job::rfc3339(fire));
                    after = fire;
                }
                let view = CronView {
                    space: trigger_space,
                    name: &job.trigger.name,
                    kind: "cron",
                    origin: &run.origin,
                    config: json!({
                        "schedule": job.trigger.schedule.source(),
                        "timezone": job.trigger.tz().name(),
                    }),
                    status: json!({
                        "state": "Running",
                        "fired": load(&stats.fired),
                        "skipped": load(&stats.skipped),
                        "next": next,
                    }),
                };
                listed.push(serde_json::to_value(view).expect("cron view serialises"));
            }
        }
        listed
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let all: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *running).into_values().collect()
        };
        Box::pin(async move {
            for run in all {
                run.scheduler.shutdown().await;
            }
        })
    }
}
