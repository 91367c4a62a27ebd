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

pub mod tree;

use std::ffi::{CStr, OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

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

/// How a file Tako only reads is opened: never through a symlink, never
/// blocking on a FIFO, never becoming a controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

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

/// Flushes a directory so that renames and new names in it are durable.
/// Whether a file is tako's to write: owned by the user tako runs as, and with no other
/// name. A hard link planted by whoever owns the directory could otherwise make root's
/// timer write into any file on the same file system (where `fs.protected_hardlinks=0`).
fn is_own_and_single(stat: &rustix::fs::Stat) -> bool {
    stat.st_nlink == 1 && stat.st_uid == rustix::process::geteuid().as_raw()
}

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
    file: File,
    path: PathBuf,
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

    fn child(&self, name: impl AsRef<Path>) -> PathBuf {
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

    /// What kind of entry `name` is, without following a symlink.
    fn kind_of(&self, name: &str) -> Result<Option<FileType>, IoError> {
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

    /// Clears the temporary name `temp` for a new file. What a crash (or
    /// someone else) left there is removed, never written through; a
    /// directory is refused.
    fn clear_temporary(&self, temp: &str) -> Result<(), IoError> {
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
    /// Creates `<dir>/<name>.new`; see [`Dir::create`].
    pub fn create(dir: &Path, name: &str) -> Result<PendingFile, IoError> {
        Dir::open(dir)?.create(name)
    }

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

/// Points the symlink `<dir>/<name>` at `target` atomically.
pub fn replace_symlink(dir: &Path, name: &str, target: &Path) -> Result<(), IoError> {
    Dir::open(dir)?.replace_symlink(name, target)
}

pub fn remove_if_exists(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).context("remove", path),
        _ => Ok(()),
    }
}

/// Creates `<dir>/<name>` as a directory (mode [`DIR_MODE`]) if it is
/// missing; its parent must exist, and a symlink there is refused.
pub fn ensure_subdir(dir: &Path, name: &str) -> Result<PathBuf, IoError> {
    Ok(Dir::open(dir)?.ensure_subdir(name)?.path)
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
