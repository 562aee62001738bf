//! Function sessions: the short-lived token a webhook gets as `_function_session`. It names one
//! space and document database and expires after the configured minutes (10-20, default 15);
//! within them it authorises calls back into that space's documents and objects over HTTP
//! (see the server's `server::sessions`). Format: `wfs1.<claims, base64url JSON>.<HMAC-SHA256, base64url>`.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::cron::Clock;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "wfs1";

/// Allowed session lifetimes, in minutes.
pub const MIN_MINUTES: u64 = 10;
pub const MAX_MINUTES: u64 = 20;
pub const DEFAULT_MINUTES: u64 = 15;

/// What a session token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub space: String,
    /// The document database of the event (a company's, or `_space`).
    pub database: String,
    /// The subscription the token was issued for.
    pub subscription: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the function session is not a valid token")]
    Malformed,
    #[error("the function session's signature is not valid")]
    BadSignature,
    #[error("the function session has expired")]
    Expired,
}

/// Issues and checks session tokens.
pub struct Sessions {
    keys: Arc<wasmfn_host_apis::signing::KeyRing>,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl Sessions {
    /// `minutes` must be within 10..=20.
    pub fn new(secret: Vec<u8>, minutes: u64, clock: Arc<dyn Clock>) -> Result<Self, String> {
        Self::with_keys(wasmfn_host_apis::signing::KeyRing::new(secret, None), minutes, clock)
    }

    /// Signs with `keys`' current key and accepts tokens of its previous one too.
    pub fn with_keys(
        keys: Arc<wasmfn_host_apis::signing::KeyRing>,
        minutes: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        if !(MIN_MINUTES..=MAX_MINUTES).contains(&minutes) {
            return Err(format!(
                "function sessions last {MIN_MINUTES} to {MAX_MINUTES} minutes, not {minutes}"
            ));
        }
        Ok(Self { keys, lifetime: Duration::from_secs(minutes * 60), clock })
    }

    /// The keys tokens are signed with (rotated by the server).
    pub fn keys(&self) -> &Arc<wasmfn_host_apis::signing::KeyRing> {
        &self.keys
    }

    fn mac(secret: &[u8], payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(PREFIX.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac
    }

    pub fn issue(&self, space: &str, database: &str, subscription: &str) -> String {
        let claims = SessionClaims {
            space: space.into(),
            database: database.into(),
            subscription: subscription.into(),
            exp: self.clock.now().timestamp() + self.lifetime.as_secs() as i64,
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let mac = Self::mac(&self.keys.current(), &payload);
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{PREFIX}.{payload}.{signature}")
    }

    pub fn verify(&self, token: &str) -> Result<SessionClaims, SessionError> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SessionError::Malformed)?;
        let signed = self
            .keys
            .verifying()
            .iter()
            .any(|k| Self::mac(k, payload).verify_slice(&signature).is_ok());
        if !signed {
            return Err(SessionError::BadSignature);
        }
        let claims: SessionClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(SessionError::Malformed)?;
        if self.clock.now().timestamp() >= claims.exp {
            return Err(SessionError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::ManualClock;

    #[test]
    fn tokens_work_until_they_expire_and_not_when_tampered() {
        let start = chrono::Utc::now();
        let clock = Arc::new(ManualClock::new(start));
        let sessions = Sessions::new(b"key".to_vec(), 15, clock.clone()).unwrap();
        let token = sessions.issue("space", "_space", "hook");
        let claims = sessions.verify(&token).unwrap();
        assert_eq!((claims.space.as_str(), claims.database.as_str()), ("space", "_space"));
        clock.set(start + chrono::Duration::minutes(14));
        assert!(sessions.verify(&token).is_ok());
        clock.set(start + chrono::Duration::minutes(15));
        assert_eq!(sessions.verify(&token), Err(SessionError::Expired));

        clock.set(start);
        let (head, signature) = token.rsplit_once('.').unwrap();
        let (_, payload) = head.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            br#"{"space":"other","database":"_space","subscription":"hook","exp":99999999999}"#,
        );
        let forged = format!("{PREFIX}.{forged_claims}.{signature}");
        assert_eq!(sessions.verify(&forged), Err(SessionError::BadSignature));
        let other = Sessions::new(b"another key".to_vec(), 15, clock.clone()).unwrap();
        assert_eq!(other.verify(&token), Err(SessionError::BadSignature));
        assert_eq!(sessions.verify(&format!("{PREFIX}.{payload}")), Err(SessionError::Malformed));
        assert_eq!(sessions.verify("garbage"), Err(SessionError::Malformed));
        assert!(Sessions::new(b"k".to_vec(), 9, clock.clone()).is_err());
        assert!(Sessions::new(b"k".to_vec(), 21, clock).is_err());
    }
}
