//! Per-function configuration values: what a function reads as `context.config` and through the
//! `config` interface. Values come from the bundle's `function.toml` and, for calls in the
//! ixoncdkingress format, from the call itself (which override the function's own).

use std::collections::BTreeMap;
use std::sync::Arc;

/// The configuration one invocation sees; cheap to clone (shared values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionConfig {
    values: Arc<BTreeMap<String, String>>,
}

impl FunctionConfig {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self { values: Arc::new(values) }
    }

    /// This configuration with `overrides` applied on top (shares the values when there are none).
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Self {
        if overrides.is_empty() {
            return self.clone();
        }
        let mut values = (*self.values).clone();
        values.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::new(values)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> FunctionConfig {
        FunctionConfig::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn overrides_win_and_the_original_is_untouched() {
        let base = config(&[("region", "eu"), ("tier", "free")]);
        let call = BTreeMap::from([("region".to_string(), "us".to_string())]);
        let merged = base.with_overrides(&call);
        assert_eq!(merged.get("region"), Some("us"));
        assert_eq!(merged.get("tier"), Some("free"));
        assert_eq!(base.get("region"), Some("eu"));
        assert_eq!(merged.keys().collect::<Vec<_>>(), vec!["region", "tier"]);
    }

    #[test]
    fn no_overrides_shares_the_values() {
        let base = config(&[("a", "1")]);
        let same = base.with_overrides(&BTreeMap::new());
        assert!(Arc::ptr_eq(&base.values, &same.values));
    }
}
