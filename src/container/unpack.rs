//! Applying container image layers to a directory tree, as `image-spec/layer.md` says, safely.
//!
//! An [`Unpacker`] owns a [`Tree`] (a directory being built aside, mode 0700)
//! and applies layers to it in order, each read once as a stream
//! ([`Unpacker::apply_layer`]); [`Unpacker::finish`] then gives directories
//! their own modes and times, deepest first. The engine never prints: it
//! returns [`LayerStats`] (device nodes skipped, xattrs refused, …) for the
//! caller to summarise, and a [`UnpackError`] naming the layer and the entry.
//! On an error the tree is left half-built; the caller throws it away (only a
//! complete, verified tree is ever moved into place).
//!
//! The rules, for an image that may be hostile:
//!
//! - Names: absolute names, `..` components, empty names and names past the
//!   [`Limits`] are refused; `.` and empty components are dropped. Every name
//!   is resolved inside the tree without following any symlink (see
//!   `fs::tree`): a path through a symlink, planted by this layer or a lower
//!   one, is refused, so nothing is ever written, chmod-ed, chown-ed or
//!   removed outside the tree. (Docker and umoci would follow such a symlink
//!   when it stays inside the tree; layers made by diffing a filesystem never
//!   need that.) Symlink *targets* are data, kept as they are.
//! - Replacing: an entry over an existing one removes it first (a directory
//!   with all it holds) and creates a new inode, exclusively: nothing is ever
//!   written into an existing file. A directory over a directory keeps its
//!   contents and takes the new metadata.
//! - Whiteouts: `.wh.NAME` removes NAME, `.wh..wh..opq` everything in its
//!   directory, but only what lower layers put there. The entries are read
//!   once, so instead of applying opaque markers in a first pass, every path
//!   this layer creates (and its ancestors) is remembered, and a whiteout
//!   spares those: the result is the same wherever the marker comes in the
//!   layer. `.wh.`, `.wh..` and `.wh...` are refused; other `.wh..wh.` names
//!   are AUFS bookkeeping and skipped.
//! - Hard links: only to an entry already in the tree, never to a directory,
//!   never through a symlink.
//! - Owners ([`Owners`]): as root, the numeric uid and gid, then the mode
//!   (setuid kept), times, then xattrs (`user.*` and `security.capability`
//!   only; never `security.selinux` or `trusted.*`). Otherwise files belong to
//!   the caller, setuid and setgid are dropped, and the image's owners are
//!   kept in the `user.rootlesscontainers` xattr as umoci writes it.
//! - Device nodes are skipped and counted (an image's `/dev` is populated by
//!   whoever runs it); FIFOs are created. Tar has no entry type for sockets
//!   (GNU tar skips them when archiving), so a layer never holds one.
//! - Directories stay 0700 while anything may still be written inside; their
//!   modes and times are applied by [`Unpacker::finish`], so a read-only
//!   directory in a lower layer never blocks a later entry.
//! - Caps ([`Limits`]) on entries, name lengths, depth, uncompressed bytes
//!   and the header bytes of one entry (the tar parser keeps long names and
//!   PAX records in memory).
//!
//! The tar crate is used as a parser only; its `unpack` is never called.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::rc::Rc;

use rustix::fs::FileType;

use crate::format::text;
use crate::fs::tree::{Node, PathProblem, RelPath, Slot, Time, Tree, TreeError};
use crate::stream::decompress::{Compression, TooLarge, Uncompressed};

/// The opaque whiteout: everything lower layers put in its directory goes.
const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT: &[u8] = b".wh.";
/// AUFS kept its own bookkeeping under names with this prefix.
const AUFS_META: &[u8] = b".wh..wh.";
const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
const ROOTLESS_XATTR: &[u8] = b"user.rootlesscontainers";
/// Mode of a directory no entry describes (a missing parent).
const IMPLIED_DIR_MODE: u32 = 0o755;
const COPY_BUFFER: usize = 128 << 10;

/// Who owns what is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Running as root: the image's numeric owners, setuid and capabilities.
    Image,
    /// Not root: everything belongs to the caller, setuid and setgid are
    /// dropped, and the image's owners go in `user.rootlesscontainers`.
    Caller,
}

impl Owners {
    /// [`Owners::Image`] when running as root, else [`Owners::Caller`].
    pub fn for_this_process() -> Owners {
        if rustix::process::geteuid().is_root() {
            Owners::Image
        } else {
            Owners::Caller
        }
    }
}

