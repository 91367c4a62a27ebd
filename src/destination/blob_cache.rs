//! The blob cache of `tako image`: compressed layers and configs by digest, shared by every
//! pull, and the record of which blobs each pulled tree was built from.
//!
//! ```text
//! CACHE/lock                        the cache lock: pulls share it, purge takes it alone
//! CACHE/blobs/sha256/<hex>          verified blobs, read-only, named by their SHA-256
//! CACHE/blobs/sha256/<hex>.partial  the bytes of an interrupted download (and .validator)
//! CACHE/locks/<hex>                 one lock file per blob
//! CACHE/trees/<key>                 which blobs the tree in one directory was built from
//! ```
//!
//! Locking, all with `flock` on files that are never removed while anyone may hold them:
//! - A pull holds `lock` shared from before it looks at any blob until its tree is in place
//!   and recorded; `tako image purge` holds it exclusively. So a purge never removes a blob
//!   (or a partial, or a lock file) that a running pull needs, and it sees every finished
//!   pull's record.
//! - A blob is looked up, verified, downloaded or written only under its own lock,
//!   `locks/<hex>`, held exclusively. Two pulls that share a blob therefore download it
//!   once: the second waits, then finds it in place and only verifies it. A lock file is
//!   only removed by a purge, when no pull can hold or wait for one.
//!
//! Records: after a pull has moved its tree into place, `trees/<key>` (`key` the SHA-256 of
//! the tree's absolute path) names the path, the device and inode of the tree's root, the
//! image and the blobs it used. A pull into the same directory replaces the record, which
//! releases the blobs only the old tree used. A purge releases the blobs of a record whose
//! path is gone or holds another directory (another device or inode: replaced by someone
//! else); it cannot tell, and so keeps, a record whose path it may not inspect.
//!
//! Everything here is reached through directory handles without following symlinks (see
//! `crate::fs`): a symlink planted in the cache is removed or refused, never followed.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::partial;
use crate::format::oci::digest::Digest;
use crate::fs::{Context, Dir, Found, IoError, ListedKind};
use crate::stream::hashing::{self, CopyError};

const LOCK: &str = "lock";
/// `blobs/sha256/` under the cache (or a `Kind=container` destination).
pub const BLOBS: &str = "blobs";
pub const SHA256: &str = "sha256";
const LOCKS: &str = "locks";
const TREES: &str = "trees";
/// A record lists at most a config and `MAX_LAYERS` layers; far less than this.
const MAX_RECORD: u64 = 1024 * 1024;
/// The format of a tree record; a record of another version is kept and not read.
const RECORD_VERSION: u32 = 1;

/// The cache directory, open.
pub struct BlobCache {
    root: Dir,
    blobs: Dir,
    locks: Dir,
    trees: Dir,
}

/// The cache lock, shared or exclusive, held until dropped.
pub struct CacheLock {
    _file: File,
}

/// The lock of one blob, held until dropped.
pub struct BlobLock {
    _file: File,
}

/// What the cache holds for a blob, checked.
#[derive(Debug)]
pub enum Lookup {
    /// In place, with the size and SHA-256 it must have.
    Verified,
    /// Not there.
    Missing,
    /// There, but not with the size or digest it is named by: it has been removed.
    Damaged { reason: String },
}

/// Which blobs the tree in one directory was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    pub version: u32,
    /// The tree's absolute path.
    pub dir: String,
    /// The device and inode of the tree's root when it was moved into place.
    pub device: u64,
    pub inode: u64,
    /// When the tree's root was created (`statx`'s birth time, seconds and nanoseconds),
    /// where the file system keeps it: an inode number is reused once its directory is
    /// removed, so a directory made later at the same path may have it again. Absent in
    /// records of older versions and on file systems without birth times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<(i64, u32)>,
    /// The image as pulled (canonical reference), and the manifest it was built from.
    pub image: String,
    pub manifest: Digest,
    pub blobs: Vec<Digest>,
}

impl TreeRecord {
    pub fn new(
        dir: &Path,
        identity: Identity,
        image: &str,
        manifest: Digest,
        blobs: Vec<Digest>,
    ) -> Option<TreeRecord> {
        // A path that is not UTF-8 cannot be written in JSON as it is; such a tree is not
        // recorded, and its blobs count as unused (they are only a cache).
        Some(TreeRecord {
            version: RECORD_VERSION,
            dir: dir.to_str()?.to_owned(),
            device: identity.device,
            inode: identity.inode,
            born: identity.born,
            image: image.to_owned(),
            manifest,
            blobs,
        })
    }
}

