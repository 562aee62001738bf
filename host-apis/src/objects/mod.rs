//! Object storage: per-space blobs by key with a content type and user metadata, on any
//! `object_store` backend: the local filesystem (default), memory (tests) or S3 (configuration).
//!
//! Layout inside the store: an object's bytes at `spaces/<space>/objects/<key>` and its content
//! type and metadata in a small JSON sidecar at `spaces/<space>/meta/<key>` (the local filesystem
//! backend keeps no attributes). Keys are checked by [`key::check_key`] before any call; on the
//! local filesystem their parts are encoded ([`layout::KeyLayout`]) so that every valid key fits.
//!
//! Each space's object bytes and objects are limited ([`SpaceQuota`], counted in `usage.rs`):
//! a put that would pass a limit is refused before anything is stored.

pub mod backend;
pub mod key;
pub mod layout;
pub mod presign;
mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

pub use key::{check_key, check_prefix};
pub use layout::KeyLayout;
pub use presign::{PresignError, Presigner};
pub use usage::{SpaceQuota, SpaceUsage};

use crate::quota::{signed, Ledger};

/// Why an object operation failed; the Python side raises the matching exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// The put would take its space past its [`SpaceQuota`]; nothing was stored. The message
    /// starts with `quota exceeded:`.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    Unavailable(String),
}

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub last_modified: u64,
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub next_start_after: Option<String>,
}

/// Bounds on objects.
#[derive(Debug, Clone)]
pub struct ObjectLimits {
    /// The largest object a function (or a presigned PUT) may store.
    pub max_object_bytes: usize,
    /// Most entries in one listing page.
    pub max_list_keys: usize,
    /// Most metadata bytes (keys plus values) per object.
    pub max_metadata_bytes: usize,
}

impl Default for ObjectLimits {
    fn default() -> Self {
        Self { max_object_bytes: 32 << 20, max_list_keys: 1000, max_metadata_bytes: 2048 }
    }
}

pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Serialize, Deserialize)]
struct Sidecar {
    key: String,
    content_type: String,
    metadata: BTreeMap<String, String>,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectChange {
    Put,
    Delete,
}

/// One committed object write, for the event triggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub change: ObjectChange,
    pub space: String,
    pub key: String,
    /// The stored object (none for deletes).
    pub info: Option<ObjectInfo>,
}

/// Told about every committed put and delete. Called on the writer's task: do little.
pub trait ObjectListener: Send + Sync + 'static {
    fn changed(&self, event: &ObjectEvent);
}

/// The object storage the runtime uses.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    limits: ObjectLimits,
    layout: KeyLayout,
    listeners: Arc<std::sync::RwLock<Vec<Arc<dyn ObjectListener>>>>,
    ledger: Arc<Ledger<2>>,
    key_locks: usage::KeyLocks,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("store", &self.store.to_string()).finish()
    }
}

/// The root of an area (`objects` or `meta`) of a space.
fn area_root(space: &str, area: &str) -> Path {
    Path::from_iter(["spaces", space, area].map(PathPart::from))
}

fn failed(error: object_store::Error) -> ObjectError {
    match error {
        object_store::Error::NotFound { .. } => ObjectError::NotFound("no such object".into()),
        error => {
            tracing::error!(%error, "object storage failed");
            ObjectError::Unavailable("object storage failed; try again".into())
        }
    }
}

impl Objects {
    /// Objects in `store`, each space limited by the default [`SpaceQuota`] and counted as
    /// empty until [`Objects::count_usage`].
    pub fn new(store: Arc<dyn ObjectStore>, limits: ObjectLimits) -> Self {
        Self {
            store,
            limits,
            layout: KeyLayout::Plain,
            listeners: Arc::default(),
            ledger: usage::ledger(SpaceQuota::default()),
            key_locks: usage::KeyLocks::default(),
        }
    }

    /// Limits each space to `quota` (before [`Objects::count_usage`]).
    pub fn with_quota(mut self, quota: SpaceQuota) -> Self {
        self.ledger = usage::ledger(quota);
        self
    }

