//! The admin API's account endpoints (the admin token only): list, create and delete operator
//! accounts of the console, and invite someone to register one.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminContext, AdminError};
use crate::access::accounts::{AccountError, Role};

pub fn routes() -> Router<AdminContext> {
    Router::new()
        .route("/admin/accounts", get(list).post(create))
        .route("/admin/accounts/{id}", delete(remove).patch(set_roles))
        .route("/admin/invitations", post(invite))
}

impl From<AccountError> for AdminError {
    fn from(error: AccountError) -> Self {
        match &error {
            AccountError::Invalid(_) => {
                AdminError::new(StatusCode::BAD_REQUEST, "invalid_account", error.to_string())
            }
            AccountError::Exists(_) => {
                AdminError::new(StatusCode::CONFLICT, "account_exists", error.to_string())
            }
            AccountError::NotFound(_) => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            AccountError::BadInvitation => {
                AdminError::new(StatusCode::BAD_REQUEST, "bad_invitation", error.to_string())
            }
            AccountError::Store(_) => {
                tracing::error!(%error, "account store failure");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_failed",
                    "the account store failed; see the server log",
                )
            }
        }
    }
}

fn bad_body(error: serde_json::Error, shape: &str) -> AdminError {
    AdminError::new(
        StatusCode::BAD_REQUEST,
        "invalid_account",
        format!("expected {shape}: {error}"),
    )
}

async fn list(State(state): State<AdminContext>) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "accounts": state.accounts.list()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    password: String,
    #[serde(default)]
    roles: BTreeMap<String, Role>,
    #[serde(default = "english")]
    lang: String,
}

fn english() -> String {
    "en".into()
}

/// `POST /admin/accounts` with `{"email", "password", "roles": {"<space>": "viewer"}, "lang"}`.
async fn create(
    State(state): State<AdminContext>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let shape =
        r#"{"email": "...", "password": "...", "roles": {"<space>": "viewer|developer|owner"}}"#;
    let new: NewAccount = serde_json::from_slice(&body).map_err(|e| bad_body(e, shape))?;
    let account = state.accounts.create(&new.email, &new.password, new.roles, &new.lang).await?;
    Ok((StatusCode::CREATED, Json(json!(account))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesChange {
    roles: BTreeMap<String, Role>,
}

/// `PATCH /admin/accounts/<id>` with `{"roles": {...}}`: replaces the account's roles.
async fn set_roles(
    State(state): State<AdminContext>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let shape = r#"{"roles": {"<space>": "viewer|developer|owner"}}"#;
    let RolesChange { roles } = serde_json::from_slice(&body).map_err(|e| bad_body(e, shape))?;
    Ok(Json(json!(state.accounts.set_roles(&id, roles)?)))
}

async fn remove(
    State(state): State<AdminContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    state.accounts.delete(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    #[serde(default)]
    roles: BTreeMap<String, Role>,
}

/// `POST /admin/invitations` with `{"email", "roles"}`: the code to register with, shown once.
async fn invite(
    State(state): State<AdminContext>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let shape = r#"{"email": "...", "roles": {"<space>": "viewer|developer|owner"}}"#;
    let new: NewInvitation = serde_json::from_slice(&body).map_err(|e| bad_body(e, shape))?;
    let (code, expires_at) = state.accounts.invite(&new.email, new.roles)?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"email": new.email.trim().to_lowercase(), "invitation": code, "expires_at": expires_at}),
        ),
    ))
}
