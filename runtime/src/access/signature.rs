//! The request signature of the IXON platform on ingress calls, checked as ixoncdkingress does
//! in production mode: `Authorization: signature <hex>` is an Ed25519 signature of the raw
//! body by one of the configured public keys (PEM), and the body's `created_on` is at most
//! 60 seconds away from now.

use std::path::Path;

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::error::InvokeError;

/// How far `created_on` may be from now.
pub const MAX_AGE_SECONDS: i64 = 60;

/// The public keys ingress signatures are checked against; none means no check.
#[derive(Clone, Debug, Default)]
pub struct IngressVerifier {
    keys: Vec<VerifyingKey>,
}

impl IngressVerifier {
    /// Reads PEM public keys (`-----BEGIN PUBLIC KEY-----`), one or more per file.
    pub fn from_pem_files(paths: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for path in paths {
            let path = path.as_ref();
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
                keys.push(key);
            }
        }
        Ok(Self { keys })
    }

    pub fn from_keys(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }

    /// Whether ingress calls must be signed.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks a call: 401 with the reason unless the signature and time are right.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        created_on: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), InvokeError> {
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
        if self.keys.iter().any(|key| key.verify(body, &signature).is_ok()) {
            Ok(())
        } else {
            Err(unauthorized("the signature does not match any configured public key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::{Signer, SigningKey};

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
        let ok =
            verifier.verify(&signed(&key, body.as_bytes()), body.as_bytes(), Some(&created), now);
        assert!(ok.is_ok(), "{ok:?}");
        let naive = now.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        assert!(verifier.verify(&signed(&key, b"x"), b"x", Some(&naive), now).is_ok());

        let reason = |result: Result<(), InvokeError>| result.unwrap_err().to_string();
        let tampered = reason(verifier.verify(&signed(&key, b"a"), b"b", Some(&created), now));
        assert!(tampered.contains("does not match"), "{tampered}");
        let stranger = SigningKey::from_bytes(&[9; 32]);
        assert!(verifier.verify(&signed(&stranger, b"a"), b"a", Some(&created), now).is_err());
        let late = now + chrono::Duration::seconds(61);
        assert!(reason(verifier.verify(&signed(&key, b"a"), b"a", Some(&created), late))
            .contains("60 s"));
        assert!(reason(verifier.verify(&HeaderMap::new(), b"a", Some(&created), now))
            .contains("no `Authorization"));
        assert!(
            reason(verifier.verify(&signed(&key, b"a"), b"a", None, now)).contains("no created_on")
        );
        assert!(IngressVerifier::from_pem_files(&[dir.path().join("missing.pem")]).is_err());
    }
}
