//! `store/<hex>.partial`: the bytes of an image download that failed on the network, kept
//! so that the next attempt (in this run or a later one) asks only for the rest.
//!
//! Next to it, `store/<hex>.partial.validator` says where those bytes came from: its first
//! line is the `ETag` (or, failing that, the `Last-Modified` date) of the response, sent
//! back as `If-Range` so that a server whose file changed since answers with all of the new
//! file instead of a tail that would not fit (the line is empty when the server sent
//! neither); its second line, `origin URL`, names the origin (mirror) that sent them, since
//! another mirror must not be asked for the tail of bytes it cannot vouch for (see
//! `update::image`). A file of one line without a line end, as earlier versions wrote, is a
//! validator from an origin nobody recorded. Both files are tako's own: a symlink or
//! anything but a regular file found under either name is removed, never followed or read.
//! The whole file is hashed and checked at the end, whatever mix of responses it came from,
//! so a partial can delay a good image but never install a bad one.

use std::fs::{File, Permissions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::format::chunk_index::{ChunkIndex, chunk_digest};
use crate::fs::{Context, Dir, IoError};
use crate::stream::deadline::UntilDeadline;
use crate::stream::hashing::Prefix;

pub const SUFFIX: &str = ".partial";
pub const VALIDATOR_SUFFIX: &str = ".partial.validator";

/// A validator is an entity tag or a date, and an origin a URL; a companion file longer
/// than room for both is not one of tako's.
const MAX_COMPANION: u64 = 8192;

/// The line of the companion file that names the origin the bytes came from.
const ORIGIN_PREFIX: &str = "origin ";

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
    origin: Option<String>,
}

