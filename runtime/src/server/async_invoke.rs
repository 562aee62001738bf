//! The asynchronous HTTP trigger: `POST /spaces/<space>/functions/<function>[:<entry>]/
//! async-invoke[/a/b/c]` takes the same query, headers and body as `…/invoke`, answers 202 with
//! an invocation id once the job is on disk, and runs it in the background ([`jobs`]). The
//! result is POSTed to the `X-Callback-Url`, if given, and kept for `GET /invocations/<id>`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::invoke::{arguments, custom_path, header_pairs, parse_query, receive, split_entry};
use crate::error::InvokeError;
use crate::error_response::ErrorResponse;
use crate::server::ServerContext;
use crate::triggers::async_invoke::jobs::{body_for_display, Job, JobError, JobRequest, JobState};

/// Request header naming where the result is POSTed.
pub const CALLBACK_HEADER: &str = "x-callback-url";

/// `…/async-invoke`.
pub async fn async_root(
    State(state): State<ServerContext>,
    Path((space, function)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    accept(state, space, function, String::new(), request).await
}

/// `…/async-invoke/<custom path>`.
pub async fn async_with_path(
    State(state): State<ServerContext>,
    Path((space, function, rest)): Path<(String, String, String)>,
    request: axum::extract::Request,
) -> Response {
    accept(state, space, function, rest, request).await
}

async fn accept(
    state: ServerContext,
    space: String,
    function: String,
    rest: String,
    request: axum::extract::Request,
) -> Response {
    if request.method() != Method::POST {
        let method = request.method().to_string();
        return InvokeError::MethodNotAllowed { method, allow: "POST" }.into_response();
    }
    let Some(path) = custom_path(&rest) else {
        return InvokeError::NotFound(
            "a custom path may have at most 3 levels after /async-invoke".into(),
        )
        .into_response();
    };
    let callback_url = match request.headers().get(CALLBACK_HEADER) {
        None => None,
        Some(value) => {
            let parsed = value
                .to_str()
                .map_err(|_| "is not text".to_string())
                .and_then(crate::delivery::parse_callback_url);
            match parsed {
                Ok(url) => Some(url),
                Err(why) => {
                    return InvokeError::BadRequest(format!("X-Callback-Url {why}")).into_response()
                }
            }
        }
    };
    if let Some(url) = &callback_url {
        // Refused now, before anything is accepted, when the address is internal; a name
        // that does not resolve yet is accepted (the delivery resolves and checks again).
        if let Err(why) = state.admin.deliverer.destinations().refuse_internal(url).await {
            let message = format!("X-Callback-Url {why}");
            let body = json!({"error": {"code": "callback_refused", "message": message}});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    }
    let callback_url = callback_url.map(|url| url.to_string());
    let (function, entry) = split_entry(&function);
    let (version, parts, body, caller) =
        match receive(&state, &space, &function, request, true).await {
            Ok(received) => received,
            Err(error) => return error.into_response(),
        };
    if let Some(entry) = &entry {
        if let Err(error) = version.resolve_entry(Some(entry)) {
            return error.into_response();
        }
    }
    let query = parse_query(parts.uri.query());
    let arguments = match arguments(&query, &parts.headers, &body) {
        Ok(arguments) => arguments,
        Err(error) => return error.into_response(),
    };
    let mut headers = header_pairs(&parts.headers);
    headers.retain(|(name, _)| name != CALLBACK_HEADER);
    let job = Job {
        id: uuid::Uuid::new_v4(),
        space,
        function,
        entry,
        state: JobState::Queued,
        accepted_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        started_at: None,
        finished_at: None,
        attempts: 0,
        callback_url,
        callback: None,
        callback_error: None,
        request: JobRequest {
            method: "POST".into(),
            path,
            query,
            headers,
            body: body.to_vec(),
            arguments: arguments.to_map(),
        },
        result: None,
        caller: caller.unwrap_or_default(),
        trigger: None,
        stored_bytes: 0,
    };
    match state.async_jobs.accept(job).await {
        Ok(job) => {
            let location = format!("/invocations/{}", job.id);
            let body = json!({"id": job.id, "state": job.state, "status_url": location});
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, HeaderValue::from_str(&location).expect("ascii"));
            headers.insert(
                "x-invocation-id",
                HeaderValue::from_str(&job.id.to_string()).expect("ascii"),
            );
            response
        }
        Err(JobError::QueueFull { limit }) => {
            let message = format!("the async queue is full ({limit} jobs waiting); retry later");
            let body = json!({"error": {"code": "queue_full", "message": message}});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(error @ JobError::SpaceQuota { .. }) => {
            let body = json!({"error": {"code": "quota_exceeded", "message": error.to_string()}});
            (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
        }
        Err(JobError::Store(detail)) => {
            tracing::error!(%detail, "could not store an async job");
            let body = json!({"error": {"code": "store_failed",
                "message": "the job could not be stored; it was not accepted"}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /invocations/<id>`: where an async invocation stands, and its result once finished.
/// The id is the capability: it is random and only its caller was told it.
pub async fn status(State(state): State<ServerContext>, Path(id): Path<String>) -> Response {
    let not_found = || InvokeError::NotFound(format!("no async invocation '{id}'")).into_response();
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else { return not_found() };
    let job = match state.async_jobs.fetch(uuid).await {
        Ok(Some(job)) => job,
        Ok(None) => return not_found(),
        Err(error) => {
            tracing::error!(%error, "reading an async job failed");
            let body =
                json!({"error": {"code": "store_failed", "message": "the job store failed"}});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
        }
    };
    let result = job.result.as_ref().map(|result| {
        json!({
            "status": result.status,
            "headers": result.headers,
            "body": body_for_display(&result.body),
            "duration_ms": result.duration_ms,
        })
    });
    Json(json!({
        "id": job.id,
        "space": job.space,
        "function": job.function,
        "entry": job.entry,
        "state": job.state,
        "status_code": job.result.as_ref().map(|r| r.status),
        "accepted_at": job.accepted_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
        "callback": job.callback,
        "callback_error": job.callback_error,
        "result": result,
    }))
    .into_response()
}
