//! Every failure gets a precise status and JSON body, and the server answers a normal call
//! right after it.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{fixture_bundle, json, runtime_config, start_server, TestServer};
use wasmfn_runtime::bundle::BundleError;
use wasmfn_runtime::invoker::Invocation;
use wasmfn_runtime::runtime::Runtime;

async fn still_serves(server: &TestServer) {
    let response = server
        .client
        .post(server.invoke_url("behave:behave.greet", ""))
        .json(&json!({"name": "after"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status, body), (200, json!("Hello, after!")), "server must keep serving");
}

async fn call(
    server: &TestServer,
    entry: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let url = server.invoke_url(&format!("behave:{entry}"), "");
    json(server.client.post(url).json(&body).send().await.unwrap()).await
}

/// The tests whose guests burn CPU or memory for up to the fixture's whole 1 s timeout take
/// this lock, so that they run one at a time: on a 2-core machine several at once starve each
/// other past that second, and a memory bomb could then end as a timeout instead of the error
/// these tests are about. (The stack overflow runs in `hoarder`, whose timeout is 30 s: a CI
/// run once saw it time out at 1 s in `behave`, on a machine stalled for that long.)
static HEAVY: std::sync::LazyLock<tokio::sync::Mutex<()>> =
    std::sync::LazyLock::new(Default::default);

#[tokio::test]
async fn infinite_loop_times_out_with_504_and_frees_the_worker() {
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["behave"], None).await;
    let started = Instant::now();
    let (status, body) = call(&server, "behave.spin", json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    assert!(body["error"]["message"].as_str().unwrap().contains("1000 ms"));
    // The fixture's timeout is 1 s; epoch interruption stops the guest promptly.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    still_serves(&server).await;
}

#[tokio::test]
async fn python_exception_is_500_with_type_and_message_but_no_traceback() {
    let server = start_server(&["behave"], None).await;
    let (status, body) = call(&server, "behave.boom", json!({})).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"error": {"code": "function_exception", "type": "ValueError", "message": "bad value from the function"}})
    );
    let (status, body) = call(&server, "behave.unserialisable", json!({})).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "TypeError");
    assert!(body["error"]["message"].as_str().unwrap().contains("not JSON-serialisable"));
    still_serves(&server).await;
}

#[tokio::test]
async fn the_traceback_and_output_are_kept_with_the_invocation() {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let runtime = Runtime::new(runtime_config()).unwrap();
    runtime.load(bytes, "default", None).await.unwrap();
    let invocation = |entry: &str| Invocation {
        space: "default".into(),
        function: "behave".into(),
        entry: Some(entry.into()),
        trigger: "test".into(),
        ..Invocation::default()
    };
    let outcome = runtime.invoker().invoke(invocation("behave.boom")).await;
    let traceback = outcome.traceback.expect("a traceback");
    assert!(traceback.contains("Traceback (most recent call last)"), "{traceback}");
    // Paths name the function folder's files, not where componentize-py mounted them.
    assert!(traceback.contains("File \"functions/behave.py\", line"), "{traceback}");
    assert!(!traceback.contains("\"/1/"), "{traceback}");
    assert!(traceback.contains("ValueError: bad value from the function"), "{traceback}");
    assert!(outcome.stderr.contains("ValueError"), "{}", outcome.stderr);

    let outcome = runtime.invoker().invoke(invocation("behave.chatty")).await;
    assert_eq!(outcome.status(), 200);
    assert_eq!(outcome.stdout, "printed to stdout\n");
    assert_eq!(outcome.stderr, "printed to stderr\n");
    assert_eq!(outcome.logs.len(), 1, "{:?}", outcome.logs);
    assert_eq!(outcome.logs[0].level, wasmfn_runtime::host_apis::log::Level::Warning);
    assert_eq!(outcome.logs[0].message, "logged a warning");
}

#[tokio::test]
async fn memory_bomb_hits_the_limit_and_the_server_serves_on() {
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["behave"], None).await;
    let (status, body) = call(&server, "behave.allocate", json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "memory_limit_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("128 MiB"));
    still_serves(&server).await;
}

#[tokio::test]
async fn runaway_recursion_and_stack_overflow_are_clear_errors() {
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["behave", "hoarder"], None).await;
    let (status, body) = call(&server, "behave.recurse", json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "function_exception");
    assert_eq!(body["error"]["type"], "RecursionError");
    let url = server.invoke_url("hoarder:hoarder.overflow_stack", "");
    let (status, body) = json(server.client.post(url).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "function_trapped", "message": "the function's instance trapped: stack overflow"}})
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let server = start_server(&["behave"], None).await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let response =
        server.client.post(server.invoke_url("behave", "")).body(big.clone()).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "body_too_large");
    // Without a Content-Length (chunked), the limit applies while reading.
    let stream = futures_stream(big);
    let response =
        server.client.post(server.invoke_url("behave", "")).body(stream).send().await.unwrap();
    assert_eq!(response.status(), 413);
    still_serves(&server).await;
}

