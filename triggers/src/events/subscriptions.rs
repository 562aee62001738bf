//! Event subscriptions: which events of a space go to which function or webhook. Those from a
//! function's `function.toml` (`[[events]]`) live while the function is loaded; those created
//! through the admin API are kept in sled (with their webhook secret sealed, see `sealed`) and
//! restored at start.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Event, EventKind};
use crate::lifecycle::TriggerKind;
use crate::mqtt::CallbackUrl;
use crate::registry::FunctionVersion;
use crate::sealed::{open_failed, Sealer};
use wasmfn_host_apis::state::StateTree;

/// Where a subscription sends its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// Runs the function of the subscription's space.
    Function {
        function: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<String>,
    },
    /// POSTs the event to an external URL with the shared secret.
    Webhook { url: CallbackUrl, secret: String },
}

/// Where a subscription came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Manifest,
    Admin,
}

/// One subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub space: String,
    pub name: String,
    pub events: Vec<EventKind>,
    /// Only storage events of this collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Only object events of keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    pub target: Target,
    /// Each outcome of a function target is POSTed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<CallbackUrl>,
    pub origin: Origin,
    /// The version of the function that declared it (`function.toml` subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Only writes that change this field (dotted path) of a document of `collection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// With `property`: only the document with this `_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl Subscription {
    /// The event as this subscription delivers it, or `None` when it does not want it: for a
    /// property subscription, only a write that changes the property's value, with `property`,
    /// `old_value` and `new_value` added to its data (a missing field counts as `null`).
    pub fn accept<'e>(&self, event: &'e Event) -> Option<Cow<'e, Event>> {
        if !self.matches(event) {
            return None;
        }
        let Some(property) = &self.property else { return Some(Cow::Borrowed(event)) };
        if let Some(wanted) = &self.document_id {
            if event.data.get("row_id").map(id_text).as_deref() != Some(wanted.as_str()) {
                return None;
            }
        }
        let at = |document: Option<&Map<String, Value>>| {
            document.and_then(|d| field(d, property)).cloned().unwrap_or(Value::Null)
        };
        let current = match event.data.get("document") {
            Some(Value::Object(document)) => Some(document),
            _ => None,
        };
        let (old, new) = (at(event.previous.as_ref()), at(current));
        if old == new {
            return None;
        }
        let mut changed = event.clone();
        changed.data.insert("property".into(), Value::String(property.clone()));
        changed.data.insert("old_value".into(), old);
        changed.data.insert("new_value".into(), new);
        Some(Cow::Owned(changed))
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.space == event.space
            && self.events.contains(&event.kind)
            && self
                .collection
                .as_ref()
                .is_none_or(|c| event.collection.as_ref() == Some(c) || !event.kind.is_storage())
            && self.key_prefix.as_ref().is_none_or(|p| {
                event.key.as_ref().is_some_and(|k| k.starts_with(p.as_str()))
                    || event.kind.is_storage()
            })
    }

    /// What the admin API shows: everything but the webhook secret.
    pub fn view(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(target) = value.get_mut("target").and_then(|t| t.as_object_mut()) {
            if target.remove("secret").is_some() {
                target
                    .insert("secret".into(), serde_json::json!(wasmfn_host_apis::config::REDACTED));
            }
        }
        value
    }
}

/// Why a subscription cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("an event subscription named '{name}' already exists in space '{space}'")]
    Exists { space: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("saving the subscription failed: {0}")]
    Store(String),
}

/// Every subscription of the node.
#[derive(Debug)]
pub struct SubscriptionStore {
    tree: StateTree,
    sealer: Arc<Sealer>,
    all: RwLock<Vec<Subscription>>,
}

fn key(space: &str, name: &str) -> String {
    format!("{space}/{name}")
}

/// The record a webhook secret is sealed for.
fn secret_label(space: &str, name: &str) -> String {
    format!("webhook/{space}/{name}")
}

/// The subscriptions saved in `tree`, their webhook secrets opened, and those of them sealed
/// the old way (to seal again).
fn read_saved(tree: &StateTree, sealer: &Sealer) -> Result<(Vec<Subscription>, Vec<Subscription>)> {
    let mut all = Vec::new();
    let mut stale = Vec::new();
    for entry in tree.iter() {
        let (_, value) = entry.context("reading saved event subscriptions")?;
        let mut subscription: Subscription =
            serde_json::from_slice(&value).context("a saved event subscription is unreadable")?;
        if let Target::Webhook { secret, .. } = &mut subscription.target {
            let label = secret_label(&subscription.space, &subscription.name);
            let (plain, old) = sealer.unseal_text(&label, secret).map_err(|e| {
                let record = format!(
                    "webhook secret of event subscription '{}' in space '{}'",
                    subscription.name, subscription.space
                );
                open_failed(&record, &e)
            })?;
            *secret = plain;
            if old {
                stale.push(subscription.clone());
            }
        }
        all.push(subscription);
    }
    Ok((all, stale))
}

