//! `tako gc`: remove old images from each config's store, under the destination lock.
//!
//! Which files go is decided by `retention::plan`; this module lists the
//! store, carries the plan out and reports it. `tako fetch` runs the same
//! collection after it moved `latest` when a config sets `Keep=`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cli::GcArgs;
use crate::commands::fetch::{self, FetchError};
use crate::format::manifest::Manifest;
use crate::format::retention::{self, Reason, Removal, StoreFile};
use crate::fs::config;
use crate::fs::{Dir, IoError, ListedKind};
use crate::ui::json::{GcRecord, RemovedRecord};
use crate::ui::output;
use crate::update::assembly;
use crate::{Error, Exit};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "there is no local manifest {}, so nothing tells which images in store/ are old; run tako fetch first",
        path.display()
    )]
    NoManifest { path: PathBuf },
    #[error(
        "local manifest {} is not signed by any configured key, so it cannot tell which images are old; run tako fetch first",
        path.display()
    )]
    Unverified { path: PathBuf },
}

/// Runs `tako gc` over every config; one failure does not stop the rest.
pub fn run(args: &GcArgs) -> Result<Exit, Error> {
    let mut failed = 0;
    for path in &args.configs {
        let name = path.display().to_string();
        let mut removed = Vec::new();
        let mut keep = None;
        let result = collect_config(path, args, &mut keep, &mut |r| {
            if !args.json {
                let verb = if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                output::stdout_line(&format!("{name}: {verb} {}", r.brief()));
            }
            removed.push(RemovedRecord::from(r));
        });
        let freed = removed.iter().map(|r| r.size).sum();
        let error = match result {
            Ok(()) => {
                if !args.json {
                    let verb = if args.dry_run { "would free" } else { "freed" };
                    output::stdout_line(&format!("{name}: {verb} {}", output::size_text(freed)));
                }
                None
            }
            Err(e) => {
                failed += 1;
                let text = match e {
                    GcError::Fetch(e) => fetch::config_error_text(path, &e),
                    e => format!("{name}: {e}"),
                };
                output::error_line(&text);
                Some(text)
            }
        };
        if args.json {
            output::json_line(&GcRecord {
                config: name,
                outcome: if error.is_some() {
                    "failed"
                } else {
                    "collected"
                },
                dry_run: args.dry_run,
                keep,
                removed,
                freed,
                error,
            });
        }
    }
    match failed {
        0 => Ok(Exit::Success),
        failed => Err(Error::ConfigsFailed {
            failed,
            total: args.configs.len(),
        }),
    }
}

/// Collects one config's store; `keep` is set once it is known.
fn collect_config(
    config_path: &Path,
    args: &GcArgs,
    keep_used: &mut Option<usize>,
    on_removal: &mut dyn FnMut(&Removal),
) -> Result<(), GcError> {
    let config = config::load(config_path).map_err(FetchError::from)?;
    let keep = args
        .keep
        .and_then(|k| usize::try_from(k).ok())
        .or(config.keep)
        .unwrap_or(retention::DEFAULT_KEEP);
    *keep_used = Some(keep);
    let dir = Dir::open(&config.destination)?;
    // A fetch in progress could be about to point `latest` at an image
    // that looks old to us; its lock makes us wait for it.
    let _lock = dir.lock()?;
    let manifest_path = dir.path().join("manifest");
    let Some(local) = fetch::read_local_manifest(&dir, &config)? else {
        // With no manifest every image would count as unlisted: refuse,
        // unless there is nothing to remove anyway.
        let store = dir.subdir("store")?;
        return match store.map(|store| list_store(&store)).transpose()? {
            Some(files) if !files.is_empty() => Err(GcError::NoManifest {
                path: manifest_path,
            }),
            _ => Ok(()),
        };
    };
    // A copy signed by a key no longer trusted only guards against
    // rollbacks (see keyring); it does not decide what is deleted.
    let Some(manifest) = local.verified() else {
        return Err(GcError::Unverified {
            path: manifest_path,
        });
    };
    collect(&dir, manifest, keep, args.dry_run, on_removal)?;
    Ok(())
}

/// Removes from the destination `dir`'s store what [`retention::plan`]
/// says, given its verified `manifest`, calling `on_removal` after each
/// removal (with `dry_run`, nothing is removed). The caller holds the
/// destination lock.
pub fn collect(
    dir: &Dir,
    manifest: &Manifest,
    keep: usize,
    dry_run: bool,
    on_removal: &mut dyn FnMut(&Removal),
) -> Result<(), IoError> {
    // A `store` that is a symlink is refused here, not followed.
    let Some(store) = dir.subdir("store")? else {
        return Ok(());
    };
    let files = list_store(&store)?;
    let latest = latest_name(dir);
    let mut plan = retention::plan(manifest.entries(), &files, latest.as_deref(), keep);
    // Reported oldest image first, then unlisted files, then temporaries.
    // Entries are in ascending version order, so the position of the last
    // one naming an image ranks it by its highest version.
    plan.sort_by_key(|r| match r.reason {
        Reason::Old(_) => (
            0,
            manifest
                .entries()
                .iter()
                .rposition(|e| e.digest_hex() == r.name),
        ),
        Reason::Unlisted => (1, None),
        Reason::Temporary => (2, None),
    });
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
        collect_indexes(dir, &store)?;
    }
    Ok(())
}

/// Removes the cached chunk indexes (`DEST/index/<hex>`, see `delta`) of images no
/// longer in the store. They are small and derived, so they are not reported; a
/// subdirectory or special file there is left alone, as in `store/`.
fn collect_indexes(dir: &Dir, store: &Dir) -> Result<(), IoError> {
    let Some(cache) = dir.subdir(assembly::LOCAL_INDEX)? else {
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

/// The file in `store/` that `latest` in the destination `dir` points at,
/// if it points into `store/`.
pub fn latest_name(dir: &Dir) -> Option<String> {
    let target = dir.read_link("latest")?;
    let name = target.strip_prefix("store").ok()?;
    let mut parts = name.components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(name)), None) => name.to_str().map(str::to_string),
        _ => None,
    }
}

/// The regular files and symlinks in `store`, sorted by name.
/// Subdirectories, special files and names that are not UTF-8 are left out:
/// tako never writes such things, and never removes them.
pub fn list_store(store: &Dir) -> Result<Vec<StoreFile>, IoError> {
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