/// Caps on one layer. Each one reached is an error saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the tar stream, whiteouts and skipped ones included.
    pub entries: u64,
    /// Bytes of a normalised path (and of a symlink target).
    pub path_bytes: usize,
    /// Components of a path.
    pub depth: usize,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_bytes: u64,
    /// Bytes read to reach one entry: its headers, long names, PAX records
    /// and sparse map, which the tar parser holds in memory.
    pub header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // A Debian minbase tree has 6.7k entries, a large distribution
            // image a few 100k.
            entries: 1_000_000,
            path_bytes: 4095,
            // Deep enough for nested node_modules; also bounds the directory
            // handles a removal holds open.
            depth: 256,
            uncompressed_bytes: 64 << 30,
            header_bytes: 1 << 20,
        }
    }
}

/// How to unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub owners: Owners,
    pub limits: Limits,
}

/// The layer being applied, for reading it and for messages.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// Its digest, `sha256:…`, as the manifest names it.
    pub digest: &'a str,
    pub compression: Compression,
    /// The SHA-256 of its uncompressed stream as the image config lists it
    /// (`rootfs.diff_ids`); when given, a stream with another one is an error.
    pub diff_id: Option<[u8; 32]>,
}

/// What applying one layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Entries read, whiteouts and skipped ones included.
    pub entries: u64,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub fifos: u64,
    /// Whiteouts and opaque markers.
    pub whiteouts: u64,
    /// Bytes written into regular files.
    pub file_bytes: u64,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_bytes: u64,
    /// Character and block devices, not created.
    pub devices_skipped: u64,
    /// Extended attributes not applied because of their name (anything but
    /// `user.*` and `security.capability`), or because they were on a symlink.
    pub xattrs_refused: u64,
    /// Extended attributes the file system (or, not as root, the kernel)
    /// would not take; including `user.rootlesscontainers`.
    pub xattrs_unsupported: u64,
    /// Entries skipped otherwise: AUFS bookkeeping, global PAX headers.
    pub other_skipped: u64,
    /// SHA-256 of the uncompressed stream.
    pub diff_id: [u8; 32],
}

/// What [`Unpacker::finish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishStats {
    /// Directories given their own metadata.
    pub directories: u64,
    /// As [`LayerStats::xattrs_unsupported`], for directories.
    pub xattrs_unsupported: u64,
}

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Name(PathProblem),
    #[error("the name is longer than {max} bytes")]
    NameTooLong { max: usize },
    #[error("the name is more than {max} directories deep")]
    TooDeep { max: usize },
    #[error("it is not a valid whiteout (nothing follows `.wh.`, or `.`/`..` does)")]
    BadWhiteout,
    #[error("a whiteout name is used as a directory")]
    WhiteoutAsDirectory,
    #[error("only a directory can describe the root of the tree")]
    RootNotDirectory,
    #[error("it has no link target")]
    NoLinkTarget,
    #[error("the symbolic link target is empty, has a NUL byte or is longer than {max} bytes")]
    BadSymlinkTarget { max: usize },
    #[error("hard link target {target}: {problem}")]
    HardLinkTarget {
        target: String,
        problem: PathProblem,
    },
    #[error("it is a hard link to itself")]
    HardLinkToItself,
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(char),
    #[error("owner id {0} is out of range")]
    IdOutOfRange(u64),
    #[error("the time {0} is out of range or malformed")]
    BadTime(String),
    #[error("malformed header field: {0}")]
    BadHeader(String),
    #[error("malformed PAX records: {0}")]
    BadPax(String),
}

/// An error applying a layer; every one names the layer, most the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: cannot read it as {compression}: {source}")]
    Open {
        layer: String,
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: entry {path}: refused: {refusal}")]
    Refused {
        layer: String,
        path: String,
        refusal: Refusal,
    },
    #[error("layer {layer}: entry {path}: {source}")]
    Tree {
        layer: String,
        path: String,
        #[source]
        source: TreeError,
    },
    #[error("layer {layer}: entry {path}: cannot {action}: {source}")]
    Io {
        layer: String,
        path: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: {source}")]
    TooLarge {
        layer: String,
        #[source]
        source: TooLarge,
    },
    #[error("layer {layer}: more than {max} entries")]
    TooManyEntries { layer: String, max: u64 },
    #[error(
        "layer {layer}: the headers of the entry after {after} take more than {max} bytes \
         (long names, PAX records or a sparse map)"
    )]
    HeadersTooLarge {
        layer: String,
        after: String,
        max: u64,
    },
    #[error("layer {layer}: not a valid tar stream (after entry {after}): {source}")]
    Corrupt {
        layer: String,
        after: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: data follows the end-of-archive marker")]
    TrailingData { layer: String },
    #[error(
        "layer {layer}: its uncompressed content has digest sha256:{actual}, \
         but the image config lists sha256:{expected}"
    )]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("cannot {action} of directory {path}: {source}")]
    Finish {
        path: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open directory {path} to set its metadata: {source}")]
    FinishTree {
        path: String,
        #[source]
        source: TreeError,
    },
}

