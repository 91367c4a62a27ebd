//! A root filesystem tree described entry by entry, as a user compares two of them: type,
//! mode (setuid and sticky bits included), owner, size and SHA-256 of the content, link
//! target and extended attributes, and which names share an inode. Symlinks are recorded,
//! never followed; FIFOs and device nodes are never opened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    /// With the device number.
    CharDevice(u64),
    BlockDevice(u64),
}

/// One entry of a tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// The permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size and `sha256:…` of a regular file's content.
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub target: Option<PathBuf>,
    /// Extended attributes by name, with their values.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:04o} {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        if let (Some(size), Some(sha)) = (self.size, &self.sha256) {
            write!(f, " {size} bytes {}", &sha[..sha.len().min(19)])?;
        }
        if let Some(target) = &self.target {
            write!(f, " -> {}", target.display())?;
        }
        for (name, value) in &self.xattrs {
            write!(f, " {name}={}", escape(value))?;
        }
        Ok(())
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// A tree: every entry by its path relative to the root (the root itself is ""), and the
/// groups of paths that are hard links to one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<PathBuf, Node>,
    pub hardlinks: BTreeSet<BTreeSet<PathBuf>>,
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(Path::new(path))
    }

    /// The entry at `path`, failing the test if there is none.
    #[track_caller]
    pub fn node(&self, path: &str) -> &Node {
        self.get(path)
            .unwrap_or_else(|| panic!("{path} is missing from the tree: {:#?}", self.nodes))
    }

    /// The tree without the entries `drop` says to leave out.
    pub fn without(&self, drop: impl Fn(&Path, &Node) -> bool) -> Tree {
        let nodes: BTreeMap<PathBuf, Node> = self
            .nodes
            .iter()
            .filter(|(p, n)| !drop(p, n))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        let hardlinks = self
            .hardlinks
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|p| nodes.contains_key(*p))
                    .cloned()
                    .collect()
            })
            .filter(|g: &BTreeSet<PathBuf>| g.len() > 1)
            .collect();
        Tree { nodes, hardlinks }
    }
}

/// Reads the whole tree under `root`.
pub fn read(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), BTreeSet<PathBuf>> = HashMap::new();
    walk(root, Path::new(""), &mut nodes, &mut inodes);
    let hardlinks = inodes.into_values().filter(|g| g.len() > 1).collect();
    Tree { nodes, hardlinks }
}

fn walk(
    root: &Path,
    rel: &Path,
    nodes: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut HashMap<(u64, u64), BTreeSet<PathBuf>>,
) {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    let node = describe(&path, &meta);
    if node.kind != Kind::Dir {
        inodes
            .entry((meta.dev(), meta.ino()))
            .or_default()
            .insert(rel.to_path_buf());
    }
    let is_dir = node.kind == Kind::Dir;
    nodes.insert(rel.to_path_buf(), node);
    if is_dir {
        let children =
            fs::read_dir(&path).unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()));
        for child in children {
            let child = child.expect("a directory entry");
            walk(root, &rel.join(child.file_name()), nodes, inodes);
        }
    }
}

/// One entry, described without following it if it is a symlink.
pub fn describe(path: &Path, meta: &fs::Metadata) -> Node {
    let t = meta.file_type();
    let kind = if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_socket() {
        Kind::Socket
    } else if t.is_char_device() {
        Kind::CharDevice(meta.rdev())
    } else {
        Kind::BlockDevice(meta.rdev())
    };
    let content = (kind == Kind::File)
        .then(|| fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())));
    Node {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: content.as_ref().map(|c| c.len() as u64),
        sha256: content.map(|c| format!("sha256:{}", hex::encode(Sha256::digest(&c)))),
        target: (kind == Kind::Symlink).then(|| fs::read_link(path).expect("a link target")),
        xattrs: xattrs(path),
        kind,
    }
}

/// The extended attributes of `path` itself (a symlink's own, not its target's).
pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 64 * 1024];
    let len = rustix::fs::llistxattr(path, &mut names[..])
        .unwrap_or_else(|e| panic!("cannot list the xattrs of {}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 64 * 1024];
        let n = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..])
            .unwrap_or_else(|e| panic!("cannot read {name} of {}: {e}", path.display()));
        value.truncate(n);
        out.insert(name, value);
    }
    out
}

/// What differs between two trees, one line per difference.
pub fn differences(left: &Tree, right: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&PathBuf> = left.nodes.keys().chain(right.nodes.keys()).collect();
    for path in paths {
        match (left.nodes.get(path), right.nodes.get(path)) {
            (Some(l), Some(r)) if l != r => {
                out.push(format!("/{}: {l:?}\n   versus {r:?}", path.display()));
            }
            (Some(l), None) => out.push(format!("/{} only on the left: {l:?}", path.display())),
            (None, Some(r)) => out.push(format!("/{} only on the right: {r:?}", path.display())),
            _ => {}
        }
    }
    for group in left.hardlinks.symmetric_difference(&right.hardlinks) {
        let side = if left.hardlinks.contains(group) {
            "left"
        } else {
            "right"
        };
        out.push(format!("hard links only on the {side}: {group:?}"));
    }
    out
}

/// Fails the test, listing every difference, unless the trees are the same.
#[track_caller]
pub fn assert_same(left_name: &str, left: &Tree, right_name: &str, right: &Tree) {
    let diff = differences(left, right);
    assert!(
        diff.is_empty(),
        "{} differences between {left_name} (left) and {right_name} (right):\n{}",
        diff.len(),
        diff.join("\n")
    );
}

/// Every entry under `root` with its mtime and inode too: what shows that nothing was
/// changed at all, not even replaced by an equal copy.
pub fn stamp(root: &Path) -> BTreeMap<PathBuf, (Node, i64, i64, u64)> {
    let tree = read(root);
    tree.nodes
        .into_iter()
        .map(|(rel, node)| {
            let meta = fs::symlink_metadata(root.join(&rel)).expect("stat again");
            (rel, (node, meta.mtime(), meta.mtime_nsec(), meta.ino()))
        })
        .collect()
}
