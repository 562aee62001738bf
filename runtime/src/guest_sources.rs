//! The guest side compiled into every bundle: the `wasmfn`, `ixoncdkingress`, `bson` and
//! `pymongo` (client-side subset) Python packages,
//! the entry module, and the WIT world, embedded so `wasmfn build` works from any directory.

use sha2::{Digest, Sha256};

use crate::toolchain::COMPONENTIZE_PY_VERSION;

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../", $path)))),*]
    };
}

/// `(path relative to the repository root, contents)` of every guest and WIT file.
pub const FILES: &[(&str, &str)] = embed![
    "guest-python/wasmfn_entry.py",
    "guest-python/wasmfn/__init__.py",
    "guest-python/wasmfn/_backends.py",
    "guest-python/wasmfn/_dispatch.py",
    "guest-python/wasmfn/_extjson.py",
    "guest-python/wasmfn/_http.py",
    "guest-python/wasmfn/objects.py",
    "guest-python/ixoncdkingress/__init__.py",
    "guest-python/ixoncdkingress/function/__init__.py",
    "guest-python/ixoncdkingress/function/api_client.py",
    "guest-python/ixoncdkingress/function/context.py",
    "guest-python/ixoncdkingress/function/document_db_client.py",
    "guest-python/bson/__init__.py",
    "guest-python/bson/errors.py",
    "guest-python/bson/json_util.py",
    "guest-python/bson/objectid.py",
    "guest-python/pymongo/__init__.py",
    "guest-python/pymongo/cursor.py",
    "guest-python/pymongo/errors.py",
    "guest-python/pymongo/results.py",
    "wit/world.wit",
    "wit/types.wit",
    "wit/config.wit",
    "wit/log.wit",
    "wit/handler.wit",
    "wit/documents.wit",
    "wit/objects.wit",
    "wit/ixon-api.wit",
];

/// Identifies the guest code and toolchain a bundle was built with; a bundle built by another
/// wasmfn is rebuilt by `wasmfn serve DIR`.
pub fn build_id() -> String {
    let mut hasher = Sha256::new();
    hasher.update(COMPONENTIZE_PY_VERSION);
    for (path, contents) in FILES {
        hasher.update(path);
        hasher.update(contents);
    }
    hex::encode(&hasher.finalize()[..8])
}
