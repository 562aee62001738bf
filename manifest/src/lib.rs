//! What a function declares: `function.toml` (a function folder's name, version, default entry,
//! configuration, limits, access policy and triggers), names and limits, with their parsers.
//! Strict: an unknown key is an error, so a typo never becomes a silent default.
//!
//! The bottom layer of wasmfn: plain data and validation, no engine, no server, no broker
//! client (`scripts/test.sh` checks). The runtime crate re-exports it as `manifest`, with
//! `limits` and `names` at its top level; what these declarations do at run time is the
//! runtime's business.

pub mod access;
pub mod allowlist;
pub mod bundle_meta;
pub mod callback;
pub mod cron;
pub mod event_kind;
pub mod limits;
pub mod mqtt;
pub mod names;
pub mod network;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::limits::LimitOverrides;
pub use crate::names::{name_from_folder, validate_name};
use cron::{validate_triggers, CronTriggerConfig};
use mqtt::{validate_manifest_triggers, MqttTriggerConfig};

/// The file name looked for in a function folder.
pub const MANIFEST_FILE: &str = "function.toml";

/// A function folder's `function.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// The function's name in URLs (default: the folder's name).
    #[serde(default)]
    pub name: String,
    /// Semantic version (default `0.1.0`).
    #[serde(default = "default_version")]
    pub version: String,
    /// The entry `…/invoke` runs when the caller names none (`module.function`, or a bare
    /// function name meaning module `functions`).
    #[serde(default)]
    pub default_entry: Option<String>,
    /// Values the function reads as `context.config`: any TOML value, given to the function as
    /// JSON (tables are objects, dates are strings).
    #[serde(default, deserialize_with = "config_as_json")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Who may invoke it: `"public"`, or `"key"` (an API key of its space). Default: the
    /// server's `--default-access` (`key`).
    #[serde(default)]
    pub access: Option<access::AccessPolicy>,
    /// Overrides of the server's default limits.
    #[serde(default)]
    pub limits: Option<LimitOverrides>,
    /// Cron triggers: `[[cron]]` tables with `name`, `schedule`, optional `entry`, `timezone`.
    #[serde(default)]
    pub cron: Vec<CronTriggerConfig>,
    /// MQTT triggers invoking this function: `[[mqtt]]` tables with `name`, `broker`,
    /// `topics`, optional `username`, `password_env`, `client_id`, `qos`, `entry`,
    /// `callback_url`, `queue_limit`, `concurrency`.
    #[serde(default)]
    pub mqtt: Vec<MqttTriggerConfig>,
    /// `[documents]`: which document store collection the function uses.
    #[serde(default)]
    pub documents: DocumentsSettings,
    /// `[ixon_api]`: the IXON API endpoints the function may call.
    #[serde(default)]
    pub ixon_api: IxonApiSettings,
    /// `[secrets]`: values the server takes from its environment at load time
    /// (`token = { env = "MY_TOKEN" }`); the bundle holds only the variable names.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Event triggers: `[[events]]` tables with `name`, `events`, optional `collection`,
    /// `key_prefix`, `entry`, `callback_url`.
    #[serde(default)]
    pub events: Vec<EventTriggerConfig>,
    /// `[network] allow`: the outside hosts it may connect to (none by default).
    #[serde(default)]
    pub network: network::NetworkSettings,
    /// `[[warmup]]`: calls `wasmfn build` makes while it pre-initializes the bundle, so that what
    /// they load, compile and cache (lazy imports, regular expressions, tables) is in the
    /// snapshot every instance starts from instead of being redone by every call.
    #[serde(default)]
    pub warmup: Vec<WarmupCall>,
}

/// One `[[warmup]]` call: made at build time, `repeat` times, with `arguments` and the
/// `[config]` values as `context.config`; no caller, and the document store, object storage,
/// the IXON API, outbound connections and logging to the host raise (nothing runs yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupCall {
    /// `module.function` (default: `default_entry`).
    #[serde(default)]
    pub entry: Option<String>,
    /// The call's keyword arguments (a TOML table, given as JSON).
    #[serde(default, deserialize_with = "config_as_json")]
    pub arguments: BTreeMap<String, serde_json::Value>,
    /// How many times to make the call (1-100, default 2: CPython specializes the code a
    /// function runs again).
    #[serde(default = "WarmupCall::default_repeat")]
    pub repeat: u32,
    /// An exception the call raises is ignored (what it loaded before stays warm) instead of
    /// failing the build.
    #[serde(default)]
    pub ignore_errors: bool,
}

