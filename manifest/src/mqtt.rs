//! `[[mqtt]]` in `function.toml`, and the same shape from the admin API: broker, credentials,
//! topic filters with wildcards, QoS, targets, callback and queue bounds, checked wherever they
//! come from. Running the triggers is the business of the runtime's `triggers::mqtt`.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use super::callback::CallbackUrl;

/// Default number of messages a trigger queues before its QoS 0 messages are dropped.
pub const DEFAULT_QUEUE_LIMIT: usize = 1000;
/// Default number of messages a trigger processes at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
const MAX_NAME_LEN: usize = 64;

/// One MQTT trigger. The same shape is read from a `[[mqtt]]` table of `function.toml` (where
/// the trigger invokes that function, so `functions` and `password` are refused) and from the
/// admin API's JSON (where `functions` is required).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTriggerConfig {
    /// Unique in its space; names the trigger in status, logs and the `x-mqtt-trigger` header.
    pub name: String,
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default 8883).
    pub broker: BrokerUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password itself: admin API only, never shown back.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// The environment variable of the server that holds the password (for `function.toml`,
    /// which must not hold secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// MQTT client id (default `wasmfn-<space>-<name>`); must be unique on the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Topic filters the trigger subscribes to; `+` and `#` wildcards allowed.
    pub topics: Vec<TopicFilter>,
    /// 0 (at most once) or 1 (at least once, acknowledged after the invocations ran).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// The functions the trigger invokes (admin API). Empty in `function.toml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<MqttTarget>,
    /// The entry to run (`function.toml` only; default: the function's default entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Every outcome is POSTed here: the function's body and headers plus `X-Function-Status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<CallbackUrl>,
    /// Messages queued before QoS 0 messages are dropped (oldest first).
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Messages processed at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// One function an MQTT trigger invokes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTarget {
    pub function: String,
    /// Default: the function's default entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The topics this function is invoked for (default: every topic of the trigger). Each must
    /// be covered by the trigger's subscriptions to ever match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicFilter>,
}

impl MqttTarget {
    /// The filters a message's topic must match to invoke this target: its own, else the
    /// trigger's (`trigger_topics`).
    pub fn filters<'a>(&'a self, trigger_topics: &'a [TopicFilter]) -> &'a [TopicFilter] {
        if self.topics.is_empty() {
            trigger_topics
        } else {
            &self.topics
        }
    }
}

fn default_qos() -> u8 {
    1
}

fn default_queue_limit() -> usize {
    DEFAULT_QUEUE_LIMIT
}

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

impl MqttTriggerConfig {
    /// Checks what serde cannot see. `in_manifest`: the table comes from `function.toml`.
    pub fn validate(&self, in_manifest: bool) -> Result<(), String> {
        let name = &self.name;
        validate_trigger_name(name)?;
        let context = format!("mqtt trigger '{name}'");
        if self.topics.is_empty() {
            return Err(format!("{context}: `topics` needs at least one topic filter"));
        }
        if self.qos > 1 {
            return Err(format!("{context}: qos {} is not supported: use 0 or 1", self.qos));
        }
        if self.queue_limit == 0 || self.concurrency == 0 || self.concurrency > 64 {
            return Err(format!(
                "{context}: queue_limit must be at least 1 and concurrency 1 to 64"
            ));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(format!("{context}: set `password` or `password_env`, not both"));
        }
        if (self.password.is_some() || self.password_env.is_some()) && self.username.is_none() {
            return Err(format!("{context}: a password needs a `username`"));
        }
        if let Some(client_id) = &self.client_id {
            if client_id.is_empty() || client_id.len() > 128 {
                return Err(format!("{context}: client_id must be 1 to 128 characters"));
            }
        }
        if in_manifest {
            if self.password.is_some() {
                return Err(format!(
                    "{context}: function.toml must not hold secrets: put the password in an \
                     environment variable of the server and name it with `password_env`"
                ));
            }
            if !self.functions.is_empty() {
                return Err(format!(
                    "{context}: a function.toml trigger invokes its own function: drop \
                     `functions` (use `entry` to pick the entry)"
                ));
            }
        } else {
            if self.functions.is_empty() {
                return Err(format!("{context}: `functions` needs at least one function"));
            }
            if self.entry.is_some() {
                return Err(format!("{context}: set `entry` per function in `functions`"));
            }
            for target in &self.functions {
                crate::names::validate_name(&target.function)
                    .map_err(|e| format!("{context}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The client id the trigger connects with.
    pub fn client_id(&self, space: &str) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("wasmfn-{space}-{}", self.name))
    }

    /// The trigger with its functions filled in from the function that declares it.
    pub fn for_function(&self, function: &str) -> Self {
        let mut config = self.clone();
        config.functions = vec![MqttTarget {
            function: function.to_string(),
            entry: config.entry.take(),
            topics: Vec::new(),
        }];
        config
    }
}

/// Trigger names: lowercase letters, digits, `-` and `_`, 1 to 64.
pub fn validate_trigger_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "trigger name '{name}' is invalid: use 1-64 lowercase letters, digits, '-' or '_'"
        ))
    }
}

