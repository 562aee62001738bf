//! The baseline tier: a bundle whose Cranelift code is not cached is compiled by Winch and
//! serves at once, with every limit an invocation has; Cranelift's code is compiled in the
//! background, cached, and swapped in, and calls then run it. A node (`wasmfn serve`) shows
//! which code a function runs in the admin API.

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
