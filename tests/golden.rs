//! Golden files for what must not change by accident, above all while the `runtime` crate is
//! split into crates: the metadata `wasmfn build` stores in every bundle (bundles already built
//! must stay readable and mean the same), the build id and the compile cache's file names (a
//! change makes `wasmfn serve DIR` rebuild every bundle and recompile every `.cwasm`), and the
//! HTTP answer of every `InvokeError` (callers parse its code, status and body). The golden
//! files are in `tests/golden/`; this file compares the code's output with them, and rewrites
//! them instead when `WASMFN_BLESS=1` is set.
//!
//! Updating them: when a change is meant (a new `function.toml` field, a new error variant, an
//! edited guest source), run `WASMFN_BLESS=1 cargo test -p wasmfn-runtime --test golden`, read
//! `git diff tests/golden` and commit the golden files with the change. Editing any file under
//! `guest-python/` or `wit/` (`guest_sources::FILES`), or the componentize-py version,
//! legitimately changes the build id in `tests/golden/build-id.txt` (the `guest_file` lines there
//! say which file changed); a wasmtime upgrade or a new `CODEGEN_REVISION` legitimately changes
//! the compile cache file name. During a refactor that only moves code, no golden file changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wasmfn_runtime::bundle::{self, BundleMeta, CompileCache};
use wasmfn_runtime::error::InvokeError;
use wasmfn_runtime::error_response::ErrorResponse;
use wasmfn_runtime::guest_sources;
use wasmfn_runtime::manifest::FunctionManifest;
use wasmfn_runtime::toolchain::COMPONENTIZE_PY_VERSION;

/// Set to `1` to write the golden files from the code instead of comparing.
const BLESS_ENV: &str = "WASMFN_BLESS";
const BLESS_COMMAND: &str = "WASMFN_BLESS=1 cargo test -p wasmfn-runtime --test golden";

/// The smallest component: what the metadata section is appended to.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// The target the pinned compile cache file name is computed for. Named explicitly so that the
/// engine's compatibility hash holds no CPU features detected on this machine (the server's own
/// engine detects them, so its cache names differ from machine to machine).
const CACHE_KEY_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The bundle bytes whose compile cache file name is pinned.
const CACHE_KEY_BUNDLE: &[u8] = b"wasmfn golden bundle";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_path(relative: &str) -> PathBuf {
    repo_root().join("tests/golden").join(relative)
}

fn blessing() -> bool {
    std::env::var(BLESS_ENV).is_ok_and(|value| value == "1")
}

/// Compares `actual` with the golden file `tests/golden/<relative>`, or writes it when blessing.
fn check_golden(relative: &str, actual: &str) {
    let path = golden_path(relative);
    if blessing() {
        std::fs::create_dir_all(path.parent().expect("golden files are in a folder")).unwrap();
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("tests/golden/{relative} cannot be read ({error}); if it is new, write it with `{BLESS_COMMAND}`")
    });
    assert!(
        expected == actual,
        "tests/golden/{relative} no longer matches what the code produces (- golden, + now):\n{}\n\
         If the change is meant, rewrite the golden files with `{BLESS_COMMAND}` and review \
         `git diff tests/golden`.",
        changed_lines(&expected, actual).trim_end()
    );
}

/// The lines between the first and the last difference, as `-` (golden) and `+` (now) lines,
/// after the few unchanged lines before them.
fn changed_lines(expected: &str, actual: &str) -> String {
    const SHOWN: usize = 40;
    const CONTEXT: usize = 3;
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let same_start = expected.iter().zip(&actual).take_while(|(e, a)| e == a).count();
    let same_end = expected[same_start..]
        .iter()
        .rev()
        .zip(actual[same_start..].iter().rev())
        .take_while(|(e, a)| e == a)
        .count();
    let removed = &expected[same_start..expected.len() - same_end];
    let added = &actual[same_start..actual.len() - same_end];
    if removed.is_empty() && added.is_empty() {
        return "(the lines are the same; the line endings differ)".into();
    }
    let context = same_start.saturating_sub(CONTEXT);
    let mut out = format!("at line {}:\n", same_start + 1);
    for line in &expected[context..same_start] {
        writeln!(out, "  {line}").unwrap();
    }
    for (sign, lines) in [('-', removed), ('+', added)] {
        for line in lines.iter().take(SHOWN) {
            writeln!(out, "{sign} {line}").unwrap();
        }
        if lines.len() > SHOWN {
            writeln!(out, "{sign} ... ({} more lines)", lines.len() - SHOWN).unwrap();
        }
    }
    out
}

