//! Atomic, durable writes: a file written as `<name>.new`, made read-only, flushed and
//! renamed into place, then its directory flushed (see the module `fs`).

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{Context, Dir, IoError, READ_ONLY, Refused};

/// Writing files and symlinks into a directory, under a temporary name first.
impl Dir {
    /// Clears the temporary name `temp` for a new file. What a crash (or
    /// someone else) left there is removed, never written through; a
    /// directory is refused.
    pub(super) fn clear_temporary(&self, temp: &str) -> Result<(), IoError> {
        let path = self.child(temp);
        match rustix::fs::unlinkat(&self.file, temp, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::NOENT => Ok(()),
            // Linux says EROFS even when there is nothing to remove; what
            // failed is creating the file.
            Err(e) if e == Errno::ROFS => Err(e).context("create", &path),
            Err(e) if e == Errno::ISDIR || e == Errno::PERM => {
                if self.kind_of(temp)? == Some(FileType::Directory) {
                    Err(IoError::refused(
                        "replace",
                        &path,
                        Refused::DirectoryAsTemporary,
                    ))
                } else {
                    Err(e).context("remove", &path)
                }
            }
            Err(e) => Err(e).context("remove", &path),
        }
    }

    /// Starts writing `<name>.new`, replacing one left over from a crash.
    /// Callers hold the directory lock, so no live writer owns that name.
    pub fn create(&self, name: &str) -> Result<PendingFile, IoError> {
        let temp = temp_name(name);
        let temp_path = self.child(&temp);
        self.clear_temporary(&temp)?;
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.file, temp.as_str(), flags, Mode::from_raw_mode(0o600))
            .context("create", &temp_path)?;
        Ok(PendingFile {
            dir: self
                .file
                .try_clone()
                .context("open directory", &self.path)?,
            dir_path: self.path.clone(),
            temp,
            temp_path,
            file: File::from(fd),
            name: name.to_string(),
            done: false,
        })
    }

    /// Writes `bytes` to `name` atomically and durably, read-only.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, IoError> {
        let mut pending = self.create(name)?;
        let path = pending.path().to_path_buf();
        pending.file().write_all(bytes).context("write", &path)?;
        pending.commit()
    }

    /// Points the symlink `name` at `target` atomically: a new link
    /// `<name>.new` is renamed over the old one.
    pub fn replace_symlink(&self, name: &str, target: &Path) -> Result<(), IoError> {
        let temp = temp_name(name);
        let temp_path = self.child(&temp);
        self.clear_temporary(&temp)?;
        rustix::fs::symlinkat(target, &self.file, temp.as_str())
            .context("create symlink", &temp_path)?;
        if let Err(e) = rustix::fs::renameat(&self.file, temp.as_str(), &self.file, name) {
            let _ = rustix::fs::unlinkat(&self.file, temp.as_str(), AtFlags::empty());
            return Err(e).context("rename into place", &self.child(name));
        }
        self.sync()
    }
}

fn temp_name(name: &str) -> String {
    format!("{name}.new")
}

/// A file being written as `<dir>/<name>.new`. Dropping it without
/// [`PendingFile::commit`] removes the temporary file.
pub struct PendingFile {
    dir: File,
    dir_path: PathBuf,
    temp: String,
    temp_path: PathBuf,
    file: File,
    name: String,
    done: bool,
}

impl PendingFile {
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    pub fn path(&self) -> &Path {
        &self.temp_path
    }

    /// Makes the file read-only, flushes it, renames it to its final name
    /// and flushes the directory.
    pub fn commit(self) -> Result<PathBuf, IoError> {
        let name = self.name.clone();
        self.commit_as(&name)
    }

    /// As [`PendingFile::commit`], under a name only known once the content
    /// is (an image is named by its digest).
    pub fn commit_as(mut self, name: &str) -> Result<PathBuf, IoError> {
        let final_path = self.dir_path.join(name);
        self.file
            .set_permissions(Permissions::from_mode(READ_ONLY))
            .context("set permissions of", &self.temp_path)?;
        self.file.sync_all().context("flush", &self.temp_path)?;
        rustix::fs::renameat(&self.dir, self.temp.as_str(), &self.dir, name)
            .context("rename into place", &final_path)?;
        self.done = true;
        self.dir
            .sync_all()
            .context("flush directory", &self.dir_path)?;
        Ok(final_path)
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_str(), AtFlags::empty());
        }
    }
}

/// Writes `bytes` to `<dir>/<name>` atomically and durably, read-only.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, IoError> {
    Dir::open(dir)?.write_file(name, bytes)
}

pub fn remove_if_exists(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).context("remove", path),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let pending = Dir::open(dir.path()).unwrap().create("img").unwrap();
        assert!(dir.path().join("img.new").exists());
        drop(pending);
        assert!(!dir.path().join("img.new").exists());
        assert!(!dir.path().join("img").exists());
    }

    #[test]
    fn replace_symlink_moves_an_existing_link() {
        let dir = tempfile::tempdir().unwrap();
        let handle = Dir::open(dir.path()).unwrap();
        handle
            .replace_symlink("latest", Path::new("store/a"))
            .unwrap();
        handle
            .replace_symlink("latest", Path::new("store/b"))
            .unwrap();
        let link = dir.path().join("latest");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("store/b"));
        assert!(!dir.path().join("latest.new").exists());
    }

    #[test]
    fn errors_name_the_action_and_path_once() {
        let err = write_file(Path::new("/nonexistent-dir-for-tako"), "m", b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot open directory /nonexistent-dir-for-tako: No such file or directory (os error 2)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        fs::remove_dir(dir.path()).unwrap();
        let err = d.write_file("m", b"").unwrap_err().to_string();
        let temp = dir.path().join("m.new").display().to_string();
        assert_eq!(
            err,
            format!("cannot create {temp}: No such file or directory (os error 2)")
        );
    }

    #[test]
    fn a_planted_temporary_is_removed_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let inner = dir.path().join("inner");
        fs::create_dir(&inner).unwrap();
        std::os::unix::fs::symlink(&victim, inner.join("x.new")).unwrap();
        std::os::unix::fs::symlink(&victim, inner.join("l.new")).unwrap();
        let d = Dir::open(&inner).unwrap();
        d.write_file("x", b"fresh").unwrap();
        d.replace_symlink("l", Path::new("x")).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(inner.join("x")).unwrap(), b"fresh");
        assert_eq!(fs::read_link(inner.join("l")).unwrap(), Path::new("x"));
    }

    #[test]
    fn a_directory_at_a_temporary_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("x.new")).unwrap();
        let err = write_file(dir.path(), "x", b"").unwrap_err().to_string();
        assert!(err.starts_with("cannot replace "), "{err}");
        assert!(
            err.ends_with(
                "x.new: it is a directory; only a file left over from an earlier run is replaced"
            ),
            "{err}"
        );
    }
}
