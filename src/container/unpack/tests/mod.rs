//! Tests of the layer engine: layers built in memory, applied to a tree beside a sentinel.
//!
//! Every hostile layer is applied to a tree in a temporary directory that
//! also holds `outside/`, a directory nothing may touch; each test checks that
//! it is byte for byte, mode for mode, as before, and that nothing appeared
//! beside the tree. Cases that resolve paths run with both resolvers.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tar::EntryType;

use super::*;
use crate::fs::tree::Resolve;

mod layers;
mod limits;
mod metadata;
mod refusals;

const BOTH: [Resolve; 2] = [Resolve::Openat2, Resolve::Walk];

/// A valid `security.capability` value: revision 2, effective, permitting
/// CAP_NET_BIND_SERVICE (bit 10).
const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A GNU header with every numeric field filled, as real writers leave them.
fn gnu_header(path: &str, kind: EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_size(size);
    header.set_cksum();
    header
}

/// One layer, built entry by entry with raw names (the tar crate's own
/// setters refuse the hostile ones).
struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

#[derive(Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

const DEFAULT: Attrs = Attrs {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_600_000_000,
};

impl LayerTar {
    fn new() -> LayerTar {
        LayerTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn entry(
        mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        attrs: Attrs,
        data: &[u8],
    ) -> LayerTar {
        let mut records: Vec<(&str, &[u8])> = Vec::new();
        if name.len() > 100 {
            records.push(("path", name));
        }
        if link.len() > 100 {
            records.push(("linkpath", link));
        }
        if !records.is_empty() {
            self.builder.append_pax_extensions(records).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name[..n]);
        let n = link.len().min(100);
        old.linkname[..n].copy_from_slice(&link[..n]);
        header.set_entry_type(kind);
        header.set_mode(attrs.mode);
        header.set_uid(attrs.uid);
        header.set_gid(attrs.gid);
        header.set_mtime(attrs.mtime);
        header.set_size(data.len() as u64);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> LayerTar {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn dir(self, name: &str) -> LayerTar {
        self.dir_with(
            name,
            Attrs {
                mode: 0o755,
                ..DEFAULT
            },
        )
    }

    fn dir_with(self, name: &str, attrs: Attrs) -> LayerTar {
        self.entry(EntryType::Directory, name.as_bytes(), b"", attrs, b"")
    }

    fn file(self, name: &str, data: &[u8]) -> LayerTar {
        self.entry(EntryType::Regular, name.as_bytes(), b"", DEFAULT, data)
    }

    fn file_with(self, name: &str, data: &[u8], attrs: Attrs) -> LayerTar {
        self.entry(EntryType::Regular, name.as_bytes(), b"", attrs, data)
    }

    fn symlink(self, name: &str, target: &str) -> LayerTar {
        let attrs = Attrs {
            mode: 0o777,
            ..DEFAULT
        };
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            attrs,
            b"",
        )
    }

    fn hardlink(self, name: &str, target: &str) -> LayerTar {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            DEFAULT,
            b"",
        )
    }

    fn fifo(self, name: &str, mode: u32) -> LayerTar {
        self.entry(
            EntryType::Fifo,
            name.as_bytes(),
            b"",
            Attrs { mode, ..DEFAULT },
            b"",
        )
    }

    fn device(self, kind: EntryType, name: &str) -> LayerTar {
        self.entry(
            kind,
            name.as_bytes(),
            b"",
            Attrs {
                mode: 0o666,
                ..DEFAULT
            },
            b"",
        )
    }

    fn whiteout(self, name: &str) -> LayerTar {
        self.file(name, b"")
    }

    fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A tree being built, beside `outside/`, which nothing may touch.
struct Scene {
    tmp: tempfile::TempDir,
    tree_path: PathBuf,
    outside: PathBuf,
}

/// What a user would compare of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    mtime: (i64, i64),
    content: Vec<u8>,
}

fn look(path: &Path) -> Seen {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let t = meta.file_type();
    let (kind, content) = if t.is_symlink() {
        (
            "symlink",
            std::fs::read_link(path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes(),
        )
    } else if t.is_dir() {
        ("dir", Vec::new())
    } else if t.is_file() {
        ("file", std::fs::read(path).unwrap())
    } else if t.is_fifo() {
        ("fifo", Vec::new())
    } else {
        ("other", Vec::new())
    };
    Seen {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        nlink: meta.nlink(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        content,
    }
}

/// Every entry under `root`, by relative path.
fn listing(root: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let seen = look(&path);
            if seen.kind == "dir" {
                stack.push(path);
            }
            out.insert(name, seen);
        }
    }
    out
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let tree_path = tmp.path().join("tree");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&tree_path).unwrap();
        std::fs::set_permissions(&tree_path, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"the host's own file").unwrap();
        std::fs::create_dir(outside.join("sub")).unwrap();
        std::fs::write(outside.join("sub/deeper"), b"also the host's").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o750)).unwrap();
        Scene {
            tmp,
            tree_path,
            outside,
        }
    }

    fn outside_str(&self) -> String {
        self.outside.to_str().unwrap().to_string()
    }

    /// The sentinel, and the names beside the tree.
    fn snapshot(&self) -> (Seen, BTreeMap<String, Seen>, Vec<String>) {
        let mut beside: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        beside.sort();
        (look(&self.outside), listing(&self.outside), beside)
    }

    fn unpacker(&self, owners: Owners, resolve: Resolve) -> Unpacker {
        let tree = Tree::open_with(&self.tree_path, resolve).unwrap();
        Unpacker::new(
            tree,
            Options {
                owners,
                limits: Limits::default(),
            },
        )
    }

    fn tree(&self) -> BTreeMap<String, Seen> {
        listing(&self.tree_path)
    }

    fn at(&self, path: &str) -> Seen {
        look(&self.tree_path.join(path))
    }

    fn exists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.tree_path.join(path)).is_ok()
    }
}

fn layer(digest: &str) -> Layer<'_> {
    Layer {
        digest,
        compression: Compression::None,
        diff_id: None,
    }
}

/// Applies `layers` in order as root would, then finishes.
fn unpack_all(
    scene: &Scene,
    owners: Owners,
    resolve: Resolve,
    layers: &[Vec<u8>],
) -> Result<Vec<LayerStats>, UnpackError> {
    let mut unpacker = scene.unpacker(owners, resolve);
    let mut stats = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let digest = format!("sha256:layer{i}");
        stats.push(unpacker.apply_layer(&layer(&digest), &tar[..])?);
    }
    unpacker.finish()?;
    Ok(stats)
}

/// Applies `layers` to a fresh scene with each resolver, expects the last to
/// fail, and checks nothing outside the tree changed. Returns the errors.
fn refused(layers: &[Vec<u8>]) -> Vec<UnpackError> {
    BOTH.iter()
        .map(|&resolve| {
            let scene = Scene::new();
            let before = scene.snapshot();
            let err = unpack_all(&scene, Owners::Image, resolve, layers).unwrap_err();
            assert_eq!(
                scene.snapshot(),
                before,
                "{resolve:?}: something outside the tree changed"
            );
            err
        })
        .collect()
}

fn symlink_at(err: &UnpackError) -> Option<(&str, &str)> {
    match err {
        UnpackError::Tree {
            path,
            source: TreeError::Symlink { at },
            ..
        } => Some((path, at)),
        _ => None,
    }
}

fn refusal(err: &UnpackError) -> Option<(&str, &Refusal)> {
    match err {
        UnpackError::Refused { path, refusal, .. } => Some((path, refusal)),
        _ => None,
    }
}

// Hostile layers.
