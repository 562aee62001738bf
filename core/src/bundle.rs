//! Loading a `.wasm` bundle: validation, its embedded metadata, and the compile cache.
//!
//! Compiling a CPython component with Cranelift takes seconds, so each bundle is compiled once
//! and its `.cwasm` kept on disk, keyed by the bundle's sha256 and the engine's compatibility
//! hash; later loads only map the file. A bundle compiled for the first time is still mostly
//! lookups when the node has compiled another Python bundle before (see
//! [`crate::function_cache`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::function_cache::FunctionCache;
pub use crate::manifest::bundle_meta::BundleMeta;

/// Name of the custom section `wasmfn build` appends to a bundle.
pub const META_SECTION: &str = "wasmfn:function";

/// Why a bundle cannot be used; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a WebAssembly binary (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error("this is a core WebAssembly module, not a component: build it with `wasmfn build` (componentize-py)")]
    CoreModule,
    #[error("malformed or truncated component: {0}")]
    Malformed(String),
    #[error("the component does not target the wasmfn:platform@0.3.0 `function` world: {0}")]
    WrongWorld(String),
    #[error("the bundle exposes no function: decorate one with @FunctionContext.expose")]
    NoEntries,
    /// Listing the bundle's entries (guest code run at load) failed or ran past its deadline.
    #[error("the bundle could not be loaded: {0}")]
    Entries(String),
    #[error("bundle metadata section `{META_SECTION}` is invalid: {0}")]
    BadMeta(String),
    #[error("compile cache: {0}")]
    Cache(String),
    /// A trigger the bundle's `function.toml` declares cannot start (see
    /// `registry::ActivationListener::check`).
    #[error("{0}")]
    Triggers(String),
}

/// The sha256 of a bundle, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A bundle's bytes with their sha256, computed from them when it was made (the only way to
/// make one): whoever hashed a bundle already (a deploy, to name the file it keeps) hands both
/// on, and nothing downstream can be given a hash of other bytes. A clone shares the bytes (a
/// deploy writes them to disk while they compile).
#[derive(Clone)]
pub struct HashedBundle {
    bytes: Arc<Vec<u8>>,
    sha256: String,
}

impl HashedBundle {
    /// Hashes `bytes`: ~20-45 ms for a CPython bundle, so not on an async worker.
    pub fn new(bytes: Vec<u8>) -> Self {
        let sha256 = sha256_hex(&bytes);
        Self { bytes: Arc::new(bytes), sha256 }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn into_parts(self) -> (Arc<Vec<u8>>, String) {
        (self.bytes, self.sha256)
    }
}

/// A bundle to load: its bytes, hashed already or not (then loading hashes them, off the async
/// workers).
pub enum BundleBytes {
    Unhashed(Vec<u8>),
    Hashed(HashedBundle),
}

impl BundleBytes {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Unhashed(bytes) => bytes,
            Self::Hashed(hashed) => hashed.bytes(),
        }
    }

    /// Hashes the bytes unless they were.
    pub fn hashed(self) -> HashedBundle {
        match self {
            Self::Unhashed(bytes) => HashedBundle::new(bytes),
            Self::Hashed(hashed) => hashed,
        }
    }
}

// Not the bytes themselves (megabytes): their size and hash.
impl std::fmt::Debug for HashedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedBundle")
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl std::fmt::Debug for BundleBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unhashed(bytes) => f.debug_struct("Unhashed").field("len", &bytes.len()).finish(),
            Self::Hashed(hashed) => hashed.fmt(f),
        }
    }
}

impl From<Vec<u8>> for BundleBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Unhashed(bytes)
    }
}

impl From<HashedBundle> for BundleBytes {
    fn from(hashed: HashedBundle) -> Self {
        Self::Hashed(hashed)
    }
}

/// Checks the binary header: a component, not a core module or something else.
pub fn check_header(bytes: &[u8]) -> Result<(), BundleError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(BundleError::NotWasm);
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(BundleError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(BundleError::Malformed("unknown WebAssembly version or layer".into()));
    }
    Ok(())
}

/// Reads the metadata `wasmfn build` embedded, if any. When there are several sections (a
/// bundle relabelled with [`with_meta`]), the last one counts.
pub fn read_meta(bytes: &[u8]) -> Result<Option<BundleMeta>, BundleError> {
    let mut meta = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::CustomSection(section)) if section.name() == META_SECTION => {
                meta = Some(section.data());
            }
            Ok(_) => {}
            Err(error) => return Err(BundleError::Malformed(error.message().to_string())),
        }
    }
    meta.map(|data| serde_json::from_slice(data).map_err(|e| BundleError::BadMeta(e.to_string())))
        .transpose()
}

/// Appends the metadata section to a component (built by componentize-py, which has none).
pub fn with_meta(bytes: &[u8], meta: &BundleMeta) -> Vec<u8> {
    let data = serde_json::to_vec(meta).expect("bundle metadata serialises");
    with_custom_section(bytes, META_SECTION, data)
}

