//! The client against a local HTTP server standing in for the IXON API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::*;

#[derive(Default)]
struct Seen {
    discoveries: AtomicUsize,
    requests: StdMutex<Vec<(String, String, HeaderMap)>>,
}

async fn start(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// A fake IXON API: discovery at `/api/`, endpoints that echo what they received.
async fn fake_api(seen: Arc<Seen>, elsewhere: &str) -> String {
    let elsewhere = elsewhere.to_string();
    let discovery = move |State(seen): State<Arc<Seen>>| {
        let elsewhere = elsewhere.clone();
        async move {
            seen.discoveries.fetch_add(1, Ordering::SeqCst);
            Json(json!({"type": "Discovery", "data": [
                {"rel": "AgentList", "href": "/api/agents"},
                {"rel": "Agent", "href": "/api/agents/{publicId}"},
                {"rel": "Big", "href": "/api/big"},
                {"rel": "Moved", "href": "/api/moved"},
                {"rel": "Text", "href": "/api/text"},
                {"rel": "Outside", "href": format!("{elsewhere}/steal")},
            ]}))
        }
    };
    let record = |State(seen): State<Arc<Seen>>, request: Request| async move {
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let headers = request.headers().clone();
        let method = request.method().to_string();
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
        seen.requests.lock().unwrap().push((format!("{method} {path}"), query.clone(), headers));
        Json(
            json!({"type": "AgentList", "path": path, "query": query, "body": String::from_utf8_lossy(&body)}),
        )
    };
    let router = Router::new()
        .route("/api/", get(discovery))
        .route("/api/agents", any(record))
        .route("/api/agents/{id}", any(record))
        .route("/api/big", get(|| async { "x".repeat(4096) }))
        .route("/api/text", get(|| async { "plain text" }))
        .with_state(seen);
    start(router).await
}

fn allow_all() -> Allowlist {
    Allowlist::parse(&["*"]).unwrap()
}

fn credentials() -> Credentials {
    Credentials {
        authorization: Some("Bearer caller-token".into()),
        company: Some("company-1".into()),
        application: Some("app-1".into()),
    }
}

fn call(method: &str, name: &str) -> ApiCall {
    ApiCall { method: method.into(), url_name: name.into(), ..ApiCall::default() }
}

fn small() -> ApiOptions {
    ApiOptions {
        max_response_bytes: 1024,
        timeout: Duration::from_secs(5),
        ..ApiOptions::default()
    }
}

#[tokio::test]
async fn calls_carry_credentials_arguments_and_query_and_discovery_is_cached() {
    let seen = Arc::new(Seen::default());
    let base = fake_api(seen.clone(), "http://127.0.0.1:1").await;
    let api = IxonApi::new(&format!("{base}/api/"), small()).unwrap();
    let mut agent = call("patch", "Agent");
    agent.url_args = vec![("publicId".into(), "a b/../c".into())];
    agent.query = vec![("fields".into(), "name".into()), ("fields".into(), "custom".into())];
    agent.headers = vec![("X-Extra".into(), "1".into())];
    agent.body = Some(Bytes::from_static(b"{\"name\": \"n\"}"));
    let response = api.call(&allow_all(), &credentials(), agent).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.content_type.unwrap().starts_with("application/json"));
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["path"], "/api/agents/a%20b%2F..%2Fc", "argument cannot change the path");
    assert_eq!(body["query"], "fields=name&fields=custom");
    assert_eq!(body["body"], "{\"name\": \"n\"}");
    let requests = seen.requests.lock().unwrap().clone();
    let (line, _, headers) = &requests[0];
    assert_eq!(line, "PATCH /api/agents/a%20b%2F..%2Fc");
    assert_eq!(headers["api-version"], "2");
    assert_eq!(headers["authorization"], "Bearer caller-token");
    assert_eq!(headers["api-company"], "company-1");
    assert_eq!(headers["api-application"], "app-1");
    assert_eq!(headers["x-extra"], "1");
    api.call(&allow_all(), &credentials(), call("GET", "AgentList")).await.unwrap();
    assert_eq!(seen.discoveries.load(Ordering::SeqCst), 1, "discovery cached across calls");

    let expiring = IxonApi::new(
        &format!("{base}/api/"),
        ApiOptions { discovery_ttl: Duration::ZERO, ..small() },
    )
    .unwrap();
    expiring.call(&allow_all(), &credentials(), call("GET", "AgentList")).await.unwrap();
    expiring.call(&allow_all(), &credentials(), call("GET", "AgentList")).await.unwrap();
    assert_eq!(seen.discoveries.load(Ordering::SeqCst), 3, "discovery again after the TTL");
}

