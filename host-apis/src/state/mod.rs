//! The node state store: where a node keeps its records (deployments, API keys, configuration,
//! triggers, subscriptions, async jobs, the invocation log, signing keys). Records live in named
//! trees of byte keys and values, kept in key order, behind one trait with two backends:
//!
//! - [`sled`](sled_tree) (the default): the node's own embedded database, nothing shared;
//! - [`postgres`]: one table shared by every node of a cluster (`wasmfn serve --state
//!   postgres://…`), with change notices (`LISTEN`/`NOTIFY`) so that a node caching records
//!   (configuration, deployments) learns what another node changed.
//!
//! The trait is synchronous, as sled is: records are small and callers hold no lock across a
//! call. The PostgreSQL backend runs its statements on a runtime of its own and bounds each by a
//! timeout, so a caller on any thread (or any Tokio runtime) waits at most that long.

pub mod postgres;
#[cfg(feature = "sled")]
pub mod sled_tree;

use std::ops::Bound;
use std::sync::Arc;

/// Why the state store failed. The message names no host internals (paths, URLs).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries in key order (or reverse key order), read lazily.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<Entry, StateError>> + Send + 'a>;

/// One named tree of records, in byte order of their keys.
pub trait KvTree: Send + Sync + std::fmt::Debug {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets `key` to `value`.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Sets `key` to `value` unless it has a value already; returns the value it keeps (the
    /// existing one, or `value`). Nodes starting at once agree on one value this way.
    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StateError>;
    /// Removes `key`, returning the value it had.
    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets `key` to `new` (`None`: removes it) if its value is `expected` (`None`: absent);
    /// true when it did. Of several nodes swapping the same value at once, one succeeds.
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError>;
    /// Sets and removes (`None`) several keys at once: all or none.
    fn apply(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError>;
    /// The entries with keys in `range`, ascending or (`reverse`) descending.
    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> Entries<'_>;
    /// How many entries the tree has. In sled this reads the whole tree (~2.5 s at a million
    /// invocation log records): a caller that needs it often keeps its own count, unless the
    /// tree is [`shared`](KvTree::shared).
    fn len(&self) -> Result<usize, StateError>;
    /// Makes the writes so far durable (a no-op where each write already is).
    fn flush(&self) -> Result<(), StateError>;
    /// For a time-partitioned tree (entries filed by a time in milliseconds, see
    /// [`postgres::TimeIn`]): drops at once the whole days that ended at or before `ms`, with
    /// the entries of every tree partitioned alongside, and says how many days went. `None`:
    /// this tree is not partitioned; remove old entries one by one.
    fn drop_days_before(&self, _ms: u64) -> Result<Option<usize>, StateError> {
        Ok(None)
    }

    /// Whether other nodes write this tree too (a cluster's shared store): a count kept by
    /// one node would miss their writes.
    fn shared(&self) -> bool {
        false
    }

    fn contains_key(&self, key: &[u8]) -> Result<bool, StateError> {
        Ok(self.get(key)?.is_some())
    }
    fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.len()? == 0)
    }
    /// Every entry, in key order.
    fn iter(&self) -> Entries<'_> {
        self.scan((Bound::Unbounded, Bound::Unbounded), false)
    }
}

/// A tree, shared: [`KvTree`] with keys and values taken as anything byte-like.
#[derive(Clone, Debug)]
pub struct StateTree(Arc<dyn KvTree>);

