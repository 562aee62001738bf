//! The triggers a function version declares (`[[cron]]`, `[[mqtt]]`, `[[events]]`) start,
//! change and stop with the version: deployed through the admin API, rolled back to, refused
//! when one cannot start, deleted. Cron ticks follow a manual clock, so a fire is observed
//! without waiting a minute.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use wasmfn_runtime::bundle::{read_meta, with_meta, BundleMeta};
use wasmfn_runtime::triggers::cron::ManualClock;

use support::{capability_options, fixture_bundle, json, node_options, start_bundles, TestServer};

/// The `behave` fixture as function `calc` at `version`, declaring `triggers` (a JSON object
/// with `cron`, `mqtt` and `events` arrays, as in the bundle metadata).
fn declaring(bytes: &[u8], version: &str, triggers: Value) -> Vec<u8> {
    let meta = read_meta(bytes).unwrap().unwrap();
    let mut meta = serde_json::to_value(meta).unwrap();
    meta["name"] = json!("calc");
    meta["version"] = json!(version);
    for kind in ["cron", "mqtt", "events"] {
        meta[kind] = triggers.get(kind).cloned().unwrap_or(json!([]));
    }
    let meta: BundleMeta = serde_json::from_value(meta).unwrap();
    with_meta(bytes, &meta)
}

