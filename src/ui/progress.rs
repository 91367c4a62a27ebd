//! Progress bars for downloads, for a person watching a terminal.
//!
//! Drawn on standard error, and only when it is a terminal: the caller decides that
//! (`update::fetch::Options::progress`), so a bar never lands in a journal, a log file or a
//! pipe.
//!
//! Each line is laid out here rather than by an indicatif template, for two reasons:
//! - The rate and the time left count only the bytes that came over the network since the
//!   bar appeared. indicatif's estimate counts every step of the bar, so the bytes of a
//!   resumed download already on disk, or the chunks of a delta copied from a local image,
//!   showed as "509 GiB/s".
//! - The line fits the terminal: `COLUMNS`, else the terminal's width, else 80 columns; the
//!   name is shortened, then the bar, then the details dropped, never wrapped onto a second
//!   line (which the next redraw would leave behind).

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{
    ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle, TermLike,
};

use crate::format::size;
use crate::format::text::untrusted_max;

/// The environment variable that sets the width of the progress lines, as for `ls`.
pub const COLUMNS_VAR: &str = "COLUMNS";

/// The width without `COLUMNS` or a terminal to ask.
const DEFAULT_COLUMNS: usize = 80;
/// The rate is measured over about this long, so that it follows a connection that speeds
/// up or slows down but does not jump with every read.
const WINDOW: Duration = Duration::from_secs(5);
/// No rate is shown before the bar is this old: the first reads say nothing yet.
const SETTLE: Duration = Duration::from_millis(300);
/// Samples closer together than this are not kept (a bar is drawn at most 20 times a
/// second, and the window needs only a few).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const MIN_BAR: usize = 10;
const MAX_BAR: usize = 30;
/// A name is not shortened below this many characters while the bar can shrink instead.
const MIN_NAME: usize = 12;

/// The network rate of one download: how far the bar moved over the last few seconds,
/// starting from where it stood when it appeared, not from zero.
#[derive(Debug, Clone)]
pub struct Meter {
    /// (time since the bar appeared, bytes of the bar then), oldest first, never empty.
    samples: VecDeque<(Duration, u64)>,
}

impl Meter {
    /// A meter for a bar that starts at `done` bytes: those were there already (a resumed
    /// download's partial) and are not part of any rate.
    pub fn new(done: u64) -> Meter {
        Meter {
            samples: VecDeque::from([(Duration::ZERO, done)]),
        }
    }

    /// The bar stood at `position` bytes at `at` after it appeared.
    pub fn record(&mut self, at: Duration, position: u64) {
        let Some(&(last, _)) = self.samples.back() else {
            self.samples.push_back((at, position));
            return;
        };
        if at < last {
            return;
        }
        if at.saturating_sub(last) < SAMPLE_EVERY && self.samples.len() > 1 {
            // Replace the newest instead of piling up samples between two draws.
            self.samples.pop_back();
        }
        self.samples.push_back((at, position));
        // Keep one sample at or before the start of the window, so that the rate always
        // spans the whole window once the bar is that old.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| at.saturating_sub(t) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` until the bar is [`SETTLE`] old.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, p0), &(t1, p1)) = (self.samples.front()?, self.samples.back()?);
        let span = t1.checked_sub(t0)?;
        if t1 < SETTLE || span.is_zero() {
            return None;
        }
        Some(p1.saturating_sub(p0) as f64 / span.as_secs_f64())
    }

    /// The time the rest of `total` takes at the current rate; `None` without a rate, or
    /// while nothing arrives.
    pub fn eta(&self, total: u64) -> Option<Duration> {
        let rate = self.rate().filter(|r| *r > 0.0)?;
        let &(_, position) = self.samples.back()?;
        let left = total.saturating_sub(position) as f64 / rate;
        Duration::try_from_secs_f64(left).ok()
    }
}

/// What one progress line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown<'a> {
    /// The config and version, or the layer: already escaped.
    pub name: &'a str,
    pub position: u64,
    pub total: u64,
    /// Network bytes per second.
    pub rate: Option<f64>,
    pub eta: Option<Duration>,
}

