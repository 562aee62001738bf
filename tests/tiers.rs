//! The baseline tier: a bundle whose Cranelift code is not cached is compiled by Winch and
//! serves at once, with every limit an invocation has; Cranelift's code is compiled in the
//! background, cached, and swapped in, and calls then run it. A node (`wasmfn serve`) shows
//! which code a function runs in the admin API. Cranelift's function cache: a bundle compiled
//! after another is mostly lookups, and the code is the same as compiled from nothing.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{fixture_bundle, runtime_config};
use wasmfn_runtime::error::InvokeError;
use wasmfn_runtime::invoker::Invocation;
use wasmfn_runtime::runtime::{Runtime, RuntimeConfig};
use wasmfn_runtime::tiers::Tier;

fn call(entry: &str, arguments: serde_json::Value) -> Invocation {
    Invocation {
        space: "default".into(),
        function: "behave".into(),
        entry: Some(entry.into()),
        trigger: "test".into(),
        arguments: arguments.into(),
        ..Invocation::default()
    }
}

async fn greet(runtime: &Runtime) -> serde_json::Value {
    let outcome = runtime.invoker().invoke(call("behave.greet", json!({"name": "Ada"}))).await;
    let response = outcome.result.expect("greet answers");
    serde_json::from_slice(&response.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bundle_serves_from_winch_at_once_and_moves_to_cranelift_when_compiled() {
    let bytes = fixture_bundle("behave");
    let cold = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: cold.path().join("compiled"),
        baseline_tier: true,
        ..runtime_config()
    };
    let runtime = Runtime::new(config).unwrap();
    let sha = wasmfn_runtime::bundle::sha256_hex(&bytes);
    let version = runtime.load(bytes, "default", None).await.unwrap();
    assert_eq!(version.tier(), Tier::Baseline, "nothing was cached: Winch compiled it");
    assert!(!runtime.cache().path_for(&sha).exists());

    // Winch's code answers, and keeps every bound of an invocation: its timeout, its memory
    // limit, the guest's own RecursionError (Winch's frames are larger: it has more stack).
    assert_eq!(greet(&runtime).await, json!("Hello, Ada!"));
    let spin = runtime.invoker().invoke(call("behave.spin", json!({}))).await;
    assert!(matches!(spin.result, Err(InvokeError::Timeout { .. })), "{:?}", spin.result.err());
    let bomb = runtime.invoker().invoke(call("behave.allocate", json!({}))).await;
    assert!(matches!(bomb.result, Err(InvokeError::MemoryLimit { .. })), "{:?}", bomb.result.err());
    let deep = runtime.invoker().invoke(call("behave.recurse", json!({}))).await;
    match deep.result {
        Err(InvokeError::FunctionException { type_name, .. }) => {
            assert_eq!(type_name, "RecursionError")
        }
        other => panic!("recursion on Winch's code: {:?}", other.err()),
    }

    // Cranelift's code arrives: cached, then in service for the same version.
    let deadline = Instant::now() + Duration::from_secs(600);
    while version.tier() == Tier::Baseline {
        assert!(Instant::now() < deadline, "Cranelift's code never came");
        // Calls go on meanwhile.
        assert_eq!(greet(&runtime).await, json!("Hello, Ada!"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(runtime.cache().path_for(&sha).exists(), "the compiled code was cached");
    let active = runtime.registry().get("default", "behave").unwrap();
    assert!(std::sync::Arc::ptr_eq(&active, &version), "the same version, not a new load");
    assert_eq!(active.tier(), Tier::Optimized);
    assert_eq!(greet(&runtime).await, json!("Hello, Ada!"));

    // A second node with the cache filled loads Cranelift's code directly.
    let config = RuntimeConfig {
        cache_dir: cold.path().join("compiled"),
        baseline_tier: true,
        ..runtime_config()
    };
    let warm = Runtime::new(config).unwrap();
    let version = warm.load(fixture_bundle("behave"), "default", None).await.unwrap();
    assert_eq!(version.tier(), Tier::Optimized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_compiled_after_another_reuses_its_functions_and_gets_the_same_code() {
    let (first, bytes) = (fixture_bundle("warm"), fixture_bundle("behave"));
    let sha = wasmfn_runtime::bundle::sha256_hex(&bytes);

    // The reference: behave compiled from nothing, without a function cache.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Runtime::new(RuntimeConfig {
        cache_dir: plain_dir.path().join("compiled"),
        function_cache_mb: 0,
        ..runtime_config()
    })
    .unwrap();
    assert!(plain.cache().functions().is_none());
    plain.cache().load(plain.engine(), &bytes, &sha).unwrap();

    // A node that has compiled one other Python bundle compiles behave mostly from its cache.
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { cache_dir: dir.path().join("compiled"), ..runtime_config() };
    let node = Runtime::new(config.clone()).unwrap();
    let functions = node.cache().functions().expect("on by default").clone();
    node.load(first, "default", None).await.unwrap();
    let filled = functions.stats();
    assert!(filled.misses > 1000, "the first bundle is compiled, not looked up: {filled:?}");
    let version = node.load(bytes.clone(), "default", None).await.unwrap();
    assert_eq!(version.tier(), Tier::Optimized);
    let after = functions.stats();
    let (hits, misses) = (after.hits - filled.hits, after.misses - filled.misses);
    assert!(hits > 9 * misses, "behave after warm: {hits} hits, {misses} misses");

    // Byte for byte the machine code Cranelift made from nothing, and it runs.
    let read = |runtime: &Runtime| std::fs::read(runtime.cache().path_for(&sha)).unwrap();
    assert!(read(&node) == read(&plain), "the function cache changed the compiled code");
    assert_eq!(greet(&node).await, json!("Hello, Ada!"));
    let deep = node.invoker().invoke(call("behave.recurse", json!({}))).await;
    assert!(
        matches!(&deep.result, Err(InvokeError::FunctionException { type_name, .. }) if type_name == "RecursionError"),
        "{:?}",
        deep.result.err()
    );

    // Another process on the same directory finds the functions on disk.
    std::fs::remove_file(node.cache().path_for(&sha)).unwrap();
    let other = Runtime::new(config).unwrap();
    other.load(bytes, "default", None).await.unwrap();
    let stats = other.cache().functions().unwrap().stats();
    assert!(stats.hits > 9 * stats.misses, "from disk: {stats:?}");
    assert!(read(&other) == read(&plain));
}
