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

#[test]
fn a_symlink_to_outside_then_a_file_through_it_in_the_same_layer_writes_nothing_outside() {
    let scene_for_path = Scene::new();
    for target in [
        scene_for_path.outside_str(),
        "../outside".into(),
        "../../../../..".into(),
    ] {
        let tar = LayerTar::new()
            .symlink("evil", &target)
            .file("evil/pwned", b"written through a link")
            .bytes();
        for err in refused(&[tar]) {
            assert_eq!(symlink_at(&err), Some(("evil/pwned", "evil")), "{err}");
            let message = err.to_string();
            assert!(
                message.contains("sha256:layer0") && message.contains("evil/pwned"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_symlink_planted_by_a_lower_layer_never_redirects_a_write() {
    let paths = Scene::new();
    let lower = LayerTar::new()
        .dir("usr")
        .symlink("usr/lib", &paths.outside_str())
        .bytes();
    for upper in [
        LayerTar::new().file("usr/lib/pwned", b"x").bytes(),
        LayerTar::new().dir("usr/lib/sub/").bytes(),
        LayerTar::new()
            .file("usr/lib/sub/deeper", b"overwritten")
            .bytes(),
        LayerTar::new().fifo("usr/lib/fifo", 0o644).bytes(),
    ] {
        for err in refused(&[lower.clone(), upper]) {
            let (_, at) = symlink_at(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(at, "usr/lib");
            assert!(err.to_string().contains("sha256:layer1"), "{err}");
        }
    }
}

#[test]
fn dot_dot_names_are_refused() {
    for name in ["../escape", "a/../../escape", "a/../b", ".."] {
        let tar = LayerTar::new().file(name, b"x").bytes();
        for err in refused(&[tar]) {
            let (path, why) = refusal(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!((path, why), (name, &Refusal::Name(PathProblem::DotDot)));
        }
    }
}

#[test]
fn absolute_names_are_refused() {
    let scene = Scene::new();
    let secret = format!("{}/secret", scene.outside_str());
    for name in [secret.as_str(), "/etc/tako-test"] {
        let tar = LayerTar::new().file(name, b"x").bytes();
        for err in refused(&[tar]) {
            let (_, why) = refusal(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(why, &Refusal::Name(PathProblem::Absolute));
        }
    }
}

#[test]
fn empty_names_are_refused() {
    let tar = LayerTar::new().file("", b"x").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::Name(PathProblem::Empty)),
            "{err}"
        );
    }
}

#[test]
fn a_whiteout_through_a_symlink_removes_nothing_outside() {
    let paths = Scene::new();
    let lower = LayerTar::new()
        .symlink("evil", &paths.outside_str())
        .bytes();
    for upper in [
        LayerTar::new().whiteout("evil/.wh.secret").bytes(),
        LayerTar::new().whiteout("evil/.wh.sub").bytes(),
        LayerTar::new().whiteout("evil/.wh..wh..opq").bytes(),
        LayerTar::new().whiteout("evil/sub/.wh..wh..opq").bytes(),
    ] {
        for err in refused(&[lower.clone(), upper]) {
            let (_, at) = symlink_at(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(at, "evil");
        }
    }
}

#[test]
fn a_whiteout_of_a_symlink_removes_the_link_only() {
    for resolve in BOTH {
        let scene = Scene::new();
        let before = scene.snapshot();
        let lower = LayerTar::new()
            .symlink("evil", &scene.outside_str())
            .bytes();
        let upper = LayerTar::new().whiteout(".wh.evil").bytes();
        unpack_all(&scene, Owners::Image, resolve, &[lower, upper]).unwrap();
        assert!(!scene.exists("evil"));
        assert_eq!(scene.snapshot(), before);
    }
}

#[test]
fn invalid_whiteout_names_are_refused() {
    for name in [".wh.", "a/.wh..", ".wh...", "a/.wh."] {
        let tar = LayerTar::new().dir("a").whiteout(name).bytes();
        for err in refused(&[tar]) {
            assert_eq!(refusal(&err), Some((name, &Refusal::BadWhiteout)), "{err}");
        }
    }
    let tar = LayerTar::new().file(".wh.dir/file", b"").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::WhiteoutAsDirectory),
            "{err}"
        );
    }
}

#[test]
fn a_hard_link_to_outside_is_refused() {
    let scene = Scene::new();
    let absolute = format!("{}/secret", scene.outside_str());
    for (target, problem) in [
        ("../outside/secret", PathProblem::DotDot),
        ("a/../../outside/secret", PathProblem::DotDot),
        (absolute.as_str(), PathProblem::Absolute),
    ] {
        let tar = LayerTar::new().dir("a").hardlink("stolen", target).bytes();
        for err in refused(&[tar]) {
            match refusal(&err) {
                Some((path, Refusal::HardLinkTarget { problem: p, .. })) => {
                    assert_eq!((path, p), ("stolen", &problem));
                }
                _ => panic!("{target}: {err}"),
            }
        }
    }
    let tar = LayerTar::new().hardlink("stolen", "").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err),
            Some(("stolen", &Refusal::NoLinkTarget)),
            "{err}"
        );
    }
    // Through a symlink to outside, in this layer or a lower one.
    let lower = LayerTar::new()
        .symlink("evil", &scene.outside_str())
        .bytes();
    let upper = LayerTar::new().hardlink("stolen", "evil/secret").bytes();
    for err in refused(&[lower, upper]) {
        assert_eq!(symlink_at(&err), Some(("stolen", "evil")), "{err}");
    }
}

