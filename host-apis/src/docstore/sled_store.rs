//! The embedded document store: one sled tree per collection in the process's one sled `Db`,
//! documents stored as JSON under their `_id`. Writes to a collection are serialised by a
//! per-collection lock and flushed to disk (`flush_async`) before the call returns, so an
//! acknowledged write survives `kill -9`. All sled work (scans, checks, the batch that commits a
//! write) runs off the async workers ([`engine::scan`], `spawn_blocking`), within the
//! operation's [`Budget`], and a write's batch is applied whole or not at all.
//!
//! Reads never create storage: a collection that was never written to has no tree, and reading
//! it (or updating or deleting in it) answers as an empty collection would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::budget::Budget;
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
    /// Names of the collection trees that exist (read from the database at the first use), so
    /// that a read can tell a missing collection without opening, and so creating, its tree.
    trees: Mutex<Option<HashSet<Vec<u8>>>>,
}

impl SledDocuments {
    /// Uses the process's sled database (opened once by the runtime).
    pub fn new(db: sled::Db) -> Self {
        Self { db, locks: Mutex::new(HashMap::new()), trees: Mutex::new(None) }
    }

    fn tree_name(at: &CollectionRef) -> String {
        // JSON keeps the three names apart whatever characters they hold.
        let names = serde_json::json!([at.space, at.database, at.collection]);
        format!("{TREE_PREFIX}{names}")
    }

    /// The collection's tree, created when missing: for writes only.
    fn tree(&self, at: &CollectionRef) -> Result<sled::Tree, DocError> {
        let name = Self::tree_name(at);
        let tree = self.db.open_tree(&name).map_err(unavailable)?;
        self.with_trees(|trees| trees.insert(name.into_bytes()));
        Ok(tree)
    }

    /// The collection's tree if it exists; never creates one.
    fn existing_tree(&self, at: &CollectionRef) -> Result<Option<sled::Tree>, DocError> {
        let name = Self::tree_name(at);
        if !self.with_trees(|trees| trees.contains(name.as_bytes())) {
            return Ok(None);
        }
        self.db.open_tree(&name).map(Some).map_err(unavailable)
    }

    fn with_trees<T>(&self, work: impl FnOnce(&mut HashSet<Vec<u8>>) -> T) -> T {
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        let trees = trees.get_or_insert_with(|| {
            let names = self.db.tree_names().into_iter();
            names.filter(|n| n.starts_with(TREE_PREFIX.as_bytes())).map(|n| n.to_vec()).collect()
        });
        work(trees)
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

/// Runs blocking sled work off the async threads, at background priority.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DocError> + Send + 'static,
) -> Result<T, DocError> {
    crate::background::spawn(work)
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
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError> {
        let Some(tree) = self.existing_tree(at)? else { return Ok(Vec::new()) };
        engine::scan(|| engine::select(candidates(&tree, &query.filter), query, limits, budget))
    }

    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        budget: &Budget,
    ) -> Result<u64, DocError> {
        let Some(tree) = self.existing_tree(at)? else { return Ok(0) };
        engine::scan(|| engine::count(candidates(&tree, filter), filter, budget))
    }

    async fn insert(
        &self,
        at: &CollectionRef,
        documents: Vec<Document>,
        budget: &Budget,
    ) -> Result<(), DocError> {
        let tree = self.tree(at)?;
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let budget = budget.clone();
        blocking(move || {
            let mut batch = sled::Batch::default();
            for document in &documents {
                budget.check()?;
                let key = id_key(&document["_id"]);
                if tree.contains_key(&key).map_err(unavailable)? {
                    return Err(DocError::DuplicateKey(format!(
                        "E11000 duplicate key error: _id {key} already exists; nothing was inserted"
                    )));
                }
                batch.insert(key.as_bytes(), encode(document));
            }
            budget.commit()?;
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
        budget: &Budget,
    ) -> Result<WriteOutcome, DocError> {
        // Only an upsert can write into a collection that does not exist yet.
        let tree = if options.upsert { Some(self.tree(at)?) } else { self.existing_tree(at)? };
        let Some(tree) = tree else { return Ok(WriteOutcome::default()) };
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let (plan, wrote) = engine::scan(|| {
            let plan = engine::plan_update(
                candidates(&tree, filter),
                filter,
                change,
                options,
                limits,
                budget,
            )?;
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
            let wrote = !plan.changed.is_empty() || plan.upsert.is_some();
            if wrote {
                budget.commit()?;
                tree.apply_batch(batch).map_err(unavailable)?;
            }
            Ok::<_, DocError>((plan, wrote))
        })?;
        if wrote {
            self.flush().await?;
        }
        Ok(plan.into_outcome())
    }

    async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        many: bool,
        budget: &Budget,
    ) -> Result<Vec<Value>, DocError> {
        let Some(tree) = self.existing_tree(at)? else { return Ok(Vec::new()) };
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let ids = engine::scan(|| {
            let ids = engine::plan_delete(candidates(&tree, filter), filter, many, budget)?;
            if !ids.is_empty() {
                let mut batch = sled::Batch::default();
                for id in &ids {
                    batch.remove(id_key(id).as_bytes());
                }
                budget.commit()?;
                tree.apply_batch(batch).map_err(unavailable)?;
            }
            Ok::<_, DocError>(ids)
        })?;
        if !ids.is_empty() {
            self.flush().await?;
        }
        Ok(ids)
    }

    async fn drop_space(&self, space: &str) -> Result<(), DocError> {
        let prefix = format!("{TREE_PREFIX}[{}", Value::String(space.into()));
        for name in self.db.tree_names() {
            if name.starts_with(prefix.as_bytes()) {
                self.db.drop_tree(&name).map_err(unavailable)?;
                self.with_trees(|trees| trees.remove(name.as_ref()));
            }
        }
        self.flush().await
    }
}
