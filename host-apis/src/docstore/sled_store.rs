//! The embedded document store: one sled tree per collection in the process's one sled `Db`,
//! documents stored as JSON under their `_id`. Writes to a collection are serialised by a
//! per-collection lock and flushed to disk (`flush_async`) before the call returns, so an
//! acknowledged write survives `kill -9`. Queries scan the collection on a blocking thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::engine::{self, id_key};
use super::query::Filter;
use super::{
    Change, CollectionRef, DocError, Document, DocumentStore, FindQuery, Limits, UpdateOptions,
    WriteOutcome,
};

const TREE_PREFIX: &str = "docs:";

pub struct SledDocuments {
    db: sled::Db,
    locks: Mutex<HashMap<CollectionRef, Arc<tokio::sync::Mutex<()>>>>,
}

impl SledDocuments {
    /// Uses the process's sled database (opened once by the runtime).
    pub fn new(db: sled::Db) -> Self {
        Self { db, locks: Mutex::new(HashMap::new()) }
    }

    fn tree_name(at: &CollectionRef) -> String {
        // JSON keeps the three names apart whatever characters they hold.
        let names = serde_json::json!([at.space, at.database, at.collection]);
        format!("{TREE_PREFIX}{names}")
    }

    fn tree(&self, at: &CollectionRef) -> Result<sled::Tree, DocError> {
        self.db.open_tree(Self::tree_name(at)).map_err(unavailable)
    }

    fn lock(&self, at: &CollectionRef) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(at.clone()).or_default().clone()
    }

    async fn flush(&self) -> Result<(), DocError> {
        self.db.flush_async().await.map(|_| ()).map_err(unavailable)
    }
}

fn unavailable(error: sled::Error) -> DocError {
    tracing::error!(%error, "document store (sled) failed");
    DocError::Unavailable("the document store failed; try again".into())
}

fn decode(bytes: &[u8]) -> Result<Document, DocError> {
    serde_json::from_slice(bytes)
        .map_err(|_| DocError::Unavailable("a stored document could not be read".into()))
}

fn encode(document: &Document) -> Vec<u8> {
    serde_json::to_vec(document).unwrap_or_default()
}

/// The documents a filter can match: one point lookup when it pins `_id`, else the whole tree.
fn candidates(
    tree: &sled::Tree,
    filter: &Filter,
) -> Box<dyn Iterator<Item = Result<Document, DocError>>> {
    if let Some(id) = filter.id_equality() {
        let found = tree.get(id_key(id)).map_err(unavailable);
        return Box::new(found.transpose().map(|r| r.and_then(|v| decode(&v))).into_iter());
    }
    Box::new(tree.iter().values().map(|r| r.map_err(unavailable).and_then(|v| decode(&v))))
}

/// Runs blocking sled work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DocError> + Send + 'static,
) -> Result<T, DocError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(DocError::Unavailable("the document store failed".into())))
}

#[async_trait]
impl DocumentStore for SledDocuments {
    fn backend(&self) -> &'static str {
        "sled"
    }

    async fn find(
        &self,
        at: &CollectionRef,
        query: &FindQuery,
        limits: &Limits,
    ) -> Result<Vec<Document>, DocError> {
        let tree = self.tree(at)?;
        engine::scan(|| engine::select(candidates(&tree, &query.filter), query, limits))
    }

    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        limits: &Limits,
    ) -> Result<u64, DocError> {
        let tree = self.tree(at)?;
        engine::scan(|| engine::count(candidates(&tree, filter), filter, limits))
    }

    async fn insert(&self, at: &CollectionRef, documents: Vec<Document>) -> Result<(), DocError> {
        let tree = self.tree(at)?;
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        blocking(move || {
            let mut batch = sled::Batch::default();
            for document in &documents {
                let key = id_key(&document["_id"]);
                if tree.contains_key(&key).map_err(unavailable)? {
                    return Err(DocError::DuplicateKey(format!(
                        "E11000 duplicate key error: _id {key} already exists"
                    )));
                }
                batch.insert(key.as_bytes(), encode(document));
            }
            tree.apply_batch(batch).map_err(unavailable)
        })
        .await?;
        self.flush().await
    }

    async fn update(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        change: &Change,
        options: UpdateOptions,
        limits: &Limits,
    ) -> Result<WriteOutcome, DocError> {
        let tree = self.tree(at)?;
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let plan = engine::scan(|| {
            engine::plan_update(candidates(&tree, filter), filter, change, options, limits)
        })?;
        let mut batch = sled::Batch::default();
        for document in &plan.changed {
            batch.insert(id_key(&document["_id"]).as_bytes(), encode(document));
        }
        if let Some(document) = &plan.upsert {
            let key = id_key(&document["_id"]);
            if tree.contains_key(&key).map_err(unavailable)? {
                return Err(DocError::DuplicateKey(format!(
                    "E11000 duplicate key error: _id {key} already exists"
                )));
            }
            batch.insert(key.as_bytes(), encode(document));
        }
        if !plan.changed.is_empty() || plan.upsert.is_some() {
            tree.apply_batch(batch).map_err(unavailable)?;
            self.flush().await?;
        }
        Ok(plan.into_outcome())
    }

    async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        many: bool,
        limits: &Limits,
    ) -> Result<Vec<Value>, DocError> {
        let tree = self.tree(at)?;
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let ids =
            engine::scan(|| engine::plan_delete(candidates(&tree, filter), filter, many, limits))?;
        if !ids.is_empty() {
            let mut batch = sled::Batch::default();
            for id in &ids {
                batch.remove(id_key(id).as_bytes());
            }
            tree.apply_batch(batch).map_err(unavailable)?;
            self.flush().await?;
        }
        Ok(ids)
    }

    async fn drop_space(&self, space: &str) -> Result<(), DocError> {
        let prefix = format!("{TREE_PREFIX}[{}", Value::String(space.into()));
        for name in self.db.tree_names() {
            if name.starts_with(prefix.as_bytes()) {
                self.db.drop_tree(&name).map_err(unavailable)?;
            }
        }
        self.flush().await
    }
}
