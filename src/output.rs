//! Writing lines to stdout and stderr without panicking when either is closed.
//!
//! `println!` panics on a write error (a closed pipe, a full disk behind a
//! redirect); a tool run by timers and scripts must not.

use std::io::{self, Write};

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

/// Writes one line to standard error; a failure is ignored.
pub fn stderr_line(line: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}