#[test]
fn a_hard_link_to_a_directory_or_to_nothing_is_refused() {
    let tar = LayerTar::new().dir("d").hardlink("x", "d").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(&err, UnpackError::Tree { source: TreeError::HardLinkToDirectory { path }, .. } if path == "d"),
            "{err}"
        );
    }
    let tar = LayerTar::new().hardlink("x", "./").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(
                &err,
                UnpackError::Tree {
                    source: TreeError::HardLinkToDirectory { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
    let tar = LayerTar::new().dir("d").hardlink("x", "d/missing").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(
                &err,
                UnpackError::Tree {
                    source: TreeError::Missing { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
    let tar = LayerTar::new().file("f", b"x").hardlink("f", "f").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::HardLinkToItself),
            "{err}"
        );
    }
}

#[test]
fn a_directory_entry_after_a_same_named_symlink_replaces_the_link_and_chmods_nothing_outside() {
    for resolve in BOTH {
        for across_layers in [false, true] {
            let scene = Scene::new();
            let before = scene.snapshot();
            let link = LayerTar::new().symlink("d", &scene.outside_str());
            let wide = Attrs {
                mode: 0o777,
                uid: 4321,
                gid: 4321,
                ..DEFAULT
            };
            let layers = if across_layers {
                vec![link.bytes(), LayerTar::new().dir_with("d", wide).bytes()]
            } else {
                vec![link.dir_with("d", wide).bytes()]
            };
            unpack_all(&scene, Owners::Image, resolve, &layers).unwrap();
            assert_eq!(scene.snapshot(), before, "{resolve:?}");
            let d = scene.at("d");
            assert_eq!((d.kind, d.mode, d.uid), ("dir", 0o777, 4321));
        }
    }
}

#[test]
fn a_gzip_bomb_stops_at_the_cap_with_an_error_naming_the_layer() {
    // 32 MiB of zeros in one file, about 32 KiB compressed.
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let header = gnu_header("bomb", EntryType::Regular, 0o644, 32 << 20);
    builder
        .append(&header, std::io::repeat(0).take(32 << 20))
        .unwrap();
    let blob = builder.into_inner().unwrap().finish().unwrap();
    assert!(blob.len() < 256 << 10);

    let scene = Scene::new();
    let before = scene.snapshot();
    let mut unpacker = Unpacker::new(
        Tree::open(&scene.tree_path).unwrap(),
        Options {
            owners: Owners::Image,
            limits: Limits {
                uncompressed_bytes: 4 << 20,
                ..Limits::default()
            },
        },
    );
    let gz = Layer {
        digest: "sha256:bomb",
        compression: Compression::Gzip,
        diff_id: None,
    };
    let err = unpacker.apply_layer(&gz, &blob[..]).unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooLarge { source, .. } if source.cap == 4 << 20),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("sha256:bomb") && message.contains("4194304"),
        "{message}"
    );
    assert_eq!(scene.snapshot(), before);
    assert!(
        std::fs::metadata(scene.tree_path.join("bomb"))
            .unwrap()
            .len()
            <= 4 << 20
    );
}

