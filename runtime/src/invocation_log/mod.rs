//! The invocation log: one record per invocation, whatever the trigger, kept in sled for a
//! retention period (7 days by default) and up to a number of records, queried and downloaded
//! through the admin API and `wasmfn logs`.
//!
//! Writes are off the invocation path: the invoker's observer hands records to a bounded
//! channel (a full channel drops the record, counts and logs it, never blocks a call), and a
//! writer task applies them in batches and flushes at least every 200 ms. Shutdown drains the
//! channel and flushes, so a graceful stop loses nothing.

mod record;

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::invoker::{Outcome, OutcomeObserver};
use wasmfn_host_apis::state::StateTree;

pub use record::{LogFilter, LogRecord, RecordSummary, StatusFilter};

/// Records waiting for the writer before new ones are dropped.
const CHANNEL: usize = 10_000;
/// Longest time between a record's arrival and its flush.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often old records are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Records removed per write while sweeping.
const SWEEP_BATCH: usize = 500;

/// Retention settings.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub retention: chrono::Duration,
    pub max_records: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self { retention: chrono::Duration::days(7), max_records: 1_000_000 }
    }
}

/// The log store and its writer.
pub struct InvocationLog {
    records: StateTree,
    /// Record id → key in `records`.
    by_id: StateTree,
    sender: mpsc::Sender<LogRecord>,
    dropped: AtomicU64,
    options: LogOptions,
    clock: Arc<dyn Clock>,
    /// The count of `records` less `change` when the first sweep counted it. Counting reads
    /// the whole tree in sled (~2.5 s of CPU at a million records), so after that first count
    /// this node keeps its own; a shared tree (other nodes write it) is counted at every sweep.
    counted: OnceLock<i64>,
    /// Records stored less records swept since the log was opened.
    change: AtomicI64,
}

impl std::fmt::Debug for InvocationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationLog").field("options", &self.options).finish_non_exhaustive()
    }
}

/// The writer and sweeper tasks; [`LogTasks::shutdown`] drains and flushes.
#[derive(Debug)]
pub struct LogTasks {
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl LogTasks {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.writer.await;
        self.sweeper.abort();
    }
}

impl InvocationLog {
    /// Opens the log in `records`/`by_id` and starts its writer and sweeper.
    pub fn start(
        records: StateTree,
        by_id: StateTree,
        options: LogOptions,
        clock: Arc<dyn Clock>,
    ) -> (Arc<Self>, LogTasks) {
        let (sender, receiver) = mpsc::channel(CHANNEL);
        let log = Arc::new(Self {
            records,
            by_id,
            sender,
            dropped: AtomicU64::new(0),
            options,
            clock,
            counted: OnceLock::new(),
            change: AtomicI64::new(0),
        });
        let (stop, _) = watch::channel(false);
        let writer = tokio::spawn(log.clone().write(receiver, stop.subscribe()));
        let sweeper = tokio::spawn(log.clone().sweep_periodically(stop.subscribe()));
        (log, LogTasks { stop, writer, sweeper })
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    async fn write(
        self: Arc<Self>,
        mut receiver: mpsc::Receiver<LogRecord>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let first = tokio::select! {
                record = receiver.recv() => record,
                _ = stop.changed() => None,
            };
            let mut batch: Vec<LogRecord> = first.into_iter().collect();
            let stopping = batch.is_empty();
            // Everything already waiting goes in the same batch (all of it when stopping).
            while let Ok(record) = receiver.try_recv() {
                batch.push(record);
            }
            let written = batch.len();
            if !batch.is_empty() {
                // Off the async threads: the store may be a database across the network.
                let log = self.clone();
                let flushed = tokio::task::spawn_blocking(move || {
                    log.store(&batch);
                    log.records.flush()
                })
                .await;
                if let Ok(Err(error)) = flushed {
                    tracing::error!(%error, "flushing the invocation log failed");
                }
            }
            if stopping {
                return;
            }
            // Group writes that arrive close together.
            if written < 64 {
                tokio::time::sleep(FLUSH_EVERY.min(Duration::from_millis(20))).await;
            }
        }
    }

    /// Writes records now (the writer's step; tests call it directly).
    pub fn store(&self, records: &[LogRecord]) {
        let mut batch = Vec::with_capacity(records.len());
        let mut ids = Vec::with_capacity(records.len());
        for record in records {
            let key = record.key();
            ids.push((record.id.as_bytes().to_vec(), Some(key.clone())));
            batch.push((key, Some(serde_json::to_vec(record).expect("records serialise"))));
        }
        match self.records.apply(batch).and_then(|()| self.by_id.apply(ids)) {
            Ok(()) => {
                self.change.fetch_add(records.len() as i64, Ordering::SeqCst);
            }
            Err(error) => {
                tracing::error!(%error, records = records.len(), "writing the invocation log failed")
            }
        }
    }

