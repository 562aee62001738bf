//! The document store: per-space collections of JSON documents, queried with MongoDB's query
//! language ([`query`], implemented once in Rust and shared by every backend).
//!
//! [`Documents`] is what the runtime calls: it parses and checks what a function sends, applies
//! the limits, assigns ids and tells [`ChangeListener`]s about every committed write. Behind it
//! sits a [`DocumentStore`] backend: [`sled_store::SledDocuments`] (embedded, the default) or
//! [`postgres::PostgresDocuments`] (shared by several nodes). Both evaluate queries with the same
//! [`engine`], so they answer alike; one test suite runs against each.

#[cfg(all(test, feature = "sled"))]
mod bounds_tests;
pub mod budget;
pub mod engine;
pub mod events;
pub mod json;
pub mod objectid;
pub mod postgres;
pub mod query;
#[cfg(all(test, feature = "sled"))]
mod quota_tests;
#[cfg(feature = "sled")]
pub mod sled_store;
#[cfg(all(test, feature = "sled"))]
pub(crate) mod suite;

/// Opens the sled database in `path` again after a test dropped its handle. sled's background
/// threads let go of the directory's lock a moment after the last handle is dropped, so an
/// immediate reopen can fail with "could not acquire lock"; this waits for the lock (bounded).
#[cfg(all(test, feature = "sled"))]
pub(crate) fn reopen_sled(path: &std::path::Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(sled::Error::Io(error))
                if error.to_string().contains("acquire lock") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("reopening the sled database: {error}"),
        }
    }
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

pub use budget::{Budget, CallDeadline};
pub use events::{ChangeEvent, ChangeKind, ChangeListener};
pub use json::{parse_json, JsonError};
use query::{Filter, Projection, QueryError, Sort, Update};

/// One stored document.
pub type Document = serde_json::Map<String, Value>;

/// Where a collection lives: the space, the database inside it (the caller's company, or the
/// space's own when the call has none) and the collection (one per function by default).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionRef {
    pub space: String,
    pub database: String,
    pub collection: String,
}

/// The longest database (company id) and collection name, in bytes: names are kept in the
/// storage's keys, so a caller must not choose their size.
pub const MAX_NAME_BYTES: usize = 64;

/// Whether `name` may name a database (a company's public id): 1 to [`MAX_NAME_BYTES`] bytes.
pub fn is_database_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES
}

impl CollectionRef {
    /// Refuses names over [`MAX_NAME_BYTES`] (the runtime checks them where they enter; this
    /// keeps every path to the store bounded).
    fn check(&self) -> Result<(), DocError> {
        if !is_database_name(&self.database) {
            return Err(DocError::Invalid(format!(
                "the database (company id) must be 1 to {MAX_NAME_BYTES} bytes"
            )));
        }
        if self.collection.is_empty() || self.collection.len() > MAX_NAME_BYTES {
            return Err(DocError::Invalid(format!(
                "a collection name must be 1 to {MAX_NAME_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Why a document operation failed; each maps to a `pymongo.errors` exception in Python.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    DuplicateKey(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// The write would take its space past a storage quota ([`SpaceQuota`]); nothing was
    /// written. The message starts with `quota exceeded:`.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<QueryError> for DocError {
    fn from(error: QueryError) -> Self {
        Self::Invalid(error.0)
    }
}

/// Bounds on what one operation may do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A stored document, as JSON, at most this many bytes.
    pub max_document_bytes: usize,
    /// The documents one `find` returns, as JSON, at most this many bytes.
    pub max_result_bytes: usize,
    /// Matching documents held for an in-memory sort, at most this many bytes.
    pub max_sort_bytes: usize,
    /// One operation (a query or a write with its query) at most this long.
    pub max_query_time: Duration,
    /// Documents one `insert` may carry.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 1 << 20,
            max_result_bytes: 16 << 20,
            max_sort_bytes: 64 << 20,
            max_query_time: Duration::from_secs(5),
            max_batch: 10_000,
        }
    }
}

/// How much one space may keep in the document store (the embedded store enforces it; see
/// docs/limits.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceQuota {
    /// Documents in all the space's collections.
    pub max_documents: u64,
    /// Their stored JSON, in bytes.
    pub max_bytes: u64,
    /// Collections (company database x collection name) the space has written to.
    pub max_collections: u64,
}

impl Default for SpaceQuota {
    fn default() -> Self {
        Self { max_documents: 1_000_000, max_bytes: 1 << 30, max_collections: 1_000 }
    }
}

/// What one space keeps in the document store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceUsage {
    pub documents: u64,
    pub bytes: u64,
    pub collections: u64,
}

/// A parsed `find`.
#[derive(Debug)]
pub struct FindQuery {
    pub filter: Filter,
    pub projection: Option<Projection>,
    pub sort: Option<Sort>,
    pub skip: u64,
    /// 0: no limit.
    pub limit: u64,
}