fn wide_layer(entries: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::with_capacity(entries * 1024));
    for d in 0..entries / 1000 {
        let header = gnu_header(&format!("d{d:03}/"), EntryType::Directory, 0o755, 0);
        builder.append(&header, std::io::empty()).unwrap();
        for f in 0..999 {
            let header = gnu_header(&format!("d{d:03}/f{f:03}"), EntryType::Regular, 0o644, 0);
            builder.append(&header, std::io::empty()).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn a_layer_of_100k_entries_is_applied_within_the_default_cap() {
    let tar = wide_layer(100_000);
    let scene = Scene::new();
    let started = Instant::now();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    let took = started.elapsed();
    assert_eq!(stats[0].entries, 100_000);
    assert_eq!((stats[0].files, stats[0].directories), (99_900, 100));
    assert_eq!(
        std::fs::read_dir(scene.tree_path.join("d042"))
            .unwrap()
            .count(),
        999
    );
    eprintln!("100k entries applied in {took:?}");
    assert!(took < Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_layer_with_more_entries_than_the_cap_is_refused_early() {
    let tar = wide_layer(100_000);
    let scene = Scene::new();
    let mut unpacker = Unpacker::new(
        Tree::open(&scene.tree_path).unwrap(),
        Options {
            owners: Owners::Image,
            limits: Limits {
                entries: 10_000,
                ..Limits::default()
            },
        },
    );
    let err = unpacker
        .apply_layer(&layer("sha256:wide"), &tar[..])
        .unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { max: 10_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("more than 10000 entries"), "{err}");
}

#[test]
fn headers_larger_than_their_budget_are_refused_before_they_fill_memory() {
    let huge = vec![b'a'; 2 << 20];
    let tar = LayerTar::new()
        .file("before", b"")
        .pax(&[("comment", &huge)])
        .file("after", b"")
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert!(
        matches!(&err, UnpackError::HeadersTooLarge { after, max, .. } if after == "before" && *max == 1 << 20),
        "{err}"
    );
}

#[test]
fn entries_hidden_after_the_end_of_archive_marker_are_refused() {
    let mut tar = LayerTar::new().file("seen", b"x").bytes();
    let mut hidden = LayerTar::new().file("hidden", b"y").bytes();
    tar.append(&mut hidden);
    let err = refused(&[tar]).remove(0);
    assert!(matches!(err, UnpackError::TrailingData { .. }), "{err}");
}

#[test]
fn a_truncated_layer_is_an_error_not_a_short_file() {
    let tar = LayerTar::new().file("f", &[1u8; 4096]).bytes();
    let cut = tar[..512 + 1000].to_vec();
    let err = refused(&[cut]).remove(0);
    assert!(
        err.to_string().contains("the layer ends inside this file"),
        "{err}"
    );
}

#[test]
fn a_layer_whose_diff_id_does_not_match_the_config_fails() {
    let tar = LayerTar::new().file("f", b"content").bytes();
    let scene = Scene::new();
    let mut unpacker = scene.unpacker(Owners::Image, Resolve::Openat2);
    let wrong = Layer {
        diff_id: Some([0xab; 32]),
        ..layer("sha256:liar")
    };
    let err = unpacker.apply_layer(&wrong, &tar[..]).unwrap_err();
    let expected_actual = hex::encode(Sha256::digest(&tar));
    assert!(
        matches!(&err, UnpackError::DiffIdMismatch { actual, .. } if *actual == expected_actual),
        "{err}"
    );
    assert!(err.to_string().contains(&"ab".repeat(32)), "{err}");

    let right = Layer {
        diff_id: Some(Sha256::digest(&tar).into()),
        ..layer("sha256:honest")
    };
    let stats = unpacker.apply_layer(&right, &tar[..]).unwrap();
    assert_eq!(stats.diff_id, <[u8; 32]>::from(Sha256::digest(&tar)));
    assert_eq!(stats.uncompressed_bytes, tar.len() as u64);
}

#[test]
fn unknown_entry_types_and_out_of_range_owners_are_refused() {
    let tar = LayerTar::new()
        .entry(EntryType::new(b'V'), b"volume", b"", DEFAULT, b"")
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::UnsupportedType('V')),
        "{err}"
    );

    let tar = LayerTar::new()
        .file_with(
            "f",
            b"",
            Attrs {
                uid: u64::from(u32::MAX),
                ..DEFAULT
            },
        )
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert!(
        matches!(refusal(&err), Some((_, Refusal::IdOutOfRange(_)))),
        "{err}"
    );
}

#[test]
fn the_root_can_only_be_described_as_a_directory() {
    let tar = LayerTar::new().file("./", b"").bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::RootNotDirectory),
        "{err}"
    );
}