impl SubscriptionStore {
    /// Loads the admin-created subscriptions saved in `tree`, opening their webhook secrets
    /// with `sealer`; secrets kept in plain text or under the previous key are sealed again.
    pub fn open(tree: StateTree, sealer: Arc<Sealer>) -> Result<Self> {
        let (all, stale) = read_saved(&tree, &sealer)?;
        let store = Self { tree, sealer, all: RwLock::new(all) };
        for subscription in &stale {
            store.save(subscription).context("sealing a webhook secret again")?;
        }
        Ok(store)
    }

    /// Reads the admin-created subscriptions again (another node of the cluster may have
    /// added or removed some); those functions declare stay as they are.
    pub fn reload(&self) -> Result<()> {
        let (saved, _) = read_saved(&self.tree, &self.sealer)?;
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|s| s.origin != Origin::Admin);
        all.extend(saved);
        Ok(())
    }

    /// Writes an admin subscription, its webhook secret sealed.
    fn save(&self, subscription: &Subscription) -> Result<(), SubscriptionError> {
        let mut stored = subscription.clone();
        if let Target::Webhook { secret, .. } = &mut stored.target {
            let label = secret_label(&subscription.space, &subscription.name);
            *secret = self
                .sealer
                .seal(&label, secret.as_bytes())
                .map_err(|e| SubscriptionError::Store(e.to_string()))?;
        }
        let value =
            serde_json::to_vec(&stored).map_err(|e| SubscriptionError::Store(e.to_string()))?;
        self.tree
            .insert(key(&subscription.space, &subscription.name), value)
            .and_then(|_| self.tree.flush())
            .map_err(|e| SubscriptionError::Store(e.to_string()))?;
        Ok(())
    }

    pub fn matching(&self, event: &Event) -> Vec<Subscription> {
        let all = self.all.read().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|s| s.matches(event)).cloned().collect()
    }

    pub fn list(&self, space: Option<&str>) -> Vec<Subscription> {
        let all = self.all.read().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|s| space.is_none_or(|sp| s.space == sp)).cloned().collect()
    }

    pub fn get(&self, space: &str, name: &str) -> Option<Subscription> {
        self.list(Some(space)).into_iter().find(|s| s.name == name)
    }

    /// Adds a subscription; admin ones are saved to disk first.
    pub fn add(&self, subscription: Subscription) -> Result<(), SubscriptionError> {
        crate::names::validate_name(&subscription.name).map_err(|e| {
            SubscriptionError::Invalid(e.replace("function name", "subscription name"))
        })?;
        if subscription.events.is_empty() {
            return Err(SubscriptionError::Invalid(
                "a subscription needs at least one event".into(),
            ));
        }
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|s| s.space == subscription.space && s.name == subscription.name) {
            return Err(SubscriptionError::Exists {
                space: subscription.space,
                name: subscription.name,
            });
        }
        if subscription.origin == Origin::Admin {
            self.save(&subscription)?;
        }
        all.push(subscription);
        Ok(())
    }

    /// Removes a subscription; returns it when there was one.
    pub fn remove(
        &self,
        space: &str,
        name: &str,
    ) -> Result<Option<Subscription>, SubscriptionError> {
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        let Some(index) = all.iter().position(|s| s.space == space && s.name == name) else {
            return Ok(None);
        };
        if all[index].origin == Origin::Admin {
            self.tree
                .remove(key(space, name))
                .and_then(|_| self.tree.flush())
                .map_err(|e| SubscriptionError::Store(e.to_string()))?;
        }
        Ok(Some(all.remove(index)))
    }

    /// Drops the `function.toml` subscriptions of a function (when another version replaces it).
    pub fn remove_manifest(&self, space: &str, function: &str) {
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|s| !(s.space == space && declared_by(s, function)));
    }
}

