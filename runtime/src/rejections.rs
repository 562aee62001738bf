//! Requests refused before a handler runs, answered as JSON: axum's extractors (`Query`, `Path`,
//! `Bytes` over its body limit, ...) answer their rejections as plain text, and every endpoint
//! promises `{"error": {"code", "message"}}`. One middleware over the whole router rewrites
//! those answers, so no handler has to remember to; it must not touch a function's own answer,
//! which may well be a plain-text error (see [`FunctionAnswer`]).

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Marks a response a function produced: its status and body are the function's, never
/// rewritten.
#[derive(Clone, Copy, Debug)]
pub struct FunctionAnswer;

/// The body limit an endpoint declared, for the message of its 413.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Tags a route's responses with its body limit `LIMIT` (set beside
/// `DefaultBodyLimit::max(LIMIT)`), so that a refused body is answered with the number.
pub async fn declare_body_limit<const LIMIT: usize>(mut response: Response) -> Response {
    response.extensions_mut().insert(BodyLimit(LIMIT));
    response
}

/// A rejection's text is a line or two; anything longer is not one of axum's.
const MAX_REJECTION_TEXT: usize = 16 * 1024;

/// Rewrites plain-text and bodiless error answers (axum's extractor rejections) as the JSON
/// error body.
pub async fn json_rejections(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    // axum's rejections are plain text; its 405 for a method a route lacks has no body at all.
    let plain_text = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| v.starts_with("text/plain")),
    };
    if !(status.is_client_error() || status.is_server_error())
        || !plain_text
        || response.extensions().get::<FunctionAnswer>().is_some()
    {
        return response;
    }
    let limit = response.extensions().get::<BodyLimit>().copied();
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let (code, mut message) = describe(status, text, limit);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
        message =
            format!("method {method} is not allowed here; allowed: {}", allow.unwrap_or("none"));
    }
    let mut rewritten =
        (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response();
    // Keep what the rejection said besides its body (`Allow`, `WWW-Authenticate`, ...).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name, value.clone());
        }
    }
    rewritten
}

/// The code and message of a rejection with `status` and `text`.
fn describe(status: StatusCode, text: String, limit: Option<BodyLimit>) -> (&'static str, String) {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            let message = match limit {
                Some(BodyLimit(limit)) => {
                    format!("the request body is larger than the limit of {limit} bytes")
                }
                None => "the request body is larger than this endpoint accepts".to_string(),
            };
            return ("body_too_large", message);
        }
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        status if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("the request was refused").to_lowercase()
    } else {
        text
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_body_names_the_declared_limit() {
        let (code, message) = describe(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Failed to buffer the request body: length limit exceeded".into(),
            Some(BodyLimit(2048)),
        );
        assert_eq!(code, "body_too_large");
        assert_eq!(message, "the request body is larger than the limit of 2048 bytes");
    }

    #[test]
    fn a_query_rejection_keeps_the_text_that_names_the_parameter() {
        let text = "Failed to deserialize query string: max_keys: invalid digit found in string";
        let (code, message) = describe(StatusCode::BAD_REQUEST, text.into(), None);
        assert_eq!((code, message.as_str()), ("bad_request", text));
    }
}
