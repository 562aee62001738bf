//! Host-side work is bounded (issue 20, items 1–3), against the real `wasmfn serve` binary: a
//! bundle whose `entries()` never returns is refused within its timeout, marked failed, and the
//! server restarts ready without it; a 10 000-document `insert_many` with a duplicate at the end
//! commits nothing; a huge `$in` answers with the store's time limit. `/healthz` keeps answering
//! throughout.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::{fixture_bundle, json, spawn_serve, ServeProcess, ADMIN_TOKEN};

/// How long `/healthz` may take to answer while abusive work runs: a liveness bound, generous
/// for a loaded 2-core machine (the issue saw it stop answering for good, or for 23 s).
const HEALTHZ_BOUND: Duration = Duration::from_secs(2);

/// How long a deploy or a call may take before the test gives up on it (a liveness bound: the
/// work they start is bounded by seconds; unbounded, it ran for minutes or for good).
const ANSWER_BOUND: Duration = Duration::from_secs(120);

async fn serve(data_dir: &Path, args: &[&str]) -> (ServeProcess, String) {
    let data_dir = data_dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let started = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_serve(&data_dir, &args)
    });
    // A server that hangs at start never prints its address: bound the wait.
    tokio::time::timeout(Duration::from_secs(120), started)
        .await
        .expect("the server did not start listening within 120 s")
        .unwrap()
}

