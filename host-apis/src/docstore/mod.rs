//! The document store: per-space collections of JSON documents, queried with MongoDB's query
//! language ([`query`], implemented once in Rust and shared by every backend).
//!
//! [`Documents`] is what the runtime calls: it parses and checks what a function sends, applies
//! the limits, assigns ids and tells [`ChangeListener`]s about every committed write. Behind it
//! sits a [`DocumentStore`] backend: [`sled_store::SledDocuments`] (embedded, the default) or
//! [`postgres::PostgresDocuments`] (shared by several nodes). Both evaluate queries with the same
//! [`engine`], so they answer alike; one test suite runs against each.

pub mod engine;
pub mod events;
pub mod objectid;
pub mod postgres;
pub mod query;
pub mod sled_store;
#[cfg(test)]
mod suite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

pub use events::{ChangeEvent, ChangeKind, ChangeListener};
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

/// A storage backend. Writes are durable when the call returns.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// `sled` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    async fn find(
        &self,
        at: &CollectionRef,
        query: &FindQuery,
        limits: &Limits,
    ) -> Result<Vec<Document>, DocError>;
    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        limits: &Limits,
    ) -> Result<u64, DocError>;
    /// Inserts all documents (each has an `_id`) or none.
    async fn insert(&self, at: &CollectionRef, documents: Vec<Document>) -> Result<(), DocError>;
    async fn update(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        change: &Change,
        options: UpdateOptions,
        limits: &Limits,
    ) -> Result<WriteOutcome, DocError>;
    /// Deletes the first (or every) matching document; returns the ids deleted.
    async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        many: bool,
        limits: &Limits,
    ) -> Result<Vec<Value>, DocError>;
    /// Removes every collection of a space (for tests and space deletion).
    async fn drop_space(&self, space: &str) -> Result<(), DocError>;
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
    listeners: Arc<std::sync::RwLock<Vec<Arc<dyn ChangeListener>>>>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents").field("backend", &self.store.backend()).finish()
    }
}

impl Documents {
    pub fn new(store: Arc<dyn DocumentStore>, limits: Limits) -> Self {
        Self { store, limits, listeners: Arc::default() }
    }

    /// Adds a listener told about every committed write (the event triggers' hook), from now on.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners.write().unwrap_or_else(|e| e.into_inner()).push(listener);
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
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
        let query = FindQuery {
            filter: Filter::parse(filter)?,
            projection: projection.map(Projection::parse).transpose()?,
            sort: sort.map(Sort::parse).transpose()?,
            skip,
            limit,
        };
        self.timed(self.store.find(at, &query, &self.limits)).await
    }

    pub async fn count(&self, at: &CollectionRef, filter: &Value) -> Result<u64, DocError> {
        let filter = Filter::parse(filter)?;
        self.timed(self.store.count(at, &filter, &self.limits)).await
    }

    /// Inserts every document or none; returns their ids in order.
    pub async fn insert(
        &self,
        at: &CollectionRef,
        documents: Vec<Value>,
    ) -> Result<Vec<Value>, DocError> {
        if documents.is_empty() {
            return Err(DocError::Invalid("documents must be a non-empty list".into()));
        }
        if documents.len() > self.limits.max_batch {
            return Err(DocError::LimitExceeded(format!(
                "at most {} documents per insert",
                self.limits.max_batch
            )));
        }
        let mut checked = Vec::with_capacity(documents.len());
        let mut ids = Vec::with_capacity(documents.len());
        for document in documents {
            let Value::Object(mut document) = document else {
                return Err(DocError::Invalid("a document must be a JSON object".into()));
            };
            if !document.contains_key("_id") {
                document.shift_insert(0, "_id".into(), objectid::ObjectId::new().to_json());
            }
            engine::check_document(&document, &self.limits)?;
            let id = document["_id"].clone();
            if ids.iter().any(|seen| engine::id_key(seen) == engine::id_key(&id)) {
                return Err(DocError::DuplicateKey(format!(
                    "E11000 duplicate key error: _id {id} appears twice in the batch"
                )));
            }
            ids.push(id);
            checked.push(document);
        }
        let written: Vec<Written> = checked
            .iter()
            .map(|d| Written {
                kind: ChangeKind::Insert,
                id: d["_id"].clone(),
                document: Some(d.clone()),
            })
            .collect();
        self.timed(self.store.insert(at, checked)).await?;
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
        let filter = Filter::parse(filter)?;
        let ids = self.timed(self.store.delete(at, &filter, many, &self.limits)).await?;
        let count = ids.len() as u64;
        let written =
            ids.into_iter().map(|id| Written { kind: ChangeKind::Delete, id, document: None });
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
        let filter = Filter::parse(filter)?;
        let outcome =
            self.timed(self.store.update(at, &filter, &change, options, &self.limits)).await?;
        self.notify(at, outcome.written);
        Ok(UpdateResult {
            matched: outcome.matched,
            modified: outcome.modified,
            upserted_id: outcome.upserted_id,
        })
    }

    async fn timed<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, DocError>>,
    ) -> Result<T, DocError> {
        // The backends check the deadline while they scan; this bounds waiting on I/O too.
        let grace = self.limits.max_query_time + Duration::from_secs(1);
        match tokio::time::timeout(grace, operation).await {
            Ok(result) => result,
            Err(_) => Err(engine::time_exceeded(&self.limits)),
        }
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
            };
            for listener in &listeners {
                listener.changed(&event);
            }
        }
    }
}
