//! `store/<hex>.partial`: the bytes of an image download that failed on the network, kept
//! so that the next attempt (in this run or a later one) asks only for the rest.
//!
//! Next to it, `store/<hex>.partial.validator` holds the `ETag` (or, failing that, the
//! `Last-Modified` date) of the response those bytes came from, sent back as `If-Range`: a
//! server whose file changed since answers with all of the new file instead of a tail that
//! would not fit. Both files are tako's own: a symlink or anything but a regular file found
//! under either name is removed, never followed or read. The whole file is hashed and
//! checked at the end, whatever mix of responses it came from, so a partial can delay a
//! good image but never install a bad one.

use std::fs::{File, Permissions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fs::{Context, Dir, IoError};
use crate::stream::hashing::Prefix;

pub const SUFFIX: &str = ".partial";
pub const VALIDATOR_SUFFIX: &str = ".partial.validator";

/// A validator is an entity tag or a date; anything longer is not one.
const MAX_VALIDATOR: u64 = 1024;

/// The partial download of one image, open for appending. The caller holds the
/// destination's lock.
pub struct Partial<'s> {
    store: &'s Dir,
    hex: String,
    name: String,
    path: PathBuf,
    file: File,
    len: u64,
    validator: Option<String>,
}

impl<'s> Partial<'s> {
    /// Opens `store/<hex>.partial`, creating it empty if there is none.
    pub fn open(store: &'s Dir, hex: &str) -> Result<Partial<'s>, IoError> {
        let name = format!("{hex}{SUFFIX}");
        let path = store.path().join(&name);
        let file = store.open_rw(&name)?;
        let len = file.metadata().context("inspect", &path)?.len();
        let validator = read_validator(store, &format!("{hex}{VALIDATOR_SUFFIX}"));
        Ok(Partial {
            store,
            hex: hex.to_owned(),
            name,
            path,
            file,
            len,
            validator,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bytes are kept.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `If-Range` value the kept bytes came with, if the server sent one.
    pub fn validator(&self) -> Option<&str> {
        self.validator.as_deref()
    }

    fn validator_name(&self) -> String {
        format!("{}{VALIDATOR_SUFFIX}", self.hex)
    }

    /// Empties the file for a response that starts from byte 0, remembering `validator`
    /// as what the new bytes come with.
    pub fn restart(&mut self, validator: Option<&str>) -> Result<(), IoError> {
        // The old validator goes first: bytes must never be kept under one that is not
        // theirs, or a later `If-Range` would splice two files.
        self.store.remove(&self.validator_name())?;
        self.validator = None;
        self.file.set_len(0).context("truncate", &self.path)?;
        self.file
            .seek(SeekFrom::Start(0))
            .context("seek in", &self.path)?;
        self.len = 0;
        if let Some(validator) = validator {
            self.store
                .write_file(&self.validator_name(), validator.as_bytes())?;
            self.validator = Some(validator.to_owned());
        }
        Ok(())
    }

    /// Hashes the kept bytes, leaving the file positioned after them for appending.
    pub fn prefix(&mut self) -> Result<Prefix, IoError> {
        self.file
            .seek(SeekFrom::Start(0))
            .context("seek in", &self.path)?;
        let prefix = Prefix::read(&mut (&self.file).take(self.len)).context("read", &self.path)?;
        if prefix.size() != self.len {
            return Err(IoError::new(
                "read",
                &self.path,
                io::Error::new(io::ErrorKind::UnexpectedEof, "it shrank while being read"),
            ));
        }
        Ok(prefix)
    }

    /// The file, for appending after [`Partial::prefix`].
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Makes what was written durable, so a later attempt can resume from it.
    pub fn keep(&mut self) -> Result<(), IoError> {
        self.file.sync_data().context("flush", &self.path)?;
        self.len = self.file.metadata().context("inspect", &self.path)?.len();
        self.store.sync()
    }

    /// Deletes the partial if it holds no bytes: an attempt that failed before any
    /// arrived leaves nothing behind.
    pub fn remove_if_empty(&mut self) -> Result<(), IoError> {
        let len = self.file.metadata().context("inspect", &self.path)?.len();
        if len == 0 {
            self.discard()?;
        }
        Ok(())
    }

    /// Deletes the partial and its validator: its bytes are no good.
    pub fn discard(&mut self) -> Result<(), IoError> {
        self.store.remove(&self.name)?;
        self.store.remove(&self.validator_name())?;
        self.store.sync()
    }

    /// Installs the complete, verified file as `store/<hex>`: read-only, flushed, renamed
    /// into place (over a damaged copy, if any), directory flushed.
    pub fn commit(&mut self) -> Result<PathBuf, IoError> {
        self.file
            .set_permissions(Permissions::from_mode(crate::fs::READ_ONLY))
            .context("set permissions of", &self.path)?;
        self.file.sync_all().context("flush", &self.path)?;
        self.store.rename(&self.name, &self.hex)?;
        self.store.remove(&self.validator_name())?;
        self.store.sync()?;
        Ok(self.store.path().join(&self.hex))
    }
}

/// The validator kept as `name`, if it is a small regular file of printable ASCII.
/// Anything else counts as none: the bytes are then resumed without `If-Range`, and the
/// final digest check still guards them.
fn read_validator(store: &Dir, name: &str) -> Option<String> {
    // Sent back to the server: never read through a hard link to someone else's file.
    let bytes = store.read_own_file(name, MAX_VALIDATOR).ok().flatten()?;
    let text = String::from_utf8(bytes).ok()?;
    let fits = !text.is_empty() && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    fits.then_some(text)
}

/// Removes every partial (and validator) in `store` whose image `wanted` does not name, and
/// returns their names.
pub fn remove_unwanted(store: &Dir, wanted: impl Fn(&str) -> bool) -> Result<Vec<String>, IoError> {
    let mut removed = Vec::new();
    for name in store.names()? {
        let hex = name
            .strip_suffix(VALIDATOR_SUFFIX)
            .or_else(|| name.strip_suffix(SUFFIX));
        if let Some(hex) = hex
            && !wanted(hex)
            && store.remove(&name)?
        {
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        removed.sort();
        store.sync()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn store(dir: &tempfile::TempDir) -> Dir {
        Dir::open(dir.path()).unwrap()
    }

    const HEX: &str = "ab";

    #[test]
    fn a_partial_keeps_its_bytes_and_validator_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut p = Partial::open(&store, HEX).unwrap();
        assert!(p.is_empty() && p.validator().is_none());
        p.restart(Some("\"v1\"")).unwrap();
        p.file().write_all(b"hello").unwrap();
        p.keep().unwrap();
        let mut p = Partial::open(&store, HEX).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p.validator(), Some("\"v1\""));
        assert_eq!(p.prefix().unwrap().size(), 5);
        p.file().write_all(b" world").unwrap();
        let path = p.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [HEX]);
    }

    #[test]
    fn restarting_forgets_the_old_validator_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut p = Partial::open(&store, HEX).unwrap();
        p.restart(Some("\"old\"")).unwrap();
        p.file().write_all(b"old bytes").unwrap();
        p.keep().unwrap();
        p.restart(None).unwrap();
        let mut p = Partial::open(&store, HEX).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.validator(), None);
        p.discard().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_symlink_in_place_of_a_partial_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("{HEX}{SUFFIX}"))).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("{HEX}{VALIDATOR_SUFFIX}")))
            .unwrap();
        let store = store(&dir);
        let mut p = Partial::open(&store, HEX).unwrap();
        assert!(p.is_empty(), "the link's target is not taken as kept bytes");
        assert_eq!(p.validator(), None);
        p.restart(None).unwrap();
        p.file().write_all(b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!fs::symlink_metadata(p.path()).unwrap().is_symlink());
    }

    #[test]
    fn unwanted_partials_and_validators_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "aa.partial",
            "aa.partial.validator",
            "bb.partial",
            "cc.partial.validator",
            "dd",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = remove_unwanted(&store(&dir), |hex| hex == "bb").unwrap();
        assert_eq!(
            removed,
            ["aa.partial", "aa.partial.validator", "cc.partial.validator"]
        );
        assert!(dir.path().join("bb.partial").exists() && dir.path().join("dd").exists());
    }
}