/// The `[[mqtt]]` tables of one `function.toml`: each valid, names unique.
pub fn validate_manifest_triggers(triggers: &[MqttTriggerConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for trigger in triggers {
        trigger.validate(true)?;
        if !seen.insert(&trigger.name) {
            return Err(format!("mqtt trigger name '{}' is used twice", trigger.name));
        }
    }
    Ok(())
}

/// A broker address: `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let url = url::Url::parse(&text).map_err(|e| {
            format!("broker '{text}' is not a URL ({e}): use mqtt://host:port or mqtts://host:port")
        })?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "broker '{text}': scheme '{other}' is not supported: use mqtt:// or mqtts://"
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("broker '{text}' has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        if !url.username().is_empty() || url.password().is_some() {
            return Err("broker URL must not carry credentials: use `username` and \
                        `password`/`password_env`"
                .into());
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(format!("broker '{text}' must be just scheme, host and port"));
        }
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(Self { host, port, tls })
    }
}

impl From<BrokerUrl> for String {
    fn from(broker: BrokerUrl) -> String {
        broker.to_string()
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// An MQTT topic filter, checked when the configuration is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicFilter(String);

impl TopicFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `filter` (not empty) is an MQTT topic filter: `+` fills a whole level and `#` is the
/// whole last level. The same rule as the broker client's (a property test in this crate
/// checks it against rumqttc's), written here so that declarations need no MQTT client.
pub fn valid_filter(filter: &str) -> bool {
    let levels = filter.split('/').count();
    filter.split('/').enumerate().all(|(index, level)| match level {
        "+" => true,
        "#" => index + 1 == levels,
        other => !other.contains(['+', '#']),
    })
}

impl TryFrom<String> for TopicFilter {
    type Error = String;

    fn try_from(filter: String) -> Result<Self, String> {
        if filter.is_empty() || filter.len() > 65535 || filter.contains('\0') {
            return Err(format!("topic filter '{filter}' is empty, too long or has a NUL"));
        }
        if !valid_filter(&filter) {
            return Err(format!(
                "topic filter '{filter}' is invalid: '+' must fill a whole level and '#' must \
                 be the whole last level"
            ));
        }
        Ok(Self(filter))
    }
}

impl From<TopicFilter> for String {
    fn from(filter: TopicFilter) -> String {
        filter.0
    }
}

/// A secret string: never printed, never serialised back.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<MqttTriggerConfig, String> {
        let config: MqttTriggerConfig = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.validate(false)?;
        Ok(config)
    }

