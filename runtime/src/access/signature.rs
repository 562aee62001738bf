//! The request signature of the IXON platform on ingress calls, checked as ixoncdkingress does
//! in production mode: `Authorization: signature <hex>` is an Ed25519 signature of the raw
//! body by one of the configured public keys (PEM), and the body's `created_on` is at most
//! 60 seconds away from now. Beyond the original: a key may be scoped to a space or to one
//! function (`--ingress-public-key <space>[/<function>]=<PEM_FILE>`), so bytes signed for one
//! function are refused by another; replays are refused by [`super::replay`].

use std::path::Path;

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::error::InvokeError;

/// How far `created_on` may be from now.
pub const MAX_AGE_SECONDS: i64 = 60;

/// Where a key's signatures are accepted: every function, those of one space, or one function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyScope {
    pub space: Option<String>,
    pub function: Option<String>,
}

impl KeyScope {
    fn covers(&self, space: &str, function: &str) -> bool {
        self.space.as_deref().is_none_or(|s| s == space)
            && self.function.as_deref().is_none_or(|f| f == function)
    }

    /// `<space>` or `<space>/<function>`, both valid names; `None` when `text` is not a scope.
    fn parse(text: &str) -> Option<Self> {
        let valid = |name: &str| crate::names::validate_name(name).is_ok();
        match text.split_once('/') {
            None if valid(text) => Some(Self { space: Some(text.into()), function: None }),
            Some((space, function)) if valid(space) && valid(function) => {
                Some(Self { space: Some(space.into()), function: Some(function.into()) })
            }
            _ => None,
        }
    }
}

/// A checked signature: what the replay cache keeps, and until when.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedSignature {
    pub signature: [u8; 64],
    /// After this (Unix seconds) the signed body's `created_on` is too old to pass again.
    pub expires_at: i64,
}

/// The public keys ingress signatures are checked against; none means no check.
#[derive(Clone, Debug, Default)]
pub struct IngressVerifier {
    keys: Vec<(VerifyingKey, KeyScope)>,
}

impl IngressVerifier {
    /// Reads PEM public keys (`-----BEGIN PUBLIC KEY-----`), one or more per file, valid for
    /// every function.
    pub fn from_pem_files(paths: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let specs: Vec<(&Path, KeyScope)> =
            paths.iter().map(|p| (p.as_ref(), KeyScope::default())).collect();
        Self::read(&specs)
    }

