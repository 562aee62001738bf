//! Runs cron jobs: one task per trigger sleeps until its next fire time, then hands the
//! synthesised invocation to the target (the `Invoker` in production) in a task of its own.
//!
//! Overlap policy: at most one run per trigger at a time. A tick that comes while the previous
//! run of the same trigger still goes is skipped, counted and logged, never queued, so a slow
//! function cannot pile up runs. Ticks missed while the process was not running (or the clock
//! jumped forward) are not replayed: the next fire time is always computed from now.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::claims::TickClaims;
use super::job::{rfc3339, CronJob, CronTarget};
use crate::clock::Clock;
use crate::invoker::Outcome;

/// A finished run.
#[derive(Debug)]
pub struct CronRun {
    pub trigger: String,
    pub scheduled: DateTime<Utc>,
    pub outcome: Outcome,
}

/// A tick skipped because the previous run was still going.
#[derive(Debug, Clone)]
pub struct CronSkip {
    pub trigger: String,
    pub scheduled: DateTime<Utc>,
    /// Ticks of this trigger skipped so far, this one included.
    pub skipped_total: u64,
}

/// What a scheduler reports to an observer (tests; later the admin API).
#[derive(Debug)]
pub enum CronEvent {
    /// Boxed: an `Outcome` is large, a skip is not.
    Ran(Box<CronRun>),
    Skipped(CronSkip),
}

/// Counters of one trigger.
#[derive(Debug, Default)]
pub struct CronStats {
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
}

/// The running scheduler tasks; [`CronScheduler::shutdown`] stops them.
#[derive(Debug)]
pub struct CronScheduler {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    stats: Vec<(String, Arc<CronStats>)>,
}

impl CronScheduler {
    /// Starts one task per job. Fire times are computed from the clock's time at this call.
    /// `events`, if given, receives every run and skip; a full channel delays the run that
    /// reports, which then counts as still going.
    pub fn start(
        jobs: Vec<CronJob>,
        target: Arc<dyn CronTarget>,
        clock: Arc<dyn Clock>,
        events: Option<mpsc::Sender<CronEvent>>,
    ) -> Self {
        Self::start_claimed(jobs, target, clock, events, None)
    }

    /// [`CronScheduler::start`] for a server of a cluster: each tick fires only where its
    /// claim in `claims` is kept (see [`TickClaims`]).
    pub fn start_claimed(
        jobs: Vec<CronJob>,
        target: Arc<dyn CronTarget>,
        clock: Arc<dyn Clock>,
        events: Option<mpsc::Sender<CronEvent>>,
        claims: Option<TickClaims>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        let started = clock.now();
        let mut tasks = Vec::new();
        let mut stats = Vec::new();
        for job in jobs {
            let counters = Arc::new(CronStats::default());
            stats.push((job.trigger.name.clone(), counters.clone()));
            let schedule = JobLoop {
                job,
                target: target.clone(),
                clock: clock.clone(),
                events: events.clone(),
                counters,
                claims: claims.clone(),
            };
            tasks.push(tokio::spawn(schedule.run(started, stop.subscribe())));
        }
        Self { stop, tasks, stats }
    }

    /// `(trigger, counters)` of every job, in start order.
    pub fn stats(&self) -> &[(String, Arc<CronStats>)] {
        &self.stats
    }

