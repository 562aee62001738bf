//! Shared by the end-to-end tests: fixture bundles built once with the real componentize-py
//! and compiled once into a shared cache, and the real server on a port-0 socket.
#![allow(dead_code)]

pub mod broker;
pub mod postgres;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use wasmfn_runtime::access::signature::IngressVerifier;
use wasmfn_runtime::access::AccessPolicy;
use wasmfn_runtime::delivery::destination::DestinationPolicy;
use wasmfn_runtime::delivery::DeliveryPolicy;
use wasmfn_runtime::limits::{EngineLimits, Limits};
pub use wasmfn_runtime::node::CapabilityOptions;
pub use wasmfn_runtime::node::NodeOptions;
use wasmfn_runtime::node::{Node, ServedBundle};
use wasmfn_runtime::pool::PoolSettings;
use wasmfn_runtime::python_build::{build_if_stale, BuildOptions};
use wasmfn_runtime::runtime::{Runtime, RuntimeConfig};
use wasmfn_runtime::server;
use wasmfn_runtime::triggers::async_invoke::AsyncOptions;
use wasmfn_runtime::triggers::cron::SystemClock;
use wasmfn_runtime::triggers::mqtt::{MqttTriggers, RetryPolicy};

/// The admin token of in-process test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runtime/ has a parent").to_path_buf()
}

/// Where tests keep built bundles and compiled code between runs.
pub fn work_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("wasmfn-test");
    std::fs::create_dir_all(&dir).expect("creating the test work dir");
    dir
}

/// The real `wasmfn` binary with the tests' data dir, compile cache and a quiet log.
pub fn wasmfn() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    command
        .env("WASMFN_DATA_DIR", work_dir())
        .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
        .env("WASMFN_LOG", "warn");
    command
}

pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// A runtime sized for tests, sharing the compiled-bundle cache.
pub fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: work_dir().join("compiled"),
        engine: EngineLimits { max_instances: 32, max_memory_mb: 512, ..EngineLimits::default() },
        default_limits: Limits::default(),
        pool: PoolSettings::default(),
        max_running: 0,
        // As `wasmfn serve` on a 2-core machine: calls run on the guest threads.
        guest_threads: 2,
        // Cranelift's code, which fixture_bundle caches; tests/tiers.rs tries the baseline tier.
        baseline_tier: false,
        // Shared by every test process, like the compiled bundles.
        function_cache_mb: wasmfn_runtime::runtime::DEFAULT_FUNCTION_CACHE_MB,
    }
}

/// The bundle of a fixture folder: built when stale and compiled into the cache, once, even
/// when several tests (threads or processes) ask at the same time.
pub fn fixture_bundle(name: &str) -> Vec<u8> {
    let lock = File::create(work_dir().join(format!("{name}.lock"))).expect("creating lock");
    lock.lock().expect("locking the fixture");
    let options = BuildOptions {
        out_dir: Some(work_dir().join("bundles")),
        progress: true,
        ..BuildOptions::default()
    };
    let built = build_if_stale(&fixture_dir(name), &options)
        .unwrap_or_else(|e| panic!("building fixture {name}: {e}"));
    let bytes = std::fs::read(&built.wasm).expect("reading the built bundle");
    let runtime = Runtime::new(runtime_config()).expect("runtime");
    let sha = wasmfn_runtime::bundle::sha256_hex(&bytes);
    runtime.cache().load(runtime.engine(), &bytes, &sha).expect("compiling the fixture");
    bytes
}

/// The bundle of an example folder (`examples/<name>`), built when stale into the test work
/// dir; returns its path.
pub fn example_bundle(name: &str) -> PathBuf {
    let lock = File::create(work_dir().join(format!("example-{name}.lock"))).expect("lock");
    lock.lock().expect("locking the example");
    let options = BuildOptions {
        out_dir: Some(work_dir().join("bundles")),
        progress: true,
        ..BuildOptions::default()
    };
    build_if_stale(&repo_root().join("examples").join(name), &options)
        .unwrap_or_else(|e| panic!("building example {name}: {e}"))
        .wasm
}

