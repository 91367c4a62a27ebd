//! `tako fetch`: bring each config's destination up to date with its origin.
//!
//! For one config: verify the local manifest, download and verify the
//! remote one, refuse a rollback, install the highest matching image into
//! the content-addressed store, move `latest`, and restart units. Every
//! file is installed atomically (see `fsutil`), so a crash at any point
//! leaves a valid destination.

use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::FetchArgs;
use crate::commands::gc;
use crate::destination::partial;
use crate::destination::poll;
use crate::destination::restart_pending::{self, PendingError};
use crate::format::config::{Config, ConfigError};
pub use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::format::manifest::{Entry, Manifest, ManifestError};
use crate::format::retention;
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::fs::config;
use crate::fs::{Context, Dir, Found, IoError};
use crate::net::{Transport, TransportError};
use crate::origin::{self, Origin, Validators};
use crate::stream::hashing::{self, CopyError};
use crate::systemd::{self, SystemdError};
use crate::ui::json;
use crate::ui::output;
use crate::ui::progress;
use crate::update::assembly;
use crate::update::delta::{Transfer, try_delta};
use crate::update::image::{self, Downloaded, ImageError, Say};
use crate::update::keyring::{KeyringError, LocalManifest, RemoteManifest};
use crate::update::retry::RetryPolicy;
use crate::update::select::{self, ManifestQuery, SelectError};
use crate::{Error, Exit};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("local manifest {} is invalid: {source}", path.display())]
    LocalManifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "every version matching {pattern} was withdrawn by the publisher (410 Gone): {versions}"
    )]
    AllWithdrawn { pattern: String, versions: String },
    #[error(
        "no version matches {pattern} ({}), and --init needs an image",
        available_text(.available)
    )]
    NoImage { pattern: String, available: String },
    #[error(
        "installed {version}, but {source}; the next run retries the restart (recorded in {})",
        pending.display()
    )]
    Restart {
        version: String,
        source: Box<SystemdError>,
        pending: PathBuf,
    },
    #[error(
        "{outcome}, but the restart pending from an earlier run failed again: {source}; the next run retries it (recorded in {})",
        pending.display()
    )]
    RestartRetry {
        outcome: String,
        source: Box<SystemdError>,
        pending: PathBuf,
    },
    #[error(
        "{outcome}, but the restart of {units} is pending from an earlier run and --no-restart was given (recorded in {})",
        pending.display()
    )]
    RestartNotRetried {
        outcome: String,
        units: String,
        pending: PathBuf,
    },
    #[error(transparent)]
    Pending(#[from] PendingError),
}

/// The parenthesised part of a "no version matches" line.
pub(crate) fn available_text(available: &str) -> String {
    if available.is_empty() {
        "no versions are published".to_string()
    } else {
        format!("available: {available}")
    }
}

/// A published image as reported: the version chosen, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Fit to print (see `text::untrusted`).
    pub version: String,
    pub digest: String,
    pub size: u64,
}

impl Image {
    pub fn of(entry: &Entry) -> Image {
        Image {
            version: untrusted(entry.version.as_str()),
            digest: entry.digest_hex(),
            size: entry.size,
        }
    }
}

