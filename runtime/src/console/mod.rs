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

use crate::access::accounts::{Account, AccountError};
use crate::access::console as sessions;
use crate::admin::{console_denied, AdminContext, AdminError};
use crate::events::Event;

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
        .route("/console/register", axum::routing::post(register))
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
    /// The admin token or an API key ...
    token: Option<String>,
    /// ... or an operator account's email and password.
    email: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    invitation: String,
    password: String,
    #[serde(default = "english")]
    lang: String,
}

fn english() -> String {
    "en".into()
}

/// The client's address and the JSON body of a sign-in or registration (JSON only, so a form
/// on another site cannot make a browser send one).
async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
    shape: &str,
) -> Result<(Option<std::net::IpAddr>, T), AdminError> {
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
            format!("send Content-Type: application/json and {shape}"),
        ));
    }
    let body = axum::body::to_bytes(request.into_body(), 16 * 1024).await.map_err(|_| {
        AdminError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the body is too large")
    })?;
    let parsed = serde_json::from_slice(&body).map_err(|_| {
        AdminError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("expected {shape}"))
    })?;
    Ok((client, parsed))
}

fn sign_in_refused(error: sessions::SignInError) -> AdminError {
    match error {
        sessions::SignInError::Wrong => {
            AdminError::new(StatusCode::UNAUTHORIZED, "sign_in_failed", error.to_string())
        }
        sessions::SignInError::TooMany { retry_after } => {
            AdminError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sign_ins", error.to_string())
                .retry_after(retry_after)
        }
    }
}

/// The answer that starts a session: the view, and the cookie.
fn started(state: &AdminContext, scope: sessions::Scope, status: StatusCode) -> Response {
    let (id, view) = state.console.start(scope);
    with_session(state, status, &id, view)
}

/// The answer to a sign-in: the session's view, and its cookie.
fn with_session(
    state: &AdminContext,
    status: StatusCode,
    id: &str,
    view: sessions::SessionView,
) -> Response {
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.console.cookie(id));
    response
}

/// Tells the spaces an account has a role in that it signed in (and registered).
fn publish_account_events(state: &AdminContext, account: &Account, registered: bool) {
    for space in account.roles.keys() {
        if registered {
            state.event_bus.publish(Event::auth_register(
                space,
                &account.id,
                &account.email,
                &account.lang,
            ));
        }
        state.event_bus.publish(Event::auth_login(space, &account.id, &account.email));
    }
}

fn account_scope(account: &Account) -> sessions::Scope {
    sessions::Scope::Account {
        id: account.id.clone(),
        email: account.email.clone(),
        roles: account.roles.clone(),
    }
}

/// `POST /console/session` with `{"token": "..."}` (the admin token or an API key) or
/// `{"email": "...", "password": "..."}` (an operator account): sets the session cookie,
/// answers the CSRF token. An account's sign-in is published as `AUTH_LOGIN`.
async fn sign_in(
    State(state): State<AdminContext>,
    request: Request,
) -> Result<Response, AdminError> {
    let shape = r#"{"token": "..."} or {"email": "...", "password": "..."}"#;
    let (client, body): (_, SignIn) = json_body(request, shape).await?;
    match body {
        SignIn { token: Some(token), email: None, password: None } => {
            let (id, view) = state
                .console
                .sign_in(client, &token, &state.token, &state.access)
                .map_err(sign_in_refused)?;
            Ok(with_session(&state, StatusCode::OK, &id, view))
        }
        SignIn { token: None, email: Some(email), password: Some(password) } => {
            state.console.may_try(client).map_err(sign_in_refused)?;
            let Some(account) = state.accounts.verify(&email, &password).await else {
                state.console.failed(client);
                return Err(sign_in_refused(sessions::SignInError::Wrong));
            };
            tracing::info!(account = %account.id, "console sign-in");
            publish_account_events(&state, &account, false);
            Ok(started(&state, account_scope(&account), StatusCode::OK))
        }
        _ => Err(AdminError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected {shape}"),
        )),
    }
}

/// `POST /console/register` with `{"invitation": "wfi_...", "password": "...", "lang": "en"}`:
/// creates the invited account, signs it in, and publishes `AUTH_REGISTER` and `AUTH_LOGIN`.
async fn register(
    State(state): State<AdminContext>,
    request: Request,
) -> Result<Response, AdminError> {
    let shape = r#"{"invitation": "wfi_...", "password": "...", "lang": "en"}"#;
    let (client, body): (_, Register) = json_body(request, shape).await?;
    state.console.may_try(client).map_err(sign_in_refused)?;
    let account = match state.accounts.register(&body.invitation, &body.password, &body.lang).await
    {
        Ok(account) => account,
        Err(error) => {
            // Guessing codes counts like guessing passwords.
            if error == AccountError::BadInvitation {
                state.console.failed(client);
            }
            return Err(error.into());
        }
    };
    tracing::info!(account = %account.id, "console account registered");
    publish_account_events(&state, &account, true);
    Ok(started(&state, account_scope(&account), StatusCode::CREATED))
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
        .authorize(&headers, &axum::http::Method::DELETE, &state.access, &state.accounts)
        .map_err(console_denied)?;
    state.console.sign_out(&headers);
    let mut response = Json(json!({"signed_out": true})).into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.console.removal_cookie());
    Ok(response)
}
