//! What a function session authorises: the event's space's documents (in the event's database)
//! and objects, over HTTP. `Authorization: Bearer <_function_session>` (or
//! `X-Function-Session: <token>`); an expired or tampered token gets 401.
//!
//! - `POST /session/documents/{collection}/{find|count|insert|update|replace|delete}`
//! - `GET /session/objects?prefix=&start_after=&max_keys=`
//! - `GET | PUT | DELETE /session/objects/{key}`

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use wasmfn_host_apis::docstore::{CallDeadline, CollectionRef, DocError, UpdateOptions};

use super::objects::{error, guard_download, object_error};
use crate::capabilities::Capabilities;
use crate::events::{SessionClaims, SessionError};
use crate::rejections::declare_body_limit;
use crate::server::ServerContext;

/// Largest body of a document request: queries and documents, not bulk data.
pub const MAX_DOCUMENT_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn routes() -> Router<ServerContext> {
    Router::new()
        .route(
            "/session/documents/{collection}/{operation}",
            post(documents)
                .layer(DefaultBodyLimit::max(MAX_DOCUMENT_BODY_BYTES))
                .layer(map_response(declare_body_limit::<MAX_DOCUMENT_BODY_BYTES>)),
        )
        .route("/session/objects", get(list))
        .route("/session/objects/{*key}", get(get_object).put(put_object).delete(delete_object))
}

/// A request carrying a valid function session: its claims and the capabilities.
pub struct Session {
    claims: SessionClaims,
    capabilities: std::sync::Arc<Capabilities>,
}

impl axum::extract::FromRequestParts<ServerContext> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ServerContext,
    ) -> Result<Self, Response> {
        authorise(state, &parts.headers)
            .map(|(claims, capabilities)| Session { claims, capabilities })
            .map_err(|response| *response)
    }
}

/// The session's claims and the capabilities, or the 401/404 to answer.
fn authorise(
    state: &ServerContext,
    headers: &HeaderMap,
) -> Result<(SessionClaims, std::sync::Arc<Capabilities>), Box<Response>> {
    let Some(capabilities) = state.invoker.capabilities().cloned() else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server has no storage",
        )));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::access::bearer_token)
        .map(str::to_string)
        .or_else(|| {
            headers.get("x-function-session").and_then(|v| v.to_str().ok()).map(str::to_string)
        });
    let Some(token) = token else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing_session",
            "send the webhook's _function_session as `Authorization: Bearer <token>`",
        )));
    };
    match state.sessions.verify(&token) {
        Ok(claims) => Ok((claims, capabilities)),
        Err(failure) => {
            let code = if failure == SessionError::Expired {
                "session_expired"
            } else {
                "invalid_session"
            };
            Err(Box::new(error(StatusCode::UNAUTHORIZED, code, failure.to_string())))
        }
    }
}

