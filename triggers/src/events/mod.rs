//! Event triggers: the runtime's event bus. The document store and object storage report every
//! committed write; the bus turns each into an [`Event`] and hands it to every matching
//! subscription: a function (run asynchronously in a fresh instance, through the durable async
//! queue) or an external webhook (POSTed by the delivery component with the subscription's
//! `_secret` and a short-lived `_function_session` token that authorises calls back into the
//! space's documents and objects).

pub mod session;
pub mod subscriptions;

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use wasmfn_host_apis::docstore::{ChangeEvent, ChangeKind, ChangeListener};
use wasmfn_host_apis::objects::{ObjectChange, ObjectEvent, ObjectListener};

use crate::async_invoke::jobs::{Job, JobRequest, JobState};
use crate::async_invoke::AsyncJobs;
use crate::delivery::{Deliverer, Delivery};
pub use crate::manifest::event_kind::EventKind;
pub use session::{SessionClaims, SessionError, Sessions};
pub use subscriptions::{Subscription, SubscriptionStore, Target};

/// One event, as functions and webhooks receive it (plus `_secret`/`_function_session` for
/// webhooks).
#[derive(Clone, Debug)]
pub struct Event {
    pub id: uuid::Uuid,
    pub kind: EventKind,
    pub space: String,
    /// The document database (company or `_space`), for storage events.
    pub database: Option<String>,
    /// The collection, for storage events.
    pub collection: Option<String>,
    /// The object key, for object events.
    pub key: Option<String>,
    /// Event-specific data.
    pub data: Map<String, Value>,
    pub occurred_at: String,
    /// The document before a storage write (not delivered: property subscriptions compare
    /// with it).
    pub previous: Option<Map<String, Value>>,
}

impl Event {
    fn new(kind: EventKind, space: &str, data: Map<String, Value>) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            kind,
            space: space.to_string(),
            database: None,
            collection: None,
            key: None,
            data,
            occurred_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            previous: None,
        }
    }

    /// A document store write. Data as the platform names it: `row_id`, `container` (the
    /// collection), `bucket` (the database), `dataset` (the space), and the document after the
    /// write (none for deletes).
    pub fn from_change(change: &ChangeEvent) -> Self {
        let kind = match change.kind {
            ChangeKind::Insert => EventKind::StorageInsert,
            ChangeKind::Update => EventKind::StorageUpdate,
            ChangeKind::Delete => EventKind::StorageDelete,
        };
        let at = &change.collection;
        let mut data = Map::new();
        data.insert("row_id".into(), change.id.clone());
        data.insert("container".into(), json!(at.collection));
        data.insert("bucket".into(), json!(at.database));
        data.insert("dataset".into(), json!(at.space));
        if let Some(document) = &change.document {
            data.insert("document".into(), Value::Object(document.clone()));
        }
        let mut event = Self::new(kind, &at.space, data);
        event.previous = change.previous.clone();
        event.database = Some(at.database.clone());
        event.collection = Some(at.collection.clone());
        event
    }

    /// An object put or delete: `key`, and `size` and `content_type` for puts.
    pub fn from_object(change: &ObjectEvent) -> Self {
        let kind = match change.change {
            ObjectChange::Put => EventKind::ObjectPut,
            ObjectChange::Delete => EventKind::ObjectDelete,
        };
        let mut data = Map::new();
        data.insert("key".into(), json!(change.key));
        if let Some(info) = &change.info {
            data.insert("size".into(), json!(info.size));
            data.insert("content_type".into(), json!(info.content_type));
        }
        let mut event = Self::new(kind, &change.space, data);
        event.key = Some(change.key.clone());
        event
    }

    /// An operator account signed in to the console (`user_id`, `email`), for a space the
    /// account has a role in.
    pub fn auth_login(space: &str, user_id: &str, email: &str) -> Self {
        let mut data = Map::new();
        data.insert("user_id".into(), json!(user_id));
        data.insert("email".into(), json!(email));
        Self::new(EventKind::AuthLogin, space, data)
    }

    /// An operator account registered with an invitation (`user_id`, `email`, `lang`), for a
    /// space the account has a role in.
    pub fn auth_register(space: &str, user_id: &str, email: &str, lang: &str) -> Self {
        let mut data = Map::new();
        data.insert("user_id".into(), json!(user_id));
        data.insert("email".into(), json!(email));
        data.insert("lang".into(), json!(lang));
        Self::new(EventKind::AuthRegister, space, data)
    }

    /// The JSON body: `id`, `event_id`, `event`, `space`, `occurred_at` and `data`.
    pub fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        body.insert("event_id".into(), json!(self.kind.id()));
        body.insert("event".into(), json!(self.kind.name()));
        body.insert("space".into(), json!(self.space));
        body.insert("occurred_at".into(), json!(self.occurred_at));
        body.insert("data".into(), Value::Object(self.data.clone()));
        body
    }
}

