//! A server directory on the local file system as a place to publish to ([`Publish`]), as
//! `tako store` writes it: `manifest`, `manifest.<keyid>`, `store/<hex>` and `index/<hex>`;
//! for a container image also `blobs/sha256/<hex>`, every manifest, config and layer it
//! pins ([`ContainerTarget`]).
//!
//! The directory is opened once and locked for the run; nothing inside it is reached
//! through a symlink, and every file is written atomically and durably, so a host (or the
//! web server in front of it) sees the old file or the new one at every instant (see
//! `fs`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::dir::{BLOBS, INDEX, MANIFEST, STORE};
use super::publish::{ContainerTarget, Existing, Publish, Removed, Staged};
use super::{OriginError, Slot};
use crate::format::chunk_index::ChunkIndex;
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::format::oci::digest::{self, Digest};
use crate::fs::{Context, Dir, DirLock, Found, IoError, PendingFile, direct};
use crate::registry::Reference;
use crate::stream::chunking;
use crate::stream::hashing::{self, CopyError, Summary};

/// A server directory that `tako store` writes to, locked while this lives.
pub struct LocalDir {
    dir: Dir,
    _lock: DirLock,
    /// Whether a file was removed, so that [`Publish::finish`] flushes the directory.
    removed: std::cell::Cell<bool>,
}

impl LocalDir {
    /// Opens and locks the directory at `path`, which must exist.
    pub fn open(path: &Path) -> Result<LocalDir, OriginError> {
        if !path.is_dir() {
            return Err(OriginError::NoDirectory(path.to_path_buf()));
        }
        let dir = Dir::open(path)?;
        let lock = dir.lock()?;
        Ok(LocalDir {
            dir,
            _lock: lock,
            removed: std::cell::Cell::new(false),
        })
    }
}

impl Publish for LocalDir {
    fn location(&self, slot: &Slot) -> String {
        self.dir
            .path()
            .join(slot.name(MANIFEST))
            .display()
            .to_string()
    }

    fn title(&self, slot: &Slot) -> String {
        format!("existing manifest {}", self.location(slot))
    }

    fn manifests(&self) -> Result<Vec<Existing>, OriginError> {
        let mut slots: Vec<Slot> = self
            .dir
            .names()?
            .iter()
            .filter_map(|name| Slot::parse(name, MANIFEST))
            .collect();
        slots.sort();
        let mut found = Vec::new();
        for slot in slots {
            // Only a regular file of at most the size a client accepts is read, never
            // through a symlink: a planted FIFO or link cannot hang or redirect the
            // publisher.
            if let Some(bytes) =
                self.dir
                    .read_file(&slot.name(MANIFEST), MAX_MANIFEST_SIZE, "read")?
            {
                found.push(Existing { slot, bytes });
            }
        }
        Ok(found)
    }

    fn stage(&self, image: &Path, index: bool) -> Result<Box<dyn Staged + '_>, OriginError> {
        let store = self.dir.ensure_subdir(STORE)?;
        // Before the copy: something planted at `index` fails the run before anything is
        // written.
        let index_dir = if index {
            Some(self.dir.ensure_subdir(INDEX)?)
        } else {
            None
        };
        let mut file = File::open(image).context("open image", image)?;
        let mut pending = store.create("incoming")?;
        let target = pending.path().to_path_buf();
        let copy_error = |source| OriginError::Copy {
            image: image.to_path_buf(),
            target,
            source,
        };
        // One read of the image: copied, hashed and (unless told not to) indexed at once.
        let (summary, index) = if index {
            // The copy is never read back here: past the page cache it costs the kernel
            // no copy into fresh pages (see fs/direct.rs).
            let direct = direct::try_direct_writes(pending.file(), chunking::DIRECT_ALIGN);
            let (summary, index) = chunking::copy_hash_and_index(&mut file, pending.file(), direct)
                .map_err(copy_error)?;
            (summary, Some(index))
        } else {
            let summary = hashing::copy_and_hash_to_file(&mut file, pending.file(), None)
                .map_err(copy_error)?;
            (summary, None)
        };
        Ok(Box::new(DirStaged {
            pending,
            summary,
            index: index_dir.zip(index),
        }))
    }

    fn put_manifest(&self, slot: &Slot, signed: &[u8]) -> Result<(), OriginError> {
        self.dir.write_file(&slot.name(MANIFEST), signed)?;
        Ok(())
    }

    fn remove_manifest(&self, slot: &Slot) -> Result<Removed, OriginError> {
        self.dir.remove(&slot.name(MANIFEST))?;
        self.removed.set(true);
        Ok(Removed::Deleted)
    }

    fn finish(&self) -> Result<(), OriginError> {
        if self.removed.get() {
            self.dir.sync()?;
        }
        Ok(())
    }

    fn container(&self) -> &dyn ContainerTarget {
        self
    }
}