/// What happened to one config, as printed on standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Updated {
        from: Option<String>,
        to: Image,
        restarted: Vec<String>,
        /// What `Keep=` collected from the store afterwards.
        removed: Vec<retention::Removal>,
        /// What the download cost, if it was a delta (see `origin::delta`).
        transfer: Option<Transfer>,
    },
    UpToDate(Image),
    /// `--init` found a valid image and did not look for updates.
    Present(Image),
    NoMatch {
        pattern: String,
        /// Every published version, lowest first, fit to print.
        available: Vec<String>,
    },
    /// The units an earlier run failed to restart were restarted now, after
    /// the update step ended with `then`.
    RestartedPending {
        then: Box<Outcome>,
        units: Vec<String>,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Updated {
                from,
                to,
                restarted,
                removed,
                transfer,
            } => {
                write!(
                    f,
                    "updated {} -> {}",
                    from.as_deref().unwrap_or("(none)"),
                    to.version
                )?;
                if let Some(transfer) = transfer {
                    write!(
                        f,
                        " (downloaded {} of {})",
                        output::binary_size(transfer.downloaded),
                        output::binary_size(transfer.image)
                    )?;
                }
                if !restarted.is_empty() {
                    write!(f, "; restarted {}", restarted.join(", "))?;
                }
                if !removed.is_empty() {
                    let removed: Vec<String> =
                        removed.iter().map(retention::Removal::brief).collect();
                    write!(f, "; removed {}", removed.join(", "))?;
                }
                Ok(())
            }
            Outcome::UpToDate(image) => write!(f, "up to date ({})", image.version),
            Outcome::Present(image) => write!(f, "present ({})", image.version),
            Outcome::NoMatch { pattern, available } => {
                write!(
                    f,
                    "no version matches {pattern} ({})",
                    available_text(&available.join(", "))
                )
            }
            Outcome::RestartedPending { then, units } => write!(
                f,
                "{then}; restarted {} (pending from an earlier run)",
                units.join(", ")
            ),
        }
    }
}

/// The options that apply to every config of one run.
pub struct Options {
    pub init: bool,
    pub verify: bool,
    pub restart: bool,
    pub transport: TransportConfig,
    /// The most one config's fetch may take (`--max-time`).
    pub max_time: Option<Duration>,
    /// Whether to draw a progress bar for each download (a person watches).
    pub progress: bool,
    /// How transient failures are retried (`--retries`).
    pub retry: RetryPolicy,
}

