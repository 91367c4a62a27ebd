//! A directory tree built and changed through handles, never through a symbolic link inside it.
//!
//! An image layer decides every name and every symlink in the tree it is
//! unpacked into, so a name must never be resolved the usual way: a symlink
//! planted by this layer or a lower one (`lib -> /usr/lib`, `x -> ../..`) would
//! send a write, a chmod or a removal out of the tree. A [`Tree`] is an open
//! directory; every path in it is a [`RelPath`] (relative, no `..`, no empty or
//! `.` component) resolved from that handle with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` where the kernel has it (Linux
//! 5.6), else by a walk that opens one component at a time with
//! `O_NOFOLLOW | O_DIRECTORY`. Either way a symlink anywhere on the path is an
//! error naming it, never followed.
//!
//! Entries are then made and changed relative to the directory handle of their
//! parent (a [`Slot`]): created exclusively (`O_EXCL`, `mkdirat`, `symlinkat`,
//! `mknodat`, `linkat`), so an existing inode is never written into; removed
//! recursively without following symlinks; their metadata set on the opened
//! file ([`Node`]) or, for symlinks, with `AT_SYMLINK_NOFOLLOW`. Whole trees are
//! swapped with `renameat2(RENAME_EXCHANGE)` or moved without replacing
//! anything (`RENAME_NOREPLACE`).
//!
//! Directories and files are created private (0700, 0600): their real modes
//! are the caller's to apply once nothing more is written inside.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;

use crate::format::text;

/// The longest name of one entry (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest path the kernel takes (Linux `PATH_MAX`, with its NUL).
pub const PATH_MAX: usize = 4096;
/// How deep a removal descends: one directory handle stays open per level.
pub const MAX_DEPTH: usize = 512;

/// Modes of what is created, before the caller applies the real ones.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How a node is opened for its metadata: never through a symlink, never
/// blocking on a FIFO, never becoming a controlling terminal.
const NODE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// A relative path inside a tree, normalised: components separated by one
/// `/`, none empty, `.` or `..`, none with a NUL byte or longer than
/// [`NAME_MAX`]. The empty path is the tree's root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(Vec<u8>);

/// Why bytes are not a path inside a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("the name is empty")]
    Empty,
    #[error("the name is absolute")]
    Absolute,
    #[error("the name has a `..` component")]
    DotDot,
    #[error("the name has a NUL byte")]
    Nul,
    #[error("a component of the name is longer than {max} bytes")]
    ComponentTooLong { max: usize },
    #[error("the name is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the name is not a single component")]
    NotAComponent,
}

impl RelPath {
    /// The root of the tree.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Normalises `raw`: empty and `.` components are dropped (`./a//b/` is
    /// `a/b`); an absolute path, a `..` component, a NUL byte, an empty name
    /// and over-long ones are refused. `.` alone is the root.
    pub fn parse(raw: &[u8]) -> Result<RelPath, PathProblem> {
        if raw.is_empty() {
            return Err(PathProblem::Empty);
        }
        if raw.starts_with(b"/") {
            return Err(PathProblem::Absolute);
        }
        let mut path = RelPath::root();
        for component in raw.split(|&b| b == b'/') {
            if component.is_empty() || component == b"." {
                continue;
            }
            check_component(component)?;
            path.push(component);
        }
        if path.0.len() >= PATH_MAX {
            return Err(PathProblem::TooLong { max: PATH_MAX - 1 });
        }
        Ok(path)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, outermost first; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// How many components it has (0 for the root).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The parent and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &[u8])> {
        if self.is_root() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(slash) => {
                let (parent, rest) = self.0.split_at(slash);
                Some((RelPath(parent.to_vec()), rest.get(1..).unwrap_or_default()))
            }
            None => Some((RelPath::root(), &self.0)),
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.split_last().map(|(_, name)| name)
    }