/// A component with a custom section appended: the same code, another bundle (sha256).
pub fn with_custom_section(bytes: &[u8], name: &str, data: Vec<u8>) -> Vec<u8> {
    let mut section = wasm_encoder::Component::new();
    section.section(&wasm_encoder::CustomSection {
        name: std::borrow::Cow::Borrowed(name),
        data: std::borrow::Cow::Owned(data),
    });
    let encoded = section.finish();
    // Everything after the 8-byte component header is the framed section.
    let mut out = bytes.to_vec();
    out.extend_from_slice(&encoded[8..]);
    out
}

/// Compiled components on disk, one `.cwasm` per (bundle, engine) pair.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    /// The store the engine's Cranelift looks functions up in: refreshed before a compile,
    /// flushed after it. `None` when the engine has none.
    functions: Option<Arc<FunctionCache>>,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    Compiled,
    Cache,
}

/// Changes whenever the patches in `vendor/` change the code Cranelift emits: wasmtime's own
/// compatibility hash only knows its version (48.0.8) and settings, so without this a `.cwasm`
/// compiled by another wasmfn build would be mapped as if it were ours.
pub(crate) const CODEGEN_REVISION: &str = "wasmfn-codegen-1: ref.func without a libcall";

impl CompileCache {
    /// `functions` must be the store `engine` was built with (see
    /// [`crate::engine::build_engine`]), or `None` if it was built without one.
    pub fn new(
        engine: &Engine,
        dir: impl Into<PathBuf>,
        functions: Option<Arc<FunctionCache>>,
    ) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CODEGEN_REVISION.hash(&mut hasher);
        Self { dir: dir.into(), engine_key: format!("{:016x}", hasher.finish()), functions }
    }

    /// The function cache the engine's Cranelift uses, if any.
    pub fn functions(&self) -> Option<&Arc<FunctionCache>> {
        self.functions.as_ref()
    }

    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for these bytes, from the cache or compiled (and cached) now.
    /// Blocking: call it from a blocking thread.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, LoadedFrom), BundleError> {
        let path = self.path_for(sha256);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok((component, LoadedFrom::Cache)),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "discarding unusable compiled bundle");
                }
            }
        }
        if let Some(functions) = &self.functions {
            functions.refresh();
        }
        let compiled = Component::new(engine, bytes);
        if let Some(functions) = &self.functions {
            // Kept even when the bundle failed to compile: its functions that did compile are
            // as good as any.
            if let Err(error) = functions.flush() {
                tracing::warn!(%error, dir = %functions.dir().display(), "cannot write the function cache");
            }
        }
        let component = compiled.map_err(|e| BundleError::Malformed(root_cause(&e)))?;
        self.store(&component, &path)?;
        Ok((component, LoadedFrom::Compiled))
    }

    fn store(&self, component: &Component, path: &Path) -> Result<(), BundleError> {
        let cache_error = |e: &dyn std::fmt::Display| BundleError::Cache(e.to_string());
        std::fs::create_dir_all(&self.dir).map_err(|e| cache_error(&e))?;
        let serialized = component.serialize().map_err(|e| cache_error(&e))?;
        // Write then rename, so a concurrent loader never maps a half-written file.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| cache_error(&e))?;
        std::io::Write::write_all(&mut tmp, &serialized).map_err(|e| cache_error(&e))?;
        tmp.persist(path).map_err(|e| cache_error(&e.error))?;
        Ok(())
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `CompileCache::store` from `Component::serialize` of this
    // engine configuration (the name carries its compatibility hash) and is only replaced by
    // atomic rename; wasmtime checks the header and engine compatibility again on load.
    unsafe { Component::deserialize_file(engine, path) }
}

/// The innermost message of an error chain: wasmparser's reason, without wasmtime's wrapping.
fn root_cause(error: &wasmtime::Error) -> String {
    error.chain().last().map(ToString::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_tells_core_modules_and_garbage_apart() {
        assert!(matches!(check_header(b"hello world"), Err(BundleError::NotWasm)));
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(check_header(core), Err(BundleError::CoreModule)));
        let component = b"\0asm\x0d\0\x01\0";
        check_header(component).unwrap();
    }

    #[test]
    fn metadata_round_trips_through_a_custom_section() {
        let component = b"\0asm\x0d\0\x01\0".to_vec();
        let meta = BundleMeta {
            name: "greet".into(),
            version: "1.2.0".into(),
            default_entry: Some("example.greet".into()),
            ..BundleMeta::default()
        };
        let bytes = with_meta(&component, &meta);
        assert_eq!(read_meta(&bytes).unwrap(), Some(meta.clone()));
        assert_eq!(read_meta(&component).unwrap(), None);
        let relabelled = BundleMeta { version: "2.0.0".into(), ..meta.clone() };
        assert_eq!(read_meta(&with_meta(&bytes, &relabelled)).unwrap(), Some(relabelled));
    }
}
