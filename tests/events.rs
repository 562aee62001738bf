//! Event triggers end to end: document writes run a subscribed function (from its
//! function.toml) asynchronously in a fresh instance; a webhook subscription (admin API) gets
//! each event with its `_secret` and a `_function_session` that authorises calls back into the
//! space until it expires (fake clock); cron outcomes reach a trigger's callback URL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use wasmfn_runtime::node::EventOptions;
use wasmfn_runtime::triggers::cron::{
    CallbackTarget, CronJob, CronSchedule, CronScheduler, ManualClock, SystemClock,
};

/// Polls `check` until it returns `Some` (20 s at most).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an event subscription through the admin API: status and body.
async fn subscribe(server: &TestServer, body: &Value) -> (u16, Value) {
    let request = server.admin(reqwest::Method::POST, "/admin/spaces/default/events").json(body);
    json(request.send().await.unwrap()).await
}

async fn write(server: &TestServer, body: Value) {
    let url = server.url("/spaces/default/functions/eventful:eventful.write/invoke");
    let (status, answer) = json(server.client.post(url).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_writes_run_the_subscribed_function_and_reach_webhooks_with_a_session() {
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let mut options = node_options();
    options.events = EventOptions { session_minutes: 15 };
    options.clock = clock.clone();
    let server = start_server_with(&["eventful"], None, options).await;

    // A webhook for inserts and object puts, through the admin API: the secret is shown once.
    let (hook_url, hooked) = webhook_receiver().await;
    let create = json!({"name": "mirror", "events": ["STORAGE_INSERT", "OBJECT_PUT"], "webhook_url": hook_url, "key_prefix": "uploads/"});
    let (status, created) = subscribe(&server, &create).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["target"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whs_"), "{created}");
    let (_, listed) = json(
        server.admin(reqwest::Method::GET, "/admin/spaces/default/events").send().await.unwrap(),
    )
    .await;
    assert!(!listed.to_string().contains(&secret), "the secret is not shown again: {listed}");
    let names: Vec<&str> = listed["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "mirror"], "function.toml's and the admin API's");
    let duplicate = server
        .admin(reqwest::Method::POST, "/admin/spaces/default/events")
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let bad = json!({"name": "bad", "events": ["NOPE"], "function": "eventful"});
    let (status, body) = json(
        server
            .admin(reqwest::Method::POST, "/admin/spaces/default/events")
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("NOPE"), "{body}");

    write(&server, json!({"op": "insert", "key": "k1", "value": 1})).await;
    write(&server, json!({"op": "update", "key": "k1", "value": 2})).await;
    write(&server, json!({"op": "delete", "key": "k1"})).await;
    write(&server, json!({"op": "upload", "key": "u1", "value": 5})).await;

    // The subscribed function ran once per document event, asynchronously, as trigger "event".
    let url = server.url("/spaces/default/functions/eventful:eventful.recorded/invoke");
    let recorded = eventually("three recorded events", async || {
        let (_, body) = json(server.client.post(&url).send().await.unwrap()).await;
        let events = body["events"].as_array().cloned().unwrap_or_default();
        (events.len() >= 3).then_some(events)
    })
    .await;
    let mut kinds: Vec<(i64, String)> = recorded
        .iter()
        .map(|e| (e["event_id"].as_i64().unwrap(), e["event"].as_str().unwrap().to_string()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (1000, "STORAGE_INSERT".into()),
            (1001, "STORAGE_UPDATE".into()),
            (1002, "STORAGE_DELETE".into())
        ]
    );
    assert!(
        recorded.iter().all(|e| e["trigger"] == "event" && e["data"]["row_id"] == "k1"),
        "{recorded:?}"
    );
    let update = recorded.iter().find(|e| e["event_id"] == 1001).unwrap();
    assert_eq!(update["data"]["document"], json!({"_id": "k1", "value": 2}));
    assert_eq!(
        (update["data"]["container"].clone(), update["data"]["dataset"].clone()),
        (json!("eventful"), json!("default"))
    );

    // The webhook got the insert and the upload (not the update or delete), with secret and session.
    let hooks = eventually("two webhook deliveries", async || {
        let got = hooked.lock().unwrap().clone();
        (got.len() >= 2).then_some(got)
    })
    .await;
    let insert =
        hooks.iter().map(|(_, b)| b).find(|b| b["event"] == "STORAGE_INSERT").expect("the insert");
    let upload =
        hooks.iter().map(|(_, b)| b).find(|b| b["event"] == "OBJECT_PUT").expect("the upload");
    assert_eq!(insert["_secret"], secret.as_str());
    assert_eq!(insert["data"]["row_id"], "k1");
    assert_eq!(
        (upload["data"]["key"].clone(), upload["data"]["size"].clone()),
        (json!("uploads/u1"), json!(1))
    );
    let session = insert["_function_session"].as_str().unwrap().to_string();

    // The session works on the space's documents and objects...
    let find = server.url("/session/documents/eventful/find");
    write(&server, json!({"op": "insert", "key": "k2", "value": 7})).await;
    let response = server
        .client
        .post(&find)
        .bearer_auth(&session)
        .json(&json!({"filter": {"_id": "k2"}}))
        .send()
        .await
        .unwrap();
    let (status, found) = json(response).await;
    assert_eq!((status, found), (200, json!({"documents": [{"_id": "k2", "value": 7}]})));
    let insert_url = server.url("/session/documents/notes/insert");
    let response = server
        .client
        .post(&insert_url)
        .bearer_auth(&session)
        .json(&json!({"documents": [{"_id": "n1"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await, (200, json!({"inserted_ids": ["n1"]})));
    let object = server.url("/session/objects/uploads/u1");
    let response = server.client.get(&object).bearer_auth(&session).send().await.unwrap();
    assert_eq!(
        (response.status().as_u16(), response.text().await.unwrap()),
        (200, "5".to_string())
    );
    let response = server
        .client
        .put(server.url("/session/objects/from-hook.txt"))
        .bearer_auth(&session)
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // ...within a time bound of its own (there is no function and no timeout_ms): a `$in` of
    // 100 000 values against 20 000 array elements answers 422 when the request's 5 s are up.
    let wide = json!({"documents": [{"_id": "wide", "items": (0..20_000).collect::<Vec<i64>>()}]});
    let insert_wide = server.url("/session/documents/wide/insert");
    let response =
        server.client.post(&insert_wide).bearer_auth(&session).json(&wide).send().await.unwrap();
    assert_eq!(json(response).await.0, 200);
    let huge_in = json!({"filter": {"items": {"$in": (-100_000..0).collect::<Vec<i64>>()}}});
    let find_wide = server.url("/session/documents/wide/find");
    let response =
        server.client.post(&find_wide).bearer_auth(&session).json(&huge_in).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("limit_exceeded")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the time left to the session request (5 s"), "{message}");
    // ...not with a tampered or missing token...
    let tampered = format!("{}x", &session[..session.len() - 1]);
    let (status, body) = json(
        server.client.post(&find).bearer_auth(&tampered).json(&json!({})).send().await.unwrap(),
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (401, json!("invalid_session")));
    let (status, _) = json(server.client.post(&find).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 401);
    // ...and not once it expired.
    clock.set(start + chrono::Duration::minutes(15));
    let (status, body) = json(
        server.client.post(&find).bearer_auth(&session).json(&json!({})).send().await.unwrap(),
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (401, json!("session_expired")));

    // The admin subscription can be deleted; the function.toml one cannot.
    let response = server
        .admin(reqwest::Method::DELETE, "/admin/spaces/default/events/mirror")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .admin(reqwest::Method::DELETE, "/admin/spaces/default/events/audit")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    // Deliveries show up in the delivery log.
    let (_, deliveries) =
        json(server.admin(reqwest::Method::GET, "/admin/deliveries").send().await.unwrap()).await;
    assert!(deliveries.to_string().contains("event:default/mirror"), "{deliveries}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_trigger_posts_each_outcome_to_its_callback_url() {
    let (callback, received) = webhook_receiver().await;
    let runtime = wasmfn_runtime::runtime::Runtime::new(runtime_config()).expect("runtime");
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let meta = wasmfn_runtime::bundle::read_meta(&bytes).unwrap().unwrap();
    runtime.load(bytes, "default", None).await.unwrap();
    let mut trigger = meta.cron[0].clone();
    trigger.name = "every-second".into();
    trigger.schedule = CronSchedule::with_seconds("* * * * * *").unwrap();
    let url: url::Url = callback.parse().unwrap();
    let job = CronJob { space: "default".into(), function: "behave".into(), trigger };
    let target = CallbackTarget {
        invoker: runtime.invoker().clone(),
        // The receiver is on 127.0.0.1, which deliveries reach only when the operator allows it.
        deliverer: wasmfn_runtime::delivery::Deliverer::new(node_options().delivery),
        callbacks: [(("default".into(), "behave".into(), "every-second".into()), url)]
            .into_iter()
            .collect(),
    };
    let scheduler = CronScheduler::start(vec![job], Arc::new(target), Arc::new(SystemClock), None);
    let got =
        eventually("a cron callback", async || received.lock().unwrap().first().cloned()).await;
    scheduler.shutdown().await;
    let (headers, _) = got;
    assert_eq!(headers["x-function-status"], "200");
    assert!(headers.contains_key("x-invocation-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_trigger_fires_only_when_the_value_of_its_field_changes() {
    let server = start_server(&["eventful"], None).await;
    let (watch_url, watched) = webhook_receiver().await;
    let (all_url, all) = webhook_receiver().await;
    let subscriptions = [
        // Every write of the document `k9` that changes `value`.
        json!({"name": "value-watch", "collection": "eventful", "property": "value",
               "document_id": "k9", "webhook_url": watch_url}),
        // Every write, to know when all have been handed over.
        json!({"name": "all-writes", "collection": "eventful", "webhook_url": all_url,
               "events": ["STORAGE_INSERT", "STORAGE_UPDATE", "STORAGE_DELETE"]}),
    ];
    for body in subscriptions {
        let (status, created) = subscribe(&server, &body).await;
        assert_eq!(status, 201, "{created}");
    }
    let writes = [
        json!({"op": "insert", "key": "k9", "value": 1}),
        // A write of another field: the document changes, its `value` does not.
        json!({"op": "tag", "key": "k9", "value": 7}),
        // A write that changes nothing: the store reports no event at all.
        json!({"op": "update", "key": "k9", "value": 1}),
        json!({"op": "insert", "key": "k8", "value": 5}),
        json!({"op": "update", "key": "k9", "value": 2}),
        json!({"op": "delete", "key": "k9"}),
    ];
    for body in writes {
        write(&server, body).await;
    }
    // Both subscriptions' deliveries of a write are handed over together, as it commits: once
    // the catch-all has the five writes, the property ones have been sent too.
    eventually("the five writes", async || (all.lock().unwrap().len() == 5).then_some(())).await;
    let changes = eventually("the three changes of k9", async || {
        let received = watched.lock().unwrap();
        let mut changes: Vec<_> = received
            .iter()
            .map(|(_, body)| {
                let data = &body["data"];
                assert_eq!((&data["property"], &data["row_id"]), (&json!("value"), &json!("k9")));
                (body["event"].clone(), data["old_value"].clone(), data["new_value"].clone())
            })
            .collect();
        changes.sort_by_key(|change| change.0.to_string());
        (changes.len() >= 3).then_some(changes)
    })
    .await;
    assert_eq!(
        changes,
        [
            (json!("STORAGE_DELETE"), json!(2), Value::Null),
            (json!("STORAGE_INSERT"), Value::Null, json!(1)),
            (json!("STORAGE_UPDATE"), json!(1), json!(2)),
        ],
        "the write of another field and the other document's insert do not fire"
    );

    // A property needs its collection, and only document writes.
    for (body, wanted) in [
        (json!({"name": "bad", "property": "value", "webhook_url": watch_url}), "collection"),
        (
            json!({"name": "bad", "property": "value", "collection": "c", "events": ["OBJECT_PUT"],
                   "webhook_url": watch_url}),
            "not a document write",
        ),
        (
            json!({"name": "bad", "property": "a..b", "collection": "c", "webhook_url": watch_url}),
            "dotted",
        ),
    ] {
        let (status, refused) = subscribe(&server, &body).await;
        assert_eq!(status, 400, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(wanted), "{message}");
    }
}