    /// `self/name`, where `name` must be one normal component.
    pub fn join(&self, name: &[u8]) -> Result<RelPath, PathProblem> {
        if name.is_empty() || name == b"." || name.contains(&b'/') {
            return Err(PathProblem::NotAComponent);
        }
        check_component(name)?;
        let mut path = self.clone();
        path.push(name);
        if path.0.len() >= PATH_MAX {
            return Err(PathProblem::TooLong { max: PATH_MAX - 1 });
        }
        Ok(path)
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// The path for a message, escaped (it comes from an image); `.` for the root.
    pub fn shown(&self) -> String {
        if self.is_root() {
            ".".to_string()
        } else {
            text::untrusted_bytes(&self.0)
        }
    }

    /// Appends a component already known to be valid.
    fn push(&mut self, component: &[u8]) {
        if !self.0.is_empty() {
            self.0.push(b'/');
        }
        self.0.extend_from_slice(component);
    }

    fn os(&self) -> &OsStr {
        if self.is_root() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&self.0)
        }
    }
}

/// Lets a map keyed by paths be searched by byte ranges: everything under
/// `a/b` lies between `a/b/` and `a/b0`.
impl std::borrow::Borrow<[u8]> for RelPath {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

fn check_component(component: &[u8]) -> Result<(), PathProblem> {
    if component == b".." {
        return Err(PathProblem::DotDot);
    }
    if component.contains(&0) {
        return Err(PathProblem::Nul);
    }
    if component.len() > NAME_MAX {
        return Err(PathProblem::ComponentTooLong { max: NAME_MAX });
    }
    Ok(())
}

/// A failure inside a tree; paths are relative to its root and escaped.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{at} is a symbolic link, and nothing in the tree is reached through one")]
    Symlink { at: String },
    #[error("{at} is not a directory")]
    NotDirectory { at: String },
    #[error("{path} does not exist")]
    Missing { path: String },
    #[error("{path} is a directory, and a hard link cannot point to one")]
    HardLinkToDirectory { path: String },
    #[error("the root of the tree has no parent directory to work in")]
    Root,
    #[error("{path} lies more than {max} directories deep")]
    TooDeep { path: String, max: usize },
    #[error(
        "{path} is a mount point, and nothing is removed on another file system: unmount it, then run again"
    )]
    MountPoint { path: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    fn io(action: &'static str, path: &RelPath, errno: Errno) -> TreeError {
        TreeError::Io {
            action,
            path: path.shown(),
            source: errno.into(),
        }
    }
}

/// How paths are resolved; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// One `openat2` call with `RESOLVE_NO_SYMLINKS`.
    Openat2,
    /// One `openat(O_NOFOLLOW | O_DIRECTORY)` per component.
    Walk,
}

/// An open directory that paths are resolved in.
#[derive(Debug)]
pub struct Tree {
    root: OwnedFd,
    path: PathBuf,
    resolve: Resolve,
}

impl Tree {
    /// Opens the directory `path`, resolving with `openat2` if the kernel
    /// (and any seccomp filter) allows it. `path` itself was chosen by whoever
    /// runs tako, so a symlink there is followed; nothing inside is.
    pub fn open(path: &Path) -> Result<Tree, TreeError> {
        let mut tree = Tree::open_with(path, Resolve::Walk)?;
        // ENOSYS before Linux 5.6; EPERM or ENOSYS under some seccomp filters.
        if rustix::fs::openat2(&tree.root, ".", DIR_FLAGS, Mode::empty(), RESOLVE).is_ok() {
            tree.resolve = Resolve::Openat2;
        }
        Ok(tree)
    }

