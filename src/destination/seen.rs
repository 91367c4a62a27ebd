//! `DEST/manifest.seen`: since when the mirror a host takes its manifest from has served the
//! very same file, so that a first mirror frozen on an old release (stale or hostile) is
//! noticed: once it has not changed for `MirrorStaleAfter=`, the next mirror is asked too
//! (see `update::select`).
//!
//! Three short lines: the origin (as printed, credentials hidden) that served the manifest,
//! the SHA-256 of what it served, and the Unix time from which it has served it unchanged
//! (or when another mirror last confirmed it). Only kept when a config has mirrors. It is
//! written atomically like every file tako keeps; anything odd in it (a symlink, a FIFO,
//! lines that are not ours) counts as no record, which only means the clock starts again.
//!
//! ```text
//! origin https://mirror-1.example.com/app
//! sha256 9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f
//! since 1795000000
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::fs::{Dir, IoError};

pub const FILE_NAME: &str = "manifest.seen";

/// A few short lines; anything larger is not ours.
const MAX_SIZE: u64 = 8 * 1024;

/// What one origin served, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The origin as printed.
    pub origin: String,
    /// The SHA-256 of the manifest file it served, lowercase hex.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl Seen {
    /// `origin` serving `bytes` from `now` on.
    pub fn new(origin: &str, bytes: &[u8], now: SystemTime) -> Seen {
        Seen {
            origin: origin.to_owned(),
            sha256: hex::encode(Sha256::digest(bytes)),
            since: seconds(now),
        }
    }

    /// What is known of `origin` serving `bytes` at `now`: this record if it is of the
    /// same origin and bytes, else a new one that starts now.
    pub fn update(record: Option<&Seen>, origin: &str, bytes: &[u8], now: SystemTime) -> Seen {
        let new = Seen::new(origin, bytes, now);
        match record {
            Some(old) if old.origin == new.origin && old.sha256 == new.sha256 => old.clone(),
            _ => new,
        }
    }

    /// How long it has been unchanged at `now` (nothing if the clock went back).
    pub fn unchanged_for(&self, now: SystemTime) -> Duration {
        Duration::from_secs(seconds(now).saturating_sub(self.since))
    }

    /// The record as kept in `dest`, if there is one that is ours.
    pub fn read(dest: &Dir) -> Option<Seen> {
        let raw = dest.read_file(FILE_NAME, MAX_SIZE, "read").ok().flatten()?;
        let text = String::from_utf8(raw).ok()?;
        let (mut origin, mut sha256, mut since) = (None, None, None);
        for line in text.lines() {
            let (key, value) = line.split_once(' ')?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            let slot = match key {
                "origin" => &mut origin,
                "sha256" => &mut sha256,
                "since" => &mut since,
                _ => return None,
            };
            *slot = Some(value.to_owned());
        }
        let sha256 =
            sha256.filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(Seen {
            origin: origin?,
            sha256,
            since: since?.parse().ok()?,
        })
    }

    /// Keeps this record in `dest`, atomically, unless `old` already says the same.
    pub fn save(&self, dest: &Dir, old: Option<&Seen>) -> Result<(), IoError> {
        if old == Some(self) {
            return Ok(());
        }
        let text = format!(
            "origin {}\nsha256 {}\nsince {}\n",
            self.origin, self.sha256, self.since
        );
        dest.write_file(FILE_NAME, text.as_bytes())?;
        Ok(())
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn the_clock_runs_while_the_same_origin_serves_the_same_bytes_and_restarts_otherwise() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let first = Seen::update(None, "http://a", b"m1", at(100));
        first.save(&dir, None).unwrap();
        let read = Seen::read(&dir).unwrap();
        assert_eq!(read, first);
        let later = Seen::update(Some(&read), "http://a", b"m1", at(500));
        assert_eq!(later.unchanged_for(at(500)), Duration::from_secs(400));
        let changed = Seen::update(Some(&read), "http://a", b"m2", at(500));
        assert_eq!(changed.unchanged_for(at(500)), Duration::ZERO);
        let elsewhere = Seen::update(Some(&read), "http://b", b"m1", at(500));
        assert_eq!(elsewhere.unchanged_for(at(500)), Duration::ZERO);
        assert_eq!(
            later.unchanged_for(at(50)),
            Duration::ZERO,
            "a clock set back"
        );
    }

    #[test]
    fn a_damaged_or_planted_record_counts_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let path = tmp.path().join(FILE_NAME);
        let digest = "a".repeat(64);
        for text in [
            format!("origin http://a\nsha256 {digest}\nsince soon\n"),
            "origin http://a\nsha256 abc\nsince 5\n".to_owned(),
            format!("origin http://a\nsha256 {digest}\nsince 5\nextra x\n"),
            format!("origin http://\u{1b}a\nsha256 {digest}\nsince 5\n"),
            format!("sha256 {digest}\nsince 5\n"),
        ] {
            std::fs::write(&path, &text).unwrap();
            assert_eq!(Seen::read(&dir), None, "{text:?}");
        }
        std::fs::remove_file(&path).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, format!("origin a\nsha256 {digest}\nsince 5\n")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert_eq!(Seen::read(&dir), None, "never read through a symlink");
    }
}
