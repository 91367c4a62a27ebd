//! The fetch engine: bring one config's destination up to date with its origin.
//!
//! For one config: verify the local manifest, download and verify the
//! remote one, refuse a rollback, install the highest matching image into
//! the content-addressed store and move `latest`. Every file is installed
//! atomically (see `fs`), so a crash at any point leaves a valid destination.
//! The engine never prints: it tells its caller through [`Report`], and leaves
//! restarting units to the caller's `restart` step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::destination::seen::Seen;
use crate::destination::store::{self, StoreError, Stored};
use crate::destination::withdrawn::Withdrawn;
use crate::destination::{self, Destination, partial, poll, restart_pending, trees};
use crate::format::config::{Config, ConfigError, Kind};
use crate::format::manifest::{Entry, Manifest, ManifestError};
use crate::format::retention;
use crate::format::size;
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::fs::config;
use crate::fs::{DirLock, IoError};
use crate::origin::{self, Origin, Transport, Validators};
use crate::update::delta::{Local, Transfer, try_delta};
use crate::update::image::{self, Downloaded, ImageError, Say};
use crate::update::keyring::{KeyringError, LocalManifest, RemoteManifest};
use crate::update::retry::RetryPolicy;
use crate::update::select::{self, Chosen, ManifestQuery, SelectError};

pub use crate::format::manifest::MAX_MANIFEST_SIZE;

/// How the engine tells what it does, for one config; the command implements it with the
/// output and progress bars of `ui/`.
pub trait Report {
    /// Something worth a line in the log even when nobody watches.
    fn warn(&self, message: &str);
    /// Progress for a person watching; a timer's log only gets results and errors.
    fn progress(&self, message: &str);
    /// A progress bar for downloading `total` bytes of `version`, of which `done` are here
    /// already (they count for the bar, not for its rate); asked for only when
    /// [`Options::progress`] is set.
    fn download_bar(&self, version: &str, done: u64, total: u64) -> indicatif::ProgressBar;
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Origin(#[from] crate::origin::OriginError),
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "every version matching {pattern} was withdrawn by the publisher (410 Gone): {versions}"
    )]
    AllWithdrawn { pattern: String, versions: String },
    /// `--init` found no image to start from and none to install.
    #[error(
        "no version matches {pattern} ({}){}, and --init needs an image that does: set Version= to a pattern a published version matches, or publish a version that matches {pattern}",
        available_text(.available),
        installed_text(.installed)
    )]
    NoImage {
        pattern: String,
        available: String,
        /// The version of the image installed at `latest`, which the pattern no longer
        /// matches, if one is installed; fit to print.
        installed: Option<String>,
    },
    #[error(
        "installed {version}, but the restart of {units} failed: {source}; the next run retries the restart (recorded in {})",
        pending.display()
    )]
    Restart {
        version: String,
        /// The units not restarted, the failed one first.
        units: String,
        /// The restart's failure, as the command that restarts units reports it.
        source: Box<dyn std::error::Error>,
        pending: PathBuf,
    },
    #[error(
        "{outcome}, but the restart of {units} pending from an earlier run failed again: {source}; the next run retries it (recorded in {})",
        pending.display()
    )]
    RestartRetry {
        outcome: String,
        /// The units not restarted, the failed one first.
        units: String,
        /// The restart's failure, as the command that restarts units reports it.
        source: Box<dyn std::error::Error>,
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
    Pending(#[from] restart_pending::PendingError),
    /// Installing a `Kind=container` image failed (see [`Trees`]).
    #[error(transparent)]
    Container(Box<dyn std::error::Error + Send + Sync>),
}

/// How a `Kind=container` image is made present as `store/<hex>/`: given by the command,
/// since unpacking images is `container/`'s, a floor above the engine. The engine chooses
/// the version, keeps the manifest and moves `latest`, exactly as for a file.
pub trait Trees {
    /// Whether `store/<hex>` of `entry` holds a complete tree built from it.
    fn intact(&self, store: &crate::fs::Dir, entry: &Entry) -> Result<bool, FetchError>;
    /// Downloads the image `entry` pins (what the destination lacks of it) and builds its
    /// tree as `store/<hex>/`, under the destination lock.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &self,
        dest: &Destination,
        store: &crate::fs::Dir,
        entry: &Entry,
        config: &Config,
        origin: &dyn Origin,
        retry: RetryPolicy,
        say: &Say<'_>,
    ) -> Result<TreeInstalled, FetchError>;
}

