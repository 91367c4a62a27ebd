//! `tako status`: what each config's destination holds, offline.
//!
//! No network, and no lock as long as all is well: `manifest`, `latest` and the store files
//! are only ever replaced atomically, so each file read here is one some run left complete.
//! Nothing is written.
//!
//! Several files read one after the other may come from two moments, though: a `tako fetch`
//! with `Keep=` (or a `tako gc`) may move `latest` and remove the image it pointed at between
//! the reads, which would look like a missing image. So a destination that does not look
//! intact is read once more under the shared lock, which waits for such a run to end.

use std::path::{Path, PathBuf};

use crate::cli::StatusArgs;
use crate::container::install::TreeCheck;
use crate::destination::restart_pending::{self, PendingError};
use crate::destination::store::{self, Stored};
use crate::destination::{Destination, LATEST};
use crate::format::config::{Config, Kind};
use crate::format::manifest::{Entry, Manifest};
use crate::format::retention;
use crate::format::text::untrusted;
use crate::fs::config;
use crate::fs::{Dir, Found};
use crate::ui::json::{StatusRecord, StoreRecord};
use crate::ui::output::{self, size_text};
use crate::update::fetch::{self, FetchError};
use crate::{Error, Exit};

use super::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Pending(#[from] PendingError),
    #[error(transparent)]
    Io(#[from] crate::fs::IoError),
}

/// What `latest` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// No `latest`.
    Nothing,
    /// `latest` points at something the local manifest does not vouch for.
    Unknown { target: String, why: String },
    /// An image the local manifest lists.
    Image {
        /// Every version that names it, highest first, fit to print.
        versions: Vec<String>,
        digest: String,
        size: u64,
        matches_pattern: bool,
        /// `Intact`, `Missing` or `Damaged` (with why).
        state: Stored,
    },
}

/// One file of the store.
#[derive(Debug, Clone)]
pub struct StoreEntry {
    pub file: StoreFile,
    pub kind: &'static str,
    pub versions: Vec<String>,
    pub latest: bool,
}

use retention::StoreFile;

/// The state of one config's destination.
#[derive(Debug, Clone)]
pub struct Report {
    pub origin: String,
    /// Every `Origin=`, the first one first (the others are its mirrors).
    pub origins: Vec<String>,
    pub pattern: String,
    pub destination: PathBuf,
    pub installed: Installed,
    pub verified: bool,
    pub newer: Vec<String>,
    pub store: Vec<StoreEntry>,
    pub restart_pending: Vec<String>,
    /// A container tree checked with `--verify`: what its record says.
    pub tree: Option<TreeCheck>,
    pub kind: Kind,
    /// `Kind=container`: the platform installed (`Platform=`, else this host's).
    pub platform: Option<String>,
}

impl Report {
    pub fn intact(&self) -> bool {
        matches!(
            self.installed,
            Installed::Image {
                state: Stored::Intact,
                ..
            }
        )
    }

    fn outcome(&self) -> &'static str {
        match &self.installed {
            Installed::Nothing => "not-installed",
            Installed::Unknown { .. } => "unknown",
            Installed::Image { state, .. } => match state {
                Stored::Intact => "intact",
                Stored::Missing => "missing",
                Stored::Damaged(_) => "damaged",
            },
        }
    }

    fn store_bytes(&self) -> u64 {
        self.store.iter().map(|e| e.file.size).sum()
    }
}

/// Runs `tako status` over every config.
pub fn run(args: &StatusArgs) -> Result<Exit, Error> {
    let mut not_intact = 0;
    for path in &args.configs {
        let result = status_one(path, args.verify);
        match &result {
            Ok(report) if report.intact() => {}
            _ => not_intact += 1,
        }
        let error = result.as_ref().err().map(|e| error_text(path, e));
        if let Some(text) = &error {
            output::error_line(text);
        }
        if args.json {
            output::json_line(&record(path, result.ok().as_ref(), error));
        } else if let Ok(report) = &result {
            for line in lines(report) {
                output::stdout_line(&format!("{}: {line}", path.display()));
            }
        }
    }
    match not_intact {
        0 => Ok(Exit::Success),
        failed => Err(Error::NotIntact {
            failed,
            total: args.configs.len(),
        }),
    }
}