/// Metadata of a directory, applied by [`Unpacker::finish`].
#[derive(Debug, Clone)]
struct DirMeta {
    /// `None` for a directory no entry described: only its mode is set.
    entry: Option<Meta>,
}

/// Owner, mode, times and xattrs of an entry, as they will be applied.
#[derive(Debug, Clone)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    atime: Time,
    mtime: Time,
    /// Allowed names only, the rootless record included.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What kind of entry a tar header describes, for this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Symlink,
    HardLink,
    Fifo,
    Device,
}

/// Applies layers to one tree; see the module documentation.
#[derive(Debug)]
pub struct Unpacker {
    tree: Tree,
    options: Options,
    /// Every directory in the tree, by path, with what [`Unpacker::finish`]
    /// applies. Reverse order of the paths puts every directory before its
    /// parent.
    dirs: BTreeMap<RelPath, DirMeta>,
    buffer: Vec<u8>,
}

/// The state of the layer being applied.
struct Run<'a> {
    layer: &'a Layer<'a>,
    /// Paths this layer created or changed, with their ancestors: whiteouts
    /// in this layer spare them.
    upper: HashSet<RelPath>,
    stats: LayerStats,
}

impl Run<'_> {
    fn name(&self) -> String {
        text::untrusted(self.layer.digest)
    }

    fn refused(&self, path: &str, refusal: Refusal) -> UnpackError {
        UnpackError::Refused {
            layer: self.name(),
            path: path.to_string(),
            refusal,
        }
    }

    fn tree(&self, path: &str, source: TreeError) -> UnpackError {
        UnpackError::Tree {
            layer: self.name(),
            path: path.to_string(),
            source,
        }
    }

    fn io(&self, path: &str, action: &'static str, source: io::Error) -> UnpackError {
        UnpackError::Io {
            layer: self.name(),
            path: path.to_string(),
            action,
            source,
        }
    }

    /// Remembers that this layer made `path` (and so its ancestors).
    fn touched(&mut self, path: &RelPath) {
        let mut path = path.clone();
        loop {
            let parent = path.split_last().map(|(parent, _)| parent);
            if !self.upper.insert(path) {
                // Its ancestors went in with it.
                return;
            }
            match parent {
                Some(parent) => path = parent,
                None => return,
            }
        }
    }
}

/// Reads through to `inner`, but at most `left` bytes while a budget is set:
/// the tar parser holds long names and PAX records in memory, so the bytes it
/// may read to reach one entry are capped.
struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<Option<u64>>>,
    exhausted: Rc<Cell<bool>>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 {
            self.exhausted.set(true);
            return Err(io::Error::other("header budget exhausted"));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..max).unwrap_or_default())?;
        self.left.set(Some(left - n as u64));
        Ok(n)
    }
}

