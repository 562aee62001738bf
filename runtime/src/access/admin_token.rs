//! The admin token: the one credential of the admin API and the console's full access. A server
//! keeps only its SHA-256 digest in memory and compares digests, in constant time.
//!
//! On its own, a server takes the token given (`--admin-token`), else the one saved in its data
//! directory, else a new random one it saves there. Servers sharing their state
//! (`--state postgres://…`) accept one token, the cluster's, whose digest is kept in the shared
//! state (tree `secrets`, key [`DIGEST_KEY`]): the first server to start sets it (from its given,
//! saved or generated token), the others take it, and a server given `--admin-token` sets it
//! anew, which every server hears of (the key is watched) and follows at once. A server whose
//! saved token is not the cluster's says so at start and accepts the cluster's.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmfn_host_apis::state::StateTree;

use crate::access::constant_time_eq;
use crate::state::{admin_token_path, StateDb};

/// Where the cluster's token digest is kept, in tree `secrets`.
pub const DIGEST_KEY: &str = "admin-token.sha256";

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Given,
    /// Saved in the data directory.
    Saved,
    /// Generated now and saved in the data directory: the caller shows it once.
    Generated(String),
    /// The cluster's, set by another server; the data directory holds none (`stale`: it holds
    /// one that is not the cluster's).
    Cluster {
        stale: bool,
    },
}

/// The token the server accepts, as its digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: Arc<RwLock<[u8; 32]>>,
    /// The shared state the digest is read again from when another server changes it.
    shared: Option<StateTree>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken").field("shared", &self.shared.is_some()).finish_non_exhaustive()
    }
}

/// A token as the server accepts it: surrounding blanks are not part of it.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

impl From<&str> for AdminToken {
    /// A server's own token, shared with no other server.
    fn from(token: &str) -> Self {
        Self { digest: Arc::new(RwLock::new(digest(token))), shared: None }
    }
}

impl AdminToken {
    /// The server's token, found as the [module](self) says, and where it came from.
    pub fn resolve(state: &StateDb, given: Option<String>) -> Result<(Self, TokenSource)> {
        let given = given.filter(|t| !t.trim().is_empty());
        let path = admin_token_path(state.data_dir());
        let saved = std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        if !state.shared() {
            let (token, source) = match (given, saved) {
                (Some(token), _) => (token, TokenSource::Given),
                (None, Some(token)) => (token, TokenSource::Saved),
                (None, None) => {
                    let token = generate(state)?;
                    (token.clone(), TokenSource::Generated(token))
                }
            };
            return Ok((Self::from(token.as_str()), source));
        }
        let tree = state.tree("secrets")?;
        let source = match (given, saved) {
            (Some(token), _) => {
                let ours = hex::encode(digest(&token));
                let before = tree.get(DIGEST_KEY).context("reading the admin token digest")?;
                if before.as_deref() != Some(ours.as_bytes()) {
                    tree.insert(DIGEST_KEY, &ours).context("saving the admin token digest")?;
                    tree.flush().context("saving the admin token digest")?;
                    if before.is_some() {
                        tracing::info!("the admin token given replaces the cluster's");
                    }
                }
                TokenSource::Given
            }
            (None, Some(token)) => match share(&tree, &token)? {
                true => TokenSource::Saved,
                false => TokenSource::Cluster { stale: true },
            },
            (None, None) if tree.contains_key(DIGEST_KEY)? => TokenSource::Cluster { stale: false },
            (None, None) => {
                // Saved only once it is the cluster's: another server may set one meanwhile.
                let token = new_token();
                match share(&tree, &token)? {
                    true => {
                        save(state, &token)?;
                        TokenSource::Generated(token)
                    }
                    false => TokenSource::Cluster { stale: false },
                }
            }
        };
        let token = Self { digest: Arc::new(RwLock::new([0; 32])), shared: Some(tree) };
        token.reload()?;
        Ok((token, source))
    }

    /// Whether `given` is the token.
    pub fn verify(&self, given: &str) -> bool {
        let digest = digest(given);
        constant_time_eq(&digest, &*self.digest.read().expect("admin token lock"))
    }

    /// Reads the cluster's digest again (another server set a new token); nothing to do for a
    /// server on its own.
    pub fn reload(&self) -> Result<()> {
        let Some(tree) = &self.shared else { return Ok(()) };
        let stored = tree
            .get(DIGEST_KEY)
            .context("reading the admin token digest")?
            .context("the cluster's admin token digest is missing from the shared state")?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&stored, &mut digest)
            .map_err(|_| anyhow::anyhow!("the cluster's admin token digest is malformed"))?;
        *self.digest.write().expect("admin token lock") = digest;
        Ok(())
    }
}

/// Makes `token` the cluster's unless it has one; whether it is the cluster's now.
fn share(tree: &StateTree, token: &str) -> Result<bool> {
    let ours = hex::encode(digest(token));
    let kept = tree.insert_new(DIGEST_KEY, &ours).context("saving the admin token digest")?;
    tree.flush().context("saving the admin token digest")?;
    Ok(kept == ours.as_bytes())
}

/// A new random token: 64 hex characters.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn generate(state: &StateDb) -> Result<String> {
    let token = new_token();
    save(state, &token)?;
    Ok(token)
}

fn save(state: &StateDb, token: &str) -> Result<()> {
    let path = admin_token_path(state.data_dir());
    crate::state::create_private_dir(state.data_dir())?;
    crate::state::write_private(&path, token).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_passes_and_blanks_around_it_do_not_matter() {
        let token = AdminToken::from("s3cret");
        assert!(token.verify("s3cret"));
        assert!(token.verify(" s3cret\n"));
        assert!(!token.verify("s3cre"));
        assert!(!token.verify("s3cret2"));
        assert!(!token.verify(""));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn on_its_own_a_server_takes_the_given_then_the_saved_token_else_generates_one() {
        let state = StateDb::temporary().unwrap();
        let (token, source) = AdminToken::resolve(&state, None).unwrap();
        let TokenSource::Generated(generated) = source else { panic!("{source:?}") };
        assert!(token.verify(&generated));
        let file = std::fs::read_to_string(admin_token_path(state.data_dir())).unwrap();
        assert_eq!(file, generated);
        let (again, source) = AdminToken::resolve(&state, None).unwrap();
        assert_eq!(source, TokenSource::Saved);
        assert!(again.verify(&generated));
        let (given, source) = AdminToken::resolve(&state, Some("given".into())).unwrap();
        assert_eq!(source, TokenSource::Given);
        assert!(given.verify("given") && !given.verify(&generated));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(admin_token_path(state.data_dir())).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
