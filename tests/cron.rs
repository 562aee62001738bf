//! The cron trigger end to end: a `[[cron]]` table travels from `function.toml` into the
//! bundle, and a real schedule on the system clock runs the real function through the
//! `Invoker`, a fresh instance per tick, with the trigger name and scheduled time visible to it.

mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use wasmfn_runtime::bundle::read_meta;
use wasmfn_runtime::runtime::Runtime;
use wasmfn_runtime::triggers::cron::job::rfc3339;
use wasmfn_runtime::triggers::cron::{
    jobs_for, CronEvent, CronSchedule, CronScheduler, CronTriggerConfig, SystemClock,
};

use support::{fixture_bundle, runtime_config};

/// Everything this test binary logs, as the server's log would show it (without colours).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        log
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_real_schedule_runs_the_function_in_a_fresh_instance_on_every_tick() {
    let log = captured_log();
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let meta = read_meta(&bytes).unwrap().expect("wasmfn build embeds metadata");
    let configured: Vec<_> =
        meta.cron.iter().map(|t| (t.name.as_str(), t.schedule.source())).collect();
    assert_eq!(configured, [("new-year", "@yearly")], "function.toml's [[cron]] is in the bundle");

    let runtime = Runtime::new(runtime_config()).expect("runtime");
    let version = runtime.load(bytes, "default", None).await.expect("loading behave");
    // A seconds schedule (test only: function.toml takes 5-field expressions) so that the test
    // sees two ticks within a few seconds.
    let every_second = CronTriggerConfig {
        name: "every-second".into(),
        schedule: CronSchedule::with_seconds("* * * * * *").unwrap(),
        ..meta.cron[0].clone()
    };
    let jobs = jobs_for(&version, &[every_second]).expect("the entry exists");
    let (events, mut received) = mpsc::channel(8);
    let invoker = Arc::new(runtime.invoker().clone());
    let scheduler = CronScheduler::start(jobs, invoker, Arc::new(SystemClock), Some(events));

    let mut runs = Vec::new();
    while runs.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("a run within 30 s")
            .expect("the scheduler is running");
        if let CronEvent::Ran(run) = event {
            runs.push(run);
        }
    }
    scheduler.shutdown().await;

    for run in &runs {
        assert_eq!(run.trigger, "every-second");
        assert_eq!(run.outcome.trigger, "cron");
        let response = run.outcome.result.as_ref().expect("the run succeeded");
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["trigger"], "cron");
        assert_eq!((&body["method"], &body["path"]), (&Value::from("POST"), &Value::from("/")));
        assert_eq!(body["cron_trigger"], "every-second");
        assert_eq!(body["scheduled_time"], rfc3339(run.scheduled));
        assert_eq!(body["calls"], 1, "each tick runs in a fresh instance");
    }
    assert!(runs[1].scheduled > runs[0].scheduled, "two different ticks");

    // The log line of each run carries the trigger name and the scheduled time.
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let span =
        format!("cron{{cron_trigger=every-second scheduled_time={}}}", rfc3339(runs[0].scheduled));
    let finished =
        log.lines().find(|line| line.contains(&span) && line.contains("invocation finished"));
    let finished = finished.unwrap_or_else(|| panic!("no log line with {span}:\n{log}"));
    assert!(finished.contains("trigger=cron") && finished.contains("status=200"), "{finished}");
}

#[tokio::test]
async fn a_trigger_naming_a_missing_entry_is_refused_before_it_starts() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let runtime = Runtime::new(runtime_config()).expect("runtime");
    let version = runtime.load(bytes, "default", None).await.expect("loading behave");
    let trigger = CronTriggerConfig {
        name: "nightly".into(),
        schedule: CronSchedule::parse("@daily").unwrap(),
        entry: Some("behave.nope".into()),
        timezone: None,
        callback_url: None,
    };
    let error = jobs_for(&version, &[trigger]).unwrap_err().to_string();
    assert!(error.contains("cron trigger 'nightly' of function 'behave'"), "{error}");
    assert!(error.contains("behave.nope"), "{error}");
}