fn error_text(config_path: &Path, e: &StatusError) -> String {
    match e {
        StatusError::Fetch(e) => fetch::config_error_text(config_path, e),
        e => format!("{}: {e}", config_path.display()),
    }
}

/// Reads one config's destination; see the module's comment for when it waits.
pub fn status_one(config_path: &Path, verify: bool) -> Result<Report, StatusError> {
    let config = config::load(config_path).map_err(FetchError::from)?;
    let dest = Destination::open(&config.destination)?;
    let reporter = Reporter {
        name: config_path,
        progress: false,
    };
    let first = read(&config, &dest, verify, &reporter);
    if first.as_ref().is_ok_and(Report::intact) {
        return first;
    }
    // Without the lock (a directory this user cannot lock), the first look stands. The
    // second look's warnings were given by the first.
    match dest.lock_shared() {
        Ok(_lock) => read(&config, &dest, verify, &Silent),
        Err(_) => first,
    }
}

/// Says nothing: for a second look at what the first has warned about already.
struct Silent;

impl fetch::Report for Silent {
    fn warn(&self, _: &str) {}
    fn progress(&self, _: &str) {}
    fn download_bar(&self, _: &str, _: u64, _: u64) -> indicatif::ProgressBar {
        indicatif::ProgressBar::hidden()
    }
}

/// One look at a config's destination.
fn read(
    config: &Config,
    dest: &Destination,
    verify: bool,
    report: &dyn fetch::Report,
) -> Result<Report, StatusError> {
    let local = fetch::local_manifest(dest, config, report)?;
    let manifest = local.as_ref().and_then(|l| l.verified());
    // A `store` that is a symlink is refused, not followed.
    let store = dest.store()?;
    let (installed, tree) = installed(
        dest,
        store.as_ref(),
        config,
        local.is_some(),
        manifest,
        verify,
    )?;
    let store_files = match &store {
        Some(store) => store::list(store)?,
        None => Vec::new(),
    };
    let latest = dest.latest_name();
    let store = describe_store(store_files, manifest, latest.as_deref());
    let newer = match manifest {
        Some(manifest) => newer(manifest, config, &installed),
        None => Vec::new(),
    };
    Ok(Report {
        origin: config.origin.clone(),
        origins: config.origins.iter().map(|o| o.url.clone()).collect(),
        pattern: config.version.as_str().to_string(),
        destination: config.destination.clone(),
        installed,
        verified: verify,
        newer,
        store,
        restart_pending: restart_pending::read(dest.path())?.unwrap_or_default(),
        tree,
        kind: config.kind,
        platform: crate::container::install::platform_of(config),
    })
}

fn installed(
    dest: &Destination,
    store: Option<&Dir>,
    config: &Config,
    has_manifest: bool,
    manifest: Option<&Manifest>,
    verify: bool,
) -> Result<(Installed, Option<TreeCheck>), StatusError> {
    let Some(target) = dest.latest() else {
        return Ok((
            match dest.dir().open_file(LATEST)? {
                Found::Missing => Installed::Nothing,
                Found::File(_) => not_a_link(dest, "a regular file"),
                Found::Directory => not_a_link(dest, "a directory"),
                Found::Other(kind) => not_a_link(dest, kind),
            },
            None,
        ));
    };
    let shown = untrusted(&target.display().to_string());
    let unknown = |why: &str| {
        Ok((
            Installed::Unknown {
                target: shown.clone(),
                why: why.to_string(),
            },
            None,
        ))
    };
    let Some(digest) = dest.latest_digest() else {
        return unknown("it does not point at an image in store/");
    };
    let Some(manifest) = manifest else {
        return unknown(if has_manifest {
            "the local manifest is not signed by any configured key"
        } else {
            "there is no local manifest to vouch for it"
        });
    };
    let entries: Vec<&Entry> = manifest.with_digest(digest).collect();
    let Some(&entry) = entries.first() else {
        return unknown("the local manifest does not list it");
    };
    let mut tree = None;
    let state = match store {
        // A container image is a tree: present when its manifest.json is the signed bytes
        // and it has a rootfs/; with --verify, every entry is compared with the record
        // written when it was unpacked.
        Some(store) if config.kind == Kind::Container => {
            if crate::container::install::tree_intact(store, entry)? {
                if verify {
                    let check = crate::container::install::verify_tree(store, entry)
                        .map_err(|e| FetchError::Container(Box::new(e)))?;
                    let state = match &check {
                        TreeCheck::NoRecord => Stored::Intact,
                        TreeCheck::BadRecord(why) => {
                            Stored::Damaged(format!("its record of files is damaged: {why}"))
                        }
                        TreeCheck::Checked { changes, .. } if changes.is_empty() => Stored::Intact,
                        TreeCheck::Checked { changes, .. } => Stored::Damaged(format!(
                            "{} difference{} from the record of its files",
                            changes.len(),
                            if changes.len() == 1 { "" } else { "s" }
                        )),
                    };
                    tree = Some(check);
                    state
                } else {
                    Stored::Intact
                }
            } else if matches!(store.subdir(&entry.digest_hex()), Ok(Some(_))) {
                Stored::Damaged(
                    "its manifest.json is not the signed one, or it has no rootfs/".to_owned(),
                )
            } else {
                Stored::Missing
            }
        }
        Some(store) => store::inspect(store, entry, verify).map_err(FetchError::from)?,
        None => Stored::Missing,
    };
    Ok((
        Installed::Image {
            versions: fetch::versions(entries.iter().copied()),
            digest: entry.digest_hex(),
            size: entry.size,
            matches_pattern: entries.iter().any(|e| config.version.matches(&e.version)),
            state,
        },
        tree,
    ))
}

