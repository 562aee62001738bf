//! `/admin/spaces/{space}/functions/{name}/network`: the outside hosts a function may reach.
//! The operator's list replaces the `[network] allow` of the function's `function.toml` for
//! every version until it is cleared; it is kept with the function's configuration.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::failed;
use super::{AdminContext, AdminError};

pub fn routes() -> Router<AdminContext> {
    Router::new().route(
        "/admin/spaces/{space}/functions/{name}/network",
        get(show).put(replace).delete(clear),
    )
}

/// What a PUT takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkBody {
    allow: Vec<String>,
}

/// The list in force and where it comes from; with the bundle's own when it is loaded.
fn view(state: &AdminContext, space: &str, name: &str) -> Value {
    let bundle =
        state.registry.get(space, name).ok().map(|version| version.network.entries().to_vec());
    match state.config.network(space, name) {
        Some(operator) => json!({
            "allow": operator.entries(),
            "source": "operator",
            "function_toml": bundle,
        }),
        None => json!({
            "allow": bundle.clone().unwrap_or_default(),
            "source": if bundle.is_some() { "function.toml" } else { "none" },
            "function_toml": bundle,
        }),
    }
}

async fn show(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Json<Value> {
    Json(view(&state, &space, &name))
}

async fn replace(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let invalid =
        |message: String| AdminError::new(StatusCode::BAD_REQUEST, "invalid_network", message);
    let body: NetworkBody = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!("expected {{\"allow\": [\"https://api.example.com\", ...]}}: {e}"))
    })?;
    crate::names::validate_name(&name).map_err(invalid)?;
    wasmfn_host_apis::outbound::NetworkAllowlist::parse(&body.allow).map_err(invalid)?;
    let mut overrides = state.config.get(&space, &name).map(|o| (*o).clone()).unwrap_or_default();
    overrides.network = Some(body.allow);
    state.config.set(&space, &name, overrides).map_err(failed)?;
    Ok(Json(view(&state, &space, &name)))
}

async fn clear(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    if let Some(existing) = state.config.get(&space, &name) {
        let mut overrides = (*existing).clone();
        overrides.network = None;
        state.config.set(&space, &name, overrides).map_err(failed)?;
    }
    Ok(Json(view(&state, &space, &name)))
}
