//! Secrets at rest: the key the secrets kept in the state database are sealed with, and the
//! sealing itself (ChaCha20-Poly1305, a random 96-bit nonce per value). Webhook secrets, MQTT
//! trigger passwords, `[secrets]` overrides and the node's own signing keys go through here
//! before they reach sled, so a copy of `<data-dir>/state` without the key reveals none of them.
//!
//! A sealed value is text: `wfs1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id
//! (8 hex digits of a hash of the key) says which key sealed it, so that a rotated key can be
//! told from a wrong one. Each value is bound to its record by a label (the associated data):
//! a sealed value copied into another record does not open there.
//!
//! This module owns the key material and the format; it must not log, and its errors never
//! hold a plaintext or a key (only key ids, which are not secret).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::{Digest, Sha256};

/// What every sealed value starts with (format version 1).
pub const PREFIX: &str = "wfs1:";
/// Bytes of a secrets key.
pub const KEY_LEN: usize = 32;
/// Name of the key file generated in the data directory when no key is given.
pub const DEFAULT_KEY_FILE: &str = "secrets.key";

/// Why a key cannot be used or a value cannot be opened. Never holds secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a secrets key must be 32 random bytes, base64-encoded")]
    BadKey,
    #[error("the value is not in the sealed format")]
    Malformed,
    #[error("the value was sealed with key {found}, not with the current key {current}{}",
        .previous.as_ref().map(|p| format!(" nor the previous key {p}")).unwrap_or_default())]
    UnknownKey { found: String, current: String, previous: Option<String> },
    #[error(
        "the value does not open with key {key_id}: it was altered or moved from another record"
    )]
    Tampered { key_id: String },
    #[error("the value is too large to seal")]
    TooLarge,
}

/// One secrets key. Its `Debug` shows the key id only.
pub struct SecretsKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SecretsKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadKey);
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| SealError::BadKey)?;
        let digest = Sha256::new().chain_update(b"wasmfn secrets key id\0").chain_update(bytes);
        let id = hex::encode(&digest.finalize()[..4]);
        Ok(Self { id, key: LessSafeKey::new(key) })
    }

    /// A key written as base64 (a key file's text or `WASMFN_SECRETS_KEY`).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// A new random key, as the text a key file holds.
    pub fn generate_text() -> String {
        STANDARD.encode(rand::random::<[u8; KEY_LEN]>())
    }

    /// The key id sealed values name (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A stored value made readable, and whether its stored form must be rewritten (it was plain
/// text from an older version, or sealed with the previous key).
#[derive(PartialEq, Eq)]
pub struct Unsealed {
    pub plaintext: Vec<u8>,
    pub stale: bool,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed").field("stale", &self.stale).finish_non_exhaustive()
    }
}

/// Seals with the current key; opens with the current or the previous one.
#[derive(Debug)]
pub struct Sealer {
    current: SecretsKey,
    previous: Option<SecretsKey>,
}

impl Sealer {
    pub fn new(current: SecretsKey, previous: Option<SecretsKey>) -> Self {
        // A previous key equal to the current one changes nothing.
        let previous = previous.filter(|p| p.id != current.id);
        Self { current, previous }
    }

    /// A random key that lives as long as the process (for state that does not outlive it).
    pub fn ephemeral() -> Self {
        let bytes: [u8; KEY_LEN] = rand::random();
        Self::new(SecretsKey::from_bytes(&bytes).expect("a key of the right length"), None)
    }

