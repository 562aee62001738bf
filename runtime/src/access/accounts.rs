//! Operator accounts for the console: an email, a password (kept only as an Argon2id hash), a
//! language, and a role per space (viewer, developer, owner). The admin creates accounts or
//! invites someone by email (a one-time code, kept only as a hash, valid for 7 days); the
//! invited person registers with the code. Password checks are costly on purpose (Argon2's
//! memory and time), so at most [`MAX_CONCURRENT_CHECKS`] run at once.
//!
//! What each role may do on the admin API is `admin`'s business; the sign-in and its events
//! are `console`'s.

use std::collections::BTreeMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmfn_host_apis::state::StateTree;

/// Password checks (sign-in, registration) running at once; more wait. Each takes Argon2's
/// 19 MiB and some tens of milliseconds of one core.
pub const MAX_CONCURRENT_CHECKS: usize = 2;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (a long one costs hashing time, not storage).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How long an invitation code stays valid.
pub const INVITATION_DAYS: i64 = 7;

/// What an account may do in a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the space (functions, versions, triggers, keys, configuration, log) and tries
    /// its functions.
    Viewer,
    /// And deploys, rolls back and deletes functions, sets their configuration and secrets,
    /// and manages triggers and event subscriptions.
    Developer,
    /// And manages the space's API keys.
    Owner,
}

/// An operator account, as listed (never with its password hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub roles: BTreeMap<String, Role>,
    pub lang: String,
    pub created_at: String,
}

/// What the store keeps of an account.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    #[serde(flatten)]
    account: Account,
    password_hash: String,
}

/// An open invitation.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Invitation {
    email: String,
    roles: BTreeMap<String, Role>,
    expires_ms: i64,
}

/// Why an account operation failed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with email '{0}' exists already")]
    Exists(String),
    #[error("no account '{0}'")]
    NotFound(String),
    #[error("the invitation code is unknown, used or expired")]
    BadInvitation,
    #[error("the account store failed: {0}")]
    Store(String),
}

fn store_error(error: impl std::fmt::Display) -> AccountError {
    AccountError::Store(error.to_string())
}

/// The accounts and invitations, in the state database.
#[derive(Clone, Debug)]
pub struct Accounts {
    accounts: StateTree,
    invitations: StateTree,
    /// The email of each account, by id: every console request of an account looks it up.
    ids: StateTree,
    checks: std::sync::Arc<tokio::sync::Semaphore>,
}

/// `name@host` with one `@`, no spaces, at most 254 characters; lowercased.
fn normalise_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && !host.is_empty() && !host.contains('@') && host.contains('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(AccountError::Invalid(format!("'{email}' is not an email address")))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::Invalid(format!(
            "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes' worth of characters \
             (at least {MIN_PASSWORD_CHARS} characters)"
        )));
    }
    Ok(())
}

fn check_roles(roles: &BTreeMap<String, Role>) -> Result<(), AccountError> {
    for space in roles.keys() {
        crate::names::validate_name(space)
            .map_err(|e| AccountError::Invalid(format!("space '{space}': {e}")))?;
    }
    Ok(())
}