#[test]
fn names_past_the_limits_are_refused() {
    let long = "d/".repeat(300) + "f";
    let tar = LayerTar::new().file(&long, b"").bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::TooDeep { max: 256 }),
        "{err}"
    );
}

// Layers as images have them.

#[test]
fn whiteouts_remove_lower_entries_only() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("a")
        .file("a/keep", b"kept")
        .file("a/gone", b"")
        .dir("a/gonedir")
        .file("a/gonedir/f", b"")
        .bytes();
    let upper = LayerTar::new()
        .whiteout("a/.wh.gone")
        .whiteout("a/.wh.gonedir")
        .file("a/new", b"made here")
        // Same layer: the whiteout may not remove what this layer made.
        .whiteout("a/.wh.new")
        .whiteout("a/.wh.never-was")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    let names: Vec<String> = scene.tree().into_keys().collect();
    assert_eq!(names, ["a", "a/keep", "a/new"]);
    assert_eq!(stats[1].whiteouts, 4);
}

#[test]
fn a_whiteout_after_this_layer_remade_a_directory_removes_only_the_lower_contents() {
    let lower = LayerTar::new().dir("a").file("a/x", b"").bytes();
    let whiteout_first = LayerTar::new()
        .whiteout(".wh.a")
        .dir("a")
        .file("a/y", b"")
        .bytes();
    let whiteout_last = LayerTar::new()
        .dir("a")
        .file("a/y", b"")
        .whiteout(".wh.a")
        .bytes();
    for upper in [whiteout_first, whiteout_last] {
        let scene = Scene::new();
        unpack_all(
            &scene,
            Owners::Image,
            Resolve::Openat2,
            &[lower.clone(), upper],
        )
        .unwrap();
        assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["a", "a/y"]);
    }
}

#[test]
fn an_opaque_directory_hides_the_lower_contents_wherever_its_marker_comes() {
    let lower = LayerTar::new()
        .dir("a")
        .file("a/old", b"")
        .dir("a/sub")
        .file("a/sub/x", b"")
        .file("outside-a", b"")
        .bytes();
    let marker_first = LayerTar::new()
        .dir("a")
        .whiteout("a/.wh..wh..opq")
        .file("a/new", b"")
        .dir("a/sub")
        .file("a/sub/y", b"")
        .bytes();
    let marker_last = LayerTar::new()
        .dir("a")
        .file("a/new", b"")
        .dir("a/sub")
        .file("a/sub/y", b"")
        .whiteout("a/.wh..wh..opq")
        .bytes();
    for upper in [marker_first, marker_last] {
        for resolve in BOTH {
            let scene = Scene::new();
            unpack_all(
                &scene,
                Owners::Image,
                resolve,
                &[lower.clone(), upper.clone()],
            )
            .unwrap();
            let names: Vec<String> = scene.tree().into_keys().collect();
            assert_eq!(names, ["a", "a/new", "a/sub", "a/sub/y", "outside-a"]);
        }
    }
}

