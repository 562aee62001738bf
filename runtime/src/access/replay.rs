//! Ingress replay protection: a signed ingress call is accepted once. Every accepted signature
//! is kept in the state database until the signed `created_on` is too old to pass the time
//! check again, so a restart does not reopen the window; expired entries are swept as time
//! passes, and the cache is bounded (when full of still-valid signatures, new calls are refused
//! with 503 rather than letting old ones be replayed).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use crate::error::InvokeError;
use wasmfn_host_apis::state::StateTree;

use super::signature::VerifiedSignature;

/// Signatures kept at most: at the 60 s window (±60 s of `created_on`), about 4,000 signed
/// calls a second.
pub const DEFAULT_CAPACITY: usize = 500_000;

/// The signatures accepted and not yet expired.
#[derive(Debug)]
pub struct SeenSignatures {
    /// Key: expiry (Unix seconds, big-endian, so a range scan finds the expired ones) and the
    /// 64 signature bytes. Value: empty.
    tree: StateTree,
    capacity: usize,
    count: AtomicUsize,
    swept_at: AtomicI64,
}

impl SeenSignatures {
    /// Opens the cache kept in `tree`.
    pub fn open(tree: StateTree, capacity: usize) -> Self {
        let count = AtomicUsize::new(tree.len().unwrap_or(0));
        Self { tree, capacity: capacity.max(1), count, swept_at: AtomicI64::new(i64::MIN) }
    }

    /// Records `verified` as used; 401 when it was used before, 503 when the cache is full.
    pub fn accept_once(&self, verified: &VerifiedSignature, now: i64) -> Result<(), InvokeError> {
        if self.swept_at.swap(now, Ordering::SeqCst) != now {
            self.sweep(now);
        }
        let mut key = Vec::with_capacity(72);
        key.extend_from_slice(&verified.expires_at.to_be_bytes());
        key.extend_from_slice(&verified.signature);
        let used = || {
            InvokeError::Unauthorized(
                "ingress call refused: this signature was already used (a signed call is \
                 accepted once)"
                    .into(),
            )
        };
        let failed = |error: wasmfn_host_apis::state::StateError| {
            tracing::error!(%error, "the ingress replay cache failed");
            InvokeError::Unavailable("the ingress replay cache failed; retry later".into())
        };
        if self.tree.contains_key(&key).map_err(failed)? {
            return Err(used());
        }
        if self.count.load(Ordering::SeqCst) >= self.capacity {
            tracing::warn!(capacity = self.capacity, "the ingress replay cache is full");
            return Err(InvokeError::Unavailable(
                "too many signed ingress calls within the signature window; retry later".into(),
            ));
        }
        // Two concurrent calls with the same signature (on this node or another one sharing
        // the state): one insert wins, the one whose mark is kept.
        let mark: [u8; 8] = rand::random();
        let kept = self.tree.insert_new(&key, mark).map_err(failed)?;
        if kept != mark {
            return Err(used());
        }
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Drops the signatures whose window has passed.
    fn sweep(&self, now: i64) {
        // Keys sort by expiry; negative expiries (times before 1970) sort last as unsigned
        // bytes but are expired too, and never pass the time check in the first place.
        let end = now.max(0).to_be_bytes();
        let mut removed = 0;
        for entry in self.tree.below(end, false) {
            let Ok((key, _)) = entry else { break };
            if self.tree.remove(&key).ok().flatten().is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            self.count.fetch_sub(removed, Ordering::SeqCst);
            tracing::debug!(removed, "expired ingress signatures swept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmfn_host_apis::state::sled_tree;

    fn signature(byte: u8, expires_at: i64) -> VerifiedSignature {
        VerifiedSignature { signature: [byte; 64], expires_at }
    }

    #[test]
    fn a_signature_passes_once_survives_a_reopen_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let seen = SeenSignatures::open(sled_tree::open(&db, "seen").unwrap(), 10);
        assert!(seen.accept_once(&signature(1, 1_000), 900).is_ok());
        let again = seen.accept_once(&signature(1, 1_000), 901).unwrap_err();
        assert_eq!(again.status(), 401);
        assert!(again.to_string().contains("already used"), "{again}");

        let reopened = SeenSignatures::open(sled_tree::open(&db, "seen").unwrap(), 10);
        assert!(reopened.accept_once(&signature(1, 1_000), 902).is_err(), "kept on disk");
        assert!(reopened.accept_once(&signature(2, 1_000), 902).is_ok());
        // Past the expiry both are swept.
        assert!(reopened.accept_once(&signature(3, 2_000), 1_001).is_ok());
        assert_eq!(reopened.count.load(Ordering::SeqCst), 1);
        assert_eq!(sled_tree::open(&db, "seen").unwrap().len().unwrap(), 1);
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let seen = SeenSignatures::open(sled_tree::open(&db, "seen").unwrap(), 2);
        assert!(seen.accept_once(&signature(1, 100), 50).is_ok());
        assert!(seen.accept_once(&signature(2, 100), 50).is_ok());
        let full = seen.accept_once(&signature(3, 100), 50).unwrap_err();
        assert_eq!(full.status(), 503);
        let replay = seen.accept_once(&signature(1, 100), 50).unwrap_err();
        assert_eq!(replay.status(), 401, "still remembered");
        assert!(seen.accept_once(&signature(3, 200), 101).is_ok(), "room after the sweep");
    }
}
