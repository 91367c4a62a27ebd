//! The publishing side of an origin: a server directory on the local file system, as
//! `tako store` writes it.
//!
//! Publishing needs only to put a named file and to take one away; both keep the
//! directory usable by hosts at every instant (see `fsutil`).

use std::path::PathBuf;

use crate::fs::{Dir, IoError};

/// A server directory that `tako store` writes to. The caller holds its lock.
pub struct LocalDir<'d> {
    dir: &'d Dir,
}

impl<'d> LocalDir<'d> {
    pub fn new(dir: &'d Dir) -> LocalDir<'d> {
        LocalDir { dir }
    }

    /// Where the file `name` lives.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Publishes `bytes` as `name` (a manifest file): written atomically and durably,
    /// read-only, so a host reads either the old file or the new one.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, IoError> {
        self.dir.write_file(name, bytes)
    }

    /// Takes `name` away if it is there. The directory is flushed by [`LocalDir::flush`],
    /// once after several removals.
    pub fn remove(&self, name: &str) -> Result<(), IoError> {
        self.dir.remove(name).map(drop)
    }

    /// Makes earlier removals durable.
    pub fn flush(&self) -> Result<(), IoError> {
        self.dir.sync()
    }
}