/// Why a record no longer holds its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Nothing is at its path any more.
    Gone,
    /// Another directory (or something else) is at its path.
    Replaced,
    /// The record cannot be read.
    Unreadable,
}

impl Stale {
    pub fn describe(self) -> &'static str {
        match self {
            Stale::Gone => "the tree is gone",
            Stale::Replaced => "the tree was replaced by something tako did not pull",
            Stale::Unreadable => "its record is unreadable",
        }
    }
}

/// A record a purge drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The record's file name in `trees/`.
    pub name: String,
    /// The tree's path as recorded, if the record could be read (escaped for printing).
    pub dir: Option<String>,
    pub why: Stale,
}

/// What a file a purge removes from `blobs/sha256/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A verified blob no recorded tree uses.
    Blob,
    /// The bytes (or validator) of an interrupted download.
    Partial,
    /// A file a crashed run was writing.
    Temporary,
}

/// A file a purge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
}

/// What a purge removes and keeps; made and applied under the exclusive cache lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgePlan {
    pub released: Vec<Released>,
    pub removals: Vec<Removal>,
    /// Lock files of blobs (empty; not worth a line).
    locks: Vec<String>,
    /// Records that stay, and the blobs they keep.
    pub trees_kept: usize,
    pub blobs_kept: usize,
    pub bytes_kept: u64,
}

impl PurgePlan {
    /// The bytes the removals free.
    pub fn bytes(&self) -> u64 {
        self.removals
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.size))
    }
}

fn is_hex_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `<hex>.partial` or `<hex>.partial.validator`: an interrupted download.
fn is_partial_name(name: &str) -> bool {
    name.strip_suffix(partial::SUFFIX)
        .or_else(|| name.strip_suffix(partial::VALIDATOR_SUFFIX))
        .is_some_and(is_hex_name)
}

/// The file a tree's record is kept in: the SHA-256 of its path.
fn record_name(dir: &str) -> String {
    Digest::of(dir.as_bytes()).hex()
}

/// Whether what is at a record's path now is the tree it recorded. `None`: it cannot tell.
fn staleness(record: &TreeRecord) -> Option<Stale> {
    match std::fs::symlink_metadata(&record.dir) {
        Ok(meta) if meta.is_dir() && meta.dev() == record.device && meta.ino() == record.inode => {
            // The same inode number born at another time is another directory.
            match (record.born, identity_of(Path::new(&record.dir))) {
                (Some(born), Ok(now)) if now.born.is_some_and(|b| b != born) => {
                    Some(Stale::Replaced)
                }
                _ => None,
            }
        }
        Ok(_) => Some(Stale::Replaced),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Stale::Gone),
        // ENOTDIR: a file where a parent directory was.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Some(Stale::Gone),
        Err(_) => None,
    }
}

fn lock_file(dir: &Dir, name: &str) -> Result<File, IoError> {
    dir.open_rw(name)
}

impl BlobCache {
    /// Opens the cache at `path`, creating it (and its parents, as `mkdir -p` does) if it is
    /// missing. The path was given by whoever runs tako, so a symlink on it is followed;
    /// inside, nothing is.
    pub fn open(path: &Path) -> Result<BlobCache, IoError> {
        std::fs::create_dir_all(path).context("create directory", path)?;
        BlobCache::open_dir(path)
    }