#[test]
fn an_opaque_marker_at_the_root_empties_the_lower_tree() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("etc")
        .file("etc/old", b"")
        .file("top", b"")
        .bytes();
    let upper = LayerTar::new()
        .file("fresh", b"")
        .whiteout(".wh..wh..opq")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["fresh"]);
}

#[test]
fn hard_links_share_the_inode_of_an_entry_already_in_the_tree() {
    for resolve in BOTH {
        let scene = Scene::new();
        let lower = LayerTar::new()
            .dir("bin")
            .file_with(
                "bin/tool",
                b"#!/bin/sh\n",
                Attrs {
                    mode: 0o755,
                    ..DEFAULT
                },
            )
            .bytes();
        let upper = LayerTar::new()
            .hardlink("bin/tool2", "bin/tool")
            .dir("etc")
            .file("etc/conf", b"a=1")
            .hardlink("etc/conf.bak", "./etc/conf")
            .bytes();
        let stats = unpack_all(&scene, Owners::Image, resolve, &[lower, upper]).unwrap();
        assert_eq!(stats[1].hard_links, 2);
        let ino = |p: &str| std::fs::metadata(scene.tree_path.join(p)).unwrap().ino();
        assert_eq!(ino("bin/tool"), ino("bin/tool2"));
        assert_eq!(ino("etc/conf"), ino("etc/conf.bak"));
        assert_eq!(scene.at("bin/tool2").nlink, 2);
        assert_eq!(scene.at("bin/tool2").mode, 0o755);
    }
}

#[test]
fn symlinks_are_kept_as_data_absolute_or_relative() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../../../x")
        .symlink("dot", ".")
        .entry(
            EntryType::Symlink,
            b"owned",
            b"target",
            Attrs {
                uid: 1234,
                gid: 5678,
                mtime: 1_500_000_000,
                ..DEFAULT
            },
            b"",
        )
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(stats[0].symlinks, 4);
    assert_eq!(scene.at("abs").content, b"/etc/passwd");
    assert_eq!(scene.at("rel").content, b"../../../x");
    assert_eq!(scene.at("dot").content, b".");
    let owned = scene.at("owned");
    assert_eq!(
        (owned.kind, owned.uid, owned.gid, owned.mtime.0),
        ("symlink", 1234, 5678, 1_500_000_000)
    );
}

#[test]
fn fifos_are_created_and_device_nodes_skipped_and_counted() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("dev")
        .file("dev/console", b"a lower file")
        .bytes();
    let upper = LayerTar::new()
        .fifo("run/initctl", 0o600)
        .device(EntryType::Char, "dev/null")
        .device(EntryType::Block, "dev/sda")
        .device(EntryType::Char, "dev/console")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!((stats[1].fifos, stats[1].devices_skipped), (1, 3));
    let fifo = scene.at("run/initctl");
    assert_eq!((fifo.kind, fifo.mode), ("fifo", 0o600));
    assert!(!scene.exists("dev/null") && !scene.exists("dev/sda"));
    // The device replaced the lower file, as the layer says, even unmade.
    assert!(!scene.exists("dev/console"));
    // `run` was implied by the FIFO's name.
    assert_eq!(scene.at("run").mode, 0o755);
}

