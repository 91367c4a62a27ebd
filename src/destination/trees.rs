//! The trees of a `Kind=container` config (`DEST/store/<hex>/`) and their blobs
//! (`DEST/blobs/sha256/`): what `tako gc` and `Keep=` remove of them.
//!
//! Trees are ranked and kept exactly as the files of a `Kind=file` store are
//! (`retention::plan`): the `keep` newest plus whatever `latest` points at. Those that go
//! are removed through directory handles (`fs::tree`): a symlink planted as `store/<hex>`
//! is removed as a link, never followed, and a file system mounted inside a tree stops
//! the removal. Then the blobs no kept tree uses go: a kept tree uses its signed manifest
//! or index, and below an index every manifest of it that is in `blobs/sha256/` (only the
//! platform chosen was downloaded), and their configs and layers. The blobs of a version
//! newer than the installed one but not built yet (a fetch that was killed) are kept too,
//! so that the next run resumes instead of downloading them again.

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::format::manifest::{Entry, Manifest};
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{self as oci_manifest, MAX_MANIFEST_SIZE, ParsedManifest};
use crate::format::retention::{self, Removal, StoreFile};
use crate::fs::tree::{self, RelPath, Tree};
use crate::fs::{Dir, IoError, ListedKind};

use super::Destination;
use super::blob_cache::{BLOBS, SHA256};

/// The signed bytes in a tree's directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Why a container store could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot remove {}: {source}", path.display())]
    Tree {
        path: std::path::PathBuf,
        #[source]
        source: tree::TreeError,
    },
}

