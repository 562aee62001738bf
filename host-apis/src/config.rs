//! Per-function configuration values: what a function reads as `context.config` and through the
//! `config` interface. Values come from the bundle's `function.toml` (with environment
//! overrides), its secrets (resolved on the server, never stored in the bundle) and, for calls in
//! the ixoncdkingress format, from the call itself (which override the function's own).
//!
//! Values are JSON, as on IXON (`context.config["serviceAccount"]["username"]`); secrets are
//! always strings.
//!
//! Secret values are readable by the function like any other value, but the host redacts them
//! from everything it records: logs, captured output, error messages and tracebacks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// The configuration one invocation sees; cheap to clone (shared values).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FunctionConfig {
    values: Arc<BTreeMap<String, Value>>,
    /// Keys whose values are secret.
    secrets: Arc<BTreeSet<String>>,
}

/// Shown instead of a secret value.
pub const REDACTED: &str = "[redacted]";

impl fmt::Debug for FunctionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = Value::String(REDACTED.into());
        let shown: BTreeMap<&str, &Value> = self
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), if self.secrets.contains(k) { &redacted } else { v }))
            .collect();
        f.debug_struct("FunctionConfig").field("values", &shown).finish()
    }
}

impl FunctionConfig {
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Self { values: Arc::new(values), secrets: Arc::default() }
    }

    /// This configuration with `secrets` added (they win over plain values of the same key).
    pub fn with_secrets(&self, secrets: BTreeMap<String, String>) -> Self {
        if secrets.is_empty() {
            return self.clone();
        }
        let mut values = (*self.values).clone();
        let mut keys = (*self.secrets).clone();
        for (key, value) in secrets {
            keys.insert(key.clone());
            values.insert(key, Value::String(value));
        }
        Self { values: Arc::new(values), secrets: Arc::new(keys) }
    }

    pub fn is_secret(&self, key: &str) -> bool {
        self.secrets.contains(key)
    }

    /// Replaces every secret value in `text` by [`REDACTED`]. Values shorter than 4 characters
    /// are left alone (redacting them would mangle ordinary text and hide nothing).
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for key in self.secrets.iter() {
            let secret = self.values.get(key).and_then(Value::as_str);
            if let Some(value) = secret.filter(|v| v.len() >= 4) {
                if text.contains(value) {
                    text = text.replace(value, REDACTED);
                }
            }
        }
        text
    }

    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// This configuration with `overrides` applied on top, each replacing its key's whole value
    /// (shares the values when there are none).
    pub fn with_overrides(&self, overrides: &BTreeMap<String, Value>) -> Self {
        if overrides.is_empty() {
            return self.clone();
        }
        let mut values = (*self.values).clone();
        values.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self { values: Arc::new(values), secrets: self.secrets.clone() }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// The value of `key` as JSON text, as the `config` interface gives it to the function.
    pub fn get_json(&self, key: &str) -> Option<String> {
        self.values.get(key).map(Value::to_string)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> FunctionConfig {
        FunctionConfig::new(pairs.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect())
    }

    #[test]
    fn overrides_win_and_the_original_is_untouched() {
        let base = config(&[("region", "eu"), ("tier", "free")]);
        let call = BTreeMap::from([("region".to_string(), Value::from("us"))]);
        let merged = base.with_overrides(&call);
        assert_eq!(merged.get("region"), Some(&Value::from("us")));
        assert_eq!(merged.get("tier"), Some(&Value::from("free")));
        assert_eq!(base.get("region"), Some(&Value::from("eu")));
        assert_eq!(merged.keys().collect::<Vec<_>>(), vec!["region", "tier"]);
    }

    #[test]
    fn secrets_are_readable_but_redacted_from_text_and_debug() {
        let base = config(&[("region", "eu")]);
        let with =
            base.with_secrets(BTreeMap::from([("token".to_string(), "s3cr3t-value".to_string())]));
        assert_eq!(with.get("token"), Some(&Value::from("s3cr3t-value")));
        assert!(with.is_secret("token") && !with.is_secret("region"));
        assert_eq!(with.redact("auth failed for s3cr3t-value!"), "auth failed for [redacted]!");
        assert!(!format!("{with:?}").contains("s3cr3t"));
        let overridden = with.with_overrides(&BTreeMap::from([("x".to_string(), Value::from(1))]));
        assert!(overridden.is_secret("token"), "overrides keep the secret marks");
    }

    #[test]
    fn values_are_json_and_reach_the_function_as_json_text() {
        let nested = serde_json::json!({"username": "svc", "roles": ["a", 1, true]});
        let with = FunctionConfig::new(BTreeMap::from([("serviceAccount".to_string(), nested)]))
            .with_secrets(BTreeMap::from([("token".to_string(), "say \"hi\"".to_string())]));
        assert_eq!(
            with.get_json("serviceAccount").as_deref(),
            Some(r#"{"username":"svc","roles":["a",1,true]}"#)
        );
        assert_eq!(with.get_json("token").as_deref(), Some(r#""say \"hi\"""#));
        assert_eq!(with.redact("it was say \"hi\" again"), "it was [redacted] again");
        assert!(with.get_json("missing").is_none());
    }

    #[test]
    fn no_overrides_shares_the_values() {
        let base = config(&[("a", "1")]);
        let same = base.with_overrides(&BTreeMap::new());
        assert!(Arc::ptr_eq(&base.values, &same.values));
    }
}
