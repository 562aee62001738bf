//! The log of finished deliveries (`GET /admin/deliveries`): the last [`CAPACITY`], in memory
//! or in a state tree. In a tree it outlives a restart, and servers sharing their state
//! (`--state postgres://…`) write to one log, so any of them lists every delivery of the
//! cluster. Entries are keyed by the time they ended (milliseconds, big-endian) and a random
//! suffix, so they scan in time order; each server removes what is beyond the capacity every
//! [`TRIM_EVERY`] writes of its own, so the log holds at most a few hundred more.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use wasmfn_host_apis::state::{StateError, StateTree};

use super::DeliveryRecord;

/// How many finished deliveries the log keeps.
pub const CAPACITY: usize = 1000;
/// A server trims the log after this many writes of its own.
const TRIM_EVERY: u64 = 64;

/// Where the finished deliveries are kept.
#[derive(Debug)]
pub struct DeliveryLog(Kept);

#[derive(Debug)]
enum Kept {
    Memory(Mutex<VecDeque<DeliveryRecord>>),
    Tree { tree: StateTree, writes: AtomicU64 },
}

impl DeliveryLog {
    /// A log in memory: gone at exit, this server's only.
    pub fn memory() -> Self {
        Self(Kept::Memory(Mutex::default()))
    }

    /// A log in `tree`.
    pub fn in_tree(tree: StateTree) -> Self {
        Self(Kept::Tree { tree, writes: AtomicU64::new(0) })
    }

    /// Adds a finished delivery. A store that fails is logged: the delivery itself happened.
    pub async fn add(&self, record: DeliveryRecord) {
        match &self.0 {
            Kept::Memory(log) => {
                let mut log = log.lock().expect("delivery log lock");
                if log.len() == CAPACITY {
                    log.pop_front();
                }
                log.push_back(record);
            }
            Kept::Tree { tree, writes } => {
                let trim = writes.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1;
                let tree = tree.clone();
                let stored = tokio::task::spawn_blocking(move || {
                    let ended = chrono::DateTime::parse_from_rfc3339(&record.finished_at)
                        .map_or(0, |t| t.timestamp_millis().max(0) as u64);
                    let mut key = ended.to_be_bytes().to_vec();
                    key.extend_from_slice(&rand::random::<[u8; 8]>());
                    let value = serde_json::to_vec(&record).expect("a record serialises");
                    tree.insert(key, value)?;
                    if trim {
                        trim_tree(&tree)?;
                    }
                    Ok::<_, StateError>(())
                })
                .await;
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "could not save a delivery in the delivery log")
                    }
                    Err(error) => tracing::warn!(%error, "delivery log task failed"),
                }
            }
        }
    }

    /// The most recent finished deliveries (at most [`CAPACITY`]), oldest first.
    pub fn recent(&self) -> Result<Vec<DeliveryRecord>, StateError> {
        match &self.0 {
            Kept::Memory(log) => {
                Ok(log.lock().expect("delivery log lock").iter().cloned().collect())
            }
            Kept::Tree { tree, .. } => {
                let mut recent = Vec::with_capacity(CAPACITY);
                for entry in newest(tree).take(CAPACITY) {
                    let (_, value) = entry?;
                    match serde_json::from_slice(&value) {
                        Ok(record) => recent.push(record),
                        Err(error) => tracing::warn!(%error, "skipping an unreadable delivery"),
                    }
                }
                recent.reverse();
                Ok(recent)
            }
        }
    }
}

/// Removes the entries beyond the newest [`CAPACITY`].
fn trim_tree(tree: &StateTree) -> Result<(), StateError> {
    let mut old = Vec::new();
    for entry in newest(tree).skip(CAPACITY) {
        old.push((entry?.0, None));
    }
    if !old.is_empty() {
        tree.apply(old)?;
    }
    Ok(())
}

/// The entries of `tree`, newest first.
fn newest(tree: &StateTree) -> wasmfn_host_apis::state::Entries<'_> {
    tree.scan((Bound::Unbounded, Bound::Unbounded), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, at_ms: i64) -> DeliveryRecord {
        DeliveryRecord {
            source: format!("cron:default/t{n}"),
            invocation_id: uuid::Uuid::new_v4(),
            target: "127.0.0.1:9".into(),
            delivered: n.is_multiple_of(2),
            attempts: 1,
            status: Some(204),
            error: None,
            finished_at: chrono::DateTime::from_timestamp_millis(at_ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    fn tree() -> StateTree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        wasmfn_host_apis::state::sled_tree::open(&db, "deliveries").unwrap()
    }

    #[tokio::test]
    async fn a_stored_log_keeps_the_newest_in_time_order_and_outlives_its_server() {
        let tree = tree();
        let log = DeliveryLog::in_tree(tree.clone());
        let base = 1_780_000_000_000;
        // Written out of order (deliveries end in any order): listed by their end.
        let records: Vec<_> = (0..CAPACITY + 200).map(|n| record(n, base + n as i64)).collect();
        for chunk in records.chunks(2) {
            log.add(chunk[1].clone()).await;
            log.add(chunk[0].clone()).await;
        }
        // Another server's log on the same tree (a restart, or a server of the cluster).
        let recent = DeliveryLog::in_tree(tree.clone()).recent().unwrap();
        assert_eq!(recent, records[200..].to_vec());
        // Trimmed as it went: never far beyond the capacity.
        assert!(tree.len().unwrap() < CAPACITY + TRIM_EVERY as usize, "{}", tree.len().unwrap());
    }

    #[tokio::test]
    async fn a_memory_log_keeps_the_last_ones() {
        let log = DeliveryLog::memory();
        for n in 0..CAPACITY + 5 {
            log.add(record(n, 1_780_000_000_000 + n as i64)).await;
        }
        let recent = log.recent().unwrap();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].source, "cron:default/t5");
    }
}
