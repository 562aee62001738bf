//! The admin API under `/admin`, for operators, one file per area: functions (deploy,
//! versions, rollback; `functions`), API keys (`keys`), the invocation log (`logs`),
//! configuration and secrets (`config`), event subscriptions (`subscriptions`); here, triggers
//! (list, create, show, delete, with their status), the delivery log and `/metrics`. Every
//! request needs `Authorization: Bearer <token>`: 401 without one, 403 with a wrong one. The
//! areas' own modules (`deploy`, `access`, ...) know nothing of the admin API.

mod accounts;
mod config;
mod functions;
mod keys;
mod logs;
mod network;
mod stats;
mod subscriptions;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::access::console::{Denied, Scope};
use crate::delivery::Deliverer;
use crate::triggers::cron::CronTriggers;
use crate::triggers::lifecycle::TriggerKind;
use crate::triggers::mqtt::{MqttError, MqttTriggerConfig, MqttTriggers, TriggerOrigin};

/// What the admin endpoints work on.
#[derive(Clone, Debug)]
pub struct AdminContext {
    pub token: crate::access::admin_token::AdminToken,
    pub mqtt: Arc<MqttTriggers>,
    pub cron: Arc<CronTriggers>,
    pub deliverer: Arc<Deliverer>,
    pub deployments: Arc<crate::deploy::Deployments>,
    pub access: Arc<crate::access::Access>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub logs: Arc<crate::invocation_log::InvocationLog>,
    pub registry: Arc<crate::registry::Registry>,
    /// Configuration values and secrets set through the admin API.
    pub config: Arc<crate::function_config::ConfigStore>,
    /// Event subscriptions.
    pub events: Arc<crate::events::SubscriptionStore>,
    /// The node's run slots, for the running-invocations gauge.
    pub run_slots: Arc<crate::running::RunSlots>,
    /// The async job store, for its per-space usage gauges.
    pub async_jobs: Arc<crate::triggers::async_invoke::AsyncJobs>,
    /// The document store and object storage (once opened), for their per-space usage gauges.
    pub capabilities: Option<Arc<crate::capabilities::Capabilities>>,
    /// Runs the console's Try it calls.
    pub invoker: crate::invoker::Invoker,
    /// The console's sign-in sessions, which the admin API accepts besides the token.
    pub console: Arc<crate::access::console::ConsoleSessions>,
    /// Operator accounts and invitations.
    pub accounts: Arc<crate::access::accounts::Accounts>,
    /// Where console sign-ins and registrations are published (AUTH_LOGIN, AUTH_REGISTER).
    pub event_bus: Arc<crate::events::EventBus>,
    /// The servers sharing this one's state.
    pub nodes: Arc<crate::directory::NodeDirectory>,
    /// Presign and session keys.
    pub signing: Arc<crate::signing_keys::SigningKeys>,
}

/// The `/admin` routes, and `extra` admin routes defined elsewhere (the server's Try it),
/// behind the token check.
pub fn router(state: AdminContext, extra: Router<AdminContext>) -> Router {
    Router::new()
        .route("/admin/triggers", get(list_all))
        .route("/admin/spaces/{space}/triggers", get(list_space).post(create))
        .route("/admin/spaces/{space}/triggers/{name}", get(show).put(replace).delete(delete))
        .route("/admin/deliveries", get(deliveries))
        .route("/admin/nodes", get(nodes))
        .route("/admin/signing-keys", get(signing_keys))
        .route("/admin/signing-keys/rotate", axum::routing::post(rotate_signing_keys))
        .route("/metrics", get(metrics))
        .merge(functions::routes())
        .merge(keys::routes())
        .merge(logs::routes())
        .merge(config::routes())
        .merge(network::routes())
        .merge(subscriptions::routes())
        .merge(stats::routes())
        .merge(accounts::routes())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize))
        // The index names endpoints only, so it needs no token: the start-up banner links it.
        .route("/admin", get(index))
        .with_state(state)
}

