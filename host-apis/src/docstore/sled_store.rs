//! The embedded document store: one sled tree per collection in the process's one sled `Db`,
//! documents stored as JSON under their `_id`. Writes to a collection are serialised by a
//! per-collection lock and flushed to disk (`flush_async`) before the call returns, so an
//! acknowledged write survives `kill -9`. All sled work (scans, checks, the batch that commits a
//! write) runs off the async workers ([`engine::scan`], `spawn_blocking`), within the
//! operation's [`Budget`], and a write's batch is applied whole or not at all.
//!
//! Reads never create storage: a collection that was never written to has no tree, and reading
//! it (or updating or deleting in it) answers as an empty collection would.
//!
//! Each space's usage (documents, their stored JSON bytes, collections) is kept in a
//! [`Ledger`] against its [`SpaceQuota`]: counted once at open by reading every collection
//! (linear in the stored data), then kept up to date by every write, which reserves its growth
//! before it commits and is refused, writing nothing, when that would pass a limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::budget::Budget;
use super::engine::{self, id_key};
use super::query::Filter;
use super::{
    Change, CollectionRef, DocError, Document, DocumentStore, FindQuery, Limits, SpaceQuota,
    SpaceUsage, UpdateOptions, WriteOutcome,
};
use crate::quota::{signed, Delta, Ledger, Refusal, Reservation};

const TREE_PREFIX: &str = "docs:";

/// The ledger's measures, in order.
const DOCUMENTS: usize = 0;
const BYTES: usize = 1;
const COLLECTIONS: usize = 2;

pub struct SledDocuments {
    shared: Shared,
    locks: Mutex<HashMap<CollectionRef, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a write needs off the async workers.
#[derive(Clone)]
struct Shared {
    db: sled::Db,
    /// Names of the collection trees that exist, so that a read can tell a missing collection
    /// without opening, and so creating, its tree.
    trees: Arc<Mutex<HashSet<Vec<u8>>>>,
    ledger: Arc<Ledger<3>>,
}

impl SledDocuments {
    /// Uses the process's sled database (opened once by the runtime), limiting each space to
    /// `quota`. Counts what every space keeps by reading every collection once.
    pub fn open(db: sled::Db, quota: SpaceQuota) -> Result<Self, DocError> {
        let trees: HashSet<Vec<u8>> = db
            .tree_names()
            .into_iter()
            .filter(|n| n.starts_with(TREE_PREFIX.as_bytes()))
            .map(|n| n.to_vec())
            .collect();
        let ledger = Ledger::new([quota.max_documents, quota.max_bytes, quota.max_collections]);
        let mut usage: BTreeMap<String, [u64; 3]> = BTreeMap::new();
        for name in &trees {
            let Some(space) = space_of(name) else { continue };
            let used = usage.entry(space).or_default();
            used[COLLECTIONS] += 1;
            for value in db.open_tree(name).map_err(unavailable)?.iter().values() {
                used[DOCUMENTS] += 1;
                used[BYTES] += value.map_err(unavailable)?.len() as u64;
            }
        }
        for (space, used) in usage {
            ledger.set(&space, used);
        }
        let shared = Shared { db, trees: Arc::new(Mutex::new(trees)), ledger };
        Ok(Self { shared, locks: Mutex::new(HashMap::new()) })
    }

    /// The collection's tree if it exists; never creates one.
    fn existing_tree(&self, at: &CollectionRef) -> Result<Option<sled::Tree>, DocError> {
        let name = tree_name(at);
        if !self.shared.with_trees(|trees| trees.contains(name.as_bytes())) {
            return Ok(None);
        }
        self.shared.db.open_tree(&name).map(Some).map_err(unavailable)
    }

    fn lock(&self, at: &CollectionRef) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(at.clone()).or_default().clone()
    }

    async fn flush(&self) -> Result<(), DocError> {
        self.shared.db.flush_async().await.map(|_| ()).map_err(unavailable)
    }
}

fn tree_name(at: &CollectionRef) -> String {
    // JSON keeps the three names apart whatever characters they hold.
    let names = serde_json::json!([at.space, at.database, at.collection]);
    format!("{TREE_PREFIX}{names}")
}

/// The space of a collection tree, from its name.
fn space_of(name: &[u8]) -> Option<String> {
    let names = name.strip_prefix(TREE_PREFIX.as_bytes())?;
    let (space, _, _): (String, String, String) = serde_json::from_slice(names).ok()?;
    Some(space)
}