    /// Opens the cache at `path` if there is one.
    pub fn open_existing(path: &Path) -> Result<Option<BlobCache>, IoError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            _ => BlobCache::open_dir(path).map(Some),
        }
    }

    fn open_dir(path: &Path) -> Result<BlobCache, IoError> {
        let root = Dir::open(path)?;
        let blobs = root.ensure_subdir(BLOBS)?.ensure_subdir(SHA256)?;
        let locks = root.ensure_subdir(LOCKS)?;
        let trees = root.ensure_subdir(TREES)?;
        Ok(BlobCache {
            root,
            blobs,
            locks,
            trees,
        })
    }

    /// `blobs/sha256`, where blobs are downloaded to (with their partials).
    pub fn blobs(&self) -> &Dir {
        &self.blobs
    }

    /// The path of a blob, for messages.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.path().join(digest.hex())
    }

    /// Takes the cache lock shared, as a pull does, calling `waiting` first if a purge holds
    /// it.
    pub fn lock_shared(&self, waiting: &dyn Fn()) -> Result<CacheLock, IoError> {
        let file = lock_file(&self.root, LOCK)?;
        let path = self.root.path().join(LOCK);
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock_shared().context("lock", &path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("lock", &path),
        }
        Ok(CacheLock { _file: file })
    }

    /// Takes the cache lock exclusively, as a purge does, calling `waiting` first if pulls
    /// hold it.
    pub fn lock_exclusive(&self, waiting: &dyn Fn()) -> Result<CacheLock, IoError> {
        let file = lock_file(&self.root, LOCK)?;
        let path = self.root.path().join(LOCK);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().context("lock", &path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("lock", &path),
        }
        Ok(CacheLock { _file: file })
    }

    /// Takes the lock of one blob, calling `waiting` first if another pull holds it (it is
    /// downloading or checking that blob); the caller holds the cache lock.
    pub fn lock_blob(&self, digest: &Digest, waiting: &dyn Fn()) -> Result<BlobLock, IoError> {
        let name = digest.hex();
        let path = self.locks.path().join(&name);
        let file = lock_file(&self.locks, &name)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().context("lock", &path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("lock", &path),
        }
        Ok(BlobLock { _file: file })
    }

    /// Opens the blob for reading, if it is a regular file.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<File>, IoError> {
        let name = digest.hex();
        match self.blobs.open_file(&name)? {
            Found::File(file) => Ok(Some(file)),
            Found::Missing => Ok(None),
            Found::Directory => Err(IoError::directory_in_the_way(
                "open",
                &self.blobs.path().join(&name),
            )),
            Found::Other(found) => Err(IoError::new(
                "open",
                &self.blobs.path().join(&name),
                io::Error::other(format!("it is {found}, not a regular file")),
            )),
        }
    }

    /// Checks the blob against its digest and size, under its lock. A blob that does not
    /// match (or anything but a regular file under its name) is removed.
    pub fn lookup(&self, digest: &Digest, size: u64) -> Result<Lookup, IoError> {
        let name = digest.hex();
        let path = self.blobs.path().join(&name);
        let mut file = match self.blobs.open_file(&name)? {
            Found::Missing => return Ok(Lookup::Missing),
            Found::File(file) => file,
            Found::Directory => return Err(IoError::directory_in_the_way("verify", &path)),
            Found::Other(found) => {
                self.blobs.remove(&name)?;
                return Ok(Lookup::Damaged {
                    reason: format!("it was {found}"),
                });
            }
        };
        let reason = match hashing::copy_and_hash(&mut file, None, Some(size)) {
            Ok(summary) if summary.size != size => {
                format!("it is {} bytes, not {size}", summary.size)
            }
            Ok(summary) if summary.digest != *digest.as_bytes() => format!(
                "its content has the digest {}",
                Digest::from(summary.digest)
            ),
            Ok(_) => return Ok(Lookup::Verified),
            Err(CopyError::TooLong { .. }) => format!("it is longer than {size} bytes"),
            Err(CopyError::Read(e) | CopyError::Write(e)) => {
                return Err(IoError::new("read", &path, e));
            }
        };
        self.blobs.remove(&name)?;
        self.blobs.sync()?;
        Ok(Lookup::Damaged { reason })
    }

    /// Reads a small verified blob (a config), at most `max` bytes.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, IoError> {
        self.blobs.read_file(&digest.hex(), max, "read")
    }

    /// Stores `bytes`, already checked against `digest`, under the blob's lock.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), IoError> {
        self.blobs.write_file(&digest.hex(), bytes).map(|_| ())
    }

    /// Records which blobs the tree `record.dir` was built from, replacing its last record.
    pub fn record(&self, record: &TreeRecord) -> Result<(), IoError> {
        let bytes = serde_json::to_vec(record).map_err(|e| {
            IoError::new(
                "write",
                &self.trees.path().join(record_name(&record.dir)),
                e.into(),
            )
        })?;
        self.trees
            .write_file(&record_name(&record.dir), &bytes)
            .map(|_| ())
    }

    /// The record of the tree at `dir`, if there is a readable one.
    #[cfg(test)]
    fn record_of(&self, dir: &str) -> Option<TreeRecord> {
        self.read_record(&record_name(dir)).ok()
    }

    /// The record of the tree at `dir` if the directory there now is the very one a pull
    /// moved into place (same device and inode): what it was built from. A tree swapped or
    /// recreated by anything else has no current record.
    pub fn current_record(&self, dir: &Path) -> Option<TreeRecord> {
        let record = self.read_record(&record_name(dir.to_str()?)).ok()?;
        if record.version != RECORD_VERSION || record.born.is_none() {
            return None;
        }
        let now = identity_of(dir).ok()?;
        (std::fs::symlink_metadata(dir).ok()?.is_dir()
            && now.device == record.device
            && now.inode == record.inode
            && now.born == record.born)
            .then_some(record)
    }

    fn read_record(&self, name: &str) -> Result<TreeRecord, ()> {
        let bytes = self
            .trees
            .read_file(name, MAX_RECORD, "read")
            .ok()
            .flatten()
            .ok_or(())?;
        let record: TreeRecord = serde_json::from_slice(&bytes).map_err(|_| ())?;
        // A record must be filed under its own path: one copied under another name would
        // otherwise keep blobs for a tree twice, or for none.
        if record_name(&record.dir) != name {
            return Err(());
        }
        Ok(record)
    }

    /// What a purge would remove: records of trees that are gone, the blobs no remaining
    /// record names, every partial download and temporary, every blob lock file. Only call
    /// it under the exclusive cache lock.
    pub fn plan_purge(&self) -> Result<PurgePlan, IoError> {
        let mut plan = PurgePlan::default();
        let mut used = std::collections::BTreeSet::new();
        let mut names = self.trees.names()?;
        names.sort();
        for name in names {
            if name.ends_with(".new") {
                // A record being written when a run crashed.
                plan.released.push(Released {
                    name,
                    dir: None,
                    why: Stale::Unreadable,
                });
                continue;
            }
            if !is_hex_name(&name) {
                continue;
            }
            match self.read_record(&name) {
                Err(()) => plan.released.push(Released {
                    name,
                    dir: None,
                    why: Stale::Unreadable,
                }),
                Ok(record) if record.version != RECORD_VERSION => {
                    // Written by a newer tako: not understood, so all of the cache stays.
                    plan.trees_kept += 1;
                    return Ok(PurgePlan {
                        trees_kept: plan.trees_kept,
                        ..PurgePlan::default()
                    });
                }
                Ok(record) => match staleness(&record) {
                    Some(why) => plan.released.push(Released {
                        name,
                        dir: Some(crate::format::text::untrusted(&record.dir)),
                        why,
                    }),
                    None => {
                        plan.trees_kept += 1;
                        used.extend(record.blobs.iter().copied());
                    }
                },
            }
        }
        let mut entries = self.blobs.entries()?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let (Some(name), ListedKind::File) = (entry.name.to_str(), entry.kind) else {
                continue;
            };
            let kind = if is_hex_name(name) {
                let digest = Digest::from_hex(name).ok();
                if digest.is_some_and(|d| used.contains(&d)) {
                    plan.blobs_kept += 1;
                    plan.bytes_kept = plan.bytes_kept.saturating_add(entry.size);
                    continue;
                }
                Kind::Blob
            } else if is_partial_name(name) {
                Kind::Partial
            } else if name
                .strip_suffix(".new")
                .is_some_and(|stem| is_hex_name(stem) || is_partial_name(stem))
            {
                // A blob, or a partial's validator, being written when a run was killed.
                Kind::Temporary
            } else {
                continue;
            };
            plan.removals.push(Removal {
                name: name.to_owned(),
                kind,
                size: entry.size,
            });
        }
        plan.locks = self
            .locks
            .names()?
            .into_iter()
            .filter(|n| is_hex_name(n))
            .collect();
        Ok(plan)
    }

    /// Removes what `plan` names; under the exclusive cache lock it was made under.
    pub fn purge(&self, plan: &PurgePlan) -> Result<(), IoError> {
        for released in &plan.released {
            self.trees.remove(&released.name)?;
        }
        self.trees.sync()?;
        for removal in &plan.removals {
            self.blobs.remove(&removal.name)?;
        }
        self.blobs.sync()?;
        for lock in &plan.locks {
            self.locks.remove(lock)?;
        }
        self.locks.sync()
    }
}