/// `GET /admin`: what the admin API offers and how to authenticate; no data. A browser
/// (asking for HTML) is sent to the console.
async fn index(headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return axum::response::Redirect::to("/console").into_response();
    }
    Json(json!({
        "admin_api": "wasmfn",
        "version": env!("CARGO_PKG_VERSION"),
        "authentication": "Authorization: Bearer <admin token> on every endpoint below \
                           (the token is printed at start, or read from <data-dir>/admin-token)",
        "documentation": "docs/admin-api.md",
        "console": "/console",
        "endpoints": {
            "functions": "/admin/spaces/{space}/functions[/{name}[/versions|/rollback]]",
            "all_functions": "/admin/functions",
            "keys": "/admin/spaces/{space}/keys",
            "logs": "/admin/logs",
            "config": "/admin/spaces/{space}/functions/{name}/config",
            "network": "/admin/spaces/{space}/functions/{name}/network",
            "triggers": "/admin/spaces/{space}/triggers",
            "events": "/admin/spaces/{space}/events",
            "deliveries": "/admin/deliveries",
            "metrics": "/metrics",
            "try": "/admin/spaces/{space}/functions/{name}/try",
            "stats": "/admin/stats, /admin/spaces/{space}/stats",
            "node": "/admin/node",
        },
    }))
    .into_response()
}

/// An admin API error: status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// With a `Retry-After` header of `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<MqttError> for AdminError {
    fn from(error: MqttError) -> Self {
        let (status, code) = match &error {
            MqttError::Invalid(_) | MqttError::MissingPassword { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_trigger")
            }
            MqttError::Exists { .. } => (StatusCode::CONFLICT, "trigger_exists"),
            MqttError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            MqttError::Declared { .. } => (StatusCode::CONFLICT, "declared_in_function_toml"),
            MqttError::Store(_) | MqttError::Sealed(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "store_failed")
            }
        };
        let message = match &error {
            // The store's own message may name host paths.
            MqttError::Store(detail) | MqttError::Sealed(detail) => {
                tracing::error!(%detail, "saving a trigger failed");
                "the trigger could not be saved".to_string()
            }
            _ => error.to_string(),
        };
        AdminError::new(status, code, message)
    }
}

/// The admin API error for a refused console request.
pub fn console_denied(denied: Denied) -> AdminError {
    match denied {
        Denied::NoSession => {
            AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", denied.to_string())
        }
        Denied::Csrf => AdminError::new(StatusCode::FORBIDDEN, "csrf", denied.to_string()),
    }
}

/// Lets a request in with the admin token (`Authorization: Bearer`) or a console session
/// (cookie, and the CSRF token on changes), and records its [`Scope`] for the handlers. A
/// session signed in with an API key may only read its own space and try its functions.
async fn authorize(
    State(state): State<AdminContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::access::bearer_token);
    let scope = match given {
        Some(token) if state.token.verify(token) => Scope::Admin,
        Some(_) => {
            return AdminError::new(StatusCode::FORBIDDEN, "forbidden", "wrong admin token")
                .into_response()
        }
        None if !request.headers().contains_key(header::COOKIE) => {
            return AdminError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API needs `Authorization: Bearer <token>` (the server's \
                 --admin-token, or the token file in its data directory), or a console session",
            )
            .into_response()
        }
        None => match state.console.authorize(
            request.headers(),
            request.method(),
            &state.access,
            &state.accounts,
        ) {
            Ok(scope) => scope,
            Err(denied) => return console_denied(denied).into_response(),
        },
    };
    if let Scope::Space { space, .. } = &scope {
        let viewer = |s: &str| (s == space).then_some(crate::access::accounts::Role::Viewer);
        if !role_may(viewer, request.method(), request.uri().path()) {
            return AdminError::new(
                StatusCode::FORBIDDEN,
                "read_only",
                format!(
                    "signed in with an API key of space '{space}': you may read that space and \
                     try its functions; sign in with the admin token to change anything"
                ),
            )
            .into_response();
        }
    }
    if let Scope::Account { roles, email, .. } = &scope {
        if !role_may(|s: &str| roles.get(s).copied(), request.method(), request.uri().path()) {
            return AdminError::new(
                StatusCode::FORBIDDEN,
                "no_access",
                format!("the account {email} has no role in this space that allows this"),
            )
            .into_response();
        }
    }
    request.extensions_mut().insert(scope);
    next.run(request).await
}

