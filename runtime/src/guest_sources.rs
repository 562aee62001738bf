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
    "guest-python/wasmfn/_heap.py",
    "guest-python/wasmfn/_http.py",
    "guest-python/wasmfn/_modules.py",
    "guest-python/wasmfn/_reseed.py",
    "guest-python/wasmfn/_buildtime.py",
    "guest-python/wasmfn/_warmup.py",
    "guest-python/wasmfn/_sources.py",
    "guest-python/wasmfn/_agent_tools.py",
    "guest-python/wasmfn/objects.py",
    "guest-python/wasmfn/outbound/__init__.py",
    "guest-python/wasmfn/outbound/errors.py",
    "guest-python/wasmfn/outbound/transport.py",
    "guest-python/wasmfn/outbound/http_client.py",
    "guest-python/wasmfn/outbound/requests_adapter.py",
    "guest-python/wasmfn/outbound/sockets.py",
    "guest-python/ixoncdkingress/__init__.py",
    "guest-python/ixoncdkingress/types.py",
    "guest-python/ixoncdkingress/schema_utils.py",
    "guest-python/ixoncdkingress/function/__init__.py",
    "guest-python/ixoncdkingress/function/api_client.py",
    "guest-python/ixoncdkingress/function/context.py",
    "guest-python/ixoncdkingress/function/document_db_client.py",
    "guest-python/ixoncdkingress/function/time_series_client.py",
    "guest-python/ixoncdkingress/function/objectstorage/__init__.py",
    "guest-python/ixoncdkingress/function/objectstorage/types.py",
    "guest-python/ixoncdkingress/cbc/__init__.py",
    "guest-python/ixoncdkingress/cbc/context.py",
    "guest-python/ixoncdkingress/cbc/api_client.py",
    "guest-python/ixoncdkingress/cbc/document_db_client.py",
    "guest-python/ixoncdkingress/cbc/objectstorage/__init__.py",
    "guest-python/ixoncdkingress/cbc/objectstorage/types.py",
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
    "wit/response-body.wit",
    "wit/tcp.wit",
    "wit/deps/cli/cli.wit",
    "wit/deps/clocks/clocks.wit",
    "wit/deps/filesystem/filesystem.wit",
    "wit/deps/http/http.wit",
    "wit/deps/io/io.wit",
    "wit/deps/random/random.wit",
    "wit/deps/sockets/sockets.wit",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest module missing from [`FILES`] would be absent from every bundle.
    #[test]
    fn every_guest_and_wit_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        let mut pending = vec![root.join("guest-python"), root.join("wit")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    if name != "tests" && name != "__pycache__" {
                        pending.push(path);
                    }
                } else if name.ends_with(".py") || name.ends_with(".wit") {
                    let relative = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                    on_disk.push(relative);
                }
            }
        }
        let embedded: Vec<&str> = FILES.iter().map(|(path, _)| *path).collect();
        let missing: Vec<&String> =
            on_disk.iter().filter(|path| !embedded.contains(&path.as_str())).collect();
        assert!(missing.is_empty(), "not in guest_sources::FILES: {missing:?}");
    }
}