    /// Whether the store answers now (for `/readyz`): a lookup of an object nobody writes, which
    /// a working store answers "not found".
    pub async fn check(&self) -> Result<(), ObjectError> {
        let probe = Path::from_iter(["wasmfn-readiness-probe"].map(PathPart::from));
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(failed(error)),
        }
    }

    /// Counts what every space keeps by listing the whole store (once, at start).
    pub async fn count_usage(&self) -> Result<(), ObjectError> {
        usage::count(self.store.as_ref(), &self.ledger).await
    }

    /// What each space keeps, by space name (for `/metrics`).
    pub fn usage(&self) -> Vec<(String, SpaceUsage)> {
        let spaces = self.ledger.usage().into_iter();
        spaces
            .map(|(space, used)| {
                (space, SpaceUsage { bytes: used[usage::BYTES], objects: used[usage::OBJECTS] })
            })
            .collect()
    }

    /// Lays keys out as `layout` says (the backend's [`backend::ObjectBackend::layout`]).
    pub fn with_layout(mut self, layout: KeyLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Where the object (or sidecar) with `key` is stored.
    fn location(&self, space: &str, area: &str, key: &str) -> Path {
        self.below(area_root(space, area), key, true)
    }

    /// The directory holding keys that start with `directory/`.
    fn directory(&self, space: &str, area: &str, directory: &str) -> Path {
        self.below(area_root(space, area), directory, false)
    }

    fn below(&self, root: Path, key: &str, leaf: bool) -> Path {
        let parts = self.layout.parts(key, leaf);
        Path::from_iter(root.parts().chain(parts.iter().map(|p| PathPart::from(p.as_str()))))
    }

    /// Adds a listener told about every committed put and delete, from now on.
    pub fn subscribe(&self, listener: Arc<dyn ObjectListener>) {
        self.listeners.write().unwrap_or_else(|e| e.into_inner()).push(listener);
    }

    fn notify(&self, event: ObjectEvent) {
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner()).clone();
        for listener in listeners {
            listener.changed(&event);
        }
    }

    pub fn limits(&self) -> &ObjectLimits {
        &self.limits
    }

    pub async fn put(
        &self,
        space: &str,
        key: &str,
        body: Bytes,
        content_type: Option<String>,
        metadata: BTreeMap<String, String>,
    ) -> Result<ObjectInfo, ObjectError> {
        check_key(key)?;
        if body.len() > self.limits.max_object_bytes {
            return Err(ObjectError::TooLarge(format!(
                "object is {} bytes, over the limit of {} bytes",
                body.len(),
                self.limits.max_object_bytes
            )));
        }
        let metadata_bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_bytes > self.limits.max_metadata_bytes {
            return Err(ObjectError::TooLarge(format!(
                "metadata is {metadata_bytes} bytes, over the limit of {} bytes",
                self.limits.max_metadata_bytes
            )));
        }
        let content_type = content_type
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
        let sidecar = Sidecar { key: key.to_string(), content_type, metadata };
        let sidecar_bytes = serde_json::to_vec(&sidecar).unwrap_or_default();
        let data = self.location(space, "objects", key);
        // The old object's size and the new one's write under one lock: the difference is exact.
        let _key = self.key_locks.lock(space, key).await;
        let old = match self.store.head(&data).await {
            Ok(meta) => Some(meta.size),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(error) => return Err(failed(error)),
        };
        let old_bytes = old.map_or(0, |size| i64::try_from(size).unwrap_or(i64::MAX));
        let delta = [signed(body.len()) - old_bytes, i64::from(old.is_none())];
        let reservation =
            self.ledger.reserve(space, delta).map_err(|r| usage::quota_exceeded(&r))?;
        let result = self.store.put(&data, PutPayload::from(body.clone())).await;
        let result = result.map_err(failed)?;
        reservation.keep();
        self.store
            .put(&self.location(space, "meta", key), PutPayload::from(sidecar_bytes))
            .await
            .map_err(failed)?;
        let info = ObjectInfo {
            key: sidecar.key,
            size: body.len() as u64,
            content_type: sidecar.content_type,
            metadata: sidecar.metadata,
            last_modified: now_ms(),
            etag: result.e_tag,
        };
        self.notify(ObjectEvent {
            change: ObjectChange::Put,
            space: space.to_string(),
            key: key.to_string(),
            info: Some(info.clone()),
        });
        Ok(info)
    }

    pub async fn get(&self, space: &str, key: &str) -> Result<(ObjectInfo, Bytes), ObjectError> {
        check_key(key)?;
        let result =
            self.store.get(&self.location(space, "objects", key)).await.map_err(not_found(key))?;
        let meta = result.meta.clone();
        let body = result.bytes().await.map_err(failed)?;
        Ok((self.info(space, key, meta).await, body))
    }

    pub async fn head(&self, space: &str, key: &str) -> Result<ObjectInfo, ObjectError> {
        check_key(key)?;
        let meta =
            self.store.head(&self.location(space, "objects", key)).await.map_err(not_found(key))?;
        Ok(self.info(space, key, meta).await)
    }

    /// True when an object was deleted, false when there was none.
    pub async fn delete(&self, space: &str, key: &str) -> Result<bool, ObjectError> {
        check_key(key)?;
        let data = self.location(space, "objects", key);
        let _key = self.key_locks.lock(space, key).await;
        let size = match self.store.head(&data).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(failed(error)),
        };
        self.store.delete(&data).await.map_err(failed)?;
        self.ledger.settle(space, [-i64::try_from(size).unwrap_or(i64::MAX), -1]);
        match self.store.delete(&self.location(space, "meta", key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(failed(error)),
        }
        self.notify(ObjectEvent {
            change: ObjectChange::Delete,
            space: space.to_string(),
            key: key.to_string(),
            info: None,
        });
        Ok(true)
    }

    /// Objects whose key starts with `prefix`, in key order, after `start_after`.
    pub async fn list(
        &self,
        space: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Listing, ObjectError> {
        check_prefix(prefix)?;
        let max_keys = max_keys.clamp(1, self.limits.max_list_keys);
        // object_store lists by directory: list the prefix's directory, filter by the rest.
        let directory = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let root = area_root(space, "objects");
        let listed = self.directory(space, "objects", directory);
        let layout = self.layout;
        let mut found: Vec<(String, object_store::ObjectMeta)> = self
            .store
            .list(Some(&listed))
            .map_err(failed)
            .try_filter_map(|meta| {
                let key = key_of(layout, &root, &meta.location);
                let keep = key.filter(|k| {
                    k.starts_with(prefix) && start_after.is_none_or(|after| k.as_str() > after)
                });
                futures::future::ready(Ok(keep.map(|k| (k, meta))))
            })
            .try_collect()
            .await?;
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let more = found.len() > max_keys;
        found.truncate(max_keys);
        let next_start_after = if more { found.last().map(|(k, _)| k.clone()) } else { None };
        let objects = futures::stream::iter(found)
            .map(|(key, meta)| async move { self.info(space, &key, meta).await })
            .buffered(16)
            .collect()
            .await;
        Ok(Listing { objects, next_start_after })
    }

    /// The object's info: its stored size and time with the sidecar's type and metadata.
    async fn info(&self, space: &str, key: &str, meta: object_store::ObjectMeta) -> ObjectInfo {
        let sidecar = match self.store.get(&self.location(space, "meta", key)).await {
            Ok(result) => result.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok()),
            Err(_) => None,
        };
        let sidecar = sidecar.unwrap_or_else(|| Sidecar {
            key: key.to_string(),
            content_type: DEFAULT_CONTENT_TYPE.into(),
            metadata: BTreeMap::new(),
        });
        ObjectInfo {
            key: key.to_string(),
            size: meta.size,
            content_type: sidecar.content_type,
            metadata: sidecar.metadata,
            last_modified: u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0),
            etag: meta.e_tag,
        }
    }
}

fn not_found(key: &str) -> impl Fn(object_store::Error) -> ObjectError + '_ {
    move |error| match error {
        object_store::Error::NotFound { .. } => {
            ObjectError::NotFound(format!("no object with key {key:?}"))
        }
        error => failed(error),
    }
}

/// The key of a stored object from its location under `root`.
fn key_of(layout: KeyLayout, root: &Path, location: &Path) -> Option<String> {
    let parts: Vec<String> = location
        .prefix_match(root)?
        .map(|part| {
            percent_encoding::percent_decode_str(part.as_ref()).decode_utf8_lossy().into_owned()
        })
        .collect();
    layout.key(parts.iter().map(String::as_str))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
