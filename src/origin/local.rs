//! A server directory on the local file system as a place to publish to ([`Publish`]), as
//! `tako store` writes it: `manifest`, `manifest.<keyid>`, `store/<hex>` and `index/<hex>`.
//!
//! The directory is opened once and locked for the run; nothing inside it is reached
//! through a symlink, and every file is written atomically and durably, so a host (or the
//! web server in front of it) sees the old file or the new one at every instant (see
//! `fs`).

use std::fs::File;
use std::path::Path;

use super::dir::{INDEX, MANIFEST, STORE};
use super::publish::{Existing, Publish, Removed, Staged};
use super::{OriginError, Slot};
use crate::format::chunk_index::ChunkIndex;
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::fs::{Context, Dir, DirLock, PendingFile};
use crate::stream::chunking;
use crate::stream::hashing::{self, Summary};

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
            let (summary, index) =
                chunking::copy_hash_and_index(&mut file, pending.file()).map_err(copy_error)?;
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
