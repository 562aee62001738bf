//! `access` in `function.toml`: who may invoke the function. Enforced by the runtime's
//! `access`.

use serde::{Deserialize, Serialize};

/// A function's invocation access, from `access` in `function.toml`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessPolicy {
    /// Anyone may invoke it.
    Public,
    /// Callers need an API key of the function's space.
    #[default]
    Key,
}

impl std::str::FromStr for AccessPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "public" => Ok(Self::Public),
            "key" => Ok(Self::Key),
            other => Err(format!("access '{other}' is unknown: use \"public\" or \"key\"")),
        }
    }
}
