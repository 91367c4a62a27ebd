//! Writing lines to stdout and stderr without panicking when either is closed.
//!
//! `println!` panics on a write error (a closed pipe, a full disk behind a
//! redirect); a tool run by timers and scripts must not.
//!
//! Error and warning lines go through [`error_line`] and [`warning_line`]:
//! when standard error is connected to the journal, they get the syslog
//! priority prefix (`<3>`, `<4>`) that journald strips and records as the
//! line's priority, so `journalctl -p warning` shows them. Without it the
//! journal files every line as plain info.

use crate::format::size;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

/// The variable systemd sets to `DEVICE:INODE` of the stream it connected
/// to the journal, so a process can tell whether its output still goes there.
pub const JOURNAL_STREAM_VAR: &str = "JOURNAL_STREAM";

/// syslog priority `err`.
const PRIORITY_ERROR: &str = "<3>";
/// syslog priority `warning`.
const PRIORITY_WARNING: &str = "<4>";

/// Writes `text` to standard output.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes one line to standard output; a failure is ignored, as there is
/// nowhere left to report it.
pub fn stdout_line(line: &str) {
    let _ = stdout(&format!("{line}\n"));
}

/// Writes `value` as one line of JSON to standard output (JSON Lines); a
/// failure to write is ignored, as for [`stdout_line`].
pub fn json_line<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(line) => stdout_line(&line),
        // Only maps with non-string keys fail, and the records have none.
        Err(e) => error_line(&format!("cannot encode a JSON record: {e}")),
    }
}

/// A size for people, in tako's one style: `512 bytes`, `1.2 MiB` (see `format::size`).
pub fn size_text(size: u64) -> String {
    size::human(size)
}

/// Writes one line to standard error; a failure is ignored.
pub fn stderr_line(line: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// Writes `tako: error: <message>` to standard error, with the journal's
/// error priority when standard error is the journal.
pub fn error_line(message: &str) {
    stderr_line(&format!("{}tako: error: {message}", prefix(PRIORITY_ERROR)));
}

/// Writes `tako: warning: <message>` to standard error, with the journal's
/// warning priority when standard error is the journal.
pub fn warning_line(message: &str) {
    stderr_line(&format!(
        "{}tako: warning: {message}",
        prefix(PRIORITY_WARNING)
    ));
}

fn prefix(priority: &'static str) -> &'static str {
    if stderr_is_journal() { priority } else { "" }
}

/// Whether standard error is the stream systemd connected to the journal.
/// Decided once: the answer cannot change during a run.
pub fn stderr_is_journal() -> bool {
    static IS_JOURNAL: OnceLock<bool> = OnceLock::new();
    *IS_JOURNAL.get_or_init(|| {
        let Some(wanted) = std::env::var(JOURNAL_STREAM_VAR)
            .ok()
            .and_then(|v| parse_journal_stream(&v))
        else {
            return false;
        };
        // The variable is inherited by children whose stderr was redirected
        // elsewhere (a file, a pipe to a script); only the very stream that
        // systemd set up counts, identified by device and inode.
        stderr_identity().is_some_and(|found| found == wanted)
    })
}

/// `DEVICE:INODE` in decimal, as systemd writes it.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The device and inode of what file descriptor 2 refers to.
fn stderr_identity() -> Option<(u64, u64)> {
    // fstat on a duplicate of the descriptor: safe code, and it works for
    // sockets (the journal) as well as files and pipes.
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_journal_stream_variable() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        for bad in ["", "8", "8:", ":1", "a:b", "8:1:2", "-1:2"] {
            assert_eq!(parse_journal_stream(bad), None, "{bad}");
        }
    }
}
