//! Progress bars for downloads, for a person watching a terminal.
//!
//! Drawn on standard error, and only when it is a terminal: the caller
//! decides that (`update::fetch::Options::progress`), and indicatif checks again, so
//! a bar never lands in a journal, a log file or a pipe.

use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

use crate::format::size;
use crate::format::text::untrusted_max;

/// Bytes, percentage, rate and time left; the prefix names the config and version. The
/// sizes and the rate are in tako's one style (`format::size`), not indicatif's own.
const TEMPLATE: &str = "{prefix} [{bar:30}] {done}/{total} {percent:>3}% {rate} ETA {eta}";

/// The bar's style: [`TEMPLATE`] with its sizes written by `format::size`.
fn style() -> ProgressStyle {
    // A template error would be a bug in TEMPLATE; indicatif's default bar
    // still shows the progress.
    ProgressStyle::with_template(TEMPLATE)
        .map(|s| {
            s.progress_chars("=> ")
                .with_key(
                    "done",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&size::human(state.pos()));
                    },
                )
                .with_key(
                    "total",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&size::human(state.len().unwrap_or(0)));
                    },
                )
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        // Whole bytes per second; a rate is never negative or NaN in practice,
                        // and `as` saturates if it were.
                        let _ = write!(w, "{}/s", size::human(state.per_sec() as u64));
                    },
                )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar for downloading `size` bytes of `version` for the config `name`.
/// It is cleared when dropped, finished or not: the result line follows.
pub fn download_bar(name: &Path, version: &str, size: u64) -> ProgressBar {
    ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr())
        .with_style(style())
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
    bars.add(
        ProgressBar::new(size)
            .with_style(style())
            .with_prefix(untrusted_max(what, 40))
            .with_finish(ProgressFinish::AndClear),
    )
}