impl<'s> Partial<'s> {
    /// Opens `store/<hex>.partial`, creating it empty if there is none.
    pub fn open(store: &'s Dir, hex: &str) -> Result<Partial<'s>, IoError> {
        let name = format!("{hex}{SUFFIX}");
        let path = store.path().join(&name);
        let file = store.open_rw(&name)?;
        let len = file.metadata().context("inspect", &path)?.len();
        let (validator, origin) = read_companion(store, &format!("{hex}{VALIDATOR_SUFFIX}"));
        Ok(Partial {
            store,
            hex: hex.to_owned(),
            name,
            path,
            file,
            len,
            validator,
            origin,
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

    /// The origin (as it describes itself) that sent the kept bytes, if it was recorded.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    fn validator_name(&self) -> String {
        format!("{}{VALIDATOR_SUFFIX}", self.hex)
    }

    /// Empties the file for a response from `origin` that starts from byte 0, remembering
    /// `validator` as what the new bytes come with.
    pub fn restart(&mut self, validator: Option<&str>, origin: &str) -> Result<(), IoError> {
        self.truncate(0, validator, origin)
    }

    /// Keeps only the first `len` bytes (all of them are known to be the image's), which
    /// `origin` is to send the rest of with `validator`.
    pub fn truncate(
        &mut self,
        len: u64,
        validator: Option<&str>,
        origin: &str,
    ) -> Result<(), IoError> {
        // The old record goes first: bytes must never be kept under a validator or an
        // origin that is not theirs, or a later `If-Range` would splice two files.
        self.store.remove(&self.validator_name())?;
        self.validator = None;
        self.origin = None;
        let len = len.min(self.len);
        self.file.set_len(len).context("truncate", &self.path)?;
        self.file
            .seek(SeekFrom::Start(len))
            .context("seek in", &self.path)?;
        self.len = len;
        self.record(validator, origin)
    }

    /// Records, atomically, that the bytes from here on come from `origin` with `validator`.
    /// Only for bytes that the kept ones fit: after [`Partial::restart`] or
    /// [`Partial::truncate`], or when a response continues them.
    pub fn record(&mut self, validator: Option<&str>, origin: &str) -> Result<(), IoError> {
        // A line end in either would make another record of it; neither comes with one
        // (header values and URLs have none), and such a value is better not kept.
        let validator = validator.filter(|v| fits_a_line(v));
        let origin = Some(origin).filter(|o| fits_a_line(o));
        let text = format!(
            "{}\n{}",
            validator.unwrap_or(""),
            origin.map_or(String::new(), |o| format!("{ORIGIN_PREFIX}{o}\n"))
        );
        self.store
            .write_file(&self.validator_name(), text.as_bytes())?;
        self.validator = validator.map(str::to_owned);
        self.origin = origin.map(str::to_owned);
        Ok(())
    }

    /// How many of the kept bytes are, chunk by chunk, those `index` describes: the end of
    /// the last chunk, from the first on, whose bytes all are kept and have its digest.
    /// Reads at most the kept bytes, giving up with a `TimedOut` error at `deadline`.
    pub fn verified_by(
        &mut self,
        index: &ChunkIndex,
        deadline: Option<Instant>,
    ) -> Result<u64, IoError> {
        self.file
            .seek(SeekFrom::Start(0))
            .context("seek in", &self.path)?;
        let mut input = UntilDeadline::new((&self.file).take(self.len), deadline);
        let mut verified = 0u64;
        let mut buf = Vec::new();
        for (start, chunk) in index.offsets() {
            let end = start.saturating_add(u64::from(chunk.length));
            if end > self.len {
                break;
            }
            buf.resize(chunk.length as usize, 0);
            input.read_exact(&mut buf).context("read", &self.path)?;
            if chunk_digest(&buf) != chunk.digest {
                break;
            }
            verified = end;
        }
        Ok(verified)
    }

    /// Hashes the kept bytes, leaving the file positioned after them for appending; gives
    /// up with a `TimedOut` error at `deadline`.
    pub fn prefix(&mut self, deadline: Option<Instant>) -> Result<Prefix, IoError> {
        self.file
            .seek(SeekFrom::Start(0))
            .context("seek in", &self.path)?;
        let mut input = UntilDeadline::new((&self.file).take(self.len), deadline);
        let prefix = Prefix::read(&mut input).context("read", &self.path)?;
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

/// Whether `text` can be a line of the companion file: printable ASCII and spaces.
fn fits_a_line(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// The validator and the origin kept as `name`, if it is a small regular file of lines of
/// printable ASCII (see the module's comment). Anything else counts as neither: the bytes
/// are then from an unknown origin, which only a verified prefix of is resumed, and the
/// final digest check still guards them.
fn read_companion(store: &Dir, name: &str) -> (Option<String>, Option<String>) {
    // Sent back to the server: never read through a hard link to someone else's file.
    let Some(text) = store
        .read_own_file(name, MAX_COMPANION)
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return (None, None);
    };
    let Some(body) = text.strip_suffix('\n') else {
        // One line without an end: a validator as earlier versions kept it.
        return (fits_a_line(&text).then_some(text), None);
    };
    let mut lines = body.split('\n');
    let validator = lines.next().filter(|v| fits_a_line(v)).map(str::to_owned);
    let origin = lines
        .next()
        .and_then(|line| line.strip_prefix(ORIGIN_PREFIX))
        .filter(|o| fits_a_line(o))
        .map(str::to_owned);
    if lines.next().is_some() {
        return (None, None);
    }
    (validator, origin)
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
        p.restart(Some("\"v1\""), "http://a").unwrap();
        p.file().write_all(b"hello").unwrap();
        p.keep().unwrap();
        let mut p = Partial::open(&store, HEX).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p.validator(), Some("\"v1\""));
        assert_eq!(p.origin(), Some("http://a"));
        assert_eq!(p.prefix(None).unwrap().size(), 5);
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
        p.restart(Some("\"old\""), "http://a").unwrap();
        p.file().write_all(b"old bytes").unwrap();
        p.keep().unwrap();
        p.restart(None, "http://b").unwrap();
        let mut p = Partial::open(&store, HEX).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.validator(), None);
        assert_eq!(p.origin(), Some("http://b"));
        p.discard().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_validator_kept_by_an_earlier_version_is_read_as_one_from_an_unknown_origin() {
        let dir = tempfile::tempdir().unwrap();
        let companion = dir.path().join(format!("{HEX}{VALIDATOR_SUFFIX}"));
        for (text, validator, origin) in [
            (&b"\"v1\""[..], Some("\"v1\""), None),
            (
                b"\"v1\"\norigin http://a\n",
                Some("\"v1\""),
                Some("http://a"),
            ),
            (b"\norigin http://a\n", None, Some("http://a")),
            (b"\"v1\"\norigin http://a\nmore\n", None, None),
            (b"\"v1\"\norigin http://a\x1b[2J\n", Some("\"v1\""), None),
            (b"\"v1\"\nnot an origin\n", Some("\"v1\""), None),
        ] {
            fs::write(&companion, text).unwrap();
            let store = store(&dir);
            let p = Partial::open(&store, HEX).unwrap();
            assert_eq!(
                (p.validator(), p.origin()),
                (validator, origin),
                "{:?}",
                String::from_utf8_lossy(text)
            );
            drop(p);
            fs::remove_file(&companion).unwrap();
        }
    }

    #[test]
    fn only_the_chunks_of_the_index_that_the_kept_bytes_hold_whole_and_right_are_verified() {
        use crate::format::chunk_index::Chunk;
        let chunk = |bytes: &[u8]| Chunk {
            digest: chunk_digest(bytes),
            length: bytes.len() as u32,
        };
        let index = ChunkIndex {
            size: 12,
            digest: <sha2::Sha256 as sha2::Digest>::digest(b"aaaabbbbcccc").into(),
            chunks: vec![chunk(b"aaaa"), chunk(b"bbbb"), chunk(b"cccc")],
        };
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        for (kept, verified) in [
            (&b"aaaabbbbcc"[..], 8),
            (b"aaaabbbbcccc", 12),
            (b"aaaaXbbbcccc", 4),
            (b"Xaaabbbb", 0),
            (b"aaa", 0),
        ] {
            let mut p = Partial::open(&store, HEX).unwrap();
            p.restart(None, "http://a").unwrap();
            p.file().write_all(kept).unwrap();
            p.keep().unwrap();
            assert_eq!(p.verified_by(&index, None).unwrap(), verified, "{kept:?}");
            p.truncate(verified, None, "http://b").unwrap();
            assert_eq!(p.len(), verified);
            assert_eq!(p.prefix(None).unwrap().size(), verified);
            let p = Partial::open(&store, HEX).unwrap();
            assert_eq!((p.len(), p.origin()), (verified, Some("http://b")));
        }
        let mut p = Partial::open(&store, HEX).unwrap();
        let err = p.prefix(Some(Instant::now())).unwrap_err();
        assert!(err.to_string().contains("--max-time"), "{err}");
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
        p.restart(None, "http://b").unwrap();
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