/// Runs `work` while polling `/healthz`; panics if one poll takes longer than [`HEALTHZ_BOUND`].
/// Returns what `work` returned and how many polls answered.
async fn while_healthy<T>(
    base: &str,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> (T, usize)
where
    T: Send + 'static,
{
    let client = reqwest::Client::builder().timeout(HEALTHZ_BOUND).build().unwrap();
    let work = tokio::spawn(work);
    let mut polls = 0;
    while !work.is_finished() {
        let started = Instant::now();
        let answer = client.get(format!("{base}/healthz")).send().await;
        let status = answer.map(|r| r.status().as_u16());
        assert!(
            matches!(status, Ok(200)),
            "/healthz did not answer within {HEALTHZ_BOUND:?} while work ran: {status:?} after \
             {:?}",
            started.elapsed()
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (work.await.unwrap(), polls)
}

async fn show(client: &reqwest::Client, base: &str, function: &str) -> Value {
    let url = format!("{base}/admin/spaces/default/functions/{function}");
    let (status, body) = json(client.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn state_of<'a>(function: &'a Value, version: &str) -> (&'a str, &'a str) {
    let versions = function["versions"].as_array().expect("versions");
    let found = versions.iter().find(|v| v["version"] == version).expect("the version is listed");
    (found["state"].as_str().unwrap(), found["error"].as_str().unwrap_or(""))
}

async fn ready(base: &str) -> bool {
    let answer = reqwest::get(format!("{base}/readyz")).await;
    answer.is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_whose_entries_never_return_fails_and_the_server_restarts_ready_without_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("stalling")).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (server, base) = serve(data_dir.path(), &["--default-access", "public"]).await;
    let client = reqwest::Client::builder().timeout(ANSWER_BOUND).build().unwrap();
    let versions = format!("{base}/admin/spaces/default/functions/stalling/versions");

    // Waiting for the compile: an error within the function's 1 s timeout (plus the compile).
    let deploy = client.post(&versions).bearer_auth(ADMIN_TOKEN).body(bundle.clone()).send();
    let started = Instant::now();
    let (response, _) = while_healthy(&base, deploy).await;
    let response = response.unwrap_or_else(|e| panic!("no answer to the deploy: {e}"));
    let (status, body) = json(response).await;
    assert!(started.elapsed() < Duration::from_secs(60), "deploy took {:?}", started.elapsed());
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_bundle")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("entries() export did not finish within the function's timeout (1000 ms)"),
        "{message}"
    );
    let function = show(&client, &base, "stalling").await;
    let (state, error) = state_of(&function, "1.0.0");
    assert_eq!(state, "failed", "{function}");
    assert!(error.contains("did not finish within"), "{function}");

    // Another version in the background, and the server killed while it may still compile: the
    // record can say `compiling` at the next start.
    let background = format!("{versions}?version=1.0.1&wait=false");
    let response = client.post(&background).bearer_auth(ADMIN_TOKEN).body(bundle).send().await;
    let (status, body) = json(response.unwrap()).await;
    assert_eq!((status, body["version"]["state"].as_str()), (202, Some("compiling")), "{body}");
    drop(server); // kill -9

    // The same data dir: listening and ready, both versions failed with the reason, no retry.
    let (_server, base) = serve(data_dir.path(), &["--default-access", "public"]).await;
    let polled = base.clone();
    let (_, polls) = while_healthy(&base, async move {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let function = show(&client, &polled, "stalling").await;
            if state_of(&function, "1.0.1").0 == "failed" {
                assert_eq!(state_of(&function, "1.0.0").0, "failed");
                let (_, error) = state_of(&function, "1.0.1");
                assert!(error.contains("did not finish within"), "{function}");
                return;
            }
            assert!(Instant::now() < deadline, "1.0.1 never marked failed: {function}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(polls > 0, "/healthz was polled while waiting");
    assert!(ready(&base).await, "the server is ready without the failed versions");
    let invoke = format!("{base}/spaces/default/functions/stalling/invoke");
    let (status, body) = json(client.post(invoke).send().await.unwrap()).await;
    // Nothing else is served in the space, so the space itself is unknown.
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("space_not_found")), "{body}");
}

/// Calls `hoarder:hoarder.<entry>` with JSON arguments; the function answers JSON.
async fn call(base: String, entry: &'static str, arguments: Value) -> (u16, Value) {
    let url = format!("{base}/spaces/default/functions/hoarder:hoarder.{entry}/invoke");
    let client = reqwest::Client::builder().timeout(ANSWER_BOUND).build().unwrap();
    let answer = client.post(url).json(&arguments).send().await;
    json(answer.unwrap_or_else(|e| panic!("{entry} did not answer within {ANSWER_BOUND:?}: {e}")))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_store_calls_are_bounded_and_a_failed_insert_many_commits_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("hoarder")).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().join("hoarder.wasm");
    std::fs::write(&path, bundle).unwrap();
    let args = [path.to_str().unwrap(), "--default-access", "public"];
    let (_server, base) = serve(&data_dir.path().join("state"), &args).await;

    // 10 000 documents, the last repeating the first id: refused whole, naming both.
    let late_duplicate = json!({"count": 10_000, "duplicate_last": true});
    let ((status, body), _) =
        while_healthy(&base, call(base.clone(), "insert_many", late_duplicate)).await;
    assert_eq!((status, body["error"].as_str()), (200, Some("BulkWriteError")), "{body}");
    assert_eq!(body["details"]["nInserted"], 0, "{body}");
    let written = body["details"]["writeErrors"].to_string();
    assert!(written.contains("appears twice in the batch (documents 0 and 9999)"), "{written}");
    let (_, counted) = call(base.clone(), "count", json!({})).await;
    assert_eq!(counted["count"], 0, "nothing of the refused batch was committed");
    // The same batch without the duplicate goes in whole.
    let (status, body) = call(base.clone(), "insert_many", json!({"count": 10_000})).await;
    assert_eq!((status, body["inserted"].as_u64()), (200, Some(10_000)), "{body}");
    assert_eq!(call(base.clone(), "count", json!({})).await.1["count"], 10_000);

    // A 100 000-value `$in` against a 20 000-element array: the store's limit, not a stuck core.
    let (status, body) = call(base.clone(), "seed_array", json!({"size": 20_000})).await;
    assert_eq!(status, 200, "{body}");
    let ((status, body), polls) =
        while_healthy(&base, call(base.clone(), "find_in", json!({"size": 100_000}))).await;
    assert_eq!((status, body["error"].as_str()), (200, Some("ExecutionTimeout")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("time limit of 5000 ms"), "{body}");
    assert!(polls > 0, "/healthz was polled while the query ran");
}

/// `/healthz`'s 99th percentile latency may not exceed this while the abusive calls run: the
/// goal of docs/security.md. Measured on a 2-core machine, the test's own clients included:
/// p99 34 ms with waiting functions moved to threads of their own at a lower priority (147 ms when they
/// shared the serving threads, 880 ms before the server polled I/O every second task).
const HEALTHZ_P99_BOUND: Duration = Duration::from_millis(100);

/// The tests of this file take it, so they run one at a time: each loads the machine on
/// purpose, and the latency test measures one load at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Keeps a connection open by sending one header byte every 500 ms until `stop`.
async fn slow_client(address: String, stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::io::AsyncWriteExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else { return };
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    while !*stop.borrow() {
        if stream.write_all(b"a").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Repeats `call` until `stop`, counting the answers.
async fn repeat<F, Fut>(stop: tokio::sync::watch::Receiver<bool>, call: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut answered = 0;
    while !*stop.borrow() {
        if call().await {
            answered += 1;
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_p99_stays_low_while_four_abusive_calls_of_each_kind_run() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let bundles =
        tokio::task::spawn_blocking(|| (fixture_bundle("hoarder"), fixture_bundle("behave")));
    let (hoarder, behave) = bundles.await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (hoarder_path, behave_path) =
        (data_dir.path().join("hoarder.wasm"), data_dir.path().join("behave.wasm"));
    std::fs::write(&hoarder_path, hoarder).unwrap();
    std::fs::write(&behave_path, behave).unwrap();
    let args = [
        hoarder_path.to_str().unwrap(),
        behave_path.to_str().unwrap(),
        "--default-access",
        "public",
    ];
    let (_server, base) = serve(&data_dir.path().join("state"), &args).await;
    let (status, body) = call(base.clone(), "seed_array", json!({"size": 20_000})).await;
    assert_eq!(status, 200, "{body}");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = reqwest::Client::builder().timeout(ANSWER_BOUND).build().unwrap();
    let behave =
        |entry: &str| format!("{base}/spaces/default/functions/behave:behave.{entry}/invoke");
    let mut abuse = Vec::new();
    for _ in 0..4 {
        // A guest that never returns, one that allocates until its limit, a quadratic-looking
        // insert_many, a 100 000-value `$in` against a 20 000-element array, a 16 MiB body for
        // a 1 MiB limit, and a client that never finishes its headers.
        let kinds: [(String, Option<Value>, Vec<u8>); 5] = [
            (behave("spin"), None, Vec::new()),
            (behave("allocate"), None, Vec::new()),
            (
                format!("{base}/spaces/default/functions/hoarder:hoarder.insert_many/invoke"),
                Some(json!({"count": 10_000, "duplicate_last": true})),
                Vec::new(),
            ),
            (
                format!("{base}/spaces/default/functions/hoarder:hoarder.find_in/invoke"),
                Some(json!({"size": 100_000})),
                Vec::new(),
            ),
            (behave("echo"), None, vec![b'x'; 16 << 20]),
        ];
        for (url, arguments, body) in kinds {
            let (client, stopped) = (client.clone(), stopped.clone());
            abuse.push(tokio::spawn(repeat(stopped, move || {
                let request = match &arguments {
                    Some(arguments) => client.post(&url).json(arguments),
                    None => client.post(&url).body(body.clone()),
                };
                async move { request.send().await.is_ok() }
            })));
        }
        let address = base.trim_start_matches("http://").to_string();
        tokio::spawn(slow_client(address, stopped.clone()));
    }

    // Health checks on fresh connections, as a load balancer makes them, for 15 s.
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let probe = reqwest::Client::builder().timeout(ANSWER_BOUND).build().unwrap();
        let asked = Instant::now();
        let status = probe.get(format!("{base}/healthz")).send().await.map(|r| r.status());
        latencies.push(asked.elapsed());
        assert_eq!(status.ok().map(|s| s.as_u16()), Some(200), "/healthz failed under load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    let mut answered = 0;
    for task in abuse {
        answered += task.await.unwrap();
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let (p50, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    eprintln!("/healthz under abuse: {} polls, p50 {p50:?}, p99 {p99:?}, max {max:?}; {answered} abusive calls answered", latencies.len());
    assert!(answered >= 20, "the abusive calls ran and were answered: {answered}");
    assert!(p99 <= HEALTHZ_P99_BOUND, "/healthz p99 {p99:?} (p50 {p50:?}, max {max:?})");
}
