//! One module per verb: each reads its arguments, calls the floors below and prints.

pub mod check;
pub mod fetch;
pub mod gc;
pub mod generate;
pub mod image;
pub mod image_proxy;
pub mod index;
pub mod status;
pub mod store;

use std::path::Path;
use std::time::Duration;

use crate::cli::TimeLimits;
use crate::format::transport_config::TransportConfig;
use crate::ui::{output, progress};
use crate::update::fetch::Report;

/// Tells what the engine does for one config: warnings always, progress to a person.
pub struct Reporter<'a> {
    pub name: &'a Path,
    pub progress: bool,
}

impl Report for Reporter<'_> {
    fn warn(&self, message: &str) {
        output::warning_line(&format!("{}: {message}", self.name.display()));
    }

    fn progress(&self, message: &str) {
        if self.progress {
            output::stderr_line(&format!("tako: {}: {message}", self.name.display()));
        }
    }

    fn download_bar(&self, version: &str, done: u64, total: u64) -> indicatif::ProgressBar {
        progress::download_bar(self.name, version, done, total)
    }
}

/// Prints the warnings about optional files (an unreadable `~/.netrc`) that the floors
/// below queued, each once per run (see `fs::warnings`).
pub fn say_file_warnings() {
    for warning in crate::fs::warnings::take() {
        output::warning_line(&warning);
    }
}

/// The transport's limits from the command line's time bounds and `--limit-rate`.
pub fn transport_config(limits: &TimeLimits, limit_rate: Option<u64>) -> TransportConfig {
    TransportConfig {
        idle_timeout: Duration::from_secs(limits.idle_timeout),
        speed_limit: limits.speed_limit,
        speed_time: Duration::from_secs(limits.speed_time),
        limit_rate,
        ..TransportConfig::default()
    }
}