/// The `[[events]]` triggers of function versions.
impl TriggerKind for SubscriptionStore {
    fn kind(&self) -> &'static str {
        "events"
    }

    fn check(&self, version: &FunctionVersion) -> Result<(), String> {
        let subscriptions = declared(version)?;
        let all = self.all.read().unwrap_or_else(|e| e.into_inner());
        for subscription in &subscriptions {
            let holder = all
                .iter()
                .find(|s| s.space == subscription.space && s.name == subscription.name)
                .filter(|s| !declared_by(s, &version.name));
            if let Some(holder) = holder {
                let holder = match (&holder.origin, &holder.target) {
                    (Origin::Manifest, Target::Function { function, .. }) => {
                        format!("a trigger of function '{function}'")
                    }
                    _ => "an admin-created subscription".to_string(),
                };
                return Err(format!(
                    "event trigger '{}': the name is taken in space '{}' by {holder}",
                    subscription.name, subscription.space
                ));
            }
        }
        Ok(())
    }

    fn start(&self, version: &Arc<FunctionVersion>) {
        self.remove_manifest(&version.space, &version.name);
        // `check` accepted them before the version became active.
        let subscriptions = declared(version).unwrap_or_default();
        for subscription in subscriptions {
            let name = subscription.name.clone();
            match self.add(subscription) {
                Ok(()) => tracing::info!(space = %version.space, function = %version.name,
                    version = %version.version, event_trigger = %name, "event trigger started"),
                Err(error) => tracing::error!(space = %version.space, function = %version.name,
                    event_trigger = %name, %error, "event trigger could not start"),
            }
        }
    }

    fn stop(&self, space: &str, function: &str) {
        self.remove_manifest(space, function);
    }

    fn list(&self, space: Option<&str>) -> Vec<serde_json::Value> {
        self.list(space).iter().map(Subscription::view).collect()
    }

    fn shutdown(&self) -> futures::future::BoxFuture<'_, ()> {
        // Subscriptions hold no tasks: events in flight are in the async queue.
        Box::pin(async {})
    }
}

/// The value at a dotted path of a document; digits index arrays.
fn field<'d>(document: &'d Map<String, Value>, path: &str) -> Option<&'d Value> {
    let mut parts = path.split('.');
    let mut value = document.get(parts.next()?)?;
    for part in parts {
        value = match value {
            Value::Object(members) => members.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A document `_id` as `document_id` names it: a string as it is, an ObjectId by its hex.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        Value::Object(members) => match members.get("$oid") {
            Some(Value::String(hex)) => hex.clone(),
            _ => id.to_string(),
        },
        other => other.to_string(),
    }
}

fn declared_by(subscription: &Subscription, function: &str) -> bool {
    subscription.origin == Origin::Manifest
        && matches!(&subscription.target, Target::Function { function: f, .. } if f == function)
}