    /// Opens the directory `path`, resolving as `resolve` says.
    pub fn open_with(path: &Path, resolve: Resolve) -> Result<Tree, TreeError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root =
            rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()).map_err(|e| {
                TreeError::Io {
                    action: "open directory",
                    path: path.display().to_string(),
                    source: e.into(),
                }
            })?;
        Ok(Tree {
            root,
            path: path.to_path_buf(),
            resolve,
        })
    }

    /// Where the tree was opened; for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolve(&self) -> Resolve {
        self.resolve
    }

    /// Opens the directory `rel`; `None` if it does not exist. A symlink or a
    /// non-directory on the way is an error naming it.
    pub fn open_dir(&self, rel: &RelPath) -> Result<Option<OwnedFd>, TreeError> {
        if rel.is_root() {
            return rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())
                .map(Some)
                .map_err(|e| TreeError::io("open directory", rel, e));
        }
        if self.resolve == Resolve::Openat2 {
            match rustix::fs::openat2(&self.root, rel.os(), DIR_FLAGS, Mode::empty(), RESOLVE) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOENT) => return Ok(None),
                // ELOOP (a symlink), ENOTDIR, EXDEV, or EAGAIN (a rename
                // raced the lookup): the walk finds which component it was,
                // for the message, or succeeds on a retry.
                Err(_) => {}
            }
        }
        self.walk(rel, None)
    }

    /// As [`Tree::open_dir`], creating the missing directories (mode 0700),
    /// and telling `created` about each one it made, outermost first.
    pub fn make_dirs(
        &self,
        rel: &RelPath,
        created: &mut dyn FnMut(&RelPath),
    ) -> Result<OwnedFd, TreeError> {
        if let Some(fd) = self.open_dir(rel)? {
            return Ok(fd);
        }
        match self.walk(rel, Some(created))? {
            Some(fd) => Ok(fd),
            None => Err(TreeError::Missing { path: rel.shown() }),
        }
    }

    /// Where `rel` is or would be: its parent directory, opened. `None` if the
    /// parent does not exist. The root has no slot.
    pub fn slot(&self, rel: &RelPath) -> Result<Option<Slot>, TreeError> {
        let Some((parent, _)) = rel.split_last() else {
            return Err(TreeError::Root);
        };
        Ok(self.open_dir(&parent)?.map(|dir| Slot {
            dir,
            path: rel.clone(),
        }))
    }

    /// As [`Tree::slot`], creating missing parent directories as
    /// [`Tree::make_dirs`] does.
    pub fn make_slot(
        &self,
        rel: &RelPath,
        created: &mut dyn FnMut(&RelPath),
    ) -> Result<Slot, TreeError> {
        let Some((parent, _)) = rel.split_last() else {
            return Err(TreeError::Root);
        };
        Ok(Slot {
            dir: self.make_dirs(&parent, created)?,
            path: rel.clone(),
        })
    }

    /// Removes every entry inside the directory `dir` for which `keep` says
    /// no; a kept directory is descended into and its own entries asked
    /// about. Returns the paths removed (each with all it held), or `None` if
    /// `dir` does not exist.
    pub fn remove_children_except(
        &self,
        dir: &RelPath,
        keep: &mut dyn FnMut(&RelPath) -> bool,
    ) -> Result<Option<Vec<RelPath>>, TreeError> {
        let Some(fd) = self.open_dir(dir)? else {
            return Ok(None);
        };
        let mut removed = Vec::new();
        remove_children(&fd, dir, Some(keep), &mut removed, dir.depth())?;
        Ok(Some(removed))
    }

    /// Opens the directory `rel` one component at a time, without following
    /// anything; with `create`, missing components are made (mode 0700).
    fn walk(
        &self,
        rel: &RelPath,
        mut create: Option<&mut dyn FnMut(&RelPath)>,
    ) -> Result<Option<OwnedFd>, TreeError> {
        let mut dir = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| TreeError::io("open directory", &RelPath::root(), e))?;
        let mut so_far = RelPath::root();
        for component in rel.components() {
            so_far.push(component);
            let name = OsStr::from_bytes(component);
            let next = match rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => match create.as_mut() {
                    None => return Ok(None),
                    Some(created) => {
                        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(PRIVATE_DIR)) {
                            Ok(()) => created(&so_far),
                            Err(Errno::EXIST) => {}
                            Err(e) => return Err(TreeError::io("create directory", &so_far, e)),
                        }
                        rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty())
                            .map_err(|e| not_a_directory(dir.as_fd(), name, &so_far, e))?
                    }
                },
                Err(e) => return Err(not_a_directory(dir.as_fd(), name, &so_far, e)),
            };
            dir = next;
        }
        Ok(Some(dir))
    }
}