/// tako's own entries in the `store/` of a `Kind=container` config, sorted by name: trees
/// (`<hex>`, sized by the files in them) and their temporaries, and whatever else was
/// planted under such a name (a symlink is listed as the link). Other names, special
/// files and names that are not UTF-8 are left out: tako never writes them.
pub fn list(store: &Dir) -> Result<Vec<StoreFile>, IoError> {
    let mut files = Vec::new();
    // Only for sizes, which are only reported: a store that cannot be opened so counts 0.
    let tree = Tree::open(store.path()).ok();
    for entry in store.entries()? {
        let Ok(name) = entry.name.into_string() else {
            continue;
        };
        if !retention::is_tree_name(&name) {
            continue;
        }
        let size = match entry.kind {
            ListedKind::File | ListedKind::Symlink => entry.size,
            ListedKind::Directory => {
                let rel = RelPath::parse(name.as_bytes()).ok();
                match (&tree, rel) {
                    (Some(tree), Some(rel)) => match tree.open_dir(&rel) {
                        Ok(Some(fd)) => usage(&fd, 0),
                        _ => 0,
                    },
                    _ => 0,
                }
            }
            ListedKind::Other => continue,
        };
        files.push(StoreFile { name, size });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// The sum of the sizes of the regular files under the directory `fd`, found through
/// directory handles (never through a symlink), not past another file system nor deeper
/// than a removal goes: what removing it frees, as far as can be told. Only reported, so
/// what cannot be read counts as nothing.
fn usage(fd: &OwnedFd, depth: usize) -> u64 {
    if depth > tree::MAX_DEPTH {
        return 0;
    }
    let Ok(device) = rustix::fs::fstat(fd).map(|s| s.st_dev) else {
        return 0;
    };
    let Ok(entries) = rustix::fs::Dir::read_from(fd) else {
        return 0;
    };
    let mut total: u64 = 0;
    for entry in entries {
        let Ok(entry) = entry else {
            break;
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let Ok(stat) = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let size = match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => u64::try_from(stat.st_size).unwrap_or(0),
            FileType::Directory if stat.st_dev == device => {
                match rustix::fs::openat(fd, name, DIR_FLAGS, Mode::empty()) {
                    Ok(child) => usage(&child, depth + 1),
                    Err(_) => 0,
                }
            }
            _ => 0,
        };
        total = total.saturating_add(size);
    }
    total
}

/// Removes from the destination's store the trees [`retention::plan`] says, then the blobs
/// no kept tree uses, given its verified `manifest`, calling `on_removal` after each
/// removal (with `dry_run`, nothing is removed). The caller holds the destination lock.
pub fn collect(
    dest: &Destination,
    manifest: &Manifest,
    keep: usize,
    dry_run: bool,
    on_removal: &mut dyn FnMut(&Removal),
) -> Result<(), CollectError> {
    // A `store` that is a symlink is refused here, not followed.
    let Some(store) = dest.store()? else {
        return Ok(());
    };
    let trees = list(&store)?;
    let latest = dest.latest_name();
    let plan = retention::plan_oldest_first(manifest.entries(), &trees, latest.as_deref(), keep);
    let going: HashSet<&str> = plan.iter().map(|r| r.name.as_str()).collect();
    let kept: Vec<&str> = trees
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| name.len() == 64 && !going.contains(name))
        .chain(latest.as_deref())
        .collect();
    let blobs = match dest.dir().subdir(BLOBS)? {
        Some(dir) => dir.subdir(SHA256)?,
        None => None,
    };
    let used = match &blobs {
        Some(blobs) => used_blobs(&store, blobs, manifest, &kept, latest.as_deref(), &trees),
        None => HashSet::new(),
    };

    let store_tree = (!dry_run && !plan.is_empty())
        .then(|| Tree::open(store.path()))
        .transpose()
        .map_err(|source| CollectError::Tree {
            path: store.path().to_path_buf(),
            source,
        })?;
    for removal in &plan {
        if let Some(store_tree) = &store_tree {
            remove(store_tree, &store, &removal.name)?;
        }
        on_removal(removal);
    }
    if store_tree.is_some() {
        store.sync()?;
    }

    let Some(blobs) = blobs else {
        return Ok(());
    };
    let listed: Vec<StoreFile> = blobs
        .entries()?
        .into_iter()
        .filter(|e| matches!(e.kind, ListedKind::File | ListedKind::Symlink))
        .filter_map(|e| {
            Some(StoreFile {
                name: e.name.into_string().ok()?,
                size: e.size,
            })
        })
        .collect();
    let mut unused = retention::plan_blobs(&listed, &used);
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    for removal in &unused {
        if !dry_run {
            blobs.remove_file(&removal.name)?;
        }
        on_removal(removal);
    }
    if !dry_run && !unused.is_empty() {
        blobs.sync()?;
    }
    Ok(())
}

/// Removes `store/<name>` whatever it is, through directory handles.
fn remove(store_tree: &Tree, store: &Dir, name: &str) -> Result<(), CollectError> {
    let path = store.path().join(name);
    let tree_error = |source| CollectError::Tree {
        path: path.clone(),
        source,
    };
    let rel = RelPath::parse(name.as_bytes())
        .map_err(|e| IoError::new("remove", &path, std::io::Error::other(format!("{e:?}"))))?;
    if let Some(slot) = store_tree.slot(&rel).map_err(tree_error)? {
        slot.remove().map_err(tree_error)?;
    }
    Ok(())
}

/// The hex digests of every blob the `kept` trees use, and those of versions newer than
/// `latest` whose trees are not built yet (see the module documentation).
fn used_blobs(
    store: &Dir,
    blobs: &Dir,
    manifest: &Manifest,
    kept: &[&str],
    latest: Option<&str>,
    trees: &[StoreFile],
) -> HashSet<String> {
    let mut used = HashSet::new();
    for hex in kept {
        // The tree's own copy of the signed bytes, else the one in `blobs/sha256/`.
        let own = store
            .subdir(hex)
            .ok()
            .flatten()
            .and_then(|dir| read_verified(&dir, MANIFEST_FILE, hex, MAX_MANIFEST_SIZE));
        mark(blobs, hex, own, MAX_MANIFEST_SIZE, &mut used);
    }
    let built: HashSet<&str> = trees.iter().map(|t| t.name.as_str()).collect();
    let installed = latest.and_then(|hex| {
        manifest
            .entries()
            .iter()
            .filter(|e| e.digest_hex() == hex)
            .map(|e| &e.version)
            .max()
    });
    let pending = manifest.entries().iter().filter(|e: &&Entry| {
        installed.is_none_or(|v| e.version > *v) && !built.contains(e.digest_hex().as_str())
    });
    for entry in pending {
        mark(blobs, &entry.digest_hex(), None, entry.size, &mut used);
    }
    used
}

/// Marks `hex` used, and, if it is a manifest or index whose bytes are `bytes` or in
/// `blobs` (at most `max` of them, matching the digest), everything it pins that is there.
/// Each manifest is read once, so nesting and repetition cost nothing more.
fn mark(blobs: &Dir, hex: &str, bytes: Option<Vec<u8>>, max: u64, used: &mut HashSet<String>) {
    if !used.insert(hex.to_owned()) {
        return;
    }
    let max = max.min(MAX_MANIFEST_SIZE);
    let Some(bytes) = bytes.or_else(|| read_verified(blobs, hex, hex, max)) else {
        return;
    };
    match oci_manifest::parse(&bytes, None) {
        Ok(ParsedManifest::Index { index, .. }) => {
            for entry in &index.manifests {
                mark(blobs, &entry.digest.hex(), None, entry.size, used);
            }
        }
        Ok(ParsedManifest::Image { manifest, .. }) => {
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                used.insert(blob.digest.hex());
            }
        }
        Err(_) => {}
    }
}