impl WarmupCall {
    /// At most this many `[[warmup]]` calls, each repeated at most `MAX_REPEAT` times.
    pub const MAX_CALLS: usize = 16;
    pub const MAX_REPEAT: u32 = 100;

    fn default_repeat() -> u32 {
        2
    }
}

fn validate_warmup(manifest: &FunctionManifest) -> Result<(), String> {
    if manifest.warmup.len() > WarmupCall::MAX_CALLS {
        return Err(format!(
            "{} [[warmup]] calls; at most {} are allowed",
            manifest.warmup.len(),
            WarmupCall::MAX_CALLS
        ));
    }
    for (index, call) in manifest.warmup.iter().enumerate() {
        if !(1..=WarmupCall::MAX_REPEAT).contains(&call.repeat) {
            return Err(format!(
                "warmup[{index}].repeat must be 1-{}, not {}",
                WarmupCall::MAX_REPEAT,
                call.repeat
            ));
        }
        match call.entry.as_deref().or(manifest.default_entry.as_deref()) {
            None => {
                return Err(format!(
                    "warmup[{index}] names no `entry` and there is no `default_entry`"
                ))
            }
            Some(entry) if entry.trim().is_empty() => {
                return Err(format!("warmup[{index}].entry is empty"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The triggers a version declares (`[[cron]]`, `[[mqtt]]`, `[[events]]`): they run while that
/// version is the active one of its function, and stop or change with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeclaredTriggers {
    pub cron: Vec<CronTriggerConfig>,
    pub mqtt: Vec<MqttTriggerConfig>,
    pub events: Vec<EventTriggerConfig>,
}

impl DeclaredTriggers {
    pub fn is_empty(&self) -> bool {
        self.cron.is_empty() && self.mqtt.is_empty() && self.events.is_empty()
    }
}

/// `[[events]]` in `function.toml`: run this function on events of its space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTriggerConfig {
    pub name: String,
    /// Event names (`STORAGE_INSERT`, `OBJECT_PUT`, ...) or ids (`1000`). May be left out
    /// with `property`: every document write then counts.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only storage events of this collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Only object events of keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Each outcome is POSTed here like an async callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<callback::CallbackUrl>,
    /// Fire only when this field of a document of `collection` changes value (a dotted path,
    /// `specs.memory`; digits index arrays), with its old and new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// With `property`: only the document with this `_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl EventTriggerConfig {
    /// The event names it listens to: those given, or every document write for a property
    /// trigger that names none.
    pub fn event_names(&self) -> Vec<String> {
        listened_events(&self.events, self.property.is_some())
    }
}

/// The events a trigger listens to: those given, or every document write for a property
/// trigger that names none.
pub fn listened_events(events: &[String], property: bool) -> Vec<String> {
    if events.is_empty() && property {
        let writes = [
            event_kind::EventKind::StorageInsert,
            event_kind::EventKind::StorageUpdate,
            event_kind::EventKind::StorageDelete,
        ];
        writes.iter().map(|kind| kind.name().to_string()).collect()
    } else {
        events.to_vec()
    }
}

/// Checks a property trigger's settings (from `function.toml` or the admin API): a path of
/// non-empty segments, on one collection, listening to document writes only.
pub fn validate_property(
    property: Option<&str>,
    document_id: Option<&str>,
    collection: Option<&str>,
    events: &[event_kind::EventKind],
) -> Result<(), String> {
    let Some(property) = property else {
        return match document_id {
            Some(_) => Err("`document_id` needs `property`".into()),
            None => Ok(()),
        };
    };
    if property.is_empty() || property.len() > 256 || property.split('.').any(str::is_empty) {
        return Err(format!(
            "property '{property}' must be a dotted field path like `memory` or `specs.memory` \
             (at most 256 characters)"
        ));
    }
    if collection.is_none() {
        return Err(format!("property '{property}' needs the `collection` it is a field of"));
    }
    if let Some(other) = events.iter().find(|kind| !kind.is_storage()) {
        return Err(format!(
            "property '{property}': {} is not a document write (use STORAGE_INSERT, \
             STORAGE_UPDATE, STORAGE_DELETE, or leave `events` out)",
            other.name()
        ));
    }
    Ok(())
}

fn validate_events(triggers: &[EventTriggerConfig]) -> Result<(), String> {
    for (index, trigger) in triggers.iter().enumerate() {
        validate_name(&trigger.name).map_err(|e| {
            format!("events[{index}]: {}", e.replace("function name", "trigger name"))
        })?;
        let names = trigger.event_names();
        if names.is_empty() {
            return Err(format!("events[{index}] ({}): list at least one event", trigger.name));
        }
        let mut kinds = Vec::new();
        for event in &names {
            kinds.push(
                event_kind::EventKind::parse(event)
                    .map_err(|e| format!("events[{index}] ({}): {e}", trigger.name))?,
            );
        }
        validate_property(
            trigger.property.as_deref(),
            trigger.document_id.as_deref(),
            trigger.collection.as_deref(),
            &kinds,
        )
        .map_err(|e| format!("events[{index}] ({}): {e}", trigger.name))?;
        if triggers[..index].iter().any(|t| t.name == trigger.name) {
            return Err(format!("two [[events]] triggers are named '{}'", trigger.name));
        }
    }
    Ok(())
}

/// `[documents]` in `function.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsSettings {
    /// The collection's name (default: the function's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// `[[documents.index]]`: fields the function queries by, indexed when the document store
    /// is PostgreSQL (the embedded store scans).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<DocumentIndex>,
}

/// One `[[documents.index]]` table: a dotted field path (`status`, `device.id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIndex {
    pub path: String,
}

impl DocumentsSettings {
    /// At most this many `[[documents.index]]` tables.
    pub const MAX_INDEXES: usize = 16;

    pub fn is_default(&self) -> bool {
        self.collection.is_none() && self.index.is_empty()
    }

    /// The declared index paths.
    pub fn index_paths(&self) -> Vec<String> {
        self.index.iter().map(|index| index.path.clone()).collect()
    }

    /// Checks names, paths and the number of indexes (also when a bundle is loaded).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(collection) = &self.collection {
            if !is_collection_name(collection) {
                return Err(format!(
                    "documents.collection '{collection}' is invalid: use 1-64 letters, digits, '-', '_' or '.'"
                ));
            }
        }
        if self.index.len() > Self::MAX_INDEXES {
            return Err(format!(
                "{} [[documents.index]] tables; at most {} are allowed",
                self.index.len(),
                Self::MAX_INDEXES
            ));
        }
        for (i, index) in self.index.iter().enumerate() {
            let parts: Vec<&str> = index.path.split('.').collect();
            let valid = index.path.len() <= 256
                && parts.iter().all(|part| !part.is_empty() && !part.starts_with('$'))
                && !parts.iter().any(|part| part.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                return Err(format!(
                    "documents.index[{i}].path '{}' is invalid: use field names joined by '.' \
                     (no empty names, no names starting with '$', no array positions), at most \
                     256 bytes",
                    index.path
                ));
            }
        }
        Ok(())
    }
}

