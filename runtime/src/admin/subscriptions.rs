//! `/admin/spaces/{space}/events[/{name}]`: list, create and delete event subscriptions. A
//! webhook subscription's secret is generated at creation and shown in that answer only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminContext, AdminError};
use crate::events::subscriptions::{Origin, SubscriptionError};
use crate::events::{EventKind, Subscription, Target};
use crate::triggers::mqtt::CallbackUrl;

pub fn routes() -> Router<AdminContext> {
    Router::new()
        .route("/admin/events", get(list_all))
        .route("/admin/spaces/{space}/events", get(list_space).post(create))
        .route("/admin/spaces/{space}/events/{name}", get(show).delete(delete))
}

/// The body of a create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    name: String,
    /// May be left out with `property`: every document write.
    #[serde(default)]
    events: Vec<String>,
    /// Only writes that change this field of a document of `collection`.
    #[serde(default)]
    property: Option<String>,
    /// With `property`: only this document.
    #[serde(default)]
    document_id: Option<String>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    key_prefix: Option<String>,
    /// Run this function of the space...
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    entry: Option<String>,
    /// ...or POST to this URL.
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    callback_url: Option<String>,
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, "invalid_subscription", message)
}

fn store_error(error: SubscriptionError) -> AdminError {
    match error {
        SubscriptionError::Exists { .. } => {
            AdminError::new(StatusCode::CONFLICT, "subscription_exists", error.to_string())
        }
        SubscriptionError::Invalid(message) => invalid(message),
        SubscriptionError::Store(_) => {
            tracing::error!(%error, "event subscription store failed");
            AdminError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_failed",
                "saving the subscription failed; see the server log",
            )
        }
    }
}

async fn list_all(State(state): State<AdminContext>) -> Json<Value> {
    let all: Vec<Value> = state.events.list(None).iter().map(Subscription::view).collect();
    Json(json!({"subscriptions": all}))
}

async fn list_space(State(state): State<AdminContext>, Path(space): Path<String>) -> Json<Value> {
    let all: Vec<Value> = state.events.list(Some(&space)).iter().map(Subscription::view).collect();
    Json(json!({"subscriptions": all}))
}

async fn show(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    state.events.get(&space, &name).map(|s| Json(s.view())).ok_or_else(|| {
        AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event subscription '{name}' in space '{space}'"),
        )
    })
}

async fn create(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let new: NewSubscription =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("bad subscription: {e}")))?;
    let events = crate::manifest::listened_events(&new.events, new.property.is_some())
        .iter()
        .map(|e| EventKind::parse(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    crate::manifest::validate_property(
        new.property.as_deref(),
        new.document_id.as_deref(),
        new.collection.as_deref(),
        &events,
    )
    .map_err(invalid)?;
    let mut secret = None;
    let target = match (new.function, new.webhook_url) {
        (Some(function), None) => {
            crate::names::validate_name(&function).map_err(invalid)?;
            Target::Function { function, entry: new.entry }
        }
        (None, Some(url)) => {
            if new.entry.is_some() {
                return Err(invalid("entry applies to function subscriptions only"));
            }
            let url = crate::delivery::parse_callback_url(&url)
                .map_err(|e| invalid(e.replace("callback URL", "webhook URL")))?;
            let generated = format!("whs_{}", hex::encode(rand::random::<[u8; 24]>()));
            secret = Some(generated.clone());
            Target::Webhook { url: CallbackUrl(url), secret: generated }
        }
        _ => {
            return Err(invalid(
                "give either \"function\" (run a function of the space) or \"webhook_url\"",
            ))
        }
    };
    let callback_url =
        match new.callback_url {
            Some(url) if matches!(target, Target::Function { .. }) => {
                Some(CallbackUrl(crate::delivery::parse_callback_url(&url).map_err(invalid)?))
            }
            Some(_) => return Err(invalid(
                "callback_url applies to function subscriptions (a webhook is its own receiver)",
            )),
            None => None,
        };
    let destinations = state.deliverer.destinations();
    let urls = [
        callback_url.as_ref(),
        match &target {
            Target::Webhook { url, .. } => Some(url),
            Target::Function { .. } => None,
        },
    ];
    for url in urls.into_iter().flatten() {
        destinations.refuse_internal(&url.0).await.map_err(|why| super::callback_refused(&why))?;
    }
    let subscription = Subscription {
        space,
        name: new.name,
        events,
        collection: new.collection,
        key_prefix: new.key_prefix,
        target,
        callback_url,
        origin: Origin::Admin,
        version: None,
        property: new.property,
        document_id: new.document_id,
    };
    state.events.add(subscription.clone()).map_err(store_error)?;
    let mut view = subscription.view();
    if let (Some(secret), Some(target)) =
        (secret, view.get_mut("target").and_then(Value::as_object_mut))
    {
        // Shown this once; the webhook checks `_secret` against it.
        target.insert("secret".into(), json!(secret));
    }
    Ok((StatusCode::CREATED, Json(view)))
}

async fn delete(
    State(state): State<AdminContext>,
    Path((space, name)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    match state.events.get(&space, &name) {
        Some(found) if found.origin == Origin::Manifest => Err(AdminError::new(
            StatusCode::CONFLICT,
            "declared_in_function_toml",
            format!(
                "'{name}' comes from the function's function.toml; deploy a version without it"
            ),
        )),
        Some(_) => {
            state.events.remove(&space, &name).map_err(store_error)?;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event subscription '{name}' in space '{space}'"),
        )),
    }
}
