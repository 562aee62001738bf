//! The server's own state: one sled database per process under the data directory, opened
//! once, the admin token beside it (see `access::admin_token`), and the sealer the secrets in
//! the database are sealed with (see `sealed`). The node's records go to a [`StateBackend`]:
//! that sled database by default, or PostgreSQL shared by the nodes of a cluster (`--state
//! postgres://…`). The data directory is its owner's only: directories 0700, files 0600, also
//! when an older version left them readable to others.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

pub use crate::private_files::create_private_dir;
use crate::sealed::Sealer;
use wasmfn_host_apis::state::postgres::TimeIn;
use wasmfn_host_apis::state::{sled_tree, StateBackend, StateTree};

/// The trees a node caches and so must hear about when another node changes them.
pub const WATCHED_TREES: [&str; 5] =
    ["functions", "function_config", "event_subscriptions", "mqtt_triggers", "secrets"];

/// The trees kept by time, partitioned by day in a shared store (retention drops whole days):
/// the invocation log's records (keyed by start time) and its index by id (whose values are
/// the records' keys).
pub const TIMED_TREES: [(&str, TimeIn); 2] =
    [("log_records", TimeIn::Key), ("log_ids", TimeIn::Value)];

/// The state database (`<data-dir>/state`), the data directory it lives in and the backend the
/// node's records are kept in.
#[derive(Clone, Debug)]
pub struct StateDb {
    db: sled::Db,
    backend: Arc<dyn StateBackend>,
    data_dir: PathBuf,
    sealer: Arc<Sealer>,
    /// Keeps a temporary data directory alive as long as the database.
    _temporary: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl StateDb {
    /// Opens (creating) the database in `<data_dir>/state` with the data directory's default
    /// secrets key (`<data_dir>/secrets.key`, generated when missing).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let sealer = crate::sealed::load(data_dir, &crate::sealed::KeyOptions::default())?;
        Self::open_sealed(data_dir, Arc::new(sealer))
    }

    /// Opens (creating) the database in `<data_dir>/state`, its secrets sealed by `sealer`,
    /// after making the data directory private. sled locks it: a second server on the same
    /// data directory is refused.
    pub fn open_sealed(data_dir: &Path, sealer: Arc<Sealer>) -> Result<Self> {
        make_private(data_dir)?;
        let dir = data_dir.join("state");
        let db = sled::Config::new().path(&dir).open().with_context(|| {
            format!(
                "opening the state database {} (is another `wasmfn serve` using this data \
                 directory? give each its own --data-dir)",
                dir.display()
            )
        })?;
        let backend = Arc::new(sled_tree::SledState::new(db.clone()));
        Ok(Self { db, backend, data_dir: data_dir.to_path_buf(), sealer, _temporary: None })
    }

    /// A database in a new temporary directory, gone when the last clone is dropped (tests,
    /// and servers that keep nothing).
    pub fn temporary() -> Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let mut state = Self::open_sealed(dir.path(), Arc::new(Sealer::ephemeral()))?;
        state._temporary = Some(std::sync::Arc::new(dir));
        Ok(state)
    }

    /// Keeps the node's records in `backend` instead of the data directory's database (which
    /// the embedded document store and the node's own queues still use).
    pub fn with_backend(mut self, backend: Arc<dyn StateBackend>) -> Self {
        self.backend = backend;
        self
    }

    /// Where the node's records are kept.
    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.backend
    }

    /// Whether the records are shared with other nodes.
    pub fn shared(&self) -> bool {
        self.backend.changes().is_some()
    }

    /// The process's one sled database (the embedded document store shares it).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Seals and opens the secrets kept in this database.
    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.sealer
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where deployed bundles are kept.
    pub fn bundles_dir(&self) -> PathBuf {
        self.data_dir.join("bundles")
    }

    /// A named tree (table) of the node's records, in the state backend.
    pub fn tree(&self, name: &str) -> Result<StateTree> {
        self.backend.tree(name).with_context(|| format!("opening state tree {name}"))
    }
}

/// Where the generated admin token is kept.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// What in the data directory holds secrets or deployed code, and is made private at start.
const PRIVATE_ENTRIES: [&str; 4] =
    ["state", "bundles", "admin-token", crate::sealed::DEFAULT_KEY_FILE];

/// Makes the data directory its owner's only: the directory itself 0700, and under it the
/// state database, the bundles, the admin token and the key file (directories 0700, files
/// 0600). Data directories of older versions were created 0755 with 0644 files.
pub fn make_private(data_dir: &Path) -> Result<()> {
    create_private_dir(data_dir)?;
    set_private_mode(data_dir, true)?;
    for entry in PRIVATE_ENTRIES {
        restrict_tree(&data_dir.join(entry))?;
    }
    Ok(())
}

fn restrict_tree(path: &Path) -> Result<()> {
    // Symbolic links are not followed: what they point at is not ours to change.
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if meta.is_dir() {
        set_private_mode(path, true)?;
        let entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        for entry in entries {
            restrict_tree(&entry.with_context(|| format!("reading {}", path.display()))?.path())?;
        }
    } else if meta.is_file() {
        set_private_mode(path, false)?;
    }
    Ok(())
}

fn set_private_mode(path: &Path, dir: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if dir { 0o700 } else { 0o600 };
    let current = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if current & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
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
    fn opening_makes_an_old_readable_data_directory_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
        drop(StateDb::open(&data).unwrap());
        std::fs::create_dir_all(data.join("bundles/s/f")).unwrap();
        std::fs::write(data.join("bundles/s/f/1.wasm"), b"x").unwrap();
        std::fs::write(data.join("admin-token"), b"t").unwrap();
        for (path, m) in [("", 0o755), ("state", 0o755), ("bundles/s/f", 0o755)] {
            set(&data.join(path), m).unwrap();
        }
        for path in ["bundles/s/f/1.wasm", "admin-token", "secrets.key", "state/db"] {
            set(&data.join(path), 0o644).unwrap();
        }
        drop(StateDb::open(&data).unwrap());
        for dir in ["", "state", "bundles", "bundles/s/f"] {
            assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
        }
        for file in ["bundles/s/f/1.wasm", "admin-token", "secrets.key", "state/db"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
}