/// `[ixon_api]` in `function.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IxonApiSettings {
    /// Endpoint names from the API's discovery, optionally with a method (`"GET MyUser"`);
    /// `"*"` allows all. Empty: no IXON API access.
    #[serde(default)]
    pub allow: Vec<String>,
}

impl IxonApiSettings {
    /// The entry that allows every endpoint with any method.
    pub const ALL: &'static str = "*";

    pub fn is_default(&self) -> bool {
        self.allow.is_empty()
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The server's environment variable holding the value.
    pub env: String,
}

/// Document collection names: 1-64 letters, digits, '-', '_' or '.'.
pub fn is_collection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn validate_capabilities(manifest: &FunctionManifest) -> Result<(), String> {
    manifest.documents.validate()?;
    allowlist::Allowlist::parse(&manifest.ixon_api.allow)?;
    network::NetworkAllowlist::parse(&manifest.network.allow)?;
    for (name, source) in &manifest.secrets {
        let valid = !source.env.is_empty()
            && source.env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !source.env.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "secrets.{name}: env '{}' is not an environment variable name",
                source.env
            ));
        }
        if manifest.config.contains_key(name) {
            return Err(format!("'{name}' is both in [config] and [secrets]; keep it in one"));
        }
    }
    Ok(())
}

fn config_as_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    let table = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
    table
        .into_iter()
        .map(|(key, value)| {
            let json = toml_to_json(value)
                .map_err(|e| serde::de::Error::custom(format!("config.{key}: {e}")))?;
            Ok((key, json))
        })
        .collect()
}

