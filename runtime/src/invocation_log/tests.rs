use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::clock::ManualClock;
use wasmfn_host_apis::state::{sled_tree, StateError};

fn record(function: &str, status: u16, started: DateTime<Utc>) -> LogRecord {
    LogRecord {
        id: uuid::Uuid::new_v4(),
        started_at: started.to_rfc3339(),
        started_ms: started.timestamp_millis(),
        duration_ms: 3,
        queued_ms: None,
        instantiate_ms: None,
        space: "default".into(),
        function: function.into(),
        version: Some("1.0.0".into()),
        entry: Some("m.f".into()),
        trigger: "http".into(),
        arguments: None,
        arguments_bytes: None,
        status,
        outcome: if status == 200 { "ok".into() } else { "function_exception".into() },
        error_type: None,
        error_message: None,
        traceback: None,
        logs: Vec::new(),
        outbound: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
    }
}

fn log(options: LogOptions, clock: Arc<dyn Clock>) -> (Arc<InvocationLog>, LogTasks) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    InvocationLog::start(
        sled_tree::open(&db, "r").unwrap(),
        sled_tree::open(&db, "i").unwrap(),
        options,
        clock,
    )
}

#[tokio::test]
async fn queries_filter_and_return_newest_first() {
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
    let (log, tasks) = log(LogOptions::default(), Arc::new(ManualClock::new(start)));
    let records: Vec<_> = (0..6)
        .map(|i| {
            record(
                if i % 2 == 0 { "a" } else { "b" },
                if i < 3 { 200 } else { 500 },
                start + Duration::seconds(i),
            )
        })
        .collect();
    log.store(&records);
    let all = log.query(&LogFilter::default());
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        records.iter().rev().map(|r| r.id).collect::<Vec<_>>()
    );
    let failed_a = log.query(&LogFilter {
        function: Some("a".into()),
        status: Some("5xx".parse().unwrap()),
        ..LogFilter::default()
    });
    assert_eq!(failed_a.iter().map(|r| r.id).collect::<Vec<_>>(), [records[4].id]);
    let window = log.query(&LogFilter {
        since: Some(start + Duration::seconds(2)),
        until: Some(start + Duration::seconds(4)),
        ..LogFilter::default()
    });
    assert_eq!(window.len(), 2);
    let limited = log.query(&LogFilter { limit: 2, ..LogFilter::default() });
    assert_eq!(limited.len(), 2);
    assert_eq!(log.get(records[1].id).unwrap().function, "b");
    assert!("6xx".parse::<record::StatusFilter>().is_err());
    tasks.shutdown().await;
}

#[tokio::test]
async fn the_sweep_removes_what_is_past_retention_and_beyond_the_size_bound() {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let options = LogOptions { retention: Duration::days(7), max_records: 3 };
    let (log, tasks) = log(options, clock.clone());
    let old = record("f", 200, start);
    let newer: Vec<_> = (1..=4).map(|d| record("f", 200, start + Duration::days(d))).collect();
    log.store(std::slice::from_ref(&old));
    log.store(&newer);
    // Day 8: the first record is past 7 days; of the rest, the oldest goes for the bound.
    clock.advance(Duration::days(8) + Duration::hours(1));
    assert_eq!(log.sweep(clock.now()), 2);
    let left: Vec<_> = log.query(&LogFilter::default()).into_iter().map(|r| r.id).collect();
    assert_eq!(left, newer[1..].iter().rev().map(|r| r.id).collect::<Vec<_>>());
    assert!(log.get(old.id).is_none(), "the id index follows");
    tasks.shutdown().await;
}

#[tokio::test]
async fn observed_outcomes_are_written_and_shutdown_flushes_them() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let (log, tasks) = InvocationLog::start(
        sled_tree::open(&db, "r").unwrap(),
        sled_tree::open(&db, "i").unwrap(),
        LogOptions::default(),
        Arc::new(crate::triggers::cron::SystemClock),
    );
    let invocation = crate::invoker::Invocation {
        space: "default".into(),
        function: "gone".into(),
        trigger: "http".into(),
        ..Default::default()
    };
    let error = crate::error::InvokeError::Timeout { timeout_ms: 10 };
    let outcome = crate::invoker::Outcome::failed(&invocation, None, error);
    log.observe(&outcome);
    tasks.shutdown().await;
    let stored = log.get(outcome.id).expect("written before shutdown returned");
    assert_eq!((stored.status, stored.outcome.as_str()), (504, "timeout"));
}

