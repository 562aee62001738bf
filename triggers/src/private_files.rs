//! Directories only their owner may read: the data directory and what holds secrets under it.
//! Its own module so that the state database and the secrets key file, which both create such
//! directories, need not depend on each other.

use std::path::Path;

use anyhow::{Context, Result};

/// Creates `dir` (and missing parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}