/// Every function folder whose metadata is pinned: `(group, folder name, path)`, the group
/// being the folder of its golden files under `tests/golden/bundle-meta/`.
fn function_folders() -> Vec<(&'static str, String, PathBuf)> {
    let mut folders = Vec::new();
    for (group, parent) in [("fixtures", "tests/fixtures"), ("examples", "examples")] {
        for entry in std::fs::read_dir(repo_root().join(parent)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                folders.push((group, name, path));
            }
        }
    }
    folders.sort();
    folders
}

/// The metadata `wasmfn build` stores for the function in `dir` (`python_build::build` makes it
/// with the same call).
fn bundle_meta(dir: &Path) -> BundleMeta {
    let manifest = FunctionManifest::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    BundleMeta::from_manifest(&manifest, guest_sources::build_id())
}

/// `meta` as its golden file holds it: pretty JSON in field order, without `build_id` (pinned
/// once, in build-id.txt, since it is the same in every bundle).
fn golden_meta_json(meta: &BundleMeta) -> String {
    let mut value = serde_json::to_value(meta).unwrap();
    let object = value.as_object_mut().expect("bundle metadata is a JSON object");
    assert!(object.shift_remove("build_id").is_some(), "bundle metadata has no build_id");
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn bundle_meta_of_every_fixture_and_example_is_pinned() {
    let folders = function_folders();
    for group in ["fixtures", "examples"] {
        assert!(folders.iter().any(|(g, ..)| *g == group), "no function folders in {group}");
    }
    for (group, name, dir) in &folders {
        let relative = format!("bundle-meta/{group}/{name}.json");
        let meta = bundle_meta(dir);
        check_golden(&relative, &golden_meta_json(&meta));

        // The golden text is also what older bundles hold: it must still deserialise, to the
        // same metadata, and serialise back to the same bytes.
        let golden = std::fs::read_to_string(golden_path(&relative)).unwrap();
        let parsed: BundleMeta = serde_json::from_str(&golden)
            .unwrap_or_else(|e| panic!("tests/golden/{relative} is no longer readable: {e}"));
        assert_eq!(
            golden_meta_json(&parsed),
            golden,
            "{relative} does not serialise back the same"
        );
        let stored = BundleMeta { build_id: guest_sources::build_id(), ..parsed };
        assert_eq!(stored, meta, "{relative} deserialises to other metadata");
        let bundle = bundle::with_meta(EMPTY_COMPONENT, &stored);
        assert_eq!(bundle::read_meta(&bundle).unwrap(), Some(meta), "{relative} in a bundle");
    }

    // A golden file without its folder would pin nothing.
    let mut stale = Vec::new();
    for group in ["fixtures", "examples"] {
        let Ok(entries) = std::fs::read_dir(golden_path(&format!("bundle-meta/{group}"))) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if !folders.iter().any(|(g, name, _)| *g == group && *name == stem) {
                if blessing() {
                    std::fs::remove_file(&path).unwrap();
                } else {
                    stale.push(format!("bundle-meta/{group}/{stem}.json"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "golden files of function folders that no longer exist: {stale:?}; remove them with \
         `{BLESS_COMMAND}`"
    );
}

#[test]
fn build_id_and_compile_cache_file_name_are_pinned() {
    let mut text = format!(
        "# Pinned by tests/golden.rs. After a meant change, rewrite it with\n\
         # `{BLESS_COMMAND}`.\n\
         # A changed guest_file (guest-python/, wit/) or componentize_py changes build_id; a\n\
         # wasmtime upgrade or a new CODEGEN_REVISION changes compile_cache_file.\n"
    );
    writeln!(text, "build_id = {}", guest_sources::build_id()).unwrap();
    writeln!(text, "componentize_py = {COMPONENTIZE_PY_VERSION}").unwrap();
    for (path, contents) in guest_sources::FILES {
        let sha256 = bundle::sha256_hex(contents.as_bytes());
        writeln!(text, "guest_file = {path} {}", &sha256[..16]).unwrap();
    }

    let mut config = wasmtime::Config::new();
    config.target(CACHE_KEY_TARGET).unwrap();
    let engine = wasmtime::Engine::new(&config).unwrap();
    let cache_dir = Path::new("compile-cache");
    let sha256 = bundle::sha256_hex(CACHE_KEY_BUNDLE);
    let path = CompileCache::new(&engine, cache_dir, None).path_for(&sha256);
    assert_eq!(path.parent(), Some(cache_dir), "compiled bundles are kept in the cache folder");
    let file = path.file_name().unwrap().to_str().unwrap();
    writeln!(text, "bundle_sha256 = {sha256}").unwrap();
    writeln!(text, "compile_cache_file = {CACHE_KEY_TARGET} {file}").unwrap();
    check_golden("build-id.txt", &text);
}

/// One sample of each `InvokeError` variant, with fields like those the server fills in.
fn invoke_error_samples() -> Vec<InvokeError> {
    vec![
        InvokeError::SpaceNotFound("acme".into()),
        InvokeError::FunctionNotFound { space: "acme".into(), function: "greet".into() },
        InvokeError::EntryNotFound("module 'example' has no exposed function 'missing'".into()),
        InvokeError::NotFound("no async invocation 'abc'".into()),
        InvokeError::MethodNotAllowed { method: "PUT".into(), allow: "POST" },
        InvokeError::Unauthorized("ingress call refused: the body has no created_on".into()),
        InvokeError::Forbidden("the API key is unknown or revoked".into()),
        InvokeError::BadRequest("X-Callback-Url is not an http(s) URL".into()),
        InvokeError::BadArguments("\"arguments\" must be a JSON object, not a list".into()),
        InvokeError::BodyTooLarge { limit: 1_048_576 },
        InvokeError::RequestTimeout("the request body did not arrive in time".into()),
        InvokeError::FunctionException {
            type_name: "ValueError".into(),
            message: "invalid literal for int() with base 10: 'x'".into(),
        },
        InvokeError::Timeout { timeout_ms: 1000 },
        InvokeError::MemoryLimit { limit_mb: 128 },
        InvokeError::Trap("stack overflow".into()),
        InvokeError::ResponseTooLarge { size: 2_000_000, limit: 1_048_576 },
        InvokeError::Overloaded { function: "greet".into() },
        InvokeError::NoInstanceSlot,
        InvokeError::InvalidResponse("\"bad header\" is not a valid header name".into()),
        InvokeError::Unavailable("the ingress replay cache failed; retry later".into()),
        InvokeError::CallbackLoop { depth: 9, max: 8 },
        InvokeError::SecretOverride { key: "api_token".into() },
    ]
}

/// The variant's name: the key of its golden entry. No wildcard arm, so a new variant stops this
/// test compiling until it has an arm here and a sample in [`invoke_error_samples`].
fn variant_name(error: &InvokeError) -> &'static str {
    match error {
        InvokeError::SpaceNotFound(_) => "SpaceNotFound",
        InvokeError::FunctionNotFound { .. } => "FunctionNotFound",
        InvokeError::EntryNotFound(_) => "EntryNotFound",
        InvokeError::NotFound(_) => "NotFound",
        InvokeError::MethodNotAllowed { .. } => "MethodNotAllowed",
        InvokeError::Unauthorized(_) => "Unauthorized",
        InvokeError::Forbidden(_) => "Forbidden",
        InvokeError::BadRequest(_) => "BadRequest",
        InvokeError::BadArguments(_) => "BadArguments",
        InvokeError::BodyTooLarge { .. } => "BodyTooLarge",
        InvokeError::RequestTimeout(_) => "RequestTimeout",
        InvokeError::FunctionException { .. } => "FunctionException",
        InvokeError::Timeout { .. } => "Timeout",
        InvokeError::MemoryLimit { .. } => "MemoryLimit",
        InvokeError::Trap(_) => "Trap",
        InvokeError::ResponseTooLarge { .. } => "ResponseTooLarge",
        InvokeError::Overloaded { .. } => "Overloaded",
        InvokeError::NoInstanceSlot => "NoInstanceSlot",
        InvokeError::InvalidResponse(_) => "InvalidResponse",
        InvokeError::Unavailable(_) => "Unavailable",
        InvokeError::CallbackLoop { .. } => "CallbackLoop",
        InvokeError::SecretOverride { .. } => "SecretOverride",
    }
}

#[tokio::test]
async fn every_invoke_error_answer_is_pinned() {
    let mut answers = serde_json::Map::new();
    for error in invoke_error_samples() {
        let name = variant_name(&error);
        let (code, status) = (error.code(), error.status());
        let response = error.into_response();
        assert_eq!(response.status(), status, "{name}: the response has another status");
        let mut headers = BTreeMap::new();
        for (header, value) in response.headers() {
            let value = value.to_str().unwrap().to_string();
            assert!(headers.insert(header.to_string(), value).is_none(), "{name}: two {header}");
        }
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{name}: the body is not JSON ({e})"));
        assert_eq!(body["error"]["code"], code, "{name}: the body has another code");
        let answer =
            json!({ "code": code, "status": status.as_u16(), "headers": headers, "body": body });
        assert!(answers.insert(name.to_string(), answer).is_none(), "two samples of {name}");
    }
    check_golden("invoke-errors.json", &(serde_json::to_string_pretty(&answers).unwrap() + "\n"));
}
