//! Event subscriptions: which events of a space go to which function or webhook. Those from a
//! function's `function.toml` (`[[events]]`) live while the function is loaded; those created
//! through the admin API are kept in sled (with their webhook secret sealed, see `sealed`) and
//! restored at start.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Event, EventKind};
use crate::sealed::{open_failed, Sealer};
use crate::triggers::mqtt::CallbackUrl;

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
}

impl Subscription {
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
    tree: sled::Tree,
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

impl SubscriptionStore {
    /// Loads the admin-created subscriptions saved in `tree`, opening their webhook secrets
    /// with `sealer`; secrets kept in plain text or under the previous key are sealed again.
    pub fn open(tree: sled::Tree, sealer: Arc<Sealer>) -> Result<Self> {
        let mut all = Vec::new();
        let mut stale = Vec::new();
        for entry in tree.iter() {
            let (_, value) = entry.context("reading saved event subscriptions")?;
            let mut subscription: Subscription = serde_json::from_slice(&value)
                .context("a saved event subscription is unreadable")?;
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
        let store = Self { tree, sealer, all: RwLock::new(all) };
        for subscription in &stale {
            store.save(subscription).context("sealing a webhook secret again")?;
        }
        Ok(store)
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
        all.retain(|s| {
            !(s.origin == Origin::Manifest
                && s.space == space
                && matches!(&s.target, Target::Function { function: f, .. } if f == function))
        });
    }
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
        let store = SubscriptionStore::open(db.open_tree("subs").unwrap(), sealer.clone()).unwrap();
        store.add(subscription("one", &[EventKind::StorageInsert])).unwrap();
        let again = store.add(subscription("one", &[EventKind::StorageDelete]));
        assert!(matches!(again, Err(SubscriptionError::Exists { .. })));
        assert!(matches!(
            store.add(subscription("Bad Name", &[EventKind::StorageInsert])),
            Err(SubscriptionError::Invalid(_))
        ));
        assert!(matches!(store.add(subscription("none", &[])), Err(SubscriptionError::Invalid(_))));
        let reopened =
            SubscriptionStore::open(db.open_tree("subs").unwrap(), sealer.clone()).unwrap();
        assert_eq!(reopened.list(Some("s")).len(), 1);
        assert!(reopened.remove("s", "one").unwrap().is_some());
        assert!(SubscriptionStore::open(db.open_tree("subs").unwrap(), sealer.clone())
            .unwrap()
            .list(None)
            .is_empty());
    }

    #[test]
    fn webhook_secrets_are_saved_sealed_and_plain_ones_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sealer = Arc::new(Sealer::ephemeral());
        let tree = db.open_tree("subs").unwrap();
        let mut hook = subscription("hook", &[EventKind::StorageInsert]);
        let url = CallbackUrl("http://127.0.0.1:9/x".parse().unwrap());
        hook.target = Target::Webhook { url, secret: "shh-very-secret".into() };
        let raw =
            |tree: &sled::Tree| String::from_utf8(tree.get("s/hook").unwrap().unwrap().to_vec());
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

    #[test]
    fn webhook_secrets_are_not_shown() {
        let mut hook = subscription("hook", &[EventKind::StorageInsert]);
        let url = CallbackUrl("http://127.0.0.1:9/x".parse().unwrap());
        hook.target = Target::Webhook { url, secret: "shh-very-secret".into() };
        let shown = hook.view().to_string();
        assert!(!shown.contains("shh-very-secret") && shown.contains("[redacted]"), "{shown}");
    }
}