/// The subscriptions `version` declares, each checked to name an entry it exposes.
fn declared(version: &FunctionVersion) -> Result<Vec<Subscription>, String> {
    let mut subscriptions = Vec::new();
    for trigger in &version.triggers.events {
        let context = |e: String| format!("event trigger '{}': {e}", trigger.name);
        version.resolve_entry(trigger.entry.as_deref()).map_err(|e| context(e.to_string()))?;
        let events = trigger.event_names();
        let events = events.iter().map(|e| EventKind::parse(e));
        subscriptions.push(Subscription {
            space: version.space.clone(),
            name: trigger.name.clone(),
            events: events.collect::<Result<Vec<_>, _>>().map_err(context)?,
            collection: trigger.collection.clone(),
            key_prefix: trigger.key_prefix.clone(),
            target: Target::Function {
                function: version.name.clone(),
                entry: trigger.entry.clone(),
            },
            callback_url: trigger.callback_url.clone(),
            origin: Origin::Manifest,
            version: Some(version.version.clone()),
            property: trigger.property.clone(),
            document_id: trigger.document_id.clone(),
        });
    }
    Ok(subscriptions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn subscription(name: &str, events: &[EventKind]) -> Subscription {
        Subscription {
            space: "s".into(),
            name: name.into(),
            events: events.to_vec(),
            collection: None,
            key_prefix: None,
            target: Target::Function { function: "f".into(), entry: None },
            callback_url: None,
            origin: Origin::Admin,
            version: None,
            property: None,
            document_id: None,
        }
    }

    fn event(kind: EventKind, space: &str, collection: Option<&str>, key: Option<&str>) -> Event {
        let mut event = Event::new(kind, space, Map::new());
        event.collection = collection.map(str::to_string);
        event.key = key.map(str::to_string);
        event
    }

    #[test]
    fn subscriptions_match_by_space_kind_collection_and_prefix() {
        let mut by_collection =
            subscription("a", &[EventKind::StorageInsert, EventKind::ObjectPut]);
        by_collection.collection = Some("orders".into());
        by_collection.key_prefix = Some("in/".into());
        assert!(by_collection.matches(&event(EventKind::StorageInsert, "s", Some("orders"), None)));
        assert!(!by_collection.matches(&event(EventKind::StorageInsert, "s", Some("other"), None)));
        assert!(!by_collection.matches(&event(
            EventKind::StorageInsert,
            "t",
            Some("orders"),
            None
        )));
        assert!(!by_collection.matches(&event(
            EventKind::StorageDelete,
            "s",
            Some("orders"),
            None
        )));
        assert!(by_collection.matches(&event(EventKind::ObjectPut, "s", None, Some("in/x"))));
        assert!(!by_collection.matches(&event(EventKind::ObjectPut, "s", None, Some("out/x"))));
    }

    #[test]
    fn admin_subscriptions_persist_and_names_are_unique_per_space() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sealer = Arc::new(Sealer::ephemeral());
        let store = SubscriptionStore::open(
            wasmfn_host_apis::state::sled_tree::open(&db, "subs").unwrap(),
            sealer.clone(),
        )
        .unwrap();
        store.add(subscription("one", &[EventKind::StorageInsert])).unwrap();
        let again = store.add(subscription("one", &[EventKind::StorageDelete]));
        assert!(matches!(again, Err(SubscriptionError::Exists { .. })));
        assert!(matches!(
            store.add(subscription("Bad Name", &[EventKind::StorageInsert])),
            Err(SubscriptionError::Invalid(_))
        ));
        assert!(matches!(store.add(subscription("none", &[])), Err(SubscriptionError::Invalid(_))));
        let reopened = SubscriptionStore::open(
            wasmfn_host_apis::state::sled_tree::open(&db, "subs").unwrap(),
            sealer.clone(),
        )
        .unwrap();
        assert_eq!(reopened.list(Some("s")).len(), 1);
        assert!(reopened.remove("s", "one").unwrap().is_some());
        assert!(SubscriptionStore::open(
            wasmfn_host_apis::state::sled_tree::open(&db, "subs").unwrap(),
            sealer.clone()
        )
        .unwrap()
        .list(None)
        .is_empty());
    }

    #[test]
    fn webhook_secrets_are_saved_sealed_and_plain_ones_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sealer = Arc::new(Sealer::ephemeral());
        let tree = wasmfn_host_apis::state::sled_tree::open(&db, "subs").unwrap();
        let mut hook = subscription("hook", &[EventKind::StorageInsert]);
        let url = CallbackUrl("http://127.0.0.1:9/x".parse().unwrap());
        hook.target = Target::Webhook { url, secret: "shh-very-secret".into() };
        let raw =
            |tree: &StateTree| String::from_utf8(tree.get("s/hook").unwrap().unwrap().to_vec());
        SubscriptionStore::open(tree.clone(), sealer.clone()).unwrap().add(hook.clone()).unwrap();
        let saved = raw(&tree).unwrap();
        assert!(!saved.contains("shh-very-secret") && saved.contains(crate::sealed::PREFIX));
        let reopened = SubscriptionStore::open(tree.clone(), sealer.clone()).unwrap();
        assert_eq!(reopened.get("s", "hook"), Some(hook.clone()));
        // As an older version kept it: in plain text.
        tree.insert("s/hook", serde_json::to_vec(&hook).unwrap()).unwrap();
        let migrated = SubscriptionStore::open(tree.clone(), sealer.clone()).unwrap();
        assert_eq!(migrated.get("s", "hook"), Some(hook));
        assert!(!raw(&tree).unwrap().contains("shh-very-secret"), "sealed at open");
        let error = SubscriptionStore::open(tree, Arc::new(Sealer::ephemeral())).unwrap_err();
        let shown = format!("{error:#}");
        assert!(shown.contains("webhook secret of event subscription 'hook'"), "{shown}");
        assert!(!shown.contains("shh-very-secret"), "{shown}");
    }

    /// A storage write of `{"_id": "d1", ...}` in collection `computers`, before and after.
    fn write(kind: EventKind, before: Option<Value>, after: Option<Value>) -> Event {
        let mut event = event(kind, "s", Some("computers"), None);
        event.data.insert("row_id".into(), serde_json::json!("d1"));
        if let Some(Value::Object(after)) = after {
            event.data.insert("document".into(), Value::Object(after));
        }
        event.previous = before.and_then(|b| b.as_object().cloned());
        event
    }

    fn memory_watch(document_id: Option<&str>) -> Subscription {
        let writes = [EventKind::StorageInsert, EventKind::StorageUpdate, EventKind::StorageDelete];
        let mut watch = subscription("memory", &writes);
        watch.collection = Some("computers".into());
        watch.property = Some("specs.memory".into());
        watch.document_id = document_id.map(str::to_string);
        watch
    }

    /// `(old_value, new_value)` of the event `subscription` delivers for `event`, if any.
    fn change(subscription: &Subscription, event: &Event) -> Option<(Value, Value)> {
        let delivered = subscription.accept(event)?;
        let data = &delivered.data;
        assert_eq!(data["property"], "specs.memory");
        Some((data["old_value"].clone(), data["new_value"].clone()))
    }

    #[test]
    fn property_subscriptions_take_only_writes_that_change_the_value() {
        use serde_json::json;
        let watch = memory_watch(Some("d1"));
        let doc = |memory: Value| json!({"_id": "d1", "specs": {"memory": memory, "cpu": 4}});
        let insert = write(EventKind::StorageInsert, None, Some(doc(json!(8))));
        assert_eq!(change(&watch, &insert), Some((Value::Null, json!(8))));
        // Another field changed, the watched one did not.
        let mut other = doc(json!(8));
        other["specs"]["cpu"] = json!(8);
        let same = write(EventKind::StorageUpdate, Some(doc(json!(8))), Some(other));
        assert_eq!(change(&watch, &same), None);
        let grown = write(EventKind::StorageUpdate, Some(doc(json!(8))), Some(doc(json!(16))));
        assert_eq!(change(&watch, &grown), Some((json!(8), json!(16))));
        // A type change is a change; a field that appears or goes away changes from/to null.
        let text = write(EventKind::StorageUpdate, Some(doc(json!(16))), Some(doc(json!("16"))));
        assert_eq!(change(&watch, &text), Some((json!(16), json!("16"))));
        let gone =
            write(EventKind::StorageUpdate, Some(doc(json!(16))), Some(json!({"_id": "d1"})));
        assert_eq!(change(&watch, &gone), Some((json!(16), Value::Null)));
        let deleted = write(EventKind::StorageDelete, Some(doc(json!(16))), None);
        assert_eq!(change(&watch, &deleted), Some((json!(16), Value::Null)));
        // Absent before and after: nothing changed.
        let absent = write(
            EventKind::StorageUpdate,
            Some(json!({"_id": "d1"})),
            Some(json!({"_id": "d1", "x": 1})),
        );
        assert_eq!(change(&watch, &absent), None);
        // Only the named document, only the collection.
        let mut elsewhere = grown.clone();
        elsewhere.data.insert("row_id".into(), json!("d2"));
        assert_eq!(change(&watch, &elsewhere), None);
        assert_eq!(change(&memory_watch(None), &elsewhere), Some((json!(8), json!(16))));
        let mut other_collection = grown.clone();
        other_collection.collection = Some("printers".into());
        assert_eq!(change(&watch, &other_collection), None);
        // ObjectIds are named by their hex.
        let mut oid = grown;
        oid.data.insert("row_id".into(), json!({"$oid": "65a1b2c3d4e5f60718293a4b"}));
        assert_eq!(
            change(&memory_watch(Some("65a1b2c3d4e5f60718293a4b")), &oid).map(|c| c.1),
            Some(json!(16))
        );
    }

    #[test]
    fn property_paths_index_arrays() {
        use serde_json::json;
        let document = json!({"disks": [{"size": 1}, {"size": 2}]});
        let document = document.as_object().unwrap();
        assert_eq!(field(document, "disks.1.size"), Some(&json!(2)));
        assert_eq!(field(document, "disks.2.size"), None);
        assert_eq!(field(document, "disks.x"), None);
        assert_eq!(field(document, "missing"), None);
    }

    #[test]
    fn webhook_secrets_are_not_shown() {
        let mut hook = subscription("hook", &[EventKind::StorageInsert]);
        let url = CallbackUrl("http://127.0.0.1:9/x".parse().unwrap());
        hook.target = Target::Webhook { url, secret: "shh-very-secret".into() };
        let shown = hook.view().to_string();
        assert!(!shown.contains("shh-very-secret") && shown.contains("[redacted]"), "{shown}");
    }
}
