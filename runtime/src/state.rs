//! The server's own state on disk: one sled database per process under the data directory,
//! opened once, and the admin token beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The state database (`<data-dir>/state`) and the data directory it lives in.
#[derive(Clone, Debug)]
pub struct StateDb {
    db: sled::Db,
    data_dir: PathBuf,
    /// Keeps a temporary data directory alive as long as the database.
    _temporary: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl StateDb {
    /// Opens (creating) the database in `<data_dir>/state`. sled locks it: a second server on
    /// the same data directory is refused.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("state");
        let db = sled::Config::new().path(&dir).open().with_context(|| {
            format!(
                "opening the state database {} (is another `wasmfn serve` using this data \
                 directory? give each its own --data-dir)",
                dir.display()
            )
        })?;
        Ok(Self { db, data_dir: data_dir.to_path_buf(), _temporary: None })
    }

    /// A database in a new temporary directory, gone when the last clone is dropped (tests,
    /// and servers that keep nothing).
    pub fn temporary() -> Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let mut state = Self::open(dir.path())?;
        state._temporary = Some(std::sync::Arc::new(dir));
        Ok(state)
    }

    /// The process's one sled database (the embedded document store shares it).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where deployed bundles are kept.
    pub fn bundles_dir(&self) -> PathBuf {
        self.data_dir.join("bundles")
    }

    /// A named tree (table).
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).with_context(|| format!("opening state tree {name}"))
    }
}

/// Where the generated admin token is kept.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// Where the admin token came from.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    Given,
    Saved,
    /// Generated now: the caller shows it once.
    Generated,
}

/// The admin token: the given one, else the one saved in the data directory, else a new
/// random one saved there (readable by its owner only).
pub fn admin_token(data_dir: &Path, given: Option<String>) -> Result<(String, TokenSource)> {
    if let Some(token) = given.filter(|t| !t.is_empty()) {
        return Ok((token, TokenSource::Given));
    }
    let path = admin_token_path(data_dir);
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok((token, TokenSource::Saved));
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, TokenSource::Generated))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = admin_token(dir.path(), None).unwrap();
        assert_eq!((first.len(), source), (64, TokenSource::Generated));
        let again = admin_token(dir.path(), None).unwrap();
        assert_eq!(again, (first, TokenSource::Saved), "read back, not regenerated");
        let mode = std::fs::metadata(admin_token_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let given = admin_token(dir.path(), Some("given".into())).unwrap();
        assert_eq!(given, ("given".to_string(), TokenSource::Given));
    }
}
