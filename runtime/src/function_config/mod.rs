//! Configuration values and secrets set through the admin API, per function, kept in sled and
//! applied to every invocation on top of the bundle's own `[config]` (and under a call's own
//! config). Secret values are never read back: the API shows their names only.

pub mod api;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use wasmfn_host_apis::config::FunctionConfig;

/// What the admin API set for one function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigOverrides {
    /// Each value replaces its key's whole value (any JSON).
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl ConfigOverrides {
    /// `config` with these values and secrets applied.
    pub fn apply(&self, config: &FunctionConfig) -> FunctionConfig {
        config.with_overrides(&self.values).with_secrets(self.secrets.clone())
    }
}

type Key = (String, String);

/// The saved overrides, cached in memory.
#[derive(Debug)]
pub struct ConfigStore {
    tree: Option<sled::Tree>,
    cache: RwLock<HashMap<Key, Arc<ConfigOverrides>>>,
}

fn tree_key(space: &str, name: &str) -> String {
    format!("{space}/{name}")
}

impl ConfigStore {
    /// Loads the saved overrides from `tree`.
    pub fn open(tree: sled::Tree) -> Result<Self> {
        let mut cache = HashMap::new();
        for entry in tree.iter() {
            let (key, value) = entry.context("reading saved function configuration")?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let Some((space, name)) = key.split_once('/') else { continue };
            let overrides: ConfigOverrides = serde_json::from_slice(&value)
                .with_context(|| format!("saved configuration of {key} is unreadable"))?;
            cache.insert((space.to_string(), name.to_string()), Arc::new(overrides));
        }
        Ok(Self { tree: Some(tree), cache: RwLock::new(cache) })
    }

    pub fn get(&self, space: &str, name: &str) -> Option<Arc<ConfigOverrides>> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(&(space.to_string(), name.to_string())).cloned()
    }

    /// Replaces the function's overrides (saved to disk before returning).
    pub fn set(&self, space: &str, name: &str, overrides: ConfigOverrides) -> Result<()> {
        if let Some(tree) = &self.tree {
            let bytes = serde_json::to_vec(&overrides)?;
            tree.insert(tree_key(space, name), bytes).context("saving function configuration")?;
            tree.flush().context("saving function configuration")?;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.insert((space.to_string(), name.to_string()), Arc::new(overrides));
        Ok(())
    }

    /// Removes the function's overrides; true when there were some.
    pub fn remove(&self, space: &str, name: &str) -> Result<bool> {
        if let Some(tree) = &self.tree {
            tree.remove(tree_key(space, name)).context("removing function configuration")?;
            tree.flush().context("removing function configuration")?;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        Ok(cache.remove(&(space.to_string(), name.to_string())).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_saved_reloaded_and_applied_with_secret_marks() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = ConfigStore::open(db.open_tree("function_config").unwrap()).unwrap();
        let overrides = ConfigOverrides {
            values: BTreeMap::from([("region".into(), serde_json::json!({"name": "us"}))]),
            secrets: BTreeMap::from([("token".into(), "hush-hush".into())]),
        };
        store.set("space", "fn", overrides.clone()).unwrap();
        let reopened = ConfigStore::open(db.open_tree("function_config").unwrap()).unwrap();
        assert_eq!(reopened.get("space", "fn").as_deref(), Some(&overrides));
        let base = FunctionConfig::new(BTreeMap::from([("region".into(), "eu".into())]));
        let applied = overrides.apply(&base);
        assert_eq!(applied.get("region"), Some(&serde_json::json!({"name": "us"})));
        assert_eq!(applied.get("token"), Some(&serde_json::json!("hush-hush")));
        assert!(applied.is_secret("token"));
        assert!(reopened.remove("space", "fn").unwrap());
        assert!(reopened.get("space", "fn").is_none());
    }
}
