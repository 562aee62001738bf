//! Where an invocation's instance comes from and when it runs. The instance pool: instances
//! made ahead of demand are fresh, get each call's own settings, and are given back when their
//! version goes idle or is replaced. The node's run slots: calls beyond them wait in line, and
//! their timeout starts when they run.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{fixture_bundle, runtime_config};
use wasmfn_runtime::error::InvokeError;
use wasmfn_runtime::invoker::Invocation;
use wasmfn_runtime::pool::PoolSettings;
use wasmfn_runtime::runtime::Runtime;

fn invocation(entry: &str, config: &[(&str, &str)]) -> Invocation {
    Invocation {
        space: "default".into(),
        function: "behave".into(),
        entry: Some(entry.into()),
        trigger: "test".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect::<BTreeMap<_, _>>(),
        ..Invocation::default()
    }
}

async fn body(runtime: &Runtime, invocation: Invocation) -> serde_json::Value {
    let outcome = runtime.invoker().invoke(invocation).await;
    let response = outcome.result.expect("the call succeeds");
    serde_json::from_slice(&response.body).unwrap()
}

/// Polls until `pooled` satisfies `done`; fails with `what` after a generous deadline.
async fn until(runtime: &Runtime, what: &str, done: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pooled = runtime.invoker().pooled_instances();
        if done(pooled) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {pooled} pooled instances");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runtime(pool: PoolSettings) -> Runtime {
    Runtime::new(wasmfn_runtime::runtime::RuntimeConfig { pool, ..runtime_config() }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_instances_are_fresh_and_get_each_calls_own_config() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let runtime = runtime(PoolSettings { per_function: 2, total: 4, ..PoolSettings::default() });
    runtime.load(bytes, "default", None).await.unwrap();
    assert_eq!(runtime.invoker().pooled_instances(), 0, "nothing is made before the first call");

    // The first call starts the version's keeper; later calls take what it made.
    assert_eq!(body(&runtime, invocation("behave.counter", &[])).await, json!({"calls": 1}));
    for round in 0..4 {
        until(&runtime, "the keeper refills the pool", |n| n >= 1).await;
        let counted = body(&runtime, invocation("behave.counter", &[])).await;
        assert_eq!(counted, json!({"calls": 1}), "round {round}: module state leaked");
        until(&runtime, "the keeper refills the pool", |n| n >= 1).await;
        let region = format!("r{round}");
        let echoed = body(&runtime, invocation("behave.echo", &[("region", &region)])).await;
        assert_eq!(echoed["config"]["region"], json!(region), "the call's own config is bound");
    }
    assert!(runtime.invoker().pooled_instances() <= 2, "bounded per function");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_version_gives_its_instances_back() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let idle = Duration::from_millis(500);
    let runtime = runtime(PoolSettings { per_function: 2, total: 4, idle });
    runtime.load(bytes, "default", None).await.unwrap();
    body(&runtime, invocation("behave.counter", &[])).await;
    until(&runtime, "the pool fills", |n| n >= 1).await;
    until(&runtime, "an idle version gives its instances back", |n| n == 0).await;
    // A later call starts a new keeper.
    body(&runtime, invocation("behave.counter", &[])).await;
    until(&runtime, "the pool fills again", |n| n >= 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_version_gives_its_instances_back() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    // Idle never ends inside this test: only the replacement can empty the pool.
    let idle = Duration::from_secs(3600);
    let runtime = runtime(PoolSettings { per_function: 2, total: 4, idle });
    runtime.load(bytes.clone(), "default", None).await.unwrap();
    body(&runtime, invocation("behave.counter", &[])).await;
    until(&runtime, "the pool fills", |n| n >= 1).await;
    runtime.load(bytes, "default", Some("behave".into())).await.unwrap();
    until(&runtime, "the replaced version's instances are freed", |n| n == 0).await;
    assert_eq!(body(&runtime, invocation("behave.counter", &[])).await, json!({"calls": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pool_when_disabled() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let runtime = runtime(PoolSettings { per_function: 0, ..PoolSettings::default() });
    runtime.load(bytes, "default", None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(body(&runtime, invocation("behave.counter", &[])).await, json!({"calls": 1}));
    }
    // A keeper started by mistake would have made instances by now (a few ms each); none may
    // exist. This can miss a slow wrong keeper, never fail a correct pool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runtime.invoker().pooled_instances(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_run_slots_wait_in_line_and_their_timeout_starts_when_they_run() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let config = wasmfn_runtime::runtime::RuntimeConfig { max_running: 1, ..runtime_config() };
    let runtime = Runtime::new(config).unwrap();
    runtime.load(bytes, "default", None).await.unwrap();
    assert_eq!(runtime.invoker().run_slots().size(), 1);

    // Two infinite loops, each stopped by the fixture's 1 s timeout. Sharing the one slot,
    // they run one after the other, and the second still gets its whole second: the pair
    // takes at least 2 s. (Running side by side, or timed from arrival, it would take ~1 s.)
    let started = Instant::now();
    let (a, b) = tokio::join!(
        runtime.invoker().invoke(invocation("behave.spin", &[])),
        runtime.invoker().invoke(invocation("behave.spin", &[])),
    );
    let elapsed = started.elapsed();
    for outcome in [&a, &b] {
        assert!(
            matches!(outcome.result, Err(InvokeError::Timeout { timeout_ms: 1000 })),
            "{:?}",
            outcome.result
        );
    }
    assert!(elapsed >= Duration::from_secs(2), "the calls overlapped: {elapsed:?}");
    let waited = a.timing.queued.max(b.timing.queued);
    assert!(waited >= Duration::from_millis(900), "the second call waited {waited:?}");
    // A slot is given back once its call's instance is dropped, just after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.invoker().run_slots().running() > 0 {
        assert!(Instant::now() < deadline, "a run slot was never given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A call that finds every instance slot taken waits for one (until its deadline) instead of
/// failing: the slot of the call before is given back only after its answer, when its store is
/// dropped, so back-to-back calls on a full node would otherwise get 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_for_a_free_instance_slot() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let mut config = runtime_config();
    config.engine.max_instances = 1;
    config.pool = PoolSettings { per_function: 0, ..PoolSettings::default() };
    let runtime = std::sync::Arc::new(Runtime::new(config).unwrap());
    runtime.load(bytes, "default", None).await.unwrap();
    assert_eq!(runtime.invoker().free_instance_slots(), 1);

    let mut nap = invocation("behave.nap", &[]);
    nap.arguments = json!({"ms": 300}).into();
    let holder = {
        let runtime = runtime.clone();
        tokio::spawn(async move { runtime.invoker().invoke(nap).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime.invoker().free_instance_slots() > 0 {
        assert!(Instant::now() < deadline, "the napping call never took the slot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The only slot is held for 300 ms; this call's deadline is 1 s away.
    let waiter = runtime.invoker().invoke(invocation("behave.echo", &[])).await;
    assert!(waiter.result.is_ok(), "the second call: {:?}", waiter.result);
    let held = holder.await.unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&held.result.expect("the nap").body).unwrap(),
        json!({"slept_ms": 300})
    );
    assert!(
        waiter.timing.instantiate >= Duration::from_millis(100),
        "the second call did not wait for the slot: {:?}",
        waiter.timing.instantiate
    );
}

/// Instance slots are reused, and a used memory is reset by copying back the pages the kernel
/// reports written (PAGEMAP_SCAN; vendor/wasmtime resumes the scan past 32 regions) or, without
/// the scan, by giving them back: either way a call that dirties hundreds of separate pages
/// leaves nothing behind for the next instance in its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_written_in_hundreds_of_places_is_reset_for_the_next_instance() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let mut config = runtime_config();
    // Two instance slots and no pool: consecutive calls must reuse a slot.
    config.engine.max_instances = 2;
    config.pool = PoolSettings { per_function: 0, ..PoolSettings::default() };
    let runtime = Runtime::new(config).unwrap();
    runtime.load(bytes, "default", None).await.unwrap();
    for call in 0..8 {
        let answer = body(&runtime, invocation("behave.scatter", &[])).await;
        assert_eq!(answer, json!({"seen": 0, "written": 512}), "call {call} saw a used memory");
    }
}
