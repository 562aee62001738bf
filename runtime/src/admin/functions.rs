//! The admin API's function endpoints: deploy, list, show, roll back, delete.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminContext, AdminError};
use crate::bundle::BundleError;
use crate::deploy::{DeployError, DeployRequest, VersionState};
use crate::rejections::declare_body_limit;

/// Largest bundle the deploy endpoint takes (a Python bundle is about 40 MiB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;

/// The function routes (the token check is applied by `admin::router`).
pub fn routes() -> Router<AdminContext> {
    Router::new()
        .route("/admin/functions", get(list_all))
        .route("/admin/spaces/{space}/functions", get(list_space))
        .route("/admin/spaces/{space}/functions/{name}", get(show).delete(delete))
        .route(
            "/admin/spaces/{space}/functions/{name}/versions",
            post(deploy)
                .layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES))
                .layer(map_response(declare_body_limit::<MAX_BUNDLE_BYTES>)),
        )
        .route("/admin/spaces/{space}/functions/{name}/rollback", post(rollback))
}

impl From<DeployError> for AdminError {
    fn from(error: DeployError) -> Self {
        let (status, code) = match &error {
            DeployError::Bundle(BundleError::Cache(_)) | DeployError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "store_failed")
            }
            // A rollback to a version whose triggers cannot start (say, a name an admin
            // trigger took since).
            DeployError::Bundle(BundleError::Triggers(_)) => {
                (StatusCode::CONFLICT, "triggers_refused")
            }
            DeployError::Bundle(_) | DeployError::Invalid(_) | DeployError::Failed { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_bundle")
            }
            DeployError::NotNewer { .. } => (StatusCode::CONFLICT, "version_not_newer"),
            DeployError::Exists { .. } => (StatusCode::CONFLICT, "version_exists"),
            DeployError::NotRunnable { .. } => (StatusCode::CONFLICT, "version_not_runnable"),
            DeployError::NoSuchVersion { .. } | DeployError::NotFound { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
        };
        let message = match &error {
            // Store and cache messages may name host paths.
            DeployError::Store(_) | DeployError::Bundle(BundleError::Cache(_)) => {
                tracing::error!(%error, "deploy store failure");
                "the bundle store failed; see the server log".to_string()
            }
            _ => error.to_string(),
        };
        AdminError::new(status, code, message)
    }
}

/// Functions as listed: every active function (deployed or served from a path), with the
/// versions of deployed ones.
fn functions(state: &AdminContext, space: Option<&str>) -> Result<Value, AdminError> {
    let records = state.deployments.all()?;
    let servers: Vec<_> = state.nodes.list().into_iter().filter(|n| n.alive).collect();
    // Which live servers serve which version of a function (docs/cluster.md).
    let serving = |space: &str, name: &str| -> Value {
        let found: Vec<Value> = servers
            .iter()
            .filter_map(|server| {
                let served =
                    server.record.functions.iter().find(|f| f.space == space && f.name == name)?;
                Some(json!({"node": server.record.id, "version": served.version}))
            })
            .collect();
        Value::Array(found)
    };
    let mut listed = Vec::new();
    for summary in state.registry.list() {
        if space.is_some_and(|s| s != summary.space) {
            continue;
        }
        let record = records.iter().find(|r| r.space == summary.space && r.name == summary.name);
        let version = state.registry.get(&summary.space, &summary.name).ok();
        listed.push(json!({
            "access": version.as_ref().map(|v| state.access.policy(v.access)),
            "limits": version.as_ref().map(|v| v.limits.clone()),
            "space": summary.space,
            "name": summary.name,
            "active_version": summary.version,
            "sha256": summary.sha256,
            "entries": summary.entries,
            "default_entry": summary.default_entry,
            "tier": summary.tier,
            "source": if record.is_some() { "deployed" } else { "served" },
            "versions": record.map(|r| r.versions.clone()).unwrap_or_default(),
            "nodes": serving(&summary.space, &summary.name),
        }));
    }
    // Deployed functions with no active version (first compile running or failed).
    for record in &records {
        let active = state.registry.get(&record.space, &record.name).is_ok();
        if !active && space.is_none_or(|s| s == record.space) {
            listed.push(json!({
                "space": record.space,
                "name": record.name,
                "active_version": null,
                "source": "deployed",
                "versions": record.versions,
                "nodes": serving(&record.space, &record.name),
            }));
        }
    }
    Ok(json!({ "functions": listed }))
}

async fn list_all(State(state): State<AdminContext>) -> Result<Json<Value>, AdminError> {
    functions(&state, None).map(Json)
}

async fn list_space(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
) -> Result<Json<Value>, AdminError> {
    functions(&state, Some(&space)).map(Json)
}

async fn show(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let listed = functions(&state, Some(&space))?;
    listed["functions"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["name"] == name.as_str()).cloned())
        .map(Json)
        .ok_or_else(|| DeployError::NotFound { space, name }.into())
}

#[derive(Deserialize)]
struct DeployQuery {
    version: Option<String>,
    /// `false`: answer 202 at once and compile in the background.
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

/// `POST /admin/spaces/<space>/functions/<name>/versions[?version=1.2.0&wait=false]` with the
/// bundle as body.
async fn deploy(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    Query(query): Query<DeployQuery>,
    scope: Option<axum::extract::Extension<crate::access::console::Scope>>,
    body: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let deployed_by = scope.map(|scope| match scope.0 {
        crate::access::console::Scope::Account { email, .. } => email,
        _ => "admin token".to_string(),
    });
    let request = DeployRequest {
        deployed_by,
        space: space.clone(),
        name: Some(name.clone()),
        version: query.version,
        // Without a copy: the collected body is one buffer already.
        bytes: Vec::from(body),
        wait: query.wait,
    };
    let record = state.deployments.deploy(request).await?;
    let status = match record.state {
        VersionState::Compiling => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    };
    let location = format!("/admin/spaces/{space}/functions/{name}");
    let body = json!({"space": space, "name": name, "version": record});
    let mut response = (status, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct RollbackBody {
    version: String,
}

async fn rollback(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let RollbackBody { version } = serde_json::from_slice(&body).map_err(|e| {
        AdminError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected {{\"version\": \"1.2.3\"}}: {e}"),
        )
    })?;
    let record = state.deployments.rollback(&space, &name, &version).await?;
    Ok(Json(json!({"space": space, "name": name, "version": record})))
}

async fn delete(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    state.deployments.delete(&space, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