/// The line for `shown`, at most `width` characters: `NAME [=====>    ] 4.0 MiB/10.0 MiB
/// 40% 1.0 MiB/s ETA 0:06`. A narrow terminal first shortens the name, then the bar, then
/// drops the bar, the name and the rate and time left, in that order.
pub fn render(shown: &Shown<'_>, width: usize) -> String {
    let percent = match shown.total {
        0 => 100,
        total => (u128::from(shown.position.min(total)) * 100 / u128::from(total)) as u64,
    };
    let counts = format!(
        "{}/{} {percent:>3}%",
        size::human(shown.position),
        size::human(shown.total)
    );
    let speed = match (shown.rate, shown.eta) {
        (Some(rate), Some(eta)) => format!(" {}/s ETA {}", per_second(rate), clock(eta)),
        (Some(rate), None) => format!(" {}/s", per_second(rate)),
        _ => String::new(),
    };
    let tail = format!("{counts}{speed}");
    let name_len = shown.name.chars().count();
    let tail_len = tail.chars().count();
    let filled = |bar: usize| -> String {
        let done = match shown.total {
            0 => bar,
            total => {
                (u128::from(shown.position.min(total)) * bar as u128 / u128::from(total)) as usize
            }
        };
        let mut text = "=".repeat(done);
        if done < bar {
            text.push('>');
            text.push_str(&" ".repeat(bar - done - 1));
        }
        text
    };
    // "NAME [BAR] TAIL": the brackets and two spaces take 4 columns.
    let room = width.saturating_sub(tail_len + 4);
    if room >= name_len + MIN_BAR {
        let bar = (room - name_len).min(MAX_BAR);
        return format!("{} [{}] {tail}", shown.name, filled(bar));
    }
    if room >= MIN_NAME + MIN_BAR {
        let name = shorten(shown.name, room - MIN_BAR);
        let bar = room - name.chars().count();
        return format!("{name} [{}] {tail}", filled(bar));
    }
    let without_bar = width.saturating_sub(tail_len + 1);
    if without_bar >= MIN_NAME {
        return format!("{} {tail}", shorten(shown.name, without_bar));
    }
    if tail_len <= width {
        return tail;
    }
    shorten(&counts, width)
}

/// `text` cut to at most `max` characters, the cut marked with `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// A rate as a size per second: `512 bytes`, `4.0 MiB`.
fn per_second(rate: f64) -> String {
    // Saturates; a rate beyond u64 bytes per second is not a real one anyway.
    size::human(rate as u64)
}

/// A duration as `0:42`, `12:05` or `3:02:09`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", (s / 60) % 60, s % 60),
    }
}