fn doc_error(failure: DocError) -> Response {
    let (status, code) = match &failure {
        DocError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
        DocError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "document_too_large"),
        DocError::DuplicateKey(_) => (StatusCode::CONFLICT, "duplicate_key"),
        DocError::LimitExceeded(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
        DocError::QuotaExceeded(_) => (StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded"),
        DocError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    error(status, code, failure.to_string())
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn flag(body: &Value, name: &str) -> bool {
    body.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn number(body: &Value, name: &str) -> u64 {
    body.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// How long one session document request may take, counted from when its body has arrived (the
/// document store's own per-operation limit applies within it).
pub const SESSION_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn documents(
    Session { claims, capabilities }: Session,
    Path((collection, operation)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    if !crate::manifest::is_collection_name(&collection) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_collection",
            "collection names are 1-64 letters, digits, '-', '_' or '.'",
        );
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match wasmfn_host_apis::docstore::parse_json(&body) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "the body must be a JSON object",
                )
            }
            Err(failure) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("the body {failure}"),
                )
            }
        }
    };
    let at = CollectionRef { space: claims.space, database: claims.database, collection };
    // No function and no invocation deadline here: the request gets its own, counted from its
    // arrival, so that it is bound as a function's call would be.
    let deadline = CallDeadline {
        at: started + SESSION_CALL_TIMEOUT,
        caller: "the session request (5 s from its arrival)",
    };
    let store = &capabilities.documents.within(deadline);
    let empty = json!({});
    let filter = field(&body, "filter").unwrap_or(&empty);
    let result = match operation.as_str() {
        "find" => store
            .find(
                &at,
                filter,
                field(&body, "projection"),
                field(&body, "sort"),
                number(&body, "skip"),
                number(&body, "limit"),
            )
            .await
            .map(|docs| json!({"documents": docs})),
        "count" => store.count(&at, filter).await.map(|count| json!({"count": count})),
        "insert" => {
            let Some(Value::Array(documents)) = field(&body, "documents") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "insert needs \"documents\": [...]",
                );
            };
            store.insert(&at, documents.clone()).await.map(|ids| json!({"inserted_ids": ids}))
        }
        "update" | "replace" => {
            let change_field = if operation == "update" { "update" } else { "replacement" };
            let Some(change) = field(&body, change_field) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("{operation} needs \"{change_field}\""),
                );
            };
            let upsert = flag(&body, "upsert");
            let result = if operation == "update" {
                let options = UpdateOptions { many: flag(&body, "many"), upsert };
                store.update(&at, filter, change, options).await
            } else {
                store.replace(&at, filter, change, upsert).await
            };
            result.map(|r| json!({"matched_count": r.matched, "modified_count": r.modified, "upserted_id": r.upserted_id}))
        }
        "delete" => store
            .delete(&at, filter, flag(&body, "many"))
            .await
            .map(|n| json!({"deleted_count": n})),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                "no document operation {other:?} (find, count, insert, update, replace, delete)"
            ),
            )
        }
    };
    match result {
        Ok(value) => Json(value).into_response(),
        Err(failure) => doc_error(failure),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    start_after: Option<String>,
    max_keys: Option<usize>,
}

fn info_json(info: &wasmfn_host_apis::objects::ObjectInfo) -> Value {
    json!({
        "key": info.key, "size": info.size, "content_type": info.content_type,
        "metadata": info.metadata, "last_modified": info.last_modified, "etag": info.etag,
    })
}

async fn list(
    Session { claims, capabilities }: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let max = query.max_keys.unwrap_or(1000);
    match capabilities
        .objects
        .list(&claims.space, &query.prefix, query.start_after.as_deref(), max)
        .await
    {
        Ok(listing) => Json(json!({
            "objects": listing.objects.iter().map(info_json).collect::<Vec<_>>(),
            "next_start_after": listing.next_start_after,
        }))
        .into_response(),
        Err(failure) => object_error(failure),
    }
}

async fn get_object(
    Session { claims, capabilities }: Session,
    Path(key): Path<String>,
) -> Response {
    match capabilities.objects.get(&claims.space, &key).await {
        Ok((info, bytes)) => {
            let content_type = info
                .content_type
                .parse()
                .unwrap_or(header::HeaderValue::from_static("application/octet-stream"));
            let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
            guard_download(&info.content_type, response.headers_mut());
            response
        }
        Err(failure) => object_error(failure),
    }
}

async fn put_object(
    Session { claims, capabilities }: Session,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Body,
) -> Response {
    let limit = capabilities.objects.limits().max_object_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "object_too_large",
            format!("the upload is over the limit of {limit} bytes"),
        );
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    match capabilities.objects.put(&claims.space, &key, bytes, content_type, BTreeMap::new()).await
    {
        Ok(info) => (StatusCode::CREATED, Json(info_json(&info))).into_response(),
        Err(failure) => object_error(failure),
    }
}

async fn delete_object(
    Session { claims, capabilities }: Session,
    Path(key): Path<String>,
) -> Response {
    match capabilities.objects.delete(&claims.space, &key).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => {
            error(StatusCode::NOT_FOUND, "object_not_found", format!("no object with key {key:?}"))
        }
        Err(failure) => object_error(failure),
    }
}