/// Runs `tako fetch` over every config; one failure does not stop the rest.
pub fn run(args: &FetchArgs) -> Result<Exit, Error> {
    let options = Options {
        init: args.init,
        verify: !args.no_verify,
        restart: !args.no_restart,
        transport: TransportConfig {
            idle_timeout: Duration::from_secs(args.idle_timeout),
            speed_limit: args.speed_limit,
            speed_time: Duration::from_secs(args.speed_time),
            limit_rate: args.limit_rate,
            ..TransportConfig::default()
        },
        max_time: args.max_time.map(Duration::from_secs),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        retry: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_delay_ms),
        },
    };
    let transport = Transport::new(options.transport);
    let mut failed = 0;
    for path in &args.configs {
        let name = path.display();
        let result = fetch_one(path, &options, &transport);
        match &result {
            Ok(outcome) if !args.quiet && !args.json => {
                output::stdout_line(&format!("{name}: {outcome}"));
            }
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                output::error_line(&config_error_text(path, e));
            }
        }
        if args.json {
            output::json_line(&json::FetchRecord::new(path, &result));
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

/// An error of one config as printed: a config error names its file and
/// line itself, any other is prefixed with the config's name.
pub fn config_error_text(config_path: &Path, e: &FetchError) -> String {
    match e {
        FetchError::Config(e) => e.to_string(),
        e => format!("{}: {e}", config_path.display()),
    }
}

/// Progress for a person watching; a timer's log only gets results and errors.
fn progress(name: &Path, options: &Options, message: &str) {
    if options.progress {
        output::stderr_line(&format!("tako: {}: {message}", name.display()));
    }
}

/// Something worth a line in the log even when nobody watches.
fn warn(name: &Path, message: &str) {
    output::warning_line(&format!("{}: {message}", name.display()));
}

pub fn fetch_one(
    config_path: &Path,
    options: &Options,
    transport: &Transport,
) -> Result<Outcome, FetchError> {
    // The clock for --max-time starts before anything else of this config.
    let transport = transport.with_max_time(options.max_time);
    let config = config::load(config_path)?;
    // Per origin: credentials (URL or netrc), HeaderFile=, CACertificate=,
    // ClientCertificate=.
    let origin = origin::for_config(&config, &transport)?;
    let dest = config.destination.as_path();
    let dir = Dir::open(dest)?;

    // Every file is replaced atomically, so the offline check needs no
    // lock: a run stuck on a slow download must not hold up a service's
    // ExecStartPre=.
    if options.init
        && let Some(local) = read_local_manifest(&dir, &config)?
        && let Some(verified) = local.verified()
        && let Some(entry) = installed_entry(config_path, &dir, verified, &config, options.verify)?
    {
        return Ok(Outcome::Present(Image::of(entry)));
    }

    let lock = dir.lock()?;
    // Temporaries of runs that crashed; no live run owns them under the lock.
    if let Some(store) = dir.subdir("store")? {
        store.remove_temporaries()?;
    }
    // The cache of chunk indexes only saves work: something planted at
    // DEST/index must not stop an update (a delta then says why it is not
    // tried, and the image is downloaded whole).
    if let Ok(Some(cache)) = dir.subdir(assembly::LOCAL_INDEX)
        && let Err(e) = cache.remove_temporaries()
    {
        warn(config_path, &e.to_string());
    }
    let updated = update(config_path, &dir, &config, options, origin.as_ref());
    if options.init {
        // The unit running `--init` is starting anyway, and its start must
        // not fail because another unit's restart did: a pending restart is
        // neither retried nor reported here.
        return updated;
    }
    match updated {
        Ok(outcome) => restart(config_path, &config, options, lock, outcome),
        Err(e) => {
            if let Ok(Some(units)) = restart_pending::read(dest)
                && !units.is_empty()
            {
                warn(
                    config_path,
                    &format!(
                        "the restart of {} is still pending from an earlier run; the next run that gets as far as restarting retries it",
                        units.join(", ")
                    ),
                );
            }
            Err(e)
        }
    }
}

/// Everything after the `--init` shortcut up to and including moving
/// `latest`, under the destination lock held by the caller.
fn update(
    config_path: &Path,
    dir: &Dir,
    config: &Config,
    options: &Options,
    origin: &dyn Origin,
) -> Result<Outcome, FetchError> {
    let local = local_manifest(config_path, dir, config)?;

    // Validators are only sent for a copy that verifies: a 304 must leave a usable one.
    let known = local
        .as_ref()
        .filter(|l| l.verified().is_some())
        .and_then(|l| poll::read(dir, &l.bytes));
    let RemoteManifest {
        bytes: remote_bytes,
        manifest: remote,
        validators,
        ..
    } = remote_manifest(
        config_path,
        config,
        origin,
        local.as_ref(),
        known.as_ref(),
        options.retry,
    )?;
    if local.as_ref().is_none_or(|l| l.bytes != remote_bytes) {
        // Validators must never outlive the manifest they describe.
        poll::forget(dir)?;
        dir.write_file("manifest", &remote_bytes)?;
    }
    poll::update(dir, known.as_ref(), validators.as_ref(), &remote_bytes)?;

    let available = || versions(remote.entries());
    let candidates: Vec<&Entry> = remote.matching(&config.version).collect();
    if candidates.is_empty() {
        let pattern = untrusted(config.version.as_str());
        return if options.init {
            Err(FetchError::NoImage {
                pattern,
                available: available().join(", "),
            })
        } else {
            Ok(Outcome::NoMatch {
                pattern,
                available: available(),
            })
        };
    }

    let store = dir.ensure_subdir("store")?;
    // Bytes kept for an image no longer wanted would only take up space.
    partial::remove_unwanted(&store, |hex| {
        candidates.iter().any(|e| e.digest_hex() == hex)
    })?;
    let mut chosen = None;
    for entry in &candidates {
        match install(config_path, dir, &store, entry, options, origin)? {
            Installed::Withdrawn => {}
            Installed::Present | Installed::Downloaded => {
                chosen = Some((*entry, None));
                break;
            }
            Installed::Delta(transfer) => {
                chosen = Some((*entry, Some(transfer)));
                break;
            }
        }
    }
    let Some((entry, transfer)) = chosen else {
        return Err(FetchError::AllWithdrawn {
            pattern: untrusted(config.version.as_str()),
            versions: version_list(candidates.iter().copied()),
        });
    };

    let target = Path::new("store").join(entry.digest_hex());
    let previous = dir.read_link("latest");
    if previous.as_deref() == Some(target.as_path()) {
        return Ok(Outcome::UpToDate(Image::of(entry)));
    }
    dir.replace_symlink("latest", &target)?;
    let from = previous.map(|p| describe_target(&p, &remote));
    // `Keep=`: the store is collected once `latest` is in place, still
    // under the lock. The update stands whatever happens here.
    let mut removed = Vec::new();
    if let Some(keep) = config.keep {
        let collected = gc::collect(dir, &remote, keep, false, &mut |r| removed.push(r.clone()));
        if let Err(e) = collected {
            warn(config_path, &format!("Keep={keep}: {e}"));
        }
    }
    Ok(Outcome::Updated {
        from,
        to: Image::of(entry),
        restarted: Vec::new(),
        removed,
        transfer,
    })
}

/// The local manifest of `config`'s destination, if there is one, with the
/// one warning of a host whose copy is signed by a key no longer configured
/// (its entries then only serve the rollback check; see docs/key-rotation.md).
pub fn local_manifest(
    config_path: &Path,
    dir: &Dir,
    config: &Config,
) -> Result<Option<LocalManifest>, FetchError> {
    let local = read_local_manifest(dir, config)?;
    if local.as_ref().is_some_and(|l| l.verified().is_none()) {
        warn(
            config_path,
            &untrusted_local_warning(&dir.path().join("manifest")),
        );
    }
    Ok(local)
}

/// Obtains the remote manifest and accepts it as fetch does: at most
/// [`MAX_MANIFEST_SIZE`] bytes, signed by one of the configured keys (with the
/// `manifest.<keyid>` fallback), and no rollback against `local`, from the first
/// of the config's origins that serves one (see `origin::select`); `known` makes
/// the poll conditional. Changes nothing on disk; `tako check` relies on that,
/// and a caller that keeps the manifest also keeps its validators (see `poll`).
pub fn remote_manifest(
    config_path: &Path,
    config: &Config,
    origin: &dyn Origin,
    local: Option<&LocalManifest>,
    known: Option<&Validators>,
    retry: RetryPolicy,
) -> Result<RemoteManifest, FetchError> {
    let query = ManifestQuery {
        keys: &config.public_keys,
        max: MAX_MANIFEST_SIZE,
        local,
        known,
        retry,
        warn: &|message| warn(config_path, message),
    };
    Ok(select::remote_manifest(origin, &query)?)
}

/// Restarts the config's units after an update, and retries the units an
/// earlier run failed to restart (see `restart_pending`). Takes the
/// destination lock, because it lets go of it while units restart.
fn restart(
    config_path: &Path,
    config: &Config,
    options: &Options,
    lock: crate::fs::DirLock,
    outcome: Outcome,
) -> Result<Outcome, FetchError> {
    let dest = config.destination.as_path();
    let recorded = restart_pending::read(dest)?;
    // Units taken out of `Restart=` since are no longer restarted.
    let pending: Vec<String> = match &recorded {
        Some(units) => config
            .restart
            .iter()
            .filter(|u| units.contains(u))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let moved = matches!(outcome, Outcome::Updated { .. });
    let units = match (options.restart, moved) {
        (true, true) => config.restart.clone(),
        (true, false) => pending.clone(),
        (false, _) if pending.is_empty() => Vec::new(),
        (false, _) => {
            return Err(FetchError::RestartNotRetried {
                outcome: outcome.to_string(),
                units: pending.join(", "),
                pending: restart_pending::path(dest),
            });
        }
    };
    if units.is_empty() {
        if recorded.is_some() {
            restart_pending::remove(dest)?;
        }
        return Ok(outcome);
    }
    // Recorded before the first restart, so that a run killed while it
    // waits for systemd leaves the restart pending rather than forgotten.
    if recorded.as_ref() != Some(&units) {
        restart_pending::write(dest, &units)?;
    }
    // A restarted unit may run `tako fetch --init` on this destination in
    // its ExecStartPre=; holding the lock would make it wait for us.
    drop(lock);
    let result = systemd::restart_units_until_failure(&units, systemd::DEFAULT_JOB_TIMEOUT);
    // The record is changed under the lock again, as every file here is.
    let _lock = crate::fs::lock_dir(dest)?;
    match result {
        Ok(restarted) => {
            restart_pending::remove(dest)?;
            Ok(match outcome {
                Outcome::Updated {
                    from,
                    to,
                    removed,
                    transfer,
                    ..
                } => Outcome::Updated {
                    from,
                    to,
                    restarted,
                    removed,
                    transfer,
                },
                then => Outcome::RestartedPending {
                    then: Box::new(then),
                    units: restarted,
                },
            })
        }
        Err(partial) => {
            let left = &units[partial.restarted.len().min(units.len())..];
            if let Err(e) = restart_pending::write(dest, left) {
                // The restart's failure is the news; this one is said on the side.
                warn(
                    config_path,
                    &format!("cannot record the pending restart: {e}"),
                );
            }
            let pending = restart_pending::path(dest);
            Err(match outcome {
                Outcome::Updated { to, .. } => FetchError::Restart {
                    version: to.version,
                    source: Box::new(partial.error),
                    pending,
                },
                then => FetchError::RestartRetry {
                    outcome: then.to_string(),
                    source: Box::new(partial.error),
                    pending,
                },
            })
        }
    }
}

/// Versions for a message: "1.0, 1.1".
fn version_list<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    versions(entries).join(", ")
}

/// The versions of `entries`, each fit to print.
pub(crate) fn versions<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<String> {
    entries
        .into_iter()
        .map(|e| untrusted(e.version.as_str()))
        .collect()
}

/// The local manifest, if there is one. It is read as a remote one is, at
/// most `MAX_MANIFEST_SIZE` bytes, and only if it is a regular file. It must
/// be well-formed; see [`LocalManifest::check`] for one signed by a key no
/// longer configured.
pub(crate) fn read_local_manifest(
    dir: &Dir,
    config: &Config,
) -> Result<Option<LocalManifest>, FetchError> {
    let Some(bytes) = dir.read_file("manifest", MAX_MANIFEST_SIZE, "read local manifest")? else {
        return Ok(None);
    };
    let manifest = LocalManifest::check(bytes, &config.public_keys).map_err(|source| {
        FetchError::LocalManifest {
            path: dir.path().join("manifest"),
            source,
        }
    })?;
    Ok(Some(manifest))
}

/// The one warning of a host whose copy of the manifest is signed by a key
/// its config no longer lists (see docs/key-rotation.md).
fn untrusted_local_warning(path: &Path) -> String {
    format!(
        "local manifest {} is not signed by any configured key (was its key removed from the config?); its entries still guard against rollbacks, and the origin's manifest replaces it once one verifies",
        path.display()
    )
}

/// The entry `latest` points at, if it is a complete, matching image that
/// the manifest lists: what `--init` needs to skip the network.
fn installed_entry<'m>(
    name: &Path,
    dir: &Dir,
    manifest: &'m Manifest,
    config: &Config,
    verify: bool,
) -> Result<Option<&'m Entry>, FetchError> {
    let Some(target) = dir.read_link("latest") else {
        return Ok(None);
    };
    let Some(hex) = target
        .strip_prefix("store")
        .ok()
        .and_then(|name| name.to_str())
    else {
        return Ok(None);
    };
    let mut digest = [0u8; 32];
    if hex::decode_to_slice(hex, &mut digest).is_err() {
        return Ok(None);
    }
    // Several versions may share one image; any that matches will do.
    let Some(entry) = manifest
        .with_digest(digest)
        .find(|e| config.version.matches(&e.version))
    else {
        return Ok(None);
    };
    let Some(store) = dir.subdir("store")? else {
        return Ok(None);
    };
    let state = check_stored(name, &store, entry, verify)?;
    Ok((state == Stored::Intact).then_some(entry))
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
/// An intact file someone made writable is set back to read-only.
fn check_stored(
    name: &Path,
    store: &Dir,
    entry: &Entry,
    verify: bool,
) -> Result<Stored, FetchError> {
    let (state, intact) = examine_stored(store, entry, verify)?;
    if let Some((file, meta)) = intact {
        make_read_only(name, &file, &meta, &store.path().join(entry.digest_hex()))?;
    }
    Ok(state)
}

