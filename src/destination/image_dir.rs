//! The directory a container image is pulled into (`tako image pull IMAGE DIR`): locked,
//! built aside, and moved into place whole.
//!
//! Everything happens in DIR's parent, next to DIR, under names no image chooses:
//!
//! ```text
//! PARENT/.NAME.tako-lock    held (flock) by the one pull into PARENT/NAME at a time
//! PARENT/.NAME.tako-new     the tree being built, mode 0700 until it is complete
//! PARENT/.NAME.tako-blobs   the blobs of a pull with --no-cache (kept for a resume)
//! ```
//!
//! The new tree is moved in with one `rename`, which the kernel only lets replace an
//! absent or empty directory; with `--force`, a non-empty DIR is swapped with it in one
//! `renameat2(RENAME_EXCHANGE)` and the old tree, now under the temporary name, is removed
//! through directory handles. Before the move the file system is synced (`syncfs`), so a
//! crash after it cannot leave a tree whose files were never written. At no moment is DIR
//! half-written: it is the old tree or the new one. What a killed pull leaves under the
//! temporary names is removed by the next pull into the same DIR, under the lock.
//!
//! The lock file is removed by the pull that holds it, as it ends. A pull that was waiting
//! for it then holds a lock on a file that no longer has the name, so after taking a lock
//! a pull checks that the name still leads to the very file it locked, and starts over if
//! not: two pulls never build at once. A killed pull leaves the file, which the next one
//! takes over. Names starting with a dot are ignored by `machinectl`, so it does not list
//! them as machines.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fs::tree::{RelPath, Slot, Tree, TreeError};
use crate::fs::{Context, Dir, IoError};

/// The longest DIR name accepted: the temporary names add their suffix to it.
pub const MAX_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ImageDirError {
    #[error("{}: the directory to pull into must end in a name, not '.', '..' or '/'", .0.display())]
    NoName(PathBuf),
    #[error("{}: the name is not UTF-8 or longer than {MAX_NAME} bytes", .0.display())]
    BadName(PathBuf),
    #[error(
        "{} is a symbolic link: give the path of the directory it points to",
        .0.display()
    )]
    Symlink(PathBuf),
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "{} is not empty: pass --force to replace it (the new tree is built beside it and swapped in whole)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: {source}", path.display())]
    Tree {
        path: PathBuf,
        #[source]
        source: TreeError,
    },
}

/// What is at DIR before the pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Absent,
    Empty,
    /// A directory with something in it: only replaced with `--force`.
    Full,
}

/// How the new tree went into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// DIR was absent or empty.
    New,
    /// DIR held a tree, which was swapped out and removed.
    Replaced,
    /// DIR held a tree, which was swapped out but could not be removed entirely (a mount
    /// point in it, say): what is left of it is at `left`, and the next pull into DIR
    /// tries again. The new tree is in place all the same.
    ReplacedOldLeft { left: PathBuf, reason: String },
}

/// DIR, locked for one pull.
pub struct ImageDir {
    /// DIR as given, for messages.
    shown: PathBuf,
    /// The canonical parent and DIR's name in it.
    parent_path: PathBuf,
    name: String,
    parent: Dir,
    tree: Tree,
    _lock: File,
}

impl Drop for ImageDir {
    fn drop(&mut self) {
        // Still locked here (the file closes after this): no other pull builds meanwhile.
        let _ = self.parent.remove(&format!(".{}.tako-lock", self.name));
    }
}