/// What building a container image's tree cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeTransfer {
    /// Bytes of blobs that came over the network (the signed manifest or index, platform
    /// manifests, the config, layers).
    pub downloaded: u64,
    /// Layers that were in `blobs/sha256/` already, and so not downloaded.
    pub reused_layers: usize,
}

/// How [`Trees::install`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeInstalled {
    /// The tree is in place.
    Built(TreeTransfer),
    /// Every place answered 410 Gone for the image's manifest.
    Withdrawn(String),
}

/// The parenthesised part of a "no version matches" line.
pub fn available_text(available: &str) -> String {
    if available.is_empty() {
        "no versions are published".to_string()
    } else {
        format!("available: {available}")
    }
}

/// What `--init`'s error says of the installed image, if any.
fn installed_text(installed: &Option<String>) -> String {
    match installed {
        Some(version) => format!("; the installed version {version} does not match it either"),
        None => String::new(),
    }
}

/// The version of the image `latest` points at, as `manifest` lists it.
fn installed_version(dest: &Destination, manifest: &Manifest) -> Option<String> {
    let hex = dest.latest_name()?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex.as_str(), &mut digest).ok()?;
    let entry = manifest.with_digest(digest).next()?;
    Some(untrusted(entry.version.as_str()))
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
        /// What the download cost, if it was a delta (see `update::delta`).
        transfer: Option<Transfer>,
        /// What building a container image's tree cost, if this run built it.
        tree: Option<TreeTransfer>,
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
                tree,
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
                        size::human(transfer.downloaded),
                        size::human(transfer.image)
                    )?;
                }
                if let Some(tree) = tree {
                    write!(
                        f,
                        " (downloaded {}, {} layer{} reused)",
                        size::human(tree.downloaded),
                        tree.reused_layers,
                        if tree.reused_layers == 1 { "" } else { "s" }
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
#[derive(Clone, Copy)]
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

/// An error of one config as printed: a config error names its file and
/// line itself, any other is prefixed with the config's name.
pub fn config_error_text(config_path: &Path, e: &FetchError) -> String {
    match e {
        FetchError::Config(e) => e.to_string(),
        e => format!("{}: {e}", config_path.display()),
    }
}

/// What the restart step gets once `latest` is where it should be: the config, the
/// destination's lock (which it may let go of while units restart) and the outcome so far.
pub type Restart<'a> = &'a dyn Fn(&Config, DirLock, Outcome) -> Result<Outcome, FetchError>;

/// Brings the destination of the config at `config_path` up to date, then hands over to
/// `restart` (not with `--init`).
pub fn fetch_one(
    config_path: &Path,
    options: &Options,
    transport: &Transport,
    report: &dyn Report,
    trees: &dyn Trees,
    restart: Restart<'_>,
) -> Result<Outcome, FetchError> {
    // The clock for --max-time starts before anything else of this config; no retry waits
    // past it.
    let transport = transport.with_max_time(options.max_time);
    let options = &Options {
        retry: RetryPolicy {
            deadline: options
                .max_time
                .map(|limit| std::time::Instant::now() + limit),
            ..options.retry
        },
        ..*options
    };
    let config = config::load(config_path)?;
    let dest = Destination::open(&config.destination)?;

    // Every file is replaced atomically, so the offline check needs no
    // lock: a run stuck on a slow download must not hold up a service's
    // ExecStartPre=.
    if options.init
        && let Some(local) = read_local_manifest(&dest, &config)?
        && let Some(verified) = local.verified()
        && let Some(entry) =
            installed_entry(&dest, verified, &config, options.verify, trees, report)?
    {
        return Ok(Outcome::Present(Image::of(entry)));
    }

    // Per origin: credentials (URL or netrc), HeaderFile=, CACertificate=,
    // ClientCertificate=. Read only now that the run goes online: `--init` with an intact
    // image must start the service whatever state these files are in.
    let origin = origin::for_config(&config, &transport)?;
    let lock = dest.lock()?;
    // Temporaries of runs that crashed; no live run owns them under the lock.
    if let Some(store) = dest.store()? {
        store.remove_temporaries()?;
    }
    // The cache of chunk indexes only saves work: something planted at
    // DEST/index must not stop an update (a delta then says why it is not
    // tried, and the image is downloaded whole).
    if let Ok(Some(cache)) = dest.index_cache()
        && let Err(e) = cache.remove_temporaries()
    {
        report.warn(&e.to_string());
    }
    let updated = update(&dest, &config, options, origin.as_ref(), trees, report);
    if options.init {
        // The unit running `--init` is starting anyway, and its start must
        // not fail because another unit's restart did: a pending restart is
        // neither retried nor reported here.
        return updated;
    }
    match updated {
        Ok(outcome) => restart(&config, lock, outcome),
        Err(e) => {
            if let Ok(Some(units)) = restart_pending::read(dest.path())
                && !units.is_empty()
            {
                report.warn(&format!(
                    "the restart of {} is still pending from an earlier run; the next run that gets as far as restarting retries it",
                    units.join(", ")
                ));
            }
            Err(e)
        }
    }
}

/// Everything after the `--init` shortcut up to and including moving
/// `latest`, under the destination lock held by the caller.
fn update(
    dest: &Destination,
    config: &Config,
    options: &Options,
    origin: &dyn Origin,
    trees: &dyn Trees,
    report: &dyn Report,
) -> Result<Outcome, FetchError> {
    let local = local_manifest(dest, config, report)?;

    // Validators are only sent for a copy that verifies: a 304 must leave a usable one.
    let known = local
        .as_ref()
        .filter(|l| l.verified().is_some())
        .and_then(|l| poll::read(dest.dir(), &l.bytes));
    let seen = Seen::read(dest.dir());
    let Chosen {
        remote:
            RemoteManifest {
                bytes: remote_bytes,
                manifest: remote,
                validators,
                ..
            },
        seen: now_seen,
    } = remote_manifest(
        config,
        origin,
        Polled {
            local: local.as_ref(),
            known: known.as_ref(),
            seen: seen.as_ref(),
        },
        options.retry,
        report,
    )?;
    if let Some(now_seen) = &now_seen {
        now_seen.save(dest.dir(), seen.as_ref())?;
    }
    if local.as_ref().is_none_or(|l| l.bytes != remote_bytes) {
        // Validators must never outlive the manifest they describe.
        poll::forget(dest.dir())?;
        dest.write_manifest(&remote_bytes)?;
    }
    poll::update(
        dest.dir(),
        known.as_ref(),
        validators.as_ref(),
        &remote_bytes,
    )?;

    let available = || versions(remote.entries());
    let candidates: Vec<&Entry> = remote.matching(&config.version).collect();
    if candidates.is_empty() {
        let pattern = untrusted(config.version.as_str());
        return if options.init {
            Err(FetchError::NoImage {
                pattern,
                available: available().join(", "),
                // The installed image may be one the publisher no longer lists.
                installed: installed_version(dest, &remote).or_else(|| {
                    local
                        .as_ref()
                        .and_then(|l| l.verified())
                        .and_then(|m| installed_version(dest, m))
                }),
            })
        } else {
            Ok(Outcome::NoMatch {
                pattern,
                available: available(),
            })
        };
    }

    let store = dest.ensure_store()?;
    // Bytes kept for an image no longer wanted would only take up space.
    partial::remove_unwanted(&store, |hex| {
        candidates.iter().any(|e| e.digest_hex() == hex)
    })?;
    let mut chosen = None;
    // A withdrawn image is asked for once, however many versions name it, and the log
    // names the first few withdrawn versions, then sums up the rest. One that an earlier
    // run found withdrawn is passed over without a request or a word (see `withdrawn`).
    let mut withdrawn: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut quiet: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut remembered = Withdrawn::read(dest.dir());
    let now = std::time::SystemTime::now();
    let mut unsaid = 0usize;
    for entry in &candidates {
        let hex = entry.digest_hex();
        if quiet.contains(&hex) {
            continue;
        }
        if withdrawn.contains(&hex) {
            unsaid += 1;
            continue;
        }
        let skip = remembered.skip(&hex, now);
        let installed = match config.kind {
            Kind::File => install(dest, &store, entry, &remote, skip, options, origin, report)?,
            Kind::Container => install_tree(
                dest, &store, entry, config, skip, options, origin, trees, report,
            )?,
        };
        match installed {
            Installed::Remembered => {
                quiet.insert(hex);
            }
            Installed::Withdrawn(url) => {
                // Asked again after a long while and still withdrawn: nothing new to say.
                let known = remembered.contains(&hex);
                remembered.remember(&hex, now);
                if known {
                    quiet.insert(hex);
                    continue;
                }
                withdrawn.insert(hex);
                if withdrawn.len() <= MAX_WITHDRAWN_SAID {
                    report.warn(&format!(
                        "version {} was withdrawn by the publisher (410 Gone from {url}); trying the next lower match",
                        untrusted(entry.version.as_str())
                    ));
                } else {
                    unsaid += 1;
                }
            }
            Installed::Present => {
                chosen = Some((*entry, None));
                break;
            }
            Installed::Downloaded => {
                remembered.forget(&hex);
                chosen = Some((*entry, None));
                break;
            }
            Installed::Delta(transfer) => {
                remembered.forget(&hex);
                chosen = Some((*entry, Some(Cost::Delta(transfer))));
                break;
            }
            Installed::Tree(built) => {
                remembered.forget(&hex);
                chosen = Some((*entry, Some(Cost::Tree(built))));
                break;
            }
        }
    }
    // Only costs a request and a warning next time if it cannot be written.
    if let Err(e) = remembered.save(dest.dir()) {
        report.warn(&format!("cannot remember the withdrawn images: {e}"));
    }
    if unsaid > 0 {
        let (versions, were) = if unsaid == 1 {
            ("version", "was")
        } else {
            ("versions", "were")
        };
        report.warn(&format!(
            "{unsaid} more matching {versions} {were} withdrawn by the publisher (410 Gone) and passed over"
        ));
    }
    let Some((entry, cost)) = chosen else {
        return Err(FetchError::AllWithdrawn {
            pattern: untrusted(config.version.as_str()),
            versions: capped_version_list(&candidates),
        });
    };
    // The chosen image is complete now: a partial of it (finished since by another run
    // or tool) and those of lower matches are of no more use, and higher ones were
    // withdrawn. Only a run that installs nothing keeps its partials to resume.
    partial::remove_unwanted(&store, |_| false)?;

    let target = destination::store_target(&entry.digest_hex());
    let previous = dest.latest();
    if previous.as_deref() == Some(target.as_path()) {
        return Ok(Outcome::UpToDate(Image::of(entry)));
    }
    dest.point_latest_at(&entry.digest_hex())?;
    let from = previous.map(|p| describe_target(&p, &remote));
    // `Keep=`: the store is collected once `latest` is in place, still
    // under the lock. The update stands whatever happens here.
    let mut removed = Vec::new();
    if let Some(keep) = config.keep {
        let mut on_removal = |r: &retention::Removal| removed.push(r.clone());
        let collected = match config.kind {
            Kind::File => store::collect(dest, &remote, keep, false, &mut on_removal)
                .map_err(|e| e.to_string()),
            Kind::Container => trees::collect(dest, &remote, keep, false, &mut on_removal)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = collected {
            report.warn(&format!("Keep={keep}: {e}"));
        }
    }
    let (transfer, tree) = match cost {
        Some(Cost::Delta(transfer)) => (Some(transfer), None),
        Some(Cost::Tree(built)) => (None, Some(built)),
        None => (None, None),
    };
    Ok(Outcome::Updated {
        from,
        to: Image::of(entry),
        restarted: Vec::new(),
        removed,
        transfer,
        tree,
    })
}

/// The local manifest of `config`'s destination, if there is one, with the
/// one warning of a host whose copy is signed by a key no longer configured
/// (its entries then only serve the rollback check; see docs/key-rotation.md).
pub fn local_manifest(
    dest: &Destination,
    config: &Config,
    report: &dyn Report,
) -> Result<Option<LocalManifest>, FetchError> {
    let local = read_local_manifest(dest, config)?;
    if local.as_ref().is_some_and(|l| l.verified().is_none()) {
        report.warn(&untrusted_local_warning(&dest.manifest_path()));
    }
    Ok(local)
}

/// What a host knows of its manifest when it polls: its own copy, the validators it came
/// with, and since when its mirror has served it unchanged (`DEST/manifest.seen`).
#[derive(Clone, Copy, Default)]
pub struct Polled<'a> {
    pub local: Option<&'a LocalManifest>,
    pub known: Option<&'a Validators>,
    pub seen: Option<&'a Seen>,
}

/// Obtains the remote manifest and accepts it as fetch does: at most
/// [`MAX_MANIFEST_SIZE`] bytes, signed by one of the configured keys (with the
/// `manifest.<keyid>` fallback), and no rollback against `polled.local`, from the first
/// of the config's origins that serves one, or a newer one from the next mirror when the
/// first has served the same for `MirrorStaleAfter=` (see `select`); `polled.known` makes
/// the poll conditional. Changes nothing on disk; `tako check` relies on that, and a
/// caller that keeps the manifest also keeps its validators (see `poll`) and the new
/// `manifest.seen` (see `destination::seen`).
pub fn remote_manifest(
    config: &Config,
    origin: &dyn Origin,
    polled: Polled<'_>,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Chosen, FetchError> {
    let query = ManifestQuery {
        keys: &config.public_keys,
        max: MAX_MANIFEST_SIZE,
        local: polled.local,
        known: polled.known,
        retry,
        warn: &|message| report.warn(message),
        seen: polled.seen,
        stale_after: config.mirror_stale_after,
        now: std::time::SystemTime::now(),
    };
    Ok(select::remote_manifest(origin, &query)?)
}

/// How many withdrawn versions a run names one by one before it sums up the rest.
const MAX_WITHDRAWN_SAID: usize = 3;

/// How many versions an error lists before it counts the rest.
const MAX_VERSIONS_LISTED: usize = 10;

/// Versions for an error line: "1.9, 1.8, … and 19990 more".
pub fn capped_version_list(entries: &[&Entry]) -> String {
    let mut text = version_list(entries.iter().take(MAX_VERSIONS_LISTED).copied());
    if entries.len() > MAX_VERSIONS_LISTED {
        text.push_str(&format!(
            " and {} more",
            entries.len() - MAX_VERSIONS_LISTED
        ));
    }
    text
}

/// Versions for a message: "1.0, 1.1".
fn version_list<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    versions(entries).join(", ")
}

/// The versions of `entries`, each fit to print.
pub fn versions<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<String> {
    entries
        .into_iter()
        .map(|e| untrusted(e.version.as_str()))
        .collect()
}

/// The local manifest, if there is one. It is read as a remote one is, at
/// most `MAX_MANIFEST_SIZE` bytes, and only if it is a regular file. It must
/// be well-formed; see [`LocalManifest::check`] for one signed by a key no
/// longer configured.
pub fn read_local_manifest(
    dest: &Destination,
    config: &Config,
) -> Result<Option<LocalManifest>, FetchError> {
    let Some(bytes) = dest.read_manifest(MAX_MANIFEST_SIZE)? else {
        return Ok(None);
    };
    let manifest = LocalManifest::check(bytes, &config.public_keys).map_err(|source| {
        FetchError::LocalManifest {
            path: dest.manifest_path(),
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
    dest: &Destination,
    manifest: &'m Manifest,
    config: &Config,
    verify: bool,
    trees: &dyn Trees,
    report: &dyn Report,
) -> Result<Option<&'m Entry>, FetchError> {
    let Some(hex) = dest.latest_name() else {
        return Ok(None);
    };
    let hex = hex.as_str();
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
    let Some(store) = dest.store()? else {
        return Ok(None);
    };
    if config.kind == Kind::Container {
        return Ok(trees.intact(&store, entry)?.then_some(entry));
    }
    let state = store::check(&store, entry, verify, &|message| report.warn(message))?;
    Ok((state == Stored::Intact).then_some(entry))
}

/// What installing the chosen image cost, when it was more than a whole download.
enum Cost {
    Delta(Transfer),
    Tree(TreeTransfer),
}

/// How [`install`] made an image present.
enum Installed {
    /// It was there and intact.
    Present,
    /// Downloaded whole.
    Downloaded,
    /// Assembled from local chunks and ranges.
    Delta(Transfer),
    /// A container image's tree, built.
    Tree(TreeTransfer),
    /// The publisher withdrew it (410 Gone from this URL).
    Withdrawn(String),
    /// An earlier run found it withdrawn; not asked for again yet.
    Remembered,
}

/// Makes sure `store/<hex>` of `entry` is present and intact, downloading
/// it if needed: as a delta when the store and the origin allow, else whole.
/// `withdrawn`: a remembered withdrawal says not to ask the origin for it.
#[allow(clippy::too_many_arguments)]
fn install(
    dest: &Destination,
    store: &crate::fs::Dir,
    entry: &Entry,
    manifest: &Manifest,
    withdrawn: bool,
    options: &Options,
    origin: &dyn Origin,
    report: &dyn Report,
) -> Result<Installed, FetchError> {
    let hex = entry.digest_hex();
    let path = store.path().join(&hex);
    match store::check(store, entry, options.verify, &|message| {
        report.warn(message)
    })? {
        Stored::Intact => return Ok(Installed::Present),
        // Kept until a verified copy is renamed over it: if the download
        // fails, `latest` still points at a file.
        Stored::Damaged(why) if !withdrawn => report.warn(&format!(
            "{} is damaged ({why}); downloading it again",
            path.display()
        )),
        Stored::Damaged(why) => report.warn(&format!(
            "{} is damaged ({why}); the publisher withdrew it, so it is not downloaded again",
            path.display()
        )),
        Stored::Missing => {}
    }
    if withdrawn {
        return Ok(Installed::Remembered);
    }

    let bar = |done, total| report.download_bar(entry.version.as_str(), done, total);
    let say = Say {
        warn: &|message| report.warn(message),
        progress: &|message| {
            if options.progress {
                report.progress(message)
            }
        },
        bar: options.progress.then_some(&bar as &dyn Fn(u64, u64) -> _),
    };
    let latest = dest.latest_name();
    let local = Local {
        latest: latest.as_deref(),
        manifest,
        deadline: options.retry.deadline,
    };
    if let Some(transfer) = try_delta(origin, dest.dir(), store, entry, &local, &say)? {
        return Ok(Installed::Delta(transfer));
    }
    match image::download(origin, store, entry, options.retry, &say)? {
        Downloaded::Installed => Ok(Installed::Downloaded),
        Downloaded::Withdrawn { url } => Ok(Installed::Withdrawn(url)),
    }
}

/// Makes sure `store/<hex>/` of the container image `entry` is a complete tree, building
/// it through `trees` if not. `withdrawn`: as for [`install`].
#[allow(clippy::too_many_arguments)]
fn install_tree(
    dest: &Destination,
    store: &crate::fs::Dir,
    entry: &Entry,
    config: &Config,
    withdrawn: bool,
    options: &Options,
    origin: &dyn Origin,
    trees: &dyn Trees,
    report: &dyn Report,
) -> Result<Installed, FetchError> {
    if trees.intact(store, entry)? {
        return Ok(Installed::Present);
    }
    if withdrawn {
        return Ok(Installed::Remembered);
    }
    let bar = |done, total| report.download_bar(entry.version.as_str(), done, total);
    let say = Say {
        warn: &|message| report.warn(message),
        progress: &|message| {
            if options.progress {
                report.progress(message)
            }
        },
        bar: options.progress.then_some(&bar as &dyn Fn(u64, u64) -> _),
    };
    match trees.install(dest, store, entry, config, origin, options.retry, &say)? {
        TreeInstalled::Built(built) => Ok(Installed::Tree(built)),
        TreeInstalled::Withdrawn(url) => Ok(Installed::Withdrawn(url)),
    }
}

/// How to name what `latest` pointed at before: its version if the
/// manifest knows the file, else the link target itself.
pub fn describe_target(target: &Path, manifest: &Manifest) -> String {
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