    #[test]
    fn wildcards_must_fill_their_level() {
        for good in ["plant/+/temp", "plant/#", "#", "+", "+/+", "exact/topic", "a//b", "/"] {
            assert!(TopicFilter::try_from(good.to_string()).is_ok(), "{good}");
        }
        for bad in ["a/#/b", "a/b#", "a+/b", "#/a", "a/++", "a/+#", ""] {
            assert!(TopicFilter::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// The rule is the broker client's, on filters made of the characters that matter.
        #[test]
        fn filter_rule_is_the_clients(filter in "[a+#/]{1,8}") {
            proptest::prop_assert_eq!(valid_filter(&filter), rumqttc::valid_filter(&filter));
        }
    }

    #[test]
    fn broker_urls_default_their_port_and_refuse_credentials() {
        let url = |s: &str| BrokerUrl::try_from(s.to_string());
        assert_eq!(url("mqtt://127.0.0.1").unwrap().port, 1883);
        let tls = url("mqtts://broker.example.com").unwrap();
        assert_eq!(
            (tls.port, tls.tls, tls.to_string().as_str()),
            (8883, true, "mqtts://broker.example.com:8883")
        );
        assert_eq!(url("mqtt://[::1]:1884").unwrap().to_string(), "mqtt://[::1]:1884");
        assert!(url("http://x").unwrap_err().contains("scheme 'http'"));
        assert!(url("mqtt://u:p@x").unwrap_err().contains("must not carry credentials"));
        assert!(url("127.0.0.1:1883").is_err());
    }

    #[test]
    fn admin_configs_need_functions_and_hide_the_password() {
        let ok = config(serde_json::json!({
            "name": "sensors", "broker": "mqtt://127.0.0.1:1883", "username": "u",
            "password": "hunter2", "topics": ["plant/+/temp"],
            "functions": [{"function": "store"}, {"function": "alarm", "topics": ["plant/boiler/temp"]}]
        }))
        .unwrap();
        assert_eq!(ok.qos, 1);
        assert_eq!(ok.client_id("default"), "wasmfn-default-sensors");
        let shown = serde_json::to_string(&ok).unwrap();
        assert!(!shown.contains("hunter2") && !shown.contains("password"), "{shown}");
        assert!(!format!("{ok:?}").contains("hunter2"));
        let trigger_topics = &ok.topics;
        assert_eq!(ok.functions[0].filters(trigger_topics), trigger_topics.as_slice());
        assert_eq!(ok.functions[1].filters(trigger_topics)[0].as_str(), "plant/boiler/temp");

        let base = serde_json::json!({"name": "t", "broker": "mqtt://h", "topics": ["a"]});
        assert!(config(base.clone()).unwrap_err().contains("at least one function"));
        let mut qos2 = base.clone();
        qos2["functions"] = serde_json::json!([{"function": "f"}]);
        qos2["qos"] = 2.into();
        assert!(config(qos2).unwrap_err().contains("qos 2"));
        let mut typo = base.clone();
        typo["topic"] = "a".into();
        assert!(config(typo).unwrap_err().contains("unknown field `topic`"));
    }

    #[test]
    fn manifest_tables_refuse_secrets_and_foreign_functions() {
        let parse = |text: &str| crate::FunctionManifest::parse(text).map(|m| m.mqtt);
        let triggers = parse(
            "[[mqtt]]\nname = \"sensors\"\nbroker = \"mqtt://127.0.0.1\"\ntopics = [\"a/#\"]\n\
             username = \"u\"\npassword_env = \"SENSORS_PASSWORD\"\nentry = \"m.f\"\n",
        )
        .unwrap();
        let for_function = triggers[0].for_function("store");
        assert_eq!(for_function.functions[0].function, "store");
        assert_eq!(for_function.functions[0].entry.as_deref(), Some("m.f"));
        let secret = parse(
            "[[mqtt]]\nname = \"s\"\nbroker = \"mqtt://h\"\ntopics = [\"a\"]\nusername = \"u\"\npassword = \"p\"\n",
        );
        assert!(secret.unwrap_err().contains("must not hold secrets"));
        let twice = "[[mqtt]]\nname = \"s\"\nbroker = \"mqtt://h\"\ntopics = [\"a\"]\n".repeat(2);
        assert!(parse(&twice).unwrap_err().contains("used twice"));
        let bad_topic =
            parse("[[mqtt]]\nname = \"s\"\nbroker = \"mqtt://h\"\ntopics = [\"a/#/b\"]\n");
        assert!(bad_topic.unwrap_err().contains("topic filter 'a/#/b' is invalid"));
    }
}
