//! Who may invoke a function. A function is `public`, or needs an API key of its space (or one
//! shared with its space). Keys are created and revoked through the admin API, stored hashed,
//! and may carry the caller identity (user, company, agent, asset) the function sees, so that
//! identity comes from an authenticated key, never from a client's headers.
//!
//! [`signature`] checks the request signature the IXON platform puts on ingress calls, and
//! [`replay`] that each signature is used once.

pub mod accounts;
pub mod admin_token;
pub mod console;
pub mod replay;
pub mod signature;

use std::collections::BTreeSet;

use axum::http::{header, HeaderMap};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::caller::{Caller, Resource};
use crate::error::InvokeError;
pub use crate::manifest::access::AccessPolicy;
use wasmfn_host_apis::state::StateTree;

/// Prefix of every API key, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "wfk_";
/// Request header that may carry an API key instead of `Authorization: Bearer`.
pub const KEY_HEADER: &str = "x-api-key";

/// The identity a key gives its callers (each part optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCaller {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<KeyResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<KeyResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<KeyResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<KeyResource>,
}

/// A resource of a key's identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyResource {
    pub public_id: String,
    #[serde(default)]
    pub name: String,
}

impl KeyCaller {
    /// The caller an invocation with this key carries.
    pub fn to_caller(&self) -> Caller {
        let resource = |r: &Option<KeyResource>| {
            r.as_ref().map(|r| Resource {
                public_id: r.public_id.clone(),
                name: r.name.clone(),
                ..Resource::default()
            })
        };
        Caller {
            user: resource(&self.user),
            company: resource(&self.company),
            agent: resource(&self.agent),
            asset: resource(&self.asset),
            ..Caller::default()
        }
    }
}

/// A stored key: never the key itself, only its SHA-256.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub space: String,
    pub name: String,
    pub created_at: String,
    /// Other spaces the key may invoke functions of.
    #[serde(default)]
    pub shared_with: BTreeSet<String>,
    #[serde(default)]
    pub caller: KeyCaller,
}

/// What the store keeps: the record and the key's hash.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    record: KeyRecord,
    hash: String,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no key '{id}' in space '{space}'")]
    NotFound { space: String, id: String },
    #[error("the key store failed: {0}")]
    Store(String),
}

fn store_error(error: impl std::fmt::Display) -> KeyError {
    KeyError::Store(error.to_string())
}

/// API keys and the policy for functions that set none.
#[derive(Clone, Debug)]
pub struct Access {
    keys: StateTree,
    default_policy: AccessPolicy,
    pub ingress: signature::IngressVerifier,
    /// Signatures of ingress calls already accepted.
    pub seen: std::sync::Arc<replay::SeenSignatures>,
}

impl Access {
    pub fn new(
        keys: StateTree,
        default_policy: AccessPolicy,
        ingress: signature::IngressVerifier,
        seen: replay::SeenSignatures,
    ) -> Self {
        Self { keys, default_policy, ingress, seen: std::sync::Arc::new(seen) }
    }

    /// The policy of a function: its own, or the server's default.
    pub fn policy(&self, declared: Option<AccessPolicy>) -> AccessPolicy {
        declared.unwrap_or(self.default_policy)
    }

    /// Checks a call to a function of `space` with `policy`: the caller the key names, or
    /// none for a public function. 401 without a key, 403 with a wrong one.
    pub fn check(
        &self,
        headers: &HeaderMap,
        space: &str,
        policy: AccessPolicy,
    ) -> Result<Option<Caller>, InvokeError> {
        let presented = presented_key(headers);
        if policy == AccessPolicy::Public && presented.is_none() {
            return Ok(None);
        }
        let Some(key) = presented else {
            return Err(InvokeError::Unauthorized(
                "this function needs an API key of its space: send `Authorization: Bearer \
                 <key>` or `X-Api-Key: <key>` (keys come from `wasmfn keys create`)"
                    .into(),
            ));
        };
        let forbidden = || InvokeError::Forbidden("the API key is unknown or revoked".into());
        let record = match self.verify(&key) {
            Ok(record) => record.ok_or_else(forbidden)?,
            // The key may be good: the store did not answer (a cluster's PostgreSQL is down).
            Err(KeyError::Store(error)) => {
                tracing::error!(%error, "checking an API key failed");
                return Err(InvokeError::Unavailable(
                    "the API key could not be checked now; retry later".into(),
                ));
            }
            Err(_) => return Err(forbidden()),
        };
        if record.space != space && !record.shared_with.contains(space) {
            return Err(InvokeError::Forbidden(format!(
                "the API key is not valid for space '{space}'"
            )));
        }
        Ok(Some(record.caller.to_caller()))
    }

