//! The publishing side of an origin: a server directory on the local file system, as
//! `tako store` writes it.
//!
//! Publishing needs only to put a named file and to take one away; both keep the
//! directory usable by hosts at every instant (see `fsutil`).

use std::path::{Path, PathBuf};

use crate::fsutil::{self, IoError};

/// A server directory that `tako store` writes to. The caller holds its lock.
#[derive(Debug)]
pub struct LocalDir {
    path: PathBuf,
}

impl LocalDir {
    pub fn new(path: &Path) -> LocalDir {
        LocalDir {
            path: path.to_path_buf(),
        }
    }

    /// Where the file `name` lives.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Publishes `bytes` as `name` (a manifest file): written atomically and durably,
    /// read-only, so a host reads either the old file or the new one.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, IoError> {
        fsutil::write_file(&self.path, name, bytes)
    }

    /// Takes `name` away if it is there. The directory is flushed by [`LocalDir::flush`],
    /// once after several removals.
    pub fn remove(&self, name: &str) -> Result<(), IoError> {
        fsutil::remove_if_exists(&self.path_of(name))
    }

    /// Makes earlier removals durable.
    pub fn flush(&self) -> Result<(), IoError> {
        fsutil::sync_dir(&self.path)
    }
}
