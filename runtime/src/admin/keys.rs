//! The admin API's key endpoints: create (the key is shown once), list, revoke, share with
//! another space and stop sharing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminContext, AdminError};
use crate::access::{KeyCaller, KeyError};

/// The key routes (the token check is applied by `admin::router`).
pub fn routes() -> Router<AdminContext> {
    Router::new()
        .route("/admin/spaces/{space}/keys", get(list).post(create))
        .route("/admin/spaces/{space}/keys/{id}", axum::routing::delete(revoke))
        .route("/admin/spaces/{space}/keys/{id}/shares/{other}", put(share).delete(unshare))
}

impl From<KeyError> for AdminError {
    fn from(error: KeyError) -> Self {
        match &error {
            KeyError::Invalid(_) => {
                AdminError::new(StatusCode::BAD_REQUEST, "invalid_key", error.to_string())
            }
            KeyError::NotFound { .. } => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            KeyError::Store(_) => {
                tracing::error!(%error, "key store failure");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_failed",
                    "the key store failed; see the server log",
                )
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    /// The identity calls with this key carry.
    #[serde(default)]
    caller: KeyCaller,
}

/// `POST /admin/spaces/<space>/keys` with `{"name": "...", "caller": {...}}`: 201 with the key,
/// which is shown this once.
async fn create(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let CreateKey { name, caller } = serde_json::from_slice(&body).map_err(|e| {
        AdminError::new(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("expected {{\"name\": \"...\", \"caller\": {{...}}}}: {e}"),
        )
    })?;
    let (record, key) = state.access.create(&space, &name, caller)?;
    tracing::info!(%space, key_id = %record.id, key_name = %record.name, "api key created");
    let mut body = serde_json::to_value(&record).expect("key record serialises");
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "keys": state.access.list(&space)? })))
}

async fn revoke(
    State(state): State<AdminContext>,
    Path((space, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    state.access.revoke(&space, &id)?;
    tracing::info!(%space, key_id = %id, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn share(
    State(state): State<AdminContext>,
    Path((space, id, other)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let record = state.access.share(&space, &id, &other, true)?;
    Ok(Json(serde_json::to_value(record).expect("key record serialises")))
}

async fn unshare(
    State(state): State<AdminContext>,
    Path((space, id, other)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let record = state.access.share(&space, &id, &other, false)?;
    Ok(Json(serde_json::to_value(record).expect("key record serialises")))
}