impl StateTree {
    pub fn new(tree: impl KvTree + 'static) -> Self {
        Self(Arc::new(tree))
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StateError> {
        self.0.get(key.as_ref())
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StateError> {
        self.0.insert(key.as_ref(), value.as_ref())
    }

    /// See [`KvTree::insert_new`].
    pub fn insert_new(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, StateError> {
        self.0.insert_new(key.as_ref(), value.as_ref())
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StateError> {
        self.0.remove(key.as_ref())
    }

    /// See [`KvTree::compare_and_swap`].
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        self.0.compare_and_swap(key.as_ref(), expected, new)
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StateError> {
        self.0.contains_key(key.as_ref())
    }

    pub fn apply(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        self.0.apply(batch)
    }

    pub fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> Entries<'_> {
        self.0.scan(range, reverse)
    }

    /// The entries with keys below `end`, ascending or (`reverse`) descending.
    pub fn below(&self, end: impl AsRef<[u8]>, reverse: bool) -> Entries<'_> {
        self.0.scan((Bound::Unbounded, Bound::Excluded(end.as_ref().to_vec())), reverse)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Entries<'_> {
        self.0.iter()
    }

    pub fn len(&self) -> Result<usize, StateError> {
        self.0.len()
    }

    pub fn is_empty(&self) -> Result<bool, StateError> {
        self.0.is_empty()
    }

    /// See [`KvTree::shared`].
    pub fn shared(&self) -> bool {
        self.0.shared()
    }

    pub fn flush(&self) -> Result<(), StateError> {
        self.0.flush()
    }

    /// See [`KvTree::drop_days_before`].
    pub fn drop_days_before(&self, ms: u64) -> Result<Option<usize>, StateError> {
        self.0.drop_days_before(ms)
    }
}

/// What another node changed in a watched tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// `key` of `tree` was written or removed.
    Key { tree: String, key: Vec<u8> },
    /// Notices may have been missed (the listening connection was lost and made again): read
    /// everything cached again.
    Resync,
}

/// The leases of a job queue shared by the nodes of a cluster: which node runs each unfinished
/// job, until when (milliseconds since 1970). The node running a job renews its lease (a
/// heartbeat) well before it ends; a lease not renewed in time is claimed by another node,
/// which carries on with the job. Claims never overlap: of nodes claiming at once, each gets
/// other leases (in PostgreSQL, `FOR UPDATE SKIP LOCKED`).
pub trait LeaseTable: Send + Sync + std::fmt::Debug {
    /// A new lease on `id` for `node`; false when `id` has one already.
    fn take(&self, id: &[u8], node: &str, until_ms: i64) -> Result<bool, StateError>;
    /// Extends `node`'s leases on `ids` to `until_ms`; returns those it still held (the others
    /// were claimed by another node after they expired).
    fn renew(&self, node: &str, ids: &[Vec<u8>], until_ms: i64)
        -> Result<Vec<Vec<u8>>, StateError>;
    /// Claims for `node`, until `until_ms`, at most `limit` leases that ended before `now_ms`
    /// (those that ended first, when there are more); returns each claimed id, in no order,
    /// with the node that held it.
    fn claim_expired(
        &self,
        node: &str,
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, String)>, StateError>;
    /// Ends `node`'s lease on `id` (its job is done); nothing when another node holds it.
    fn release(&self, id: &[u8], node: &str) -> Result<(), StateError>;
    /// Ends `node`'s leases now without removing them, for any node to claim: those of `ids`,
    /// or (`None`) all of them (the node's run before a restart held them).
    fn expire(&self, node: &str, ids: Option<&[Vec<u8>]>) -> Result<usize, StateError>;
}

/// Where a node's trees are.
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// The tree `name`, made when first written.
    fn tree(&self, name: &str) -> Result<StateTree, StateError>;
    /// What other nodes change in the trees this backend watches (`None`: nothing is shared,
    /// so nothing changes behind the node's back).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StateChange>>;
    /// Whether the store answers now (for `/readyz`).
    fn healthy(&self) -> bool;
    /// A short name for messages (`sled`, `postgres`).
    fn kind(&self) -> &'static str;
    /// The leases of the shared queue `queue`; `None` where nothing is shared.
    fn leases(&self, _queue: &str) -> Option<Arc<dyn LeaseTable>> {
        None
    }
}

/// `(Bound, Bound)` for the keys starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

#[cfg(all(test, feature = "sled"))]
mod tests;
