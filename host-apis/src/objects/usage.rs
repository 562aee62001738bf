//! What each space keeps in object storage (object bytes and objects) against its
//! [`SpaceQuota`], and the per-key locks that make a put's or delete's change to it exact: a
//! put reads the old object's size and writes the new one under its key's lock, so two writers
//! of one key cannot both count it as new. Usage is counted at start by listing the whole store
//! once (linear in the number of objects), then kept by every put and delete of this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

use super::ObjectError;
use crate::quota::{Ledger, Refusal};

/// The ledger's measures, in order.
pub(super) const BYTES: usize = 0;
pub(super) const OBJECTS: usize = 1;

/// How much one space may keep in object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceQuota {
    /// Bytes of object bodies (metadata sidecars not counted).
    pub max_bytes: u64,
    pub max_objects: u64,
}

impl Default for SpaceQuota {
    fn default() -> Self {
        Self { max_bytes: 10 << 30, max_objects: 1_000_000 }
    }
}

/// What one space keeps in object storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceUsage {
    pub bytes: u64,
    pub objects: u64,
}

pub(super) fn ledger(quota: SpaceQuota) -> Arc<Ledger<2>> {
    Ledger::new([quota.max_bytes, quota.max_objects])
}

pub(super) fn quota_exceeded(refusal: &Refusal) -> ObjectError {
    let what = ["bytes of objects", "objects"][refusal.measure];
    ObjectError::QuotaExceeded(format!(
        "quota exceeded: the space holds {} {what} and this put adds {}, over its limit of {}; \
         nothing was stored",
        refusal.used, refusal.adding, refusal.limit
    ))
}

/// Counts every space's objects and their bytes by listing the store once.
pub(super) async fn count(store: &dyn ObjectStore, ledger: &Ledger<2>) -> Result<(), ObjectError> {
    let mut usage: HashMap<String, [u64; 2]> = HashMap::new();
    let mut listing = store.list(Some(&Path::from("spaces")));
    loop {
        let meta = match listing.try_next().await {
            Ok(Some(meta)) => meta,
            Ok(None) | Err(object_store::Error::NotFound { .. }) => break,
            Err(error) => return Err(super::failed(error)),
        };
        let parts: Vec<_> = meta.location.parts().collect();
        // spaces/<space>/objects/<key parts>; sidecars live under spaces/<space>/meta.
        if parts.len() < 4 || parts[2].as_ref() != "objects" {
            continue;
        }
        let space = percent_encoding::percent_decode_str(parts[1].as_ref())
            .decode_utf8_lossy()
            .into_owned();
        let used = usage.entry(space).or_default();
        used[BYTES] += meta.size;
        used[OBJECTS] += 1;
    }
    for (space, used) in usage {
        ledger.set(&space, used);
    }
    Ok(())
}

/// One lock per (space, key) being written, dropped from the map when nobody holds or waits
/// for it.
#[derive(Debug, Default, Clone)]
pub(super) struct KeyLocks(Arc<Mutex<HashMap<SpaceKey, KeyLock>>>);

/// A space and an object key in it.
type SpaceKey = (String, String);
/// The lock of one key, shared by the writers waiting for it.
type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// Holds a key's lock.
pub(super) struct KeyGuard {
    locks: KeyLocks,
    name: (String, String),
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    pub(super) async fn lock(&self, space: &str, key: &str) -> KeyGuard {
        let name = (space.to_string(), key.to_string());
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(name.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        KeyGuard { locks: self.clone(), name, lock, guard: Some(guard) }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else holds or waits for this key.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.name);
        }
    }
}

#[cfg(test)]
impl KeyLocks {
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
