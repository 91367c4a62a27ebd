//! Progress bars for downloads, for a person watching a terminal.
//!
//! Drawn on standard error, and only when it is a terminal: the caller
//! decides that (`update::fetch::Options::progress`), and indicatif checks again, so
//! a bar never lands in a journal, a log file or a pipe.

use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::format::text::untrusted_max;

/// Bytes, percentage, rate and time left; the prefix names the config and version.
const TEMPLATE: &str =
    "{prefix} [{bar:30}] {bytes}/{total_bytes} {percent:>3}% {binary_bytes_per_sec} ETA {eta}";

/// A bar for downloading `size` bytes of `version` for the config `name`.
/// It is cleared when dropped, finished or not: the result line follows.
pub fn download_bar(name: &Path, version: &str, size: u64) -> ProgressBar {
    // A template error would be a bug in TEMPLATE; indicatif's default bar
    // still shows the progress.
    let style = ProgressStyle::with_template(TEMPLATE)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(format!(
            "{} {}",
            untrusted_max(&name.display().to_string(), 40),
            untrusted_max(version, 40)
        ))
        .with_finish(ProgressFinish::AndClear)
}

/// Bars drawn together on standard error, one per download of a container image pull
/// (several layers download at once).
pub fn bars() -> indicatif::MultiProgress {
    indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
}

/// A bar for downloading `size` bytes of `what` (a layer), added to `bars`.
pub fn blob_bar(bars: &indicatif::MultiProgress, what: &str, size: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(TEMPLATE)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bars.add(
        ProgressBar::new(size)
            .with_style(style)
            .with_prefix(untrusted_max(what, 40))
            .with_finish(ProgressFinish::AndClear),
    )
}