fn check_lang(lang: &str) -> Result<String, AccountError> {
    let lang = lang.trim();
    let valid = (2..=16).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(lang.to_string())
    } else {
        Err(AccountError::Invalid(format!("lang '{lang}' is not a language tag like en or nl-NL")))
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(store_error)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(store_error)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Accounts {
    /// Accounts by email in `accounts`, by id in `ids` (kept beside it), invitations in
    /// `invitations`.
    pub fn open(accounts: StateTree, invitations: StateTree, ids: StateTree) -> Self {
        let checks = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS));
        Self { accounts, invitations, ids, checks }
    }

    /// Every account, by email.
    pub fn list(&self) -> Result<Vec<Account>, AccountError> {
        let mut listed = Vec::new();
        for entry in self.accounts.iter() {
            let (_, value) = entry.map_err(store_error)?;
            let stored: StoredAccount = serde_json::from_slice(&value).map_err(store_error)?;
            listed.push(stored.account);
        }
        Ok(listed)
    }

    /// The account with this id, if any.
    pub fn get(&self, id: &str) -> Option<Account> {
        self.stored(id).ok().flatten().map(|(_, stored)| stored.account)
    }

    /// The email key and stored record of the account with this id.
    fn stored(&self, id: &str) -> Result<Option<(Vec<u8>, StoredAccount)>, AccountError> {
        let Some(email) = self.ids.get(id.as_bytes()).map_err(store_error)? else {
            return Ok(None);
        };
        let Some(value) = self.accounts.get(&email).map_err(store_error)? else { return Ok(None) };
        let stored = serde_json::from_slice(&value).map_err(store_error)?;
        Ok(Some((email, stored)))
    }

    /// Creates an account (the admin does, or registration with an invitation).
    pub async fn create(
        &self,
        email: &str,
        password: &str,
        roles: BTreeMap<String, Role>,
        lang: &str,
    ) -> Result<Account, AccountError> {
        let email = normalise_email(email)?;
        check_password(password)?;
        check_roles(&roles)?;
        let lang = check_lang(lang)?;
        if self.accounts.contains_key(email.as_bytes()).map_err(store_error)? {
            return Err(AccountError::Exists(email));
        }
        let password_hash = self.hashing(password.to_string()).await?;
        let account = Account {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.clone(),
            roles,
            lang,
            created_at: now_rfc3339(),
        };
        let stored = StoredAccount { account: account.clone(), password_hash };
        let value = serde_json::to_vec(&stored).expect("accounts serialise");
        // Two registrations of one email at once: only the first is kept.
        let kept = self.accounts.insert_new(email.as_bytes(), &value).map_err(store_error)?;
        if kept != value {
            return Err(AccountError::Exists(email));
        }
        self.ids.insert(account.id.as_bytes(), email.as_bytes()).map_err(store_error)?;
        self.accounts.flush().map_err(store_error)?;
        self.ids.flush().map_err(store_error)?;
        Ok(account)
    }

    /// Replaces an account's roles; its sessions act by them from their next request.
    pub fn set_roles(
        &self,
        id: &str,
        roles: BTreeMap<String, Role>,
    ) -> Result<Account, AccountError> {
        check_roles(&roles)?;
        let (email, mut stored) =
            self.stored(id)?.ok_or_else(|| AccountError::NotFound(id.to_string()))?;
        stored.account.roles = roles;
        let value = serde_json::to_vec(&stored).expect("accounts serialise");
        self.accounts.insert(email, value).map_err(store_error)?;
        self.accounts.flush().map_err(store_error)?;
        Ok(stored.account)
    }

    /// Deletes an account: its sessions end at their next request.
    pub fn delete(&self, id: &str) -> Result<(), AccountError> {
        let (email, _) = self.stored(id)?.ok_or_else(|| AccountError::NotFound(id.to_string()))?;
        self.accounts.remove(email).map_err(store_error)?;
        self.ids.remove(id.as_bytes()).map_err(store_error)?;
        self.accounts.flush().map_err(store_error)?;
        self.ids.flush().map_err(store_error)?;
        Ok(())
    }

    /// The account whose email and password these are. The password is checked (at a bounded
    /// concurrency) even for an unknown email, so the answer's timing does not tell which
    /// emails have accounts.
    pub async fn verify(&self, email: &str, password: &str) -> Option<Account> {
        let email = normalise_email(email).ok();
        let stored = email
            .and_then(|email| self.accounts.get(email.as_bytes()).ok().flatten())
            .and_then(|value| serde_json::from_slice::<StoredAccount>(&value).ok());
        let hash = match &stored {
            Some(stored) => stored.password_hash.clone(),
            None => dummy_hash().to_string(),
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return None;
        }
        let password = password.to_string();
        let _permit = self.checks.acquire().await.ok()?;
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
            })
        })
        .await
        .unwrap_or(false);
        stored.filter(|_| matches).map(|stored| stored.account)
    }

    /// Invites `email` with `roles`: the code to register with, shown this once.
    pub fn invite(
        &self,
        email: &str,
        roles: BTreeMap<String, Role>,
    ) -> Result<(String, String), AccountError> {
        let email = normalise_email(email)?;
        check_roles(&roles)?;
        if self.accounts.contains_key(email.as_bytes()).map_err(store_error)? {
            return Err(AccountError::Exists(email));
        }
        let code = format!("wfi_{}", hex::encode(rand::random::<[u8; 24]>()));
        let expires = chrono::Utc::now() + chrono::Duration::days(INVITATION_DAYS);
        let invitation = Invitation { email, roles, expires_ms: expires.timestamp_millis() };
        let value = serde_json::to_vec(&invitation).expect("invitations serialise");
        self.invitations.insert(invitation_key(&code), value).map_err(store_error)?;
        self.invitations.flush().map_err(store_error)?;
        Ok((code, expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }

    /// Registers with an invitation code: the account, with the invitation's email and roles.
    /// The code works once.
    pub async fn register(
        &self,
        code: &str,
        password: &str,
        lang: &str,
    ) -> Result<Account, AccountError> {
        check_password(password)?;
        check_lang(lang)?;
        let key = invitation_key(code.trim());
        // Taken out first, so a code is used once even by two registrations at the same time.
        let value = self.invitations.remove(key).map_err(store_error)?;
        let invitation: Invitation = value
            .and_then(|value| serde_json::from_slice(&value).ok())
            .ok_or(AccountError::BadInvitation)?;
        if invitation.expires_ms < chrono::Utc::now().timestamp_millis() {
            return Err(AccountError::BadInvitation);
        }
        self.create(&invitation.email, password, invitation.roles, lang).await
    }

    async fn hashing(&self, password: String) -> Result<String, AccountError> {
        let _permit = self.checks.acquire().await.map_err(store_error)?;
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(store_error)?
    }
}

fn invitation_key(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// A valid hash of a password nobody has, to check against when an email has no account.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hash_password(&hex::encode(rand::random::<[u8; 16]>())).expect("hashing a random password")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmfn_host_apis::state::sled_tree;

    fn accounts() -> Accounts {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Accounts::open(
            sled_tree::open(&db, "a").unwrap(),
            sled_tree::open(&db, "i").unwrap(),
            sled_tree::open(&db, "d").unwrap(),
        )
    }

    fn roles(pairs: &[(&str, Role)]) -> BTreeMap<String, Role> {
        pairs.iter().map(|(s, r)| (s.to_string(), *r)).collect()
    }

    #[tokio::test]
    async fn an_account_signs_in_with_its_password_only() {
        let accounts = accounts();
        let made = accounts
            .create(
                " Ada@Example.com ",
                "correct horse",
                roles(&[("plant", Role::Developer)]),
                "en",
            )
            .await
            .unwrap();
        assert_eq!(made.email, "ada@example.com");
        let found = accounts.verify("ADA@example.com", "correct horse").await;
        assert_eq!(found.as_ref().map(|a| &a.id), Some(&made.id));
        assert_eq!(accounts.verify("ada@example.com", "wrong horse!").await, None);
        assert_eq!(accounts.verify("nobody@example.com", "correct horse").await, None);
        let again = accounts.create("ada@example.com", "another one!", BTreeMap::new(), "en").await;
        assert_eq!(again.unwrap_err(), AccountError::Exists("ada@example.com".into()));
        accounts.delete(&made.id).unwrap();
        assert_eq!(accounts.verify("ada@example.com", "correct horse").await, None);
    }

    #[tokio::test]
    async fn weak_passwords_and_bad_emails_are_refused() {
        let accounts = accounts();
        for (email, password) in [("ada@example.com", "short"), ("not-an-email", "long enough pw")]
        {
            let refused = accounts.create(email, password, BTreeMap::new(), "en").await;
            assert!(matches!(refused, Err(AccountError::Invalid(_))), "{email} {password}");
        }
        let bad_space = accounts
            .create(
                "ada@example.com",
                "long enough pw",
                roles(&[("Bad Space", Role::Viewer)]),
                "en",
            )
            .await;
        assert!(matches!(bad_space, Err(AccountError::Invalid(_))));
    }

    #[tokio::test]
    async fn an_invitation_registers_once() {
        let accounts = accounts();
        let (code, _) =
            accounts.invite("bob@example.com", roles(&[("plant", Role::Viewer)])).unwrap();
        let bob = accounts.register(&code, "bob's long password", "nl").await.unwrap();
        assert_eq!((bob.email.as_str(), bob.lang.as_str()), ("bob@example.com", "nl"));
        assert_eq!(bob.roles, roles(&[("plant", Role::Viewer)]));
        let reused = accounts.register(&code, "bob's long password", "nl").await;
        assert_eq!(reused.unwrap_err(), AccountError::BadInvitation);
        let forged = accounts.register("wfi_forged", "bob's long password", "nl").await;
        assert_eq!(forged.unwrap_err(), AccountError::BadInvitation);
    }
}