impl ImageDir {
    /// Locks DIR (`path`) for a pull, calling `waiting` first if another pull into it holds
    /// the lock. The parent must exist; it is resolved once (symlinks on the way to it
    /// followed, as the caller chose them), and everything after goes through its handle.
    pub fn lock(path: &Path, waiting: &dyn Fn()) -> Result<ImageDir, ImageDirError> {
        let Some(name) = path.file_name() else {
            return Err(ImageDirError::NoName(path.to_path_buf()));
        };
        let name = name
            .to_str()
            .filter(|n| n.len() <= MAX_NAME)
            .ok_or_else(|| ImageDirError::BadName(path.to_path_buf()))?
            .to_owned();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent_path = std::fs::canonicalize(parent).context("open directory", parent)?;
        let dir = Dir::open(&parent_path)?;
        let tree = Tree::open(&parent_path).map_err(|source| ImageDirError::Tree {
            path: parent_path.clone(),
            source,
        })?;
        let lock_name = format!(".{name}.tako-lock");
        let lock_path = parent_path.join(&lock_name);
        let mut waited = false;
        let lock = loop {
            let lock = dir.open_rw(&lock_name)?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !waited {
                        waiting();
                        waited = true;
                    }
                    lock.lock().context("lock", &lock_path)?;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).context("lock", &lock_path)?;
                }
            }
            // The pull that held it may have removed the name meanwhile (see the module
            // documentation): only a lock on the file the name leads to counts.
            let held = lock.metadata().context("inspect", &lock_path)?;
            match std::fs::symlink_metadata(&lock_path) {
                Ok(named) if named.dev() == held.dev() && named.ino() == held.ino() => break lock,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(IoError::new("inspect", &lock_path, e).into()),
            }
        };
        Ok(ImageDir {
            shown: path.to_path_buf(),
            parent_path,
            name,
            parent: dir,
            tree,
            _lock: lock,
        })
    }

    /// DIR's absolute path (its parent canonical).
    pub fn path(&self) -> PathBuf {
        self.parent_path.join(&self.name)
    }

    fn staging_name(&self) -> String {
        format!(".{}.tako-new", self.name)
    }

    fn scratch_name(&self) -> String {
        format!(".{}.tako-blobs", self.name)
    }

    /// Where the new tree is built.
    pub fn staging_path(&self) -> PathBuf {
        self.parent_path.join(self.staging_name())
    }

    /// Where a pull without the cache keeps its blobs.
    pub fn scratch_path(&self) -> PathBuf {
        self.parent_path.join(self.scratch_name())
    }

    fn tree_error(&self, source: TreeError) -> ImageDirError {
        ImageDirError::Tree {
            path: self.parent_path.clone(),
            source,
        }
    }

    fn slot(&self, name: &str) -> Result<Slot, ImageDirError> {
        let rel = RelPath::parse(name.as_bytes())
            .map_err(|_| ImageDirError::BadName(self.shown.clone()))?;
        self.tree
            .slot(&rel)
            .map_err(|e| self.tree_error(e))?
            .ok_or_else(|| {
                self.tree_error(TreeError::Missing {
                    path: self.parent_path.display().to_string(),
                })
            })
    }

    /// What is at DIR now.
    pub fn existing(&self) -> Result<Existing, ImageDirError> {
        let path = self.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Absent),
            Err(e) => return Err(IoError::new("inspect", &path, e).into()),
        };
        if meta.file_type().is_symlink() {
            return Err(ImageDirError::Symlink(self.shown.clone()));
        }
        if !meta.is_dir() {
            return Err(ImageDirError::NotADirectory(self.shown.clone()));
        }
        let Some(dir) = self.parent.subdir(&self.name)? else {
            return Ok(Existing::Absent);
        };
        Ok(if dir.names()?.is_empty() {
            Existing::Empty
        } else {
            Existing::Full
        })
    }

    /// Removes what a killed pull left: a half-built tree, an old tree not yet removed,
    /// and, unless `keep_scratch`, the blobs of a pull without the cache.
    pub fn clear_leftovers(&self, keep_scratch: bool) -> Result<(), ImageDirError> {
        self.remove_staging()?;
        if !keep_scratch {
            self.remove_scratch()?;
        }
        Ok(())
    }

    /// Removes the tree being built (after a failure), if there is one.
    pub fn remove_staging(&self) -> Result<(), ImageDirError> {
        self.slot(&self.staging_name())?
            .remove()
            .map_err(|e| self.tree_error(e))?;
        Ok(())
    }

    /// Removes the blobs of a pull without the cache, if there are any.
    pub fn remove_scratch(&self) -> Result<(), ImageDirError> {
        self.slot(&self.scratch_name())?
            .remove()
            .map_err(|e| self.tree_error(e))?;
        Ok(())
    }

    /// Creates the empty directory (mode 0700) the new tree is built in; see
    /// [`ImageDir::staging_path`].
    pub fn create_staging(&self) -> Result<PathBuf, ImageDirError> {
        let slot = self.slot(&self.staging_name())?;
        slot.remove().map_err(|e| self.tree_error(e))?;
        slot.make_dir().map_err(|e| self.tree_error(e))?;
        Ok(self.staging_path())
    }

    /// Creates (or keeps) the directory (mode 0700) a pull without the cache keeps its
    /// blobs in; see [`ImageDir::scratch_path`].
    pub fn create_scratch(&self) -> Result<PathBuf, ImageDirError> {
        let slot = self.slot(&self.scratch_name())?;
        match slot.kind().map_err(|e| self.tree_error(e))? {
            Some(rustix::fs::FileType::Directory) => {}
            Some(_) => {
                slot.remove().map_err(|e| self.tree_error(e))?;
                slot.make_dir().map_err(|e| self.tree_error(e))?;
            }
            None => slot.make_dir().map_err(|e| self.tree_error(e))?,
        }
        Ok(self.scratch_path())
    }

    /// Moves the complete tree into place: a `rename` if DIR is absent or empty; with
    /// `force`, an exchange with the tree at DIR, which is then removed.
    pub fn commit(&self, force: bool) -> Result<Placed, ImageDirError> {
        let staging = self.staging_path();
        // Every file of the tree on disk before it gets its real name.
        let fs = File::open(&staging).context("open directory", &staging)?;
        rustix::fs::syncfs(&fs).context("sync the file system of", &staging)?;
        drop(fs);
        let placed = match self.parent.rename(&self.staging_name(), &self.name) {
            Ok(()) => Placed::New,
            Err(e) if is_not_empty(&e.source) && force => {
                let new = self.slot(&self.staging_name())?;
                let old = self.slot(&self.name)?;
                new.exchange(&old).map_err(|e| self.tree_error(e))?;
                self.parent.sync()?;
                // The old tree is now under the temporary name. The pull has succeeded
                // whatever happens to it.
                match new.remove() {
                    Ok(_) => Placed::Replaced,
                    Err(e) => Placed::ReplacedOldLeft {
                        left: staging,
                        reason: e.to_string(),
                    },
                }
            }
            Err(e) if is_not_empty(&e.source) => {
                return Err(ImageDirError::NotEmpty(self.shown.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        self.parent.sync()?;
        Ok(placed)
    }
}

fn is_not_empty(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// Whether a name is one of the temporaries of a pull.
    fn is_temporary(name: &OsStr) -> bool {
        name.to_str().is_some_and(|n| {
            n.starts_with('.')
                && (n.ends_with(".tako-new")
                    || n.ends_with(".tako-blobs")
                    || n.ends_with(".tako-lock"))
        })
    }

    fn no_wait() {
        panic!("nothing else holds the lock");
    }

    fn build(dir: &ImageDir, file: &str) {
        let staging = dir.create_staging().unwrap();
        assert_eq!(
            fs::metadata(&staging).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(staging.join(file), b"new").unwrap();
    }

    #[test]
    fn a_tree_goes_into_an_absent_or_empty_directory_and_leaves_no_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("machine");
        let dir = ImageDir::lock(&target, &no_wait).unwrap();
        assert_eq!(dir.existing().unwrap(), Existing::Absent);
        build(&dir, "etc");
        assert_eq!(dir.commit(false).unwrap(), Placed::New);
        assert_eq!(fs::read(target.join("etc")).unwrap(), b"new");

        fs::remove_file(target.join("etc")).unwrap();
        assert_eq!(dir.existing().unwrap(), Existing::Empty);
        build(&dir, "usr");
        assert_eq!(dir.commit(false).unwrap(), Placed::New);
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n == "machine" || is_temporary(n)));
        drop(dir);
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["machine"], "the lock file goes with the lock");
    }

    #[test]
    fn a_full_directory_is_replaced_only_with_force_and_then_in_one_swap() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("machine");
        fs::create_dir_all(target.join("old/sub")).unwrap();
        fs::write(target.join("old/sub/file"), b"old").unwrap();
        // A read-only directory in the old tree must not stop its removal.
        fs::set_permissions(target.join("old"), fs::Permissions::from_mode(0o555)).unwrap();
        let dir = ImageDir::lock(&target, &no_wait).unwrap();
        assert_eq!(dir.existing().unwrap(), Existing::Full);
        build(&dir, "new");
        let e = dir.commit(false).unwrap_err();
        assert!(matches!(e, ImageDirError::NotEmpty(_)), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(fs::read(target.join("old/sub/file")).unwrap(), b"old");
        assert_eq!(dir.commit(true).unwrap(), Placed::Replaced);
        assert_eq!(fs::read(target.join("new")).unwrap(), b"new");
        assert!(!target.join("old").exists());
        assert!(!dir.staging_path().exists());
    }

    #[test]
    fn a_symlink_or_a_file_at_dir_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = root.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let dir = ImageDir::lock(&link, &no_wait).unwrap();
        assert!(matches!(dir.existing(), Err(ImageDirError::Symlink(_))));
        let file = root.path().join("file");
        fs::write(&file, b"").unwrap();
        let dir = ImageDir::lock(&file, &no_wait).unwrap();
        assert!(matches!(
            dir.existing(),
            Err(ImageDirError::NotADirectory(_))
        ));
        for bad in ["/", "..", "a/.."] {
            assert!(
                matches!(
                    ImageDir::lock(Path::new(bad), &no_wait),
                    Err(ImageDirError::NoName(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn leftovers_of_a_killed_pull_are_removed_by_the_next_one() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("machine");
        let dir = ImageDir::lock(&target, &no_wait).unwrap();
        let staging = dir.create_staging().unwrap();
        fs::create_dir(staging.join("half")).unwrap();
        let scratch = dir.create_scratch().unwrap();
        fs::write(scratch.join("blob.partial"), b"half").unwrap();
        drop(dir);
        let dir = ImageDir::lock(&target, &no_wait).unwrap();
        dir.clear_leftovers(true).unwrap();
        assert!(!staging.exists());
        assert!(scratch.join("blob.partial").exists(), "kept for a resume");
        dir.clear_leftovers(false).unwrap();
        assert!(!scratch.exists());
    }

    #[test]
    fn a_second_pull_into_the_same_directory_waits_for_the_first() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("machine");
        let first = ImageDir::lock(&target, &no_wait).unwrap();
        let waited = std::cell::Cell::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                drop(first);
            });
            // The first removes the lock file the second waits on: the second must notice
            // and hold a lock on the file the name now leads to.
            let second = ImageDir::lock(&target, &|| waited.set(true)).unwrap();
            let named = fs::metadata(root.path().join(".machine.tako-lock")).unwrap();
            let held = second._lock.metadata().unwrap();
            assert_eq!((named.dev(), named.ino()), (held.dev(), held.ino()));
        });
        assert!(waited.get());
    }
}
