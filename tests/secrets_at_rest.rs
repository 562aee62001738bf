//! Secrets at rest, end to end with the real `wasmfn serve`: a webhook secret, an MQTT trigger
//! password and a `[secrets]` override set through the admin API, and the node's presign and
//! session keys, are nowhere in the data directory in plain text (raw bytes scanned); the data
//! directory is its owner's only; a restart with the same key, and one rotating to a new key,
//! keep everything working; a wrong key stops the start with a clear error; and a caller's
//! ingress `config` cannot replace a secret.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;
use wasmfn_runtime::sealed::{self, KeyOptions, SecretsKey};

const ENV_TOKEN: &str = "env-token-value";
const OVERRIDE_SECRET: &str = "admin-set-token-123";
const MQTT_PASSWORD: &str = "mqtt-broker-password-8c1f";

fn bundles() -> Vec<String> {
    fixture_bundle("eventful");
    fixture_bundle("secretive");
    ["eventful-1.0.0.wasm", "secretive-1.0.0.wasm"]
        .iter()
        .map(|b| work_dir().join("bundles").join(b).to_string_lossy().into_owned())
        .collect()
}

/// Starts the binary on `data_dir` with the fixtures and `extra` flags.
async fn serve(data_dir: &Path, bundles: &[String], extra: &[String]) -> (ServeProcess, String) {
    let mut args: Vec<String> = bundles.to_vec();
    args.extend(["--default-access".into(), "public".into()]);
    args.extend(extra.iter().cloned());
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_serve_env(&dir, &args, &[("WASMFN_TEST_SECRET_TOKEN", ENV_TOKEN)])
    })
    .await
    .unwrap()
}

fn stop(mut server: ServeProcess) {
    server.kill().unwrap();
    server.wait().unwrap();
}