async fn triggers(server: &TestServer) -> Vec<Value> {
    let response = server.admin(Method::GET, "/admin/spaces/default/triggers").send().await;
    let (status, body) = json(response.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["triggers"].as_array().unwrap().clone()
}

async fn subscriptions(server: &TestServer) -> Vec<Value> {
    let response = server.admin(Method::GET, "/admin/spaces/default/events").send().await;
    let (status, body) = json(response.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["subscriptions"].as_array().unwrap().clone()
}

/// `(type, name, version)` of every trigger and event subscription of space `default`, sorted.
async fn declared(server: &TestServer) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = triggers(server)
        .await
        .iter()
        .map(|t| {
            assert_eq!(t["origin"], "function_toml", "{t}");
            assert_eq!(t["function"], "calc", "{t}");
            (
                t["type"].as_str().unwrap().into(),
                t["name"].as_str().unwrap().into(),
                text(&t["version"]),
            )
        })
        .collect();
    for s in subscriptions(server).await {
        if s["origin"] == "manifest" {
            all.push(("events".into(), s["name"].as_str().unwrap().into(), text(&s["version"])));
        }
    }
    all.sort();
    all
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

async fn deploy(server: &TestServer, bytes: &[u8]) -> (u16, Value) {
    let path = "/admin/spaces/default/functions/calc/versions";
    json(server.admin(Method::POST, path).body(bytes.to_vec()).send().await.unwrap()).await
}

async fn rollback(server: &TestServer, version: &str) -> (u16, Value) {
    let path = "/admin/spaces/default/functions/calc/rollback";
    let body = json!({ "version": version });
    json(server.admin(Method::POST, path).json(&body).send().await.unwrap()).await
}

/// Waits until cron trigger `name` has fired `times`, moving the clock a minute at a time.
async fn fires(server: &TestServer, clock: &ManualClock, name: &str, times: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = triggers(server).await;
        let trigger = listed.iter().find(|t| t["name"] == name);
        let fired = trigger.map(|t| t["status"]["fired"].as_u64().unwrap()).unwrap_or(0);
        if fired >= times {
            return;
        }
        assert!(Instant::now() < deadline, "cron trigger {name} fired {fired} times: {listed:?}");
        clock.advance(chrono::Duration::seconds(61));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(list: &[(String, String, String)]) -> Vec<(&str, &str, &str)> {
    list.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_versions_start_swap_and_stop_their_triggers() {
    let behave = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let v1 = declaring(
        &behave,
        "1.0.0",
        json!({
            "cron": [{"name": "tick", "schedule": "* * * * *", "entry": "behave.counter"}],
            "mqtt": [{"name": "feed", "broker": "mqtt://127.0.0.1:1883",
                      "topics": ["wasmfn-declared-test/#"], "entry": "behave.echo"}],
            "events": [{"name": "audit", "events": ["STORAGE_INSERT"], "entry": "behave.echo"}],
        }),
    );
    let v2 = declaring(
        &behave,
        "2.0.0",
        json!({
            "cron": [{"name": "tock", "schedule": "*/5 * * * *", "entry": "behave.counter"}],
            "events": [{"name": "audit-two", "events": ["STORAGE_DELETE"]}],
        }),
    );
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let mut options = node_options();
    options.clock = clock.clone();
    let server = start_bundles(Vec::new(), None, options, capability_options()).await;
    assert!(declared(&server).await.is_empty());

    // Deploying starts what the version declares, listed with its origin and version.
    let (status, body) = deploy(&server, &v1).await;
    assert_eq!(status, 201, "{body}");
    let v1_triggers =
        [("cron", "tick", "1.0.0"), ("events", "audit", "1.0.0"), ("mqtt", "feed", "1.0.0")];
    assert_eq!(names(&declared(&server).await), v1_triggers);
    fires(&server, &clock, "tick", 1).await;

    // A newer version replaces them all: the old cron no longer fires, the MQTT trigger and
    // the subscription it no longer declares are gone.
    let (status, body) = deploy(&server, &v2).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        names(&declared(&server).await),
        [("cron", "tock", "2.0.0"), ("events", "audit-two", "2.0.0")]
    );
    fires(&server, &clock, "tock", 1).await;
    // Its next fire times, on the server's clock, every 5 minutes.
    let tock = triggers(&server).await.into_iter().find(|t| t["name"] == "tock").unwrap();
    let next: Vec<chrono::DateTime<chrono::Utc>> = tock["status"]["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(next.len(), 3, "{tock}");
    let now = wasmfn_runtime::clock::Clock::now(clock.as_ref());
    assert!(next[0] > now && next[0] - now <= chrono::Duration::minutes(5), "{tock}");
    assert_eq!(next[1] - next[0], chrono::Duration::minutes(5));
    assert_eq!(next[2] - next[1], chrono::Duration::minutes(5));

    // Rolling back brings the old version's triggers back, counters from zero.
    let (status, body) = rollback(&server, "1.0.0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&declared(&server).await), v1_triggers);
    let tick = triggers(&server).await.into_iter().find(|t| t["name"] == "tick").unwrap();
    assert_eq!(tick["status"]["fired"], 0, "{tick}");

    // A version whose trigger cannot start is refused, and the active one keeps its triggers:
    // an admin subscription now holds the name `audit-two` that version 2.0.0 declares.
    let taken = json!({"name": "audit-two", "events": ["OBJECT_PUT"], "function": "calc"});
    let response = server.admin(Method::POST, "/admin/spaces/default/events").json(&taken);
    let (status, body) = json(response.send().await.unwrap()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = rollback(&server, "2.0.0").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "triggers_refused", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("event trigger 'audit-two'"), "{message}");
    assert!(message.contains("admin-created"), "{message}");
    assert_eq!(names(&declared(&server).await), v1_triggers);
    let url = server.url("/spaces/default/functions/calc/invoke");
    let (status, _) = json(server.client.post(&url).send().await.unwrap()).await;
    assert_eq!(status, 200, "version 1.0.0 still serves");

    // Deleting the function stops every trigger it declared; the admin one stays.
    let path = "/admin/spaces/default/functions/calc";
    let response = server.admin(Method::DELETE, path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(declared(&server).await.is_empty(), "{:?}", declared(&server).await);
    let left = subscriptions(&server).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["name"], "audit-two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_trigger_names_a_missing_entry_is_refused_before_it_serves() {
    let behave = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let broken = declaring(
        &behave,
        "1.0.0",
        json!({"cron": [{"name": "nightly", "schedule": "@daily", "entry": "behave.missing"}]}),
    );
    let server = start_bundles(Vec::new(), None, node_options(), capability_options()).await;
    let (status, body) = deploy(&server, &broken).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cron trigger 'nightly'"), "{message}");
    assert!(message.contains("behave.missing"), "{message}");
    let url = server.url("/spaces/default/functions/calc/invoke");
    let (status, body) = json(server.client.post(&url).send().await.unwrap()).await;
    assert_eq!(status, 404, "the refused version never serves: {body}");
    assert!(triggers(&server).await.is_empty());
}