impl Unpacker {
    /// An unpacker building `tree`, which should be a new, empty directory
    /// of mode 0700 (its own mode is applied by [`Unpacker::finish`]).
    pub fn new(tree: Tree, options: Options) -> Unpacker {
        let mut dirs = BTreeMap::new();
        dirs.insert(RelPath::root(), DirMeta { entry: None });
        Unpacker {
            tree,
            options,
            dirs,
            buffer: vec![0; COPY_BUFFER],
        }
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Applies the layer whose blob `blob` reads, to its end, and checks its
    /// diff_id if the layer names one.
    pub fn apply_layer(
        &mut self,
        layer: &Layer,
        blob: impl Read + Send,
    ) -> Result<LayerStats, UnpackError> {
        let limits = self.options.limits;
        let mut run = Run {
            layer,
            upper: HashSet::new(),
            stats: LayerStats::default(),
        };
        let stream = Uncompressed::new(blob, layer.compression, limits.uncompressed_bytes)
            .map_err(|source| UnpackError::Open {
                layer: run.name(),
                compression: layer.compression.name(),
                source,
            })?;
        let meter = stream.meter();
        let too_large = |run: &Run| UnpackError::TooLarge {
            layer: run.name(),
            source: TooLarge { cap: meter.cap() },
        };
        let budget = Rc::new(Cell::new(None));
        let exhausted = Rc::new(Cell::new(false));
        let mut archive = tar::Archive::new(Budgeted {
            inner: stream,
            left: budget.clone(),
            exhausted: exhausted.clone(),
        });
        let mut last = String::from("(none: the first one)");
        let corrupt = |run: &Run, last: &str, source: io::Error| {
            if meter.over_cap() {
                too_large(run)
            } else if exhausted.get() {
                UnpackError::HeadersTooLarge {
                    layer: run.name(),
                    after: last.to_string(),
                    max: limits.header_bytes,
                }
            } else {
                UnpackError::Corrupt {
                    layer: run.name(),
                    after: last.to_string(),
                    source,
                }
            }
        };

        let mut entries = archive.entries().map_err(|e| corrupt(&run, &last, e))?;
        loop {
            budget.set(Some(limits.header_bytes));
            let next = entries.next();
            budget.set(None);
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(corrupt(&run, &last, e)),
            };
            run.stats.entries += 1;
            if run.stats.entries > limits.entries {
                return Err(UnpackError::TooManyEntries {
                    layer: run.name(),
                    max: limits.entries,
                });
            }
            last = text::untrusted_bytes(&entry.path_bytes());
            if let Err(e) = self.apply_entry(&mut run, &mut entry, &last) {
                // A read error inside an entry's data may be the cap.
                return Err(if meter.over_cap() { too_large(&run) } else { e });
            }
            // Whatever the entry held and was not used (a directory with a
            // size), read here rather than by the parser under the budget.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| corrupt(&run, &last, e))?;
        }

        // The rest is the end-of-archive marker and padding; it counts in the
        // diff_id, and anything but zeros there would be entries that other
        // tar readers might see and this one did not.
        let mut stream = archive.into_inner().inner;
        loop {
            let n = stream
                .read(&mut self.buffer)
                .map_err(|e| corrupt(&run, &last, e))?;
            if n == 0 {
                break;
            }
            if self
                .buffer
                .get(..n)
                .unwrap_or_default()
                .iter()
                .any(|&b| b != 0)
            {
                return Err(UnpackError::TrailingData { layer: run.name() });
            }
        }
        let summary = stream.finish().map_err(|e| corrupt(&run, &last, e))?;
        run.stats.uncompressed_bytes = summary.bytes;
        run.stats.diff_id = summary.sha256;
        if let Some(expected) = layer.diff_id
            && expected != summary.sha256
        {
            return Err(UnpackError::DiffIdMismatch {
                layer: run.name(),
                expected: hex::encode(expected),
                actual: hex::encode(summary.sha256),
            });
        }
        Ok(run.stats)
    }

