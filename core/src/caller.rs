//! Who calls a function, as far as its trigger knows: the IXON resources of the call and the
//! caller's token. Used by the invoker, access control and the host capabilities alike.

use serde::Serialize;

/// A caller-context resource (user, company, agent, asset, template, API application).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Resource {
    pub public_id: String,
    pub name: String,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub permissions: Option<Vec<String>>,
}

/// Who calls, as far as the trigger knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Caller {
    pub user: Option<Resource>,
    pub company: Option<Resource>,
    pub agent: Option<Resource>,
    pub asset: Option<Resource>,
    pub template: Option<Resource>,
    pub api_application: Option<Resource>,
    /// The caller's IXON access token (`Bearer ...`), used by the host's IXON API client on
    /// the caller's behalf; functions never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
}

/// A bearer token that never shows in `Debug` output (logs, panics).
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccessToken(pub String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}
