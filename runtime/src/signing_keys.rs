//! The server's signing keys (presigned object URLs, function sessions), kept sealed in the
//! state store as `<name>` and `<name>.previous` (tree `secrets`). A rotation (admin API
//! `POST /admin/signing-keys/rotate`) makes a new current key and keeps the old one as the
//! previous, which still verifies until the next rotation; with state shared by a cluster the
//! other servers hear of it and load the new keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use wasmfn_host_apis::signing::KeyRing;

use crate::state::StateDb;

/// The key rings of this server, by name.
pub struct SigningKeys {
    state: StateDb,
    rings: Mutex<Vec<(String, Arc<KeyRing>)>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("keys", &self.fingerprints()).finish()
    }
}

fn label(name: &str) -> String {
    format!("node/{name}")
}

fn previous_key(name: &str) -> String {
    format!("{name}.previous")
}

impl SigningKeys {
    pub fn new(state: StateDb) -> Self {
        Self { state, rings: Mutex::default() }
    }

    /// The ring of key `name` (made on first use), kept to be rotated and reloaded.
    pub fn ring(&self, name: &str) -> Result<Arc<KeyRing>> {
        let (current, previous) = self.load(name)?;
        let ring = KeyRing::new(current, previous);
        self.adopt(name, ring.clone());
        Ok(ring)
    }

    /// Keeps `ring` (made elsewhere from key `name`) to be rotated and reloaded; its previous
    /// key is loaded by the next [`SigningKeys::reload`].
    pub fn adopt(&self, name: &str, ring: Arc<KeyRing>) {
        self.rings.lock().expect("rings").push((name.to_string(), ring));
    }

    /// The current key of `name` and the previous one, if any.
    fn load(&self, name: &str) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        let current = node_secret(&self.state, name)?;
        let tree = self.state.tree("secrets")?;
        let previous = match tree.get(previous_key(name)).context("reading a signing key")? {
            Some(stored) => Some(
                self.state
                    .sealer()
                    .unseal_stored(&label(name), &stored)
                    .map_err(|e| {
                        crate::sealed::open_failed(&format!("previous {name} signing key"), &e)
                    })?
                    .plaintext,
            ),
            None => None,
        };
        Ok((current, previous))
    }

    /// Reads every key again (another server rotated them).
    pub fn reload(&self) -> Result<()> {
        let rings = self.rings.lock().expect("rings").clone();
        for (name, ring) in rings {
            let (current, previous) = self.load(&name)?;
            ring.set(current, previous);
        }
        Ok(())
    }

    /// Makes a new current key of every ring, the old one becoming the previous; returns the
    /// new fingerprints.
    pub fn rotate(&self) -> Result<BTreeMap<String, String>> {
        let tree = self.state.tree("secrets")?;
        let rings = self.rings.lock().expect("rings").clone();
        for (name, ring) in rings {
            let old = ring.current();
            let new: [u8; 32] = rand::random();
            let seal = |secret: &[u8]| -> Result<Vec<u8>> {
                let sealed = self
                    .state
                    .sealer()
                    .seal(&label(&name), secret)
                    .map_err(|e| anyhow::anyhow!("sealing the {name} key: {e}"))?;
                Ok(sealed.into_bytes())
            };
            tree.apply(vec![
                (previous_key(&name).into_bytes(), Some(seal(&old)?)),
                (name.clone().into_bytes(), Some(seal(&new)?)),
            ])
            .with_context(|| format!("saving the rotated {name} key"))?;
            tree.flush().with_context(|| format!("saving the rotated {name} key"))?;
            ring.set(new.to_vec(), Some(old));
            tracing::info!(key = %name, fingerprint = %ring.fingerprint(), "signing key rotated");
        }
        Ok(self.fingerprints())
    }

    /// The fingerprint of every current key, by name.
    pub fn fingerprints(&self) -> BTreeMap<String, String> {
        let rings = self.rings.lock().expect("rings");
        rings.iter().map(|(name, ring)| (name.clone(), ring.fingerprint())).collect()
    }
}

/// A signing key of this node (of the cluster, when the state is shared), named `name`:
/// generated once and kept in the state database, sealed with the secrets key. Nodes starting
/// at once keep the same one (the first written). One kept in plain text by an older version,
/// or sealed with the previous secrets key, is sealed again with the current one.
pub fn node_secret(state: &StateDb, name: &str) -> Result<Vec<u8>> {
    let tree = state.tree("secrets")?;
    let label = format!("node/{name}");
    let seal = |secret: &[u8]| -> Result<String> {
        state
            .sealer()
            .seal(&label, secret)
            .map_err(|e| anyhow::anyhow!("sealing the {name} key: {e}"))
    };
    let stored = match tree.get(name).with_context(|| format!("reading the {name} key"))? {
        Some(stored) => stored,
        None => {
            let secret: [u8; 32] = rand::random();
            let kept = tree
                .insert_new(name, seal(&secret)?.as_bytes())
                .with_context(|| format!("saving the {name} key"))?;
            tree.flush().with_context(|| format!("saving the {name} key"))?;
            kept
        }
    };
    let unsealed = state
        .sealer()
        .unseal_stored(&label, &stored)
        .map_err(|e| crate::sealed::open_failed(&format!("{name} signing key"), &e))?;
    if unsealed.stale {
        tree.insert(name, seal(&unsealed.plaintext)?.as_bytes())
            .and_then(|()| tree.flush())
            .with_context(|| format!("saving the {name} key"))?;
    }
    Ok(unsealed.plaintext)
}
