//! Signing keys that can be rotated while the server runs: the current key signs, and the one
//! before it still verifies until the next rotation, so links and tokens made just before a
//! rotation keep working for their lifetime (presigned URLs, function sessions).

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

/// The current key and the previous one.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<(Vec<u8>, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("current", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl KeyRing {
    pub fn new(current: Vec<u8>, previous: Option<Vec<u8>>) -> Arc<Self> {
        Arc::new(Self { keys: RwLock::new((current, previous)) })
    }

    /// The key that signs.
    pub fn current(&self) -> Vec<u8> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// The keys that verify, current first.
    pub fn verifying(&self) -> Vec<Vec<u8>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(keys.0.clone()).chain(keys.1.clone()).collect()
    }

    /// Replaces both keys.
    pub fn set(&self, current: Vec<u8>, previous: Option<Vec<u8>>) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = (current, previous);
    }

    /// Names the current key without revealing it: the first 8 hex digits of its SHA-256.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.current())[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_key_verifies_until_the_next_rotation() {
        let ring = KeyRing::new(b"one".to_vec(), None);
        assert_eq!(ring.verifying(), vec![b"one".to_vec()]);
        let first = ring.fingerprint();
        ring.set(b"two".to_vec(), Some(b"one".to_vec()));
        assert_eq!(ring.current(), b"two".to_vec());
        assert_eq!(ring.verifying(), vec![b"two".to_vec(), b"one".to_vec()]);
        assert_ne!(ring.fingerprint(), first);
        assert_eq!(ring.fingerprint().len(), 8);
        assert!(!format!("{ring:?}").contains("two"));
    }
}