/// Says what stood in the way when opening `name` as a directory failed.
fn not_a_directory(dir: BorrowedFd, name: &OsStr, path: &RelPath, errno: Errno) -> TreeError {
    if errno != Errno::LOOP && errno != Errno::NOTDIR {
        return TreeError::io("open directory", path, errno);
    }
    match kind_at(dir, name) {
        Ok(Some(FileType::Symlink)) => TreeError::Symlink { at: path.shown() },
        _ => TreeError::NotDirectory { at: path.shown() },
    }
}

fn kind_at(dir: BorrowedFd, name: &OsStr) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One name in one open directory: where an entry is, or is to be made.
#[derive(Debug)]
pub struct Slot {
    dir: OwnedFd,
    path: RelPath,
}

impl Slot {
    /// The path of the entry, relative to the tree's root.
    pub fn path(&self) -> &RelPath {
        &self.path
    }

    fn name(&self) -> &OsStr {
        OsStr::from_bytes(self.path.file_name().unwrap_or(b"."))
    }

    /// What is there, without following a symlink; `None` if nothing.
    pub fn kind(&self) -> Result<Option<FileType>, TreeError> {
        kind_at(self.dir.as_fd(), self.name()).map_err(|e| TreeError::io("inspect", &self.path, e))
    }

    /// Removes what is there, a directory with all it holds; a symlink is
    /// removed, never followed. Says whether there was anything.
    pub fn remove(&self) -> Result<bool, TreeError> {
        let mut removed = Vec::new();
        remove_entry(&self.dir, &self.path, None, &mut removed, self.path.depth())?;
        Ok(!removed.is_empty())
    }

    /// Removes what is there unless `keep` says to keep it; a kept directory
    /// is descended into and its own entries asked about. Returns the paths
    /// removed (each with all it held).
    pub fn remove_except(
        &self,
        keep: &mut dyn FnMut(&RelPath) -> bool,
    ) -> Result<Vec<RelPath>, TreeError> {
        let mut removed = Vec::new();
        remove_entry(
            &self.dir,
            &self.path,
            Some(keep),
            &mut removed,
            self.path.depth(),
        )?;
        Ok(removed)
    }

