//! Console sign-in sessions: a random session id in an `HttpOnly`, `SameSite=Strict` cookie,
//! a CSRF token the page sends back in a header on every change, idle and absolute expiry,
//! and a bound on failed sign-ins per client address. Sessions live in the node's memory
//! (a restart signs everyone out); only a hash of each session id is kept.
//!
//! This module decides who a console request is; what each scope may do is `admin`'s business,
//! and the pages and sign-in endpoints are `console`'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, Method};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::accounts::{Accounts, Role};
use super::admin_token::AdminToken;
use super::{constant_time_eq, Access, KeyCaller};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wasmfn_console";
/// The header a signed-in page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once; signing in beyond this ends the least recently used one.
const MAX_SESSIONS: usize = 1024;
/// Failed sign-ins one client address may make per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failed sign-ins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Client addresses whose failures are counted at once; beyond this the oldest are forgotten
/// (so a flood from many addresses costs bounded memory).
const MAX_TRACKED_CLIENTS: usize = 4096;

/// Who a console session acts as.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Signed in with the admin token: everything.
    Admin,
    /// Signed in with an API key: read-only views of the key's own space, and Try it with
    /// the key's identity.
    Space {
        space: String,
        key_id: String,
        key_name: String,
        #[serde(skip)]
        caller: Box<KeyCaller>,
    },
    /// Signed in with an operator account: in each space it has a role for, what the role
    /// allows (the roles are read again on every request).
    Account { id: String, email: String, roles: std::collections::BTreeMap<String, Role> },
}

/// What `GET /console/session` tells the page.
#[derive(Clone, Debug, Serialize)]
pub struct SessionView {
    pub scope: Scope,
    pub csrf_token: String,
    /// Seconds until the session ends at the latest.
    pub expires_in: u64,
    pub idle_timeout: u64,
}

/// Why a console request is refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Denied {
    #[error("not signed in, or the session ended: sign in again")]
    NoSession,
    #[error("this change needs the session's CSRF token in the X-CSRF-Token header")]
    Csrf,
}

/// Why a sign-in failed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SignInError {
    #[error("the token or API key is wrong, or the key was revoked")]
    Wrong,
    #[error("too many failed sign-ins from this address: try again in {retry_after} s")]
    TooMany { retry_after: u64 },
}

struct Session {
    scope: Scope,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Failed sign-ins of one address: when its window started and how many.
struct Failures {
    since: Instant,
    count: u32,
}

/// The node's console sessions.
pub struct ConsoleSessions {
    /// By SHA-256 of the session id.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Whether cookies get `Secure` (the server's public URL is https).
    secure: bool,
}

impl std::fmt::Debug for ConsoleSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSessions").field("secure", &self.secure).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn session_key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl ConsoleSessions {
    /// `secure`: mark cookies `Secure` (when the console is reached over https).
    pub fn new(secure: bool) -> Self {
        Self { sessions: Mutex::default(), failures: Mutex::default(), secure }
    }

    /// Signs in with the admin token or an API key; returns the new session's id (for the
    /// cookie) and what the page needs. Failures are counted per `client`.
    pub fn sign_in(
        &self,
        client: Option<IpAddr>,
        credential: &str,
        admin_token: &AdminToken,
        access: &Access,
    ) -> Result<(String, SessionView), SignInError> {
        self.may_try(client)?;
        let credential = credential.trim();
        let scope = if admin_token.verify(credential) {
            Some(Scope::Admin)
        } else {
            access.sign_in(credential).ok().flatten().map(|record| Scope::Space {
                space: record.space,
                key_id: record.id,
                key_name: record.name,
                caller: Box::new(record.caller),
            })
        };
        let Some(scope) = scope else {
            self.failed(client);
            return Err(SignInError::Wrong);
        };
        Ok(self.start(scope))
    }