/// The width progress lines must fit: `COLUMNS` when it is a positive number, else the
/// width of the terminal on standard error, else 80. One column is left free, so that the
/// cursor never waits in the last one for a wrap.
fn columns() -> usize {
    let from_env = std::env::var(COLUMNS_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    let width = from_env
        .or_else(|| {
            rustix::termios::tcgetwinsize(std::io::stderr())
                .ok()
                .map(|size| usize::from(size.ws_col))
                .filter(|&c| c > 0)
        })
        .unwrap_or(DEFAULT_COLUMNS);
    width.saturating_sub(1).max(1)
}

/// Standard error as indicatif's terminal, drawn with plain ANSI sequences and as wide as
/// [`columns`] says.
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, text: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(text.as_bytes())
    }
    fn movement(&self, n: usize, code: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}{code}"))
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        // indicatif lays out nothing wider than the line `render` made; this is only
        // its notion of the screen.
        u16::try_from(columns()).unwrap_or(u16::MAX)
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.movement(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.movement(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.movement(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.movement(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Where bars are drawn: standard error, at most 20 times a second.
fn target() -> ProgressDrawTarget {
    ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 20)
}

/// The style that draws a whole line with [`render`], for a bar named `name` that starts
/// at `done` bytes.
fn style(name: String, done: u64) -> ProgressStyle {
    let meter = Arc::new(Mutex::new(Meter::new(done)));
    let line = move |state: &ProgressState, w: &mut dyn fmt::Write| {
        let total = state.len().unwrap_or(state.pos());
        let (rate, eta) = match meter.lock() {
            Ok(mut meter) => {
                meter.record(state.elapsed(), state.pos());
                (meter.rate(), meter.eta(total))
            }
            // A draw that panicked elsewhere: show no rate rather than a wrong one.
            Err(_) => (None, None),
        };
        let shown = Shown {
            name: &name,
            position: state.pos(),
            total,
            rate,
            eta,
        };
        let _ = w.write_str(&render(&shown, columns()));
    };
    // "{line}" is a valid template; should indicatif ever refuse it, its default bar
    // still shows the progress.
    ProgressStyle::with_template("{line}")
        .map(|s| s.with_key("line", line))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar for downloading `total` bytes of `version` for the config `name`, of which `done`
/// are on disk already (a resumed download). It is cleared when dropped, finished or not:
/// the result line follows.
pub fn download_bar(name: &Path, version: &str, done: u64, total: u64) -> ProgressBar {
    let label = format!(
        "{} {}",
        untrusted_max(&name.display().to_string(), 40),
        untrusted_max(version, 40)
    );
    let bar = ProgressBar::with_draw_target(Some(total), target())
        .with_style(style(label, done))
        .with_finish(ProgressFinish::AndClear);
    bar.set_position(done);
    // Redrawn five times a second, also while nothing arrives, so that the rate falls and
    // the time left grows (with a ticker, indicatif draws on its ticks only).
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Bars drawn together on standard error, one per download of a container image pull
/// (several layers download at once).
pub fn bars() -> indicatif::MultiProgress {
    indicatif::MultiProgress::with_draw_target(target())
}

/// A bar for downloading `total` bytes of `what` (a layer), `done` of them on disk already,
/// added to `bars`.
pub fn blob_bar(bars: &indicatif::MultiProgress, what: &str, done: u64, total: u64) -> ProgressBar {
    let bar = bars.add(
        ProgressBar::new(total)
            .with_style(style(untrusted_max(what, 40), done))
            .with_finish(ProgressFinish::AndClear),
    );
    bar.set_position(done);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_download_resumed_at_ninety_percent_reports_the_network_rate_not_total_over_elapsed() {
        // 900 MiB were on disk; 10 MiB arrive in 2 s.
        let mut meter = Meter::new(900 * MIB);
        for step in 1..=20 {
            meter.record(at(step * 100), 900 * MIB + step * MIB / 2);
        }
        let rate = meter.rate().unwrap();
        assert!((rate - 5.0 * MIB as f64).abs() < 1.0, "{rate}");
        // 90 MiB left at 5 MiB/s.
        assert_eq!(meter.eta(1000 * MIB).unwrap().as_secs(), 18);
    }

    #[test]
    fn bytes_copied_before_the_bar_appears_never_count_as_speed() {
        // A delta's bar counts only its ranges; a resume's starts where the partial ends.
        let mut meter = Meter::new(509 * 1024 * MIB);
        meter.record(at(600), 509 * 1024 * MIB);
        assert_eq!(meter.rate(), Some(0.0));
        assert_eq!(
            meter.eta(510 * 1024 * MIB),
            None,
            "no time left while nothing comes"
        );
    }

    #[test]
    fn no_rate_is_shown_before_the_bar_is_a_moment_old() {
        let mut meter = Meter::new(0);
        meter.record(at(50), MIB);
        assert_eq!(meter.rate(), None);
        assert_eq!(meter.eta(10 * MIB), None);
    }

    #[test]
    fn the_rate_follows_the_last_seconds_not_the_whole_download() {
        let mut meter = Meter::new(0);
        // 10 s at 10 MiB/s, then 10 s at 1 MiB/s.
        let mut position = 0;
        for step in 1..=200 {
            position += if step <= 100 { MIB } else { MIB / 10 };
            meter.record(at(step * 100), position);
        }
        let rate = meter.rate().unwrap();
        assert!((rate - MIB as f64).abs() < MIB as f64 * 0.05, "{rate}");
        assert!(meter.samples.len() <= 60, "{}", meter.samples.len());
    }

    #[test]
    fn a_clock_going_backwards_is_ignored() {
        let mut meter = Meter::new(0);
        meter.record(at(1000), MIB);
        meter.record(at(500), 100 * MIB);
        assert_eq!(meter.rate(), Some(MIB as f64));
    }

    fn shown(name: &str) -> Shown<'_> {
        Shown {
            name,
            position: 4 * MIB,
            total: 10 * MIB,
            rate: Some(MIB as f64),
            eta: Some(Duration::from_secs(6)),
        }
    }

    #[test]
    fn a_wide_line_shows_everything_with_a_bar_of_thirty() {
        let line = render(&shown("app.tako 1.2.0"), 200);
        assert_eq!(
            line,
            format!(
                "app.tako 1.2.0 [{}>{}] 4.0 MiB/10.0 MiB  40% 1.0 MiB/s ETA 0:06",
                "=".repeat(12),
                " ".repeat(17)
            )
        );
    }

    #[test]
    fn every_line_fits_its_width_however_narrow() {
        let long = "a".repeat(90);
        for name in ["app.tako 1.2.0", long.as_str()] {
            for width in 1..=140 {
                let line = render(&shown(name), width);
                assert!(
                    line.chars().count() <= width,
                    "{width}: {line:?} ({} chars)",
                    line.chars().count()
                );
            }
        }
    }

    #[test]
    fn a_narrow_terminal_shortens_the_name_before_it_drops_the_bar() {
        let long = format!("/etc/tako/{}.tako 1.2.0", "x".repeat(60));
        let line = render(&shown(&long), 80);
        assert_eq!(line.chars().count(), 80, "{line}");
        assert!(line.contains("…"), "{line}");
        assert!(line.contains(" [=="), "{line}");
        assert!(line.ends_with("1.0 MiB/s ETA 0:06"), "{line}");
        let line = render(&shown(&long), 50);
        assert!(!line.contains('['), "{line}");
        assert!(line.ends_with("ETA 0:06"), "{line}");
    }

    #[test]
    fn times_left_read_as_a_clock() {
        assert_eq!(clock(Duration::from_secs(42)), "0:42");
        assert_eq!(clock(Duration::from_secs(725)), "12:05");
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 129)), "3:02:09");
    }

    #[test]
    fn a_bar_of_nothing_is_full_and_a_line_without_a_rate_has_no_speed() {
        let empty = Shown {
            name: "x",
            position: 0,
            total: 0,
            rate: None,
            eta: None,
        };
        assert_eq!(
            render(&empty, 80),
            format!("x [{}] 0 bytes/0 bytes 100%", "=".repeat(30))
        );
    }
}
