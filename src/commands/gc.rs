//! `tako gc`: remove old images from each config's store, under the destination lock.
//!
//! Which files go is decided by `retention::plan`, and `destination::store`
//! (for a `Kind=container` config, `destination::trees`: trees and their blobs)
//! carries it out; this module reports it. `tako fetch` runs the same
//! collection after it moved `latest` when a config sets `Keep=`.

use std::path::{Path, PathBuf};

use crate::cli::GcArgs;
use crate::destination::Destination;
use crate::destination::{store, trees};
use crate::format::config::Kind;
use crate::format::retention::{self, Removal};
use crate::fs::IoError;
use crate::fs::config;
use crate::ui::json::{GcRecord, RemovedRecord};
use crate::ui::output;
use crate::update::fetch::{self, FetchError};
use crate::{Error, Exit};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Trees(#[from] trees::CollectError),
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
    let dest = Destination::open(&config.destination)?;
    // A fetch in progress could be about to point `latest` at an image
    // that looks old to us; its lock makes us wait for it.
    let _lock = dest.lock()?;
    let manifest_path = dest.manifest_path();
    let Some(local) = fetch::read_local_manifest(&dest, &config)? else {
        // With no manifest every image would count as unlisted: refuse,
        // unless there is nothing to remove anyway.
        let files = match (dest.store()?, config.kind) {
            (Some(s), Kind::File) => Some(store::list(&s)?),
            (Some(s), Kind::Container) => Some(trees::list(&s)?),
            (None, _) => None,
        };
        return match files {
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
    match config.kind {
        Kind::File => store::collect(&dest, manifest, keep, args.dry_run, on_removal)?,
        Kind::Container => trees::collect(&dest, manifest, keep, args.dry_run, on_removal)?,
    }
    Ok(())
}
