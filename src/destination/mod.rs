//! A host's destination directory (`Destination=`): opened once as a directory handle,
//! locked, and every file tako keeps in it named here and nowhere else.
//!
//! ```text
//! DEST/manifest                     the signed manifest the host last accepted
//! DEST/manifest.validators          what the origin said about it (see `poll`)
//! DEST/manifest.seen                since when its mirror serves it unchanged (see `seen`)
//! DEST/latest -> store/<hex>        the installed image, moved atomically
//! DEST/store/<hex>                  images by SHA-256, read-only
//! DEST/store/<hex>/                 Kind=container: a version's tree (see `trees`)
//! DEST/blobs/sha256/<hex>           Kind=container: the blobs of its trees
//! DEST/store/<hex>.partial          an interrupted download (see `partial`)
//! DEST/store/<hex>.partial.validator
//! DEST/index/<hex>                  chunk indexes of local images, for deltas
//! DEST/restart-pending              units whose restart has not succeeded yet
//! DEST/withdrawn                    images the publisher withdrew (see `withdrawn`)
//! ```

pub mod blob_cache;
pub mod image_dir;
pub mod index_cache;
pub mod partial;
pub mod poll;
pub mod restart_pending;
pub mod seen;
pub mod store;
pub mod trees;
pub mod withdrawn;

use std::path::{Path, PathBuf};

use crate::fs::{Dir, DirLock, IoError};

/// The signed manifest the host last accepted.
pub const MANIFEST: &str = "manifest";
/// The directory of images by digest.
pub const STORE: &str = "store";
/// The symlink to the installed image.
pub const LATEST: &str = "latest";
/// The directory of cached chunk indexes of local images.
pub const INDEX: &str = "index";

/// A destination directory, open as a directory handle: nothing planted under one of its
/// names is followed (see `fs::Dir`).
pub struct Destination {
    dir: Dir,
}

impl Destination {
    /// Opens the destination directory; it must exist.
    pub fn open(path: &Path) -> Result<Destination, IoError> {
        Ok(Destination {
            dir: Dir::open(path)?,
        })
    }

    /// The directory handle, for the modules that keep their own files in it.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes the destination's lock: one run changes it at a time.
    pub fn lock(&self) -> Result<DirLock, IoError> {
        self.dir.lock()
    }

    /// Takes the destination's lock shared: waits for a run that changes it to end.
    pub fn lock_shared(&self) -> Result<DirLock, IoError> {
        self.dir.lock_shared()
    }

    /// The path of the local manifest, for messages.
    pub fn manifest_path(&self) -> PathBuf {
        self.path().join(MANIFEST)
    }

    /// The local manifest's bytes, if there is one: at most `max` bytes, from a regular file.
    pub fn read_manifest(&self, max: u64) -> Result<Option<Vec<u8>>, IoError> {
        self.dir.read_file(MANIFEST, max, "read local manifest")
    }

    /// Replaces the local manifest, atomically and durably.
    pub fn write_manifest(&self, bytes: &[u8]) -> Result<(), IoError> {
        self.dir.write_file(MANIFEST, bytes)?;
        Ok(())
    }

    /// `store/`, if it exists (a symlink there is refused, not followed).
    pub fn store(&self) -> Result<Option<Dir>, IoError> {
        self.dir.subdir(STORE)
    }

    /// `store/`, created if needed.
    pub fn ensure_store(&self) -> Result<Dir, IoError> {
        self.dir.ensure_subdir(STORE)
    }

    /// `index/`, if it exists.
    pub fn index_cache(&self) -> Result<Option<Dir>, IoError> {
        self.dir.subdir(INDEX)
    }

    /// Where `latest` points, as the link says it.
    pub fn latest(&self) -> Option<PathBuf> {
        self.dir.read_link(LATEST)
    }

    /// The path of `latest`, for messages.
    pub fn latest_path(&self) -> PathBuf {
        self.path().join(LATEST)
    }

    /// The file in `store/` that `latest` points at, if it points into `store/`.
    pub fn latest_name(&self) -> Option<String> {
        let target = self.latest()?;
        let name = target.strip_prefix(STORE).ok()?;
        let mut parts = name.components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(name)), None) => name.to_str().map(str::to_string),
            _ => None,
        }
    }

    /// The SHA-256 that `latest` names, if it points at `store/<hex>`.
    pub fn latest_digest(&self) -> Option<[u8; 32]> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(self.latest_name()?, &mut digest).ok()?;
        Some(digest)
    }

    /// Points `latest` at `store/<hex>`, atomically and durably.
    pub fn point_latest_at(&self, hex: &str) -> Result<(), IoError> {
        self.dir.replace_symlink(LATEST, &store_target(hex))
    }
}

/// What `latest` says when it points at the image `hex`: `store/<hex>`.
pub fn store_target(hex: &str) -> PathBuf {
    Path::new(STORE).join(hex)
}
