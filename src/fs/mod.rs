//! Atomic, durable file operations in directories someone else may control.
//!
//! Every file Tako installs is written as `<name>.new` in the same directory,
//! made read-only, flushed, renamed over `<name>`, and the directory is then
//! flushed, so a crash at any instant leaves either the old or the new file.
//!
//! A destination may belong to another user than the one running Tako (root
//! fetching into a service's directory), who may plant a symlink, FIFO or
//! directory wherever Tako expects its own files. So a directory is opened
//! once as a [`Dir`] and everything inside it is reached relative to that
//! handle (`openat`, `renameat`, …) without following symlinks: swapping
//! `store` for a symlink half-way through a run cannot redirect a write, and
//! nothing is read unbounded or from a FIFO. A planted temporary is removed
//! (never written through); anything else planted is refused, naming it.

pub mod atomic;
pub mod bounded;
pub mod config;
pub mod dir;
pub mod direct;
pub mod warnings;
// A general tree API over directory handles: `tako image` uses most of it; the rest
// (path checks, opening and moving subtrees) is covered by its tests and kept whole.
#[allow(dead_code)]
pub mod tree;
pub mod tree_record;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use rustix::io::Errno;

pub use atomic::{PendingFile, remove_if_exists, write_file};
pub use dir::{Dir, Found, ListedKind};

/// An I/O failure together with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> IoError {
        IoError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    fn refused(action: &'static str, path: &Path, why: Refused) -> IoError {
        IoError::new(action, path, io::Error::other(why))
    }

    /// `path` is a directory where Tako needs a regular file.
    pub fn directory_in_the_way(action: &'static str, path: &Path) -> IoError {
        let why = Refused::Kind {
            found: describe(FileType::Directory),
            expected: "a regular file",
        };
        IoError::refused(action, path, why)
    }
}

/// Why Tako would not use an entry where it expects one of its own files.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("it is {found}, not {expected}; refusing to use it")]
    Kind {
        found: &'static str,
        expected: &'static str,
    },
    #[error("it is a directory; only a file left over from an earlier run is replaced")]
    DirectoryAsTemporary,
    #[error("it is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Attaches an action and a path to an `io::Result`.
pub trait Context<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T, IoError>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T, IoError> {
        self.map_err(|source| IoError::new(action, path, source))
    }
}

impl<T> Context<T> for Result<T, Errno> {
    fn context(self, action: &'static str, path: &Path) -> Result<T, IoError> {
        self.map_err(|e| IoError::new(action, path, e.into()))
    }
}

pub const READ_ONLY: u32 = 0o444;

/// The mode of a directory Tako creates, whatever the umask: a web server
/// or a service user must be able to read the read-only files inside.
pub const DIR_MODE: u32 = 0o755;

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "a file of unknown type",
    }
}

/// Whether a file is tako's to write: owned by the user tako runs as, and with no other
/// name. A hard link planted by whoever owns the directory could otherwise make root's
/// timer write into any file on the same file system (where `fs.protected_hardlinks=0`).
fn is_own_and_single(stat: &rustix::fs::Stat) -> bool {
    stat.st_nlink == 1 && stat.st_uid == rustix::process::geteuid().as_raw()
}

/// Flushes a directory so that renames and new names in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context("flush directory", dir)
}

/// An exclusive lock on a directory, held until dropped. Concurrent Tako runs
/// on one directory queue here instead of interleaving read-modify-writes.
pub struct DirLock {
    _file: File,
}

pub fn lock_dir(dir: &Path) -> Result<DirLock, IoError> {
    Dir::open(dir)?.lock()
}

/// The bytes an unprivileged write may still take on the file system that holds `path`,
/// or `None` when it cannot be told. Unpacking caps what it writes by it, so that a
/// compression bomb ends in an error rather than a full disk.
pub fn free_space(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_file_system_is_reported_as_a_failed_create() {
        // EROFS itself needs a mount; this pins the wording it gets.
        let err = IoError::new(
            "create",
            Path::new("/d/manifest.new"),
            io::Error::from_raw_os_error(30),
        );
        assert_eq!(
            err.to_string(),
            "cannot create /d/manifest.new: Read-only file system (os error 30)"
        );
    }
}
