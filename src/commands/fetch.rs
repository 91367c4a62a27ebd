//! `tako fetch`: bring each config's destination up to date with its origin (the engine is
//! `update::fetch`), restart units, and say what happened.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::cli::FetchArgs;
use crate::container::install::HostTrees;
use crate::destination::restart_pending;
use crate::format::config::Config;
use crate::fs::DirLock;
use crate::origin::Transport;
use crate::systemd;
use crate::ui::json::{self, FetchRecord};
use crate::ui::output;
use crate::update::fetch::{
    FetchError, Image, Options, Outcome, Report, config_error_text, fetch_one,
};
use crate::update::retry::RetryPolicy;
use crate::{Error, Exit};

use super::{Reporter, transport_config};

/// Runs `tako fetch` over every config; one failure does not stop the rest.
pub fn run(args: &FetchArgs) -> Result<Exit, Error> {
    let options = Options {
        init: args.init,
        verify: !args.no_verify,
        restart: !args.no_restart,
        transport: transport_config(&args.limits, args.limit_rate),
        max_time: args.limits.max_time.map(Duration::from_secs),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        retry: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_delay_ms),
            // Set per config, when its clock starts (see update::fetch::fetch_one).
            deadline: None,
        },
    };
    let transport = Transport::new(options.transport);
    let trees = HostTrees {
        host: crate::container::resolve::host_platform(),
        transport: transport.clone(),
    };
    let mut failed = 0;
    for path in &args.configs {
        let name = path.display();
        let report = Reporter {
            name: path,
            progress: options.progress,
        };
        let restart = |config: &Config, lock: DirLock, outcome: Outcome| {
            restart(&report, config, &options, lock, outcome)
        };
        let result = fetch_one(path, &options, &transport, &report, &trees, &restart);
        super::say_file_warnings();
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
            let mut record = record(path, &result);
            // Read again for the record only: the engine read it for the run, and a config
            // that does not parse failed there already (its kind then stays `null`).
            if let Ok(config) = crate::fs::config::load(path) {
                record.kind = Some(config.kind.name());
                record.platform = crate::container::install::platform_of(&config);
            }
            output::json_line(&record);
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

/// Restarts the config's units after an update, and retries the units an
/// earlier run failed to restart (see `restart_pending`). Takes the
/// destination lock, because it lets go of it while units restart.
fn restart(
    report: &Reporter<'_>,
    config: &Config,
    options: &Options,
    lock: DirLock,
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
                    tree,
                    ..
                } => Outcome::Updated {
                    from,
                    to,
                    restarted,
                    removed,
                    transfer,
                    tree,
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
                report.warn(&format!("cannot record the pending restart: {e}"));
            }
            let pending = restart_pending::path(dest);
            Err(match outcome {
                Outcome::Updated { to, .. } => FetchError::Restart {
                    version: to.version,
                    units: left.join(", "),
                    source: Box::new(partial.error),
                    pending,
                },
                then => FetchError::RestartRetry {
                    outcome: then.to_string(),
                    units: left.join(", "),
                    source: Box::new(partial.error),
                    pending,
                },
            })
        }
    }
}

/// The `--json` record of one config.
fn record(config: &Path, result: &Result<Outcome, FetchError>) -> FetchRecord {
    let mut record = FetchRecord {
        config: config.display().to_string(),
        outcome: "failed",
        from: None,
        to: None,
        version: None,
        digest: None,
        size: None,
        restarted: Vec::new(),
        restart_retried: false,
        restart_pending: false,
        removed: Vec::new(),
        pattern: None,
        published: None,
        error: None,
        downloaded_bytes: None,
        image_bytes: None,
        delta: false,
        kind: None,
        platform: None,
        reused_layers: None,
    };
    match result {
        Ok(outcome) => fill(&mut record, outcome),
        Err(e) => {
            record.restart_pending = matches!(
                e,
                FetchError::Restart { .. }
                    | FetchError::RestartRetry { .. }
                    | FetchError::RestartNotRetried { .. }
            );
            record.error = Some(config_error_text(config, e));
        }
    }
    record
}

fn record_image(record: &mut FetchRecord, image: &Image) {
    record.version = Some(image.version.clone());
    record.digest = Some(image.digest.clone());
    record.size = Some(image.size);
}

fn fill(record: &mut FetchRecord, outcome: &Outcome) {
    match outcome {
        Outcome::Updated {
            from,
            to,
            restarted,
            removed,
            transfer,
            tree,
        } => {
            record.outcome = "updated";
            if let Some(transfer) = transfer {
                record.downloaded_bytes = Some(transfer.downloaded);
                record.image_bytes = Some(transfer.image);
                record.delta = true;
            }
            if let Some(tree) = tree {
                record.downloaded_bytes = Some(tree.downloaded);
                record.reused_layers = Some(tree.reused_layers);
            }
            record.from = from.clone();
            record.to = Some(to.version.clone());
            record_image(record, to);
            record.restarted = restarted.clone();
            record.removed = removed.iter().map(json::RemovedRecord::from).collect();
        }
        Outcome::UpToDate(image) => {
            record.outcome = "up-to-date";
            record_image(record, image);
        }
        Outcome::Present(image) => {
            record.outcome = "present";
            record_image(record, image);
        }
        Outcome::NoMatch { pattern, available } => {
            record.outcome = "no-match";
            record.pattern = Some(pattern.clone());
            record.published = Some(available.clone());
        }
        Outcome::RestartedPending { then, units } => {
            fill(record, then);
            record.restarted = units.clone();
            record.restart_retried = true;
        }
    }
}
