//! The cluster's copy of each deployed bundle, in the shared state store (tree `bundles`),
//! kept in chunks of [`CHUNK`] bytes so that no statement carries a whole bundle (up to
//! 256 MiB) under the store's statement deadline, nor a whole bundle is held twice by the
//! store's client.
//!
//! Keys, by the bundle's sha256 (hex): `chunk:<sha256>:<index, 6 digits>` for each chunk, and
//! `whole:<sha256>` for the bundle's record (its size and chunk count), written after the
//! last chunk: a bundle is in the store once its record is, so a reader never sees part of
//! one. Bundles stored whole before (key `<sha256>`, one value) are still read.

use serde::{Deserialize, Serialize};
use wasmfn_host_apis::state::{prefix_range, StateError, StateTree};

/// Bytes per chunk.
pub const CHUNK: usize = 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Whole {
    size: usize,
    chunks: usize,
}

/// The bundles of a cluster, in its state store.
#[derive(Debug, Clone)]
pub struct SharedBundles {
    tree: StateTree,
}

fn whole_key(sha256: &str) -> String {
    format!("whole:{sha256}")
}

fn chunk_prefix(sha256: &str) -> String {
    format!("chunk:{sha256}:")
}

fn chunk_key(sha256: &str, index: usize) -> String {
    format!("{}{index:06}", chunk_prefix(sha256))
}

fn damaged(what: &str) -> StateError {
    StateError(format!("the cluster's copy of the bundle is damaged: {what}"))
}

impl SharedBundles {
    pub fn new(tree: StateTree) -> Self {
        Self { tree }
    }

    /// Whether the bundle is stored (whole, or all its chunks and its record).
    pub fn contains(&self, sha256: &str) -> Result<bool, StateError> {
        Ok(self.tree.contains_key(whole_key(sha256))? || self.tree.contains_key(sha256)?)
    }

    /// Stores `bytes` (whose sha256 is `sha256`) unless stored already: the chunks one
    /// statement each, then the record. Several servers storing one bundle at once write the
    /// same values.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), StateError> {
        if self.contains(sha256)? {
            return Ok(());
        }
        let mut chunks = 0;
        for (index, chunk) in bytes.chunks(CHUNK).enumerate() {
            self.tree.insert(chunk_key(sha256, index), chunk)?;
            chunks += 1;
        }
        let whole = Whole { size: bytes.len(), chunks };
        self.tree.insert(whole_key(sha256), serde_json::to_vec(&whole).expect("serialises"))
    }

    /// The bundle, if stored: read a chunk at a time.
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StateError> {
        let Some(record) = self.tree.get(whole_key(sha256))? else {
            return self.tree.get(sha256);
        };
        let whole: Whole =
            serde_json::from_slice(&record).map_err(|_| damaged("its record is unreadable"))?;
        let mut bytes = Vec::with_capacity(whole.size);
        for index in 0..whole.chunks {
            let chunk = self
                .tree
                .get(chunk_key(sha256, index))?
                .ok_or_else(|| damaged(&format!("chunk {index} is missing")))?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() != whole.size {
            return Err(damaged("its chunks do not add up to its size"));
        }
        Ok(Some(bytes))
    }

    /// Removes the bundle: its record first (so it is no longer read), then its chunks.
    pub fn remove(&self, sha256: &str) -> Result<(), StateError> {
        self.tree.remove(whole_key(sha256))?;
        self.tree.remove(sha256)?;
        let keys: Vec<Vec<u8>> = self
            .tree
            .scan(prefix_range(chunk_prefix(sha256).as_bytes()), false)
            .map(|entry| entry.map(|(key, _)| key))
            .collect::<Result<_, _>>()?;
        for batch in keys.chunks(64) {
            self.tree.apply(batch.iter().map(|key| (key.clone(), None)).collect())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmfn_host_apis::state::sled_tree;

    fn bundles() -> (SharedBundles, StateTree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = sled_tree::open(&db, "bundles").unwrap();
        (SharedBundles::new(tree.clone()), tree)
    }

    fn largest_value(tree: &StateTree) -> usize {
        tree.iter().map(|entry| entry.unwrap().1.len()).max().unwrap_or(0)
    }

    #[test]
    fn a_bundle_is_stored_in_chunks_and_read_back_whole() {
        let (bundles, tree) = bundles();
        let bytes: Vec<u8> = (0..(2 * CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        bundles.put("abc", &bytes).unwrap();
        assert!(bundles.contains("abc").unwrap());
        assert_eq!(tree.len().unwrap(), 4, "three chunks and the record");
        assert_eq!(largest_value(&tree), CHUNK);
        assert_eq!(bundles.get("abc").unwrap().unwrap(), bytes);
        // Stored once: a second put writes nothing.
        bundles.put("abc", &bytes).unwrap();
        assert_eq!(tree.len().unwrap(), 4);
        let empty: &[u8] = &[];
        bundles.put("empty", empty).unwrap();
        assert_eq!(bundles.get("empty").unwrap().unwrap(), empty);
        bundles.remove("abc").unwrap();
        assert!(!bundles.contains("abc").unwrap());
        assert_eq!(bundles.get("abc").unwrap(), None);
        assert_eq!(tree.len().unwrap(), 1, "only the empty bundle's record is left");
    }

    #[test]
    fn chunks_without_their_record_are_not_a_bundle_and_a_missing_chunk_is_an_error() {
        let (bundles, tree) = bundles();
        tree.insert(chunk_key("half", 0), b"part").unwrap();
        assert!(!bundles.contains("half").unwrap());
        assert_eq!(bundles.get("half").unwrap(), None);
        bundles.put("two", &vec![7u8; CHUNK + 1]).unwrap();
        tree.remove(chunk_key("two", 1)).unwrap();
        let error = bundles.get("two").unwrap_err();
        assert!(error.to_string().contains("chunk 1 is missing"), "{error}");
    }

    #[test]
    fn a_bundle_stored_whole_by_an_earlier_version_is_read_and_removed() {
        let (bundles, tree) = bundles();
        tree.insert("old", b"whole bundle").unwrap();
        assert!(bundles.contains("old").unwrap());
        assert_eq!(bundles.get("old").unwrap().unwrap(), b"whole bundle");
        bundles.remove("old").unwrap();
        assert!(tree.is_empty().unwrap());
    }
}
