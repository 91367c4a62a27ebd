//! Warnings about optional files found deep down, for the command to print: an unreadable
//! `~/.netrc` or `~/.docker/config.json` is not worth failing a run over, but it is worth a
//! line, and one line per run is enough however many configs looked at it.
//!
//! The floors that find such a file (net/, registry/) may not print, and threading a
//! reporter through every transport would tie them to the commands; so the warning waits
//! here, keyed by the file, until a command takes it (see `commands::say_file_warnings`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Queue {
    /// Every file warned about in this run, so the next config does not repeat it.
    said: BTreeSet<PathBuf>,
    waiting: Vec<String>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    said: BTreeSet::new(),
    waiting: Vec::new(),
});

/// Queues `message` about `path`, unless this run already warned about that file.
pub fn once(path: &Path, message: String) {
    if let Ok(mut queue) = QUEUE.lock()
        && queue.said.insert(path.to_path_buf())
    {
        queue.waiting.push(message);
    }
}

/// The warnings queued since the last call, oldest first.
pub fn take() -> Vec<String> {
    QUEUE
        .lock()
        .map(|mut queue| std::mem::take(&mut queue.waiting))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_warned_about_once_per_run() {
        let path = Path::new("/nonexistent/tako-warnings-test/.netrc");
        once(path, "first".to_owned());
        once(path, "second".to_owned());
        let taken = take();
        assert_eq!(taken.iter().filter(|w| *w == "first").count(), 1);
        assert!(!taken.iter().any(|w| w == "second"), "{taken:?}");
        once(path, "third".to_owned());
        assert!(!take().iter().any(|w| w == "third"));
    }
}