/// The real `wasmfn serve` binary on a free port, with its state in `data_dir`, the tests'
/// compile cache and admin token, callbacks allowed to 127.0.0.1, and `args` (bundles,
/// flags); returns it and its base URL.
pub fn spawn_serve(data_dir: &Path, args: &[&str]) -> (ServeProcess, String) {
    spawn_serve_env(data_dir, args, &[])
}

/// [`spawn_serve`] with environment variables set for the server.
pub fn spawn_serve_env(
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (ServeProcess, String) {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    command.envs(env.iter().copied());
    command
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        // The tests' callback receivers listen on 127.0.0.1.
        .args(["--allow-callback-host", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
        .stdout(std::process::Stdio::piped());
    // WASMFN_TEST_LOG=<filter> shows the server's log on the test's stderr, for debugging.
    match std::env::var("WASMFN_TEST_LOG") {
        Ok(filter) => command.env("WASMFN_LOG", filter).stderr(std::process::Stdio::inherit()),
        Err(_) => command.env("WASMFN_LOG", "warn").stderr(std::process::Stdio::null()),
    };
    let mut child = command.spawn().expect("starting wasmfn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines.next().expect("a first line").expect("readable stdout");
    let base = first.strip_prefix("wasmfn: listening on ").expect("listening line").to_string();
    // Keep reading, so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (ServeProcess(child), base)
}

/// A `wasmfn serve` child that is killed when dropped, also when its test panics: a failed
/// assertion must not leave a server running that slows every later test on the machine.
pub struct ServeProcess(std::process::Child);

impl From<std::process::Child> for ServeProcess {
    fn from(child: std::process::Child) -> Self {
        Self(child)
    }
}

impl std::ops::Deref for ServeProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ServeProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // Already killed and reaped by the test in the normal case; then both are no-ops.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServeProcess {
    /// Waits for the process to exit, at most `limit` (blocking); if it has not by then it is
    /// killed and the test fails with `what`.
    pub fn exit_within(
        &mut self,
        limit: std::time::Duration,
        what: &str,
    ) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(exit) = self.0.try_wait().expect("waiting for a child") {
                return exit;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.0.kill();
                panic!("{what} (within {limit:?})");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// [`ServeProcess::exit_within`] for a process started with its stderr piped, which is read
    /// meanwhile (a full pipe cannot hold it up) and returned.
    pub fn exit_and_stderr_within(
        &mut self,
        limit: std::time::Duration,
        what: &str,
    ) -> (std::process::ExitStatus, String) {
        let mut pipe = self.0.stderr.take().expect("stderr piped");
        let reader = std::thread::spawn(move || {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut stderr).map(|_| stderr)
        });
        let exit = self.exit_within(limit, what);
        (exit, reader.join().expect("reading stderr").expect("stderr"))
    }
}

/// The real server, listening on 127.0.0.1 at a free port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub runtime: Arc<Runtime>,
    pub mqtt: Arc<MqttTriggers>,
    /// Issues function sessions, as a webhook delivery would.
    pub sessions: Arc<wasmfn_runtime::events::Sessions>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/spaces/default/functions/<function>/invoke<rest>`.
    pub fn invoke_url(&self, function: &str, rest: &str) -> String {
        self.url(&format!("/spaces/default/functions/{function}/invoke{rest}"))
    }

    /// A request to the admin API, with the token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Quick retries and deliveries, so failure tests finish in seconds.
pub fn node_options() -> NodeOptions {
    NodeOptions {
        state: None,
        admin_token: ADMIN_TOKEN.into(),
        mqtt_retry: RetryPolicy {
            initial: std::time::Duration::from_millis(200),
            max: std::time::Duration::from_secs(1),
        },
        delivery: DeliveryPolicy {
            attempts: 30,
            initial_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_millis(500),
            timeout: std::time::Duration::from_secs(5),
            // The tests' receivers listen on 127.0.0.1, which deliveries may not reach unless
            // the operator allows it.
            destinations: DestinationPolicy { allow: vec!["127.0.0.1".parse().unwrap()] },
        },
        keep_versions: 3,
        // The fixtures set no `access`; tests of keys start with `AccessPolicy::Key`.
        default_access: AccessPolicy::Public,
        ingress: IngressVerifier::default(),
        async_options: AsyncOptions {
            concurrency: 2,
            queue_limit: 1000,
            ..AsyncOptions::default()
        },
        log_options: Default::default(),
        events: Default::default(),
        clock: Arc::new(SystemClock),
        secure_cookies: false,
        node_id: None,
    }
}

/// Loads the fixtures into space `default` and serves them.
pub async fn start_server(fixtures: &[&str], ingress_root: Option<&str>) -> TestServer {
    start_server_with(fixtures, ingress_root, node_options()).await
}

/// Loads the fixtures (starting their function.toml triggers) and serves them.
pub async fn start_server_with(
    fixtures: &[&str],
    ingress_root: Option<&str>,
    options: NodeOptions,
) -> TestServer {
    let mut bundles = Vec::new();
    for name in fixtures {
        let name = name.to_string();
        let bytes = tokio::task::spawn_blocking(move || fixture_bundle(&name)).await.unwrap();
        bundles.push(("default".to_string(), bytes));
    }
    start_bundles(bundles, ingress_root, options, capability_options()).await
}

/// Capabilities for test servers: embedded stores in the node's temporary data directory and
/// an IXON API nobody listens at (tests that call it give their own).
pub fn capability_options() -> CapabilityOptions {
    CapabilityOptions {
        ixon_api_url: "http://127.0.0.1:1/api/".into(),
        ..CapabilityOptions::default()
    }
}

/// Serves `(space, bundle)`s with the given node options and capabilities.
pub async fn start_bundles(
    bundles: Vec<(String, Vec<u8>)>,
    ingress_root: Option<&str>,
    options: NodeOptions,
    capabilities: CapabilityOptions,
) -> TestServer {
    let runtime = Arc::new(Runtime::new(runtime_config()).expect("runtime"));
    let mut node = Node::new(runtime.clone(), options).expect("node");
    let served = bundles
        .into_iter()
        .map(|(space, bytes)| ServedBundle {
            space,
            bytes: bytes.into(),
            config: Default::default(),
            source: "a test bundle".into(),
        })
        .collect();
    let started = node.start(&capabilities, served).await.expect("starting the node");
    let capabilities = started.capabilities;
    node.mark_ready();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding port 0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    capabilities.presigner.set_base_url(&base);
    // Listed in the node directory (`/admin/nodes`, the console), as `wasmfn serve` does.
    node.announce(base.clone());
    let state = node.app_state(ingress_root.map(|f| ("default".to_string(), f.to_string())));
    let mqtt = node.mqtt.clone();
    let sessions = state.sessions.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
        node.shutdown().await;
    });
    TestServer { base, client: reqwest::Client::new(), runtime, mqtt, sessions, shutdown: Some(tx) }
}

/// Response status and JSON body.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
    (status, value)
}

/// What a [`webhook_receiver`] got: each request's headers and JSON body (a string when the
/// body is not JSON).
pub type Received = Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, serde_json::Value)>>>;

/// A local HTTP server standing in for a webhook or callback endpoint: its `/hook` URL and what
/// it received.
pub async fn webhook_receiver() -> (String, Received) {
    use axum::extract::State;
    let received: Received = Arc::default();
    let handler = |State(received): State<Received>,
                   headers: axum::http::HeaderMap,
                   body: String| async move {
        let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        received.lock().unwrap().push((headers, value));
        "ok"
    };
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(handler))
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}/hook"), received)
}
