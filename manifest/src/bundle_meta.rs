//! The metadata `wasmfn build` stores in every bundle (a custom section of the `.wasm`): what
//! the function's `function.toml` declares, and the id of the build. Bundles already built must
//! stay readable and mean the same: the golden tests of the runtime pin this format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cron::CronTriggerConfig;
use crate::limits::LimitOverrides;
use crate::mqtt::MqttTriggerConfig;
use crate::network::NetworkSettings;
use crate::{DocumentsSettings, EventTriggerConfig, IxonApiSettings, SecretSource};

/// What `wasmfn build` records about a function inside its bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleMeta {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub default_entry: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub limits: Option<LimitOverrides>,
    /// `access` from `function.toml`; `None`: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::access::AccessPolicy>,
    /// Cron triggers from `function.toml`, started by `wasmfn serve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<CronTriggerConfig>,
    /// MQTT triggers from `function.toml`, started by `wasmfn serve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mqtt: Vec<MqttTriggerConfig>,
    #[serde(default, skip_serializing_if = "DocumentsSettings::is_default")]
    pub documents: DocumentsSettings,
    #[serde(default, skip_serializing_if = "IxonApiSettings::is_default")]
    pub ixon_api: IxonApiSettings,
    /// Secret names and the environment variables the server reads them from (no values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Event triggers from `function.toml`, registered by `wasmfn serve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventTriggerConfig>,
    /// `[network] allow` from `function.toml`.
    #[serde(default, skip_serializing_if = "NetworkSettings::is_default")]
    pub network: NetworkSettings,
    /// Which guest code and toolchain built the bundle (see `guest_sources::build_id`).
    #[serde(default)]
    pub build_id: String,
}

impl BundleMeta {
    /// What a bundle built from `manifest` records: all of it, and the build's id (the
    /// runtime's `guest_sources::build_id`). The manifest is taken apart field by field, so a
    /// field added to it cannot be left out by accident.
    pub fn from_manifest(manifest: &crate::FunctionManifest, build_id: String) -> Self {
        let crate::FunctionManifest {
            name,
            version,
            default_entry,
            config,
            access,
            limits,
            cron,
            mqtt,
            documents,
            ixon_api,
            secrets,
            events,
            network,
            // Made at build time; the bundle holds their effects, not the calls.
            warmup: _,
        } = manifest.clone();
        Self {
            name,
            version,
            default_entry,
            config,
            limits,
            access,
            cron,
            mqtt,
            documents,
            ixon_api,
            secrets,
            events,
            network,
            build_id,
        }
    }
}
