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
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    /// A tree beside a sentinel directory that nothing may touch.
    struct Scene {
        _tmp: tempfile::TempDir,
        tree_path: PathBuf,
        outside: PathBuf,
    }

    impl Scene {
        fn new() -> Scene {
            let tmp = tempfile::tempdir().unwrap();
            let tree_path = tmp.path().join("tree");
            let outside = tmp.path().join("outside");
            std::fs::create_dir(&tree_path).unwrap();
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("secret"), b"do not touch").unwrap();
            std::fs::create_dir(outside.join("sub")).unwrap();
            std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o750)).unwrap();
            Scene {
                _tmp: tmp,
                tree_path,
                outside,
            }
        }

        fn tree(&self, resolve: Resolve) -> Tree {
            Tree::open_with(&self.tree_path, resolve).unwrap()
        }

        fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, Vec<u8>)> {
            let mut out = BTreeMap::new();
            let mut stack = vec![self.outside.clone()];
            while let Some(p) = stack.pop() {
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let content = if meta.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                out.insert(p.clone(), (meta.mode(), meta.mtime() as u64, content));
                if meta.is_dir() {
                    for e in std::fs::read_dir(&p).unwrap() {
                        stack.push(e.unwrap().path());
                    }
                }
            }
            out
        }
    }

    const BOTH: [Resolve; 2] = [Resolve::Openat2, Resolve::Walk];

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(rel("./a//b/./c/").as_bytes(), b"a/b/c");
        assert!(rel("./").is_root());
        assert!(rel(".").is_root());
        assert_eq!(RelPath::parse(b""), Err(PathProblem::Empty));
        assert_eq!(RelPath::parse(b"/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(RelPath::parse(b"a/../../b"), Err(PathProblem::DotDot));
        assert_eq!(RelPath::parse(b".."), Err(PathProblem::DotDot));
        assert_eq!(RelPath::parse(b"a\0b"), Err(PathProblem::Nul));
        assert_eq!(
            RelPath::parse(&[b'x'; 256]),
            Err(PathProblem::ComponentTooLong { max: NAME_MAX })
        );
        let long = b"abcdefgh/".repeat(500);
        assert_eq!(
            RelPath::parse(&long),
            Err(PathProblem::TooLong { max: PATH_MAX - 1 })
        );
    }

    #[test]
    fn a_path_splits_into_parent_and_name_and_knows_its_ancestors() {
        let p = rel("a/b/c");
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent.as_bytes(), name), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(rel("a").split_last().unwrap().0, RelPath::root());
        assert!(RelPath::root().split_last().is_none());
        assert_eq!(p.depth(), 3);
        assert!(p.starts_with(&rel("a/b")));
        assert!(p.starts_with(&RelPath::root()));
        assert!(!rel("a/bc").starts_with(&rel("a/b")));
        assert_eq!(rel("a").join(b"b").unwrap(), rel("a/b"));
        assert_eq!(rel("a").join(b".."), Err(PathProblem::DotDot));
        assert_eq!(rel("a").join(b"b/c"), Err(PathProblem::NotAComponent));
        assert_eq!(rel("a\n").shown(), "a\\n");
    }

    #[test]
    fn the_kernel_here_has_openat2_and_open_picks_it() {
        let scene = Scene::new();
        assert_eq!(
            Tree::open(&scene.tree_path).unwrap().resolve(),
            Resolve::Openat2
        );
    }

    #[test]
    fn a_symlink_on_the_way_is_named_and_never_followed() {
        for resolve in BOTH {
            let scene = Scene::new();
            std::fs::create_dir(scene.tree_path.join("a")).unwrap();
            std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("a/evil")).unwrap();
            std::os::unix::fs::symlink("../../outside", scene.tree_path.join("rel")).unwrap();
            let before = scene.snapshot();
            let tree = scene.tree(resolve);

            for path in ["a/evil", "a/evil/sub", "rel/sub"] {
                let err = tree.open_dir(&rel(path)).unwrap_err();
                let at = path.split("/sub").next().unwrap();
                assert!(
                    matches!(&err, TreeError::Symlink { at: a } if a == at),
                    "{resolve:?} {path}: {err}"
                );
                let err = tree
                    .make_dirs(&rel(&format!("{path}/new")), &mut |_| {})
                    .unwrap_err();
                assert!(
                    matches!(err, TreeError::Symlink { .. }),
                    "{resolve:?}: {err}"
                );
                let err = tree
                    .make_slot(&rel(&format!("{path}/file")), &mut |_| {})
                    .unwrap_err();
                assert!(
                    matches!(err, TreeError::Symlink { .. }),
                    "{resolve:?}: {err}"
                );
            }
            assert_eq!(scene.snapshot(), before, "{resolve:?}");
        }
    }

    #[test]
    fn a_file_on_the_way_is_not_a_directory() {
        for resolve in BOTH {
            let scene = Scene::new();
            std::fs::write(scene.tree_path.join("f"), b"").unwrap();
            let err = scene.tree(resolve).open_dir(&rel("f/x")).unwrap_err();
            assert!(
                matches!(&err, TreeError::NotDirectory { at } if at == "f"),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_directories_are_made_private_and_reported() {
        for resolve in BOTH {
            let scene = Scene::new();
            let tree = scene.tree(resolve);
            assert!(tree.open_dir(&rel("a/b")).unwrap().is_none());
            let mut made = Vec::new();
            tree.make_dirs(&rel("a/b/c"), &mut |p| made.push(p.clone()))
                .unwrap();
            assert_eq!(made, [rel("a"), rel("a/b"), rel("a/b/c")]);
            let mode = std::fs::metadata(scene.tree_path.join("a/b"))
                .unwrap()
                .mode();
            assert_eq!(mode & 0o7777, 0o700);
            made.clear();
            tree.make_slot(&rel("a/b/c/d"), &mut |p| made.push(p.clone()))
                .unwrap();
            assert!(made.is_empty());
        }
    }

    #[test]
    fn entries_are_created_exclusively_and_never_through_a_symlink_at_their_name() {
        for resolve in BOTH {
            let scene = Scene::new();
            std::os::unix::fs::symlink(scene.outside.join("secret"), scene.tree_path.join("link"))
                .unwrap();
            std::os::unix::fs::symlink(scene.outside.join("new"), scene.tree_path.join("dangling"))
                .unwrap();
            let before = scene.snapshot();
            let tree = scene.tree(resolve);
            for name in ["link", "dangling"] {
                let slot = tree.slot(&rel(name)).unwrap().unwrap();
                assert_eq!(slot.kind().unwrap(), Some(FileType::Symlink));
                assert!(slot.create_file().is_err());
                assert!(slot.make_dir().is_err());
                assert!(slot.make_fifo().is_err());
                assert!(slot.make_symlink(b"/x").is_err());
                assert!(matches!(slot.open_node(), Err(TreeError::Symlink { .. })));
                assert!(matches!(slot.open_dir(), Err(TreeError::Symlink { .. })));
            }
            assert_eq!(scene.snapshot(), before);

            let slot = tree.make_slot(&rel("d/file"), &mut |_| {}).unwrap();
            let mut file = slot.create_file().unwrap();
            file.write_all(b"content").unwrap();
            assert_eq!(slot.kind().unwrap(), Some(FileType::RegularFile));
            let meta = std::fs::metadata(scene.tree_path.join("d/file")).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o600);
        }
    }

    #[test]
    fn symlink_targets_are_kept_as_they_are() {
        let scene = Scene::new();
        let tree = scene.tree(Resolve::Openat2);
        tree.slot(&rel("abs"))
            .unwrap()
            .unwrap()
            .make_symlink(b"/etc/passwd")
            .unwrap();
        tree.slot(&rel("up"))
            .unwrap()
            .unwrap()
            .make_symlink(b"../../..")
            .unwrap();
        assert_eq!(
            std::fs::read_link(scene.tree_path.join("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            std::fs::read_link(scene.tree_path.join("up")).unwrap(),
            Path::new("../../..")
        );
    }

    #[test]
    fn removal_takes_a_symlink_and_never_what_it_points_to() {
        for resolve in BOTH {
            let scene = Scene::new();
            let d = scene.tree_path.join("d");
            std::fs::create_dir_all(d.join("deep/er")).unwrap();
            std::fs::write(d.join("deep/er/f"), b"x").unwrap();
            std::os::unix::fs::symlink(&scene.outside, d.join("deep/to-outside")).unwrap();
            std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("top-link")).unwrap();
            // A read-only directory inside is still removed.
            std::fs::set_permissions(d.join("deep"), std::fs::Permissions::from_mode(0o500))
                .unwrap();
            let before = scene.snapshot();
            let tree = scene.tree(resolve);

            assert!(tree.slot(&rel("d")).unwrap().unwrap().remove().unwrap());
            assert!(
                tree.slot(&rel("top-link"))
                    .unwrap()
                    .unwrap()
                    .remove()
                    .unwrap()
            );
            assert!(!tree.slot(&rel("gone")).unwrap().unwrap().remove().unwrap());
            assert_eq!(std::fs::read_dir(&scene.tree_path).unwrap().count(), 0);
            assert_eq!(scene.snapshot(), before);
        }
    }

    #[test]
    fn a_filtered_removal_keeps_what_it_is_told_and_descends_into_kept_directories() {
        for resolve in BOTH {
            let scene = Scene::new();
            let t = &scene.tree_path;
            std::fs::create_dir_all(t.join("d/keep-dir/sub")).unwrap();
            std::fs::write(t.join("d/keep-dir/new"), b"").unwrap();
            std::fs::write(t.join("d/keep-dir/old"), b"").unwrap();
            std::fs::write(t.join("d/old"), b"").unwrap();
            std::fs::write(t.join("d/new"), b"").unwrap();
            let tree = scene.tree(resolve);
            let kept = ["d/keep-dir", "d/keep-dir/new", "d/new"];
            let mut keep = |p: &RelPath| kept.iter().any(|k| k.as_bytes() == p.as_bytes());

            let mut removed = tree
                .remove_children_except(&rel("d"), &mut keep)
                .unwrap()
                .unwrap();
            removed.sort();
            assert_eq!(
                removed,
                [rel("d/keep-dir/old"), rel("d/keep-dir/sub"), rel("d/old")]
            );
            assert!(t.join("d/keep-dir/new").exists());
            assert!(t.join("d/new").exists());
            assert!(
                tree.remove_children_except(&rel("nothing"), &mut keep)
                    .unwrap()
                    .is_none()
            );

            let removed = tree
                .slot(&rel("d"))
                .unwrap()
                .unwrap()
                .remove_except(&mut |_| false)
                .unwrap();
            assert_eq!(removed, [rel("d")]);
            assert!(!t.join("d").exists());
        }
    }

    #[test]
    fn a_hard_link_needs_an_existing_source_that_is_no_directory() {
        for resolve in BOTH {
            let scene = Scene::new();
            std::fs::write(scene.tree_path.join("file"), b"shared").unwrap();
            std::fs::create_dir(scene.tree_path.join("dir")).unwrap();
            std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("link")).unwrap();
            let tree = scene.tree(resolve);
            let slot = |p: &str| tree.slot(&rel(p)).unwrap().unwrap();

            slot("copy").hard_link_from(&slot("file")).unwrap();
            let a = std::fs::metadata(scene.tree_path.join("file")).unwrap();
            let b = std::fs::metadata(scene.tree_path.join("copy")).unwrap();
            assert_eq!(a.ino(), b.ino());

            let err = slot("x").hard_link_from(&slot("dir")).unwrap_err();
            assert!(
                matches!(err, TreeError::HardLinkToDirectory { .. }),
                "{err}"
            );
            let err = slot("x").hard_link_from(&slot("missing")).unwrap_err();
            assert!(matches!(err, TreeError::Missing { .. }), "{err}");
            // A link to a symlink is a second name of the symlink itself.
            slot("link2").hard_link_from(&slot("link")).unwrap();
            let meta = std::fs::symlink_metadata(scene.tree_path.join("link2")).unwrap();
            assert!(meta.file_type().is_symlink());
        }
    }

    #[test]
    fn metadata_is_set_on_the_entry_itself() {
        let scene = Scene::new();
        let tree = scene.tree(Resolve::Openat2);
        let slot = tree.slot(&rel("f")).unwrap().unwrap();
        let node = Node::new(slot.create_file().unwrap());
        node.set_owner(1234, 5678).unwrap();
        node.set_mode(0o4755).unwrap();
        let t = Time {
            secs: 1_000_000_000,
            nanos: 5,
        };
        node.set_times(t, t).unwrap();
        node.set_xattr(b"user.test", b"value").unwrap();
        let meta = std::fs::metadata(scene.tree_path.join("f")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1234, 5678, 0o4755)
        );
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_000_000_000, 5));

        let link = tree.slot(&rel("l")).unwrap().unwrap();
        link.make_symlink(b"f").unwrap();
        link.set_owner(42, 43).unwrap();
        link.set_times(t, Time { secs: 7, nanos: 0 }).unwrap();
        let meta = std::fs::symlink_metadata(scene.tree_path.join("l")).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mtime()), (42, 43, 7));
        // The file it points to kept its own.
        let meta = std::fs::metadata(scene.tree_path.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.mtime()), (1234, 1_000_000_000));

        let fifo = tree.slot(&rel("p")).unwrap().unwrap();
        fifo.make_fifo().unwrap();
        fifo.open_node().unwrap().set_mode(0o640).unwrap();
        let meta = std::fs::symlink_metadata(scene.tree_path.join("p")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
        assert_eq!(meta.mode() & 0o7777, 0o640);
    }

    #[test]
    fn two_trees_are_exchanged_in_one_step_and_a_move_never_replaces() {
        let scene = Scene::new();
        let t = &scene.tree_path;
        std::fs::create_dir(t.join("current")).unwrap();
        std::fs::write(t.join("current/version"), b"old").unwrap();
        std::fs::create_dir(t.join(".new")).unwrap();
        std::fs::write(t.join(".new/version"), b"new").unwrap();
        let tree = scene.tree(Resolve::Openat2);
        let slot = |p: &str| tree.slot(&rel(p)).unwrap().unwrap();

        slot(".new").exchange(&slot("current")).unwrap();
        assert_eq!(std::fs::read(t.join("current/version")).unwrap(), b"new");
        assert_eq!(std::fs::read(t.join(".new/version")).unwrap(), b"old");

        let err = slot(".new").move_to(&slot("current")).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        slot(".new").move_to(&slot("old")).unwrap();
        assert_eq!(std::fs::read(t.join("old/version")).unwrap(), b"old");
        assert!(slot("missing").exchange(&slot("current")).is_err());
    }
}
