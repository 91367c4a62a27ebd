//! Directory handles: a directory opened once, and every entry inside it reached relative to
//! that handle without following a symlink (see the module `fs`).

use std::ffi::{CStr, OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{Context, DIR_MODE, DirLock, IoError, Refused, describe, is_own_and_single};

/// How a file Tako only reads is opened: never through a symlink, never
/// blocking on a FIFO, never becoming a controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// What a directory holds under a name.
pub enum Found {
    Missing,
    /// A regular file, opened for reading.
    File(File),
    /// A directory: nothing a rename could replace.
    Directory,
    /// Something else; says what ("a symbolic link").
    Other(&'static str),
}

/// An open directory; every operation is relative to it and follows no
/// symlink inside it. The path is only for messages.
pub struct Dir {
    pub(super) file: File,
    pub(super) path: PathBuf,
}

impl Dir {
    /// Opens the directory at `path`. The path itself was given by whoever
    /// runs Tako (a config's `Destination=`, `--output`), so a symlink there
    /// is followed; what lies inside is not.
    pub fn open(path: &Path) -> Result<Dir, IoError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())
            .context("open directory", path)?;
        Ok(Dir {
            file: File::from(fd),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn child(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Flushes the directory so that renames and new names in it are durable.
    pub fn sync(&self) -> Result<(), IoError> {
        self.file.sync_all().context("flush directory", &self.path)
    }

    /// Takes the exclusive lock on this directory. The lock lives on its own
    /// open file, so dropping it unlocks even while `self` stays open.
    pub fn lock(&self) -> Result<DirLock, IoError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.file, ".", flags, Mode::empty())
            .context("open directory", &self.path)?;
        let file = File::from(fd);
        file.lock().context("lock directory", &self.path)?;
        Ok(DirLock { _file: file })
    }

    /// Takes the shared lock on this directory: waits while a run holds the exclusive one,
    /// and keeps runs from taking it meanwhile.
    pub fn lock_shared(&self) -> Result<DirLock, IoError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.file, ".", flags, Mode::empty())
            .context("open directory", &self.path)?;
        let file = File::from(fd);
        file.lock_shared().context("lock directory", &self.path)?;
        Ok(DirLock { _file: file })
    }

    /// What kind of entry `name` is, without following a symlink.
    pub(super) fn kind_of(&self, name: &str) -> Result<Option<FileType>, IoError> {
        match rustix::fs::statat(&self.file, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(e) if e == Errno::NOENT => Ok(None),
            Err(e) => Err(e).context("inspect", &self.child(name)),
        }
    }

    /// Opens the subdirectory `name` if there is one. A symlink or anything
    /// else that is not a directory is refused.
    pub fn subdir(&self, name: &str) -> Result<Option<Dir>, IoError> {
        let path = self.child(name);
        let flags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.file, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                file: File::from(fd),
                path,
            })),
            Err(e) if e == Errno::NOENT => Ok(None),
            Err(e) if e == Errno::LOOP || e == Errno::NOTDIR => {
                let found = match self.kind_of(name)? {
                    Some(kind) => describe(kind),
                    None => return Err(e).context("open directory", &path),
                };
                Err(IoError::refused(
                    "open directory",
                    &path,
                    Refused::Kind {
                        found,
                        expected: "a directory",
                    },
                ))
            }
            Err(e) => Err(e).context("open directory", &path),
        }
    }

    /// Opens the subdirectory `name`, creating it with mode [`DIR_MODE`] if
    /// it is missing.
    pub fn ensure_subdir(&self, name: &str) -> Result<Dir, IoError> {
        if let Some(sub) = self.subdir(name)? {
            return Ok(sub);
        }
        let path = self.child(name);
        match rustix::fs::mkdirat(&self.file, name, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) => {}
            // Another run made it meanwhile.
            Err(e) if e == Errno::EXIST => {}
            Err(e) => return Err(e).context("create directory", &path),
        }
        let sub = self
            .subdir(name)?
            .ok_or_else(|| IoError::new("open directory", &path, io::ErrorKind::NotFound.into()))?;
        // mkdir applied the umask; set the mode it is documented to have.
        sub.file
            .set_permissions(Permissions::from_mode(DIR_MODE))
            .context("set permissions of", &path)?;
        self.sync()?;
        Ok(sub)
    }

    /// Opens `name` for reading if it is a regular file; says what it is
    /// otherwise. Never follows a symlink and never blocks on a FIFO.
    pub fn open_file(&self, name: &str) -> Result<Found, IoError> {
        let path = self.child(name);
        // Checking first keeps Tako from even opening a device.
        match self.kind_of(name)? {
            None => return Ok(Found::Missing),
            Some(FileType::RegularFile) => {}
            Some(FileType::Directory) => return Ok(Found::Directory),
            Some(kind) => return Ok(Found::Other(describe(kind))),
        }
        let fd = match rustix::fs::openat(&self.file, name, READ_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e == Errno::NOENT => return Ok(Found::Missing),
            Err(e) if e == Errno::LOOP => return Ok(Found::Other(describe(FileType::Symlink))),
            Err(e) => return Err(e).context("open", &path),
        };
        // It may have been swapped since it was checked.
        let kind =
            FileType::from_raw_mode(rustix::fs::fstat(&fd).context("inspect", &path)?.st_mode);
        match kind {
            FileType::RegularFile => {}
            FileType::Directory => return Ok(Found::Directory),
            kind => return Ok(Found::Other(describe(kind))),
        }
        Ok(Found::File(File::from(fd)))
    }

    /// The bytes of the regular file `name`, at most `limit` of them, if it
    /// exists. Anything but a regular file, or a longer one, is an error.
    /// As [`Dir::read_file`], for a temporary of tako's own whose content goes out again
    /// (an `If-Range` value): a file with another name (a hard link to someone else's
    /// file) or another owner is removed instead of read, and counts as missing.
    pub fn read_own_file(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, IoError> {
        let path = self.child(name);
        let file = match self.open_file(name)? {
            Found::Missing => return Ok(None),
            Found::File(file) => file,
            Found::Directory => return Err(IoError::directory_in_the_way("read", &path)),
            Found::Other(_) => {
                self.remove(name)?;
                return Ok(None);
            }
        };
        let stat = rustix::fs::fstat(&file).context("inspect", &path)?;
        if !is_own_and_single(&stat) {
            drop(file);
            self.remove(name)?;
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .context("read", &path)?;
        if bytes.len() as u64 > limit {
            return Err(IoError::refused("read", &path, Refused::TooLarge { limit }));
        }
        Ok(Some(bytes))
    }

    pub fn read_file(
        &self,
        name: &str,
        limit: u64,
        action: &'static str,
    ) -> Result<Option<Vec<u8>>, IoError> {
        let path = self.child(name);
        let file = match self.open_file(name)? {
            Found::Missing => return Ok(None),
            Found::File(file) => file,
            Found::Directory => {
                return Err(IoError::directory_in_the_way(action, &path));
            }
            Found::Other(found) => {
                let why = Refused::Kind {
                    found,
                    expected: "a regular file",
                };
                return Err(IoError::refused(action, &path, why));
            }
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .context(action, &path)?;
        if bytes.len() as u64 > limit {
            return Err(IoError::refused(action, &path, Refused::TooLarge { limit }));
        }
        Ok(Some(bytes))
    }

    /// Where the symlink `name` points, if it is one.
    pub fn read_link(&self, name: &str) -> Option<PathBuf> {
        let target = rustix::fs::readlinkat(&self.file, name, Vec::new()).ok()?;
        Some(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// Removes every `*.new` file in this directory: temporaries of runs
    /// that crashed. Only call it under the directory's lock.
    pub fn remove_temporaries(&self) -> Result<(), IoError> {
        let entries = rustix::fs::Dir::read_from(&self.file).context("list", &self.path)?;
        let mut stale = Vec::new();
        for entry in entries {
            let entry = entry.context("list", &self.path)?;
            let name = entry.file_name();
            if name.to_bytes().ends_with(b".new") && entry.file_type() != FileType::Directory {
                stale.push(name.to_owned());
            }
        }
        for name in stale {
            self.remove_stale(&name)?;
        }
        Ok(())
    }

    fn remove_stale(&self, name: &CStr) -> Result<(), IoError> {
        match rustix::fs::unlinkat(&self.file, name, AtFlags::empty()) {
            // Gone already, or a directory after all (a file system that
            // does not report types): neither is a temporary to remove.
            Err(e) if e == Errno::NOENT || e == Errno::ISDIR => Ok(()),
            result => result.context("remove", &self.child(OsStr::from_bytes(name.to_bytes()))),
        }
    }
}

/// An entry of a directory as [`Dir::entries`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: OsString,
    /// Only regular files and symlinks are ever Tako's; anything else is
    /// listed so that callers can leave it alone knowingly.
    pub kind: ListedKind,
    /// The size of a regular file; 0 for anything else.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedKind {
    File,
    Symlink,
    Directory,
    Other,
}

impl Dir {
    /// Every entry of this directory (but `.` and `..`), each inspected
    /// without following a symlink. An entry gone since it was listed is
    /// left out.
    pub fn entries(&self) -> Result<Vec<Listed>, IoError> {
        let dir = rustix::fs::Dir::read_from(&self.file).context("list", &self.path)?;
        let mut listed = Vec::new();
        for entry in dir {
            let entry = entry.context("list", &self.path)?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let stat = match rustix::fs::statat(&self.file, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(e) if e == Errno::NOENT => continue,
                Err(e) => {
                    return Err(e)
                        .context("inspect", &self.child(OsStr::from_bytes(name.to_bytes())));
                }
            };
            let (kind, size) = match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => {
                    (ListedKind::File, u64::try_from(stat.st_size).unwrap_or(0))
                }
                FileType::Symlink => (ListedKind::Symlink, 0),
                FileType::Directory => (ListedKind::Directory, 0),
                _ => (ListedKind::Other, 0),
            };
            listed.push(Listed {
                name: OsStr::from_bytes(name.to_bytes()).to_owned(),
                kind,
                size,
            });
        }
        Ok(listed)
    }

    /// Removes the file or symlink `name` (never what a symlink points at);
    /// one that is gone already is fine. The caller flushes the directory.
    pub fn remove_file(&self, name: &str) -> Result<(), IoError> {
        match rustix::fs::unlinkat(&self.file, name, AtFlags::empty()) {
            Err(e) if e != Errno::NOENT => Err(e).context("remove", &self.child(name)),
            _ => Ok(()),
        }
    }
}

/// Files tako keeps and grows across attempts (the partial downloads of `partial`),
/// reached relative to the directory like everything else here.
impl Dir {
    /// Opens `name` for reading and writing, creating it (mode 0600) if it is missing.
    /// Never follows a symlink: whatever else has the name (a symlink, a FIFO, …) is
    /// removed and a new file made in its place; a directory is refused.
    ///
    /// Only a regular file that tako's user owns and that has no other name is written
    /// to; anything else under `name` (a symlink, a hard link to someone else's file, a
    /// file another user planted) is removed and a new file made in its place.
    pub fn open_rw(&self, name: &str) -> Result<File, IoError> {
        let path = self.child(name);
        let flags = OFlags::RDWR
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        match rustix::fs::openat(&self.file, name, flags, mode) {
            Ok(fd) => {
                let stat = rustix::fs::fstat(&fd).context("inspect", &path)?;
                if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                    && is_own_and_single(&stat)
                {
                    return Ok(File::from(fd));
                }
            }
            // Something planted: a symlink, a socket, a directory.
            Err(e) if e == Errno::LOOP || e == Errno::NXIO || e == Errno::ISDIR => {}
            Err(e) => return Err(e).context("open", &path),
        }
        self.clear_temporary(name)?;
        let fd = rustix::fs::openat(&self.file, name, flags | OFlags::EXCL, mode)
            .context("create", &path)?;
        Ok(File::from(fd))
    }

    /// Removes the file `name` if there is one; says whether there was. A directory is
    /// left alone and refused.
    pub fn remove(&self, name: &str) -> Result<bool, IoError> {
        match rustix::fs::unlinkat(&self.file, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(e) if e == Errno::NOENT => Ok(false),
            // Linux says EROFS even when there is nothing to remove.
            Err(e) if e == Errno::ROFS && self.kind_of(name)?.is_none() => Ok(false),
            Err(e) => Err(e).context("remove", &self.child(name)),
        }
    }

    /// Renames `from` to `to` inside this directory, replacing `to`.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), IoError> {
        rustix::fs::renameat(&self.file, from, &self.file, to)
            .context("rename into place", &self.child(to))
    }

    /// The names in this directory that are UTF-8 (tako's own always are).
    pub fn names(&self) -> Result<Vec<String>, IoError> {
        let entries = rustix::fs::Dir::read_from(&self.file).context("list", &self.path)?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.context("list", &self.path)?;
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn subdirectories_are_never_reached_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("store")).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        for err in [
            d.subdir("store").err().unwrap(),
            d.ensure_subdir("store").err().unwrap(),
        ] {
            assert!(
                err.to_string()
                    .ends_with("store: it is a symbolic link, not a directory; refusing to use it"),
                "{err}"
            );
        }
        fs::write(dir.path().join("file"), b"").unwrap();
        let err = d.subdir("file").err().unwrap().to_string();
        assert!(
            err.ends_with("it is a regular file, not a directory; refusing to use it"),
            "{err}"
        );
        assert!(d.subdir("missing").unwrap().is_none());
    }

    #[test]
    fn read_file_reads_only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        fs::write(dir.path().join("small"), b"12345").unwrap();
        assert_eq!(d.read_file("small", 5, "read").unwrap().unwrap(), b"12345");
        let err = d.read_file("small", 4, "read").unwrap_err().to_string();
        assert!(
            err.ends_with("small: it is larger than the limit of 4 bytes"),
            "{err}"
        );
        assert!(d.read_file("missing", 5, "read").unwrap().is_none());
        std::os::unix::fs::symlink("small", dir.path().join("link")).unwrap();
        let err = d.read_file("link", 5, "read").unwrap_err().to_string();
        assert!(err.contains("a symbolic link, not a regular file"), "{err}");
    }

    #[test]
    fn created_directories_have_mode_0755_and_temporaries_can_be_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let store = d.ensure_subdir("store").unwrap();
        assert_eq!(
            fs::metadata(store.path()).unwrap().permissions().mode() & 0o7777,
            DIR_MODE
        );
        fs::write(store.path().join("a.new"), b"").unwrap();
        fs::write(store.path().join("keep"), b"").unwrap();
        fs::create_dir(store.path().join("d.new")).unwrap();
        store.remove_temporaries().unwrap();
        let mut names: Vec<_> = fs::read_dir(store.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["d.new", "keep"]);
    }

    #[test]
    fn the_lock_is_released_when_dropped_while_the_directory_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let lock = d.lock().unwrap();
        let other = File::open(dir.path()).unwrap();
        assert!(other.try_lock().is_err());
        drop(lock);
        other.try_lock().unwrap();
    }
}
