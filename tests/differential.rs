//! Differential test: the same calls, in the same order, answered by the real ixoncdkingress
//! 1.0.0 (from PyPI, run natively on CPython 3.12 by tests/differential/reference_ingress.py,
//! mongomock standing in for MongoDB) and by wasmfn's ixoncdkingress endpoint, on one fixture app
//! (tests/fixtures/ixonref). Every answer must be the same JSON, except where wasmfn differs on
//! purpose (docs/writing-functions.md lists each difference), and those are checked too. Both
//! call one stand-in IXON API, and the requests each side sends it must be the same as well.
//!
//! The reference is installed by scripts/setup-reference-sdk.sh (scripts/test.sh runs it); the
//! fixture imports pydantic, so its bundle needs scripts/build-wasi-wheels.sh's pydantic-core.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use support::{
    capability_options, fixture_bundle, fixture_dir, node_options, repo_root, start_bundles,
    CapabilityOptions, TestServer,
};
use wasmfn_runtime::toolchain::wasmfn_home;

/// The real ixoncdkingress serving the fixture, killed when dropped.
struct Reference {
    child: Child,
    url: String,
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reference_python() -> PathBuf {
    let python = std::env::var_os("WASMFN_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| wasmfn_home().join("reference-sdk").join("bin").join("python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/setup-reference-sdk.sh (it installs the real ixoncdkingress)",
        python.display()
    );
    python
}

/// Starts `python -m ixoncdkingress` (through the launcher) in the fixture folder with
/// `CBC_PATH=./functions`, as IXON's workspace runs an app, and waits until it listens. Its
/// IXON API client calls `api`.
fn start_reference(api: &str) -> Reference {
    let mut child = Command::new(reference_python())
        .arg(repo_root().join("tests").join("differential").join("reference_ingress.py"))
        .current_dir(fixture_dir("ixonref"))
        .env("CBC_PATH", "./functions")
        .env("HTTP_SERVER_BIND", "127.0.0.1")
        .env("HTTP_SERVER_PORT", "0")
        .env("LOGGER_LOG_LEVEL", "WARNING")
        .env("API_CLIENT_BASE_URL", api)
        // Nothing written into the repository's fixture folder.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the reference ixoncdkingress");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines.next().expect("the reference exited before listening").expect("stdout");
    let port = first.strip_prefix("listening on ").expect("a `listening on` line").to_string();
    std::thread::spawn(move || for _ in lines {});
    Reference { child, url: format!("http://127.0.0.1:{port}/") }
}

/// What the stand-in IXON API received, discovery left out (wasmfn's server runs it once and
/// keeps it; the SDK runs it at every call): `METHOD path?query`, the headers the platform
/// adds, and the body.
type Seen = Arc<Mutex<Vec<Value>>>;

/// A stand-in for the IXON API both sides call: discovery with absolute addresses, as the real
/// one gives, an agent list, and one agent that answers what it was sent.
async fn fake_ixon_api(seen: Seen) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/", listener.local_addr().unwrap());
    let links = json!({"type": "Discovery", "data": [
        {"rel": "AgentList", "href": format!("{base}agents")},
        {"rel": "Agent", "href": format!("{base}agents/{{publicId}}")},
    ]});
    let discovery = move || async move { Json(links) };
    let agents = |State(seen): State<Seen>, request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let header = |name: &str| parts.headers.get(name).map(|v| v.to_str().unwrap().to_string());
        let received = json!({
            "line": format!("{} {}", parts.method, parts.uri),
            "authorization": header("authorization"),
            "api-application": header("api-application"),
            "api-company": header("api-company"),
            "api-version": header("api-version"),
            "body": String::from_utf8_lossy(&body),
        });
        seen.lock().unwrap().push(received.clone());
        let data = if parts.uri.path().ends_with("/agents") {
            json!([{"publicId": "a2", "name": "Pump"}, {"publicId": "a1", "name": "Boiler"}])
        } else {
            received
        };
        Json(json!({"type": "Agent", "status": "success", "data": data}))
    };
    let router = Router::new()
        .route("/api/", get(discovery))
        .route("/api/agents", any(agents))
        .route("/api/agents/{id}", any(agents))
        .with_state(seen);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// What a call must answer on both sides.