#[tokio::test]
async fn endpoints_outside_the_allowlist_are_refused_before_any_traffic() {
    let seen = Arc::new(Seen::default());
    let base = fake_api(seen.clone(), "http://127.0.0.1:1").await;
    let api = IxonApi::new(&format!("{base}/api/"), small()).unwrap();
    let allow = Allowlist::parse(&["GET AgentList"]).unwrap();
    for (method, name) in [("POST", "AgentList"), ("GET", "Agent")] {
        let error = api.call(&allow, &credentials(), call(method, name)).await.unwrap_err();
        assert!(matches!(&error, ApiError::Denied(m) if m.contains(name)), "{error}");
    }
    let error = api.call(&Allowlist::default(), &credentials(), call("GET", "AgentList")).await;
    assert!(matches!(error, Err(ApiError::Denied(_))));
    assert_eq!(seen.discoveries.load(Ordering::SeqCst), 0, "not even discovery");
    assert!(seen.requests.lock().unwrap().is_empty());
    api.call(&allow, &credentials(), call("GET", "AgentList")).await.unwrap();
}

#[tokio::test]
async fn unknown_names_missing_arguments_big_answers_and_foreign_hosts_are_clear_errors() {
    let other = Arc::new(Seen::default());
    let elsewhere = fake_api(other.clone(), "http://127.0.0.1:1").await;
    let seen = Arc::new(Seen::default());
    let base = fake_api(seen.clone(), &elsewhere).await;
    let api = IxonApi::new(&format!("{base}/api/"), small()).unwrap();
    let (all, creds) = (allow_all(), credentials());
    let run = |c: ApiCall| api.call(&all, &creds, c);
    assert!(
        matches!(run(call("GET", "Nope")).await, Err(ApiError::UnknownEndpoint(m)) if m.contains("Nope"))
    );
    assert!(
        matches!(run(call("GET", "Agent")).await, Err(ApiError::UnknownEndpoint(m)) if m.contains("publicId"))
    );
    assert!(matches!(run(call("GET", "Big")).await, Err(ApiError::TooLarge(_))));
    assert!(matches!(run(call("GET", "Outside")).await, Err(ApiError::Denied(_))));
    let text = run(call("GET", "Text")).await.unwrap();
    assert_eq!(&text.body[..], b"plain text");
    assert!(other.requests.lock().unwrap().is_empty(), "the token never left for another host");
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let other = Arc::new(Seen::default());
    let elsewhere = fake_api(other.clone(), "http://127.0.0.1:1").await;
    let target = format!("{elsewhere}/api/agents");
    let discovery = || async {
        Json(json!({"type": "Discovery", "data": [{"rel": "Moved", "href": "/api/moved"}]}))
    };
    let moved = move || {
        let target = target.clone();
        async move { Redirect::temporary(&target).into_response() }
    };
    let base =
        start(Router::new().route("/api/", get(discovery)).route("/api/moved", get(moved))).await;
    let api = IxonApi::new(&format!("{base}/api/"), small()).unwrap();
    let response: ApiResponse =
        api.call(&allow_all(), &credentials(), call("GET", "Moved")).await.unwrap();
    assert_eq!(response.status, 307);
    assert!(other.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable_and_the_error_shows_no_token() {
    let api = IxonApi::new("http://127.0.0.1:1/api/", small()).unwrap();
    let error = api.call(&allow_all(), &credentials(), call("GET", "AgentList")).await.unwrap_err();
    assert!(matches!(error, ApiError::Unavailable(_)));
    assert!(!error.to_string().contains("caller-token"));
    assert!(!format!("{:?}", credentials()).contains("caller-token"));
    let _unused: Option<Response> = None;
}
