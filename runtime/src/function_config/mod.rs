//! Configuration values and secrets set through the admin API, per function, kept in sled and
//! applied to every invocation on top of the bundle's own `[config]` (and under a call's own
//! config). Secret values are never read back: the API shows their names only, and sled keeps
//! them sealed (see `sealed`). The operator's `[network] allow` for a function, when set,
//! replaces the bundle's and is kept in the same record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use wasmfn_host_apis::config::FunctionConfig;
use wasmfn_host_apis::outbound::NetworkAllowlist;
use wasmfn_host_apis::state::StateTree;

use crate::sealed::{open_failed, Sealer};

/// What the admin API set for one function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigOverrides {
    /// Each value replaces its key's whole value (any JSON).
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The outside hosts it may reach, replacing its `function.toml`'s `[network] allow`
    /// (`/admin/.../network`); none: the bundle's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Vec<String>>,
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
    tree: Option<StateTree>,
    sealer: Arc<Sealer>,
    cache: RwLock<HashMap<Key, Arc<ConfigOverrides>>>,
    /// The parsed `network` of the overrides that have one.
    networks: RwLock<HashMap<Key, Arc<NetworkAllowlist>>>,
}

fn tree_key(space: &str, name: &str) -> String {
    format!("{space}/{name}")
}

/// The record a secret override is sealed for.
fn secret_label(space: &str, name: &str, key: &str) -> String {
    format!("config/{space}/{name}/{key}")
}

impl ConfigStore {
    /// Loads the saved overrides from `tree`, opening their secrets with `sealer`; secrets kept
    /// in plain text or under the previous key are sealed again.
    pub fn open(tree: StateTree, sealer: Arc<Sealer>) -> Result<Self> {
        let store = Self {
            tree: Some(tree),
            sealer,
            cache: RwLock::new(HashMap::new()),
            networks: RwLock::new(HashMap::new()),
        };
        for (space, name, overrides) in store.load_all()? {
            store.save(&space, &name, &overrides).context("sealing a secret again")?;
        }
        Ok(store)
    }

    /// Reads every saved override again into the cache (another node of the cluster may have
    /// changed any); returns those whose secrets should be sealed again.
    pub fn load_all(&self) -> Result<Vec<(String, String, ConfigOverrides)>> {
        let Some(tree) = &self.tree else { return Ok(Vec::new()) };
        let (mut cache, mut networks, mut stale) = (HashMap::new(), HashMap::new(), Vec::new());
        for entry in tree.iter() {
            let (key, value) = entry.context("reading saved function configuration")?;
            let Some((key, overrides, old)) = self.read(&key, &value)? else { continue };
            if let Some(network) = parse_network(&overrides)? {
                networks.insert(key.clone(), network);
            }
            if old {
                stale.push((key.0.clone(), key.1.clone(), overrides.clone()));
            }
            cache.insert(key, Arc::new(overrides));
        }
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        *self.networks.write().unwrap_or_else(|e| e.into_inner()) = networks;
        Ok(stale)
    }

    /// Reads one function's overrides again (`key` as saved, `<space>/<name>`), after another
    /// node of the cluster changed or removed them.
    pub fn reload(&self, key: &[u8]) -> Result<()> {
        let Some(tree) = &self.tree else { return Ok(()) };
        let text = String::from_utf8_lossy(key);
        let Some((space, name)) = text.split_once('/') else { return Ok(()) };
        let cache_key = (space.to_string(), name.to_string());
        let read = match tree.get(key).context("reading saved function configuration")? {
            Some(value) => self.read(key, &value)?,
            None => None,
        };
        let mut networks = self.networks.write().unwrap_or_else(|e| e.into_inner());
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Some((_, overrides, _)) => {
                match parse_network(&overrides)? {
                    Some(network) => networks.insert(cache_key.clone(), network),
                    None => networks.remove(&cache_key),
                };
                cache.insert(cache_key, Arc::new(overrides));
            }
            None => {
                networks.remove(&cache_key);
                cache.remove(&cache_key);
            }
        }
        Ok(())
    }

    /// A saved record, its secrets opened, and whether they were sealed the old way.
    fn read(&self, key: &[u8], value: &[u8]) -> Result<Option<(Key, ConfigOverrides, bool)>> {
        let key = String::from_utf8_lossy(key).into_owned();
        let Some((space, name)) = key.split_once('/') else { return Ok(None) };
        let mut overrides: ConfigOverrides = serde_json::from_slice(value)
            .with_context(|| format!("saved configuration of {key} is unreadable"))?;
        let mut old = false;
        for (secret_key, value) in overrides.secrets.iter_mut() {
            let label = secret_label(space, name, secret_key);
            let (plain, was_old) = self.sealer.unseal_text(&label, value).map_err(|e| {
                let record =
                    format!("secret '{secret_key}' of function '{name}' in space '{space}'");
                open_failed(&record, &e)
            })?;
            *value = plain;
            old |= was_old;
        }
        Ok(Some(((space.to_string(), name.to_string()), overrides, old)))
    }

    /// Writes a function's overrides, their secrets sealed.
    fn save(&self, space: &str, name: &str, overrides: &ConfigOverrides) -> Result<()> {
        let Some(tree) = &self.tree else { return Ok(()) };
        let mut stored = overrides.clone();
        for (key, value) in stored.secrets.iter_mut() {
            *value = self
                .sealer
                .seal(&secret_label(space, name, key), value.as_bytes())
                .map_err(|e| anyhow::anyhow!("sealing secret '{key}': {e}"))?;
        }
        let bytes = serde_json::to_vec(&stored)?;
        tree.insert(tree_key(space, name), &bytes).context("saving function configuration")?;
        tree.flush().context("saving function configuration")?;
        Ok(())
    }

    pub fn get(&self, space: &str, name: &str) -> Option<Arc<ConfigOverrides>> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(&(space.to_string(), name.to_string())).cloned()
    }

    /// Replaces the function's overrides (saved to disk before returning); the error says
    /// which `network` entry is invalid.
    pub fn set(&self, space: &str, name: &str, overrides: ConfigOverrides) -> Result<()> {
        let network = parse_network(&overrides)?;
        self.save(space, name, &overrides)?;
        let key = (space.to_string(), name.to_string());
        let mut networks = self.networks.write().unwrap_or_else(|e| e.into_inner());
        match network {
            Some(network) => networks.insert(key.clone(), network),
            None => networks.remove(&key),
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, Arc::new(overrides));
        Ok(())
    }

    /// The operator's `[network] allow` for the function, parsed.
    pub fn network(&self, space: &str, name: &str) -> Option<Arc<NetworkAllowlist>> {
        let networks = self.networks.read().unwrap_or_else(|e| e.into_inner());
        networks.get(&(space.to_string(), name.to_string())).cloned()
    }

    /// Removes the function's overrides; true when there were some.
    pub fn remove(&self, space: &str, name: &str) -> Result<bool> {
        if let Some(tree) = &self.tree {
            tree.remove(tree_key(space, name)).context("removing function configuration")?;
            tree.flush().context("removing function configuration")?;
        }
        let key = (space.to_string(), name.to_string());
        self.networks.write().unwrap_or_else(|e| e.into_inner()).remove(&key);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        Ok(cache.remove(&key).is_some())
    }
}

