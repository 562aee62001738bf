//! Servers sharing their state in PostgreSQL (`wasmfn serve --state postgres://…`): a deploy,
//! rollback, configuration change, API key or delete made on one server reaches the others; a
//! server started later on an empty data directory serves what the cluster deployed; a server
//! with another secrets key refuses to start; the servers accept one admin token. Real `wasmfn serve` processes and the machine's
//! PostgreSQL, on a database of the test's own.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use wasmfn_runtime::access::admin_token::{AdminToken, TokenSource, DIGEST_KEY};
use wasmfn_runtime::bundle::{read_meta, with_meta};
use wasmfn_runtime::host_apis::state::postgres::PostgresState;
use wasmfn_runtime::host_apis::state::{StateBackend, StateChange};
use wasmfn_runtime::state::{admin_token_path, StateDb, TIMED_TREES, WATCHED_TREES};

use support::postgres::{connect, Scratch};
use support::{fixture_bundle, json, spawn_serve_env, ADMIN_TOKEN};

/// The fixture as another version with another `region`: different bytes, visible when called.
fn relabelled(bytes: &[u8], version: &str, region: &str) -> Vec<u8> {
    let mut meta = read_meta(bytes).unwrap().unwrap();
    meta.version = version.into();
    meta.config.insert("region".into(), region.into());
    with_meta(bytes, &meta)
}

struct Node {
    _process: support::ServeProcess,
    base: String,
    client: reqwest::Client,
}