/// The file `name` in `dir` if it is a regular file of at most `max` bytes whose SHA-256
/// is `hex`.
fn read_verified(dir: &Dir, name: &str, hex: &str, max: u64) -> Option<Vec<u8>> {
    let bytes = dir.read_file(name, max, "read").ok()??;
    (Digest::of(&bytes).hex() == hex).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::retention::Reason;
    use crate::format::version::Version;
    use std::fs;
    use std::path::Path;

    fn descriptor(media_type: &str, bytes: &[u8]) -> String {
        format!(
            r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
            Digest::of(bytes),
            bytes.len()
        )
    }

    fn image(config: &[u8], layer: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
            descriptor("application/vnd.oci.image.config.v1+json", config),
            descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer),
        )
        .into_bytes()
    }

    fn index(manifests: &[&[u8]]) -> Vec<u8> {
        let listed: Vec<String> = manifests
            .iter()
            .map(|m| descriptor("application/vnd.oci.image.manifest.v1+json", m))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            listed.join(",")
        )
        .into_bytes()
    }

    fn put_blob(dest: &Path, bytes: &[u8]) -> String {
        let hex = Digest::of(bytes).hex();
        fs::write(dest.join("blobs/sha256").join(&hex), bytes).unwrap();
        hex
    }

    fn entry(version: &str, signed: &[u8]) -> Entry {
        Entry {
            version: Version::parse(version).unwrap(),
            size: signed.len() as u64,
            digest: *Digest::of(signed).as_bytes(),
        }
    }

    #[test]
    fn blobs_of_a_newer_version_a_killed_fetch_downloaded_are_kept_for_the_next_run() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path();
        fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
        // 1.0 is installed: an index whose host manifest was downloaded, the other not.
        let (config1, layer1) = (b"config one".to_vec(), b"layer one".to_vec());
        let host1 = image(&config1, &layer1);
        let foreign1 = image(b"foreign config", b"foreign layer");
        let top1 = index(&[&host1, &foreign1]);
        // 2.0 was being fetched when the run was killed: everything but its tree.
        let (config2, layer2) = (b"config two".to_vec(), b"layer two".to_vec());
        let top2 = image(&config2, &layer2);
        let unused = b"a layer nothing names".to_vec();
        let mut keep = Vec::new();
        for bytes in [&top1, &host1, &config1, &layer1, &top2, &config2, &layer2] {
            keep.push(put_blob(dest, bytes));
        }
        let gone = put_blob(dest, &unused);
        let hex1 = Digest::of(&top1).hex();
        let tree = dest.join("store").join(&hex1);
        fs::create_dir_all(tree.join("rootfs")).unwrap();
        fs::write(tree.join(MANIFEST_FILE), &top1).unwrap();
        std::os::unix::fs::symlink(format!("store/{hex1}"), dest.join("latest")).unwrap();
        let mut manifest = Manifest::default();
        manifest.insert(entry("1.0", &top1)).unwrap();
        manifest.insert(entry("2.0", &top2)).unwrap();

        let dest = Destination::open(dest).unwrap();
        let mut removed = Vec::new();
        collect(&dest, &manifest, 1, false, &mut |r| removed.push(r.clone())).unwrap();
        assert_eq!(
            removed,
            [Removal {
                name: gone.clone(),
                size: unused.len() as u64,
                reason: Reason::Blob,
            }]
        );
        let blobs = dest.path().join("blobs/sha256");
        assert!(!blobs.join(&gone).exists());
        for hex in &keep {
            assert!(blobs.join(hex).exists(), "{hex} was removed");
        }
        assert!(tree.join("rootfs").is_dir());
    }

    #[test]
    fn a_tree_is_sized_by_the_files_in_it_and_a_link_to_elsewhere_by_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let a = "a".repeat(64);
        fs::create_dir_all(store.join(&a).join("rootfs/deep/er")).unwrap();
        fs::write(store.join(&a).join("rootfs/deep/er/file"), [0u8; 1000]).unwrap();
        fs::write(store.join(&a).join("manifest.json"), [0u8; 24]).unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("big"), [0u8; 5000]).unwrap();
        let b = "b".repeat(64);
        std::os::unix::fs::symlink(&outside, store.join(&b)).unwrap();
        fs::write(store.join("notes.txt"), "someone else's").unwrap();
        let listed = list(&Dir::open(&store).unwrap()).unwrap();
        assert_eq!(
            listed,
            [
                StoreFile {
                    name: a,
                    size: 1024
                },
                StoreFile { name: b, size: 0 },
            ]
        );
    }
}
