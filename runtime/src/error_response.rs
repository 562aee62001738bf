//! The one way an [`InvokeError`] becomes an HTTP answer at the server's edges: its status, its
//! headers (`Allow`, `Retry-After`, `WWW-Authenticate`) and its JSON body, as the core defines
//! them. A trait of the server's, since the core knows no HTTP framework.

use axum::response::{IntoResponse, Response};

use crate::error::InvokeError;

/// Turns an invocation error into the HTTP answer callers get.
pub trait ErrorResponse {
    fn into_response(self) -> Response;
}

impl ErrorResponse for InvokeError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        response.headers_mut().extend(self.headers());
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{header, StatusCode};

    use super::*;

    #[test]
    fn the_answer_carries_status_headers_and_body() {
        let response =
            InvokeError::MethodNotAllowed { method: "HEAD".into(), allow: "POST" }.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "a JSON body, like every other error"
        );
    }
}