#[test]
fn as_root_owners_modes_times_and_setuid_are_the_images() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .dir("bin")
        .file_with(
            "bin/su",
            b"elf",
            Attrs {
                mode: 0o4755,
                ..DEFAULT
            },
        )
        .file_with(
            "bin/owned",
            b"elf",
            Attrs {
                mode: 0o2751,
                uid: 1234,
                gid: 5678,
                mtime: 1_234_567_890,
            },
        )
        .pax(&[("mtime", b"1600000000.25"), ("atime", b"1600000001")])
        .file("bin/precise", b"")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    // Before anything reads the file, which may move its atime.
    let atime = std::fs::metadata(scene.tree_path.join("bin/precise"))
        .unwrap()
        .atime();
    assert_eq!(atime, 1_600_000_001);
    let su = scene.at("bin/su");
    assert_eq!((su.mode, su.uid, su.gid), (0o4755, 0, 0));
    let owned = scene.at("bin/owned");
    assert_eq!((owned.mode, owned.uid, owned.gid), (0o2751, 1234, 5678));
    assert_eq!(owned.mtime, (1_234_567_890, 0));
    assert_eq!(scene.at("bin/precise").mtime, (1_600_000_000, 250_000_000));
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Whether the file system of the temporary directory takes user xattrs.
fn user_xattrs_work(scene: &Scene) -> bool {
    let probe = scene.tmp.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let ok =
        rustix::fs::setxattr(&probe, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    std::fs::remove_file(probe).unwrap();
    if !ok {
        eprintln!(
            "SKIPPED: the file system of {} refuses user xattrs",
            scene.tmp.path().display()
        );
    }
    ok
}

#[test]
fn allowed_xattrs_are_applied_and_others_refused() {
    let scene = Scene::new();
    if !user_xattrs_work(&scene) {
        return;
    }
    let tar = LayerTar::new()
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND_SERVICE),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:shadow_t:s0",
            ),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .file_with(
            "ping",
            b"elf",
            Attrs {
                mode: 0o755,
                uid: 1234,
                ..DEFAULT
            },
        )
        .pax(&[("SCHILY.xattr.user.dir", b"on a directory")])
        .dir("d")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    let ping = scene.tree_path.join("ping");
    assert_eq!(xattr(&ping, "user.comment").as_deref(), Some(&b"hello"[..]));
    // Set after the chown, which would have cleared it.
    assert_eq!(
        xattr(&ping, "security.capability").as_deref(),
        Some(&CAP_NET_BIND_SERVICE[..])
    );
    assert_ne!(
        xattr(&ping, "security.selinux").as_deref(),
        Some(&b"system_u:object_r:shadow_t:s0"[..])
    );
    assert_eq!(xattr(&ping, "trusted.overlay.opaque"), None);
    assert_eq!(stats[0].xattrs_refused, 2);
    assert_eq!(
        xattr(&scene.tree_path.join("d"), "user.dir").as_deref(),
        Some(&b"on a directory"[..])
    );
}

#[test]
fn not_as_root_files_are_the_callers_without_setuid_and_the_owners_are_recorded() {
    let scene = Scene::new();
    if !user_xattrs_work(&scene) {
        return;
    }
    let me = rustix::process::geteuid().as_raw();
    let tar = LayerTar::new()
        .dir_with(
            "home",
            Attrs {
                mode: 0o2755,
                uid: 1234,
                gid: 5678,
                ..DEFAULT
            },
        )
        .file_with(
            "home/both",
            b"x",
            Attrs {
                mode: 0o4755,
                uid: 1234,
                gid: 5678,
                ..DEFAULT
            },
        )
        .file_with(
            "home/uid-only",
            b"x",
            Attrs {
                mode: 0o444,
                uid: 1234,
                gid: 0,
                ..DEFAULT
            },
        )
        .file_with(
            "home/root",
            b"x",
            Attrs {
                mode: 0o644,
                ..DEFAULT
            },
        )
        // A record in the layer is not trusted: it is replaced.
        .pax(&[("SCHILY.xattr.user.rootlesscontainers", b"\x08\x01\x10\x01")])
        .file_with(
            "home/forged",
            b"x",
            Attrs {
                mode: 0o644,
                ..DEFAULT
            },
        )
        .bytes();
    unpack_all(&scene, Owners::Caller, Resolve::Openat2, &[tar]).unwrap();
    let path = |p: &str| scene.tree_path.join(p);

    let both = scene.at("home/both");
    assert_eq!((both.uid, both.mode), (me, 0o755));
    assert_eq!(
        xattr(&path("home/both"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c][..])
    );
    // Root as group is "unchanged", u32::MAX, as umoci writes it.
    assert_eq!(
        xattr(&path("home/uid-only"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f][..])
    );
    assert_eq!(scene.at("home/uid-only").mode, 0o444);
    assert_eq!(xattr(&path("home/root"), "user.rootlesscontainers"), None);
    assert_eq!(xattr(&path("home/forged"), "user.rootlesscontainers"), None);
    let home = scene.at("home");
    assert_eq!((home.uid, home.mode), (me, 0o755));
    assert_eq!(
        xattr(&path("home"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c][..])
    );
}