    /// Reads `--ingress-public-key` values: `<PEM_FILE>` (any function), `<space>=<PEM_FILE>`
    /// (the functions of one space) or `<space>/<function>=<PEM_FILE>` (one function). A path
    /// that itself contains `=` after a valid name needs a scope or a `./` prefix.
    pub fn from_specs(specs: &[String]) -> anyhow::Result<Self> {
        let specs: Vec<(&Path, KeyScope)> = specs
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((scope, path)) => match KeyScope::parse(scope) {
                    Some(scope) => (Path::new(path), scope),
                    None => (Path::new(spec.as_str()), KeyScope::default()),
                },
                None => (Path::new(spec.as_str()), KeyScope::default()),
            })
            .collect();
        Self::read(&specs)
    }

    fn read(specs: &[(&Path, KeyScope)]) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for (path, scope) in specs {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let blocks: Vec<&str> = text
                .split_inclusive("-----END PUBLIC KEY-----")
                .filter(|block| block.contains("-----BEGIN PUBLIC KEY-----"))
                .collect();
            if blocks.is_empty() {
                anyhow::bail!("{} holds no PEM public key", path.display());
            }
            for block in blocks {
                let key = VerifyingKey::from_public_key_pem(block.trim()).map_err(|e| {
                    anyhow::anyhow!("{}: not an Ed25519 public key: {e}", path.display())
                })?;
                keys.push((key, scope.clone()));
            }
        }
        Ok(Self { keys })
    }

    /// Keys valid for every function.
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Self {
        Self { keys: keys.into_iter().map(|key| (key, KeyScope::default())).collect() }
    }

    /// Keys with their scopes.
    pub fn from_scoped_keys(keys: Vec<(VerifyingKey, KeyScope)>) -> Self {
        Self { keys }
    }

    /// Whether ingress calls must be signed.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks a call to `function` of `space`: 401 with the reason unless the signature, the
    /// key's scope and the time are right. Whether the signature was used before is the
    /// replay cache's question.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        created_on: Option<&str>,
        (space, function): (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<VerifiedSignature, InvokeError> {
        let unauthorized =
            |why: &str| InvokeError::Unauthorized(format!("ingress call refused: {why}"));
        let created_on = created_on.ok_or_else(|| unauthorized("the body has no created_on"))?;
        let created = DateTime::parse_from_rfc3339(created_on)
            .or_else(|_| {
                // ixoncdkingress reads Python's isoformat, which may lack the zone (then UTC).
                chrono::NaiveDateTime::parse_from_str(created_on, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|naive| naive.and_utc().fixed_offset())
            })
            .map_err(|_| unauthorized("created_on is not an ISO 8601 time"))?;
        if (now - created.to_utc()).num_seconds().abs() > MAX_AGE_SECONDS {
            return Err(unauthorized("created_on is more than 60 s away from now"));
        }
        let signature = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("signature "))
            .ok_or_else(|| unauthorized("no `Authorization: signature <hex>` header"))?;
        let signature = hex::decode(signature.trim())
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| unauthorized("the signature is not 64 hex-encoded bytes"))?;
        let mut signers = self.keys.iter().filter(|(key, _)| key.verify(body, &signature).is_ok());
        let Some(first) = signers.next() else {
            return Err(unauthorized("the signature does not match any configured public key"));
        };
        if !std::iter::once(first).chain(signers).any(|(_, scope)| scope.covers(space, function)) {
            return Err(unauthorized(&format!(
                "the signing key is not valid for function '{function}' of space '{space}'"
            )));
        }
        Ok(VerifiedSignature {
            signature: signature.to_bytes(),
            expires_at: created.timestamp() + MAX_AGE_SECONDS + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::{Signer, SigningKey};

    const AT: (&str, &str) = ("default", "f");

    fn signed(key: &SigningKey, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = hex::encode(key.sign(body).to_bytes());
        headers.insert(header::AUTHORIZATION, format!("signature {signature}").parse().unwrap());
        headers
    }

    #[test]
    fn only_fresh_bodies_signed_by_a_configured_key_pass() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pem = key.verifying_key().to_public_key_pem(Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ixon.pem");
        std::fs::write(&file, &pem).unwrap();
        let verifier = IngressVerifier::from_pem_files(&[&file]).unwrap();
        assert!(verifier.enabled());

        let now = Utc::now();
        let created = now.to_rfc3339();
        let body = format!(r#"{{"name": "f", "created_on": "{created}"}}"#);
        let ok = verifier.verify(
            &signed(&key, body.as_bytes()),
            body.as_bytes(),
            Some(&created),
            AT,
            now,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let naive = now.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        assert!(verifier.verify(&signed(&key, b"x"), b"x", Some(&naive), AT, now).is_ok());

        let reason =
            |result: Result<VerifiedSignature, InvokeError>| result.unwrap_err().to_string();
        let tampered = reason(verifier.verify(&signed(&key, b"a"), b"b", Some(&created), AT, now));
        assert!(tampered.contains("does not match"), "{tampered}");
        let stranger = SigningKey::from_bytes(&[9; 32]);
        assert!(verifier.verify(&signed(&stranger, b"a"), b"a", Some(&created), AT, now).is_err());
        let late = now + chrono::Duration::seconds(61);
        assert!(reason(verifier.verify(&signed(&key, b"a"), b"a", Some(&created), AT, late))
            .contains("60 s"));
        assert!(reason(verifier.verify(&HeaderMap::new(), b"a", Some(&created), AT, now))
            .contains("no `Authorization"));
        assert!(reason(verifier.verify(&signed(&key, b"a"), b"a", None, AT, now))
            .contains("no created_on"));
        assert!(IngressVerifier::from_pem_files(&[dir.path().join("missing.pem")]).is_err());
    }

    #[test]
    fn scoped_keys_sign_only_for_their_space_or_function() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pem = key.verifying_key().to_public_key_pem(Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ixon.pem");
        std::fs::write(&file, &pem).unwrap();
        let path = file.display();
        let now = Utc::now();
        let created = now.to_rfc3339();
        let check = |spec: String, at: (&str, &str)| {
            let verifier = IngressVerifier::from_specs(&[spec]).unwrap();
            verifier.verify(&signed(&key, b"x"), b"x", Some(&created), at, now)
        };
        assert!(check(format!("{path}"), ("any", "thing")).is_ok());
        assert!(check(format!("s1={path}"), ("s1", "f")).is_ok());
        assert!(check(format!("s1={path}"), ("s2", "f")).is_err());
        assert!(check(format!("s1/f={path}"), ("s1", "f")).is_ok());
        let refused = check(format!("s1/f={path}"), ("s1", "g")).unwrap_err().to_string();
        assert!(refused.contains("not valid for function 'g' of space 's1'"), "{refused}");
        let verified = check(format!("{path}"), AT).unwrap();
        assert_eq!(verified.expires_at, now.timestamp() + MAX_AGE_SECONDS + 1);
        assert!(IngressVerifier::from_specs(&["s1=/no/such.pem".into()]).is_err());
    }
}
