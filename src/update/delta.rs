//! Downloading an image as a delta: the chunks a host already has are copied from its
//! store, only the others are fetched, with `Range` requests (issue 12, docs/fetch.md).
//!
//! A delta is only an attempt that saves bytes; the signed manifest still decides. It is
//! tried when the store holds another image and the origin serves a chunk index whose
//! header names the very image signed. The new image is written to `store/<hex>.new`
//! strictly in order while it is hashed, and installed only if its size and SHA-256 are
//! the signed ones. Anything else (no index, a bad or hostile one, a server that ignores
//! `Range`, a range answered wrongly, a local file that changed) ends the attempt, and the
//! caller downloads the image whole as it always did. The index needs no signature: a
//! wrong one can only cost this one attempt, bounded by the planner to at most the image's
//! size in ranges. Ranges are asked for many at a time (`multipart/byteranges`, see
//! `format::byteranges`) where the server answers so, else one at a time.

use std::io::{self, Read};
use std::time::Instant;

use super::image::{ImageError, Say};
use crate::destination::index_cache::{self, Allowed, LOCAL_INDEX};
use crate::destination::partial;
use crate::format::chunk_index::{ChunkIndex, max_index_size};
use crate::format::delta_plan;
use crate::format::manifest::{Entry, Manifest};
use crate::format::text::untrusted;
use crate::fs::{Dir, Found, IoError};
use crate::origin::{Origin, OriginError};
use crate::stream::hashing::{self, CopyError};
use crate::update::assembly::{Assembly, RangeSource};

/// The most local images a delta looks for chunks in: `latest`'s first, then the others
/// by name. Each costs its index in memory (and once, the time to chunk it).
pub const MAX_SOURCES: usize = 4;

/// What a delta may take chunks from, and until when.
pub struct Local<'a> {
    /// The store file `latest` points at, whose chunks are looked for first.
    pub latest: Option<&'a str>,
    /// The signed manifest: a local image it lists must have the size of its entry, one it
    /// no longer lists may be no larger than its largest image (see `local_index`).
    pub manifest: &'a Manifest,
    /// `--max-time`: cutting local images into chunks stops there.
    pub deadline: Option<Instant>,
}

impl Local<'_> {
    /// The size the manifest allows the local image `hex`.
    fn allowed(&self, hex: &str) -> Allowed {
        let mut digest = [0u8; 32];
        let listed = hex::decode_to_slice(hex, &mut digest)
            .ok()
            .and_then(|()| self.manifest.with_digest(digest).next());
        match listed {
            Some(entry) => Allowed::Signed(entry.size),
            None => Allowed::AtMost(
                self.manifest
                    .entries()
                    .iter()
                    .map(|e| e.size)
                    .max()
                    .unwrap_or(0),
            ),
        }
    }
}

/// What a delta download cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes received from the origin: the index and the ranges.
    pub downloaded: u64,
    /// The image's size.
    pub image: u64,
    /// Range requests made.
    pub requests: usize,
}