#[test]
fn directory_modes_wait_until_the_end_so_a_read_only_directory_blocks_nothing() {
    for owners in [Owners::Image, Owners::Caller] {
        let scene = Scene::new();
        let lower = LayerTar::new()
            .dir_with(
                "ro",
                Attrs {
                    mode: 0o555,
                    mtime: 1_000_000_000,
                    ..DEFAULT
                },
            )
            .file_with(
                "ro/a",
                b"lower",
                Attrs {
                    mode: 0o444,
                    ..DEFAULT
                },
            )
            .bytes();
        let upper = LayerTar::new()
            .file_with(
                "ro/a",
                b"upper",
                Attrs {
                    mode: 0o444,
                    ..DEFAULT
                },
            )
            .file("ro/b", b"new")
            .bytes();
        let mut unpacker = scene.unpacker(owners, Resolve::Openat2);
        unpacker
            .apply_layer(&layer("sha256:l0"), &lower[..])
            .unwrap();
        assert_eq!(scene.at("ro").mode, 0o700);
        assert_eq!(look(&scene.tree_path).mode, 0o700);
        unpacker
            .apply_layer(&layer("sha256:l1"), &upper[..])
            .unwrap();
        let finished = unpacker.finish().unwrap();
        assert_eq!(finished.directories, 2);
        let ro = scene.at("ro");
        assert_eq!((ro.mode, ro.mtime), (0o555, (1_000_000_000, 0)));
        assert_eq!(scene.at("ro/a").content, b"upper");
        assert_eq!(scene.at("ro/b").content, b"new");
        // The root had no entry: the usual 0755.
        assert_eq!(look(&scene.tree_path).mode, 0o755);
    }
}

#[test]
fn a_directory_over_a_directory_keeps_its_contents_and_takes_the_new_metadata() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir_with(
            "d",
            Attrs {
                mode: 0o700,
                ..DEFAULT
            },
        )
        .file("d/f", b"kept")
        .bytes();
    let upper = LayerTar::new()
        .dir_with(
            "d",
            Attrs {
                mode: 0o751,
                uid: 7,
                gid: 8,
                ..DEFAULT
            },
        )
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    let d = scene.at("d");
    assert_eq!((d.mode, d.uid, d.gid), (0o751, 7, 8));
    assert_eq!(scene.at("d/f").content, b"kept");
}

#[test]
fn an_entry_replaces_an_entry_of_another_kind_and_never_writes_into_it() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("x")
        .file("x/y", b"")
        .file("z", b"old file")
        .file("same", b"old")
        .hardlink("same-link", "same")
        .bytes();
    let upper = LayerTar::new()
        .file("x", b"now a file")
        .dir("z")
        .file("z/w", b"")
        .file("same", b"new")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!(scene.at("x").content, b"now a file");
    assert_eq!(scene.at("z").kind, "dir");
    assert!(scene.exists("z/w"));
    // A new inode: the other name of the old one still has the old content.
    assert_eq!(scene.at("same").content, b"new");
    assert_eq!(scene.at("same-link").content, b"old");
    assert_eq!(scene.at("same").nlink, 1);
}

#[test]
fn missing_parents_are_made_and_the_root_takes_its_entrys_mode() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .dir_with(
            "./",
            Attrs {
                mode: 0o750,
                ..DEFAULT
            },
        )
        .file("a/b/c", b"deep")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Walk, &[tar]).unwrap();
    assert_eq!(scene.at("a").mode, 0o755);
    assert_eq!(scene.at("a/b").mode, 0o755);
    assert_eq!(look(&scene.tree_path).mode, 0o750);
}