/// The overrides' `network`, parsed; an error names the invalid entry.
fn parse_network(overrides: &ConfigOverrides) -> Result<Option<Arc<NetworkAllowlist>>> {
    match &overrides.network {
        Some(entries) => {
            let parsed = NetworkAllowlist::parse(entries).map_err(anyhow::Error::msg)?;
            Ok(Some(Arc::new(parsed)))
        }
        None => Ok(None),
    }
}

impl wasmfn_core::invoker::ConfigSource for ConfigStore {
    fn config(&self, space: &str, function: &str, bundle: &FunctionConfig) -> FunctionConfig {
        match self.get(space, function) {
            Some(overrides) => overrides.apply(bundle),
            None => bundle.clone(),
        }
    }

    fn network(&self, space: &str, function: &str) -> Option<Arc<NetworkAllowlist>> {
        ConfigStore::network(self, space, function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmfn_host_apis::state::sled_tree;

    #[test]
    fn overrides_are_saved_reloaded_and_applied_with_secret_marks() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sealer = Arc::new(Sealer::ephemeral());
        let store =
            ConfigStore::open(sled_tree::open(&db, "function_config").unwrap(), sealer.clone())
                .unwrap();
        let overrides = ConfigOverrides {
            values: BTreeMap::from([("region".into(), serde_json::json!({"name": "us"}))]),
            secrets: BTreeMap::from([("token".into(), "hush-hush".into())]),
            network: Some(vec!["https://api.example.com".into()]),
        };
        store.set("space", "fn", overrides.clone()).unwrap();
        let raw =
            sled_tree::open(&db, "function_config").unwrap().get("space/fn").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("hush-hush"), "sealed on disk");
        let reopened =
            ConfigStore::open(sled_tree::open(&db, "function_config").unwrap(), sealer.clone())
                .unwrap();
        assert_eq!(reopened.get("space", "fn").as_deref(), Some(&overrides));
        let error = ConfigStore::open(
            sled_tree::open(&db, "function_config").unwrap(),
            Arc::new(Sealer::ephemeral()),
        )
        .unwrap_err();
        let shown = format!("{error:#}");
        assert!(shown.contains("secret 'token' of function 'fn' in space 'space'"), "{shown}");
        assert!(!shown.contains("hush-hush"), "{shown}");
        let base = FunctionConfig::new(BTreeMap::from([("region".into(), "eu".into())]));
        let applied = overrides.apply(&base);
        assert_eq!(applied.get("region"), Some(&serde_json::json!({"name": "us"})));
        assert_eq!(applied.get("token"), Some(&serde_json::json!("hush-hush")));
        assert!(applied.is_secret("token"));
        let network = reopened.network("space", "fn").expect("the network survives a reopen");
        assert_eq!(network.entries(), ["https://api.example.com"]);
        let bad = ConfigOverrides { network: Some(vec!["ftp://x".into()]), ..overrides.clone() };
        let error = reopened.set("space", "fn", bad).unwrap_err();
        assert!(format!("{error}").contains("network.allow entry"), "{error}");
        assert!(reopened.network("space", "fn").is_some(), "a refused change keeps the old one");
        assert!(reopened.remove("space", "fn").unwrap());
        assert!(reopened.get("space", "fn").is_none());
    }
}