    /// How many records the log holds: the tree counted when it is shared or not counted yet,
    /// else this node's own count. Records stored while the tree is being counted may be
    /// counted twice, so the count is never below what is held (a sweep may then remove a few
    /// more of the oldest records than it had to, never keep more than the bound).
    fn held(&self) -> Option<usize> {
        if self.records.shared() {
            return self.records.len().ok();
        }
        let base = match self.counted.get() {
            Some(base) => *base,
            None => {
                let before = self.change.load(Ordering::SeqCst);
                let len = self.records.len().ok()?;
                *self.counted.get_or_init(|| len as i64 - before)
            }
        };
        Some((base + self.change.load(Ordering::SeqCst)).max(0) as usize)
    }

    async fn sweep_periodically(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let log = self.clone();
            let removed =
                tokio::task::spawn_blocking(move || log.sweep(log.clock.now())).await.unwrap_or(0);
            if removed > 0 {
                tracing::info!(removed, "old invocation log records removed");
            }
            tokio::select! {
                () = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Removes records older than the retention, then the oldest beyond `max_records`.
    /// Returns how many went one by one. In a store that keeps the log partitioned by day
    /// (PostgreSQL), old records go a whole day at a time, once the day is past the retention
    /// (so they stay up to a day longer than the retention).
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let cutoff = (now - self.options.retention).timestamp_millis().max(0) as u64;
        let by_day = match self.records.drop_days_before(cutoff) {
            Ok(Some(days)) => {
                if days > 0 {
                    tracing::info!(days, "days of the invocation log past the retention dropped");
                }
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "could not drop old days of the invocation log");
                true
            }
        };
        let cutoff = if by_day { 0 } else { cutoff };
        let Some(count) = self.held() else { return 0 };
        let mut excess = count.saturating_sub(self.options.max_records);
        let (mut records, mut ids) = (Vec::new(), Vec::new());
        let mut removed = 0;
        let remove = |records: &mut Vec<_>, ids: &mut Vec<_>| -> usize {
            let n = records.len();
            let done = self.by_id.apply(std::mem::take(ids)).is_ok()
                && self.records.apply(std::mem::take(records)).is_ok();
            if done {
                n
            } else {
                0
            }
        };
        for entry in self.records.iter() {
            let Ok((key, value)) = entry else { break };
            let old = key.len() >= 8
                && u64::from_be_bytes(key[..8].try_into().expect("8 bytes")) < cutoff;
            if !old && excess == 0 {
                break;
            }
            excess = excess.saturating_sub(1);
            if let Ok(record) = serde_json::from_slice::<RecordId>(&value) {
                ids.push((record.id.as_bytes().to_vec(), None));
            }
            records.push((key, None));
            if records.len() >= SWEEP_BATCH {
                removed += remove(&mut records, &mut ids);
            }
        }
        removed += remove(&mut records, &mut ids);
        self.change.fetch_sub(removed as i64, Ordering::SeqCst);
        removed
    }

    /// Records matching the filter, newest first, at most `filter.limit`.
    pub fn query(&self, filter: &LogFilter) -> Vec<LogRecord> {
        let mut found = Vec::new();
        for entry in self.records.scan((Bound::Unbounded, Bound::Unbounded), true) {
            let Ok((_, value)) = entry else { break };
            let Ok(record) = serde_json::from_slice::<LogRecord>(&value) else { continue };
            if filter.since.is_some_and(|since| record.started_ms < since.timestamp_millis()) {
                break;
            }
            if filter.matches(&record) {
                found.push(record);
                if found.len() >= filter.limit {
                    break;
                }
            }
        }
        found
    }

    /// Calls `visit` with the summary of every record that started in `[since_ms, until_ms)`,
    /// newest first; at most `max` of them. Returns how many it visited.
    pub fn summaries(
        &self,
        since_ms: i64,
        until_ms: i64,
        max: usize,
        mut visit: impl FnMut(RecordSummary),
    ) -> usize {
        let end = (until_ms.max(0) as u64).to_be_bytes();
        let mut seen = 0;
        for entry in self.records.below(end, true) {
            let Ok((_, value)) = entry else { break };
            let Ok(summary) = serde_json::from_slice::<RecordSummary>(&value) else { continue };
            if summary.started_ms < since_ms || seen >= max {
                break;
            }
            seen += 1;
            visit(summary);
        }
        seen
    }

    pub fn get(&self, id: uuid::Uuid) -> Option<LogRecord> {
        let key = self.by_id.get(id.as_bytes()).ok()??;
        let value = self.records.get(key).ok()??;
        serde_json::from_slice(&value).ok()
    }
}

/// A record read only for its id (the rest of the JSON is skipped, not built).
#[derive(serde::Deserialize)]
struct RecordId {
    id: uuid::Uuid,
}

impl OutcomeObserver for InvocationLog {
    fn observe(&self, outcome: &Outcome) {
        let record = LogRecord::of(outcome, Utc::now());
        if self.sender.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "invocation log writer is behind; records dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests;