impl Node {
    async fn start_with(data_dir: &Path, state: &str, key: &str, id: &str, more: &[&str]) -> Node {
        let (dir, state, key, id) =
            (data_dir.to_path_buf(), state.to_string(), key.to_string(), id.to_string());
        let more: Vec<String> = more.iter().map(|a| a.to_string()).collect();
        let (process, base) = tokio::task::spawn_blocking(move || {
            let mut args = vec!["--state", &state, "--node-id", &id, "--default-access", "key"];
            args.extend(more.iter().map(String::as_str));
            spawn_serve_env(&dir, &args, &[("WASMFN_SECRETS_KEY", &key)])
        })
        .await
        .unwrap();
        Node { _process: process, base, client: reqwest::Client::new() }
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN)
    }

    /// A new API key of space `default`: its id and the key.
    async fn api_key(&self) -> (String, String) {
        let request =
            self.admin(Method::POST, "/admin/spaces/default/keys").json(&json!({"name": "k"}));
        let (status, made) = json(request.send().await.unwrap()).await;
        assert_eq!(status, 201, "{made}");
        (made["id"].as_str().unwrap().to_string(), made["key"].as_str().unwrap().to_string())
    }

    async fn deploy(&self, bytes: &[u8]) -> Value {
        let path = "/admin/spaces/default/functions/calc/versions";
        let (status, body) =
            json(self.admin(Method::POST, path).body(bytes.to_vec()).send().await.unwrap()).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// `calc`'s answer with `key` (none if empty): its status and configured region.
    async fn call(&self, key: &str) -> (u16, Value) {
        let url = format!("{}/spaces/default/functions/calc:behave.echo/invoke", self.base);
        let mut request = self.client.post(url);
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        let (status, body) = json(request.send().await.unwrap()).await;
        (status, body["config"]["region"].clone())
    }

    /// Waits until `calc` answers `wanted`: at most three minutes, since every server may be
    /// compiling the version at once (on a fresh machine with no compile cache, three servers
    /// each compile it with Winch and then Cranelift on two cores: one took 21 s to serve it
    /// on a warm machine, and more than 60 s once on CI's fresh one).
    async fn answers(&self, key: &str, wanted: (u16, Value)) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let got = self.call(key).await;
            if got == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "{} answers {got:?}, not {wanted:?}", self.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn secrets_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// What the servers of a test cluster share (a scratch database, the secrets key) and a data
/// directory for each. Servers started from it are dropped (killed) before it, so before the
/// database goes.
struct Cluster {
    scratch: Scratch,
    key: String,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn new(servers: usize) -> Self {
        let scratch = Scratch::new("wasmfn_cluster").await;
        let dirs = (0..servers).map(|_| tempfile::tempdir().unwrap()).collect();
        Self { scratch, key: secrets_key(), dirs }
    }

    /// The `--state` URL.
    fn state(&self) -> &str {
        &self.scratch.url
    }

    /// Server `id` on data directory `server`.
    async fn start(&self, server: usize, id: &str) -> Node {
        self.start_with(server, id, &[]).await
    }

    async fn start_with(&self, server: usize, id: &str, more: &[&str]) -> Node {
        Node::start_with(self.dirs[server].path(), self.state(), &self.key, id, more).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_state_follow_each_others_deploys_keys_and_configuration() {
    let v1 = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let v1 = relabelled(&v1, "1.0.0", "eu");
    let v2 = relabelled(&v1, "2.0.0", "us");
    let cluster = Cluster::new(3).await;

    let outcome = async {
        let a = cluster.start(0, "a").await;
        let b = cluster.start(1, "b").await;

        // An API key made on A opens calls on B; one made on B, on A.
        let (_, key_a) = a.api_key().await;
        let (id_b, key_b) = b.api_key().await;

        // Deployed on A (compiled there), served by B without a deploy of its own.
        let deployed = a.deploy(&v1).await;
        assert_eq!(deployed["version"]["state"], "active", "{deployed}");
        a.answers(&key_b, (200, json!("eu"))).await;
        b.answers(&key_a, (200, json!("eu"))).await;

        // Deployed on B, then rolled back on A: both follow each step.
        b.deploy(&v2).await;
        a.answers(&key_a, (200, json!("us"))).await;
        let rollback = a
            .admin(Method::POST, "/admin/spaces/default/functions/calc/rollback")
            .json(&json!({"version": "1.0.0"}))
            .send()
            .await
            .unwrap();
        assert_eq!(rollback.status(), 200, "{}", rollback.text().await.unwrap());
        b.answers(&key_b, (200, json!("eu"))).await;
        let (_, shown) = json(
            b.admin(Method::GET, "/admin/spaces/default/functions/calc").send().await.unwrap(),
        )
        .await;
        assert_eq!(shown["active_version"], "1.0.0", "{shown}");

        // Configuration set on B reaches A's calls.
        let config = b
            .admin(Method::PUT, "/admin/spaces/default/functions/calc/config")
            .json(&json!({"values": {"region": "ca"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(config.status(), 200, "{}", config.text().await.unwrap());
        a.answers(&key_a, (200, json!("ca"))).await;

        // A key revoked on A is refused on B.
        let revoke = a.admin(Method::DELETE, &format!("/admin/spaces/default/keys/{id_b}"));
        assert!(revoke.send().await.unwrap().status().is_success());
        assert_eq!(b.call(&key_b).await.0, 403);

        // A third server on an empty data directory serves what the cluster has, at once: the
        // bundle comes from PostgreSQL.
        let c = cluster.start(2, "c").await;
        assert_eq!(c.call(&key_a).await, (200, json!("ca")));
        let (_, ready) =
            json(c.client.get(format!("{}/readyz", c.base)).send().await.unwrap()).await;
        assert_eq!(ready["backends"]["state"], "ok", "{ready}");

        // Every server is listed, alive, with the version it serves.
        let (_, listed) = json(a.admin(Method::GET, "/admin/nodes").send().await.unwrap()).await;
        assert_eq!(listed["this_node"], "a", "{listed}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = "/admin/spaces/default/functions/calc";
            let (_, shown) = json(a.admin(Method::GET, path).send().await.unwrap()).await;
            let wanted = json!([
                {"node": "a", "version": "1.0.0"},
                {"node": "b", "version": "1.0.0"},
                {"node": "c", "version": "1.0.0"},
            ]);
            if shown["nodes"] == wanted {
                break;
            }
            assert!(Instant::now() < deadline, "servers of calc: {shown}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, listed) = json(b.admin(Method::GET, "/admin/nodes").send().await.unwrap()).await;
        let ids: Vec<&str> =
            listed["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["b", "a", "c"], "this server first: {listed}");
        assert!(listed["nodes"].as_array().unwrap().iter().all(|n| n["alive"] == true));
        assert!(listed["nodes"][0]["address"].as_str().unwrap().starts_with("http://127.0.0.1:"));

        // Signing keys rotated on B reach A and C.
        let keys_of = |node: &Node| {
            let request = node.admin(Method::GET, "/admin/signing-keys");
            async move { json(request.send().await.unwrap()).await.1["keys"].clone() }
        };
        let before = keys_of(&a).await;
        assert_eq!(before, keys_of(&b).await, "one cluster, one set of keys");
        assert_eq!(before.as_object().unwrap().len(), 2, "{before}");
        let (status, rotated) =
            json(b.admin(Method::POST, "/admin/signing-keys/rotate").send().await.unwrap()).await;
        assert_eq!(status, 200, "{rotated}");
        let rotated = rotated["keys"].clone();
        assert_ne!(rotated["presign"], before["presign"]);
        assert_ne!(rotated["sessions"], before["sessions"]);
        for node in [&a, &c] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while keys_of(node).await != rotated {
                assert!(Instant::now() < deadline, "{} kept its old keys", node.base);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        // Two deploys of the function at the same instant on two servers: the record keeps
        // both versions (it is changed by compare-and-swap), the newer is active everywhere.
        let (v3, v4) = (relabelled(&v1, "3.0.0", "eu"), relabelled(&v1, "4.0.0", "eu"));
        futures::future::join(a.deploy(&v3), c.deploy(&v4)).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let path = "/admin/spaces/default/functions/calc";
            let (_, shown) = json(b.admin(Method::GET, path).send().await.unwrap()).await;
            let versions: Vec<&str> = shown["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap())
                .collect();
            assert!(versions.contains(&"3.0.0") && versions.contains(&"4.0.0"), "{shown}");
            let everywhere =
                shown["nodes"].as_array().unwrap().iter().all(|n| n["version"] == "4.0.0");
            if shown["active_version"] == "4.0.0" && everywhere {
                break;
            }
            assert!(Instant::now() < deadline, "not 4.0.0 everywhere: {shown}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The four versions' bundles are in PostgreSQL in rows of at most 1 MiB, each bundle
        // with its record.
        let db = connect(cluster.state()).await;
        let bundle_rows = || async {
            let row = db
                .query_one(
                    "SELECT count(*), coalesce(max(octet_length(value)), 0),
                            count(*) FILTER (WHERE key LIKE 'whole:%')
                     FROM wasmfn_state WHERE tree = 'bundles'",
                    &[],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i32>(1), row.get::<_, i64>(2))
        };
        let (rows, largest, bundles) = bundle_rows().await;
        let chunks_of_v1 = v1.len().div_ceil(1 << 20) as i64;
        assert_eq!(bundles, 4, "one record per bundle ({rows} rows, largest {largest})");
        assert!(rows >= 4 * chunks_of_v1, "{rows} rows for four bundles of {} bytes", v1.len());
        assert!(largest <= 1 << 20, "a row of {largest} bytes");

        // Deleted on C: gone everywhere, its bundles too.
        let deleted = c.admin(Method::DELETE, "/admin/spaces/default/functions/calc");
        assert!(deleted.send().await.unwrap().status().is_success());
        a.answers(&key_a, (404, Value::Null)).await;
        b.answers(&key_a, (404, Value::Null)).await;
        assert_eq!(bundle_rows().await.0, 0, "the bundles' rows are removed");

        // The cluster has one presign key and one session key, each with the previous one, and
        // the admin token's digest.
        let rows = db
            .query("SELECT key FROM wasmfn_state WHERE tree = 'secrets' ORDER BY key", &[])
            .await
            .unwrap();
        let names: Vec<Vec<u8>> = rows.iter().map(|row| row.get(0)).collect();
        let expected =
            ["admin-token.sha256", "presign", "presign.previous", "sessions", "sessions.previous"];
        assert_eq!(names, expected.map(|n| n.as_bytes().to_vec()));
    }
    .await;
    drop(cluster);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_secrets_key_or_no_database_refuses_to_start() {
    let cluster = Cluster::new(2).await;

    let outcome = async {
        let _a = cluster.start(0, "a").await;
        let refused = |state: String, key: String| {
            let dir = cluster.dirs[1].path().to_path_buf();
            tokio::task::spawn_blocking(move || {
                let child = support::wasmfn()
                    .args(["serve", "--listen", "127.0.0.1:0", "--state", &state])
                    .arg("--data-dir")
                    .arg(&dir)
                    .env("WASMFN_SECRETS_KEY", key)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut child = support::ServeProcess::from(child);
                // Bounded: a server that starts after all is killed and fails the test.
                child.exit_and_stderr_within(
                    Duration::from_secs(60),
                    "the server started instead of refusing",
                )
            })
        };
        let (status, stderr) = refused(cluster.state().into(), secrets_key()).await.unwrap();
        assert!(!status.success(), "{stderr}");
        assert!(stderr.contains("cannot read the "), "{stderr}");
        assert!(stderr.contains("--secrets-key-file"), "{stderr}");

        // Nothing listens on port 1: a clear error, no password repeated.
        let unreachable = "postgres://wasmfn:hunter2@127.0.0.1:1/none".to_string();
        let (status, stderr) = refused(unreachable, secrets_key()).await.unwrap();
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("--state: the state store (PostgreSQL) cannot be reached"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    .await;
    drop(cluster);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_of_a_killed_server_are_taken_over_and_a_failed_load_or_read_leaves_the_record() {
    let behave = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    // A region of its own: bytes no compile cache holds, so the compile takes seconds.
    let region = format!("r{}", rand::random::<u32>());
    let bundle = relabelled(&behave, "7.0.0", &region);
    let cluster = Cluster::new(4).await;

    let outcome = async {
        // A compiles with Cranelift alone (seconds): a deploy's compile starts before it is
        // recorded, and Winch's could end before the 202 does.
        let a = cluster.start_with(0, "a", &["--baseline-tier", "false"]).await;
        let b = cluster.start(1, "b").await;
        let (_, api_key) = b.api_key().await;

        // Accepted by A, which is killed at once, mid-compile.
        let path = "/admin/spaces/default/functions/calc/versions?wait=false";
        let (status, accepted) =
            json(a.admin(Method::POST, path).body(bundle).send().await.unwrap()).await;
        assert_eq!(status, 202, "{accepted}");
        drop(a);
        let shown = |node: &Node| {
            let request = node.admin(Method::GET, "/admin/spaces/default/functions/calc");
            async move { json(request.send().await.unwrap()).await.1 }
        };
        let record = shown(&b).await;
        assert_eq!(record["versions"][0]["state"], "compiling", "{record}");
        assert_eq!(record["versions"][0]["compiling_on"], "a", "{record}");

        // Once A is found gone (20 s without a beat), B takes the compile over and serves it.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let record = shown(&b).await;
            let version = &record["versions"][0];
            if version["state"] == "active" {
                assert!(version.get("compiling_on").is_none(), "{record}");
                break;
            }
            assert_eq!(version["state"], "compiling", "{record}");
            assert!(Instant::now() < deadline, "never compiled: {record}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        b.answers(&api_key, (200, json!(region))).await;
        let (_, nodes) = json(b.admin(Method::GET, "/admin/nodes").send().await.unwrap()).await;
        let a_listed = nodes["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "a");
        assert_eq!(a_listed.unwrap()["taken_over_by"], "b", "{nodes}");

        // A server that cannot load the version (its memory cap is below the function's 128
        // MiB) starts without it, and leaves the cluster's record alone: B serves on.
        let small = ["--max-memory-mb", "64"];
        let c = cluster.start_with(2, "c", &small).await;
        let record = shown(&c).await;
        assert_eq!(record["versions"][0]["state"], "active", "{record}");
        assert_eq!(c.call(&api_key).await.0, 404);
        b.answers(&api_key, (200, json!(region))).await;
        drop(c);

        // Nor does a server that cannot read the version's bundle from the cluster's store (its
        // rows damaged here; a store not answering as the server starts is the same to it).
        let db = connect(cluster.state()).await;
        let damage = "DELETE FROM wasmfn_state WHERE tree = 'bundles' AND key LIKE 'chunk:%'";
        assert!(db.execute(damage, &[]).await.unwrap() > 0);
        let d = cluster.start(3, "d").await;
        let record = shown(&d).await;
        assert_eq!(record["versions"][0]["state"], "active", "{record}");
        assert_eq!(d.call(&api_key).await.0, 404);
        b.answers(&api_key, (200, json!(region))).await;
    }
    .await;
    drop(cluster);
    outcome
}

/// A server's state: its own data directory, the records in the shared database.
async fn shared_state(url: &str) -> (StateDb, tokio::sync::broadcast::Receiver<StateChange>) {
    let url = url.to_string();
    let backend = tokio::task::spawn_blocking(move || {
        PostgresState::connect(&url, &WATCHED_TREES, &TIMED_TREES).unwrap()
    })
    .await
    .unwrap();
    let changes = backend.changes().unwrap();
    (StateDb::temporary().unwrap().with_backend(std::sync::Arc::new(backend)), changes)
}

async fn resolve(state: &StateDb, given: Option<&str>) -> (AdminToken, TokenSource) {
    let (state, given) = (state.clone(), given.map(str::to_string));
    tokio::task::spawn_blocking(move || AdminToken::resolve(&state, given).unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_state_accept_one_admin_token_and_a_given_one_replaces_it() {
    let scratch = Scratch::new("wasmfn_cluster").await;
    let outcome = async {
        // The first server generates the token; a second one, with an empty data directory,
        // accepts it and writes no token file of its own.
        let (a, _) = shared_state(&scratch.url).await;
        let (token_a, source) = resolve(&a, None).await;
        let TokenSource::Generated(generated) = source else { panic!("{source:?}") };
        let (b, mut b_hears) = shared_state(&scratch.url).await;
        let (token_b, source) = resolve(&b, None).await;
        assert_eq!(source, TokenSource::Cluster { stale: false });
        assert!(token_b.verify(&generated) && token_a.verify(&generated));
        assert!(!admin_token_path(b.data_dir()).exists());

        // A server whose data directory holds another token accepts the cluster's only.
        let (c, _) = shared_state(&scratch.url).await;
        std::fs::write(admin_token_path(c.data_dir()), "left-from-before").unwrap();
        let (token_c, source) = resolve(&c, None).await;
        assert_eq!(source, TokenSource::Cluster { stale: true });
        assert!(token_c.verify(&generated) && !token_c.verify("left-from-before"));

        // One given --admin-token sets the cluster's: the others hear of it, and once they
        // read it again the old token is refused everywhere.
        let (d, _) = shared_state(&scratch.url).await;
        let (token_d, source) = resolve(&d, Some("rotated-by-d")).await;
        assert_eq!(source, TokenSource::Given);
        assert!(token_d.verify("rotated-by-d"));
        let heard = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match b_hears.recv().await.unwrap() {
                    StateChange::Key { tree, key }
                        if tree == "secrets" && key == DIGEST_KEY.as_bytes() =>
                    {
                        return
                    }
                    _ => continue,
                }
            }
        })
        .await;
        assert!(heard.is_ok(), "B heard nothing of the new token");
        for token in [&token_a, &token_b, &token_c] {
            token.reload().unwrap();
            assert!(token.verify("rotated-by-d") && !token.verify(&generated));
        }
    }
    .await;
    drop(scratch);
    outcome
}

/// HTTP invocations a server finished (its own `/metrics`).
async fn http_calls(node: &Node) -> u64 {
    let text = node.admin(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("wasmfn_invocations_total{") && l.contains(r#"trigger="http""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// HAProxy with docs/cluster/haproxy.cfg, its frontend on a free port and its servers the
/// given ones; killed when dropped.
struct Balancer {
    process: std::process::Child,
    base: String,
    _config: tempfile::NamedTempFile,
}

impl Balancer {
    fn start(servers: &[&str]) -> Balancer {
        let documented = support::repo_root().join("docs/cluster/haproxy.cfg");
        let mut config = std::fs::read_to_string(documented).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        config = config.replace("bind 127.0.0.1:8080", &format!("bind 127.0.0.1:{port}"));
        for (i, server) in servers.iter().enumerate() {
            let documented = format!("127.0.0.1:{}", 8081 + i);
            assert!(config.contains(&documented), "the documented config names {documented}");
            config = config.replace(&documented, server.trim_start_matches("http://"));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config).unwrap();
        let process = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(file.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy (scripts/setup-haproxy.sh installs it)");
        Balancer { process, base: format!("http://127.0.0.1:{port}"), _config: file }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Three servers behind HAProxy (the documented configuration): a deploy through the balancer
/// reaches all three, calls are spread over them, a cron trigger fires once per tick in the
/// cluster, and when one server is killed -9 the calls go on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_behind_haproxy_share_calls_and_cron_ticks_and_survive_a_kill() {
    let behave = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let (hook, received) = support::webhook_receiver().await;
    // Every minute, its outcome POSTed to the test's receiver.
    let mut meta = read_meta(&behave).unwrap().unwrap();
    meta.version = "1.0.0".into();
    meta.access = serde_json::from_value(json!("public")).unwrap();
    meta.cron = serde_json::from_value(json!([{
        "name": "minutely", "schedule": "* * * * *", "entry": "behave.scheduled",
        "callback_url": hook,
    }]))
    .unwrap();
    let bundle = with_meta(&behave, &meta);
    let cluster = Cluster::new(3).await;

    let outcome = async {
        let mut nodes = Vec::new();
        for (server, id) in ["a", "b", "c"].into_iter().enumerate() {
            nodes.push(cluster.start(server, id).await);
        }
        let servers: Vec<&str> = nodes.iter().map(|n| n.base.as_str()).collect();
        let balancer = Balancer::start(&servers);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .get(format!("{}/readyz", balancer.base))
            .send()
            .await
            .map_or(true, |r| r.status() != 200)
        {
            assert!(Instant::now() < deadline, "the balancer never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Deployed through the balancer (to whichever server), served by all three.
        let deployed = client
            .post(format!("{}/admin/spaces/default/functions/calc/versions", balancer.base))
            .bearer_auth(ADMIN_TOKEN)
            .body(bundle.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(deployed.status(), 201, "{}", deployed.text().await.unwrap());
        for node in &nodes {
            node.answers("", (200, json!("eu"))).await;
        }
        let before: Vec<u64> = futures::future::join_all(nodes.iter().map(http_calls)).await;
        let url = format!("{}/spaces/default/functions/calc:behave.echo/invoke", balancer.base);
        for _ in 0..30 {
            let response = client.post(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let after: Vec<u64> = futures::future::join_all(nodes.iter().map(http_calls)).await;
        let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(served.iter().sum::<u64>(), 30, "{served:?}");
        assert!(served.iter().all(|&n| n > 0), "every server took calls: {served:?}");

        // The invocation log is the cluster's: every server lists the same records, those of
        // the calls the others ran among them (records are written within a second).
        let logged = |node: &Node| {
            let request =
                node.admin(Method::GET, "/admin/logs?function=calc&trigger=http&limit=1000");
            async move {
                let (status, body) = json(request.send().await.unwrap()).await;
                assert_eq!(status, 200, "{body}");
                let ids = body["records"].as_array().unwrap().iter();
                ids.map(|r| r["id"].as_str().unwrap().to_string())
                    .collect::<std::collections::BTreeSet<String>>()
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen: Vec<_> = futures::future::join_all(nodes.iter().map(logged)).await;
            if seen[0].len() >= 30 && seen.iter().all(|ids| *ids == seen[0]) {
                break;
            }
            let counts: Vec<usize> = seen.iter().map(|ids| ids.len()).collect();
            assert!(Instant::now() < deadline, "records seen by each server: {counts:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // A browser keeps to one server (the console's session is in that server's memory):
        // the balancer's cookie pins every call that sends it back.
        let page = client.get(format!("{}/console", balancer.base)).send().await.unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
        let cookie = cookie.split(';').next().unwrap().to_string();
        assert!(cookie.starts_with("WASMFN_SERVER="), "{cookie}");
        let before: Vec<u64> = futures::future::join_all(nodes.iter().map(http_calls)).await;
        for _ in 0..9 {
            let response = client.post(&url).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let after: Vec<u64> = futures::future::join_all(nodes.iter().map(http_calls)).await;
        let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert!(served.contains(&9), "one server took all nine: {served:?}");

        // Cron: two ticks fire, each once in the cluster (three servers run the schedule).
        let deadline = Instant::now() + Duration::from_secs(150);
        while received.lock().unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "fewer than two cron ticks in 150 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A duplicate would come within the same second as its tick; give it three.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ticks: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body["scheduled_time"].as_str().unwrap_or_default().to_string())
            .collect();
        let distinct: std::collections::BTreeSet<&String> = ticks.iter().collect();
        assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");

        // One server killed -9: every call through the balancer still answers.
        drop(nodes.remove(0));
        for _ in 0..30 {
            let response = client.post(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    .await;
    drop(cluster);
    outcome
}

/// Asynchronous invocations are one queue for the cluster: 2,000 accepted on A, readable on
/// B, and when A is killed -9 with jobs waiting and running, B takes them over once A's leases
/// expire; every job's callback arrives (at least once) and B answers every status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_of_a_killed_server_are_taken_over_by_another() {
    let behave = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    // A 10 s timeout rather than the fixture's 1 s: with 2,000 jobs and the other tests of this
    // file on the machine's 2 cores, a 400 ms nap can take over a second.
    let mut meta = read_meta(&relabelled(&behave, "1.0.0", "eu")).unwrap().unwrap();
    meta.limits.get_or_insert_with(Default::default).timeout_ms = Some(10_000);
    let bundle = with_meta(&behave, &meta);
    let (hook, received) = support::webhook_receiver().await;
    let cluster = Cluster::new(2).await;

    let outcome = async {
        // A runs one job at a time: most of the 2,000 wait in its queue when it is killed.
        let flags = ["--async-lease", "3s", "--async-concurrency", "1"];
        let a = cluster.start_with(0, "a", &flags).await;
        let b = cluster.start_with(1, "b", &flags[..2]).await;
        a.deploy(&bundle).await;
        let (_, api_key) = a.api_key().await;
        // Ten slow jobs first (one is running when A dies), then 1,990 quick ones, sent 16 at
        // a time.
        let accept = |entry: &str, arguments: Value| {
            let url = format!("{}/spaces/default/functions/calc:behave.{entry}/async-invoke", a.base);
            let request = a
                .client
                .post(url)
                .bearer_auth(&api_key)
                .header("x-callback-url", &hook)
                .json(&arguments);
            async move {
                let (status, body) = json(request.send().await.unwrap()).await;
                assert_eq!(status, 202, "{body}");
                body["id"].as_str().unwrap().to_string()
            }
        };
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(accept("nap", json!({"ms": 400})).await);
        }
        use futures::StreamExt as _;
        let quick: Vec<String> = futures::stream::iter(0..1990)
            .map(|n| accept("echo", json!({"n": n})))
            .buffered(16)
            .collect()
            .await;
        ids.extend(quick);
        assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 2000);
        // Any server answers the status of any job.
        let (status, shown) =
            json(b.client.get(format!("{}/invocations/{}", b.base, ids[9])).send().await.unwrap())
                .await;
        assert_eq!(status, 200, "{shown}");

        // A is killed once all are accepted and its first job called back.
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "A ran no job");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The delivery log is the cluster's: B lists the callback A delivered.
        let first = received.lock().unwrap()[0].0["x-invocation-id"].to_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, log) =
                json(b.admin(Method::GET, "/admin/deliveries").send().await.unwrap()).await;
            assert_eq!(status, 200, "{log}");
            let listed = log["deliveries"].as_array().unwrap();
            if listed.iter().any(|d| d["invocation_id"] == first.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "B does not list A's delivery {first}: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(a);
        let called_before_kill = received.lock().unwrap().len();
        assert!(called_before_kill < 1000, "A had run {called_before_kill} jobs: kill it earlier");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let called: std::collections::BTreeSet<String> = received
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(headers, _)| {
                    Some(headers.get("x-invocation-id")?.to_str().ok()?.to_string())
                })
                .collect();
            if ids.iter().all(|id| called.contains(id)) {
                break;
            }
            assert!(Instant::now() < deadline, "callbacks came for {} of 2000", called.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let callbacks = received.lock().unwrap().len();
        eprintln!("{called_before_kill} called back before A was killed; {callbacks} callbacks for 2000 jobs");
        for id in &ids {
            let (status, shown) =
                json(b.client.get(format!("{}/invocations/{id}", b.base)).send().await.unwrap())
                    .await;
            assert_eq!((status, shown["state"].as_str()), (200, Some("succeeded")), "{shown}");
        }
    }
    .await;
    drop(cluster);
    outcome
}