/// Tries to install the image of `entry` as a delta into the destination `dest` (whose
/// `store/` is `store`), under its lock. `Ok(None)`: not done, download it whole; a warning
/// has been given if something was wrong. Errors are failures of this host (writing the
/// store), which a plain download would meet as well.
pub fn try_delta(
    origin: &dyn Origin,
    dest: &Dir,
    store: &Dir,
    entry: &Entry,
    local: &Local<'_>,
    say: &Say<'_>,
) -> Result<Option<Transfer>, ImageError> {
    let latest = local.latest;
    let hex = entry.digest_hex();
    // A plain download that was cut off resumes where it stopped: its bytes are already
    // paid for, and resuming is the simplest thing that is surely correct.
    if let Found::File(file) = store.open_file(&format!("{hex}{}", partial::SUFFIX))?
        && file.metadata().is_ok_and(|m| m.len() > 0)
    {
        return Ok(None);
    }
    let sources = local_images(store, &hex, latest)?;
    if sources.is_empty() {
        return Ok(None);
    }
    let version = untrusted(entry.version.as_str());
    let fall_back = |why: String| {
        (say.warn)(&format!(
            "cannot update {version} as a delta: {why}; downloading the whole image"
        ));
        Ok(None)
    };

    // The index, from the first place that has one; ranges come from that same place. A
    // mirror that fails (a dead one first in the list) must not cost the others' deltas.
    let mut found = None;
    let mut failed = None;
    for place in origin.places() {
        match place.chunk_index(entry, max_index_size(entry.size)) {
            Ok(Some(bytes)) => {
                found = Some((place, bytes));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let Some((place, bytes)) = found else {
        return match failed {
            Some(e) => fall_back(format!("its chunk index: {e}")),
            None => Ok(None),
        };
    };
    let index_bytes = bytes.len() as u64;
    let where_from = format!("the chunk index of {hex} from {}", place.describe());
    let index = match ChunkIndex::parse(&bytes) {
        Ok(index) => index,
        Err(e) => return fall_back(format!("{where_from} is invalid: {e}")),
    };
    drop(bytes);
    if index.size != entry.size || index.digest != entry.digest {
        return fall_back(format!(
            "{where_from} describes another image ({} bytes, SHA-256 {}), not the signed one",
            index.size,
            hex::encode(index.digest)
        ));
    }

    let mut indexes = Vec::new();
    let mut files = Vec::new();
    for source in &sources {
        match index_cache::local_index(dest, source, local.allowed(source), local.deadline) {
            Ok((index, file)) => {
                indexes.push(index);
                files.push(file);
            }
            // Damaged or replaced since it was installed, or its index cannot be cached
            // (something planted at DEST/index): not a source of chunks.
            Err(e) => (say.warn)(&format!("not using a local image for a delta: {e}")),
        }
    }
    let locals: Vec<&ChunkIndex> = indexes.iter().collect();
    let plan = delta_plan::plan(&index, &locals);
    drop(locals);
    drop(indexes);
    // Nothing to reuse: one range would be the whole image, a plain download is as good.
    if plan.reused() == 0 {
        return Ok(None);
    }
    // The planner guarantees these; a delta must never cost more than a full download.
    if plan.to_fetch() > entry.size {
        return Ok(None);
    }
    (say.progress)(&format!(
        "updating {version} as a delta from {}: {} of {} found locally, {} to fetch in {} ranges",
        place.describe(),
        crate::format::size::human(plan.reused()),
        crate::format::size::human(entry.size),
        crate::format::size::human(plan.to_fetch()),
        plan.requests()
    ));

    let mut pending = store.create(&hex)?;
    let path = pending.path().to_path_buf();
    let gone = std::cell::Cell::new(false);
    // The bar counts the bytes of the ranges, what comes over the network: the chunks
    // copied from local images would make its rate a disk's.
    let bar = say.bar.map(|bar| bar(0, plan.to_fetch()));
    let mut ranges = Ranges {
        place,
        hex: &hex,
        gone: &gone,
        bar: bar.clone(),
    };
    let mut assembly = Assembly::new(&plan, &files, &mut ranges).checking(&index);
    let limit = Some(entry.size);
    let copied = hashing::copy_and_hash_to_file(&mut assembly, pending.file(), limit);
    drop(bar);
    let summary = match copied {
        Ok(summary) => summary,
        // A range answered 410 Gone: the publisher withdrew the image. The whole download
        // that follows finds out from every place, and says so once (see `fetch`).
        Err(CopyError::Read(_)) if gone.get() => return Ok(None),
        // `pending` is dropped, and with it the temporary file.
        Err(CopyError::Read(e)) => return fall_back(e.to_string()),
        Err(CopyError::TooLong { limit }) => {
            return fall_back(format!("it came out longer than the {limit} bytes signed"));
        }
        Err(CopyError::Write(source)) => return Err(ImageError::Write { path, source }),
    };
    if summary.size != entry.size || summary.digest != entry.digest {
        return fall_back(format!(
            "the image built from {where_from} is not the signed one ({} bytes, SHA-256 {})",
            summary.size,
            hex::encode(summary.digest)
        ));
    }
    let transfer = Transfer {
        downloaded: index_bytes + assembly.downloaded(),
        image: entry.size,
        requests: assembly.requests(),
    };
    let verified = assembly.index_verified();
    drop(assembly);
    pending.commit()?;

    // Cached for the next update, which then need not chunk this image. Only an index
    // that every chunk of the image was checked against is kept.
    if verified {
        let cached = dest
            .ensure_subdir(LOCAL_INDEX)
            .and_then(|cache| cache.write_file(&hex, &index.to_bytes()));
        if let Err(e) = cached {
            (say.warn)(&format!("cannot keep the chunk index of {version}: {e}"));
        }
    } else {
        (say.warn)(&format!(
            "{where_from} does not describe the image it names (it verified all the same); not keeping it"
        ));
    }
    Ok(Some(transfer))
}

/// The other images in `store` to take chunks from: files named by a digest, `latest`'s
/// target first, at most [`MAX_SOURCES`].
fn local_images(store: &Dir, hex: &str, latest: Option<&str>) -> Result<Vec<String>, IoError> {
    let mut names: Vec<String> = store
        .names()?
        .into_iter()
        .filter(|name| name != hex && is_digest(name))
        .collect();
    names.sort();
    if let Some(latest) = latest
        && let Some(at) = names.iter().position(|n| n == latest)
    {
        let first = names.remove(at);
        names.insert(0, first);
    }
    names.truncate(MAX_SOURCES);
    Ok(names)
}

/// Whether `name` is a store file's name: 64 lowercase hex digits.
fn is_digest(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The ranges of one place's copy of one image.
struct Ranges<'a> {
    place: &'a dyn Origin,
    hex: &'a str,
    /// Set when a range was answered 410 Gone.
    gone: &'a std::cell::Cell<bool>,
    /// The progress bar the bytes of each range move.
    bar: Option<indicatif::ProgressBar>,
}

impl RangeSource for Ranges<'_> {
    fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read>> {
        let unsupported = || OriginError::no_ranges(&self.place.describe());
        match self.place.open_range(self.hex, start, end) {
            Ok(Some(body)) => Ok(match &self.bar {
                Some(bar) => Box::new(bar.wrap_read(body)),
                None => Box::new(body),
            }),
            Ok(None) => Err(io::Error::other(unsupported())),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn ranges(&mut self, ranges: &[(u64, u64)]) -> io::Result<Option<Box<dyn Read>>> {
        match self.place.open_ranges(self.hex, ranges) {
            Ok(Some(body)) => Ok(Some(match &self.bar {
                Some(bar) => Box::new(bar.wrap_read(body)),
                None => Box::new(body),
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }
}

impl Ranges<'_> {
    fn failed(&self, e: OriginError) -> io::Error {
        if e.kind() == crate::origin::Kind::Gone {
            self.gone.set(true);
        }
        io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digest_names_are_sources_and_latest_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        for name in [
            a.as_str(),
            b.as_str(),
            c.as_str(),
            "notes",
            &format!("{a}.partial"),
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let store = Dir::open(dir.path()).unwrap();
        assert_eq!(
            local_images(&store, &a, Some(&c)).unwrap(),
            [c.clone(), b.clone()]
        );
        assert_eq!(local_images(&store, &c, None).unwrap(), [a, b]);
        assert!(!is_digest(&"A".repeat(64)));
    }
}