/// What an update does to each matched document.
#[derive(Debug)]
pub enum Change {
    Update(Update),
    Replace(Document),
}

/// A committed write to one document, as the backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub kind: ChangeKind,
    pub id: Value,
    /// The document after the write (none for deletes).
    pub document: Option<Document>,
    /// The document as stored before the write: the one an update or replace changed, or the
    /// one a delete removed; none for inserts. It is the copy the backend read to plan the
    /// write, moved here, never read again.
    pub previous: Option<Document>,
}

/// The outcome of an update or replace.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteOutcome {
    pub matched: u64,
    pub modified: u64,
    pub upserted_id: Option<Value>,
    pub written: Vec<Written>,
}

/// The result of an update as a function sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateResult {
    pub matched: u64,
    pub modified: u64,
    pub upserted_id: Option<Value>,
}

/// A storage backend. Writes are durable when the call returns. Every operation does its work
/// within `budget` (checked per document), off the async workers, and commits a write only
/// through [`Budget::commit`].
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// `sled` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    async fn find(
        &self,
        at: &CollectionRef,
        query: &FindQuery,
        limits: &Limits,
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError>;
    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        budget: &Budget,
    ) -> Result<u64, DocError>;
    /// Inserts all documents (each has an `_id`) or none.
    async fn insert(
        &self,
        at: &CollectionRef,
        documents: Vec<Document>,
        budget: &Budget,
    ) -> Result<(), DocError>;
    async fn update(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        change: &Change,
        options: UpdateOptions,
        limits: &Limits,
        budget: &Budget,
    ) -> Result<WriteOutcome, DocError>;
    /// Deletes the first (or every) matching document; returns the documents deleted, as they
    /// were stored (the change hook reports them as the previous documents).
    async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        many: bool,
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError>;
    /// Removes every collection of a space (for tests and space deletion).
    async fn drop_space(&self, space: &str) -> Result<(), DocError>;
    /// Whether the backend answers now (`/readyz`); the embedded store always does.
    async fn check(&self) -> Result<(), DocError> {
        Ok(())
    }
    /// Makes the indexes a function declares (`[[documents.index]]`: dotted paths) for its
    /// collection in every database of `space`, if they are not there yet. The embedded store
    /// scans and keeps none.
    async fn declare_indexes(
        &self,
        _space: &str,
        _collection: &str,
        _paths: &[String],
    ) -> Result<(), DocError> {
        Ok(())
    }
    /// What each space keeps, by space name, when the backend enforces [`SpaceQuota`]s (the
    /// embedded store does; PostgreSQL does not, and reports nothing).
    fn usage(&self) -> Vec<(String, SpaceUsage)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    pub many: bool,
    pub upsert: bool,
}

/// The document store as the runtime uses it: checks, limits, ids and change events around a
/// backend.
#[derive(Clone)]
pub struct Documents {
    store: Arc<dyn DocumentStore>,
    limits: Limits,
    /// The deadline of the caller (a function invocation, a session request), if any.
    call_deadline: Option<CallDeadline>,
    listeners: Arc<std::sync::RwLock<Vec<Arc<dyn ChangeListener>>>>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents").field("backend", &self.store.backend()).finish()
    }
}

impl Documents {
    pub fn new(store: Arc<dyn DocumentStore>, limits: Limits) -> Self {
        Self { store, limits, call_deadline: None, listeners: Arc::default() }
    }

    /// The same store for a caller that must be done by `deadline.at`: each operation's budget
    /// ends then at the latest (the store's own `max_query_time` still applies).
    pub fn within(&self, deadline: CallDeadline) -> Self {
        Self { call_deadline: Some(deadline), ..self.clone() }
    }

    fn budget(&self) -> Budget {
        Budget::new(&self.limits, self.call_deadline)
    }

