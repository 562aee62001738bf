//! The operator console at `/console`: a small page (HTML, one ES module, one stylesheet,
//! all embedded in the binary, no CDN) that works on the admin API with a session cookie
//! instead of the bearer token. Here: the page and its assets, with headers that keep other
//! sites and injected scripts out, and sign-in/out (`/console/session`). What a session may
//! do is decided where the admin API checks credentials (`admin::authorize`); the sessions
//! themselves are `access::console`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::access::console as sessions;
use crate::admin::{console_denied, AdminContext, AdminError};

/// The page and its assets: (name, content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("assets/style.css")),
    // uPlot, the chart library (pinned in vendor/package-lock.json; see
    // scripts/update-console-vendor.sh), and its licence.
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("assets/vendor/uPlot.min.css")),
    ("uPlot.LICENSE", "text/plain; charset=utf-8", include_str!("assets/vendor/uPlot.LICENSE")),
];
const INDEX: &str = include_str!("assets/index.html");

/// Scripts and styles only from this server, no inline script, no framing, no form posts
/// elsewhere: a function's output shown in the console cannot run as script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The console routes.
pub fn router(state: AdminContext) -> Router {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/assets/{name}", get(asset))
        .route("/console/session", get(current).post(sign_in).delete(sign_out))
        .layer(axum::middleware::map_response(protect))
        .with_state(state)
}

/// Headers on every console response.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) => {
            ([(header::CONTENT_TYPE, *content_type)], *text).into_response()
        }
        None => AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no console asset '{name}'"),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// The admin token or an API key.
    token: String,
}

/// `POST /console/session` with `{"token": "..."}` (JSON only, so a form on another site
/// cannot sign a browser in): sets the session cookie, answers the CSRF token.
async fn sign_in(
    State(state): State<AdminContext>,
    request: Request,
) -> Result<Response, AdminError> {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
    if !is_json {
        return Err(AdminError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "sign in with Content-Type: application/json and {\"token\": \"...\"}",
        ));
    }
    let body = axum::body::to_bytes(request.into_body(), 16 * 1024).await.map_err(|_| {
        AdminError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the sign-in body is too large",
        )
    })?;
    let SignIn { token } = serde_json::from_slice(&body).map_err(|_| {
        AdminError::new(StatusCode::BAD_REQUEST, "invalid_request", "expected {\"token\": \"...\"}")
    })?;
    match state.console.sign_in(client, &token, &state.token, &state.access) {
        Ok((id, view)) => {
            let mut response = Json(view).into_response();
            response.headers_mut().insert(header::SET_COOKIE, state.console.cookie(&id));
            Ok(response)
        }
        Err(error @ sessions::SignInError::Wrong) => {
            Err(AdminError::new(StatusCode::UNAUTHORIZED, "sign_in_failed", error.to_string()))
        }
        Err(error @ sessions::SignInError::TooMany { retry_after }) => {
            let mut response = AdminError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sign_ins",
                error.to_string(),
            )
            .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Ok(response)
        }
    }
}

/// `GET /console/session`: the signed-in session (scope, CSRF token), or 401.
async fn current(
    State(state): State<AdminContext>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    state.console.current(&headers).map(|view| Json(view).into_response()).ok_or_else(|| {
        AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            sessions::Denied::NoSession.to_string(),
        )
    })
}

/// `DELETE /console/session` (with the CSRF token): signs out.
async fn sign_out(
    State(state): State<AdminContext>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    state
        .console
        .authorize(&headers, &axum::http::Method::DELETE, &state.access)
        .map_err(console_denied)?;
    state.console.sign_out(&headers);
    let mut response = Json(json!({"signed_out": true})).into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.console.removal_cookie());
    Ok(response)
}