/// As [`check_stored`], but changes nothing, not even a wrong mode: what
/// `tako status` reports.
pub fn inspect_stored(store: &Dir, entry: &Entry, verify: bool) -> Result<Stored, FetchError> {
    Ok(examine_stored(store, entry, verify)?.0)
}

/// The state of the store file of `entry`, and the open file if it is intact.
fn examine_stored(
    store: &Dir,
    entry: &Entry,
    verify: bool,
) -> Result<(Stored, Option<(File, std::fs::Metadata)>), FetchError> {
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
                return Err(FetchError::Read {
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
    name: &Path,
    file: &std::fs::File,
    meta: &std::fs::Metadata,
    path: &Path,
) -> Result<(), IoError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o222 == 0 {
        return Ok(());
    }
    if meta.nlink() > 1 {
        warn(
            name,
            &format!(
                "{} was writable (mode {mode:04o}) and has other hard links; leaving its mode as it is",
                path.display()
            ),
        );
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(crate::fs::READ_ONLY))
        .context("set permissions of", path)?;
    warn(
        name,
        &format!(
            "{} was writable (mode {mode:04o}); set it back to read-only (0444)",
            path.display()
        ),
    );
    Ok(())
}

fn copy_error_io(e: CopyError) -> std::io::Error {
    match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
        CopyError::TooLong { limit } => std::io::Error::other(format!("more than {limit} bytes")),
    }
}

