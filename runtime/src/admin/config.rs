//! `/admin/spaces/{space}/functions/{name}/config`: read (secrets by name only), replace or
//! clear the configuration the admin API sets for a function.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wasmfn_host_apis::config::REDACTED;

use super::{AdminContext, AdminError};
use crate::function_config::ConfigOverrides;

pub fn routes() -> Router<AdminContext> {
    Router::new().route(
        "/admin/spaces/{space}/functions/{name}/config",
        get(show).put(replace).patch(change).delete(clear),
    )
}

fn view(overrides: &ConfigOverrides) -> Value {
    let secrets: serde_json::Map<String, Value> =
        overrides.secrets.keys().map(|k| (k.clone(), Value::String(REDACTED.into()))).collect();
    json!({"values": overrides.values, "secrets": secrets})
}

/// 500 `store_failed`, with the details in the server log only: the function configuration
/// record (values, secrets and the network allowlist) could not be saved.
pub(super) fn failed(error: anyhow::Error) -> AdminError {
    tracing::error!(error = %format!("{error:#}"), "function configuration store failed");
    AdminError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_failed",
        "the function's configuration could not be saved; see the server log",
    )
}

/// 400 `invalid_config`.
fn invalid(message: String) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, "invalid_config", message)
}

/// A key may be a value or a secret, not both.
fn disjoint(overrides: &ConfigOverrides) -> Result<(), AdminError> {
    match overrides.values.keys().find(|k| overrides.secrets.contains_key(*k)) {
        Some(key) => Err(invalid(format!("'{key}' is both a value and a secret; keep it in one"))),
        None => Ok(()),
    }
}

async fn show(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Json<Value> {
    let overrides = state.config.get(&space, &name).map(|o| (*o).clone()).unwrap_or_default();
    Json(view(&overrides))
}

async fn replace(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let mut overrides: ConfigOverrides = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!(
            "expected {{\"values\": {{..}}, \"secrets\": {{..}}}}: values any JSON, secrets strings: {e}"
        ))
    })?;
    disjoint(&overrides)?;
    crate::names::validate_name(&name).map_err(invalid)?;
    // The network allowlist has its own endpoint (`network.rs`) and stays as it is.
    overrides.network = state.config.get(&space, &name).and_then(|o| o.network.clone());
    state.config.set(&space, &name, overrides.clone()).map_err(failed)?;
    Ok(Json(view(&overrides)))
}

/// A `PATCH` body: keys to set, and keys to remove (`null`); the rest stays.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    #[serde(default)]
    values: std::collections::BTreeMap<String, Option<Value>>,
    #[serde(default)]
    secrets: std::collections::BTreeMap<String, Option<String>>,
}

/// Serialises read-modify-write of one record by `PATCH`es.
static PATCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());

async fn change(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let changes: Changes = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!(
            "expected {{\"values\": {{..}}, \"secrets\": {{..}}}}: values any JSON, secrets \
             strings, null to remove a key: {e}"
        ))
    })?;
    crate::names::validate_name(&name).map_err(invalid)?;
    let _patching = PATCHING.lock().unwrap_or_else(|e| e.into_inner());
    let mut overrides = state.config.get(&space, &name).map(|o| (*o).clone()).unwrap_or_default();
    for (key, value) in changes.values {
        match value {
            Some(value) => overrides.values.insert(key, value),
            None => overrides.values.remove(&key),
        };
    }
    for (key, secret) in changes.secrets {
        match secret {
            Some(secret) => overrides.secrets.insert(key, secret),
            None => overrides.secrets.remove(&key),
        };
    }
    disjoint(&overrides)?;
    state.config.set(&space, &name, overrides.clone()).map_err(failed)?;
    Ok(Json(view(&overrides)))
}

async fn clear(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    // Values and secrets go; the network allowlist (its own endpoint) stays.
    match state.config.get(&space, &name).and_then(|o| o.network.clone()) {
        Some(network) => {
            let kept = ConfigOverrides { network: Some(network), ..Default::default() };
            state.config.set(&space, &name, kept).map_err(failed)?;
        }
        None => {
            state.config.remove(&space, &name).map_err(failed)?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
