//! The reliability suite against the real `wasmfn serve` binary: a load of mixed good and
//! faulty calls where every request gets its exact answer and memory returns to where it was,
//! and `kill -9` in the middle of document writes and async invocations where nothing
//! acknowledged is lost. Counts scale with WASMFN_LOAD_REQUESTS and WASMFN_KILL_OPERATIONS
//! (defaults: the 10,000 requests from 64 clients; 400 operations).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn scaled(variable: &str, default: usize) -> usize {
    std::env::var(variable).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Private (anonymous) resident memory of a process, in KiB: what a leak, or instance slots
/// that kept what memory bombs wrote, would grow. Not VmRSS: that also counts the pages of the
/// compiled bundle's memory image mapped into instance slots, one page of the page cache as
/// many times as slots map it, shared and clean, which rises and falls with how many slots hold
/// their mappings rather than with what the server keeps.
fn private_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("RssAnon")
}

async fn spawn(dir: &Path, args: Vec<String>) -> (ServeProcess, String) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_serve(&dir, &args)
    })
    .await
    .unwrap()
}

/// The entry and the status every `n`th request gets: 2 % of them are faulty.
fn planned(n: usize) -> (&'static str, u16) {
    match n % 200 {
        0 => ("behave.boom", 500),      // Python exception
        50 => ("behave.allocate", 500), // memory bomb
        100 => ("behave.recurse", 500), // runaway recursion
        150 => ("behave.spin", 504),    // infinite loop
        _ => ("behave.echo", 200),
    }
}

/// Whether `got` is the planned answer. The faulty calls burn CPU before they fail (a second
/// for the loop, hundreds of MiB for the bomb, deep recursion, a traceback), so with 64 calls
/// sharing 2 cores one may reach the 1 s wall-clock timeout first: 504 is the other correct
/// answer for them. A good call must always succeed.
fn as_planned(entry: &str, expected: u16, got: u16) -> bool {
    got == expected || (entry != "behave.echo" && got == 504)
}