    /// The record of a key presented to sign in to the console, if the key is one of ours.
    pub fn sign_in(&self, key: &str) -> Result<Option<KeyRecord>, KeyError> {
        self.verify(key)
    }

    /// Whether a key (by id) still exists: revoked keys do not.
    pub fn key_exists(&self, id: &str) -> bool {
        matches!(self.load(id), Ok(Some(_)))
    }

    /// An access with no keys on a temporary database, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Access {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Access::new(
            wasmfn_host_apis::state::sled_tree::open(&db, "keys").unwrap(),
            AccessPolicy::Key,
            signature::IngressVerifier::default(),
            replay::SeenSignatures::open(
                wasmfn_host_apis::state::sled_tree::open(&db, "seen").unwrap(),
                10,
            ),
        )
    }

    /// The record of a presented key, if the key is one of ours.
    fn verify(&self, key: &str) -> Result<Option<KeyRecord>, KeyError> {
        let Some((id, _)) = key.strip_prefix(KEY_PREFIX).and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let Some(stored) = self.load(id)? else { return Ok(None) };
        let hash = hash_key(key);
        Ok(constant_time_eq(hash.as_bytes(), stored.hash.as_bytes()).then_some(stored.record))
    }

    /// Creates a key; returns its record and the key itself, which is not kept.
    pub fn create(
        &self,
        space: &str,
        name: &str,
        caller: KeyCaller,
    ) -> Result<(KeyRecord, String), KeyError> {
        crate::names::validate_name(space).map_err(KeyError::Invalid)?;
        if name.is_empty() || name.len() > 128 {
            return Err(KeyError::Invalid("a key needs a name of 1 to 128 characters".into()));
        }
        let id = hex::encode(rand::random::<[u8; 6]>());
        let key = format!("{KEY_PREFIX}{id}_{}", hex::encode(rand::random::<[u8; 24]>()));
        let record = KeyRecord {
            id: id.clone(),
            space: space.to_string(),
            name: name.to_string(),
            created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            shared_with: BTreeSet::new(),
            caller,
        };
        self.save(&record, &hash_key(&key))?;
        Ok((record, key))
    }

    /// The keys of a space (their own, not those shared into it).
    pub fn list(&self, space: &str) -> Result<Vec<KeyRecord>, KeyError> {
        let mut keys = Vec::new();
        for entry in self.keys.iter() {
            let (_, value) = entry.map_err(store_error)?;
            let stored: StoredKey = serde_json::from_slice(&value).map_err(store_error)?;
            if stored.record.space == space {
                keys.push(stored.record);
            }
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(keys)
    }

    /// Revokes a key: calls with it get 403 from now on.
    pub fn revoke(&self, space: &str, id: &str) -> Result<(), KeyError> {
        self.owned(space, id)?;
        self.keys.remove(id).map_err(store_error)?;
        self.keys.flush().map_err(store_error)?;
        Ok(())
    }

    /// Lets a key invoke the functions of another space too (`shared = true`), or not.
    pub fn share(
        &self,
        space: &str,
        id: &str,
        other: &str,
        shared: bool,
    ) -> Result<KeyRecord, KeyError> {
        crate::names::validate_name(other).map_err(KeyError::Invalid)?;
        let stored = self.owned(space, id)?;
        let mut record = stored.record;
        if shared {
            record.shared_with.insert(other.to_string());
        } else {
            record.shared_with.remove(other);
        }
        self.save(&record, &stored.hash)?;
        Ok(record)
    }

    fn owned(&self, space: &str, id: &str) -> Result<StoredKey, KeyError> {
        let not_found = || KeyError::NotFound { space: space.into(), id: id.into() };
        let stored = self.load(id)?.ok_or_else(not_found)?;
        if stored.record.space != space {
            return Err(not_found());
        }
        Ok(StoredKey { hash: stored.hash, record: stored.record })
    }

    fn load(&self, id: &str) -> Result<Option<LoadedKey>, KeyError> {
        let Some(value) = self.keys.get(id).map_err(store_error)? else { return Ok(None) };
        let stored: StoredKey = serde_json::from_slice(&value).map_err(store_error)?;
        Ok(Some(LoadedKey { hash: stored.hash, record: stored.record }))
    }

    fn save(&self, record: &KeyRecord, hash: &str) -> Result<(), KeyError> {
        let stored = StoredKey { record: record.clone(), hash: hash.to_string() };
        let value = serde_json::to_vec(&stored).expect("keys serialise");
        self.keys.insert(record.id.as_bytes(), &value).map_err(store_error)?;
        self.keys.flush().map_err(store_error)?;
        Ok(())
    }
}