/// What a console session may reach, given its role in each space (`role_in`): in a space it
/// has a role in, reads and Try it (viewer), changes but to API keys (developer), everything
/// (owner); and the invocation log, which the log handlers cut to its spaces. A key's session
/// is a viewer of its own space; an account has its roles.
fn role_may(
    role_in: impl Fn(&str) -> Option<crate::access::accounts::Role>,
    method: &axum::http::Method,
    path: &str,
) -> bool {
    use crate::access::accounts::Role;
    let reads = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    if path == "/admin/logs" || path.starts_with("/admin/logs/") {
        return reads;
    }
    let Some((space, rest)) = path.strip_prefix("/admin/spaces/").and_then(|r| r.split_once('/'))
    else {
        return false;
    };
    let Some(role) = role_in(space) else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    let tries =
        *method == axum::http::Method::POST && matches!(parts.as_slice(), ["functions", _, "try"]);
    if reads || tries {
        return true;
    }
    match parts.first() {
        Some(&"keys") => role >= Role::Owner,
        _ => role >= Role::Developer,
    }
}

/// The MQTT and cron triggers, admin-created and declared (event triggers are listed under
/// `/admin/.../events`).
fn list(state: &AdminContext, space: Option<&str>) -> Json<Value> {
    let mut triggers = TriggerKind::list(&*state.mqtt, space);
    triggers.extend(state.cron.list(space));
    Json(json!({ "triggers": triggers }))
}

async fn list_all(State(state): State<AdminContext>) -> Json<Value> {
    list(&state, None)
}

async fn list_space(State(state): State<AdminContext>, Path(space): Path<String>) -> Json<Value> {
    list(&state, Some(&space))
}

async fn show(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    if let Some(view) = state.mqtt.get(&space, &name) {
        return Ok(Json(serde_json::to_value(view).expect("trigger view serialises")));
    }
    let listed = list(&state, Some(&space)).0;
    listed["triggers"]
        .as_array()
        .and_then(|all| all.iter().find(|t| t["name"] == name.as_str()).cloned())
        .map(Json)
        .ok_or_else(|| MqttError::NotFound { space, name }.into())
}

