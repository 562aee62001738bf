//! The invocation log end to end: every call recorded within a second, with the exception's
//! traceback and the timeout; queries; NDJSON and CSV downloads; `wasmfn logs`; and a graceful
//! shutdown that keeps every record.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use wasmfn_runtime::invocation_log::LogFilter;
use wasmfn_runtime::node::{Node, ServedBundle};
use wasmfn_runtime::runtime::Runtime;
use wasmfn_runtime::state::StateDb;

use support::{
    capability_options, fixture_bundle, json, node_options, runtime_config, start_server,
};

/// Polls the admin API until `query` returns `count` records (at most 1 s: the log's promise).
async fn records(server: &support::TestServer, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let response = server.admin(Method::GET, &format!("/admin/logs?{query}")).send().await;
        let (status, body) = json(response.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let records = body["records"].as_array().unwrap().clone();
        if records.len() >= count {
            return records;
        }
        assert!(Instant::now() < deadline, "{count} records not there within 1 s: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_invocation_is_recorded_queryable_and_downloadable() {
    let server = start_server(&["behave"], None).await;
    let call =
        |entry: &str| server.client.post(server.invoke_url(&format!("behave:{entry}"), "")).send();
    assert_eq!(call("behave.chatty").await.unwrap().status(), 200);
    assert_eq!(call("behave.boom").await.unwrap().status(), 500);
    assert_eq!(call("behave.spin").await.unwrap().status(), 504);

    let all = records(&server, "function=behave", 3).await;
    let by_entry = |entry: &str| {
        all.iter().find(|r| r["entry"] == entry).unwrap_or_else(|| panic!("no {entry} in {all:?}"))
    };
    let chatty = by_entry("behave.chatty");
    assert_eq!((chatty["status"].as_u64(), chatty["outcome"].as_str()), (Some(200), Some("ok")));
    assert!(
        !chatty["stdout"].as_str().unwrap().is_empty()
            || !chatty["logs"].as_array().unwrap().is_empty(),
        "{chatty}"
    );
    assert_eq!(chatty["version"], "1.0.0");
    assert_eq!(chatty["trigger"], "http");
    let boom = by_entry("behave.boom");
    assert_eq!(
        (boom["outcome"].as_str(), boom["error_type"].as_str()),
        (Some("function_exception"), Some("ValueError"))
    );
    assert!(
        boom["traceback"].as_str().unwrap().contains("Traceback (most recent call last)"),
        "{boom}"
    );
    let spin = by_entry("behave.spin");
    assert_eq!((spin["status"].as_u64(), spin["outcome"].as_str()), (Some(504), Some("timeout")));
    assert!(spin["duration_ms"].as_u64().unwrap() >= 1000);

    // Filters: by status class, and one record by id.
    let failed = records(&server, "function=behave&status=5xx", 2).await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    let id = boom["id"].as_str().unwrap();
    let (status, one) =
        json(server.admin(Method::GET, &format!("/admin/logs/{id}")).send().await.unwrap()).await;
    assert_eq!((status, one["entry"].as_str()), (200, Some("behave.boom")));
    let (status, bad) =
        json(server.admin(Method::GET, "/admin/logs?status=6xx").send().await.unwrap()).await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("invalid_query")));

    // NDJSON: one JSON object per line.
    let ndjson = server
        .admin(Method::GET, "/admin/logs?function=behave&format=ndjson")
        .send()
        .await
        .unwrap();
    assert!(ndjson.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("invocations.ndjson"));
    let text = ndjson.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    // CSV: a header row, then one row per record; the multi-line traceback survives quoting.
    let csv_text = server
        .admin(Method::GET, "/admin/logs?function=behave&format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    let traceback_column = headers.iter().position(|h| h == "traceback").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let boom_row = rows.iter().find(|r| &r[0] == id).unwrap();
    assert!(boom_row[traceback_column].contains("Traceback (most recent call last)"));
}

#[tokio::test]
async fn the_cli_prints_the_log() {
    let server = start_server(&["behave"], None).await;
    let url = server.invoke_url("behave:behave.boom", "");
    assert_eq!(server.client.post(url).send().await.unwrap().status(), 500);
    records(&server, "function=behave", 1).await;
    // On a blocking thread: the server answers from this test's runtime.
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        let args =
            ["logs", "--function", "behave", "--server", &base, "--token", support::ADMIN_TOKEN];
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn")).args(args).output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header[..4], ["STARTED", "ID", "FUNCTION", "VERSION"], "{text}");
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[2..7], ["default/behave", "1.0.0", "behave.boom", "http", "500"], "{text}");
    assert!(text.contains("function_exception ValueError: "), "{text}");
}

#[tokio::test]
async fn a_graceful_shutdown_keeps_every_record() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let runtime = Arc::new(Runtime::new(runtime_config()).unwrap());
        let options = support::NodeOptions {
            state: Some(StateDb::open(dir.path()).unwrap()),
            ..node_options()
        };
        let mut node = Node::new(runtime.clone(), options).unwrap();
        let served = ServedBundle {
            space: "default".into(),
            bytes: bytes.into(),
            config: Default::default(),
            source: "behave".into(),
        };
        node.start(&capability_options(), vec![served]).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..50 {
            let invocation = wasmfn_runtime::invoker::Invocation {
                space: "default".into(),
                function: "behave".into(),
                entry: Some("behave.greet".into()),
                arguments: serde_json::json!({"name": "Ada"}).into(),
                trigger: "test".into(),
                ..Default::default()
            };
            ids.push(runtime.invoker().invoke(invocation).await.id);
        }
        node.shutdown().await;
        ids
    };
    // Everything holding the database is gone: reopen it as the next start would.
    let state = StateDb::open(dir.path()).expect("the database is closed after shutdown");
    let (log, tasks) = wasmfn_runtime::invocation_log::InvocationLog::start(
        state.tree("log_records").unwrap(),
        state.tree("log_ids").unwrap(),
        Default::default(),
        Arc::new(wasmfn_runtime::triggers::cron::SystemClock),
    );
    for id in &ids {
        assert!(log.get(*id).is_some(), "record {id} kept");
    }
    assert_eq!(log.query(&LogFilter { limit: 1000, ..LogFilter::default() }).len(), ids.len());
    tasks.shutdown().await;
}
