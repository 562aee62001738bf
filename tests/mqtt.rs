//! The MQTT trigger end to end, against real Mosquitto brokers: the machine's broker at
//! 127.0.0.1:1883 for matching, and brokers this test starts on free ports for credentials,
//! restarts and crashes. Outcomes are observed where a user sees them: at a callback receiver
//! (a local HTTP server) and in the admin API's status.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use support::broker::{free_port, wait_until, Broker};
use support::{example_bundle, fixture_bundle, json, start_server, work_dir, TestServer};

const SHARED_BROKER: u16 = 1883;

/// A unique suffix, so parallel tests (and parallel runs) never share topics or client ids.
fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// One POST a callback receiver got.
#[derive(Debug)]
struct Callback {
    headers: HeaderMap,
    body: Value,
}

/// A local HTTP server standing in for a user's callback endpoint.
struct Receiver {
    url: String,
    received: mpsc::UnboundedReceiver<Callback>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let (sender, received) = mpsc::unbounded_channel();
        let app = axum::Router::new()
            .route(
                "/callback",
                axum::routing::post(
                    |State(sender): State<mpsc::UnboundedSender<Callback>>,
                     headers: HeaderMap,
                     body: axum::body::Bytes| async move {
                        let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&body).into())
                        });
                        let _ = sender.send(Callback { headers, body });
                        "ok"
                    },
                ),
            )
            .with_state(sender);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }

    async fn next(&mut self) -> Callback {
        tokio::time::timeout(Duration::from_secs(30), self.received.recv())
            .await
            .expect("a callback within 30 s")
            .expect("receiver running")
    }
}