/// Routes events to the subscriptions that want them.
pub struct EventBus {
    subscriptions: Arc<SubscriptionStore>,
    jobs: Arc<AsyncJobs>,
    deliverer: Arc<Deliverer>,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

impl EventBus {
    pub fn new(
        subscriptions: Arc<SubscriptionStore>,
        jobs: Arc<AsyncJobs>,
        deliverer: Arc<Deliverer>,
        sessions: Arc<Sessions>,
    ) -> Arc<Self> {
        Arc::new(Self { subscriptions, jobs, deliverer, sessions })
    }

    /// Hands `event` to every matching subscription. Returns at once: functions are queued
    /// (durably) and webhooks delivered in the background.
    pub fn publish(&self, event: Event) {
        for subscription in self.subscriptions.matching(&event) {
            // A property subscription takes only writes that change its field.
            let Some(event) = subscription.accept(&event) else { continue };
            let event = event.as_ref();
            match &subscription.target {
                Target::Function { function, entry } => {
                    let job = event_job(event, &subscription, function, entry.clone());
                    let jobs = self.jobs.clone();
                    let name = subscription.name.clone();
                    tokio::spawn(async move {
                        if let Err(error) = jobs.accept(job).await {
                            tracing::error!(subscription = %name, %error, "event not queued");
                        }
                    });
                }
                Target::Webhook { url, secret } => {
                    let delivery = self.webhook(event, &subscription, &url.0, secret);
                    self.deliverer.submit(delivery);
                }
            }
        }
    }

    fn webhook(
        &self,
        event: &Event,
        subscription: &Subscription,
        url: &url::Url,
        secret: &str,
    ) -> Delivery {
        let mut body = event.body();
        body.insert("_secret".into(), json!(secret));
        let database =
            event.database.clone().unwrap_or_else(|| crate::capabilities::SPACE_DATABASE.into());
        let token = self.sessions.issue(&event.space, &database, &subscription.name);
        body.insert("_function_session".into(), json!(token));
        Delivery {
            source: format!("event:{}/{}", subscription.space, subscription.name),
            invocation_id: event.id,
            url: url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-event-id".into(), event.id.to_string()),
                ("x-event".into(), event.kind.name().into()),
                (crate::delivery::DEPTH_HEADER.into(), "1".into()),
            ],
            body: bytes::Bytes::from(Value::Object(body).to_string()),
        }
    }
}

/// The async job that runs a function for an event: `POST /` with the event as its JSON body
/// (so its fields are the function's keyword arguments).
fn event_job(
    event: &Event,
    subscription: &Subscription,
    function: &str,
    entry: Option<String>,
) -> Job {
    let body = event.body();
    Job {
        id: uuid::Uuid::new_v4(),
        space: subscription.space.clone(),
        function: function.to_string(),
        entry,
        state: JobState::Queued,
        accepted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        started_at: None,
        finished_at: None,
        attempts: 0,
        callback_url: subscription.callback_url.as_ref().map(|u| u.0.to_string()),
        callback: None,
        callback_error: None,
        request: JobRequest {
            method: "POST".into(),
            path: "/".into(),
            query: Vec::new(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-event".into(), event.kind.name().into()),
                ("x-event-subscription".into(), subscription.name.clone()),
            ],
            body: Value::Object(body.clone()).to_string().into_bytes(),
            arguments: body,
        },
        result: None,
        caller: Default::default(),
        trigger: Some("event".into()),
        stored_bytes: 0,
    }
}

/// The bus as the document store and object storage hold it: weakly, because the bus reaches
/// back (through the async queue and the invoker) to the capabilities that hold the stores.
/// The node owns the bus; once it is gone, writes are no longer published.
pub struct BusListener(std::sync::Weak<EventBus>);

impl EventBus {
    pub fn listener(self: &Arc<Self>) -> Arc<BusListener> {
        Arc::new(BusListener(Arc::downgrade(self)))
    }
}

impl ChangeListener for BusListener {
    fn changed(&self, change: &ChangeEvent) {
        if let Some(bus) = self.0.upgrade() {
            bus.publish(Event::from_change(change));
        }
    }
}

impl ObjectListener for BusListener {
    fn changed(&self, change: &ObjectEvent) {
        if let Some(bus) = self.0.upgrade() {
            bus.publish(Event::from_object(change));
        }
    }
}