    /// Creates an empty regular file (mode 0600) and opens it for writing;
    /// fails if anything is there.
    pub fn create_file(&self) -> Result<File, TreeError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(
            &self.dir,
            self.name(),
            flags,
            Mode::from_raw_mode(PRIVATE_FILE),
        )
        .map(File::from)
        .map_err(|e| TreeError::io("create file", &self.path, e))
    }

    /// Creates a directory (mode 0700); fails if anything is there.
    pub fn make_dir(&self) -> Result<(), TreeError> {
        rustix::fs::mkdirat(&self.dir, self.name(), Mode::from_raw_mode(PRIVATE_DIR))
            .map_err(|e| TreeError::io("create directory", &self.path, e))
    }

    /// Opens the directory that is there, refusing a symlink.
    pub fn open_dir(&self) -> Result<OwnedFd, TreeError> {
        rustix::fs::openat(&self.dir, self.name(), DIR_FLAGS, Mode::empty())
            .map_err(|e| not_a_directory(self.dir.as_fd(), self.name(), &self.path, e))
    }

    /// Creates a symlink to `target`, which is only data: it is never
    /// resolved here, absolute or not.
    pub fn make_symlink(&self, target: &[u8]) -> Result<(), TreeError> {
        rustix::fs::symlinkat(OsStr::from_bytes(target), &self.dir, self.name())
            .map_err(|e| TreeError::io("create symbolic link", &self.path, e))
    }

    /// Creates a FIFO (mode 0600).
    pub fn make_fifo(&self) -> Result<(), TreeError> {
        rustix::fs::mknodat(
            &self.dir,
            self.name(),
            FileType::Fifo,
            Mode::from_raw_mode(PRIVATE_FILE),
            0,
        )
        .map_err(|e| TreeError::io("create FIFO", &self.path, e))
    }

    /// Makes this name a hard link to the entry at `source`, which must exist
    /// and not be a directory. A symlink there is linked itself, not followed.
    pub fn hard_link_from(&self, source: &Slot) -> Result<(), TreeError> {
        match source.kind()? {
            None => {
                return Err(TreeError::Missing {
                    path: source.path.shown(),
                });
            }
            Some(FileType::Directory) => {
                return Err(TreeError::HardLinkToDirectory {
                    path: source.path.shown(),
                });
            }
            Some(_) => {}
        }
        rustix::fs::linkat(
            &source.dir,
            source.name(),
            &self.dir,
            self.name(),
            AtFlags::empty(),
        )
        .map_err(|e| TreeError::io("create hard link", &self.path, e))
    }

    /// Opens what is there (not a symlink) for its metadata; see [`Node`].
    pub fn open_node(&self) -> Result<Node, TreeError> {
        rustix::fs::openat(&self.dir, self.name(), NODE_FLAGS, Mode::empty())
            .map(|fd| Node { fd })
            .map_err(|e| not_a_directory(self.dir.as_fd(), self.name(), &self.path, e))
    }

    /// Sets the owner of what is there; a symlink's own.
    pub fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = ids(uid, gid);
        rustix::fs::chownat(
            &self.dir,
            self.name(),
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }

    /// Sets the access and modification times of what is there; a symlink's own.
    pub fn set_times(&self, atime: Time, mtime: Time) -> io::Result<()> {
        rustix::fs::utimensat(
            &self.dir,
            self.name(),
            &timestamps(atime, mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }

    /// Swaps what is here with what is at `other`, both of which must exist,
    /// in one step: one `renameat2(RENAME_EXCHANGE)`.
    pub fn exchange(&self, other: &Slot) -> Result<(), TreeError> {
        rustix::fs::renameat_with(
            &self.dir,
            self.name(),
            &other.dir,
            other.name(),
            RenameFlags::EXCHANGE,
        )
        .map_err(|e| TreeError::io("exchange", &self.path, e))
    }

    /// Moves what is here to `other`, which must not exist
    /// (`renameat2(RENAME_NOREPLACE)`).
    pub fn move_to(&self, other: &Slot) -> Result<(), TreeError> {
        rustix::fs::renameat_with(
            &self.dir,
            self.name(),
            &other.dir,
            other.name(),
            RenameFlags::NOREPLACE,
        )
        .map_err(|e| TreeError::io("move", &self.path, e))
    }
}

/// Removes the entry `path` in `dir` (its last component), unless `keep` says
/// to keep it; pushes what was removed on `removed`.
fn remove_entry<'k>(
    dir: &OwnedFd,
    path: &RelPath,
    mut keep: Option<&mut (dyn FnMut(&RelPath) -> bool + 'k)>,
    removed: &mut Vec<RelPath>,
    depth: usize,
) -> Result<(), TreeError> {
    let name = OsStr::from_bytes(path.file_name().unwrap_or(b"."));
    let Some(kind) = kind_at(dir.as_fd(), name).map_err(|e| TreeError::io("inspect", path, e))?
    else {
        return Ok(());
    };
    let kept = match keep.as_mut() {
        Some(keep) => keep(path),
        None => false,
    };
    if kind == FileType::Directory {
        let child = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| not_a_directory(dir.as_fd(), name, path, e))?;
        // A file system mounted inside (a bind mount into a container's tree) is not the
        // tree's to remove: `rm -rf` would empty it.
        if is_mount_point(dir, &child) {
            return Err(TreeError::MountPoint { path: path.shown() });
        }
        if kept {
            return remove_children(&child, path, keep, removed, depth + 1);
        }
        // Owned by whoever removes it, it may still be read-only (an old tree
        // whose modes were applied); nothing inside is kept, so opening it up
        // changes nothing that stays.
        let _ = rustix::fs::fchmod(&child, Mode::from_raw_mode(PRIVATE_DIR));
        remove_children(&child, path, None, &mut Vec::new(), depth + 1)?;
        drop(child);
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| TreeError::io("remove directory", path, e))?;
    } else if kept {
        return Ok(());
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| TreeError::io("remove", path, e))?;
    }
    removed.push(path.clone());
    Ok(())
}