/// Publishes messages and waits until the broker has them (PUBACK for QoS 1).
async fn publish(port: u16, messages: &[(&str, &[u8], QoS)]) {
    let mut options = MqttOptions::new(format!("pub-{}", unique()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    // Room for the largest payload a trigger takes (16 MiB).
    options.set_max_packet_size(17 << 20, 17 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    for (topic, payload, qos) in messages {
        client.publish(*topic, *qos, false, payload.to_vec()).await.unwrap();
    }
    let expected_acks = messages.iter().filter(|m| m.2 != QoS::AtMostOnce).count();
    let expected_sent = messages.len();
    let (mut acks, mut sent) = (0, 0);
    tokio::time::timeout(Duration::from_secs(10), async {
        while acks < expected_acks || sent < expected_sent {
            match eventloop.poll().await.expect("publisher connection") {
                Event::Incoming(Packet::PubAck(_)) => acks += 1,
                Event::Outgoing(Outgoing::Publish(_)) => sent += 1,
                _ => {}
            }
        }
    })
    .await
    .expect("the broker took the messages");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
}

/// Polls a trigger's admin status until `ready` holds.
async fn wait_for_status(
    server: &TestServer,
    name: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = server
            .admin(Method::GET, &format!("/admin/spaces/default/triggers/{name}"))
            .send()
            .await
            .unwrap();
        let (status, body) = json(response).await;
        assert_eq!(status, 200, "{body}");
        if ready(&body["status"]) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_trigger(server: &TestServer, trigger: Value) -> (u16, Value) {
    let response =
        server.admin(Method::POST, "/admin/spaces/default/triggers").json(&trigger).send().await;
    json(response.unwrap()).await
}

fn header<'a>(callback: &'a Callback, name: &str) -> &'a str {
    callback.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn wildcard_topics_reach_every_matching_function_with_the_topic() {
    let server = start_server(&["behave"], None).await;
    // A second function on the same topics: the same bundle under another name.
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    server.runtime.load(bytes, "default", Some("watcher".into())).await.unwrap();
    let mut receiver = Receiver::start().await;
    let id = unique();
    let name = format!("plant-{id}");
    let (status, created) = create_trigger(
        &server,
        json!({
            "type": "mqtt",
            "name": name,
            "broker": format!("mqtt://127.0.0.1:{SHARED_BROKER}"),
            "client_id": format!("wasmfn-test-{id}"),
            "topics": [format!("wasmfn-test/{id}/+/temp"), format!("wasmfn-test/{id}/alarm/#")],
            "functions": [
                {"function": "behave", "entry": "behave.echo"},
                {"function": "watcher", "entry": "behave.echo",
                 "topics": [format!("wasmfn-test/{id}/alarm/#")]},
            ],
            "callback_url": receiver.url,
            "concurrency": 1,
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["config"]["qos"], 1);
    wait_for_status(&server, &name, "Running", |s| s["state"] == "Running").await;

    publish(
        SHARED_BROKER,
        &[
            (&format!("wasmfn-test/{id}/plant1/temp"), br#"{"celsius": 21.5}"#, QoS::AtLeastOnce),
            (&format!("wasmfn-test/{id}/alarm/boiler/1"), b"overheated", QoS::AtLeastOnce),
            // Matches no subscription ('+' is one level): never delivered.
            (&format!("wasmfn-test/{id}/a/b/temp"), b"no", QoS::AtLeastOnce),
            (&format!("wasmfn-test/{id}/last/temp"), b"sentinel", QoS::AtMostOnce),
        ],
    )
    .await;

    // A JSON payload: body and keyword arguments, the topic in X-Topic, only the function
    // without a narrower filter.
    let first = receiver.next().await;
    assert_eq!(header(&first, "x-function-status"), "200");
    assert!(!header(&first, "x-invocation-id").is_empty());
    assert_eq!(first.body["topic"], format!("wasmfn-test/{id}/plant1/temp"));
    assert_eq!(first.body["args"], json!({"celsius": 21.5}));
    assert_eq!(first.body["method"], "POST");
    assert_eq!(first.body["trigger"], "mqtt");
    assert_eq!(first.body["mqtt_trigger"], name.as_str());
    // The alarm reaches both functions, in fresh instances.
    let mut alarm: Vec<Value> = vec![receiver.next().await.body, receiver.next().await.body];
    alarm.sort_by_key(|b| b.to_string());
    for body in &alarm {
        assert_eq!(body["topic"], format!("wasmfn-test/{id}/alarm/boiler/1"));
        assert_eq!(body["body"], "overheated");
        assert_eq!(body["args"], json!({}));
    }
    // One worker takes messages in order: the next outcome is the sentinel's.
    let last = receiver.next().await;
    assert_eq!(last.body["body"], "sentinel");

    let trigger =
        wait_for_status(&server, &name, "counts settle", |s| s["acknowledged"] == 2).await;
    let counts = &trigger["status"];
    assert_eq!((counts["received"].as_u64(), counts["invocations"].as_u64()), (Some(3), Some(4)));
    assert_eq!(counts["failed_invocations"], 0);
    assert_eq!(counts["dropped"], 0);

    let (status, listed) =
        json(server.admin(Method::GET, "/admin/triggers").send().await.unwrap()).await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = listed["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["type"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&(name.as_str(), "mqtt")), "{listed}");
    assert!(kinds.contains(&("new-year", "cron")), "the fixture's cron trigger is listed too");

    let deleted = server
        .admin(Method::DELETE, &format!("/admin/spaces/default/triggers/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = server
        .admin(Method::GET, &format!("/admin/spaces/default/triggers/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn bad_credentials_fail_with_the_reason_and_never_leak_the_password() {
    let broker = Broker::start(Some(("sensor", "right-password")));
    let server = start_server(&["behave"], None).await;
    let trigger = |name: &str, password: &str| {
        json!({
            "type": "mqtt", "name": name, "broker": broker.url(),
            "username": "sensor", "password": password,
            "topics": ["plant/#"], "functions": [{"function": "behave"}],
        })
    };
    let (status, created) = create_trigger(&server, trigger("wrong", "wrong-password")).await;
    assert_eq!(status, 201, "{created}");
    let failed = wait_for_status(&server, "wrong", "Failed", |s| s["state"] == "Failed").await;
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("bad credentials"), "{reason}");
    let shown = failed.to_string();
    assert!(!shown.contains("wrong-password") && !shown.contains("\"password\""), "{shown}");

    let (status, _) = create_trigger(&server, trigger("right", "right-password")).await;
    assert_eq!(status, 201);
    wait_for_status(&server, "right", "Running", |s| s["state"] == "Running").await;
    // Still failing, still retrying.
    let still = wait_for_status(&server, "wrong", "Failed", |s| s["state"] == "Failed").await;
    assert!(still["status"]["reason"].as_str().unwrap().starts_with("bad credentials"));

    // Bad definitions are refused with the reason, before anything connects.
    let mut bad = trigger("bad", "x");
    bad["topics"] = json!(["plant/#/temp"]);
    let (status, body) = create_trigger(&server, bad).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("topic filter"), "{body}");
    let mut unknown = trigger("unknown", "x");
    unknown["functions"] = json!([{"function": "nope"}]);
    let (status, body) = create_trigger(&server, unknown).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("'nope' is not deployed"));
    let (status, body) = create_trigger(&server, trigger("right", "right-password")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("trigger_exists")));
    let anonymous = server.client.get(server.url("/admin/triggers")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_restarted_broker_brings_the_trigger_back_and_messages_flow_again() {
    let mut broker = Broker::start(None);
    let server = start_server(&["behave"], None).await;
    let mut receiver = Receiver::start().await;
    let (status, _) = create_trigger(
        &server,
        json!({
            "type": "mqtt", "name": "restart", "broker": broker.url(),
            "topics": ["line/+"], "functions": [{"function": "behave", "entry": "behave.echo"}],
            "callback_url": receiver.url,
        }),
    )
    .await;
    assert_eq!(status, 201);
    wait_for_status(&server, "restart", "Running", |s| s["state"] == "Running").await;

    broker.stop();
    let failed = wait_for_status(&server, "restart", "Failed", |s| s["state"] == "Failed").await;
    assert!(failed["status"]["reason"].as_str().unwrap().contains("127.0.0.1"), "{failed}");

    broker.resume();
    let running = wait_for_status(&server, "restart", "Running again", |s| {
        s["state"] == "Running" && s["reconnects"].as_u64() >= Some(1)
    })
    .await;
    assert!(running["status"].get("reason").is_none(), "{running}");
    // The fresh broker knows no session: the trigger subscribed again by itself.
    publish(broker.port, &[("line/7", b"after restart", QoS::AtLeastOnce)]).await;
    let callback = receiver.next().await;
    assert_eq!(callback.body["topic"], "line/7");
    assert_eq!(callback.body["body"], "after restart");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_outcome_once_it_is_up() {
    let broker = Broker::start(None);
    let server = start_server(&["behave"], None).await;
    // Reserve a port for the receiver, and leave nothing listening on it yet.
    let port = free_port();
    let (status, _) = create_trigger(
        &server,
        json!({
            "type": "mqtt", "name": "late-receiver", "broker": broker.url(), "qos": 0,
            "topics": ["x"], "functions": [{"function": "behave", "entry": "behave.echo"}],
            "callback_url": format!("http://127.0.0.1:{port}/callback"),
        }),
    )
    .await;
    assert_eq!(status, 201);
    wait_for_status(&server, "late-receiver", "Running", |s| s["state"] == "Running").await;
    publish(broker.port, &[("x", b"keep trying", QoS::AtMostOnce)]).await;
    wait_for_status(&server, "late-receiver", "the invocation ran", |s| s["invocations"] == 1)
        .await;
    // Now the receiver comes up; the delivery is still being retried.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut receiver = Receiver::serve(listener).await;
    let callback = receiver.next().await;
    assert_eq!(callback.body["body"], "keep trying");
    let (_, deliveries) =
        json(server.admin(Method::GET, "/admin/deliveries").send().await.unwrap()).await;
    let record = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] == "mqtt:default/late-receiver")
        .cloned();
    // The record is written right after the receiver answered; give it a moment.
    let record = match record {
        Some(record) => record,
        None => {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let (_, d) =
                    json(server.admin(Method::GET, "/admin/deliveries").send().await.unwrap())
                        .await;
                if let Some(r) = d["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["source"] == "mqtt:default/late-receiver")
                {
                    break r.clone();
                }
                assert!(Instant::now() < deadline, "no delivery record: {d}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(record["delivered"], true);
    assert!(record["attempts"].as_u64().unwrap() > 1, "{record}");
}

#[tokio::test]
async fn a_qos1_payload_over_the_body_limit_runs_up_to_16_mib_as_documented() {
    let broker = Broker::start(None);
    let server = start_server(&["behave"], None).await;
    let mut receiver = Receiver::start().await;
    let (status, _) = create_trigger(
        &server,
        json!({
            "type": "mqtt", "name": "big-payloads", "broker": broker.url(), "qos": 1,
            "topics": ["big"], "functions": [{"function": "behave", "entry": "behave.payload_size"}],
            "callback_url": receiver.url,
        }),
    )
    .await;
    assert_eq!(status, 201);
    wait_for_status(&server, "big-payloads", "Running", |s| s["state"] == "Running").await;
    // 7 MiB: over the default max_body_bytes (6 MiB), under the trigger's 16 MiB.
    let payload = vec![b'x'; 7 << 20];
    publish(broker.port, &[("big", &payload, QoS::AtLeastOnce)]).await;
    let callback = receiver.next().await;
    assert_eq!(header(&callback, "x-function-status"), "200");
    assert_eq!(callback.body["size"], 7 << 20, "the whole payload reached the function");
    let status =
        wait_for_status(&server, "big-payloads", "acknowledged", |s| s["acknowledged"] == 1).await;
    assert_eq!(status["status"]["failed_invocations"], 0, "{status}");
}

#[tokio::test]
async fn a_qos0_burst_beyond_the_queue_is_dropped_and_counted() {
    let broker = Broker::start(None);
    let server = start_server(&["behave"], None).await;
    let (status, _) = create_trigger(
        &server,
        json!({
            "type": "mqtt", "name": "burst", "broker": broker.url(), "qos": 0,
            "topics": ["burst"], "queue_limit": 1, "concurrency": 1,
            // Runs until the fixture's 1 s timeout: the queue cannot drain during the burst.
            "functions": [{"function": "behave", "entry": "behave.spin"}],
        }),
    )
    .await;
    assert_eq!(status, 201);
    wait_for_status(&server, "burst", "Running", |s| s["state"] == "Running").await;
    let messages: Vec<(&str, &[u8], QoS)> =
        (0..10).map(|_| ("burst", &b"tick"[..], QoS::AtMostOnce)).collect();
    publish(broker.port, &messages).await;
    let done = wait_for_status(&server, "burst", "the burst is settled", |s| {
        s["received"] == 10
            && s["queued"] == 0
            && s["invocations"].as_u64().unwrap() + s["dropped"].as_u64().unwrap() == 10
    })
    .await;
    let status = &done["status"];
    assert!(status["dropped"].as_u64().unwrap() >= 7, "{status}");
    assert_eq!(status["invocations"], status["failed_invocations"], "spin always times out");
}

/// The real binary with its state in `data_dir`, the fixture's compiled code shared.
fn serve_binary(data_dir: &Path, bundle: &Path) -> (support::ServeProcess, String) {
    serve_binary_in(data_dir, bundle, "default")
}

fn serve_binary_in(data_dir: &Path, bundle: &Path, space: &str) -> (support::ServeProcess, String) {
    support::spawn_serve(data_dir, &[bundle.to_str().expect("UTF-8 path"), "--space", space])
}

#[tokio::test]
async fn a_qos1_message_in_flight_when_the_server_is_killed_runs_after_restart() {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let broker = Broker::start(None);
    let data_dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start().await;
    let client = reqwest::Client::new();
    let admin = |base: &str, method: Method, path: &str| {
        client.request(method, format!("{base}{path}")).bearer_auth(support::ADMIN_TOKEN)
    };
    let status_of = |base: String| {
        let request = admin(&base, Method::GET, "/admin/spaces/default/triggers/crash");
        async move { json(request.send().await.unwrap()).await.1["status"].clone() }
    };

    let (mut first, base) = serve_binary(data_dir.path(), &bundle);
    let created = admin(&base, Method::POST, "/admin/spaces/default/triggers")
        .json(&json!({
            "type": "mqtt", "name": "crash", "broker": broker.url(), "client_id": "wasmfn-crash",
            "topics": ["jobs/#"], "callback_url": receiver.url,
            // Runs 1 s (the fixture's timeout), long enough to kill the server meanwhile.
            "functions": [{"function": "behave", "entry": "behave.spin"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(base.clone()).await["state"] != "Running" {
        assert!(Instant::now() < deadline, "never Running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish(broker.port, &[("jobs/1", b"must not be lost", QoS::AtLeastOnce)]).await;
    while status_of(base.clone()).await["received"] != 1 {
        assert!(Instant::now() < deadline, "never received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // kill -9 while the invocation runs: the message is not acknowledged yet.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(receiver.received.try_recv().is_err(), "no outcome was delivered before the kill");

    // The restarted server restores the trigger from its state database; the broker
    // redelivers the unacknowledged message to the same persistent session.
    let (mut second, base) = serve_binary(data_dir.path(), &bundle);
    let callback = receiver.next().await;
    assert_eq!(header(&callback, "x-function-status"), "504", "{:?}", callback.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status_of(base.clone()).await;
        if status["acknowledged"] == 1 {
            assert_eq!(status["state"], "Running");
            break;
        }
        assert!(Instant::now() < deadline, "never acknowledged: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
}

/// `wasmfn triggers …` against a server: (success, stdout, stderr).
fn triggers_cli(base: &str, space: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .arg("triggers")
        .args(args)
        .args(["--server", base, "--space", space, "--token", token])
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn the_examples_function_toml_trigger_runs_and_wasmfn_triggers_shows_it() {
    let bundle = tokio::task::spawn_blocking(|| example_bundle("mqtt-telemetry")).await.unwrap();
    // Its own space, so its default client id (wasmfn-<space>-telemetry) is unique.
    let space = format!("cli{}", unique());
    let data_dir = tempfile::tempdir().unwrap();
    let (mut server, base) = serve_binary_in(data_dir.path(), &bundle, &space);
    let token = support::ADMIN_TOKEN;

    wait_until("the trigger is Running", Duration::from_secs(30), || {
        let (ok, table, _) = triggers_cli(&base, &space, token, &["list"]);
        assert!(ok, "{table}");
        table.lines().any(|line| {
            line.contains("telemetry")
                && line.contains("mqtt-telemetry@")
                && line.contains("Running")
        })
    });
    let topic = format!("wasmfn-example/{}/telemetry", unique());
    publish(SHARED_BROKER, &[(&topic, br#"{"celsius": 93}"#, QoS::AtLeastOnce)]).await;
    let mut shown = Value::Null;
    wait_until("the message ran the function", Duration::from_secs(30), || {
        let (ok, out, err) = triggers_cli(&base, &space, token, &["show", "telemetry"]);
        assert!(ok, "{err}");
        shown = serde_json::from_str(&out).unwrap();
        shown["status"]["acknowledged"] == 1
    });
    assert_eq!(shown["status"]["invocations"], 1, "{shown}");
    assert_eq!(shown["status"]["failed_invocations"], 0, "{shown}");
    assert_eq!(
        (shown["origin"].as_str(), shown["function"].as_str()),
        (Some("function_toml"), Some("mqtt-telemetry"))
    );

    let (ok, _, err) = triggers_cli(&base, &space, token, &["delete", "telemetry"]);
    assert!(!ok && err.contains("comes from the function.toml"), "{err}");
    let (ok, _, err) = triggers_cli(&base, &space, "wrong-token", &["list"]);
    assert!(!ok && err.contains("403"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The status of trigger `shared` on the server at `base`.
async fn shared_status(client: &reqwest::Client, base: &str) -> Value {
    let request = client
        .get(format!("{base}/admin/spaces/default/triggers/shared"))
        .bearer_auth(support::ADMIN_TOKEN);
    json(request.send().await.unwrap()).await.1["status"].clone()
}

/// Waits (30 s at most) until trigger `shared` on `base` is Running.
async fn shared_running(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared_status(client, base).await["state"] != "Running" {
        assert!(Instant::now() < deadline, "never Running on {base}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates trigger `shared` (`readings/+` on `broker`, behave.echo, outcomes to `callback`) on
/// the server at `base` and waits until it runs.
async fn create_shared(client: &reqwest::Client, base: &str, broker: &str, callback: &str) {
    let created = client
        .post(format!("{base}/admin/spaces/default/triggers"))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&json!({
            "type": "mqtt", "name": "shared", "broker": broker,
            "topics": ["readings/+"], "callback_url": callback,
            "functions": [{"function": "behave", "entry": "behave.echo"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    shared_running(client, base).await;
}

/// Two servers serving one trigger as nodes of a cluster (`--node-id`): each message published
/// is processed by exactly one of them (shared subscriptions), and both take part.
#[tokio::test]
async fn nodes_of_a_cluster_share_a_triggers_messages() {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let broker = Broker::start(None);
    let mut receiver = Receiver::start().await;
    let client = reqwest::Client::new();
    let (dirs, mut nodes) =
        (vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()], vec![]);
    for (dir, id) in dirs.iter().zip(["node-a", "node-b"]) {
        let args = [bundle.to_str().unwrap(), "--node-id", id];
        nodes.push(support::spawn_serve(dir.path(), &args));
    }
    for (_, base) in &nodes {
        create_shared(&client, base, &broker.url(), &receiver.url).await;
    }
    let payloads: Vec<String> = (0..200).map(|i| format!("{{\"reading\": {i}}}")).collect();
    let messages: Vec<(&str, &[u8], QoS)> =
        payloads.iter().map(|p| ("readings/pump", p.as_bytes(), QoS::AtLeastOnce)).collect();
    // In batches: the publisher's request channel holds 100 until its event loop runs.
    for batch in messages.chunks(50) {
        publish(broker.port, batch).await;
    }
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let callback = receiver.next().await;
        assert_eq!(header(&callback, "x-function-status"), "200", "{:?}", callback.body);
        *seen.entry(callback.body.to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 200, "every message processed: {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");
    // No 201st outcome: give a duplicate time to show up, bounded.
    let extra = tokio::time::timeout(Duration::from_secs(2), receiver.received.recv()).await;
    assert!(extra.is_err(), "a message was processed twice: {extra:?}");
    let mut received = Vec::new();
    for (_, base) in &nodes {
        received.push(shared_status(&client, base).await["received"].as_u64().unwrap());
    }
    assert_eq!(received.iter().sum::<u64>(), 200, "{received:?}");
    assert!(received.iter().all(|&n| n > 0), "both nodes took part: {received:?}");
}

/// Payload → how many times its outcome reached the callback receiver.
type Seen = std::collections::BTreeMap<String, u32>;

/// Counts a callback of a kill test (every outcome must be a 200).
fn count(callback: Callback, seen: &mut Seen) {
    assert_eq!(header(&callback, "x-function-status"), "200", "{:?}", callback.body);
    *seen.entry(callback.body["body"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
}

/// The 1,000 payloads of the kill tests.
fn readings() -> Vec<String> {
    (0..1000).map(|i| format!("{{\"reading\": {i}}}")).collect()
}

/// The first 400 `payloads` (QoS 1) with both servers up; once 300 were processed, server B
/// (`nodes[1]`) is killed -9 with messages in flight, and the other 600 are published. Returns
/// what was seen so far and how many messages B had received.
async fn kill_b_mid_stream(
    broker: &Broker,
    receiver: &mut Receiver,
    nodes: &mut Vec<(support::ServeProcess, String)>,
    payloads: &[String],
) -> (Seen, u64) {
    let messages: Vec<(&str, &[u8], QoS)> =
        payloads.iter().map(|p| ("readings/pump", p.as_bytes(), QoS::AtLeastOnce)).collect();
    let mut seen = Seen::new();
    for batch in messages[..400].chunks(50) {
        publish(broker.port, batch).await;
    }
    while seen.len() < 300 {
        count(receiver.next().await, &mut seen);
    }
    let status = shared_status(&reqwest::Client::new(), &nodes[1].1).await;
    let b_received = status["received"].as_u64().unwrap();
    assert!(b_received > 0, "B took part before it was killed: {status}");
    let (mut killed, _) = nodes.remove(1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    drop(killed);
    for batch in messages[400..].chunks(50) {
        publish(broker.port, batch).await;
    }
    (seen, b_received)
}

/// Two servers sharing a trigger (`--node-id`), 1,000 QoS 1 messages, and one server killed -9
/// mid-stream: every message is processed at least once. Messages the broker had given to the
/// killed server's session (sent, not acknowledged, or queued for it) stay in that session and
/// are processed when the server comes back with the same node id (Mosquitto does not hand a
/// shared subscription's messages of a gone session to the group's other members); those it had
/// not yet given go to the live server meanwhile.
#[tokio::test]
async fn a_node_killed_mid_stream_loses_no_message() {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let broker = Broker::start(None);
    let mut receiver = Receiver::start().await;
    let client = reqwest::Client::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let start = |dir: &Path, id: &str| {
        support::spawn_serve(dir, &[bundle.to_str().unwrap(), "--node-id", id])
    };
    let mut nodes = vec![start(dirs[0].path(), "node-a"), start(dirs[1].path(), "node-b")];
    for (_, base) in &nodes {
        create_shared(&client, base, &broker.url(), &receiver.url).await;
    }
    let payloads = readings();
    let (mut seen, _) = kill_b_mid_stream(&broker, &mut receiver, &mut nodes, &payloads).await;
    // What the live server gets; then B comes back and processes what its session holds.
    while let Ok(Some(callback)) =
        tokio::time::timeout(Duration::from_secs(3), receiver.received.recv()).await
    {
        count(callback, &mut seen);
    }
    let after_kill = seen.len();
    let (restarted, base_b) = start(dirs[1].path(), "node-b");
    nodes.push((restarted, base_b.clone()));
    shared_running(&client, &base_b).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, receiver.received.recv()).await {
            Ok(Some(callback)) => count(callback, &mut seen),
            _ => panic!("{} of 1000 processed ({after_kill} before B came back)", seen.len()),
        }
    }
    assert!(payloads.iter().all(|p| seen.contains_key(p)), "every message at least once");
    let twice = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "processed after the kill, before B came back: {after_kill}; more than once: {twice}"
    );
}

/// The same with the servers sharing their state (`--state`, a cluster): the killed server
/// does not come back, and the live one processes every message anyway. It finds the other
/// gone in the node directory, takes over the session the killed server left with the broker
/// (its unacknowledged messages and those queued for it), processes what it holds and leaves it
/// empty. At least once: each message is processed, duplicates are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_killed_nodes_messages_are_processed_by_another() {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let broker = Broker::start(None);
    let mut receiver = Receiver::start().await;
    let client = reqwest::Client::new();
    let scratch = support::postgres::Scratch::new("wasmfn_mqtt").await;
    let key = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 32]>(),
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let start = |dir: &Path, id: &str| {
        let args = [bundle.to_str().unwrap(), "--node-id", id, "--state", &scratch.url];
        support::spawn_serve_env(dir, &args, &[("WASMFN_SECRETS_KEY", &key)])
    };
    let mut nodes = vec![start(dirs[0].path(), "node-a"), start(dirs[1].path(), "node-b")];
    // Created on A; B follows (the trigger is one record of the cluster).
    create_shared(&client, &nodes[0].1, &broker.url(), &receiver.url).await;
    shared_running(&client, &nodes[1].1).await;
    let payloads = readings();
    let (mut seen, b_received) =
        kill_b_mid_stream(&broker, &mut receiver, &mut nodes, &payloads).await;
    // B stays dead: A finds it gone (its record is not renewed for 20 s) and takes over.
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < 1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, receiver.received.recv()).await {
            Ok(Some(callback)) => count(callback, &mut seen),
            _ => panic!("{} of 1000 processed, node B dead", seen.len()),
        }
    }
    assert!(payloads.iter().all(|p| seen.contains_key(p)), "every message at least once");
    let listed = client
        .get(format!("{}/admin/nodes", nodes[0].1))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let listed = json(listed).await.1;
    let b = listed["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-b").unwrap();
    assert_eq!((b["alive"].clone(), b["taken_over_by"].clone()), (json!(false), json!("node-a")));
    let twice = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "node B received {b_received} before it was killed; processed more than once: {twice}"
    );
}