fn not_a_link(dest: &Destination, kind: &str) -> Installed {
    Installed::Unknown {
        target: untrusted(&dest.latest_path().display().to_string()),
        why: format!("latest is {kind}, not a symbolic link"),
    }
}

/// Matching versions above the installed one, highest first; every
/// matching version when nothing known is installed.
fn newer(manifest: &Manifest, config: &Config, installed: &Installed) -> Vec<String> {
    let floor = match installed {
        Installed::Image { digest, .. } => manifest
            .entries()
            .iter()
            .rev()
            .find(|e| e.digest_hex() == *digest)
            .map(|e| &e.version),
        _ => None,
    };
    fetch::versions(
        manifest
            .matching(&config.version)
            .filter(|e| floor.is_none_or(|floor| e.version > *floor)),
    )
}

fn describe_store(
    files: Vec<StoreFile>,
    manifest: Option<&Manifest>,
    latest: Option<&str>,
) -> Vec<StoreEntry> {
    let mut entries: Vec<(Option<&crate::format::version::Version>, StoreEntry)> = files
        .into_iter()
        .map(|file| {
            let named: Vec<&Entry> = manifest
                .map(|m| {
                    m.entries()
                        .iter()
                        .rev()
                        .filter(|e| e.digest_hex() == file.name)
                        .collect()
                })
                .unwrap_or_default();
            let kind = if retention::is_temporary(&file.name) {
                "temporary"
            } else if named.is_empty() {
                "unlisted"
            } else {
                "image"
            };
            let entry = StoreEntry {
                latest: latest == Some(file.name.as_str()),
                versions: fetch::versions(named.iter().copied()),
                kind,
                file,
            };
            (named.first().map(|e| &e.version), entry)
        })
        .collect();
    // Images newest first, then the rest by name (already sorted).
    entries.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => y.cmp(x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    entries.into_iter().map(|(_, e)| e).collect()
}

/// The text block of one config; each line gets the config's name in front.
pub fn lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let checked = match &report.tree {
        None if report.verified => "size and SHA-256 checked",
        None => "size checked",
        Some(TreeCheck::NoRecord) => {
            "manifest.json and rootfs/ present; no record of its files to check them against (unpacked by an older tako)"
        }
        Some(_) => "every file checked against the record written when it was unpacked",
    };
    lines.push(match &report.installed {
        Installed::Nothing => "nothing installed (no latest)".to_string(),
        Installed::Unknown { target, why } => {
            format!("latest points at {target}, unknown: {why}")
        }
        Installed::Image {
            versions, state, ..
        } => {
            let version = versions.first().map_or("", String::as_str);
            match state {
                Stored::Intact => format!("installed {version}, intact ({checked})"),
                Stored::Missing => format!("installed {version}, missing (no file in store/)"),
                Stored::Damaged(why) => format!("installed {version}, damaged ({why})"),
            }
        }
    });
    if let Some(TreeCheck::Checked { changes, unlisted }) = &report.tree {
        for line in changes.iter().chain(unlisted) {
            lines.push(format!("  {line}"));
        }
    }
    let mirrors: Vec<String> = report
        .origins
        .iter()
        .skip(1)
        .map(|o| untrusted(o))
        .collect();
    let mirrors = if mirrors.is_empty() {
        String::new()
    } else {
        format!(" (mirrors: {})", mirrors.join(", "))
    };
    lines.push(format!(
        "  origin {}{mirrors}, pattern {}",
        untrusted(&report.origin),
        untrusted(&report.pattern)
    ));
    lines.push(format!(
        "  destination {}",
        untrusted(&report.destination.display().to_string())
    ));
    if let Installed::Image {
        versions,
        digest,
        size,
        matches_pattern,
        ..
    } = &report.installed
    {
        match (&report.kind, &report.platform) {
            (Kind::Container, Some(platform)) => {
                lines.push(format!("  container image store/{digest}, for {platform}"));
            }
            _ => lines.push(format!("  image store/{digest}, {}", size_text(*size))),
        }
        if versions.len() > 1 {
            lines.push(format!("  published as {}", versions.join(", ")));
        }
        if !matches_pattern {
            lines.push(format!(
                "  its version does not match the pattern {}",
                untrusted(&report.pattern)
            ));
        }
    }
    if !report.newer.is_empty() {
        lines.push(format!(
            "  newer in the local manifest: {}",
            report.newer.join(", ")
        ));
    }
    let images = report.store.iter().filter(|e| e.kind == "image").count();
    let files = report.store.len();
    lines.push(format!(
        "  store: {images} image{}, {files} file{}, {}",
        if images == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        size_text(report.store_bytes())
    ));
    for entry in &report.store {
        let what = match entry.kind {
            "image" => entry.versions.join(", "),
            kind => kind.to_string(),
        };
        lines.push(format!(
            "    store/{} {what}, {}{}",
            untrusted(&entry.file.name),
            size_text(entry.file.size),
            if entry.latest { ", latest" } else { "" }
        ));
    }
    if !report.restart_pending.is_empty() {
        lines.push(format!(
            "  restart pending: {}",
            report.restart_pending.join(", ")
        ));
    }
    lines
}

