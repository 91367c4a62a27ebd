//! `DEST/store/`: what it holds for an entry, what it lists, and what `Keep=` and `tako gc`
//! remove from it.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::format::manifest::{Entry, Manifest};
use crate::format::retention::{self, Removal, StoreFile};
use crate::fs::{Context, Dir, Found, IoError, ListedKind};
use crate::stream::hashing::{self, CopyError};

use super::Destination;

/// Why the store could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the store holds for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Intact,
    Missing,
    /// Present with the wrong size or digest; says which.
    Damaged(String),
}

/// Checks the store file of `entry`: size always, SHA-256 when `verify`.
/// Anything but a regular file there (a planted symlink) counts as damaged.
/// An intact file someone made writable is set back to read-only; `warn` is told.
pub fn check(
    store: &Dir,
    entry: &Entry,
    verify: bool,
    warn: &dyn Fn(&str),
) -> Result<Stored, StoreError> {
    let (state, intact) = examine(store, entry, verify)?;
    if let Some((file, meta)) = intact {
        make_read_only(&file, &meta, &store.path().join(entry.digest_hex()), warn)?;
    }
    Ok(state)
}

/// As [`check`], but changes nothing, not even a wrong mode: what `tako status` reports.
pub fn inspect(store: &Dir, entry: &Entry, verify: bool) -> Result<Stored, StoreError> {
    Ok(examine(store, entry, verify)?.0)
}

/// The state of the store file of `entry`, and the open file if it is intact.
fn examine(
    store: &Dir,
    entry: &Entry,
    verify: bool,
) -> Result<(Stored, Option<(File, std::fs::Metadata)>), StoreError> {
    let damaged = |why: String| Ok((Stored::Damaged(why), None));
    let hex = entry.digest_hex();
    let path = store.path().join(&hex);
    let mut file = match store.open_file(&hex)? {
        Found::Missing => return Ok((Stored::Missing, None)),
        Found::Other(kind) => return damaged(format!("it is {kind}")),
        // No rename can replace it, so downloading would be in vain.
        Found::Directory => {
            return Err(IoError::directory_in_the_way("use", &path).into());
        }
        Found::File(file) => file,
    };
    let meta = file.metadata().context("inspect", &path)?;
    if meta.len() != entry.size {
        return damaged(format!(
            "size {} bytes, expected {} bytes",
            meta.len(),
            entry.size
        ));
    }
    if verify {
        // The limit catches a file that grows while it is read.
        let found = match hashing::copy_and_hash(&mut file, None, Some(entry.size)) {
            Ok(found) => found,
            Err(CopyError::TooLong { .. }) => {
                return damaged(format!(
                    "it grew beyond {} bytes while being checked",
                    entry.size
                ));
            }
            Err(e) => {
                return Err(StoreError::Read {
                    path,
                    source: copy_error_io(e),
                });
            }
        };
        if found.digest != entry.digest {
            return damaged(format!(
                "SHA-256 {}, expected {}",
                hex::encode(found.digest),
                entry.digest_hex()
            ));
        }
    }
    Ok((Stored::Intact, Some((file, meta))))
}

/// Sets an intact store file that someone made writable back to 0444.
/// Through the open file, so nothing but that file changes, and only when
/// it has no other name: a hard link could be someone else's file.
fn make_read_only(
    file: &File,
    meta: &std::fs::Metadata,
    path: &Path,
    warn: &dyn Fn(&str),
) -> Result<(), IoError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o222 == 0 {
        return Ok(());
    }
    if meta.nlink() > 1 {
        warn(&format!(
            "{} was writable (mode {mode:04o}) and has other hard links; leaving its mode as it is",
            path.display()
        ));
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(crate::fs::READ_ONLY))
        .context("set permissions of", path)?;
    warn(&format!(
        "{} was writable (mode {mode:04o}); set it back to read-only (0444)",
        path.display()
    ));
    Ok(())
}

fn copy_error_io(e: CopyError) -> std::io::Error {
    match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
        CopyError::TooLong { limit } => std::io::Error::other(format!("more than {limit} bytes")),
    }
}

/// The regular files and symlinks in `store`, sorted by name.
/// Subdirectories, special files and names that are not UTF-8 are left out:
/// tako never writes such things, and never removes them.
pub fn list(store: &Dir) -> Result<Vec<StoreFile>, IoError> {
    let mut files: Vec<StoreFile> = store
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
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Removes from the destination's store what [`retention::plan`]
/// says, given its verified `manifest`, calling `on_removal` after each
/// removal (with `dry_run`, nothing is removed). The caller holds the
/// destination lock.
pub fn collect(
    dest: &Destination,
    manifest: &Manifest,
    keep: usize,
    dry_run: bool,
    on_removal: &mut dyn FnMut(&Removal),
) -> Result<(), IoError> {
    // A `store` that is a symlink is refused here, not followed.
    let Some(store) = dest.store()? else {
        return Ok(());
    };
    let files = list(&store)?;
    let latest = dest.latest_name();
    let plan = retention::plan_oldest_first(manifest.entries(), &files, latest.as_deref(), keep);
    for removal in &plan {
        if !dry_run {
            store.remove_file(&removal.name)?;
        }
        on_removal(removal);
    }
    if !dry_run {
        if !plan.is_empty() {
            store.sync()?;
        }
        collect_indexes(dest, &store)?;
    }
    Ok(())
}

/// Removes the cached chunk indexes (`DEST/index/<hex>`) of images no
/// longer in the store. They are small and derived, so they are not reported; a
/// subdirectory or special file there is left alone, as in `store/`.
fn collect_indexes(dest: &Destination, store: &Dir) -> Result<(), IoError> {
    let Some(cache) = dest.index_cache()? else {
        return Ok(());
    };
    let images: HashSet<String> = store.names()?.into_iter().collect();
    let mut removed = false;
    for entry in cache.entries()? {
        if !matches!(entry.kind, ListedKind::File | ListedKind::Symlink) {
            continue;
        }
        if let Ok(name) = entry.name.into_string()
            && !images.contains(&name)
        {
            removed |= cache.remove(&name)?;
        }
    }
    if removed {
        cache.sync()?;
    }
    Ok(())
}
