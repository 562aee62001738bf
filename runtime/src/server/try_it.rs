//! `POST /admin/spaces/<space>/functions/<name>/try`: invokes a function for an operator (the
//! console's Try it panel, like Lambda's test events) and answers everything about the call at
//! once: what the caller would have got (status, headers, body) and the invocation's log
//! record (duration, stdout/stderr, log lines, traceback). The call is a real invocation with
//! a fresh instance, logged with trigger `console`; the function's access policy is not
//! applied (the operator is signed in), but its body limit is.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::access::console::Scope;
use crate::admin::{AdminContext, AdminError};
use crate::arguments::Arguments;
use crate::invocation_log::LogRecord;
use crate::invoker::{Invocation, RequestData};

/// The most of a response body the answer carries; the rest is cut (and said so).
pub const MAX_SHOWN_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<AdminContext> {
    Router::new().route("/admin/spaces/{space}/functions/{name}/try", post(try_function))
}

/// What to call: all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TryRequest {
    /// `module.function`; default: the function's default entry.
    entry: Option<String>,
    /// Keyword arguments (a JSON object).
    #[serde(default)]
    arguments: Map<String, Value>,
    /// The HTTP method the function sees (default POST).
    method: Option<String>,
    /// The custom path after `/invoke` the function sees (default `/`).
    path: Option<String>,
}

fn bad(message: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

async fn try_function(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    scope: Option<Extension<Scope>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let version = state
        .invoker
        .registry()
        .get(&space, &name)
        .map_err(|e| AdminError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))?;
    if body.len() > version.limits.max_body_bytes {
        return Err(AdminError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the arguments exceed the function's body limit of {} bytes",
                version.limits.max_body_bytes
            ),
        ));
    }
    let request: TryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TryRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "expected {{\"entry\": \"module.function\", \"arguments\": {{...}}, \"method\": \
                 \"POST\", \"path\": \"/a/b\"}} (all optional): {e}"
            ))
        })?
    };
    let method = request.method.unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(bad(format!(
            "method '{method}' is not one of {}",
            super::invoke::INVOKE_METHODS
        )));
    }
    let path = super::invoke::custom_path(request.path.as_deref().unwrap_or(""))
        .ok_or_else(|| bad("a custom path may have at most three levels"))?;
    let arguments_text = serde_json::to_vec(&request.arguments).expect("a map serialises");
    let caller = match scope.map(|s| s.0) {
        Some(Scope::Space { caller, .. }) => caller.to_caller(),
        _ => Default::default(),
    };
    let invocation = Invocation {
        space,
        function: name,
        entry: request.entry.filter(|e| !e.is_empty()),
        arguments: Arguments::from(Value::Object(request.arguments)),
        request: RequestData {
            method,
            path,
            query: Vec::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: arguments_text.into(),
        },
        trigger: "console".into(),
        caller,
        ..Invocation::default()
    };
    let outcome = state.invoker.invoke_version(version, invocation).await;
    let record = LogRecord::of(&outcome, chrono::Utc::now());
    let response = super::invoke::outcome_response(outcome);
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // The body is already in memory (a function's answer is bounded by its limits).
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|_| {
        AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "reading the answer failed")
    })?;
    let cut = bytes.len() > MAX_SHOWN_BODY;
    let shown = &bytes[..bytes.len().min(MAX_SHOWN_BODY)];
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        // Cut in the middle of a character: show the text before it.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&shown[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let (body, encoding) = match text {
        Some(text) => (text.to_string(), "utf-8"),
        None => (base64::engine::general_purpose::STANDARD.encode(shown), "base64"),
    };
    Ok(Json(json!({
        "invocation_id": record.id,
        "status": status,
        "headers": headers,
        "body": body,
        "body_encoding": encoding,
        "body_bytes": bytes.len(),
        "body_cut": cut,
        "record": record,
    })))
}