fn record(config: &Path, report: Option<&Report>, error: Option<String>) -> StatusRecord {
    let mut record = StatusRecord {
        config: config.display().to_string(),
        outcome: "failed",
        origin: None,
        origins: Vec::new(),
        pattern: None,
        destination: None,
        version: None,
        versions: Vec::new(),
        digest: None,
        size: None,
        matches_pattern: None,
        verified: false,
        problem: None,
        newer: Vec::new(),
        store: Vec::new(),
        store_bytes: 0,
        restart_pending: Vec::new(),
        error,
        kind: None,
        platform: None,
    };
    let Some(report) = report else {
        return record;
    };
    record.outcome = report.outcome();
    record.origin = Some(untrusted(&report.origin));
    record.origins = report.origins.iter().map(|o| untrusted(o)).collect();
    record.pattern = Some(untrusted(&report.pattern));
    record.destination = Some(untrusted(&report.destination.display().to_string()));
    record.verified = report.verified;
    record.kind = Some(report.kind.name());
    record.platform = report.platform.clone();
    match &report.installed {
        Installed::Nothing => {}
        Installed::Unknown { target, why } => {
            record.problem = Some(format!("latest points at {target}: {why}"));
        }
        Installed::Image {
            versions,
            digest,
            size,
            matches_pattern,
            state,
        } => {
            record.version = versions.first().cloned();
            record.versions = versions.clone();
            record.digest = Some(digest.clone());
            record.size = Some(*size);
            record.matches_pattern = Some(*matches_pattern);
            record.problem = match state {
                Stored::Intact => None,
                Stored::Missing => Some("the image is not in store/".into()),
                Stored::Damaged(why) => Some(why.clone()),
            };
        }
    }
    record.newer = report.newer.clone();
    record.store = report
        .store
        .iter()
        .map(|e| StoreRecord {
            file: untrusted(&e.file.name),
            kind: e.kind,
            versions: e.versions.clone(),
            size: e.file.size,
            latest: e.latest,
        })
        .collect();
    record.store_bytes = report.store_bytes();
    record.restart_pending = report.restart_pending.clone();
    record
}
