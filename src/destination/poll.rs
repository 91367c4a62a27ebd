//! `DEST/manifest.validators`: what the origin said about the manifest a host holds, so the
//! next poll can ask whether it changed (`If-None-Match`, `If-Modified-Since`) and, on
//! `304 Not Modified`, transfer no manifest at all.
//!
//! The file names the URL the manifest came from (validators mean something only to the
//! server and file that made them, so with mirrors they are kept for the one that served
//! the host's copy) and the SHA-256 of that copy: validators are only used while
//! `DEST/manifest` is the very file they describe, whatever happened in between. It is
//! written atomically like every file tako keeps, removed before a new manifest replaces
//! the old one, and anything wrong with it only costs one full download.
//!
//! ```text
//! url https://images.example.com/app/manifest
//! sha256 9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f
//! etag "5f3e-1d2c"
//! last-modified Tue, 24 Nov 2026 10:00:00 GMT
//! ```

use sha2::{Digest, Sha256};

use crate::format::validators::Validators;
use crate::fs::{Dir, IoError};

pub const FILE_NAME: &str = "manifest.validators";

/// A handful of short lines; anything larger is not ours.
const MAX_SIZE: u64 = 8 * 1024;

/// The validators kept in `dest` for the manifest `bytes`, if there are any and they
/// describe exactly these bytes.
pub fn read(dest: &Dir, bytes: &[u8]) -> Option<Validators> {
    // Never through a symlink planted in our place, never blocked by a FIFO, never
    // more than a few lines: anything odd just means no conditional request.
    let raw = dest.read_file(FILE_NAME, MAX_SIZE, "read").ok().flatten()?;
    let text = String::from_utf8(raw).ok()?;
    let (mut url, mut digest, mut etag, mut last_modified) = (None, None, None, None);
    for line in text.lines() {
        let (key, value) = line.split_once(' ')?;
        if value.is_empty() || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return None;
        }
        let slot = match key {
            "url" => &mut url,
            "sha256" => &mut digest,
            "etag" => &mut etag,
            "last-modified" => &mut last_modified,
            _ => return None,
        };
        *slot = Some(value.to_owned());
    }
    if digest? != hex::encode(Sha256::digest(bytes)) || (etag.is_none() && last_modified.is_none())
    {
        return None;
    }
    Some(Validators {
        url: url?,
        etag,
        last_modified,
    })
}

/// Records `new` as the validators of the manifest `bytes` in `dest`, or removes the
/// record when there are none; nothing is written when `known` already says the same.
pub fn update(
    dest: &Dir,
    known: Option<&Validators>,
    new: Option<&Validators>,
    bytes: &[u8],
) -> Result<(), IoError> {
    if known == new {
        return Ok(());
    }
    let Some(new) = new else {
        return forget(dest);
    };
    let mut text = format!(
        "url {}\nsha256 {}\n",
        new.url,
        hex::encode(Sha256::digest(bytes))
    );
    if let Some(etag) = &new.etag {
        text.push_str(&format!("etag {etag}\n"));
    }
    if let Some(date) = &new.last_modified {
        text.push_str(&format!("last-modified {date}\n"));
    }
    dest.write_file(FILE_NAME, text.as_bytes())?;
    Ok(())
}

/// Removes the record, durably; none is fine.
pub fn forget(dest: &Dir) -> Result<(), IoError> {
    if dest.remove(FILE_NAME)? {
        dest.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators(etag: Option<&str>, date: Option<&str>) -> Validators {
        Validators {
            url: "http://h/app/manifest".to_owned(),
            etag: etag.map(str::to_owned),
            last_modified: date.map(str::to_owned),
        }
    }

    #[test]
    fn validators_are_kept_for_the_manifest_they_describe_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let v = validators(Some("\"abc\""), Some("Tue, 24 Nov 2026 10:00:00 GMT"));
        update(&dir, None, Some(&v), b"manifest one").unwrap();
        assert_eq!(read(&dir, b"manifest one"), Some(v.clone()));
        assert_eq!(read(&dir, b"manifest two"), None);
        let only_date = validators(None, Some("Tue, 24 Nov 2026 10:00:00 GMT"));
        update(&dir, Some(&v), Some(&only_date), b"manifest two").unwrap();
        assert_eq!(read(&dir, b"manifest two"), Some(only_date.clone()));
        update(&dir, Some(&only_date), None, b"manifest two").unwrap();
        assert!(!tmp.path().join(FILE_NAME).exists());
        forget(&dir).unwrap();
    }

    #[test]
    fn a_damaged_or_foreign_record_counts_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let path = tmp.path().join(FILE_NAME);
        let digest = hex::encode(Sha256::digest(b"m"));
        for text in [
            format!("url http://h/manifest\nsha256 {digest}\n"),
            format!("url http://h/manifest\nsha256 {digest}\netag \"a\u{1b}\"\n"),
            format!("url http://h/manifest\nsha256 {digest}\nbogus x\n"),
            format!("sha256 {digest}\netag \"a\"\n"),
        ] {
            std::fs::write(&path, &text).unwrap();
            assert_eq!(read(&dir, b"m"), None, "{text:?}");
        }
        std::fs::remove_file(&path).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, format!("url u\nsha256 {digest}\netag \"a\"\n")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert_eq!(read(&dir, b"m"), None, "never read through a symlink");
    }
}