/// The MQTT trigger configuration a create or replace body asks for, checked against the
/// space: its functions are deployed and expose the entries, its callback may be reached.
/// `name`: the trigger's name from the path (a replace), which the body may repeat.
async fn mqtt_config(
    state: &AdminContext,
    space: &str,
    body: &[u8],
    name: Option<&str>,
) -> Result<MqttTriggerConfig, AdminError> {
    let bad =
        |message: String| AdminError::new(StatusCode::BAD_REQUEST, "invalid_trigger", message);
    crate::names::validate_name(space).map_err(|e| bad(format!("space: {e}")))?;
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    let fields =
        value.as_object_mut().ok_or_else(|| bad("the body must be a JSON object".into()))?;
    let kind = fields.remove("type");
    if let Some(name) = name {
        match fields.get("name").and_then(Value::as_str) {
            Some(given) if given != name => {
                return Err(bad(format!(
                    "the name is '{name}' (the URL's); a trigger cannot be renamed"
                )))
            }
            _ => {
                fields.insert("name".into(), Value::String(name.to_string()));
            }
        }
    }
    match kind.as_ref().and_then(Value::as_str) {
        Some("mqtt") => {}
        None if name.is_some() => {}
        Some("cron") => {
            return Err(bad("cron triggers are declared in function.toml ([[cron]])".into()))
        }
        other => {
            return Err(bad(format!(
                "`type` must be \"mqtt\" (got {})",
                other.map_or("nothing".to_string(), |t| format!("\"{t}\""))
            )))
        }
    }
    let config: MqttTriggerConfig =
        serde_json::from_value(value).map_err(|e| bad(format!("invalid mqtt trigger: {e}")))?;
    config.validate(false).map_err(bad)?;
    if let Some(url) = &config.callback_url {
        let destinations = state.deliverer.destinations();
        destinations.refuse_internal(&url.0).await.map_err(|why| callback_refused(&why))?;
    }
    for target in &config.functions {
        let version = state.registry.get(space, &target.function).map_err(|_| {
            bad(format!("function '{}' is not deployed in space '{space}'", target.function))
        })?;
        version.resolve_entry(target.entry.as_deref()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(config)
}

/// `POST /admin/spaces/<space>/triggers` with `{"type": "mqtt", …}`.
async fn create(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let config = mqtt_config(&state, &space, &body, None).await?;
    let view = state.mqtt.create(&space, config, TriggerOrigin::Admin)?;
    let location = format!("/admin/spaces/{space}/triggers/{}", view.name);
    let mut response = (StatusCode::CREATED, Json(serde_json::to_value(view).expect("serialises")))
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PUT /admin/spaces/<space>/triggers/<name>` with the whole new configuration (as for a
/// create; `type` and `name` may be left out): replaces an admin-created MQTT trigger.
async fn replace(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    if state.cron.contains(&space, &name) && state.mqtt.get(&space, &name).is_none() {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "declared_in_function_toml",
            format!("cron trigger '{name}' comes from function.toml: change it there and redeploy"),
        ));
    }
    let config = mqtt_config(&state, &space, &body, Some(&name)).await?;
    let view = state.mqtt.replace(&space, config)?;
    Ok(Json(serde_json::to_value(view).expect("trigger view serialises")))
}

/// 400 `callback_refused`: a callback or webhook URL whose host deliveries may not reach.
pub(crate) fn callback_refused(
    why: &crate::delivery::destination::DestinationRefused,
) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, "callback_refused", why.to_string())
}

async fn delete(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    if state.cron.contains(&space, &name) && state.mqtt.get(&space, &name).is_none() {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "declared_in_function_toml",
            format!("cron trigger '{name}' comes from function.toml: change it there and redeploy"),
        ));
    }
    state.mqtt.delete(&space, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /metrics`: Prometheus text format, behind the admin token like the rest.
async fn metrics(State(state): State<AdminContext>) -> Response {
    let text = state.metrics.render(&crate::metrics::Sources {
        registry: &state.registry,
        run_slots: &state.run_slots,
        mqtt: &state.mqtt,
        cron: &state.cron,
        async_jobs: &state.async_jobs,
        capabilities: state.capabilities.as_deref(),
    });
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn deliveries(State(state): State<AdminContext>) -> Result<Json<Value>, AdminError> {
    let deliverer = state.deliverer.clone();
    let unavailable = || {
        AdminError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the delivery log could not be read; see the server log",
        )
    };
    let recent = tokio::task::spawn_blocking(move || deliverer.log().recent())
        .await
        .map_err(|_| unavailable())?
        .map_err(|error| {
            tracing::error!(%error, "reading the delivery log failed");
            unavailable()
        })?;
    Ok(Json(json!({ "deliveries": recent })))
}

/// The servers sharing this one's state (docs/cluster.md): each with its address, version,
/// load, the versions it serves and whether it still renews its record.
async fn nodes(State(state): State<AdminContext>) -> Result<Json<Value>, AdminError> {
    let directory = state.nodes.clone();
    let nodes = tokio::task::spawn_blocking(move || directory.list()).await.map_err(|_| {
        AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "listing the servers failed".to_string(),
        )
    })?;
    Ok(Json(json!({ "this_node": state.nodes.id(), "nodes": nodes })))
}

/// The fingerprints of the current signing keys (presigned URLs, function sessions).
async fn signing_keys(State(state): State<AdminContext>) -> Json<Value> {
    Json(json!({ "keys": state.signing.fingerprints() }))
}

/// Makes new signing keys; links and tokens of the keys before stay valid until the next
/// rotation. Servers sharing the state load the new keys too.
async fn rotate_signing_keys(State(state): State<AdminContext>) -> Result<Json<Value>, AdminError> {
    let signing = state.signing.clone();
    let rotated = tokio::task::spawn_blocking(move || signing.rotate())
        .await
        .map_err(|_| {
            AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "rotation failed")
        })?
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "rotating the signing keys failed");
            AdminError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the signing keys could not be saved; see the server log",
            )
        })?;
    Ok(Json(json!({ "keys": rotated })))
}