/// What tells one directory from another made later at the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub device: u64,
    pub inode: u64,
    pub born: Option<(i64, u32)>,
}

/// The identity of the directory at `path` (not followed if it is a symlink), as a tree
/// record names it.
pub fn identity_of(path: &Path) -> Result<Identity, IoError> {
    use rustix::fs::{AtFlags, StatxFlags};
    let meta = std::fs::symlink_metadata(path).context("inspect", path)?;
    let born = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::BTIME,
    )
    .ok()
    .filter(|stat| stat.stx_mask & StatxFlags::BTIME.bits() != 0)
    .map(|stat| (stat.stx_btime.tv_sec, stat.stx_btime.tv_nsec));
    Ok(Identity {
        device: meta.dev(),
        inode: meta.ino(),
        born,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn cache() -> (tempfile::TempDir, BlobCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        (dir, cache)
    }

    fn put(cache: &BlobCache, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let _lock = cache.lock_blob(&digest, &|| {}).unwrap();
        cache.write_blob(&digest, bytes).unwrap();
        digest
    }

    fn record(cache: &BlobCache, tree: &Path, blobs: Vec<Digest>) {
        let identity = identity_of(tree).unwrap();
        let record = TreeRecord::new(
            tree,
            identity,
            "example.com/app:1",
            Digest::of(b"manifest"),
            blobs,
        )
        .unwrap();
        cache.record(&record).unwrap();
    }

    #[test]
    fn a_stored_blob_verifies_and_a_damaged_one_is_removed() {
        let (_dir, cache) = cache();
        let digest = put(&cache, b"layer bytes");
        assert!(matches!(
            cache.lookup(&digest, 11).unwrap(),
            Lookup::Verified
        ));
        let path = cache.blob_path(&digest);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        // The wrong size for the name: whatever the manifest says wins.
        assert!(matches!(
            cache.lookup(&digest, 12).unwrap(),
            Lookup::Damaged { .. }
        ));
        assert!(!path.exists());
        assert!(matches!(
            cache.lookup(&digest, 11).unwrap(),
            Lookup::Missing
        ));
        // Bytes changed behind tako's back.
        fs::write(&path, b"layer bytez").unwrap();
        let Lookup::Damaged { reason } = cache.lookup(&digest, 11).unwrap() else {
            panic!("a changed blob passed");
        };
        assert!(reason.contains("digest"), "{reason}");
        assert!(!path.exists());
    }

    #[test]
    fn a_symlink_planted_as_a_blob_is_removed_and_never_read_through() {
        let (dir, cache) = cache();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"layer bytes").unwrap();
        let digest = Digest::of(b"layer bytes");
        std::os::unix::fs::symlink(&secret, cache.blob_path(&digest)).unwrap();
        assert!(matches!(
            cache.lookup(&digest, 11).unwrap(),
            Lookup::Damaged { .. }
        ));
        assert!(fs::symlink_metadata(cache.blob_path(&digest)).is_err());
        assert_eq!(fs::read(&secret).unwrap(), b"layer bytes");
    }

    #[test]
    fn purge_removes_exactly_the_blobs_no_live_tree_uses_and_every_partial() {
        let (dir, cache) = cache();
        let shared = put(&cache, b"base layer");
        let only_a = put(&cache, b"layer of a");
        let only_b = put(&cache, b"layer of b");
        let orphan = put(&cache, b"pulled into a tree that failed");
        let tree_a = dir.path().join("a");
        let tree_b = dir.path().join("b");
        fs::create_dir(&tree_a).unwrap();
        fs::create_dir(&tree_b).unwrap();
        record(&cache, &tree_a, vec![shared, only_a]);
        record(&cache, &tree_b, vec![shared, only_b]);
        let partial = format!("{}{}", Digest::of(b"half").hex(), partial::SUFFIX);
        fs::write(cache.blobs().path().join(&partial), b"ha").unwrap();
        // What a run killed while it wrote a validator leaves.
        let validator = format!(
            "{}{}.new",
            Digest::of(b"half").hex(),
            partial::VALIDATOR_SUFFIX
        );
        fs::write(cache.blobs().path().join(&validator), b"\"etag\"").unwrap();
        fs::write(cache.blobs().path().join("notes.txt"), b"not tako's").unwrap();

        let plan = cache.plan_purge().unwrap();
        let removed: Vec<&str> = plan.removals.iter().map(|r| r.name.as_str()).collect();
        let mut expected = vec![orphan.hex(), partial.clone(), validator.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert_eq!(plan.bytes(), 30 + 2 + 6);
        assert_eq!((plan.trees_kept, plan.blobs_kept), (2, 3));
        assert!(plan.released.is_empty());

        // Tree b goes away: its own layer is released, the shared one stays for a.
        fs::remove_dir(&tree_b).unwrap();
        let plan = cache.plan_purge().unwrap();
        assert_eq!(plan.released.len(), 1);
        assert_eq!(plan.released[0].why, Stale::Gone);
        cache.purge(&plan).unwrap();
        for (digest, kept) in [
            (shared, true),
            (only_a, true),
            (only_b, false),
            (orphan, false),
        ] {
            assert_eq!(cache.blob_path(&digest).exists(), kept, "{digest}");
        }
        assert!(!cache.blobs().path().join(&partial).exists());
        assert!(!cache.blobs().path().join(&validator).exists());
        assert!(cache.blobs().path().join("notes.txt").exists());
        assert_eq!(
            fs::read_dir(cache.root.path().join(LOCKS)).unwrap().count(),
            0
        );
        let again = cache.plan_purge().unwrap();
        assert!(again.removals.is_empty() && again.released.is_empty());
    }

    #[test]
    fn a_tree_replaced_by_another_directory_releases_its_blobs() {
        let (dir, cache) = cache();
        let layer = put(&cache, b"layer");
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        record(&cache, &tree, vec![layer]);
        // Someone else's directory now: same path, another inode.
        let aside = dir.path().join("aside");
        fs::rename(&tree, &aside).unwrap();
        fs::create_dir(&tree).unwrap();
        let plan = cache.plan_purge().unwrap();
        assert_eq!(plan.released.len(), 1);
        assert_eq!(plan.released[0].why, Stale::Replaced);
        assert_eq!(plan.removals.len(), 1);
    }

    #[test]
    fn a_pull_into_the_same_directory_replaces_its_record_and_releases_the_old_blobs() {
        let (dir, cache) = cache();
        let old = put(&cache, b"old layer");
        let new = put(&cache, b"new layer");
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        record(&cache, &tree, vec![old]);
        record(&cache, &tree, vec![new]);
        let plan = cache.plan_purge().unwrap();
        let removed: Vec<&str> = plan.removals.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(removed, [old.hex()]);
        assert_eq!(
            cache.record_of(tree.to_str().unwrap()).unwrap().blobs,
            [new]
        );
    }

    #[test]
    fn only_the_very_directory_a_pull_moved_into_place_has_a_current_record() {
        let (dir, cache) = cache();
        let layer = put(&cache, b"layer");
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        assert_eq!(cache.current_record(&tree), None);
        record(&cache, &tree, vec![layer]);
        assert_eq!(cache.current_record(&tree).unwrap().blobs, [layer]);
        // Another directory under the same name is not the tree the record names.
        fs::rename(&tree, dir.path().join("moved")).unwrap();
        fs::create_dir(&tree).unwrap();
        assert_eq!(cache.current_record(&tree), None);
        fs::remove_dir(&tree).unwrap();
        assert_eq!(cache.current_record(&tree), None);
    }

    #[test]
    fn a_record_filed_under_another_name_or_garbled_is_released() {
        let (dir, cache) = cache();
        let layer = put(&cache, b"layer");
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        record(&cache, &tree, vec![layer]);
        let trees = cache.root.path().join(TREES);
        let name = record_name(tree.to_str().unwrap());
        fs::rename(trees.join(&name), trees.join("0".repeat(64))).unwrap();
        fs::write(trees.join("f".repeat(64)), b"{not json").unwrap();
        let plan = cache.plan_purge().unwrap();
        assert_eq!(plan.released.len(), 2);
        assert!(plan.released.iter().all(|r| r.why == Stale::Unreadable));
        assert_eq!(plan.removals.len(), 1);
    }

    #[test]
    fn two_pulls_of_one_blob_take_turns_and_the_second_finds_it_in_place() {
        let (_dir, cache) = cache();
        let digest = Digest::of(b"shared layer");
        let first = cache
            .lock_blob(&digest, &|| panic!("nobody holds it"))
            .unwrap();
        let waited = std::cell::Cell::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                // The first pull downloads the blob while it holds the lock.
                cache.write_blob(&digest, b"shared layer").unwrap();
                drop(first);
            });
            let _second = cache.lock_blob(&digest, &|| waited.set(true)).unwrap();
            assert!(matches!(
                cache.lookup(&digest, 12).unwrap(),
                Lookup::Verified
            ));
        });
        assert!(waited.get());
    }

    #[test]
    fn a_purge_waits_for_running_pulls_and_a_pull_for_a_running_purge() {
        let (_dir, cache) = cache();
        let pull = cache
            .lock_shared(&|| panic!("nothing holds the lock"))
            .unwrap();
        let other_pull = cache
            .lock_shared(&|| panic!("pulls share the lock"))
            .unwrap();
        let waited = std::cell::Cell::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                drop(pull);
                drop(other_pull);
            });
            let _purge = cache.lock_exclusive(&|| waited.set(true)).unwrap();
        });
        assert!(waited.get());
    }
}