impl Shared {
    fn with_trees<T>(&self, work: impl FnOnce(&mut HashSet<Vec<u8>>) -> T) -> T {
        work(&mut self.trees.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn reserve(&self, space: &str, delta: Delta<3>) -> Result<Reservation<3>, DocError> {
        self.ledger.reserve(space, delta).map_err(|refusal| quota_exceeded(&refusal))
    }

    /// Commits `batch` to the collection (creating its tree when `existing` is none), within
    /// the space's quota: `delta` is what the batch changes of the space's usage. Called with
    /// the collection's lock held, so `existing` and `delta` are still true.
    fn commit(
        &self,
        at: &CollectionRef,
        existing: Option<sled::Tree>,
        batch: sled::Batch,
        delta: Delta<3>,
        budget: &Budget,
    ) -> Result<(), DocError> {
        let collection = match existing {
            Some(_) => None,
            None => Some(self.reserve(&at.space, [0, 0, 1])?),
        };
        let reservation = self.reserve(&at.space, delta)?;
        budget.commit()?;
        let tree = match existing {
            Some(tree) => tree,
            None => {
                let name = tree_name(at);
                let tree = self.db.open_tree(&name).map_err(unavailable)?;
                self.with_trees(|trees| trees.insert(name.into_bytes()));
                tree
            }
        };
        // The tree exists from here on, whatever the batch does.
        if let Some(collection) = collection {
            collection.keep();
        }
        tree.apply_batch(batch).map_err(unavailable)?;
        reservation.keep();
        Ok(())
    }
}

fn quota_exceeded(refusal: &Refusal) -> DocError {
    let what = ["documents", "bytes of documents", "collections"][refusal.measure];
    DocError::QuotaExceeded(format!(
        "quota exceeded: the space holds {} {what} and this write adds {}, over its limit of {}; \
         nothing was written",
        refusal.used, refusal.adding, refusal.limit
    ))
}

/// The stored size of the document under `key`, 0 when there is none.
fn stored_len(tree: Option<&sled::Tree>, key: &str) -> Result<usize, DocError> {
    let Some(tree) = tree else { return Ok(0) };
    Ok(tree.get(key).map_err(unavailable)?.map_or(0, |value| value.len()))
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
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let existing = self.existing_tree(at)?;
        let (shared, at, budget) = (self.shared.clone(), at.clone(), budget.clone());
        blocking(move || {
            let mut batch = sled::Batch::default();
            let mut bytes = 0;
            for document in &documents {
                budget.check()?;
                let key = id_key(&document["_id"]);
                if stored_len(existing.as_ref(), &key)? > 0 {
                    return Err(DocError::DuplicateKey(format!(
                        "E11000 duplicate key error: _id {key} already exists; nothing was inserted"
                    )));
                }
                let encoded = encode(document);
                bytes += encoded.len();
                batch.insert(key.as_bytes(), encoded);
            }
            let delta = [signed(documents.len()), signed(bytes), 0];
            shared.commit(&at, existing, batch, delta, &budget)
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
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let existing = self.existing_tree(at)?;
        // Only an upsert can write into a collection that does not exist yet.
        if existing.is_none() && !options.upsert {
            return Ok(WriteOutcome::default());
        }
        let (plan, wrote) = engine::scan(|| {
            let documents = match &existing {
                Some(tree) => candidates(tree, filter),
                None => Box::new(std::iter::empty()),
            };
            let plan = engine::plan_update(documents, filter, change, options, limits, budget)?;
            let mut batch = sled::Batch::default();
            let mut delta = [0; 3];
            for changed in &plan.changed {
                let key = id_key(&engine::id_of(&changed.after));
                let encoded = encode(&changed.after);
                delta[BYTES] +=
                    signed(encoded.len()) - signed(stored_len(existing.as_ref(), &key)?);
                batch.insert(key.as_bytes(), encoded);
            }
            if let Some(document) = &plan.upsert {
                let key = id_key(&document["_id"]);
                if stored_len(existing.as_ref(), &key)? > 0 {
                    return Err(DocError::DuplicateKey(format!(
                        "E11000 duplicate key error: _id {key} already exists"
                    )));
                }
                let encoded = encode(document);
                delta[DOCUMENTS] += 1;
                delta[BYTES] += signed(encoded.len());
                batch.insert(key.as_bytes(), encoded);
            }
            let wrote = !plan.changed.is_empty() || plan.upsert.is_some();
            if wrote {
                self.shared.commit(at, existing.clone(), batch, delta, budget)?;
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
    ) -> Result<Vec<Document>, DocError> {
        let Some(tree) = self.existing_tree(at)? else { return Ok(Vec::new()) };
        let lock = self.lock(at);
        let _guard = lock.lock().await;
        let deleted = engine::scan(|| {
            let doomed = engine::plan_delete(candidates(&tree, filter), filter, many, budget)?;
            if !doomed.is_empty() {
                let mut batch = sled::Batch::default();
                let mut bytes = 0;
                for document in &doomed {
                    let key = id_key(&engine::id_of(document));
                    bytes += stored_len(Some(&tree), &key)?;
                    batch.remove(key.as_bytes());
                }
                budget.commit()?;
                tree.apply_batch(batch).map_err(unavailable)?;
                self.shared.ledger.settle(&at.space, [-signed(doomed.len()), -signed(bytes), 0]);
            }
            Ok::<_, DocError>(doomed)
        })?;
        if !deleted.is_empty() {
            self.flush().await?;
        }
        Ok(deleted)
    }

    async fn drop_space(&self, space: &str) -> Result<(), DocError> {
        let prefix = format!("{TREE_PREFIX}[{}", Value::String(space.into()));
        for name in self.shared.db.tree_names() {
            if name.starts_with(prefix.as_bytes()) {
                self.shared.db.drop_tree(&name).map_err(unavailable)?;
                self.shared.with_trees(|trees| trees.remove(name.as_ref()));
            }
        }
        self.shared.ledger.forget(space);
        self.flush().await
    }

    fn usage(&self) -> Vec<(String, SpaceUsage)> {
        let usage = self.shared.ledger.usage().into_iter();
        usage
            .map(|(space, used)| {
                let usage = SpaceUsage {
                    documents: used[DOCUMENTS],
                    bytes: used[BYTES],
                    collections: used[COLLECTIONS],
                };
                (space, usage)
            })
            .collect()
    }
}
