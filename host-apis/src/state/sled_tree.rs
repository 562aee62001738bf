//! The embedded backend: each tree is a sled tree of the node's own database.

use std::ops::Bound;

use super::{Entries, KvTree, StateBackend, StateChange, StateError, StateTree};

fn failed(error: sled::Error) -> StateError {
    StateError(format!("the state database failed: {error}"))
}

/// A sled database as a state backend.
#[derive(Debug, Clone)]
pub struct SledState {
    db: sled::Db,
}

impl SledState {
    pub fn new(db: sled::Db) -> Self {
        Self { db }
    }
}

impl StateBackend for SledState {
    fn tree(&self, name: &str) -> Result<StateTree, StateError> {
        open(&self.db, name)
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StateChange>> {
        None
    }

    fn healthy(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "sled"
    }
}

/// The tree `name` of `db`.
pub fn open(db: &sled::Db, name: &str) -> Result<StateTree, StateError> {
    Ok(StateTree::new(SledTree(db.open_tree(name).map_err(failed)?)))
}

/// A sled tree as a state tree.
#[derive(Debug, Clone)]
pub struct SledTree(pub sled::Tree);

impl KvTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.get(key).map_err(failed)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.0.insert(key, value).map_err(failed)?;
        Ok(())
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StateError> {
        match self.0.compare_and_swap(key, None::<&[u8]>, Some(value)).map_err(failed)? {
            Ok(()) => Ok(value.to_vec()),
            Err(existing) => Ok(existing.current.map(|v| v.to_vec()).unwrap_or_default()),
        }
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.remove(key).map_err(failed)?.map(|v| v.to_vec()))
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        Ok(self.0.compare_and_swap(key, expected, new).map_err(failed)?.is_ok())
    }

    fn apply(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.0.apply_batch(sled_batch).map_err(failed)
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> Entries<'_> {
        let entries = self.0.range(range);
        let convert =
            |entry: sled::Result<(sled::IVec, sled::IVec)>| -> Result<(Vec<u8>, Vec<u8>), StateError> {
                entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(failed)
            };
        if reverse {
            Box::new(entries.rev().map(convert))
        } else {
            Box::new(entries.map(convert))
        }
    }

    fn len(&self) -> Result<usize, StateError> {
        Ok(self.0.len())
    }

    /// sled's own answer looks at the first entry only; the default (`len() == 0`) would read
    /// the whole tree.
    fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.0.is_empty())
    }

    fn flush(&self) -> Result<(), StateError> {
        self.0.flush().map_err(failed)?;
        Ok(())
    }
}
