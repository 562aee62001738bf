//! Per-space storage quotas against the real `wasmfn serve` binary (issue 20): a function's
//! document writes past `--space-documents` fail whole with a `WriteError` (a `BulkWriteError`
//! for `insert_many`) and store nothing, a delete gives the room back; object puts past
//! `--space-object-mib`, from the function or through a presigned URL, are refused (the
//! function gets `ObjectTooLarge`, the URL answers 507 `quota_exceeded`); an overwrite counts
//! the difference; `/metrics` shows each space's usage, and all of it is the same after a
//! restart.

mod support;

use std::path::Path;

use serde_json::{json, Value};

use support::{fixture_bundle, json, spawn_serve, ServeProcess, ADMIN_TOKEN};

async fn serve(data_dir: &Path, args: &[String]) -> (ServeProcess, String) {
    let data_dir = data_dir.to_path_buf();
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_serve(&data_dir, &args)
    })
    .await
    .unwrap()
}

/// Calls `hoarder:hoarder.<entry>` with JSON arguments; the function answers JSON.
async fn call(base: &str, entry: &str, arguments: Value) -> Value {
    let url = format!("{base}/spaces/default/functions/hoarder:hoarder.{entry}/invoke");
    let (status, body) =
        json(reqwest::Client::new().post(url).json(&arguments).send().await.unwrap()).await;
    assert_eq!(status, 200, "{entry}: {body}");
    body
}

/// The `/metrics` gauges of space `default`, by name.
async fn gauges(base: &str) -> Vec<(String, u64)> {
    let client = reqwest::Client::new();
    let response = client.get(format!("{base}/metrics")).bearer_auth(ADMIN_TOKEN).send().await;
    let text = response.unwrap().text().await.unwrap();
    let names = [
        "wasmfn_documents_stored",
        "wasmfn_document_bytes_stored",
        "wasmfn_collections_stored",
        "wasmfn_object_bytes_stored",
        "wasmfn_objects_stored",
    ];
    let value = |name: &str| {
        let prefix = format!("{name}{{space=\"default\"}} ");
        text.lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
    };
    names
        .iter()
        .map(|name| (name.to_string(), value(name).unwrap_or_else(|| panic!("{name} in {text}"))))
        .collect()
}

/// Stores `size` bytes under `key` from the function.
async fn put(base: &str, key: &str, size: u64) -> Value {
    call(base, "put_object", json!({"key": key, "size": size})).await
}

fn stored_bytes(documents: &[Value]) -> u64 {
    documents.iter().map(|d| serde_json::to_vec(d).unwrap().len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_objects_past_a_space_quota_are_refused_whole_and_usage_survives_a_restart() {
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("hoarder")).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().join("hoarder.wasm");
    std::fs::write(&path, bundle).unwrap();
    let args: Vec<String> = [
        path.to_str().unwrap(),
        "--default-access",
        "public",
        "--space-documents",
        "5",
        "--space-object-mib",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let state = data_dir.path().join("state");
    let (mut server, base) = serve(&state, &args).await;

    // Six documents in one insert_many: refused whole, with MongoDB Atlas's quota error.
    let body = call(&base, "insert_many", json!({"count": 6})).await;
    assert_eq!(body["error"], "BulkWriteError", "{body}");
    assert_eq!(body["details"]["nInserted"], 0, "{body}");
    let error = &body["details"]["writeErrors"][0];
    assert_eq!(error["code"], 8000, "{body}");
    assert_eq!(
        error["errmsg"],
        "quota exceeded: the space holds 0 documents and this write adds 6, over its limit of 5; \
         nothing was written"
    );
    assert_eq!(call(&base, "count", json!({})).await["count"], 0, "nothing of it was stored");

    // Five fit; a sixth is a WriteError until a delete gives the room back.
    assert_eq!(call(&base, "insert_many", json!({"count": 5})).await["inserted"], 5);
    let body = call(&base, "insert_one", json!({"id": "extra"})).await;
    assert_eq!((&body["error"], &body["code"]), (&json!("WriteError"), &json!(8000)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("holds 5 documents"), "{body}");
    assert_eq!(call(&base, "count", json!({})).await["count"], 5);
    assert_eq!(call(&base, "delete_one", json!({"id": "d0"})).await["deleted"], 1);
    assert_eq!(call(&base, "insert_one", json!({"id": "extra"})).await["inserted"], "extra");

    // Objects: 1 MiB per space. An overwrite counts the difference.
    assert_eq!(put(&base, "a", 600_000).await["size"], 600_000);
    let body = put(&base, "b", 600_000).await;
    assert_eq!(body["error"], "ObjectTooLarge", "{body}");
    assert_eq!(
        body["message"],
        "quota exceeded: the space holds 600000 bytes of objects and this put adds 600000, over \
         its limit of 1048576; nothing was stored"
    );
    assert_eq!(put(&base, "a", 300_000).await["size"], 300_000);
    assert_eq!(put(&base, "b", 600_000).await["size"], 600_000);
    // A presigned PUT meets the same quota: 507 with the JSON error body, nothing stored.
    let url =
        call(&base, "presign_put", json!({"key": "c"})).await["url"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let (status, body) =
        json(client.put(&url).body(vec![b'x'; 200_000]).send().await.unwrap()).await;
    assert_eq!((status, &body["error"]["code"]), (507, &json!("quota_exceeded")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("quota exceeded: "), "{body}");
    let (status, _) = json(client.put(&url).body(vec![b'x'; 100_000]).send().await.unwrap()).await;
    assert_eq!(status, 201, "what still fits is stored");

    let documents: Vec<Value> = (1..5)
        .map(|i| json!({"_id": format!("d{i}"), "n": i}))
        .chain([json!({"_id": "extra"})])
        .collect();
    let expected = vec![
        ("wasmfn_documents_stored".to_string(), 5),
        ("wasmfn_document_bytes_stored".to_string(), stored_bytes(&documents)),
        ("wasmfn_collections_stored".to_string(), 1),
        ("wasmfn_object_bytes_stored".to_string(), 1_000_000),
        ("wasmfn_objects_stored".to_string(), 3),
    ];
    assert_eq!(gauges(&base).await, expected);

    // A restart counts the same usage from the stores and keeps enforcing it.
    server.kill().unwrap();
    server.wait().unwrap();
    let (_server, base) = serve(&state, &args).await;
    assert_eq!(gauges(&base).await, expected, "the same usage after a restart");
    let body = call(&base, "insert_one", json!({"id": "more"})).await;
    assert_eq!(body["error"], "WriteError", "{body}");
    assert_eq!(put(&base, "d", 100_000).await["error"], "ObjectTooLarge");
}