/// How [`install`] made an image present.
enum Installed {
    /// It was there and intact.
    Present,
    /// Downloaded whole.
    Downloaded,
    /// Assembled from local chunks and ranges.
    Delta(Transfer),
    /// The publisher withdrew it (410 Gone).
    Withdrawn,
}

/// Makes sure `store/<hex>` of `entry` is present and intact, downloading
/// it if needed: as a delta when the store and the origin allow, else whole.
fn install(
    name: &Path,
    dest: &Dir,
    store: &Dir,
    entry: &Entry,
    options: &Options,
    origin: &dyn Origin,
) -> Result<Installed, FetchError> {
    let hex = entry.digest_hex();
    let path = store.path().join(&hex);
    match check_stored(name, store, entry, options.verify)? {
        Stored::Intact => return Ok(Installed::Present),
        // Kept until a verified copy is renamed over it: if the download
        // fails, `latest` still points at a file.
        Stored::Damaged(why) => warn(
            name,
            &format!(
                "{} is damaged ({why}); downloading it again",
                path.display()
            ),
        ),
        Stored::Missing => {}
    }

    let bar = || progress::download_bar(name, entry.version.as_str(), entry.size);
    let say = Say {
        warn: &|message| warn(name, message),
        progress: &|message| progress(name, options, message),
        bar: options.progress.then_some(&bar as &dyn Fn() -> _),
    };
    let latest = gc::latest_name(dest);
    if let Some(transfer) = try_delta(origin, dest, store, entry, latest.as_deref(), &say)? {
        return Ok(Installed::Delta(transfer));
    }
    match image::download(origin, store, entry, options.retry, &say)? {
        Downloaded::Installed => Ok(Installed::Downloaded),
        Downloaded::Withdrawn { url } => {
            warn(
                name,
                &format!(
                    "version {} was withdrawn by the publisher (410 Gone from {url}); trying the next lower match",
                    untrusted(entry.version.as_str())
                ),
            );
            Ok(Installed::Withdrawn)
        }
    }
}

/// How to name what `latest` pointed at before: its version if the
/// manifest knows the file, else the link target itself.
pub(crate) fn describe_target(target: &Path, manifest: &Manifest) -> String {
    let version = target
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|hex| {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex, &mut digest).ok()?;
            manifest.with_digest(digest).next()
        })
        .map(|e| untrusted(e.version.as_str()));
    version.unwrap_or_else(|| untrusted(&target.display().to_string()))
}
