//! `DEST/withdrawn`: the images the publisher withdrew (410 Gone), so that later runs pass
//! over them without a request and without a word.
//!
//! Without it, a withdrawn version cost every host a warning (and, with an older image in
//! the store, a doomed delta attempt) on every run, forever, and kept `tako check` offering
//! it. A digest is remembered when every place of the origin answered 410 for its image; it
//! is forgotten when that image installs after all. A remembered image is asked for again,
//! quietly, [`ASK_AGAIN_AFTER`] after it was last found withdrawn, so that a withdrawal
//! made by mistake and undone on the server reaches hosts by itself.
//!
//! One line per image, the oldest first: its SHA-256 in lowercase hex and the Unix time it
//! was last found withdrawn. At most [`MAX_ENTRIES`] are kept (the oldest go first). The
//! file is written atomically like every file tako keeps; anything odd in it (a line that
//! is not ours, a symlink, a FIFO, an oversized file) only means that an image is asked
//! for once more.
//!
//! ```text
//! 3f0e4e2d363d87430a28e726f74222d982fa8fb198e0bdcd2894ea2d90d515c6 1795000000
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fs::{Dir, IoError};

pub const FILE_NAME: &str = "withdrawn";

/// How many withdrawn images a destination remembers.
pub const MAX_ENTRIES: usize = 1000;

/// How long a withdrawn image is passed over before it is asked for again.
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A line is 64 hex digits, a space, at most 20 digits and a newline.
const MAX_SIZE: u64 = (MAX_ENTRIES as u64) * 86;

/// The images remembered as withdrawn, the oldest first.
#[derive(Debug, Clone, Default)]
pub struct Withdrawn {
    entries: Vec<(String, u64)>,
    changed: bool,
}

impl Withdrawn {
    /// What `dest` remembers; nothing if the file is missing or not ours.
    pub fn read(dest: &Dir) -> Withdrawn {
        let raw = dest.read_file(FILE_NAME, MAX_SIZE, "read").ok().flatten();
        let text = raw.and_then(|raw| String::from_utf8(raw).ok());
        let mut withdrawn = Withdrawn::default();
        for line in text.as_deref().unwrap_or("").lines() {
            let Some((hex, when)) = line.split_once(' ') else {
                continue;
            };
            let Ok(when) = when.parse::<u64>() else {
                continue;
            };
            if is_digest(hex) && !withdrawn.contains(hex) {
                withdrawn.entries.push((hex.to_owned(), when));
            }
        }
        let excess = withdrawn.entries.len().saturating_sub(MAX_ENTRIES);
        withdrawn.entries.drain(..excess);
        withdrawn
    }

    /// Whether the image `hex` is remembered as withdrawn, however long ago.
    pub fn contains(&self, hex: &str) -> bool {
        self.entries.iter().any(|(h, _)| h == hex)
    }

    /// Whether the image `hex` is to be passed over now: remembered, and found withdrawn
    /// less than [`ASK_AGAIN_AFTER`] before `now`.
    pub fn skip(&self, hex: &str, now: SystemTime) -> bool {
        let now = seconds(now);
        self.entries
            .iter()
            .any(|(h, when)| h == hex && now.saturating_sub(*when) < ASK_AGAIN_AFTER.as_secs())
    }

    /// Remembers `hex` as found withdrawn at `now`, the newest entry.
    pub fn remember(&mut self, hex: &str, now: SystemTime) {
        self.entries.retain(|(h, _)| h != hex);
        self.entries.push((hex.to_owned(), seconds(now)));
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        self.entries.drain(..excess);
        self.changed = true;
    }

    /// Forgets `hex`: its image was served after all.
    pub fn forget(&mut self, hex: &str) {
        let before = self.entries.len();
        self.entries.retain(|(h, _)| h != hex);
        self.changed |= self.entries.len() != before;
    }

    /// Writes what changed since [`Withdrawn::read`] to `dest`, atomically; removes the
    /// file when nothing is remembered.
    pub fn save(&self, dest: &Dir) -> Result<(), IoError> {
        if !self.changed {
            return Ok(());
        }
        if self.entries.is_empty() {
            if dest.remove(FILE_NAME)? {
                dest.sync()?;
            }
            return Ok(());
        }
        let text: String = self
            .entries
            .iter()
            .map(|(hex, when)| format!("{hex} {when}\n"))
            .collect();
        dest.write_file(FILE_NAME, text.as_bytes())?;
        Ok(())
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn is_digest(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(n: usize) -> String {
        format!("{n:064x}")
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_withdrawn_image_is_passed_over_until_it_is_time_to_ask_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut w = Withdrawn::read(&dir);
        w.remember(&hex(1), at(1_000));
        w.save(&dir).unwrap();
        let w = Withdrawn::read(&dir);
        assert!(w.skip(&hex(1), at(1_000)));
        assert!(w.skip(&hex(1), at(1_000 + ASK_AGAIN_AFTER.as_secs() - 1)));
        assert!(!w.skip(&hex(1), at(1_000 + ASK_AGAIN_AFTER.as_secs())));
        assert!(w.contains(&hex(1)));
        assert!(!w.contains(&hex(2)));
    }

    #[test]
    fn at_most_a_thousand_are_kept_and_the_oldest_go_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut w = Withdrawn::default();
        for n in 0..MAX_ENTRIES + 5 {
            w.remember(&hex(n), at(n as u64));
        }
        w.save(&dir).unwrap();
        let w = Withdrawn::read(&dir);
        assert!(!w.contains(&hex(4)));
        assert!(w.contains(&hex(5)));
        assert!(w.contains(&hex(MAX_ENTRIES + 4)));
        let size = std::fs::metadata(tmp.path().join(FILE_NAME)).unwrap().len();
        assert!(size <= MAX_SIZE, "{size}");
    }

    #[test]
    fn a_forgotten_image_is_asked_for_again_and_the_last_one_removes_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut w = Withdrawn::default();
        w.remember(&hex(1), at(5));
        w.save(&dir).unwrap();
        let mut w = Withdrawn::read(&dir);
        w.forget(&hex(1));
        w.save(&dir).unwrap();
        assert!(!tmp.path().join(FILE_NAME).exists());
    }

    #[test]
    fn lines_that_are_not_ours_are_ignored_and_a_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let path = tmp.path().join(FILE_NAME);
        let text = format!(
            "{} 5\nnot ours\n{} x\n{} 7\n../../etc 9\n",
            hex(1),
            hex(2),
            hex(1).to_uppercase()
        );
        std::fs::write(&path, text).unwrap();
        let w = Withdrawn::read(&dir);
        assert!(w.contains(&hex(1)));
        assert!(!w.contains(&hex(2)));
        std::fs::remove_file(&path).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, format!("{} 5\n", hex(3))).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(!Withdrawn::read(&dir).contains(&hex(3)));
    }
}