impl LocalDir {
    /// `blobs/sha256`, made if missing; never reached through a symlink.
    fn blob_dir(&self) -> Result<Dir, IoError> {
        self.dir
            .ensure_subdir(BLOBS)?
            .ensure_subdir(digest::ALGORITHM)
    }
}

impl ContainerTarget for LocalDir {
    fn has_blob(&self, digest: &Digest, size: u64) -> Result<bool, OriginError> {
        let dir = self.blob_dir()?;
        let hex = digest.hex();
        let mut file = match dir.open_file(&hex)? {
            Found::File(file) => file,
            // A symlink or anything else planted there is replaced, never read through.
            Found::Missing | Found::Other(_) => return Ok(false),
            Found::Directory => {
                return Err(IoError::directory_in_the_way("write", &dir.path().join(&hex)).into());
            }
        };
        match hashing::copy_and_hash(&mut file, None, Some(size)) {
            Ok(summary) => Ok(summary.size == size && summary.digest == *digest.as_bytes()),
            // Longer than the blob: not it, and rewritten.
            Err(CopyError::TooLong { .. }) => Ok(false),
            Err(source) => Err(OriginError::BlobCopy {
                digest: digest.to_string(),
                target: dir.path().join(&hex),
                source,
            }),
        }
    }

    fn mount_blob(&self, _digest: &Digest, _from: &Reference) -> Result<bool, OriginError> {
        Ok(false)
    }

    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &mut dyn Read,
    ) -> Result<(), OriginError> {
        let dir = self.blob_dir()?;
        let hex = digest.hex();
        let mut pending = dir.create(&hex)?;
        let target = pending.path().to_path_buf();
        // One byte past `size` is enough to know the source is not the blob.
        let summary = hashing::copy_and_hash_to_file(source, pending.file(), Some(size)).map_err(
            |source| OriginError::BlobCopy {
                digest: digest.to_string(),
                target: target.clone(),
                source,
            },
        )?;
        if summary.size != size || summary.digest != *digest.as_bytes() {
            // Dropping `pending` removes the temporary file: nothing is kept under a
            // digest its bytes do not have.
            return Err(OriginError::BlobMismatch {
                digest: digest.to_string(),
                target: dir.path().join(&hex),
                size: summary.size,
                actual: hex::encode(summary.digest),
            });
        }
        pending.commit()?;
        Ok(())
    }

    fn put_manifest_blob(
        &self,
        digest: &Digest,
        _media_type: &str,
        bytes: &[u8],
    ) -> Result<(), OriginError> {
        let dir = self.blob_dir()?;
        let hex = digest.hex();
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(OriginError::BlobMismatch {
                digest: digest.to_string(),
                target: dir.path().join(&hex),
                size: bytes.len() as u64,
                actual: actual.hex(),
            });
        }
        if !self.has_blob(digest, bytes.len() as u64)? {
            dir.write_file(&hex, bytes)?;
        }
        Ok(())
    }

    fn put_image(
        &self,
        bytes: &[u8],
        media_type: &str,
        _version: &str,
    ) -> Result<String, OriginError> {
        let digest = Digest::of(bytes);
        // In the blob directory too, so that it is a complete one (as an image layout's
        // is); under `store/` last, where a host of this version looks.
        self.put_manifest_blob(&digest, media_type, bytes)?;
        let store = self.dir.ensure_subdir(STORE)?;
        let path = store.write_file(&digest.hex(), bytes)?;
        Ok(path.display().to_string())
    }
}

/// An image copied to `store/incoming.new`, not yet under its name.
struct DirStaged {
    pending: PendingFile,
    summary: Summary,
    /// The `index/` directory and the image's index, unless published without one.
    index: Option<(Dir, ChunkIndex)>,
}

impl Staged for DirStaged {
    fn size(&self) -> u64 {
        self.summary.size
    }

    fn digest(&self) -> [u8; 32] {
        self.summary.digest
    }

    fn put(self: Box<Self>, _version: &str) -> Result<(), OriginError> {
        let hex = hex::encode(self.summary.digest);
        // The copy is complete and verified by construction: renaming it over an existing
        // store file keeps good bytes good and repairs bad ones, without a second pass
        // over the old file.
        self.pending.commit_as(&hex)?;
        // Before the manifest names the image, so that a host never finds the new entry
        // without its index (it would download the image in full).
        if let Some((dir, index)) = &self.index {
            dir.write_file(&hex, &index.to_bytes())?;
        }
        Ok(())
    }
}