    /// Stops scheduling and waits for runs in flight to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

struct JobLoop {
    job: CronJob,
    target: Arc<dyn CronTarget>,
    clock: Arc<dyn Clock>,
    events: Option<mpsc::Sender<CronEvent>>,
    counters: Arc<CronStats>,
    claims: Option<TickClaims>,
}

impl JobLoop {
    async fn run(self, started: DateTime<Utc>, mut stop: watch::Receiver<bool>) {
        let trigger = &self.job.trigger;
        let mut after = started;
        let mut running: Option<JoinHandle<()>> = None;
        loop {
            let Some(next) = self.job.next_fire(after) else {
                tracing::warn!(cron_trigger = %trigger.name, "cron schedule has no future fire time");
                break;
            };
            tracing::debug!(
                function = %self.job.function, cron_trigger = %trigger.name,
                next_fire = %rfc3339(next), "cron trigger waiting"
            );
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = self.clock.sleep_until(next) => {}
            }
            let elsewhere = match &self.claims {
                Some(claims) => !claims.claim(&self.job, next).await,
                None => false,
            };
            if elsewhere {
                tracing::debug!(cron_trigger = %trigger.name, scheduled_time = %rfc3339(next),
                    "cron tick fired by another server of the cluster");
            } else if running.as_ref().is_some_and(|run| !run.is_finished()) {
                self.skip(next).await;
            } else {
                self.counters.fired.fetch_add(1, Ordering::Relaxed);
                running = Some(tokio::spawn(self.fire(next)));
            }
            after = next.max(self.clock.now());
        }
        if let Some(run) = running {
            let _ = run.await;
        }
    }