/// Whether the directory `child`, opened in `parent`, is where another file system (or a
/// bind mount of the same one) is mounted: `statx`'s mount-root attribute where the kernel
/// has it (5.8), and a device other than its parent's in any case.
fn is_mount_point(parent: &OwnedFd, child: &OwnedFd) -> bool {
    use rustix::fs::{StatxAttributes, StatxFlags};
    if let Ok(stat) = rustix::fs::statx(
        child,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::NO_AUTOMOUNT,
        StatxFlags::empty(),
    ) && stat
        .stx_attributes_mask
        .contains(StatxAttributes::MOUNT_ROOT)
        && stat.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
    {
        return true;
    }
    match (rustix::fs::fstat(parent), rustix::fs::fstat(child)) {
        (Ok(parent), Ok(child)) => parent.st_dev != child.st_dev,
        _ => false,
    }
}

/// Removes the entries of the directory `fd` (at `path`) as [`remove_entry`] does.
fn remove_children<'k>(
    fd: &OwnedFd,
    path: &RelPath,
    mut keep: Option<&mut (dyn FnMut(&RelPath) -> bool + 'k)>,
    removed: &mut Vec<RelPath>,
    depth: usize,
) -> Result<(), TreeError> {
    if depth > MAX_DEPTH {
        return Err(TreeError::TooDeep {
            path: path.shown(),
            max: MAX_DEPTH,
        });
    }
    // All names first: removing while reading may skip or repeat entries.
    let mut names = Vec::new();
    let entries =
        rustix::fs::Dir::read_from(fd).map_err(|e| TreeError::io("read directory", path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TreeError::io("read directory", path, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    for name in names {
        let mut child = path.clone();
        child.push(&name);
        remove_entry(fd, &child, keep.as_deref_mut(), removed, depth)?;
    }
    Ok(())
}

/// A point in time as tar and `utimensat` have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub secs: i64,
    /// Below 1 000 000 000.
    pub nanos: u32,
}

fn timestamps(atime: Time, mtime: Time) -> Timestamps {
    let spec = |t: Time| Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.into(),
    };
    Timestamps {
        last_access: spec(atime),
        last_modification: spec(mtime),
    }
}

fn ids(uid: u32, gid: u32) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    )
}

/// An open entry of the tree (not a symlink), for its metadata. Everything
/// is set on the open file, so nothing can swap the entry in between.
#[derive(Debug)]
pub struct Node {
    fd: OwnedFd,
}

impl Node {
    /// A directory or file already open, for instance one just created.
    pub fn new(fd: impl Into<OwnedFd>) -> Node {
        Node { fd: fd.into() }
    }

    pub fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = ids(uid, gid);
        rustix::fs::fchown(&self.fd, Some(uid), Some(gid)).map_err(io::Error::from)
    }

    /// Sets the permission bits (with setuid, setgid and sticky).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode & 0o7777)).map_err(io::Error::from)
    }

    pub fn set_times(&self, atime: Time, mtime: Time) -> io::Result<()> {
        rustix::fs::futimens(&self.fd, &timestamps(atime, mtime)).map_err(io::Error::from)
    }

    pub fn set_xattr(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        rustix::fs::fsetxattr(
            &self.fd,
            OsStr::from_bytes(name),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(io::Error::from)
    }
}

impl AsFd for Node {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