    /// Refuses a client that used up its failed sign-ins.
    pub fn may_try(&self, client: Option<IpAddr>) -> Result<(), SignInError> {
        match client.and_then(|ip| self.blocked(ip, Instant::now())) {
            Some(retry_after) => Err(SignInError::TooMany { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in (or registration) of `client`.
    pub fn failed(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.count_failure(ip, Instant::now());
        }
    }

    /// Starts a session acting as `scope`: its id (for the cookie) and what the page needs.
    pub fn start(&self, scope: Scope) -> (String, SessionView) {
        let now = Instant::now();
        let id = random_token();
        let session = Session { scope, csrf: random_token(), created: now, last_seen: now };
        let view = view(&session, now);
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| alive(s, now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(session_key(&id), session);
        (id, view)
    }

    /// Seconds until `ip` may try again, when it used up its failures.
    fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let failures = lock(&self.failures);
        let entry = failures.get(&ip)?;
        let over = now.duration_since(entry.since) < FAILURE_WINDOW && entry.count >= MAX_FAILURES;
        over.then(|| (FAILURE_WINDOW - now.duration_since(entry.since)).as_secs().max(1))
    }

    fn count_failure(&self, ip: IpAddr, now: Instant) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED_CLIENTS && !failures.contains_key(&ip) {
            failures.retain(|_, f| now.duration_since(f.since) < FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED_CLIENTS {
                let oldest = failures.iter().min_by_key(|(_, f)| f.since).map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert(Failures { since: now, count: 0 });
        if now.duration_since(entry.since) >= FAILURE_WINDOW {
            *entry = Failures { since: now, count: 0 };
        }
        entry.count += 1;
        tracing::warn!(client = %ip, failures = entry.count, "console sign-in failed");
    }

    /// The scope of a request's session: it must be alive, and a change (any method but
    /// GET/HEAD) must carry the session's CSRF token. A session whose API key was revoked
    /// ends here. Each authorized request keeps the session from going idle.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        method: &Method,
        access: &Access,
        accounts: &Accounts,
    ) -> Result<Scope, Denied> {
        let id = session_cookie(headers).ok_or(Denied::NoSession)?;
        let key = session_key(&id);
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(&key).filter(|s| alive(s, now)).ok_or(Denied::NoSession)?;
        match &mut session.scope {
            Scope::Space { key_id, .. } if !access.key_exists(key_id) => {
                sessions.remove(&key);
                return Err(Denied::NoSession);
            }
            Scope::Account { id, roles, .. } => match accounts.get(id) {
                Some(account) => *roles = account.roles,
                None => {
                    sessions.remove(&key);
                    return Err(Denied::NoSession);
                }
            },
            _ => {}
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
            if !constant_time_eq(sent, session.csrf.as_bytes()) {
                return Err(Denied::Csrf);
            }
        }
        session.last_seen = now;
        Ok(session.scope.clone())
    }

    /// The request's live session, for the page that starts (or reloads) signed in.
    pub fn current(&self, headers: &HeaderMap) -> Option<SessionView> {
        let id = session_cookie(headers)?;
        let now = Instant::now();
        let sessions = lock(&self.sessions);
        sessions.get(&session_key(&id)).filter(|s| alive(s, now)).map(|s| view(s, now))
    }

    /// Ends the request's session (if any).
    pub fn sign_out(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            lock(&self.sessions).remove(&session_key(&id));
        }
    }

    /// The `Set-Cookie` value carrying a new session id.
    pub fn cookie(&self, id: &str) -> HeaderValue {
        let cookie = cookie::Cookie::build((SESSION_COOKIE, id.to_string()))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(LIFETIME.as_secs() as i64))
            .build();
        HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a header value")
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn removal_cookie(&self) -> HeaderValue {
        let cookie = cookie::Cookie::build((SESSION_COOKIE, ""))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .secure(self.secure)
            .max_age(cookie::time::Duration::ZERO)
            .build();
        HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a header value")
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.created) < LIFETIME
        && now.duration_since(session.last_seen) < IDLE_TIMEOUT
}

fn view(session: &Session, now: Instant) -> SessionView {
    SessionView {
        scope: session.scope.clone(),
        csrf_token: session.csrf.clone(),
        expires_in: LIFETIME.saturating_sub(now.duration_since(session.created)).as_secs(),
        idle_timeout: IDLE_TIMEOUT.as_secs(),
    }
}

/// The session id in a request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_string())
}

/// A `Cookie` header's value without the session cookie (for what a function sees): the
/// other cookies as they came.
pub fn without_session_cookie(value: &str) -> String {
    cookie::Cookie::split_parse(value)
        .filter_map(Result::ok)
        .filter(|c| c.name() != SESSION_COOKIE)
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a `Set-Cookie` value (a function's answer) would set or clear the session cookie.
pub fn sets_session_cookie(value: &HeaderValue) -> bool {
    let parsed = value.to_str().ok().and_then(|v| cookie::Cookie::parse(v).ok());
    parsed.is_some_and(|c| c.name() == SESSION_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::for_tests()
    }

    fn accounts() -> Accounts {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Accounts::open(
            wasmfn_host_apis::state::sled_tree::open(&db, "a").unwrap(),
            wasmfn_host_apis::state::sled_tree::open(&db, "i").unwrap(),
            wasmfn_host_apis::state::sled_tree::open(&db, "d").unwrap(),
        )
    }

    fn with_cookie(id: &str, csrf: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("other=1; {SESSION_COOKIE}={id}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        if let Some(csrf) = csrf {
            headers.insert(CSRF_HEADER, HeaderValue::from_str(csrf).unwrap());
        }
        headers
    }

    #[test]
    fn the_admin_token_signs_in_and_changes_need_the_csrf_token() {
        let (sessions, access) = (ConsoleSessions::new(false), access());
        let (id, view) = sessions.sign_in(None, " secret ", &"secret".into(), &access).unwrap();
        assert_eq!(view.scope, Scope::Admin);
        let read = sessions.authorize(&with_cookie(&id, None), &Method::GET, &access, &accounts());
        assert_eq!(read, Ok(Scope::Admin));
        let change =
            sessions.authorize(&with_cookie(&id, None), &Method::POST, &access, &accounts());
        assert_eq!(change, Err(Denied::Csrf));
        let wrong = sessions.authorize(
            &with_cookie(&id, Some("nope")),
            &Method::POST,
            &access,
            &accounts(),
        );
        assert_eq!(wrong, Err(Denied::Csrf));
        let right = with_cookie(&id, Some(&view.csrf_token));
        assert_eq!(
            sessions.authorize(&right, &Method::DELETE, &access, &accounts()),
            Ok(Scope::Admin)
        );
        sessions.sign_out(&right);
        assert_eq!(
            sessions.authorize(&right, &Method::GET, &access, &accounts()),
            Err(Denied::NoSession)
        );
    }

    #[test]
    fn an_api_key_signs_in_to_its_space_until_it_is_revoked() {
        let (sessions, access) = (ConsoleSessions::new(false), access());
        let (record, key) = access.create("shop", "viewer", KeyCaller::default()).unwrap();
        let (id, view) = sessions.sign_in(None, &key, &"admin-token".into(), &access).unwrap();
        assert!(matches!(&view.scope, Scope::Space { space, .. } if space == "shop"));
        assert!(sessions
            .authorize(&with_cookie(&id, None), &Method::GET, &access, &accounts())
            .is_ok());
        access.revoke("shop", &record.id).unwrap();
        let after = sessions.authorize(&with_cookie(&id, None), &Method::GET, &access, &accounts());
        assert_eq!(after, Err(Denied::NoSession));
    }

    #[test]
    fn failed_sign_ins_are_limited_per_address() {
        let (sessions, access) = (ConsoleSessions::new(false), access());
        let (attacker, other): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            let wrong = sessions.sign_in(Some(attacker), "guess", &"secret".into(), &access);
            assert_eq!(wrong.unwrap_err(), SignInError::Wrong);
        }
        // Even the right token is refused while the address is blocked ...
        let blocked = sessions.sign_in(Some(attacker), "secret", &"secret".into(), &access);
        assert!(matches!(blocked, Err(SignInError::TooMany { retry_after }) if retry_after > 0));
        // ... but other addresses are not locked out.
        assert!(sessions.sign_in(Some(other), "secret", &"secret".into(), &access).is_ok());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let plain = ConsoleSessions::new(false).cookie("abc");
        let text = plain.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"), "{text}");
        assert!(!text.contains("Secure"), "{text}");
        let secure = ConsoleSessions::new(true).cookie("abc");
        assert!(secure.to_str().unwrap().contains("Secure"));
        let removal = ConsoleSessions::new(false).removal_cookie();
        assert!(removal.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn an_unknown_or_missing_cookie_is_no_session() {
        let (sessions, access) = (ConsoleSessions::new(false), access());
        let denied = sessions.authorize(&HeaderMap::new(), &Method::GET, &access, &accounts());
        assert_eq!(denied, Err(Denied::NoSession));
        let forged =
            sessions.authorize(&with_cookie("forged", None), &Method::GET, &access, &accounts());
        assert_eq!(forged, Err(Denied::NoSession));
    }
}