    pub fn key_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext` for the record named `label`.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(label.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SealError::TooLarge)?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(format!("{PREFIX}{}:{}", self.current.id, URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a value sealed for `label`; also tells whether it was sealed with the previous key.
    fn open_with_key(&self, label: &str, sealed: &str) -> Result<(Vec<u8>, bool), SealError> {
        let rest = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let (key_id, body) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let (key, previous) = if key_id == self.current.id {
            (&self.current, false)
        } else if let Some(previous) = self.previous.as_ref().filter(|p| p.id == key_id) {
            (previous, true)
        } else {
            return Err(SealError::UnknownKey {
                found: key_id.chars().take(16).collect(),
                current: self.current.id.clone(),
                previous: self.previous.as_ref().map(|p| p.id.clone()),
            });
        };
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(SealError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN])
            .map_err(|_| SealError::Malformed)?;
        let tampered = || SealError::Tampered { key_id: key.id.clone() };
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut bytes[NONCE_LEN..])
            .map_err(|_| tampered())?;
        Ok((plaintext.to_vec(), previous))
    }

    /// Opens a value sealed for `label`.
    pub fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        self.open_with_key(label, sealed).map(|(plaintext, _)| plaintext)
    }

    /// Reads a stored value: sealed ones are opened; anything not in the sealed format is a
    /// plain value written by an older version. Either way `stale` says to seal it again.
    pub fn unseal_stored(&self, label: &str, stored: &[u8]) -> Result<Unsealed, SealError> {
        if !stored.starts_with(PREFIX.as_bytes()) {
            return Ok(Unsealed { plaintext: stored.to_vec(), stale: true });
        }
        let text = std::str::from_utf8(stored).map_err(|_| SealError::Malformed)?;
        let (plaintext, previous) = self.open_with_key(label, text)?;
        Ok(Unsealed { plaintext, stale: previous })
    }

    /// [`Sealer::unseal_stored`] of a text value.
    pub fn unseal_text(&self, label: &str, stored: &str) -> Result<(String, bool), SealError> {
        let unsealed = self.unseal_stored(label, stored.as_bytes())?;
        let text = String::from_utf8(unsealed.plaintext).map_err(|_| SealError::Malformed)?;
        Ok((text, unsealed.stale))
    }
}

/// The error a server start ends with when a stored secret does not open: which record, and
/// what to do.
pub fn open_failed(record: &str, error: &SealError) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read the {record} from the state database: {error}. Start with the secrets key \
         it was sealed with (--secrets-key-file or WASMFN_SECRETS_KEY), giving the newer key as \
         the current one and the older as --previous-secrets-key-file or \
         WASMFN_PREVIOUS_SECRETS_KEY when rotating"
    )
}

/// Where the keys come from (`wasmfn serve` flags and environment).
#[derive(Clone, Debug, Default)]
pub struct KeyOptions {
    /// `--secrets-key-file`.
    pub key_file: Option<PathBuf>,
    /// `WASMFN_SECRETS_KEY` (base64).
    pub key: Option<String>,
    /// `--previous-secrets-key-file`.
    pub previous_key_file: Option<PathBuf>,
    /// `WASMFN_PREVIOUS_SECRETS_KEY` (base64).
    pub previous_key: Option<String>,
}

impl KeyOptions {
    /// The options `wasmfn serve` reads from the environment alone.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            key_file: var("WASMFN_SECRETS_KEY_FILE").map(PathBuf::from),
            key: var("WASMFN_SECRETS_KEY"),
            previous_key_file: var("WASMFN_PREVIOUS_SECRETS_KEY_FILE").map(PathBuf::from),
            previous_key: var("WASMFN_PREVIOUS_SECRETS_KEY"),
        }
    }
}

/// Where the default key file of a data directory is.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_KEY_FILE)
}

/// The sealer of a server: the current key from `WASMFN_SECRETS_KEY`, else the given key
/// file, else `<data-dir>/secrets.key` (generated there, owner-only, when missing); plus the
/// previous key when one is given.
pub fn load(data_dir: &Path, options: &KeyOptions) -> Result<Sealer> {
    let current = match (&options.key, &options.key_file) {
        (Some(_), Some(_)) => bail!(
            "give the secrets key one way: WASMFN_SECRETS_KEY or --secrets-key-file, not both"
        ),
        (Some(text), None) => SecretsKey::parse(text).context("WASMFN_SECRETS_KEY")?,
        (None, Some(path)) => read_key_file(path, "--secrets-key-file")?,
        (None, None) => {
            let path = default_key_path(data_dir);
            if !path.exists() {
                write_new_key(&path)?;
                tracing::info!(key_file = %path.display(), "secrets key generated");
            }
            read_key_file(&path, "the secrets key file")?
        }
    };
    let previous = match (&options.previous_key, &options.previous_key_file) {
        (Some(_), Some(_)) => bail!(
            "give the previous secrets key one way: WASMFN_PREVIOUS_SECRETS_KEY or \
             --previous-secrets-key-file, not both"
        ),
        (Some(text), None) => Some(SecretsKey::parse(text).context("WASMFN_PREVIOUS_SECRETS_KEY")?),
        (None, Some(path)) => Some(read_key_file(path, "--previous-secrets-key-file")?),
        (None, None) => None,
    };
    Ok(Sealer::new(current, previous))
}

fn read_key_file(path: &Path, what: &str) -> Result<SecretsKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: reading {}", path.display()))?;
    SecretsKey::parse(&text).with_context(|| format!("{what} {}", path.display()))
}

fn write_new_key(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::private_files::create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating the secrets key file {}", path.display()))?;
    writeln!(file, "{}", SecretsKey::generate_text())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing the secrets key file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretsKey {
        SecretsKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_label_and_hides_the_plaintext() {
        let sealer = Sealer::new(key(1), None);
        let sealed = sealer.seal("webhook/s/hook", b"hush-hush-secret").unwrap();
        assert!(sealed.starts_with(&format!("{PREFIX}{}:", sealer.key_id())), "{sealed}");
        assert!(!sealed.contains("hush"));
        assert_eq!(sealer.open("webhook/s/hook", &sealed).unwrap(), b"hush-hush-secret");
        let again = sealer.seal("webhook/s/hook", b"hush-hush-secret").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
        let stored = sealer.unseal_stored("webhook/s/hook", sealed.as_bytes()).unwrap();
        assert_eq!(stored, Unsealed { plaintext: b"hush-hush-secret".to_vec(), stale: false });
    }

    #[test]
    fn a_tampered_or_moved_value_is_detected() {
        let sealer = Sealer::new(key(1), None);
        let sealed = sealer.seal("config/s/f/token", b"hush-hush-secret").unwrap();
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(bytes));
        let tampered_error = sealer.open("config/s/f/token", &tampered).unwrap_err();
        assert!(matches!(tampered_error, SealError::Tampered { .. }));
        let moved = sealer.open("webhook/s/other", &sealed).unwrap_err();
        assert!(matches!(moved, SealError::Tampered { .. }), "bound to its record");
        assert_eq!(sealer.open("l", "wfs1:nope"), Err(SealError::Malformed));
    }

    #[test]
    fn a_wrong_key_is_detected_and_the_error_shows_no_secret() {
        let sealed = Sealer::new(key(1), None).seal("mqtt/s/t", b"hush-hush-secret").unwrap();
        let wrong = Sealer::new(key(2), None);
        let error = wrong.open("mqtt/s/t", &sealed).unwrap_err();
        assert!(matches!(error, SealError::UnknownKey { .. }), "{error}");
        let shown = format!("{error} {error:?} {:#}", open_failed("password of x", &error));
        assert!(!shown.contains("hush") && shown.contains(key(1).id()), "{shown}");
        let body = sealed.rsplit_once(':').unwrap().1;
        assert!(!shown.contains(body), "no ciphertext either: {shown}");
        // The same key id with different key bytes (forged id): still refused.
        let forged = sealed.replace(key(1).id(), key(2).id());
        assert!(matches!(wrong.open("mqtt/s/t", &forged), Err(SealError::Tampered { .. })));
        assert!(!format!("{:?}", key(3)).contains("3, 3"), "Debug shows no key bytes");
    }

    #[test]
    fn the_previous_key_opens_old_values_and_marks_them_stale() {
        let old = Sealer::new(key(1), None);
        let sealed = old.seal("node/presign", &[7; 32]).unwrap();
        let rotated = Sealer::new(key(2), Some(key(1)));
        let stored = rotated.unseal_stored("node/presign", sealed.as_bytes()).unwrap();
        assert_eq!(stored, Unsealed { plaintext: vec![7; 32], stale: true });
        let resealed = rotated.seal("node/presign", &stored.plaintext).unwrap();
        assert!(resealed.starts_with(&format!("{PREFIX}{}:", key(2).id())));
        let plain = rotated.unseal_stored("node/presign", b"legacy plain value").unwrap();
        assert_eq!(plain, Unsealed { plaintext: b"legacy plain value".to_vec(), stale: true });
    }

    #[test]
    fn keys_load_from_text_and_the_default_key_file_is_generated_private() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(SecretsKey::parse("c2hvcnQ=").unwrap_err(), SealError::BadKey);
        let text = SecretsKey::generate_text();
        assert_eq!(SecretsKey::parse(&format!("{text}\n")).unwrap().id().len(), 8);
        let dir = tempfile::tempdir().unwrap();
        let first = load(dir.path(), &KeyOptions::default()).unwrap();
        let mode = std::fs::metadata(default_key_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load(dir.path(), &KeyOptions::default()).unwrap();
        assert_eq!(first.key_id(), again.key_id(), "kept, not regenerated");
        let given = KeyOptions { key: Some(text.clone()), ..KeyOptions::default() };
        assert_eq!(
            load(dir.path(), &given).unwrap().key_id(),
            SecretsKey::parse(&text).unwrap().id()
        );
        let missing =
            KeyOptions { key_file: Some(dir.path().join("absent.key")), ..KeyOptions::default() };
        assert!(load(dir.path(), &missing).is_err(), "a named key file is never generated");
    }
}