/// Sends requests `range` from `clients` concurrent clients; returns how many got each
/// (entry, planned status, actual status).
async fn load(
    base: &str,
    range: std::ops::Range<usize>,
    clients: usize,
) -> BTreeMap<(String, u16, u16), usize> {
    let next = Arc::new(Mutex::new(range));
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, seen, base) = (next.clone(), seen.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let Some(n) = next.lock().unwrap().next() else { break };
                let (entry, expected) = planned(n);
                let url = format!("{base}/spaces/default/functions/behave:{entry}/invoke/req/{n}");
                let status = match client.post(&url).json(&json!({"n": n})).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // The body must be complete and, for errors, our JSON.
                        let body = response.bytes().await.expect("a complete body");
                        if status != 200 {
                            let error: Value =
                                serde_json::from_slice(&body).expect("a JSON error body");
                            assert!(error["error"]["code"].is_string(), "{error}");
                        }
                        status
                    }
                    Err(error) => panic!("request {n} ({entry}) got no response: {error}"),
                };
                *seen.lock().unwrap().entry((entry.to_string(), expected, status)).or_insert(0) +=
                    1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task");
    }
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_faulty_load_is_answered_and_memory_returns() {
    let total = scaled("WASMFN_LOAD_REQUESTS", 10_000);
    let clients = 64;
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("behave.wasm");
    std::fs::write(&path, bundle).unwrap();
    let args = vec![path.display().to_string(), "--default-access".into(), "public".into()];
    let (mut child, base) = spawn(dir.path(), args).await;

    // Warm up with the same mix, so pools, caches and thread stacks reach their working size.
    let warm = load(&base, 0..(total / 10).max(400), clients).await;
    let baseline = private_kib(child.id());
    let seen = load(&base, 1_000_000..1_000_000 + total, clients).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = private_kib(child.id());

    let answered: usize = seen.values().sum();
    assert_eq!(answered, total, "every request got a response");
    let wrong: Vec<_> = seen
        .iter()
        .filter(|((entry, expected, got), _)| !as_planned(entry, *expected, *got))
        .collect();
    assert!(wrong.is_empty(), "every request got its exact status: {wrong:?} (warm-up: {warm:?})");
    let faulty: usize =
        seen.iter().filter(|((_, expected, _), _)| *expected != 200).map(|(_, n)| n).sum();
    assert_eq!(faulty, total / 50, "2 % of the requests went to faulty functions");
    // Memory back to the warmed-up baseline (with slack for allocator noise).
    assert!(
        after <= baseline + baseline / 5 + 32 * 1024,
        "private RSS grew from {baseline} KiB to {after} KiB over {total} requests"
    );
    // And the server still answers a normal call.
    let url = format!("{base}/spaces/default/functions/behave/invoke");
    let response = reqwest::Client::new().post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    eprintln!("load: {total} requests, private RSS {baseline} KiB -> {after} KiB, {seen:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_and_async_invocations_loses_nothing_acknowledged() {
    let operations = scaled("WASMFN_KILL_OPERATIONS", 400);
    let bundle = tokio::task::spawn_blocking(|| example_bundle("counter")).await.unwrap();
    let bundle = bundle.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(dir.path(), vec![bundle.clone()]).await;

    // Writers: synchronous document inserts (acknowledged = 200 with the new id) and async
    // invocations doing the same (accepted = 202 with the invocation id), until the kill.
    let written = Arc::new(Mutex::new(Vec::<String>::new()));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (written, accepted, base) = (written.clone(), accepted.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Even workers write synchronously (200 + the note's id); odd ones invoke
            // asynchronously (202 + the invocation id).
            let (kind, expected, sink) = if worker % 2 == 0 {
                ("invoke", 200, written)
            } else {
                ("async-invoke", 202, accepted)
            };
            let url = format!("{base}/spaces/default/functions/counter:counter.sign/{kind}");
            for n in 0.. {
                let note = json!({"author": format!("w{worker}-{n}"), "text": "x"});
                let Ok(response) = client.post(&url).json(&note).send().await else { break };
                if response.status() != expected {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else { break };
                sink.lock().unwrap().push(body["id"].as_str().unwrap().to_string());
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while written.lock().unwrap().len() + accepted.lock().unwrap().len() < operations {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load did not reach {operations} operations"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL in the middle of the load
    child.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let written = written.lock().unwrap().clone();
    let accepted = accepted.lock().unwrap().clone();
    assert!(!written.is_empty() && !accepted.is_empty(), "both kinds ran before the kill");

    let (mut child, base) = spawn(dir.path(), vec![bundle]).await;
    let client = reqwest::Client::new();
    // Every accepted async invocation completes after the restart.
    for id in &accepted {
        let url = format!("{base}/invocations/{id}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = json(client.get(&url).send().await.unwrap()).await;
            assert_eq!(status, 200, "accepted invocation {id} is known after the restart: {body}");
            if body["state"] == "succeeded" {
                break;
            }
            assert_ne!(body["state"], "failed", "{body}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "invocation {id} did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every acknowledged write is there.
    let url = format!("{base}/spaces/default/functions/counter:counter.notes/invoke");
    let (status, notes) = json(client.post(&url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{notes}");
    let stored: HashSet<String> = notes["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = written.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        written.len()
    );
    let async_notes = notes["notes"].as_array().unwrap().iter().filter(|n| {
        n["author"].as_str().is_some_and(|a| {
            a[1..]
                .split('-')
                .next()
                .and_then(|w| w.parse::<usize>().ok())
                .is_some_and(|w| w % 2 == 1)
        })
    });
    assert!(
        async_notes.count() >= accepted.len(),
        "every accepted async invocation wrote its note"
    );
    eprintln!(
        "kill -9: {} acknowledged writes and {} accepted async invocations survived",
        written.len(),
        accepted.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("behave.wasm");
    std::fs::write(&path, bundle).unwrap();
    let args = vec![
        path.display().to_string(),
        "--default-access".into(),
        "public".into(),
        "--header-read-timeout-ms".into(),
        "1000".into(),
        "--body-read-timeout-ms".into(),
        "1000".into(),
    ];
    let (mut child, base) = spawn(dir.path(), args).await;
    let address = base.trim_start_matches("http://").to_string();

    // 100 slowloris clients dribbling header lines, and 100 that connect and say nothing.
    let mut slow = Vec::new();
    for n in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        if n % 2 == 0 {
            stream
                .write_all(b"POST /spaces/default/functions/behave/invoke HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    let dribble = tokio::spawn(async move {
        for _ in 0..6 {
            for (n, stream) in slow.iter_mut().enumerate() {
                if n % 2 == 0 {
                    let _ = stream.write_all(b"X-Slow: 1\r\n").await;
                }
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        slow
    });
    // Meanwhile everyone else is served as usual.
    let client = reqwest::Client::new();
    let url = format!("{base}/spaces/default/functions/behave/invoke");
    for _ in 0..20 {
        let response =
            tokio::time::timeout(Duration::from_secs(5), client.post(&url).json(&json!({})).send())
                .await
                .expect("a normal call is answered while slow clients hang on")
                .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut slow = dribble.await.unwrap();
    // Past the 1 s header timeout the server has closed every slow and idle connection.
    let mut closed = 0;
    let mut open = Vec::new();
    for (n, stream) in slow.iter_mut().enumerate() {
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            // A 408 answer before closing also counts as cut off.
            Ok(Ok(read))
                if String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 408") =>
            {
                closed += 1
            }
            other => open.push((n, format!("{other:?}"))),
        }
        if open.len() > 3 {
            break;
        }
    }
    assert_eq!(
        closed, 200,
        "every slow or idle connection was closed by the server: open {open:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Opens an HTTP/2 connection with prior knowledge (the client preface and an empty SETTINGS
/// frame) and waits for the server's SETTINGS frame.
async fn open_h2c(address: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .expect("the server's SETTINGS within 5 s")
        .expect("an HTTP/2 frame");
    assert_eq!(head[3], 0x4, "the server answers the preface with SETTINGS: {head:?}");
    let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    stream
}

/// The types of the HTTP/2 frames in `bytes` (which start at a frame).
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        types.push(bytes[3]);
        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        bytes = &bytes[(9 + length).min(bytes.len())..];
    }
    types
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection within {within:?}");
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_and_beyond_the_cap_new_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--max-connections",
        "4",
        "--idle-timeout-ms",
        "1000",
        "--header-read-timeout-ms",
        "1000",
        // Longer than the test: the idle timeout, not a missed ping, must close them.
        "--h2-keep-alive-ms",
        "600000",
    ];
    let (_server, base) = spawn(dir.path(), args.iter().map(|a| a.to_string()).collect()).await;
    let address = base.trim_start_matches("http://").to_string();

    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(open_h2c(&address).await);
    }
    // Past the cap: a clear 503 and the connection closed, at once.
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("too_many_connections"), "{answer}");
    }
    // The idle HTTP/2 connections are closed after the idle timeout (GOAWAY, then the
    // connection once the client does not let go)...
    for stream in &mut idle {
        let received = read_until_closed(stream, Duration::from_secs(15)).await;
        let types = frame_types(&received);
        assert!(types.contains(&0x7), "a GOAWAY frame before closing: {types:?}");
    }
    // ...and a new connection is served.
    healthz_answers_on_a_new_connection(&base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_degrades_and_recovers() {
    use std::io::{BufRead, BufReader};
    use tokio::io::AsyncWriteExt;
    // 128 descriptors and a connection cap set above that, so accepting hits EMFILE.
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_wasmfn"), "serve"])
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN, "--data-dir"])
        .arg(dir.path())
        .args(["--max-connections", "1000", "--idle-timeout-ms", "1000"])
        .args(["--header-read-timeout-ms", "1000", "--h2-keep-alive-ms", "600000"])
        .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
        .env("WASMFN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap());
    let mut child = command.spawn().expect("starting wasmfn serve under ulimit -n 128");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").expect("readable stdout");
    std::thread::spawn(move || for _ in lines {});
    let _server = ServeProcess::from(child);
    let base = first.strip_prefix("wasmfn: listening on ").expect("listening line").to_string();
    let address = base.trim_start_matches("http://").to_string();

    // 200 idle HTTP/2 clients: more than the server has descriptors for.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
        idle.push(stream);
    }
    // The ones it took are closed after the idle timeout, the ones waiting in the backlog are
    // then taken and closed in turn, and the server answers again: it never stops accepting.
    for stream in &mut idle {
        read_until_closed(stream, Duration::from_secs(60)).await;
    }
    healthz_answers_on_a_new_connection(&base).await;
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("accepting a connection failed"), "EMFILE was reached: {log}");
}

/// Waits (up to 10 s) until `/healthz` answers 200 on a connection of its own.
async fn healthz_answers_on_a_new_connection(base: &str) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(response) if response.status() == 200 => return,
            other => assert!(std::time::Instant::now() < deadline, "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