    /// Gives every directory its own owner, mode, times and xattrs, deepest
    /// first (the root last), once nothing more is written in the tree.
    pub fn finish(self) -> Result<FinishStats, UnpackError> {
        let mut stats = FinishStats::default();
        for (path, meta) in self.dirs.iter().rev() {
            let shown = path.shown();
            let fd = match self.tree.open_dir(path) {
                Ok(Some(fd)) => fd,
                // Whiteouts drop what they remove from `dirs`; something
                // else removed it.
                Ok(None) => continue,
                Err(source) => {
                    return Err(UnpackError::FinishTree {
                        path: shown,
                        source,
                    });
                }
            };
            let node = Node::new(fd);
            let fail = |action: &'static str| {
                let path = shown.clone();
                move |source| UnpackError::Finish {
                    path,
                    action,
                    source,
                }
            };
            match &meta.entry {
                None => node
                    .set_mode(IMPLIED_DIR_MODE)
                    .map_err(fail("set the mode"))?,
                Some(meta) => {
                    let unsupported =
                        apply_meta(&node, meta, self.options.owners, &mut |action, source| {
                            fail(action)(source)
                        })?;
                    stats.xattrs_unsupported += unsupported;
                }
            }
            stats.directories += 1;
        }
        Ok(stats)
    }

    fn apply_entry<R: Read>(
        &mut self,
        run: &mut Run,
        entry: &mut tar::Entry<R>,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let limits = self.options.limits;
        let raw = entry.path_bytes().into_owned();
        let header = entry.header();
        let type_byte = header.entry_type().as_byte();
        let kind = match type_byte {
            // Old tar marked directories only with a trailing slash.
            0 if raw.ends_with(b"/") => Kind::Directory,
            b'0' | 0 | b'7' | b'S' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' | b'4' => Kind::Device,
            b'5' => Kind::Directory,
            b'6' => Kind::Fifo,
            b'g' => {
                // Global PAX records: nothing in them describes a file here.
                run.stats.other_skipped += 1;
                return Ok(());
            }
            other => return Err(run.refused(shown, Refusal::UnsupportedType(char::from(other)))),
        };

        let path = RelPath::parse(&raw).map_err(|p| run.refused(shown, Refusal::Name(p)))?;
        if path.as_bytes().len() > limits.path_bytes {
            return Err(run.refused(
                shown,
                Refusal::NameTooLong {
                    max: limits.path_bytes,
                },
            ));
        }
        if path.depth() > limits.depth {
            return Err(run.refused(shown, Refusal::TooDeep { max: limits.depth }));
        }

        // Whiteouts and AUFS bookkeeping.
        let components: Vec<&[u8]> = path.components().collect();
        if let Some((name, dirs)) = components.split_last() {
            if components
                .iter()
                .any(|c| c.starts_with(AUFS_META) && *c != OPAQUE)
            {
                run.stats.other_skipped += 1;
                return Ok(());
            }
            if dirs.iter().any(|c| c.starts_with(WHITEOUT)) {
                return Err(run.refused(shown, Refusal::WhiteoutAsDirectory));
            }
            if let Some(target) = name.strip_prefix(WHITEOUT) {
                let parent = path.split_last().map(|(p, _)| p).unwrap_or_default();
                run.stats.whiteouts += 1;
                if *name == OPAQUE {
                    return self.opaque(run, &parent, shown);
                }
                let target = parent
                    .join(target)
                    .map_err(|_| run.refused(shown, Refusal::BadWhiteout))?;
                return self.whiteout(run, &target, shown);
            }
        }

        if path.is_root() {
            if kind != Kind::Directory {
                return Err(run.refused(shown, Refusal::RootNotDirectory));
            }
            let meta = self.meta(run, entry, shown)?;
            self.dirs.insert(path, DirMeta { entry: Some(meta) });
            run.stats.directories += 1;
            return Ok(());
        }

        // The source of a hard link, found before anything is removed.
        let source = if kind == Kind::HardLink {
            Some(self.link_source(run, entry, &path, shown)?)
        } else {
            None
        };

        let slot = self.make_slot(run, &path, shown)?;
        let existing = slot.kind().map_err(|e| run.tree(shown, e))?;
        match (existing, kind) {
            (None, _) => {}
            (Some(FileType::Directory), Kind::Directory) => {}
            (Some(_), _) => {
                slot.remove().map_err(|e| run.tree(shown, e))?;
                self.forget_dirs(&path);
            }
        }

        match kind {
            Kind::Directory => {
                if existing != Some(FileType::Directory) {
                    slot.make_dir().map_err(|e| run.tree(shown, e))?;
                }
                let meta = self.meta(run, entry, shown)?;
                self.dirs
                    .insert(path.clone(), DirMeta { entry: Some(meta) });
                run.stats.directories += 1;
            }
            Kind::File => {
                let meta = self.meta(run, entry, shown)?;
                let mut file = slot.create_file().map_err(|e| run.tree(shown, e))?;
                let size = entry.size();
                let written = copy(entry, &mut file, &mut self.buffer).map_err(|e| match e {
                    Copy::Read(e) => run.io(shown, "read the layer", e),
                    Copy::Write(e) => run.io(shown, "write", e),
                })?;
                if written != size {
                    let short = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the layer ends inside this file",
                    );
                    return Err(run.io(shown, "read", short));
                }
                run.stats.file_bytes += written;
                let node = Node::new(file);
                self.apply(run, &node, &meta, shown)?;
                run.stats.files += 1;
            }
            Kind::Fifo => {
                let meta = self.meta(run, entry, shown)?;
                slot.make_fifo().map_err(|e| run.tree(shown, e))?;
                let node = slot.open_node().map_err(|e| run.tree(shown, e))?;
                self.apply(run, &node, &meta, shown)?;
                run.stats.fifos += 1;
            }
            Kind::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| run.refused(shown, Refusal::NoLinkTarget))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) || target.len() > limits.path_bytes {
                    return Err(run.refused(
                        shown,
                        Refusal::BadSymlinkTarget {
                            max: limits.path_bytes,
                        },
                    ));
                }
                let meta = self.meta(run, entry, shown)?;
                slot.make_symlink(&target).map_err(|e| run.tree(shown, e))?;
                self.apply_symlink(run, &slot, &meta, shown)?;
                run.stats.symlinks += 1;
            }
            Kind::HardLink => {
                if let Some(source) = &source {
                    slot.hard_link_from(source)
                        .map_err(|e| run.tree(shown, e))?;
                }
                // A hard link has no metadata of its own: it is the inode's.
                run.stats.hard_links += 1;
            }
            Kind::Device => {
                // What was there is gone, as the layer says; the node itself
                // is not made.
                run.stats.devices_skipped += 1;
                return Ok(());
            }
        }
        run.touched(&path);
        Ok(())
    }

    /// The slot for `path`, creating missing parents as the image would have
    /// them (0755 at the end, owned by root or the caller).
    fn make_slot(
        &mut self,
        run: &mut Run,
        path: &RelPath,
        shown: &str,
    ) -> Result<Slot, UnpackError> {
        let mut created = Vec::new();
        let slot = self.tree.make_slot(path, &mut |p| created.push(p.clone()));
        for dir in created {
            run.touched(&dir);
            self.dirs.insert(dir, DirMeta { entry: None });
        }
        slot.map_err(|e| run.tree(shown, e))
    }

    fn link_source<R: Read>(
        &self,
        run: &Run,
        entry: &tar::Entry<R>,
        path: &RelPath,
        shown: &str,
    ) -> Result<Slot, UnpackError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| run.refused(shown, Refusal::NoLinkTarget))?;
        let target = RelPath::parse(&raw).map_err(|problem| {
            run.refused(
                shown,
                Refusal::HardLinkTarget {
                    target: text::untrusted_bytes(&raw),
                    problem,
                },
            )
        })?;
        if target == *path {
            return Err(run.refused(shown, Refusal::HardLinkToItself));
        }
        if target.is_root() {
            return Err(run.tree(
                shown,
                TreeError::HardLinkToDirectory {
                    path: target.shown(),
                },
            ));
        }
        match self.tree.slot(&target) {
            Ok(Some(slot)) => Ok(slot),
            Ok(None) => Err(run.tree(
                shown,
                TreeError::Missing {
                    path: target.shown(),
                },
            )),
            Err(e) => Err(run.tree(shown, e)),
        }
    }

    /// `.wh.NAME`: removes `target` as lower layers left it.
    fn whiteout(
        &mut self,
        run: &mut Run,
        target: &RelPath,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let slot = match self.tree.slot(target) {
            Ok(Some(slot)) => slot,
            // Nothing there, or a file where its directory would be.
            Ok(None) | Err(TreeError::NotDirectory { .. }) => return Ok(()),
            Err(e) => return Err(run.tree(shown, e)),
        };
        let upper = &run.upper;
        let removed = slot
            .remove_except(&mut |p| upper.contains(p))
            .map_err(|e| run.tree(shown, e))?;
        for path in removed {
            self.forget_dirs(&path);
        }
        Ok(())
    }

    /// `.wh..wh..opq`: empties `dir` of what lower layers put there.
    fn opaque(&mut self, run: &mut Run, dir: &RelPath, shown: &str) -> Result<(), UnpackError> {
        let upper = &run.upper;
        let removed = match self
            .tree
            .remove_children_except(dir, &mut |p| upper.contains(p))
        {
            Ok(removed) => removed.unwrap_or_default(),
            Err(TreeError::NotDirectory { .. }) => Vec::new(),
            Err(e) => return Err(run.tree(shown, e)),
        };
        for path in removed {
            self.forget_dirs(&path);
        }
        Ok(())
    }

    /// Drops what `finish` would apply to `path` and anything under it.
    fn forget_dirs(&mut self, path: &RelPath) {
        self.dirs.remove(path);
        // Paths under `a/b` sort from `a/b/` up to, not including, `a/b0`
        // ('0' follows '/').
        let mut low = path.as_bytes().to_vec();
        low.push(b'/');
        let mut high = path.as_bytes().to_vec();
        high.push(b'0');
        let range = (
            Bound::Included(low.as_slice()),
            Bound::Excluded(high.as_slice()),
        );
        let inside: Vec<RelPath> = self
            .dirs
            .range::<[u8], _>(range)
            .map(|(p, _)| p.clone())
            .collect();
        for p in inside {
            self.dirs.remove(&p);
        }
    }

    /// The metadata of `entry` as it will be applied under the owners rule.
    fn meta<R: Read>(
        &self,
        run: &mut Run,
        entry: &mut tar::Entry<R>,
        shown: &str,
    ) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let id = |value: io::Result<u64>| -> Result<u32, UnpackError> {
            let value = value.map_err(|e| run.refused(shown, Refusal::BadHeader(e.to_string())))?;
            // (uid_t)-1 means "leave unchanged" to chown.
            u32::try_from(value)
                .ok()
                .filter(|&v| v != u32::MAX)
                .ok_or_else(|| run.refused(shown, Refusal::IdOutOfRange(value)))
        };
        let uid = id(header.uid())?;
        let gid = id(header.gid())?;
        let mut mode = header
            .mode()
            .map_err(|e| run.refused(shown, Refusal::BadHeader(e.to_string())))?
            & 0o7777;
        let header_mtime = header
            .mtime()
            .map_err(|e| run.refused(shown, Refusal::BadHeader(e.to_string())))?;

        let mut mtime = None;
        let mut atime = None;
        let mut xattrs = Vec::new();
        let mut refused = 0;
        if let Some(records) = entry
            .pax_extensions()
            .map_err(|e| run.refused(shown, Refusal::BadPax(e.to_string())))?
        {
            for record in records {
                let record =
                    record.map_err(|e| run.refused(shown, Refusal::BadPax(e.to_string())))?;
                let key = record.key_bytes();
                let value = record.value_bytes();
                if key == b"mtime" {
                    mtime = Some(pax_time(value).ok_or_else(|| bad_time(run, shown, value))?);
                } else if key == b"atime" {
                    atime = Some(pax_time(value).ok_or_else(|| bad_time(run, shown, value))?);
                } else if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                    if xattr_allowed(name, self.options.owners) {
                        xattrs.push((name.to_vec(), value.to_vec()));
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        run.stats.xattrs_refused += refused;
        let mtime = match mtime {
            Some(t) => t,
            None => Time {
                secs: i64::try_from(header_mtime)
                    .map_err(|_| bad_time(run, shown, header_mtime.to_string().as_bytes()))?,
                nanos: 0,
            },
        };
        if self.options.owners == Owners::Caller {
            mode &= !0o6000;
            if let Some(record) = rootless_record(uid, gid) {
                xattrs.push((ROOTLESS_XATTR.to_vec(), record));
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            atime: atime.unwrap_or(mtime),
            mtime,
            xattrs,
        })
    }

    fn apply(
        &self,
        run: &mut Run,
        node: &Node,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let unsupported = apply_meta(node, meta, self.options.owners, &mut |action, source| {
            run.io(shown, action, source)
        })?;
        run.stats.xattrs_unsupported += unsupported;
        Ok(())
    }

    /// A symlink has no mode of its own, and Linux keeps `user.*` xattrs off
    /// symlinks, so only its owner and times are set.
    fn apply_symlink(
        &self,
        run: &mut Run,
        slot: &Slot,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        if self.options.owners == Owners::Image {
            slot.set_owner(meta.uid, meta.gid)
                .map_err(|e| run.io(shown, "set the owner", e))?;
        }
        slot.set_times(meta.atime, meta.mtime)
            .map_err(|e| run.io(shown, "set the times", e))?;
        for (name, _) in &meta.xattrs {
            if name == ROOTLESS_XATTR {
                run.stats.xattrs_unsupported += 1;
            } else {
                run.stats.xattrs_refused += 1;
            }
        }
        Ok(())
    }
}

/// Sets owner, mode, times and xattrs on `node` in the order that keeps
/// them: as root, the owner first (a chown clears setuid and capabilities),
/// then the mode, the times and the xattrs. Not as root, the xattrs come
/// before the mode: setting a `user.*` xattr needs write permission, which a
/// read-only mode would take away. Returns how many xattrs the file system
/// refused.
fn apply_meta(
    node: &Node,
    meta: &Meta,
    owners: Owners,
    fail: &mut dyn FnMut(&'static str, io::Error) -> UnpackError,
) -> Result<u64, UnpackError> {
    let mut unsupported = 0;
    let mut set_xattrs = |fail: &mut dyn FnMut(&'static str, io::Error) -> UnpackError| {
        for (name, value) in &meta.xattrs {
            match node.set_xattr(name, value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => unsupported += 1,
                // Not as root, `security.capability` needs CAP_SETFCAP.
                Err(e) if owners == Owners::Caller && e.raw_os_error() == Some(libc::EPERM) => {
                    unsupported += 1
                }
                Err(e) => return Err(fail("set an extended attribute", e)),
            }
        }
        Ok(())
    };
    match owners {
        Owners::Image => {
            node.set_owner(meta.uid, meta.gid)
                .map_err(|e| fail("set the owner", e))?;
            node.set_mode(meta.mode)
                .map_err(|e| fail("set the mode", e))?;
            node.set_times(meta.atime, meta.mtime)
                .map_err(|e| fail("set the times", e))?;
            set_xattrs(fail)?;
        }
        Owners::Caller => {
            set_xattrs(fail)?;
            node.set_mode(meta.mode)
                .map_err(|e| fail("set the mode", e))?;
            node.set_times(meta.atime, meta.mtime)
                .map_err(|e| fail("set the times", e))?;
        }
    }
    Ok(unsupported)
}

/// Which xattrs of an image are applied: `user.*` and `security.capability`.
/// Never `security.selinux` (the host's policy labels files), `trusted.*`
/// (overlayfs and other privileged bookkeeping) or `system.*` (ACLs). Not as
/// root, a `user.rootlesscontainers` in the layer is dropped for the one
/// written from the entry's owners.
fn xattr_allowed(name: &[u8], owners: Owners) -> bool {
    if name == ROOTLESS_XATTR {
        return owners == Owners::Image;
    }
    name == b"security.capability" || (name.starts_with(b"user.") && name.len() > 5)
}

/// The `user.rootlesscontainers` value for an entry owned by `uid:gid`, as
/// umoci writes it: the protobuf message `Resource { uint32 uid = 1; uint32
/// gid = 2; }`, where an id of 0 is written as `u32::MAX` (meaning "the
/// caller's own", which is root in the container's user namespace), and no
/// xattr at all for 0:0.
fn rootless_record(uid: u32, gid: u32) -> Option<Vec<u8>> {
    if uid == 0 && gid == 0 {
        return None;
    }
    let or_noop = |id: u32| if id == 0 { u32::MAX } else { id };
    let mut out = Vec::with_capacity(12);
    // Field 1, wire type 0 (varint); proto3 leaves out zeros, and neither
    // value can be zero here.
    out.push(0x08);
    push_varint(&mut out, or_noop(uid));
    out.push(0x10);
    push_varint(&mut out, or_noop(gid));
    Some(out)
}

fn push_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A PAX `mtime`/`atime`: decimal seconds, maybe negative, maybe with a
/// fraction (nanoseconds past the ninth digit are dropped).
fn pax_time(value: &[u8]) -> Option<Time> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: u32 = 0;
    let mut scale = 100_000_000;
    for digit in fraction.bytes().take(9) {
        nanos += u32::from(digit - b'0') * scale;
        scale /= 10;
    }
    if !negative {
        return Some(Time { secs, nanos });
    }
    // -1.25 s is 1.75 s before -0 s... that is, tv_sec -2 and 750 ms.
    if nanos == 0 {
        Some(Time {
            secs: -secs,
            nanos: 0,
        })
    } else {
        Some(Time {
            secs: (-secs).checked_sub(1)?,
            nanos: 1_000_000_000 - nanos,
        })
    }
}

fn bad_time(run: &Run, shown: &str, value: &[u8]) -> UnpackError {
    run.refused(shown, Refusal::BadTime(text::untrusted_bytes(value)))
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies the data of `entry` into `file`. Returns the bytes written, for
/// the caller to compare with the entry's size (a stream that ends early
/// just ends).
fn copy(entry: &mut impl Read, file: &mut std::fs::File, buffer: &mut [u8]) -> Result<u64, Copy> {
    let mut written = 0u64;
    loop {
        let n = match entry.read(buffer) {
            Ok(0) => return Ok(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        file.write_all(buffer.get(..n).unwrap_or_default())
            .map_err(Copy::Write)?;
        written += n as u64;
    }
}

#[cfg(test)]
mod tests;