#[test]
fn long_names_and_large_files_come_through_whole() {
    let scene = Scene::new();
    let long_dir = "directory-with-a-long-name/".repeat(6);
    let long_name = format!("{long_dir}file");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let tar = LayerTar::new()
        .file(&long_name, b"long")
        .symlink("link-to-long", &long_name)
        .file("big", &big)
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(scene.at(&long_name).content, b"long");
    assert_eq!(scene.at("link-to-long").content, long_name.as_bytes());
    assert_eq!(scene.at("big").content, big);
    assert_eq!(stats[0].file_bytes, 4 + big.len() as u64);
}

#[test]
fn gzip_zstd_and_plain_layers_give_the_same_tree_and_diff_id() {
    let tar = LayerTar::new()
        .dir("etc")
        .file("etc/hostname", b"tako\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();

    let mut trees = Vec::new();
    for (compression, blob) in [
        (Compression::None, &tar),
        (Compression::Gzip, &gz),
        (Compression::Zstd, &zst),
    ] {
        let scene = Scene::new();
        let mut unpacker = scene.unpacker(Owners::Image, Resolve::Openat2);
        let digest = "sha256:same";
        let stats = unpacker
            .apply_layer(
                &Layer {
                    digest,
                    compression,
                    diff_id: Some(Sha256::digest(&tar).into()),
                },
                &blob[..],
            )
            .unwrap();
        unpacker.finish().unwrap();
        assert_eq!(stats.uncompressed_bytes, tar.len() as u64);
        trees.push(scene.tree());
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert_eq!(trees[0].len(), 3);
}

#[test]
fn a_global_pax_header_and_aufs_bookkeeping_are_skipped() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .entry(
            EntryType::XGlobalHeader,
            b"pax_global_header",
            b"",
            DEFAULT,
            b"20 comment=ignored\n",
        )
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/123.456", b"")
        .file("real", b"")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(stats[0].other_skipped, 3);
    assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["real"]);
}

// Pieces.

#[test]
fn the_rootless_record_is_the_protobuf_umoci_writes() {
    assert_eq!(rootless_record(0, 0), None);
    assert_eq!(
        rootless_record(1234, 5678).unwrap(),
        [0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c]
    );
    assert_eq!(
        rootless_record(0, 1).unwrap(),
        [0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0x01]
    );
    assert_eq!(
        rootless_record(127, 128).unwrap(),
        [0x08, 0x7f, 0x10, 0x80, 0x01]
    );
}

#[test]
fn pax_times_are_read_with_their_fraction_and_sign() {
    assert_eq!(
        pax_time(b"1600000000"),
        Some(Time {
            secs: 1_600_000_000,
            nanos: 0
        })
    );
    assert_eq!(
        pax_time(b"1.5"),
        Some(Time {
            secs: 1,
            nanos: 500_000_000
        })
    );
    assert_eq!(
        pax_time(b"1.1234567899"),
        Some(Time {
            secs: 1,
            nanos: 123_456_789
        })
    );
    assert_eq!(
        pax_time(b"-1.25"),
        Some(Time {
            secs: -2,
            nanos: 750_000_000
        })
    );
    assert_eq!(pax_time(b"-3"), Some(Time { secs: -3, nanos: 0 }));
    for bad in [
        &b""[..],
        b".5",
        b"1e3",
        b"--1",
        b"1.5.5",
        b"99999999999999999999",
    ] {
        assert_eq!(pax_time(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn only_user_and_capability_xattrs_are_allowed() {
    for (name, image, caller) in [
        ("user.comment", true, true),
        ("security.capability", true, true),
        ("security.selinux", false, false),
        ("trusted.overlay.opaque", false, false),
        ("system.posix_acl_access", false, false),
        ("user.", false, false),
        ("user.rootlesscontainers", true, false),
    ] {
        assert_eq!(
            xattr_allowed(name.as_bytes(), Owners::Image),
            image,
            "{name}"
        );
        assert_eq!(
            xattr_allowed(name.as_bytes(), Owners::Caller),
            caller,
            "{name}"
        );
    }
}
