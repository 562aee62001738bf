//! What can go wrong with an invocation, as one typed error mapped to an HTTP status and a small
//! JSON body. Messages name the input that failed, never host paths or backtraces.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

/// A failed invocation, as the caller sees it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("space '{0}' does not exist")]
    SpaceNotFound(String),
    #[error("function '{function}' does not exist in space '{space}'")]
    FunctionNotFound { space: String, function: String },
    #[error("{0}")]
    EntryNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadArguments(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The client did not send its body in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{type_name}: {message}")]
    FunctionException { type_name: String, message: String },
    #[error("the function did not finish within its timeout of {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("the function exceeded its memory limit of {limit_mb} MiB")]
    MemoryLimit { limit_mb: u64 },
    #[error("the function's instance trapped: {0}")]
    Trap(String),
    /// The response body would pass `max_response_bytes`: found while the function produced
    /// it, so `size` is what it had reached (at least), not necessarily its whole size.
    #[error(
        "the function's response body is over the limit of {limit} bytes (it reached {size} bytes before it was refused)"
    )]
    ResponseTooLarge { size: u64, limit: usize },
    #[error("too many invocations of '{function}' are waiting; retry later")]
    Overloaded { function: String },
    #[error("the server is running as many instances as it may (--max-instances); retry later")]
    NoInstanceSlot,
    /// The function's response cannot be sent as HTTP (a header name or value is invalid).
    #[error("the function returned an invalid response: {0}")]
    InvalidResponse(String),
    /// A part of the server cannot take the request now.
    #[error("{0}")]
    Unavailable(String),
    /// The request came from a chain of more callbacks than allowed.
    #[error("the request is callback number {depth} of a chain (x-wasmfn-callback-depth); more than {max} are refused to stop callback loops")]
    CallbackLoop { depth: u32, max: u32 },
    /// A caller's `config` names a secret of the function (only the key is shown).
    #[error(
        "the call's config sets '{key}', a secret of the function; callers cannot replace secrets"
    )]
    SecretOverride { key: String },
}

impl InvokeError {
    /// A stable, machine-readable name for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SpaceNotFound(_) => "space_not_found",
            Self::FunctionNotFound { .. } => "function_not_found",
            Self::EntryNotFound(_) => "entry_not_found",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::BadRequest(_) => "bad_request",
            Self::BadArguments(_) => "bad_arguments",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::RequestTimeout(_) => "request_timeout",
            Self::FunctionException { .. } => "function_exception",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit_exceeded",
            Self::Trap(_) => "function_trapped",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::Overloaded { .. } | Self::NoInstanceSlot => "overloaded",
            Self::InvalidResponse(_) => "invalid_response",
            Self::CallbackLoop { .. } => "callback_loop",
            Self::Unavailable(_) => "unavailable",
            Self::SecretOverride { .. } => "secret_override",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::SpaceNotFound(_)
            | Self::FunctionNotFound { .. }
            | Self::EntryNotFound(_)
            | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) | Self::BadArguments(_) | Self::SecretOverride { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::FunctionException { .. } | Self::MemoryLimit { .. } | Self::Trap(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::ResponseTooLarge { .. } | Self::InvalidResponse(_) => StatusCode::BAD_GATEWAY,
            Self::CallbackLoop { .. } => StatusCode::LOOP_DETECTED,
            Self::Overloaded { .. } | Self::NoInstanceSlot | Self::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The headers that go with the status: `Allow`, `Retry-After` or `WWW-Authenticate`.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Overloaded { .. } | Self::NoInstanceSlot | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        headers
    }

    /// The JSON body callers get: `{"error": {"code", "message", ...}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Self::FunctionException { type_name, message } = self {
            error["type"] = json!(type_name);
            error["message"] = json!(message);
        }
        json!({ "error": error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_body_carries_type_and_message_but_no_traceback() {
        let error = InvokeError::FunctionException {
            type_name: "ValueError".into(),
            message: "bad value".into(),
        };
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error.body(),
            json!({"error": {"code": "function_exception", "type": "ValueError", "message": "bad value"}})
        );
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let error = InvokeError::MethodNotAllowed { method: "HEAD".into(), allow: "POST" };
        assert_eq!(error.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(error.headers()[header::ALLOW], "POST");
    }
}
