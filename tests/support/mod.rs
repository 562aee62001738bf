//! Shared by the end-to-end tests: fixture bundles built once with the real componentize-py
//! and compiled once into a shared cache, and the real server on a port-0 socket.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use wasmfn_runtime::limits::{EngineLimits, Limits};
use wasmfn_runtime::python_build::{build_if_stale, BuildOptions};
use wasmfn_runtime::runtime::{Runtime, RuntimeConfig};
use wasmfn_runtime::server::{self, AppState};

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

pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// A runtime sized for tests, sharing the compiled-bundle cache.
pub fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: work_dir().join("compiled"),
        engine: EngineLimits { max_instances: 32, max_memory_mb: 512 },
        default_limits: Limits::default(),
    }
}

/// The bundle of a fixture folder: built when stale and compiled into the cache, once, even
/// when several tests (threads or processes) ask at the same time.
pub fn fixture_bundle(name: &str) -> Vec<u8> {
    let lock = File::create(work_dir().join(format!("{name}.lock"))).expect("creating lock");
    lock.lock().expect("locking the fixture");
    let options = BuildOptions { out_dir: Some(work_dir().join("bundles")), progress: true };
    let built = build_if_stale(&fixture_dir(name), &options)
        .unwrap_or_else(|e| panic!("building fixture {name}: {e}"));
    let bytes = std::fs::read(&built.wasm).expect("reading the built bundle");
    let runtime = Runtime::new(runtime_config()).expect("runtime");
    let sha = wasmfn_runtime::bundle::sha256_hex(&bytes);
    runtime.cache().load(runtime.engine(), &bytes, &sha).expect("compiling the fixture");
    bytes
}

/// The real server, listening on 127.0.0.1 at a free port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub runtime: Arc<Runtime>,
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
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Loads the fixtures into space `default` and serves them.
pub async fn start_server(fixtures: &[&str], ingress_root: Option<&str>) -> TestServer {
    let runtime = Arc::new(Runtime::new(runtime_config()).expect("runtime"));
    for name in fixtures {
        let name = name.to_string();
        let bytes = tokio::task::spawn_blocking(move || fixture_bundle(&name)).await.unwrap();
        runtime.load(bytes, "default", None).await.expect("loading fixture");
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding port 0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState {
        invoker: runtime.invoker().clone(),
        ingress_root: ingress_root.map(|f| ("default".to_string(), f.to_string())),
        runtime: runtime.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestServer { base, client: reqwest::Client::new(), runtime, shutdown: Some(tx) }
}

/// Response status and JSON body.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
    (status, value)
}