struct LoadedKey {
    record: KeyRecord,
    hash: String,
}

/// The key a request presents: `Authorization: Bearer <key>` or `X-Api-Key`.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let header_key = headers.get(KEY_HEADER).and_then(|v| v.to_str().ok());
    bearer.or(header_key).map(|key| key.trim().to_string()).filter(|key| !key.is_empty())
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive, as HTTP wants.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::for_tests()
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
        headers
    }

    #[test]
    fn keys_open_their_space_and_shared_spaces_until_revoked() {
        let access = access();
        let caller = KeyCaller {
            company: Some(KeyResource { public_id: "co1".into(), name: "Acme".into() }),
            ..KeyCaller::default()
        };
        let (record, key) = access.create("plant", "dashboard", caller).unwrap();
        assert!(key.starts_with("wfk_"));
        let stored = String::from_utf8(access.keys.get(&record.id).unwrap().unwrap().to_vec());
        assert!(!stored.unwrap().contains(&key), "only the hash is stored");

        let caller = access.check(&bearer(&key), "plant", AccessPolicy::Key).unwrap().unwrap();
        assert_eq!(caller.company.unwrap().public_id, "co1");
        let other = access.check(&bearer(&key), "office", AccessPolicy::Key).unwrap_err();
        assert_eq!(other.status().as_u16(), 403);
        access.share("plant", &record.id, "office", true).unwrap();
        assert!(access.check(&bearer(&key), "office", AccessPolicy::Key).is_ok());
        access.share("plant", &record.id, "office", false).unwrap();
        assert!(access.check(&bearer(&key), "office", AccessPolicy::Key).is_err());

        let lowercase = bearer(&key)
            .get(header::AUTHORIZATION)
            .unwrap()
            .to_str()
            .unwrap()
            .replace("Bearer", "bearer");
        assert_eq!(bearer_token(&lowercase), Some(key.as_str()), "the scheme is case-insensitive");
        assert_eq!(bearer_token("Basic abc"), None);
        let missing = access.check(&HeaderMap::new(), "plant", AccessPolicy::Key).unwrap_err();
        assert_eq!(missing.status().as_u16(), 401);
        let forged = format!("{}x", &key[..key.len() - 1]);
        assert_eq!(
            access
                .check(&bearer(&forged), "plant", AccessPolicy::Key)
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        assert!(access.check(&HeaderMap::new(), "plant", AccessPolicy::Public).unwrap().is_none());

        access.revoke("plant", &record.id).unwrap();
        assert_eq!(
            access.check(&bearer(&key), "plant", AccessPolicy::Key).unwrap_err().status().as_u16(),
            403
        );
        assert!(matches!(access.revoke("plant", &record.id), Err(KeyError::NotFound { .. })));
    }
}
