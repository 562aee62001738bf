//! Presigned object URLs: an HMAC-SHA256 over method, space, key and expiry, so that whoever
//! holds the URL may GET (or PUT) one object on the wasmfn server until it expires, without a key.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The longest a presigned URL may live.
pub const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

/// Signs and checks presigned URLs with the node's secret.
#[derive(Clone)]
pub struct Presigner {
    keys: Arc<crate::signing::KeyRing>,
    /// The server's public base URL (`http://host:port`), without a trailing slash; settable
    /// once the server knows the address it listens on.
    base_url: Arc<RwLock<String>>,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner").field("base_url", &self.base_url()).finish_non_exhaustive()
    }
}

/// Why a presigned request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("the link has expired")]
    Expired,
    #[error("the link's signature is not valid")]
    BadSignature,
    #[error("method must be GET or PUT")]
    BadMethod,
}

impl Presigner {
    pub fn new(secret: Vec<u8>, base_url: &str) -> Self {
        Self::with_keys(crate::signing::KeyRing::new(secret, None), base_url)
    }

    /// Signs with `keys`' current key and accepts links of its previous one too.
    pub fn with_keys(keys: Arc<crate::signing::KeyRing>, base_url: &str) -> Self {
        let base_url = Arc::new(RwLock::new(base_url.trim_end_matches('/').to_string()));
        Self { keys, base_url }
    }

    /// The keys links are signed with (rotated by the server).
    pub fn keys(&self) -> &Arc<crate::signing::KeyRing> {
        &self.keys
    }

    pub fn base_url(&self) -> String {
        self.base_url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the base URL of links made from now on (links already made stay valid).
    pub fn set_base_url(&self, base_url: &str) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) =
            base_url.trim_end_matches('/').to_string();
    }

    fn mac(secret: &[u8], method: &str, space: &str, key: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        for part in [method, space, key, &expires.to_string()] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The URL for `method` on `space`/`key`, valid until `expires` (Unix seconds).
    pub fn url(
        &self,
        method: &str,
        space: &str,
        key: &str,
        expires: u64,
    ) -> Result<String, PresignError> {
        let method = normalise(method)?;
        let mac = Self::mac(&self.keys.current(), method, space, key, expires);
        let signature = hex::encode(mac.finalize().into_bytes());
        let path: Vec<String> = key.split('/').map(encode_segment).collect();
        Ok(format!(
            "{}/objects/{}/{}?method={method}&expires={expires}&signature={signature}",
            self.base_url(),
            encode_segment(space),
            path.join("/")
        ))
    }

    /// Checks a presigned request at time `now` (Unix seconds).
    pub fn verify(
        &self,
        method: &str,
        space: &str,
        key: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), PresignError> {
        let method = normalise(method)?;
        let signature = hex::decode(signature).map_err(|_| PresignError::BadSignature)?;
        let signed = self.keys.verifying().iter().any(|secret| {
            Self::mac(secret, method, space, key, expires).verify_slice(&signature).is_ok()
        });
        if !signed {
            return Err(PresignError::BadSignature);
        }
        if now > expires {
            return Err(PresignError::Expired);
        }
        Ok(())
    }
}

fn normalise(method: &str) -> Result<&'static str, PresignError> {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Ok("GET"),
        "PUT" => Ok("PUT"),
        _ => Err(PresignError::BadMethod),
    }
}

fn encode_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_of_the_previous_key_verify_until_the_next_rotation() {
        let keys = crate::signing::KeyRing::new(b"first".to_vec(), None);
        let signer = Presigner::with_keys(keys.clone(), "http://127.0.0.1:8080");
        let signature_of = |url: String| url.rsplit_once("signature=").unwrap().1.to_string();
        let old = signature_of(signer.url("GET", "s", "k", 1000).unwrap());
        keys.set(b"second".to_vec(), Some(b"first".to_vec()));
        let new = signature_of(signer.url("GET", "s", "k", 1000).unwrap());
        assert_ne!(old, new, "signed with the new key");
        assert_eq!(signer.verify("GET", "s", "k", 1000, &old, 1), Ok(()));
        assert_eq!(signer.verify("GET", "s", "k", 1000, &new, 1), Ok(()));
        keys.set(b"third".to_vec(), Some(b"second".to_vec()));
        assert_eq!(signer.verify("GET", "s", "k", 1000, &old, 1), Err(PresignError::BadSignature));
        assert_eq!(signer.verify("GET", "s", "k", 1000, &new, 1), Ok(()));
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires_and_not_when_changed() {
        let signer = Presigner::new(b"secret".to_vec(), "http://127.0.0.1:8080/");
        let url = signer.url("get", "space-a", "dir/file one.txt", 1000).unwrap();
        assert!(url.starts_with("http://127.0.0.1:8080/objects/space-a/dir/file%20one.txt?method=GET&expires=1000&signature="), "{url}");
        let signature = url.rsplit_once("signature=").unwrap().1;
        assert_eq!(
            signer.verify("GET", "space-a", "dir/file one.txt", 1000, signature, 999),
            Ok(())
        );
        assert_eq!(
            signer.verify("GET", "space-a", "dir/file one.txt", 1000, signature, 1001),
            Err(PresignError::Expired)
        );
        for (method, space, key, expires) in [
            ("PUT", "space-a", "dir/file one.txt", 1000),
            ("GET", "space-b", "dir/file one.txt", 1000),
            ("GET", "space-a", "dir/other.txt", 1000),
            ("GET", "space-a", "dir/file one.txt", 99_999),
        ] {
            assert_eq!(
                signer.verify(method, space, key, expires, signature, 0),
                Err(PresignError::BadSignature)
            );
        }
        let other = Presigner::new(b"other".to_vec(), "http://x");
        assert_eq!(
            other.verify("GET", "space-a", "dir/file one.txt", 1000, signature, 0),
            Err(PresignError::BadSignature)
        );
        assert_eq!(signer.url("DELETE", "s", "k", 1), Err(PresignError::BadMethod));
    }
}
