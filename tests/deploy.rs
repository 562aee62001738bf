//! Deploying into a running `wasmfn serve` (the real binary) through the admin API and the
//! CLI: versions must increase, bad bundles are refused while the active version serves on,
//! rollback, and everything survives a kill -9.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use wasmfn_runtime::bundle::{read_meta, sha256_hex, with_meta};

use support::{fixture_bundle, json, spawn_serve, ADMIN_TOKEN};

struct Server {
    child: support::ServeProcess,
    base: String,
    client: reqwest::Client,
}

impl Server {
    /// `wasmfn serve` with no paths: only what is deployed, kept in `data_dir`.
    fn start(data_dir: &Path) -> Self {
        let flags = ["--keep-versions", "2", "--default-access", "public"];
        let (child, base) = spawn_serve(data_dir, &flags);
        Self { child, base, client: reqwest::Client::new() }
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN)
    }

    async fn deploy(&self, bytes: &[u8], query: &str) -> (u16, Value) {
        let path = format!("/admin/spaces/default/functions/calc/versions{query}");
        json(self.admin(Method::POST, &path).body(bytes.to_vec()).send().await.unwrap()).await
    }

    /// What `calc` answers now: the `region` from its configuration.
    async fn region(&self) -> Value {
        let url = format!("{}/spaces/default/functions/calc:behave.echo/invoke", self.base);
        let (status, body) = json(self.client.post(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        body["config"]["region"].clone()
    }

    async fn show(&self) -> Value {
        let path = "/admin/spaces/default/functions/calc";
        let (status, body) = json(self.admin(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The fixture relabelled as another version with another configuration: different bytes,
/// so a different sha256, and a visible difference when called.
fn relabelled(bytes: &[u8], version: &str, region: &str) -> Vec<u8> {
    let mut meta = read_meta(bytes).unwrap().unwrap();
    meta.version = version.into();
    meta.config.insert("region".into(), region.into());
    with_meta(bytes, &meta)
}

fn states(function: &Value) -> Vec<(String, String)> {
    function["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap().into(), v["state"].as_str().unwrap().into()))
        .collect()
}

#[tokio::test]
async fn deploy_upgrade_refuse_roll_back_and_survive_a_kill() {
    let v1 = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let v2 = relabelled(&v1, "2.0.0", "v2");
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path());

    // v1, waiting for the compile: active at once.
    let (status, body) = server.deploy(&v1, "").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["version"]["version"].as_str(), body["version"]["state"].as_str()),
        (Some("1.0.0"), Some("active"))
    );
    assert_eq!(server.region().await, "eu");

    // v2 in the background: 202, then active once compiled.
    let (status, body) = server.deploy(&v2, "?wait=false").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["version"]["state"], "compiling");
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.show().await["active_version"] != "2.0.0" {
        assert!(Instant::now() < deadline, "v2 never became active: {}", server.show().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.region().await, "v2");

    // Equal or lower versions are refused, naming the active one.
    for (bytes, version) in [(&v1, "1.0.0"), (&v2, "2.0.0")] {
        let (status, body) = server.deploy(bytes, &format!("?version={version}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("version_not_newer")));
        assert!(
            body["error"]["message"].as_str().unwrap().contains("active version 2.0.0"),
            "{body}"
        );
    }
    // A refused bundle leaves no file behind in the store.
    let low = relabelled(&v1, "0.5.0", "low");
    assert_eq!(server.deploy(&low, "").await.0, 409);
    let stored = data_dir.path().join("bundles").join(format!("{}.wasm", sha256_hex(&low)));
    assert!(!stored.exists(), "no orphan bundle at {}", stored.display());
    // Garbage, a core module and a truncated bundle: 400 with the reason; v2 serves on.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let truncated = v2[..v2.len() / 2].to_vec();
    for (bytes, expected) in [
        (b"PK\x03\x04 not wasm".to_vec(), "not a WebAssembly binary"),
        (core_module, "core WebAssembly module"),
        (truncated, "malformed or truncated"),
    ] {
        let (status, body) = server.deploy(&bytes, "?version=3.0.0").await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains(data_dir.path().to_str().unwrap()), "no host paths: {message}");
    }
    assert_eq!(server.region().await, "v2");

    // Rollback to the kept v1.
    let (status, body) = json(
        server
            .admin(Method::POST, "/admin/spaces/default/functions/calc/rollback")
            .json(&json!({"version": "1.0.0"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.region().await, "eu");
    let shown = server.show().await;
    assert_eq!(
        states(&shown),
        [("1.0.0".into(), "active".into()), ("2.0.0".into(), "inactive".into())]
    );
    let missing = server
        .admin(Method::POST, "/admin/spaces/default/functions/calc/rollback")
        .json(&json!({"version": "9.9.9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // kill -9: bundles and records are on disk; the restarted server serves v1 again.
    server.kill();
    let server = Server::start(data_dir.path());
    assert_eq!(server.region().await, "eu");
    assert_eq!(states(&server.show().await), states(&shown));

    // Only the last two versions are kept (--keep-versions 2); the active one always is.
    let v3 = relabelled(&v1, "3.0.0", "v3");
    let (status, _) = server.deploy(&v3, "").await;
    assert_eq!(status, 201);
    assert_eq!(server.region().await, "v3");
    let versions: Vec<_> = states(&server.show().await).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["2.0.0", "3.0.0"]);

    // Deleted: gone for callers and for the admin API.
    let deleted =
        server.admin(Method::DELETE, "/admin/spaces/default/functions/calc").send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let url = format!("{}/spaces/default/functions/calc/invoke", server.base);
    assert_eq!(server.client.post(url).send().await.unwrap().status(), 404);
    server.kill();
}

#[tokio::test]
async fn the_cli_deploys_lists_and_rolls_back() {
    let v1 = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v1_path = dir.path().join("v1.wasm");
    std::fs::write(&v1_path, &v1).unwrap();
    let v2_path = dir.path().join("v2.wasm");
    std::fs::write(&v2_path, relabelled(&v1, "1.1.0", "v2")).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path());
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
            .args(args)
            .args(["--server", &server.base, "--token", ADMIN_TOKEN])
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };
    let (ok, out, err) = cli(&["deploy", v1_path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "default/behave 1.0.0: active");
    let (ok, out, err) = cli(&["deploy", v2_path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "default/behave 1.1.0: active");
    let (ok, _, err) = cli(&["deploy", v1_path.to_str().unwrap()]);
    assert!(!ok && err.contains("409") && err.contains("active version 1.1.0"), "{err}");
    let (ok, out, _) = cli(&["functions", "list"]);
    assert!(ok);
    let row = out.lines().find(|l| l.contains("behave")).expect("listed");
    assert!(row.contains("1.1.0") && row.contains("deployed"), "{out}");
    let (ok, out, err) = cli(&["functions", "rollback", "behave", "1.0.0"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "default/behave 1.0.0: active");
    let (ok, _, err) = cli(&["functions", "rollback", "behave", "7.0.0"]);
    assert!(!ok && err.contains("404"), "{err}");

    // A folder whose version the server would refuse is refused before it is built.
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("function.toml"), "name = \"behave\"\nversion = \"1.0.0\"\n")
        .unwrap();
    std::fs::write(folder.path().join("behave.py"), "this is not Python (never built)\n").unwrap();
    let folder_arg = folder.path().to_str().unwrap();
    let (ok, _, err) = cli(&["deploy", folder_arg]);
    assert!(!ok && err.contains("not greater than the active version 1.0.0"), "{err}");
    let (ok, _, err) = cli(&["deploy", folder_arg, "--version", "1.1.0"]);
    assert!(!ok && err.contains("1.1.0 of default/behave is already deployed"), "{err}");
    assert!(!folder.path().join("dist").exists(), "nothing was built");
    let (ok, _, err) = cli(&["deploy", folder_arg, "--version", "1.2"]);
    assert!(!ok && err.contains("'1.2' is not a semantic version"), "{err}");

    // A refused token names where it came from.
    let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["functions", "list", "--server", &server.base, "--token", "not-the-token"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("--token or WASMFN_ADMIN_TOKEN"), "{err}");

    // The operator's outbound allowlist (docs/network.md).
    let network = |args: &[&str]| {
        let (ok, out, err) = cli(&[&["functions", "network", "behave"], args].concat());
        (ok, serde_json::from_str::<Value>(&out).unwrap_or(Value::Null), err)
    };
    let (ok, shown, err) = network(&[]);
    assert!(ok, "{err}");
    assert_eq!((shown["source"].as_str(), &shown["allow"]), (Some("function.toml"), &json!([])));
    let (ok, shown, err) =
        network(&["--allow", "https://api.example.com", "--allow", "*.example.org"]);
    assert!(ok, "{err}");
    assert_eq!(shown["allow"], json!(["https://api.example.com", "*.example.org"]));
    assert_eq!(shown["source"], "operator");
    let (ok, _, err) = network(&["--allow", "ftp://x.example"]);
    assert!(!ok && err.contains("400") && err.contains("ftp"), "{err}");
    let (ok, _, err) = network(&["--allow", "x.example", "--clear"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, shown, err) = network(&["--clear"]);
    assert!(ok, "{err}");
    assert_eq!(shown["source"], "function.toml");
    server.kill();

    // Restarted with a bundle of the same name on its command line, the deployed version
    // answers, and the start-up lines say so.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .arg("serve")
        .arg(&v2_path)
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN, "--data-dir"])
        .arg(data_dir.path())
        .env("WASMFN_CACHE_DIR", support::work_dir().join("compiled"))
        .env("WASMFN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = support::ServeProcess::from(child);
    let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .take_while(|line| !line.contains("admin API"))
        .collect();
    let note = "note: behave answers with its deployed version 1.0.0, not with the 1.1.0 given";
    assert!(lines.iter().any(|line| line.contains(note)), "{lines:#?}");
}

#[tokio::test]
async fn a_served_version_is_kept_for_rollback_once_a_deploy_takes_over() {
    let fixture = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let mut meta = read_meta(&fixture).unwrap().unwrap();
    meta.name = "calc".into();
    let named = with_meta(&fixture, &meta);
    let dir = tempfile::tempdir().unwrap();
    let served_path = dir.path().join("calc.wasm");
    std::fs::write(&served_path, relabelled(&named, "1.0.0", "served")).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let flags = ["--default-access", "public", served_path.to_str().unwrap()];
    let (child, base) = spawn_serve(data_dir.path(), &flags);
    let server = Server { child, base, client: reqwest::Client::new() };
    assert_eq!(server.region().await, "served");

    // The first deploy takes over, and the served version becomes a kept one.
    let (status, body) = server.deploy(&relabelled(&named, "2.0.0", "deployed"), "").await;
    assert_eq!((status, body["version"]["state"].as_str()), (201, Some("active")), "{body}");
    assert_eq!(server.region().await, "deployed");
    let shown = server.show().await;
    assert_eq!(
        states(&shown),
        [("1.0.0".to_string(), "inactive".to_string()), ("2.0.0".into(), "active".into())],
        "{shown}"
    );
    assert_eq!(shown["versions"][0]["served"], true, "{shown}");

    // Roll back to what was served, and it survives a restart without the path.
    let path = "/admin/spaces/default/functions/calc/rollback";
    let (status, body) = json(
        server.admin(Method::POST, path).json(&json!({"version": "1.0.0"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.region().await, "served");
    server.kill();
    let server = Server::start(data_dir.path());
    assert_eq!(server.region().await, "served");
    assert_eq!(states(&server.show().await)[0], ("1.0.0".to_string(), "active".to_string()));
}
