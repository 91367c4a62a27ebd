//! `tako check`: ask each config's origin whether an update is available, changing nothing.
//!
//! The remote manifest is obtained and accepted exactly as `tako fetch`
//! does it (`update::fetch::remote_manifest`: size cap, signatures with the
//! `manifest.<keyid>` fallback, the rollback check against the local copy),
//! but nothing is written, not even the manifest, and no lock is taken:
//! every file read here is only ever replaced atomically.

use std::path::Path;
use std::time::Duration;

use crate::cli::CheckArgs;
use crate::destination::poll;
use crate::destination::seen::Seen;
use crate::destination::withdrawn::Withdrawn;
use crate::destination::{self, Destination};
use crate::format::manifest::Entry;
use crate::format::text::untrusted;
use crate::fs::config;
use crate::origin;
use crate::origin::Transport;
use crate::ui::json::CheckRecord;
use crate::ui::output;
use crate::update::fetch::{self, FetchError, Image};
use crate::update::retry::RetryPolicy;
use crate::{Error, Exit};

use super::{Reporter, transport_config};

/// What a fetch would do for one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// `latest` would move from `from` (a version, or the old link target;
    /// `None` if nothing is installed) to `to`.
    UpdateAvailable {
        from: Option<String>,
        to: Image,
    },
    UpToDate(Image),
    NoMatch {
        installed: Option<String>,
        pattern: String,
        available: Vec<String>,
    },
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checked::UpdateAvailable { from, to } => write!(
                f,
                "update available {} -> {}",
                from.as_deref().unwrap_or("(none)"),
                to.version
            ),
            Checked::UpToDate(image) => write!(f, "up to date ({})", image.version),
            // The same words as fetch's.
            Checked::NoMatch {
                pattern, available, ..
            } => write!(
                f,
                "no version matches {pattern} ({})",
                fetch::available_text(&available.join(", "))
            ),
        }
    }
}

/// Runs `tako check` over every config. A failure wins over an update.
pub fn run(args: &CheckArgs) -> Result<Exit, Error> {
    let transport = Transport::new(transport_config(&args.limits, None));
    let max_time = args.limits.max_time.map(Duration::from_secs);
    let mut failed = 0;
    let mut updates = 0;
    for path in &args.configs {
        let result = check_one(path, &transport.with_max_time(max_time));
        super::say_file_warnings();
        if let Err(e) = &result {
            failed += 1;
            output::error_line(&fetch::config_error_text(path, e));
        }
        if matches!(result, Ok(Checked::UpdateAvailable { .. })) {
            updates += 1;
        }
        if args.json {
            output::json_line(&record(path, &result));
        } else if let Ok(checked) = &result {
            output::stdout_line(&format!("{}: {checked}", path.display()));
        }
    }
    match (failed, updates) {
        (0, 0) => Ok(Exit::Success),
        (0, _) => Ok(Exit::UpdateAvailable),
        (failed, _) => Err(Error::ConfigsFailed {
            failed,
            total: args.configs.len(),
        }),
    }
}

/// Checks one config: what `tako fetch` would install, against what
/// `latest` points at.
pub fn check_one(config_path: &Path, transport: &Transport) -> Result<Checked, FetchError> {
    let config = config::load(config_path)?;
    let origin = origin::for_config(&config, transport)?;
    let dest = Destination::open(&config.destination)?;
    let report = Reporter {
        name: config_path,
        progress: false,
    };
    let local = fetch::local_manifest(&dest, &config, &report)?;
    // A conditional poll writes nothing either: a 304 means the local copy stands.
    let known = local
        .as_ref()
        .filter(|l| l.verified().is_some())
        .and_then(|l| poll::read(dest.dir(), &l.bytes));
    // Read, never written: the clock of `manifest.seen` is fetch's to keep.
    let seen = Seen::read(dest.dir());
    let remote = fetch::remote_manifest(
        &config,
        origin.as_ref(),
        fetch::Polled {
            local: local.as_ref(),
            known: known.as_ref(),
            seen: seen.as_ref(),
        },
        // One try: an operator asking wants the answer now; fetch is the one that
        // perseveres.
        RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        },
        &report,
    )?
    .remote
    .manifest;
    let installed = dest.latest();
    let mut matching = remote.matching(&config.version).peekable();
    if matching.peek().is_none() {
        return Ok(Checked::NoMatch {
            installed: installed.map(|p| fetch::describe_target(&p, &remote)),
            pattern: untrusted(config.version.as_str()),
            available: fetch::versions(remote.entries()),
        });
    }
    // What fetch passes over: an image an earlier fetch found withdrawn (410 Gone), unless
    // it is the one installed.
    let withdrawn = Withdrawn::read(dest.dir());
    let offered = |e: &&Entry| {
        !withdrawn.contains(&e.digest_hex())
            || installed.as_deref() == Some(destination::store_target(&e.digest_hex()).as_path())
    };
    let Some(entry) = remote.matching(&config.version).find(offered) else {
        return Err(FetchError::AllWithdrawn {
            pattern: untrusted(config.version.as_str()),
            versions: fetch::capped_version_list(&matching.collect::<Vec<_>>()),
        });
    };
    let target = destination::store_target(&entry.digest_hex());
    if installed.as_deref() == Some(target.as_path()) {
        return Ok(Checked::UpToDate(Image::of(entry)));
    }
    Ok(Checked::UpdateAvailable {
        from: installed.map(|p| fetch::describe_target(&p, &remote)),
        to: Image::of(entry),
    })
}

fn record(config: &Path, result: &Result<Checked, FetchError>) -> CheckRecord {
    let mut record = CheckRecord {
        config: config.display().to_string(),
        outcome: "failed",
        from: None,
        to: None,
        digest: None,
        size: None,
        pattern: None,
        published: None,
        error: None,
    };
    let to = |record: &mut CheckRecord, image: &Image| {
        record.to = Some(image.version.clone());
        record.digest = Some(image.digest.clone());
        record.size = Some(image.size);
    };
    match result {
        Ok(Checked::UpdateAvailable { from, to: image }) => {
            record.outcome = "update-available";
            record.from = from.clone();
            to(&mut record, image);
        }
        Ok(Checked::UpToDate(image)) => {
            record.outcome = "up-to-date";
            record.from = Some(image.version.clone());
            to(&mut record, image);
        }
        Ok(Checked::NoMatch {
            installed,
            pattern,
            available,
        }) => {
            record.outcome = "no-match";
            record.from = installed.clone();
            record.pattern = Some(pattern.clone());
            record.published = Some(available.clone());
        }
        Err(e) => record.error = Some(fetch::config_error_text(config, e)),
    }
    record
}