#[test]
fn arguments_are_kept_bounded_and_without_credentials() {
    use record::{recorded_arguments, MAX_ARGUMENTS_BYTES};
    assert_eq!(recorded_arguments("{}"), (None, None));
    assert_eq!(recorded_arguments(""), (None, None));
    let plain = r#"{"name":"Ada","n":3}"#;
    assert_eq!(recorded_arguments(plain), (Some(plain.to_string()), None));
    let (kept, cut) = recorded_arguments(
        r#"{"user":{"Password":"hunter2","name":"Ada"},"items":[{"api_key":"k1"}],"accessToken":"t"}"#,
    );
    let kept: serde_json::Value = serde_json::from_str(&kept.unwrap()).unwrap();
    assert_eq!(cut, None);
    assert_eq!(kept["user"]["Password"], "[redacted]");
    assert_eq!(kept["user"]["name"], "Ada");
    assert_eq!(kept["items"][0]["api_key"], "[redacted]");
    assert_eq!(kept["accessToken"], "[redacted]");
    assert!(!kept.to_string().contains("hunter2"));
    // Long text is cut on a character boundary, and its length kept.
    let long = format!(r#"{{"text":"{}"}}"#, "é".repeat(MAX_ARGUMENTS_BYTES));
    let (kept, cut) = recorded_arguments(&long);
    let kept = kept.unwrap();
    assert!(kept.len() <= MAX_ARGUMENTS_BYTES && kept.len() >= MAX_ARGUMENTS_BYTES - 1);
    assert_eq!(cut, Some(long.len() as u64));
}

/// A tree that counts how often it is counted (`len`), else the sled tree it wraps.
#[derive(Debug)]
struct CountedTree {
    tree: StateTree,
    lens: Arc<std::sync::atomic::AtomicUsize>,
    shared: bool,
}

impl wasmfn_host_apis::state::KvTree for CountedTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.tree.get(key)
    }
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.tree.insert(key, value)
    }
    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StateError> {
        self.tree.insert_new(key, value)
    }
    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.tree.remove(key)
    }
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        self.tree.compare_and_swap(key, expected, new)
    }
    fn apply(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        self.tree.apply(batch)
    }
    fn scan(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
    ) -> wasmfn_host_apis::state::Entries<'_> {
        self.tree.scan(range, reverse)
    }
    fn len(&self) -> Result<usize, StateError> {
        self.lens.fetch_add(1, Ordering::SeqCst);
        self.tree.len()
    }
    fn flush(&self) -> Result<(), StateError> {
        self.tree.flush()
    }
    fn shared(&self) -> bool {
        self.shared
    }
}

/// Stores 5 records, sweeps, stores 2 more, sweeps (bound 3, nothing past the retention);
/// returns how often the records tree was counted and the records left, newest first.
fn sweep_twice(shared: bool) -> (usize, Vec<uuid::Uuid>, Vec<uuid::Uuid>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start + Duration::days(7)));
    let db = sled::Config::new().temporary(true).open().unwrap();
    let lens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tree = CountedTree { tree: sled_tree::open(&db, "r").unwrap(), lens: lens.clone(), shared };
    let options = LogOptions { retention: Duration::days(7), max_records: 3 };
    // No await below: the sweeper task started here does not run before the assertions.
    let (log, _tasks) = InvocationLog::start(
        StateTree::new(tree),
        sled_tree::open(&db, "i").unwrap(),
        options,
        clock.clone(),
    );
    let stored: Vec<_> = (1..=7).map(|h| record("f", 200, start + Duration::hours(h))).collect();
    log.store(&stored[..5]);
    assert_eq!(log.sweep(clock.now()), 2, "5 records, bound 3");
    log.store(&stored[5..]);
    assert_eq!(log.sweep(clock.now()), 2, "5 records again");
    let left = log.query(&LogFilter::default()).into_iter().map(|r| r.id).collect();
    let expected = stored[4..].iter().rev().map(|r| r.id).collect();
    (lens.load(Ordering::SeqCst), left, expected)
}

#[tokio::test]
async fn a_node_counts_its_own_log_once_then_keeps_the_count() {
    let (counted, left, expected) = sweep_twice(false);
    assert_eq!(left, expected);
    assert_eq!(counted, 1, "the second sweep used the node's own count");
}

#[tokio::test]
async fn a_shared_log_is_counted_at_every_sweep() {
    let (counted, left, expected) = sweep_twice(true);
    assert_eq!(left, expected);
    assert_eq!(counted, 2, "other nodes write a shared log: each sweep counts it");
}