fn futures_stream(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

#[tokio::test]
async fn bad_json_and_wrong_arguments_are_400_naming_the_problem() {
    let server = start_server(&["behave"], None).await;
    let response = server
        .client
        .post(server.invoke_url("behave", ""))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid JSON"));

    let (status, body) = call(&server, "behave.greet", json!({"punctuation": "?"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"code": "bad_arguments", "message": "missing required argument(s): 'name'"}})
    );
    let ingress = server.url("/spaces/default/functions/behave/ingress");
    let response = server
        .client
        .post(&ingress)
        .json(&json!({"name": "behave.greet", "arguments": [1]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_arguments");
    still_serves(&server).await;
}

#[tokio::test]
async fn unknown_space_function_entry_and_wrong_method() {
    let server = start_server(&["behave"], None).await;
    let get = |path: &str| server.client.get(server.url(path)).send();
    let (status, body) = json(get("/spaces/nope/functions/behave/invoke").await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("space_not_found")));
    let (status, body) = json(get("/spaces/default/functions/nope/invoke").await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("function_not_found")));
    let (status, body) =
        json(get("/spaces/default/functions/behave:nope.nope/invoke").await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("entry_not_found")));
    let response = server
        .client
        .request(reqwest::Method::OPTIONS, server.invoke_url("behave", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST, PUT, PATCH, DELETE");
    let (_, body) = json(response).await;
    assert_eq!(body["error"]["code"], "method_not_allowed");
    still_serves(&server).await;
}

#[tokio::test]
async fn huge_responses_are_capped() {
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["behave"], None).await;
    let limit = 1024 * 1024;
    let (status, body) = call(&server, "behave.huge", json!({"size": 2 * limit})).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "response_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("over the limit of {limit} bytes")), "{message}");
    // Exactly the limit is allowed, byte for byte.
    for size in [1000, limit] {
        let response = server
            .client
            .post(server.invoke_url("behave:behave.huge", ""))
            .json(&json!({ "size": size }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap().len(), size);
    }
    still_serves(&server).await;
}

/// A body is limited while it is produced, whatever its size: a 64 MiB string in a 128 MiB
/// instance (its JSON text would not fit beside it) is refused as too large before its text is
/// made, not as a crash or a memory error.
#[tokio::test]
async fn responses_larger_than_the_instance_are_refused_as_too_large() {
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["behave"], None).await;
    let (status, body) = call(&server, "behave.huge_text", json!({"mebibytes": 64})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (502, json!("response_too_large")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("reached {} bytes", (64 << 20) + 2)), "{message}");
    still_serves(&server).await;
}

/// The host keeps the limit itself: a function writing its body through the host interface
/// directly, and ignoring the refusal, still gets 502, and the refused piece is the last one
/// the host took (a piece is measured before it is copied).
#[tokio::test]
async fn the_host_refuses_body_pieces_past_the_limit() {
    let server = start_server(&["behave"], None).await;
    let piece = 400 * 1024;
    let (status, body) =
        call(&server, "behave.raw_body", json!({"pieces": 5, "piece_bytes": piece})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (502, json!("response_too_large")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    // Two pieces fit in 1 MiB; the third was refused, and every piece after it.
    assert!(message.contains(&format!("reached {} bytes", 3 * piece)), "{message}");

    let response = server
        .client
        .post(server.invoke_url("behave:behave.raw_body", ""))
        .json(&json!({"pieces": 2, "piece_bytes": piece}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-refused"], "0");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), 2 * piece);
    assert!(bytes.iter().all(|&b| b == b'y'));
    still_serves(&server).await;
}

#[tokio::test]
async fn malformed_bundles_are_refused_with_the_reason() {
    let runtime = Runtime::new(runtime_config()).unwrap();
    let error = runtime.load(b"hello".to_vec(), "default", None).await.unwrap_err();
    assert!(matches!(error, BundleError::NotWasm), "{error}");
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let error = runtime.load(core_module, "default", None).await.unwrap_err();
    assert!(matches!(error, BundleError::CoreModule), "{error}");
    assert!(error.to_string().contains("not a component"));

    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let truncated = bytes[..bytes.len() / 2].to_vec();
    let error = runtime.load(truncated, "default", None).await.unwrap_err();
    assert!(matches!(error, BundleError::Malformed(_)), "{error}");

    // A valid component of another world: it exports nothing of ours.
    let other_world = wasm_encoder::Component::new().finish();
    let error = runtime.load(other_world, "default", Some("other".into())).await.unwrap_err();
    assert!(matches!(error, BundleError::WrongWorld(_)), "{error}");
    assert!(error.to_string().contains("wasmfn:platform"), "{error}");
    assert!(runtime.registry().list().is_empty(), "nothing may be activated");
}

/// Status, content type and JSON body of a response that must be a JSON error.
async fn json_error(response: reqwest::Response) -> (u16, String, serde_json::Value) {
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    let (status, body) = json(response).await;
    (status, content_type, body)
}

/// A body of `size` bytes sent in chunks, never held whole by the client.
fn lazy_body(size: usize) -> reqwest::Body {
    const CHUNK: usize = 1024 * 1024;
    let chunks = (0..size.div_ceil(CHUNK))
        .map(move |i| Ok::<_, std::io::Error>(vec![b'a'; CHUNK.min(size - i * CHUNK)]));
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

#[tokio::test]
async fn requests_refused_before_a_handler_runs_get_json_errors_naming_the_problem() {
    let server = start_server(&["behave"], None).await;
    let session = server.sessions.issue("default", "default", "test");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            "a session document request over its 2 MiB",
            server
                .client
                .post(server.url("/session/documents/notes/find"))
                .bearer_auth(&session)
                .body(vec![b' '; 2 * 1024 * 1024 + 1]),
            413,
            "body_too_large",
            "limit of 2097152 bytes",
        ),
        (
            "a session listing with a negative max_keys",
            server.client.get(server.url("/session/objects?max_keys=-1")).bearer_auth(&session),
            400,
            "bad_request",
            "max_keys",
        ),
        (
            "a presigned link whose expires is not a number",
            server
                .client
                .get(server.url("/objects/default/a.txt?method=GET&expires=soon&signature=x")),
            400,
            "bad_request",
            "expires",
        ),
        (
            "a path part that is not UTF-8",
            server.client.post(server.url("/spaces/default/functions/%FF/invoke")),
            400,
            "bad_request",
            "UTF-8",
        ),
        (
            "a method a session route does not take",
            server.client.delete(server.url("/session/objects")).bearer_auth(&session),
            405,
            "method_not_allowed",
            "DELETE",
        ),
        (
            "a deploy over 256 MiB",
            server
                .admin(reqwest::Method::POST, "/admin/spaces/default/functions/big/versions")
                .body(lazy_body(256 * 1024 * 1024 + 1)),
            413,
            "body_too_large",
            "limit of 268435456 bytes",
        ),
    ];
    for (what, request, status, code, named) in cases {
        let (got, content_type, body) = json_error(request.send().await.unwrap()).await;
        assert_eq!((got, content_type.as_str()), (status, "application/json"), "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{what}: {message}");
    }
    still_serves(&server).await;
}

/// `{"$and": [{"$and": [... {"a": 1} ...]}]}`, `levels` deep.
fn nested_and(levels: usize) -> serde_json::Value {
    (0..levels).fold(json!({"a": 1}), |inner, _| json!({"$and": [inner]}))
}

#[tokio::test]
async fn filters_nest_exactly_the_documented_100_levels_and_deeper_ones_are_named_too_deep() {
    let server = start_server(&["behave"], None).await;
    let session = server.sessions.issue("default", "default", "test");
    let find = server.url("/session/documents/deep/find");
    let send = |body: String| server.client.post(&find).bearer_auth(&session).body(body).send();
    let response = send(json!({"filter": nested_and(100)}).to_string()).await.unwrap();
    assert_eq!(json(response).await, (200, json!({"documents": []})));

    let (status, body) =
        json(send(json!({"filter": nested_and(101)}).to_string()).await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{body}");
    assert_eq!(body["error"]["message"], "exceeded maximum query tree depth of 100");

    let far_too_deep = format!("{{\"filter\": {}{}}}", "[".repeat(300), "]".repeat(300));
    let (status, body) = json(send(far_too_deep).await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("nests deeper than 208 levels"), "{message}");
}

#[tokio::test]
async fn a_function_s_filter_nests_100_levels_and_not_101() {
    let server = start_server(&["hoarder"], None).await;
    let url = server.invoke_url("hoarder:hoarder.find_nested", "");
    let find = |levels: usize| {
        let request = server.client.post(&url).json(&json!({"levels": levels}));
        async move { json(request.send().await.unwrap()).await }
    };
    assert_eq!(find(100).await, (200, json!({"found": 0})));
    let (status, body) = find(101).await;
    assert_eq!(status, 200, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("exceeded maximum query tree depth of 100"), "{body}");
}