enum Expect {
    /// The same status and the same JSON body.
    Same,
    /// Both fail with 500 (the reference's body is wsgiref's text page, ours JSON).
    BothFail,
    /// A difference on purpose: the reference's status and body, and wasmfn's status and error
    /// code.
    Differs { reference: (u16, Value), wasmfn: (u16, &'static str) },
}

struct Call {
    body: Value,
    expect: Expect,
}

impl Call {
    /// The call with a `config`, which the function reads as `context.config`.
    fn with_config(mut self, config: Value) -> Self {
        self.body["config"] = config;
        self
    }
}

fn call(name: &str, arguments: Value, expect: Expect) -> Call {
    let context = json!({
        "user": {"publicId": "u-1", "name": "Ann", "custom": {"team": "ops"}},
        "company": {"publicId": "c-1", "name": "Acme", "custom": {"tier": 2},
                    "permissions": ["MANAGE_DATA", "READ"]},
        "asset": {"publicId": "a-1", "name": "Pump 4", "custom": {}, "permissions": []},
    });
    Call { body: json!({"name": name, "arguments": arguments, "context": context}), expect }
}

/// A call as IXON's platform makes it for a signed-in user of an app: with the app and the
/// user's token, which the IXON API client sends on.
fn call_as_user(name: &str, arguments: Value) -> Call {
    let mut call = call(name, arguments, Expect::Same);
    call.body["context"]["apiApplication"] =
        json!({"publicId": "app-9", "name": "Logbook", "custom": {}});
    call.body["context"]["accessToken"] = json!({"headerValue": "Bearer user-token-1"});
    call
}

/// The calls, in order: the document-store ones depend on the ones before them.
fn calls() -> Vec<Call> {
    let not_found = |name: &str| {
        json!(format!("Not found, function '{name}' does not exist or is not exposed"))
    };
    vec![
        // Bare names are served by functions/__init__.py; kwargs get every argument.
        call("whoami", json!({"a": 1, "nested": {"b": [1, 2]}}), Expect::Same),
        call("functions.whoami", json!({}), Expect::Same),
        // IXON's import roots: `orders` and `functions.orders` both work; the cycle
        // orders -> pricing -> orders; strptime imports _strptime during the call.
        call(
            "orders.quote",
            json!({"sku": "gear", "quantity": 3, "on": "2026-12-03"}),
            Expect::Same,
        ),
        call("functions.orders.quote", json!({"sku": "bolt", "ignored": true}), Expect::Same),
        call("pricing.price_list", json!({}), Expect::Same),
        call("functions.pricing.price_list", json!({}), Expect::Same),
        // pydantic: agent tools' arguments validated (and coerced) by the SDK's input model;
        // models dumped as results; ValidationError handled by the function itself.
        call(
            "models.count_lines",
            json!({"lines": [{"sku": "a", "quantity": "2"}, {"sku": "b"}], "rush": "yes",
                   "unknown": 1}),
            Expect::Same,
        ),
        call(
            "models.check_address",
            json!({"address": {"street": "Main 1", "city": "Delft"}}),
            Expect::Same,
        ),
        call("models.normalise", json!({"address": {"street": "Main 1"}}), Expect::Same),
        call(
            "models.normalise",
            json!({"address": {"street": "Main 1", "city": "Delft", "country": "BE"}}),
            Expect::Same,
        ),
        call("models.schema", json!({}), Expect::Same),
        // A decorator fills in a parameter; arguments are filtered by the wrapped signature.
        call("injected.greet", json!({"name": "Bo", "extra": 1}), Expect::Same),
        call("injected.greet_required", json!({"name": "Bo"}), Expect::Same),
        call("injected.greet_required", json!({}), Expect::BothFail),
        call("injected.greet", json!({"greeter": "mine"}), Expect::BothFail),
        // The SDK's reserved entries.
        call("list-agent-tools", json!({}), Expect::Same),
        call("list-agent-tools-issues", json!({}), Expect::Same),
        call("app-description", json!({}), Expect::Same),
        // Configuration is JSON (see also `settings.read` with a call config below).
        call("settings.read", json!({"key": "absent"}), Expect::Same),
        call("settings.read", json!({}), Expect::Same).with_config(
            json!({"serviceAccount": {"username": "svc", "roles": ["reader"]}, "retries": 3}),
        ),
        // The document store, as IXON apps use it.
        call("notes.add", json!({"text": "b", "tags": ["x"]}), Expect::Same),
        call("notes.add", json!({"text": "a"}), Expect::Same),
        call("notes.add", json!({"text": "c", "tags": ["y"]}), Expect::Same),
        call("notes.tag", json!({"text": "a", "tag": "x"}), Expect::Same),
        call("notes.listing", json!({"tag": "x"}), Expect::Same),
        call("notes.remove", json!({"text": "a"}), Expect::Same),
        call("notes.listing", json!({}), Expect::Same),
        // The IXON API, with the caller's credentials (no function.toml: every endpoint).
        call_as_user("agents.names", json!({})),
        call_as_user("agents.rename", json!({"agent_id": "a1", "name": "Boiler 2"})),
        call_as_user("agents.remove", json!({"agent_id": "a2"})),
        // Without a token the request goes out without one (the real API would refuse it).
        call("agents.rename", json!({"agent_id": "a1", "name": "x"}), Expect::Same),
        // Failures.
        call("fails", json!({"reason": "boom"}), Expect::BothFail),
        call("not_json", json!({}), Expect::BothFail),
        call("orders.quote", json!({"sku": "unknown-sku"}), Expect::BothFail),
        // On purpose: wasmfn answers an error status for what the SDK answers 200 with a
        // string or a bare 500 (docs/writing-functions.md, "Differences").
        call(
            "not_exposed",
            json!({}),
            Expect::Differs {
                reference: (200, not_found("functions.not_exposed")),
                wasmfn: (404, "entry_not_found"),
            },
        ),
        call(
            "nomodule.entry",
            json!({}),
            Expect::Differs { reference: (500, Value::Null), wasmfn: (404, "entry_not_found") },
        ),
        call(
            "models.count_lines",
            json!({"lines": [{"sku": "a", "quantity": 0}]}),
            Expect::Differs { reference: (500, Value::Null), wasmfn: (400, "bad_arguments") },
        ),
    ]
}

/// Status and body; a body that is not JSON (wsgiref's error page) is `null`.
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.expect("calling");
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn wasmfn_answers_every_fixture_call_as_the_real_ixoncdkingress() {
    let seen: Seen = Arc::default();
    let api = fake_ixon_api(seen.clone()).await;
    let reference = start_reference(&api);
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("ixonref")).await.unwrap();
    let capabilities = CapabilityOptions { ixon_api_url: api, ..capability_options() };
    let server: TestServer =
        start_bundles(vec![("default".into(), bundle)], None, node_options(), capabilities).await;
    let ours = server.url("/spaces/default/functions/ixonref/ingress");
    let requests = || std::mem::take(&mut *seen.lock().unwrap());
    let mut mismatches = Vec::new();
    let mut api_calls = 0;
    for Call { body, expect } in calls() {
        let theirs = post(&server.client, &reference.url, &body).await;
        let theirs_sent = requests();
        let mine = post(&server.client, &ours, &body).await;
        let mine_sent = requests();
        api_calls += theirs_sent.len();
        let agrees = match &expect {
            Expect::Same => theirs == mine,
            Expect::BothFail => theirs.0 == 500 && mine.0 == 500 && mine.1["error"].is_object(),
            Expect::Differs { reference, wasmfn } => {
                &theirs == reference && mine.0 == wasmfn.0 && mine.1["error"]["code"] == wasmfn.1
            }
        };
        if !agrees || theirs_sent != mine_sent {
            mismatches.push(format!(
                "{}\n  ixoncdkingress: {} {}\n    sent to the API: {theirs_sent:?}\n  wasmfn:         {} {}\n    sent to the API: {mine_sent:?}",
                body["name"], theirs.0, theirs.1, mine.0, mine.1
            ));
        }
    }
    assert!(mismatches.is_empty(), "answers differ:\n{}", mismatches.join("\n"));
    assert_eq!(api_calls, 4, "every IXON API call of the fixture reached the stand-in API");
}