    async fn skip(&self, scheduled: DateTime<Utc>) {
        let skipped_total = self.counters.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            space = %self.job.space, function = %self.job.function,
            cron_trigger = %self.job.trigger.name, scheduled_time = %rfc3339(scheduled),
            skipped_total, "cron tick skipped: the previous run is still going"
        );
        if let Some(events) = &self.events {
            let skip =
                CronSkip { trigger: self.job.trigger.name.clone(), scheduled, skipped_total };
            let _ = events.send(CronEvent::Skipped(skip)).await;
        }
    }

    fn fire(&self, scheduled: DateTime<Utc>) -> impl Future<Output = ()> + Send + 'static {
        let invocation = self.job.invocation(scheduled);
        let target = self.target.clone();
        let events = self.events.clone();
        let trigger = self.job.trigger.name.clone();
        // The invoker's "invocation finished" line is logged inside this span, so it shows
        // which trigger fired and for which scheduled time.
        let span = tracing::info_span!(
            "cron", cron_trigger = %trigger, scheduled_time = %rfc3339(scheduled)
        );
        async move {
            tracing::info!(
                space = %invocation.space, function = %invocation.function, "cron trigger fired"
            );
            let outcome = target.run(invocation).await;
            if let Some(events) = events {
                let _ = events
                    .send(CronEvent::Ran(Box::new(CronRun { trigger, scheduled, outcome })))
                    .await;
            }
        }
        .instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::time::Duration;

    use super::*;
    use crate::cron::{CronSchedule, CronTriggerConfig, ManualClock};
    use crate::invoker::{FunctionResponse, Invocation, Timing};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn job(name: &str, schedule: &str) -> CronJob {
        CronJob {
            space: "default".into(),
            function: "report".into(),
            trigger: CronTriggerConfig {
                name: name.into(),
                schedule: CronSchedule::parse(schedule).unwrap(),
                entry: None,
                timezone: None,
                callback_url: None,
            },
        }
    }

    /// A target that tells the test when a run starts and finishes it only when the test
    /// releases a permit, answering with the headers it was given.
    struct HeldTarget {
        started: mpsc::UnboundedSender<Invocation>,
        release: Arc<tokio::sync::Semaphore>,
    }

    impl CronTarget for HeldTarget {
        fn run(&self, invocation: Invocation) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
            let (started, release) = (self.started.clone(), self.release.clone());
            Box::pin(async move {
                started.send(invocation.clone()).unwrap();
                release.acquire().await.unwrap().forget();
                let body = serde_json::to_vec(&invocation.request.headers).unwrap();
                Outcome {
                    id: uuid::Uuid::new_v4(),
                    space: invocation.space,
                    function: invocation.function,
                    version: None,
                    entry: None,
                    trigger: invocation.trigger,
                    arguments: String::new(),
                    result: Ok(FunctionResponse {
                        status: 200,
                        headers: vec![],
                        body: body.into(),
                    }),
                    traceback: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    logs: vec![],
                    outbound: vec![],
                    timing: Timing::default(),
                }
            })
        }
    }

    struct Harness {
        clock: Arc<ManualClock>,
        scheduler: CronScheduler,
        started: mpsc::UnboundedReceiver<Invocation>,
        events: mpsc::Receiver<CronEvent>,
        release: Arc<tokio::sync::Semaphore>,
    }

    fn start(jobs: Vec<CronJob>, at: &str) -> Harness {
        let clock = Arc::new(ManualClock::new(utc(at)));
        let (started_tx, started) = mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let target = HeldTarget { started: started_tx, release: release.clone() };
        let (events_tx, events) = mpsc::channel(16);
        let scheduler =
            CronScheduler::start(jobs, Arc::new(target), clock.clone(), Some(events_tx));
        Harness { clock, scheduler, started, events, release }
    }

    async fn within<T>(what: &str, future: impl Future<Output = Option<T>>) -> T {
        tokio::time::timeout(Duration::from_secs(5), future)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
    }

    /// Nothing arrives for a while (the scheduler is asleep on the manual clock).
    async fn quiet<T: std::fmt::Debug>(receiver: &mut mpsc::UnboundedReceiver<T>) {
        let waited = tokio::time::timeout(Duration::from_millis(100), receiver.recv()).await;
        assert!(waited.is_err(), "expected nothing, got {waited:?}");
    }

    fn header<'a>(invocation: &'a Invocation, name: &str) -> &'a str {
        let (_, value) = invocation.request.headers.iter().find(|(n, _)| n == name).unwrap();
        value
    }

    /// Three servers run the same schedule on one clock, sharing their claims: every tick
    /// fires exactly once among them, also after the server that fired the last ones stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_sharing_claims_fire_each_tick_once() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = wasmfn_host_apis::state::sled_tree::open(&db, "cron_ticks").unwrap();
        let clock = Arc::new(ManualClock::new(utc("2026-01-07T11:55:00Z")));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Semaphore::new(1000));
        let mut servers = Vec::new();
        for _ in 0..3 {
            let target = HeldTarget { started: started_tx.clone(), release: release.clone() };
            servers.push(CronScheduler::start_claimed(
                vec![job("every-ten", "*/10 * * * *")],
                Arc::new(target),
                clock.clone(),
                None,
                Some(TickClaims::new(tree.clone())),
            ));
        }
        let mut fired = Vec::new();
        for (step, at) in ["12:00", "12:10", "12:20", "12:30"].iter().enumerate() {
            if step == 2 {
                // One of the servers stops: the others carry on without a hand-over.
                servers.remove(0).shutdown().await;
            }
            clock.set(utc(&format!("2026-01-07T{at}:00Z")));
            let run = within("a run", started.recv()).await;
            fired.push(header(&run, "x-scheduled-time").to_string());
            quiet(&mut started).await;
        }
        assert_eq!(
            fired,
            [
                "2026-01-07T12:00:00Z",
                "2026-01-07T12:10:00Z",
                "2026-01-07T12:20:00Z",
                "2026-01-07T12:30:00Z"
            ]
        );
        for server in servers {
            server.shutdown().await;
        }
    }

    #[tokio::test]
    async fn fires_at_each_scheduled_time_with_trigger_name_and_scheduled_time() {
        let mut h = start(vec![job("every-ten", "*/10 * * * *")], "2026-01-07T11:55:00Z");
        h.release.add_permits(100);
        h.clock.set(utc("2026-01-07T11:59:59Z"));
        quiet(&mut h.started).await;
        h.clock.set(utc("2026-01-07T12:00:00Z"));
        let invocation = within("the 12:00 run", h.started.recv()).await;
        assert_eq!(invocation.trigger, "cron");
        assert_eq!(
            (invocation.request.method.as_str(), invocation.request.path.as_str()),
            ("POST", "/")
        );
        assert_eq!(header(&invocation, "x-cron-trigger"), "every-ten");
        assert_eq!(header(&invocation, "x-scheduled-time"), "2026-01-07T12:00:00Z");
        let CronEvent::Ran(run) = within("the 12:00 outcome", h.events.recv()).await else {
            panic!("expected a run")
        };
        assert_eq!(run.scheduled, utc("2026-01-07T12:00:00Z"));
        assert_eq!(run.outcome.status(), 200);

        // The clock runs late (the scheduler woke at 12:10:30): the tick fires once, with its
        // scheduled time, and the next one is 12:20.
        h.clock.set(utc("2026-01-07T12:10:30Z"));
        let invocation = within("the 12:10 run", h.started.recv()).await;
        assert_eq!(header(&invocation, "x-scheduled-time"), "2026-01-07T12:10:00Z");
        h.clock.set(utc("2026-01-07T12:19:00Z"));
        quiet(&mut h.started).await;
        h.scheduler.shutdown().await;
    }

    #[tokio::test]
    async fn a_wednesday_schedule_fires_on_wednesday_at_midnight() {
        // 2026-01-05 is a Monday.
        let mut h = start(vec![job("weekly", "0 0 * * 3")], "2026-01-05T08:00:00Z");
        h.release.add_permits(10);
        h.clock.set(utc("2026-01-06T23:59:00Z"));
        quiet(&mut h.started).await;
        h.clock.set(utc("2026-01-07T00:00:00Z"));
        let invocation = within("Wednesday's run", h.started.recv()).await;
        assert_eq!(header(&invocation, "x-scheduled-time"), "2026-01-07T00:00:00Z");
        h.scheduler.shutdown().await;
    }

    #[tokio::test]
    async fn a_tick_during_a_run_of_the_same_trigger_is_skipped_and_counted() {
        let mut h = start(vec![job("slow", "* * * * *")], "2026-01-07T11:59:30Z");
        h.clock.set(utc("2026-01-07T12:00:00Z"));
        within("the 12:00 run", h.started.recv()).await;
        for (minute, total) in [("12:01", 1), ("12:02", 2)] {
            h.clock.set(utc(&format!("2026-01-07T{minute}:00Z")));
            let CronEvent::Skipped(skip) = within("a skip", h.events.recv()).await else {
                panic!("expected a skip at {minute}")
            };
            assert_eq!(skip.trigger, "slow");
            assert_eq!(rfc3339(skip.scheduled), format!("2026-01-07T{minute}:00Z"));
            assert_eq!(skip.skipped_total, total);
        }
        quiet(&mut h.started).await;
        // The 12:00 run finishes; the 12:03 tick runs again.
        h.release.add_permits(1);
        let CronEvent::Ran(run) = within("the 12:00 outcome", h.events.recv()).await else {
            panic!("expected the run to finish")
        };
        assert_eq!(run.scheduled, utc("2026-01-07T12:00:00Z"));
        h.clock.set(utc("2026-01-07T12:03:00Z"));
        let invocation = within("the 12:03 run", h.started.recv()).await;
        assert_eq!(header(&invocation, "x-scheduled-time"), "2026-01-07T12:03:00Z");
        let stats = &h.scheduler.stats()[0].1;
        assert_eq!(stats.fired.load(Ordering::Relaxed), 2);
        assert_eq!(stats.skipped.load(Ordering::Relaxed), 2);
        h.release.add_permits(1);
        h.scheduler.shutdown().await;
    }

    #[tokio::test]
    async fn triggers_run_independently_and_shutdown_waits_for_runs_in_flight() {
        let jobs = vec![job("hourly", "@hourly"), job("quarterly", "*/15 * * * *")];
        let mut h = start(jobs, "2026-01-07T11:50:00Z");
        h.clock.set(utc("2026-01-07T12:00:00Z"));
        let mut fired: Vec<String> = vec![
            header(&within("a run", h.started.recv()).await, "x-cron-trigger").into(),
            header(&within("a run", h.started.recv()).await, "x-cron-trigger").into(),
        ];
        fired.sort();
        assert_eq!(fired, ["hourly", "quarterly"]);
        // Both runs are held; shutdown waits for them.
        let shutdown = tokio::spawn(h.scheduler.shutdown());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shutdown.is_finished(), "shutdown waits for runs in flight");
        h.release.add_permits(2);
        drop(h.events);
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.unwrap().unwrap();
    }
}
