//! Atomic, durable file operations: `.new` temp files, renames, symlink swaps, locks.
//!
//! Every file Tako installs is written as `<name>.new` in the same directory,
//! made read-only, flushed, renamed over `<name>`, and the directory is then
//! flushed, so a crash at any instant leaves either the old or the new file.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

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

pub const READ_ONLY: u32 = 0o444;

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
    let file = File::open(dir).context("open directory", dir)?;
    file.lock().context("lock directory", dir)?;
    Ok(DirLock { _file: file })
}

fn temp_name(name: &str) -> String {
    format!("{name}.new")
}

/// A file being written as `<dir>/<name>.new`. Dropping it without
/// [`PendingFile::commit`] removes the temporary file.
pub struct PendingFile {
    temp: NamedTempFile,
    dir: PathBuf,
    name: String,
}

impl PendingFile {
    /// Creates `<dir>/<name>.new`, replacing one left over from a crash.
    /// Callers hold the directory lock, so no live writer owns that name.
    pub fn create(dir: &Path, name: &str) -> Result<PendingFile, IoError> {
        let temp_path = dir.join(temp_name(name));
        remove_if_exists(&temp_path)?;
        let temp = tempfile::Builder::new()
            .prefix(&temp_name(name))
            .rand_bytes(0)
            .tempfile_in(dir)
            .context("create", &temp_path)?;
        Ok(PendingFile {
            temp,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Makes the file read-only, flushes it, renames it to its final name
    /// and flushes the directory.
    pub fn commit(self) -> Result<PathBuf, IoError> {
        let name = self.name.clone();
        self.commit_as(&name)
    }

    /// As [`PendingFile::commit`], under a name only known once the content
    /// is (an image is named by its digest).
    pub fn commit_as(self, name: &str) -> Result<PathBuf, IoError> {
        let final_path = self.dir.join(name);
        let temp_path = self.temp.path().to_path_buf();
        let file = self.temp.as_file();
        file.set_permissions(Permissions::from_mode(READ_ONLY))
            .context("set permissions of", &temp_path)?;
        file.sync_all().context("flush", &temp_path)?;
        self.temp
            .persist(&final_path)
            .map_err(|e| e.error)
            .context("rename into place", &final_path)?;
        sync_dir(&self.dir)?;
        Ok(final_path)
    }
}

/// Writes `bytes` to `<dir>/<name>` atomically and durably, read-only.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, IoError> {
    let mut pending = PendingFile::create(dir, name)?;
    let path = pending.path().to_path_buf();
    pending.file().write_all(bytes).context("write", &path)?;
    pending.commit()
}

/// Points the symlink `<dir>/<name>` at `target` atomically: a new link
/// `<name>.new` is renamed over the old one.
pub fn replace_symlink(dir: &Path, name: &str, target: &Path) -> Result<(), IoError> {
    let temp = dir.join(temp_name(name));
    remove_if_exists(&temp)?;
    std::os::unix::fs::symlink(target, &temp).context("create symlink", &temp)?;
    let link = dir.join(name);
    fs::rename(&temp, &link).context("rename into place", &link)?;
    sync_dir(dir)
}

pub fn remove_if_exists(path: &Path) -> Result<(), IoError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).context("remove", path),
        _ => Ok(()),
    }
}

/// Creates `<dir>/<name>` as a directory if it is missing; its parent must exist.
pub fn ensure_subdir(dir: &Path, name: &str) -> Result<PathBuf, IoError> {
    let sub = dir.join(name);
    match fs::create_dir(&sub) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && sub.is_dir() => {}
        Err(e) => return Err(e).context("create directory", &sub),
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_leaves_a_read_only_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "manifest", b"one").unwrap();
        write_file(dir.path(), "manifest", b"two").unwrap();
        let path = dir.path().join("manifest");
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        assert!(!dir.path().join("manifest.new").exists());
    }

    #[test]
    fn a_left_over_temp_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("x.new");
        fs::write(&stale, b"garbage from a crash").unwrap();
        fs::set_permissions(&stale, Permissions::from_mode(0o444)).unwrap();
        write_file(dir.path(), "x", b"fresh").unwrap();
        assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"fresh");
        assert!(!stale.exists());
    }

    #[test]
    fn an_abandoned_pending_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingFile::create(dir.path(), "img").unwrap();
        assert!(dir.path().join("img.new").exists());
        drop(pending);
        assert!(!dir.path().join("img.new").exists());
        assert!(!dir.path().join("img").exists());
    }

    #[test]
    fn replace_symlink_moves_an_existing_link() {
        let dir = tempfile::tempdir().unwrap();
        replace_symlink(dir.path(), "latest", Path::new("store/a")).unwrap();
        replace_symlink(dir.path(), "latest", Path::new("store/b")).unwrap();
        let link = dir.path().join("latest");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("store/b"));
        assert!(!dir.path().join("latest.new").exists());
    }

    #[test]
    fn errors_name_the_action_and_path() {
        let err = write_file(Path::new("/nonexistent-dir-for-tako"), "m", b"").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent-dir-for-tako/m.new"), "{text}");
        assert!(text.starts_with("cannot create"), "{text}");
    }
}