    /// Adds a listener told about every committed write (the event triggers' hook), from now on.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners.write().unwrap_or_else(|e| e.into_inner()).push(listener);
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Whether the backend answers now (for `/readyz`).
    pub async fn check(&self) -> Result<(), DocError> {
        self.store.check().await
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// See [`DocumentStore::declare_indexes`]; may take as long as building the index takes.
    pub async fn declare_indexes(
        &self,
        space: &str,
        collection: &str,
        paths: &[String],
    ) -> Result<(), DocError> {
        self.store.declare_indexes(space, collection, paths).await
    }

    /// What each space keeps, for `/metrics` (empty when the backend keeps no quotas).
    pub fn usage(&self) -> Vec<(String, SpaceUsage)> {
        self.store.usage()
    }

    pub async fn find(
        &self,
        at: &CollectionRef,
        filter: &Value,
        projection: Option<&Value>,
        sort: Option<&Value>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Document>, DocError> {
        at.check()?;
        let query = FindQuery {
            filter: Filter::parse(filter)?,
            projection: projection.map(Projection::parse).transpose()?,
            sort: sort.map(Sort::parse).transpose()?,
            skip,
            limit,
        };
        let budget = self.budget();
        self.timed(&budget, self.store.find(at, &query, &self.limits, &budget)).await
    }

    pub async fn count(&self, at: &CollectionRef, filter: &Value) -> Result<u64, DocError> {
        at.check()?;
        let filter = Filter::parse(filter)?;
        let budget = self.budget();
        self.timed(&budget, self.store.count(at, &filter, &budget)).await
    }

    /// Inserts every document or none; returns their ids in order.
    pub async fn insert(
        &self,
        at: &CollectionRef,
        documents: Vec<Value>,
    ) -> Result<Vec<Value>, DocError> {
        at.check()?;
        if documents.is_empty() {
            return Err(DocError::Invalid("documents must be a non-empty list".into()));
        }
        if documents.len() > self.limits.max_batch {
            return Err(DocError::LimitExceeded(format!(
                "at most {} documents per insert",
                self.limits.max_batch
            )));
        }
        let budget = self.budget();
        let checked = engine::scan(|| engine::prepare_insert(documents, &self.limits, &budget))?;
        let ids: Vec<Value> = checked.iter().map(|d| d["_id"].clone()).collect();
        let written: Vec<Written> = if self.has_listeners() {
            checked
                .iter()
                .map(|d| Written {
                    kind: ChangeKind::Insert,
                    id: d["_id"].clone(),
                    document: Some(d.clone()),
                    previous: None,
                })
                .collect()
        } else {
            Vec::new()
        };
        self.timed(&budget, self.store.insert(at, checked, &budget)).await?;
        self.notify(at, written);
        Ok(ids)
    }

    pub async fn update(
        &self,
        at: &CollectionRef,
        filter: &Value,
        update: &Value,
        options: UpdateOptions,
    ) -> Result<UpdateResult, DocError> {
        let change = Change::Update(Update::parse(update)?);
        self.write(at, filter, change, options).await
    }

    pub async fn replace(
        &self,
        at: &CollectionRef,
        filter: &Value,
        replacement: &Value,
        upsert: bool,
    ) -> Result<UpdateResult, DocError> {
        let replacement = query::check_replacement(replacement)?;
        engine::check_document(&replacement, &self.limits)?;
        let options = UpdateOptions { many: false, upsert };
        self.write(at, filter, Change::Replace(replacement), options).await
    }

    pub async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Value,
        many: bool,
    ) -> Result<u64, DocError> {
        at.check()?;
        let filter = Filter::parse(filter)?;
        let budget = self.budget();
        let deleted = self.timed(&budget, self.store.delete(at, &filter, many, &budget)).await?;
        let count = deleted.len() as u64;
        let written = deleted.into_iter().map(|document| Written {
            kind: ChangeKind::Delete,
            id: engine::id_of(&document),
            document: None,
            previous: Some(document),
        });
        self.notify(at, written.collect());
        Ok(count)
    }

    async fn write(
        &self,
        at: &CollectionRef,
        filter: &Value,
        change: Change,
        options: UpdateOptions,
    ) -> Result<UpdateResult, DocError> {
        at.check()?;
        let filter = Filter::parse(filter)?;
        let budget = self.budget();
        let update = self.store.update(at, &filter, &change, options, &self.limits, &budget);
        let outcome = self.timed(&budget, update).await?;
        self.notify(at, outcome.written);
        Ok(UpdateResult {
            matched: outcome.matched,
            modified: outcome.modified,
            upserted_id: outcome.upserted_id,
        })
    }

    /// Runs `operation` within `budget`. The backends check the budget per document and per
    /// comparison; this also bounds waiting (for a collection's write lock, on I/O). A write
    /// whose commit started is waited for, so that its outcome is the caller's: a write is never
    /// committed after its caller was told it timed out.
    async fn timed<T>(
        &self,
        budget: &Budget,
        operation: impl std::future::Future<Output = Result<T, DocError>>,
    ) -> Result<T, DocError> {
        let grace =
            budget.deadline().saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        tokio::pin!(operation);
        match tokio::time::timeout(grace, &mut operation).await {
            Ok(result) => result,
            Err(_) if budget.abandon() => Err(budget.exceeded()),
            Err(_) => operation.await,
        }
    }

    fn has_listeners(&self) -> bool {
        !self.listeners.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    fn notify(&self, at: &CollectionRef, written: Vec<Written>) {
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner()).clone();
        if listeners.is_empty() {
            return;
        }
        for write in written {
            let event = ChangeEvent {
                kind: write.kind,
                collection: at.clone(),
                id: write.id,
                document: write.document,
                previous: write.previous,
            };
            for listener in &listeners {
                listener.changed(&event);
            }
        }
    }
}