/// What `secretive.peek` sees: the length of its secret.
async fn token_length(client: &reqwest::Client, base: &str) -> Value {
    let url = format!("{base}/spaces/default/functions/secretive:secretive.peek/invoke");
    let (status, body) = json(client.post(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["token_length"].clone()
}

/// Inserts a document (an event for the webhook) and waits for the webhook's secret.
async fn webhook_secret_after_insert(
    client: &reqwest::Client,
    base: &str,
    hooked: &Received,
    key: &str,
) -> Value {
    let url = format!("{base}/spaces/default/functions/eventful:eventful.write/invoke");
    let body = json!({"op": "insert", "key": key, "value": 1});
    let (status, answer) = json(client.post(url).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = hooked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b)
            .find(|b| b["data"]["row_id"] == key)
            .cloned();
        if let Some(event) = found {
            return event["_secret"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "the webhook never got {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        found.push(path.clone());
        if path.is_dir() {
            found.extend(files_under(&path));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The node's signing keys, opened with the data directory's key file.
fn node_keys(data_dir: &Path) -> Vec<Vec<u8>> {
    let sealer = sealed::load(data_dir, &KeyOptions::default()).unwrap();
    let db = sled::open(data_dir.join("state")).unwrap();
    let tree = db.open_tree("secrets").unwrap();
    ["presign", "sessions"]
        .iter()
        .map(|name| {
            let stored = tree.get(name).unwrap().expect("the key is kept");
            let text = std::str::from_utf8(&stored).expect("kept sealed, as text");
            sealer.open(&format!("node/{name}"), text).unwrap()
        })
        .collect()
}

/// Every value of the trees that hold secrets.
fn stored_values(data_dir: &Path) -> Vec<String> {
    let db = sled::open(data_dir.join("state")).unwrap();
    let mut values = Vec::new();
    for tree in ["secrets", "event_subscriptions", "function_config", "mqtt_triggers"] {
        for entry in db.open_tree(tree).unwrap().iter() {
            values.push(String::from_utf8_lossy(&entry.unwrap().1).into_owned());
        }
    }
    values
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_survive_restarts_and_rotation_and_callers_cannot_replace_them()
{
    let bundles = tokio::task::spawn_blocking(bundles).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let keys = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let admin = |base: &str, method: Method, path: &str| {
        client.request(method, format!("{base}{path}")).bearer_auth(ADMIN_TOKEN)
    };
    let (hook_url, hooked) = webhook_receiver().await;

    // First start: the key file is generated; secrets are set through the admin API.
    let (server, base) = serve(&data_dir, &bundles, &[]).await;
    let hook = json!({"name": "mirror", "events": ["STORAGE_INSERT"], "webhook_url": hook_url});
    let (status, created) = json(
        admin(&base, Method::POST, "/admin/spaces/default/events")
            .json(&hook)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let webhook_secret = created["target"]["secret"].as_str().unwrap().to_string();
    let trigger = json!({
        "type": "mqtt", "name": "sensors", "broker": "mqtt://127.0.0.1:1", "topics": ["t/#"],
        "username": "sensor", "password": MQTT_PASSWORD,
        "functions": [{"function": "secretive"}],
    });
    let response =
        admin(&base, Method::POST, "/admin/spaces/default/triggers").json(&trigger).send().await;
    assert_eq!(response.unwrap().status(), 201);
    let config = json!({"secrets": {"api_token": OVERRIDE_SECRET}});
    let path = "/admin/spaces/default/functions/secretive/config";
    let response = admin(&base, Method::PUT, path).json(&config).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(token_length(&client, &base).await, json!(OVERRIDE_SECRET.len()));
    assert_eq!(webhook_secret_after_insert(&client, &base, &hooked, "k1").await, webhook_secret);

    // A caller's ingress config cannot replace a secret (bundle or admin), only other values.
    let ingress = format!("{base}/spaces/default/functions/secretive/ingress");
    let call = json!({"name": "secretive.peek", "config": {"api_token": "caller-chosen"}});
    let (status, body) = json(client.post(&ingress).json(&call).send().await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "secret_override", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'api_token'") && !message.contains("caller-chosen"), "{body}");
    let call = json!({"name": "secretive.peek", "config": {"region": "zz"}});
    let (status, body) = json(client.post(&ingress).json(&call).send().await.unwrap()).await;
    assert_eq!((status, &body["region"]), (200, &json!("zz")), "{body}");
    stop(server);

    // At rest: everything private (checked before this test opens the database itself), and
    // no plaintext anywhere but the key file.
    for path in files_under(&data_dir) {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    let mut secrets: Vec<Vec<u8>> = [&webhook_secret, MQTT_PASSWORD, OVERRIDE_SECRET]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    secrets.extend(node_keys(&data_dir));
    let key_file = sealed::default_key_path(&data_dir);
    for path in files_under(&data_dir) {
        if path.is_dir() || path == key_file {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for (n, secret) in secrets.iter().enumerate() {
            assert!(!contains(&bytes, secret), "secret #{n} in plain text in {}", path.display());
        }
    }
    assert_eq!(mode(&data_dir), 0o700);

    // A data directory left readable (as older versions did) is made private again; the same
    // key opens everything.
    std::fs::set_permissions(data_dir.join("state"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data_dir.join("state/db"), PermissionsExt::from_mode(0o644)).unwrap();
    let (server, base) = serve(&data_dir, &bundles, &[]).await;
    assert_eq!((mode(&data_dir.join("state")), mode(&data_dir.join("state/db"))), (0o700, 0o600));
    assert_eq!(token_length(&client, &base).await, json!(OVERRIDE_SECRET.len()));
    assert_eq!(webhook_secret_after_insert(&client, &base, &hooked, "k2").await, webhook_secret);
    let (status, shown) = json(
        admin(&base, Method::GET, "/admin/spaces/default/triggers/sensors").send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200, "the trigger (and its password) was restored: {shown}");
    stop(server);

    // Rotation: a new key, the old one as previous; afterwards only the new key is needed.
    let old_id = sealed::load(&data_dir, &KeyOptions::default()).unwrap().key_id().to_string();
    let new_key = keys.path().join("new.key");
    std::fs::write(&new_key, SecretsKey::generate_text()).unwrap();
    let new_id = SecretsKey::parse(&std::fs::read_to_string(&new_key).unwrap()).unwrap();
    let new_id = new_id.id().to_string();
    let rotate = [
        "--secrets-key-file".to_string(),
        new_key.to_string_lossy().into_owned(),
        "--previous-secrets-key-file".to_string(),
        key_file.to_string_lossy().into_owned(),
    ];
    let (server, base) = serve(&data_dir, &bundles, &rotate).await;
    assert_eq!(token_length(&client, &base).await, json!(OVERRIDE_SECRET.len()));
    stop(server);
    let values = stored_values(&data_dir);
    assert!(values.iter().all(|v| !v.contains(&format!("wfs1:{old_id}:"))), "{values:?}");
    let sealed_new = values.iter().filter(|v| v.contains(&format!("wfs1:{new_id}:"))).count();
    assert_eq!(sealed_new, 5, "presign, sessions, webhook, config, mqtt: {values:?}");
    let new_only = rotate[..2].to_vec();
    let (server, base) = serve(&data_dir, &bundles, &new_only).await;
    assert_eq!(token_length(&client, &base).await, json!(OVERRIDE_SECRET.len()));
    assert_eq!(webhook_secret_after_insert(&client, &base, &hooked, "k3").await, webhook_secret);
    stop(server);

    // The wrong key (the old one, now): the start stops, saying what and what to do.
    let mut wrong = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"));
    wrong
        .arg("serve")
        .args(&bundles)
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN, "--data-dir"])
        .arg(&data_dir)
        .arg("--secrets-key-file")
        .arg(&key_file)
        .env("WASMFN_TEST_SECRET_TOKEN", ENV_TOKEN)
        .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
        .env("WASMFN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child: ServeProcess = wrong.spawn().unwrap().into();
    let output = tokio::task::spawn_blocking(move || {
        child.exit_and_stderr_within(Duration::from_secs(60), "a wrong key must stop the start")
    })
    .await
    .unwrap();
    let (status, stderr) = output;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("cannot read the "), "{stderr}");
    assert!(stderr.contains(&format!("sealed with key {new_id}")), "{stderr}");
    assert!(stderr.contains("--secrets-key-file"), "{stderr}");
    for secret in [&webhook_secret, MQTT_PASSWORD, OVERRIDE_SECRET] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}