/// A TOML value as the JSON the function reads; dates and times become their TOML text.
pub fn toml_to_json(value: toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as Json;
    Ok(match value {
        toml::Value::String(s) => Json::String(s),
        toml::Value::Integer(i) => Json::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| format!("{f} has no JSON form (use a string)"))?,
        toml::Value::Boolean(b) => Json::Bool(b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => {
            Json::Array(items.into_iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Json::Object(
            table
                .into_iter()
                .map(|(k, v)| Ok((k, toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn default_version() -> String {
    "0.1.0".into()
}

/// Why a `function.toml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: std::io::Error },
}

impl FunctionManifest {
    /// Reads `dir/function.toml`, or uses defaults named after the folder when there is none.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let file = path.display().to_string();
        let mut manifest = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ManifestError::Read { file: file.clone(), source })?;
            Self::parse(&text)
                .map_err(|message| ManifestError::Invalid { file: file.clone(), message })?
        } else {
            let mut manifest = Self::parse("").expect("empty manifest is valid");
            // An app written for IXON's platform has no function.toml, and there it may call
            // every endpoint with its caller's rights: so here too (docs/ixon-api.md).
            manifest.ixon_api.allow = vec![IxonApiSettings::ALL.to_string()];
            manifest
        };
        if manifest.name.is_empty() {
            let folder = dir
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            manifest.name = name_from_folder(&folder);
            validate_name(&manifest.name).map_err(|message| ManifestError::Invalid {
                file,
                message: format!("{message}; set `name` in {MANIFEST_FILE}"),
            })?;
        }
        Ok(manifest)
    }

    /// Parses and checks the text of a `function.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        semver::Version::parse(&manifest.version).map_err(|e| {
            format!("version '{}' is not a semantic version (like 1.2.3): {e}", manifest.version)
        })?;
        if !manifest.name.is_empty() {
            validate_name(&manifest.name)?;
        }
        validate_triggers(&manifest.cron)?;
        validate_manifest_triggers(&manifest.mqtt)?;
        validate_capabilities(&manifest)?;
        validate_events(&manifest.events)?;
        validate_warmup(&manifest)?;
        Ok(manifest)
    }

    /// The `[[warmup]]` calls with their entries filled in (`default_entry` where they name
    /// none); `parse` made sure each has one.
    pub fn warmup_calls(&self) -> Vec<WarmupCall> {
        self.warmup
            .iter()
            .map(|call| WarmupCall {
                entry: call.entry.clone().or_else(|| self.default_entry.clone()),
                ..call.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_manifest_parses() {
        let manifest = FunctionManifest::parse(
            r#"
            name = "greet"
            version = "1.2.3"
            default_entry = "example.greet"
            [config]
            greeting = "Hello"
            [limits]
            timeout_ms = 2000
            "#,
        )
        .unwrap();
        assert_eq!(manifest.name, "greet");
        assert_eq!(manifest.config["greeting"], "Hello");
        assert_eq!(manifest.limits.unwrap().timeout_ms, Some(2000));
    }

    #[test]
    fn warmup_calls_parse_with_defaults_and_bounds() {
        let manifest = FunctionManifest::parse(
            r#"
            default_entry = "functions.lookup"
            [[warmup]]
            arguments = { word = "pump", n = 2 }
            [[warmup]]
            entry = "functions.other"
            repeat = 5
            ignore_errors = true
            "#,
        )
        .unwrap();
        let calls = manifest.warmup_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].entry.as_deref(), Some("functions.lookup"));
        assert_eq!(calls[0].arguments["word"], "pump");
        assert_eq!(calls[0].arguments["n"], 2);
        assert_eq!((calls[0].repeat, calls[0].ignore_errors), (2, false));
        assert_eq!(calls[1].entry.as_deref(), Some("functions.other"));
        assert_eq!((calls[1].repeat, calls[1].ignore_errors), (5, true));

        for (text, expected) in [
            ("[[warmup]]\n", "names no `entry` and there is no `default_entry`"),
            ("[[warmup]]\nentry = \"f.g\"\nrepeat = 0\n", "warmup[0].repeat must be 1-100"),
            ("[[warmup]]\nentry = \"f.g\"\nrepeat = 101\n", "warmup[0].repeat must be 1-100"),
            ("[[warmup]]\nentry = \" \"\n", "warmup[0].entry is empty"),
            ("[[warmup]]\nentry = \"f.g\"\nwhen = 1\n", "unknown field `when`"),
        ] {
            let error = FunctionManifest::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let too_many = "[[warmup]]\nentry = \"f.g\"\n".repeat(17);
        let error = FunctionManifest::parse(&too_many).unwrap_err();
        assert!(error.contains("17 [[warmup]] calls; at most 16"), "{error}");
    }

    #[test]
    fn document_indexes_are_checked() {
        let manifest = FunctionManifest::parse(
            "[documents]\ncollection = \"logbook\"\n[[documents.index]]\npath = \"device.id\"\n\
             [[documents.index]]\npath = \"state\"\n",
        )
        .unwrap();
        assert_eq!(manifest.documents.index_paths(), ["device.id", "state"]);
        for (path, wanted) in [("a..b", "invalid"), ("$x", "invalid"), ("items.0.sku", "invalid")] {
            let error =
                FunctionManifest::parse(&format!("[[documents.index]]\npath = \"{path}\"\n"))
                    .unwrap_err();
            assert!(error.contains(wanted) && error.contains(path), "{error}");
        }
        let many = "[[documents.index]]\npath = \"a\"\n".repeat(17);
        assert!(FunctionManifest::parse(&many).unwrap_err().contains("at most 16"));
    }

    #[test]
    fn typos_and_bad_versions_are_errors() {
        let error = FunctionManifest::parse("nmae = \"x\"").unwrap_err();
        assert!(error.contains("unknown field `nmae`"), "{error}");
        let error = FunctionManifest::parse("version = \"one\"").unwrap_err();
        assert!(error.contains("not a semantic version"), "{error}");
    }

    #[test]
    fn property_triggers_name_a_field_of_a_collection_and_listen_to_writes() {
        let manifest = FunctionManifest::parse(
            r#"
            [[events]]
            name = "memory"
            collection = "computers"
            property = "specs.memory"
            document_id = "01F0DWNEYK5ART2RSWP5AZCK00"
            "#,
        )
        .unwrap();
        let trigger = &manifest.events[0];
        assert_eq!(trigger.property.as_deref(), Some("specs.memory"));
        assert_eq!(
            trigger.event_names(),
            ["STORAGE_INSERT", "STORAGE_UPDATE", "STORAGE_DELETE"],
            "no `events`: every document write"
        );
        let refused = |table: &str| {
            FunctionManifest::parse(&format!("[[events]]\nname = \"m\"\n{table}")).unwrap_err()
        };
        let error = refused("property = \"memory\"");
        assert!(error.contains("needs the `collection`"), "{error}");
        let error = refused("property = \"a..b\"\ncollection = \"c\"");
        assert!(error.contains("dotted field path"), "{error}");
        let error = refused("property = \"m\"\ncollection = \"c\"\nevents = [\"OBJECT_PUT\"]");
        assert!(error.contains("not a document write"), "{error}");
        let error = refused("document_id = \"x\"\nevents = [\"STORAGE_INSERT\"]");
        assert!(error.contains("`document_id` needs `property`"), "{error}");
        let error = refused("collection = \"c\"");
        assert!(error.contains("list at least one event"), "{error}");
    }

    #[test]
    fn names_must_fit_in_urls() {
        assert!(validate_name("hello-world_2").is_ok());
        assert!(validate_name("Hello").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a:b").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn folder_names_are_made_url_safe() {
        assert_eq!(name_from_folder("My Function.v2"), "my-function-v2");
        assert_eq!(name_from_folder("_x"), "x");
    }

    #[test]
    fn missing_manifest_takes_the_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("my-fn");
        std::fs::create_dir(&folder).unwrap();
        let manifest = FunctionManifest::load(&folder).unwrap();
        assert_eq!(manifest.name, "my-fn");
        assert_eq!(manifest.version, "0.1.0");
        // As on IXON's platform: every endpoint, with the caller's rights.
        assert_eq!(manifest.ixon_api.allow, ["*"]);
        // A function.toml without [ixon_api] opts into wasmfn's default: no API access.
        std::fs::write(folder.join(MANIFEST_FILE), "name = \"my-fn\"\n").unwrap();
        assert!(FunctionManifest::load(&folder).unwrap().ixon_api.allow.is_empty());
    }
}
