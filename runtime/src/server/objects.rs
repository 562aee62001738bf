//! Presigned object URLs, served by the wasmfn server: `GET` (download) or `PUT` (upload)
//! `/objects/<space>/<key>?method=..&expires=..&signature=..`, as made by a function's
//! `context.object_storage.presigned_url(...)`. The signature is the only credential: it names
//! one method, one space, one key and an expiry.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use wasmfn_host_apis::objects::{ObjectError, PresignError};

use crate::server::ServerContext;

#[derive(Debug, Deserialize)]
pub struct Signed {
    method: Option<String>,
    expires: Option<u64>,
    signature: Option<String>,
}

/// A JSON error answer: `{"error": {"code", "message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

/// The answer to an object storage failure (presigned links and function sessions alike).
pub(crate) fn object_error(failure: ObjectError) -> Response {
    match failure {
        ObjectError::InvalidKey(m) => error(StatusCode::BAD_REQUEST, "invalid_key", m),
        ObjectError::NotFound(m) => error(StatusCode::NOT_FOUND, "object_not_found", m),
        ObjectError::TooLarge(m) => error(StatusCode::PAYLOAD_TOO_LARGE, "object_too_large", m),
        ObjectError::QuotaExceeded(m) => {
            error(StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded", m)
        }
        ObjectError::Unavailable(m) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", m)
        }
    }
}

/// Content types a browser shows without running anything: served inline. Everything else
/// (HTML, SVG, JavaScript, PDF, ...) is a download.
const INLINE_CONTENT_TYPES: &[&str] =
    &["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/json"];

/// Keeps a stored object from acting as a page of the server's own origin: whoever uploads
/// chooses its content type, so an uploaded `text/html` would otherwise run script there. The
/// browser must not guess another type (`nosniff`), and anything but a few passive types is
/// downloaded instead of shown.
pub(crate) fn guard_download(content_type: &str, headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !INLINE_CONTENT_TYPES.contains(&essence.as_str()) {
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `GET` or `PUT /objects/{space}/{*key}` with a presigned query.
pub async fn presigned(
    State(state): State<ServerContext>,
    method: Method,
    Path((space, key)): Path<(String, String)>,
    Query(signed): Query<Signed>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(capabilities) = state.invoker.capabilities().cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", "this server has no object storage");
    };
    if method != Method::GET && method != Method::PUT {
        let mut response =
            error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET or PUT");
        response.headers_mut().insert(header::ALLOW, "GET, PUT".parse().expect("valid header"));
        return response;
    }
    let (Some(signed_method), Some(expires), Some(signature)) =
        (signed.method, signed.expires, signed.signature)
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the link needs method, expires and signature",
        );
    };
    if !signed_method.eq_ignore_ascii_case(method.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "wrong_method",
            format!("this link is for {signed_method}"),
        );
    }
    match capabilities.presigner.verify(method.as_str(), &space, &key, expires, &signature, now()) {
        Ok(()) => {}
        Err(PresignError::Expired) => {
            return error(StatusCode::UNAUTHORIZED, "link_expired", "the link has expired")
        }
        Err(other) => {
            return error(StatusCode::UNAUTHORIZED, "invalid_signature", other.to_string())
        }
    }
    let objects = &capabilities.objects;
    if method == Method::GET {
        return match objects.get(&space, &key).await {
            Ok((info, bytes)) => {
                let mut response = Response::new(Body::from(bytes));
                let headers = response.headers_mut();
                if let Ok(value) = info.content_type.parse() {
                    headers.insert(header::CONTENT_TYPE, value);
                }
                if let Some(Ok(value)) = info.etag.map(|e| e.parse()) {
                    headers.insert(header::ETAG, value);
                }
                guard_download(&info.content_type, headers);
                response
            }
            Err(failure) => object_error(failure),
        };
    }
    let limit = objects.limits().max_object_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "object_too_large",
                format!("the upload is over the limit of {limit} bytes (or was cut short)"),
            )
        }
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    match objects.put(&space, &key, bytes, content_type, BTreeMap::new()).await {
        Ok(info) => (
            StatusCode::CREATED,
            axum::Json(
                json!({"key": info.key, "size": info.size, "content_type": info.content_type}),
            ),
        )
            .into_response(),
        Err(failure) => object_error(failure),
    }
}
