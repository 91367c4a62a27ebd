//! Delta updates: plan a new image from local chunks and remote ranges, then assemble it.
//!
//! [`plan`] is pure: from the new image's chunk index and the indexes of the
//! images a host already holds, it decides, chunk by chunk in image order,
//! what to copy from a local file and which byte ranges of the remote image
//! to request. Nearby ranges are merged (a request costs more than a few KiB
//! of bytes) and their number is bounded, so that even a hostile index
//! cannot make a delta cost much more than one full download: at most the
//! image's size in bytes, in at most [`MAX_RANGES`] requests.
//!
//! [`Assembly`] turns a plan into the new image as a [`Read`], strictly in
//! order, so that the caller writes and hashes it exactly as a plain
//! download (see `hashing::copy_and_hash_to_file`): the final size and
//! SHA-256 from the signed manifest decide. Each local chunk is hashed before
//! it is used; one that does not match (a local file changed since it was
//! indexed) is fetched instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::format::chunk_index::{Chunk, ChunkIndex, MAX_CHUNK, max_index_size};
use crate::fs::{Context, Dir, Found, IoError};
use crate::stream::chunking;

/// The directory of a destination that caches the chunk indexes of the
/// images in its `store/` (see docs/fetch.md).
pub use crate::destination::INDEX as LOCAL_INDEX;

/// Remote ranges closer than this are fetched as one: the bytes in between
/// cost less than another request and its round trip.
pub const MERGE_GAP: u64 = 64 << 10;

/// The most ranges a plan requests. Beyond it the closest ones are merged.
pub const MAX_RANGES: usize = 1000;

/// The most local chunks that may turn out not to match their index before
/// an assembly gives up: each costs one more request.
pub const MAX_MISMATCHES: usize = 16;

/// One step of a plan, in image order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Copy `length` bytes at `offset` of local image `source` (a position
    /// in the slice given to [`plan`]); they should hash to `digest`.
    Copy {
        source: usize,
        offset: u64,
        length: u32,
        digest: [u8; 32],
    },
    /// Fetch bytes `start..end` of the remote image.
    Fetch { start: u64, end: u64 },
}

/// How to build the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The image size, which the steps cover without gap or overlap.
    pub size: u64,
}

impl Plan {
    /// Bytes copied from local images.
    pub fn reused(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Copy { length, .. } => u64::from(*length),
                Step::Fetch { .. } => 0,
            })
            .sum()
    }

    /// Bytes requested from the origin.
    pub fn to_fetch(&self) -> u64 {
        self.size.saturating_sub(self.reused())
    }

    /// The number of range requests.
    pub fn requests(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Fetch { .. }))
            .count()
    }
}

/// Where a chunk can be found locally.
#[derive(Debug, Clone, Copy)]
struct Local {
    source: usize,
    offset: u64,
    length: u32,
}

/// Plans the image described by `new` from the images described by `locals`.
pub fn plan(new: &ChunkIndex, locals: &[&ChunkIndex]) -> Plan {
    let mut known: HashMap<[u8; 32], Local> = HashMap::new();
    for (source, index) in locals.iter().enumerate() {
        for (offset, chunk) in index.offsets() {
            known.entry(chunk.digest).or_insert(Local {
                source,
                offset,
                length: chunk.length,
            });
        }
    }

    // Chunk by chunk: the local copy, if any, with the same length (a
    // hostile index may pair a known digest with another length).
    let found: Vec<(u64, u32, [u8; 32], Option<Local>)> = new
        .offsets()
        .map(|(offset, chunk)| {
            let local = known
                .get(&chunk.digest)
                .copied()
                .filter(|l| l.length == chunk.length);
            (offset, chunk.length, chunk.digest, local)
        })
        .collect();

    // The ranges nobody has, adjacent ones joined, then nearby ones merged.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &(offset, length, _, local) in &found {
        if local.is_some() {
            continue;
        }
        let end = offset + u64::from(length);
        match ranges.last_mut() {
            Some(last) if offset - last.1 < MERGE_GAP => last.1 = end,
            _ => ranges.push((offset, end)),
        }
    }
    if ranges.len() > MAX_RANGES {
        ranges = merge_closest(&ranges, MAX_RANGES);
    }

    let mut steps = Vec::with_capacity(found.len());
    let mut next_range = ranges.iter().peekable();
    for (offset, length, digest, local) in found {
        // Skip the chunks inside the range last emitted.
        if let Some(Step::Fetch { end, .. }) = steps.last()
            && offset < *end
        {
            continue;
        }
        match next_range.peek() {
            Some(&&(start, end)) if start == offset => {
                steps.push(Step::Fetch { start, end });
                next_range.next();
            }
            _ => {
                // Outside every range, so found locally.
                if let Some(local) = local {
                    steps.push(Step::Copy {
                        source: local.source,
                        offset: local.offset,
                        length,
                        digest,
                    });
                }
            }
        }
    }
    Plan {
        steps,
        size: new.size,
    }
}

/// Merges the smallest gaps between `ranges` (sorted, disjoint) until at
/// most `max` ranges remain: the fewest extra bytes for the requests saved.
fn merge_closest(ranges: &[(u64, u64)], max: usize) -> Vec<(u64, u64)> {
    let mut gaps: Vec<(u64, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].0 - w[0].1, i))
        .collect();
    gaps.sort_unstable();
    let mut join_after = vec![false; ranges.len()];
    for &(_, i) in gaps.iter().take(ranges.len().saturating_sub(max)) {
        join_after[i] = true;
    }
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(max);
    let mut joining = false;
    for (i, &(start, end)) in ranges.iter().enumerate() {
        match merged.last_mut() {
            Some(last) if joining => last.1 = end,
            _ => merged.push((start, end)),
        }
        joining = join_after[i];
    }
    merged
}

/// Why a local image cannot serve as a source of chunks.
#[derive(Debug, thiserror::Error)]
pub enum LocalIndexError {
    #[error("{0} is missing or not a regular file")]
    NotAFile(PathBuf),
    #[error("{path} does not match its name: its SHA-256 is {actual}")]
    Mismatch { path: PathBuf, actual: String },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The chunk index of the installed image `store/<hex>` of a destination,
/// with the image opened for reading.
///
/// The index is cached as `index/<hex>` (read-only, written atomically), so
/// an image is chunked once, not on every update. A cached index is used
/// only if it is a valid index of an image of this size and digest;
/// otherwise (missing, damaged, planted) the image is chunked again, its
/// digest checked against its name, and the cache replaced. Callers hold
/// the destination's lock.
pub fn local_index(dest: &Dir, hex: &str) -> Result<(ChunkIndex, File), LocalIndexError> {
    let store_path = dest.path().join(crate::destination::STORE);
    let image_path = store_path.join(hex);
    let store = dest
        .subdir(crate::destination::STORE)?
        .ok_or_else(|| LocalIndexError::NotAFile(image_path.clone()))?;
    let Found::File(mut image) = store.open_file(hex)? else {
        return Err(LocalIndexError::NotAFile(image_path));
    };
    let size = image.metadata().context("inspect", &image_path)?.len();
    let cache = dest.ensure_subdir(LOCAL_INDEX)?;
    // A cache entry that is not a regular file of at most the bound, or
    // not an index of this image, is simply replaced.
    if let Ok(Some(bytes)) = cache.read_file(hex, max_index_size(size), "read")
        && let Ok(index) = ChunkIndex::parse(&bytes)
        && index.size == size
        && hex::encode(index.digest) == hex
    {
        return Ok((index, image));
    }
    let index = chunking::index_of(&mut image).context("read", &image_path)?;
    let actual = hex::encode(index.digest);
    if actual != hex {
        return Err(LocalIndexError::Mismatch {
            path: image_path,
            actual,
        });
    }
    cache.write_file(hex, &index.to_bytes())?;
    // Returned as it was opened: at its start.
    io::Seek::rewind(&mut image).context("read", &image_path)?;
    Ok((index, image))
}

/// Where an assembly gets the bytes it does not have: byte ranges of the
/// remote image, one request each.
pub trait RangeSource {
    /// A reader of bytes `start..end` of the remote image. It may yield
    /// more or fewer bytes (a broken server); the assembly checks.
    fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read>>;
}

/// Why an assembly stopped. Any of these means: fall back to a plain
/// download.
#[derive(Debug, thiserror::Error)]
pub enum AssemblyError {
    #[error("reading local image {source_index} at offset {offset}: {error}")]
    Local {
        source_index: usize,
        offset: u64,
        error: io::Error,
    },
    #[error("range {start}-{end} of the image: {error}")]
    Range {
        start: u64,
        end: u64,
        error: io::Error,
    },
    #[error("range {start}-{end} of the image has {got} bytes instead of {expected}")]
    RangeLength {
        start: u64,
        end: u64,
        got: String,
        expected: u64,
    },
    #[error("more than {MAX_MISMATCHES} local chunks do not match their index")]
    TooManyMismatches,
}

impl From<AssemblyError> for io::Error {
    fn from(e: AssemblyError) -> io::Error {
        io::Error::other(e)
    }
}

/// What an [`Assembly`] is in the middle of.
enum Current {
    /// A verified local chunk in the buffer, read up to the position given.
    Buffer(usize),
    /// A remote range, with the bytes still expected.
    Remote {
        reader: Box<dyn Read>,
        start: u64,
        end: u64,
        left: u64,
    },
    Idle,
}

/// The new image as a reader, produced step by step from a [`Plan`].
pub struct Assembly<'a> {
    steps: std::slice::Iter<'a, Step>,
    locals: &'a [File],
    remote: &'a mut dyn RangeSource,
    buffer: Vec<u8>,
    current: Current,
    /// Where in the new image the next step starts.
    next_offset: u64,
    downloaded: u64,
    requests: usize,
    mismatches: usize,
    check: Option<ChunkCheck<'a>>,
}

/// Checks fetched bytes chunk by chunk against the index that planned them.
///
/// Copied chunks are checked as they are read; with this, every chunk of the
/// new image is, so an index that passes describes the image exactly and may
/// be cached as the index of the installed image.
struct ChunkCheck<'a> {
    chunks: &'a [Chunk],
    /// The next chunk not yet begun, and where it starts.
    next: usize,
    next_offset: u64,
    /// The chunk being hashed: where the next byte goes, where it ends, its digest.
    current: Option<(u64, u64, [u8; 32], Sha256)>,
    ok: bool,
}

impl<'a> ChunkCheck<'a> {
    fn new(index: &'a ChunkIndex) -> Self {
        ChunkCheck {
            chunks: &index.chunks,
            next: 0,
            next_offset: 0,
            current: None,
            ok: true,
        }
    }

    /// Bytes of the image at `offset`.
    fn feed(&mut self, mut offset: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.ok {
            if self.current.is_none() {
                while self.next < self.chunks.len() && self.next_offset < offset {
                    self.next_offset += u64::from(self.chunks[self.next].length);
                    self.next += 1;
                }
                // Fetched bytes always start a chunk: ranges are planned on chunk bounds.
                let Some(chunk) = self
                    .chunks
                    .get(self.next)
                    .filter(|_| self.next_offset == offset)
                else {
                    self.ok = false;
                    return;
                };
                let end = offset + u64::from(chunk.length);
                self.current = Some((offset, end, chunk.digest, Sha256::new()));
                self.next_offset = end;
                self.next += 1;
            }
            let Some((at, end, digest, hasher)) = self.current.as_mut() else {
                return;
            };
            if *at != offset {
                self.ok = false;
                return;
            }
            let n = usize::try_from(*end - offset).map_or(bytes.len(), |l| l.min(bytes.len()));
            hasher.update(&bytes[..n]);
            offset += n as u64;
            *at = offset;
            bytes = &bytes[n..];
            if offset == *end {
                let digest = *digest;
                if let Some((.., hasher)) = self.current.take() {
                    self.ok &= <[u8; 32]>::from(hasher.finalize()) == digest;
                }
            }
        }
    }

    fn passed(&self) -> bool {
        self.ok && self.current.is_none()
    }
}

impl<'a> Assembly<'a> {
    /// `locals` are the local images, in the order given to [`plan`].
    pub fn new(plan: &'a Plan, locals: &'a [File], remote: &'a mut dyn RangeSource) -> Self {
        Assembly {
            steps: plan.steps.iter(),
            locals,
            remote,
            buffer: Vec::with_capacity(MAX_CHUNK as usize),
            current: Current::Idle,
            next_offset: 0,
            downloaded: 0,
            requests: 0,
            mismatches: 0,
            check: None,
        }
    }

    /// Also checks the fetched bytes against the chunks of `index` (the one the plan was
    /// made from); see [`Assembly::index_verified`].
    pub fn checking(mut self, index: &'a ChunkIndex) -> Self {
        self.check = Some(ChunkCheck::new(index));
        self
    }

    /// Whether every fetched chunk had the digest and length its index gives, so that
    /// the index describes the image (when the image itself verifies). False without
    /// [`Assembly::checking`].
    pub fn index_verified(&self) -> bool {
        self.check.as_ref().is_some_and(ChunkCheck::passed)
    }

    /// Bytes received from the origin so far.
    pub fn downloaded(&self) -> u64 {
        self.downloaded
    }

    /// Range requests made so far.
    pub fn requests(&self) -> usize {
        self.requests
    }

    fn open_range(&mut self, start: u64, end: u64) -> Result<(), AssemblyError> {
        self.requests += 1;
        let reader = self
            .remote
            .range(start, end)
            .map_err(|error| AssemblyError::Range { start, end, error })?;
        self.current = Current::Remote {
            reader,
            start,
            end,
            left: end - start,
        };
        Ok(())
    }

    /// Starts the next step; false at the end of the plan.
    fn advance(&mut self) -> Result<bool, AssemblyError> {
        let Some(&step) = self.steps.next() else {
            return Ok(false);
        };
        let here = self.next_offset;
        match step {
            Step::Fetch { start, end } => {
                self.next_offset = here + step_length(&step);
                self.open_range(start, end)?;
            }
            Step::Copy {
                source,
                offset,
                length,
                digest,
            } => {
                self.next_offset = here + step_length(&step);
                self.buffer.resize(length as usize, 0);
                let read = match self.locals.get(source) {
                    Some(file) => file.read_exact_at(&mut self.buffer, offset),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no such local image",
                    )),
                };
                let matches =
                    read.is_ok() && <[u8; 32]>::from(Sha256::digest(&self.buffer)) == digest;
                if matches {
                    self.current = Current::Buffer(0);
                } else {
                    // The local file changed since it was indexed (or was
                    // cut short): these bytes come from the origin instead.
                    self.mismatches += 1;
                    if self.mismatches > MAX_MISMATCHES {
                        return Err(AssemblyError::TooManyMismatches);
                    }
                    self.open_range(here, self.next_offset)?;
                }
            }
        }
        Ok(true)
    }
}

impl Read for Assembly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.current {
                Current::Idle => {
                    if !self.advance()? {
                        return Ok(0);
                    }
                }
                Current::Buffer(position) => {
                    let left = &self.buffer[*position..];
                    if left.is_empty() {
                        self.current = Current::Idle;
                        continue;
                    }
                    let n = left.len().min(buf.len());
                    buf[..n].copy_from_slice(&left[..n]);
                    *position += n;
                    return Ok(n);
                }
                Current::Remote {
                    reader,
                    start,
                    end,
                    left,
                } => {
                    let (start, end) = (*start, *end);
                    let expected = end - start;
                    if *left == 0 {
                        // The range must end where it was asked to.
                        let mut probe = [0u8; 1];
                        let extra = read_retrying(reader.as_mut(), &mut probe)
                            .map_err(|error| AssemblyError::Range { start, end, error })?;
                        if extra > 0 {
                            return Err(AssemblyError::RangeLength {
                                start,
                                end,
                                got: "more".to_string(),
                                expected,
                            }
                            .into());
                        }
                        self.current = Current::Idle;
                        continue;
                    }
                    let want = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
                    let n = read_retrying(reader.as_mut(), &mut buf[..want])
                        .map_err(|error| AssemblyError::Range { start, end, error })?;
                    if n == 0 {
                        return Err(AssemblyError::RangeLength {
                            start,
                            end,
                            got: (expected - *left).to_string(),
                            expected,
                        }
                        .into());
                    }
                    if let Some(check) = &mut self.check {
                        check.feed(end - *left, &buf[..n]);
                    }
                    *left -= n as u64;
                    self.downloaded += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

/// How many bytes of the new image a step yields.
fn step_length(step: &Step) -> u64 {
    match *step {
        Step::Copy { length, .. } => u64::from(length),
        Step::Fetch { start, end } => end - start,
    }
}

fn read_retrying(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::chunk_index::{Chunk, MIN_CHUNK};
    use crate::stream::chunking::{self, tests::noise};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const K: u32 = 1 << 10;

    /// An index of chunks named by numbers, each of the length given.
    fn synthetic(chunks: &[(u32, u32)]) -> ChunkIndex {
        let chunks: Vec<Chunk> = chunks
            .iter()
            .map(|&(id, length)| {
                let mut digest = [0u8; 32];
                digest[..4].copy_from_slice(&id.to_be_bytes());
                Chunk { digest, length }
            })
            .collect();
        ChunkIndex {
            size: chunks.iter().map(|c| u64::from(c.length)).sum(),
            digest: [0; 32],
            chunks,
        }
    }

    /// The steps cover the image in order, without gap or overlap, and each
    /// copy is of a chunk of the new index at that place.
    fn assert_covers(plan: &Plan, new: &ChunkIndex) {
        let mut at = 0;
        let starts: HashMap<u64, &Chunk> = new.offsets().collect();
        for step in &plan.steps {
            match *step {
                Step::Copy { length, digest, .. } => {
                    let chunk = starts[&at];
                    assert_eq!((chunk.length, chunk.digest), (length, digest));
                }
                Step::Fetch { start, end } => {
                    assert_eq!(start, at);
                    assert!(end > start);
                    assert!(starts.contains_key(&end) || end == new.size);
                }
            }
            at += step_length(step);
        }
        assert_eq!(at, new.size);
        assert_eq!(plan.size, new.size);
    }

    #[test]
    fn an_identical_image_is_copied_entirely() {
        let old = synthetic(&[(1, 64 * K), (2, 20 * K), (3, 100 * K), (4, 3)]);
        let plan = plan(&old, &[&old]);
        assert_covers(&plan, &old);
        assert_eq!(plan.requests(), 0);
        assert_eq!(plan.reused(), old.size);
        assert_eq!(plan.to_fetch(), 0);
    }

    #[test]
    fn nothing_known_is_one_request_for_everything() {
        let new = synthetic(&[(1, 64 * K), (2, 20 * K), (3, 100 * K)]);
        let other = synthetic(&[(9, 64 * K)]);
        for plan in [plan(&new, &[]), plan(&new, &[&other])] {
            assert_covers(&plan, &new);
            assert_eq!(
                plan.steps,
                [Step::Fetch {
                    start: 0,
                    end: new.size
                }]
            );
        }
    }

    #[test]
    fn an_empty_image_needs_nothing() {
        let new = synthetic(&[]);
        let plan = plan(&new, &[]);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.size, 0);
    }

    #[test]
    fn only_the_changed_chunks_are_fetched_and_far_apart_ones_separately() {
        let old = synthetic(&[
            (1, 64 * K),
            (2, 64 * K),
            (3, 64 * K),
            (4, 64 * K),
            (5, 64 * K),
        ]);
        let new = synthetic(&[
            (1, 64 * K),
            (20, 30 * K),
            (3, 64 * K),
            (4, 64 * K),
            (50, 64 * K),
        ]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        let fetches: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Fetch { .. }))
            .copied()
            .collect();
        // The gap between them is 128 KiB of known chunks: two requests.
        assert_eq!(
            fetches,
            [
                Step::Fetch {
                    start: 64 << 10,
                    end: 94 << 10
                },
                Step::Fetch {
                    start: 222 << 10,
                    end: 286 << 10
                }
            ]
        );
        assert_eq!(plan.to_fetch(), 94 << 10);
        assert_eq!(plan.reused(), 192 << 10);
    }

    #[test]
    fn ranges_closer_than_the_merge_gap_are_fetched_as_one() {
        let old = synthetic(&[(1, 64 * K), (2, 63 * K), (3, 64 * K)]);
        // Chunk 2 (63 KiB, under the gap) sits between two new chunks.
        let new = synthetic(&[
            (10, 20 * K),
            (2, 63 * K),
            (11, 20 * K),
            (3, 64 * K),
            (12, 20 * K),
        ]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(
            plan.steps[0],
            Step::Fetch {
                start: 0,
                end: 103 << 10
            }
        );
        // Chunk 3 is exactly the gap: kept as a copy.
        assert!(matches!(plan.steps[1], Step::Copy { length, .. } if length == 64 * K));
        assert_eq!(plan.requests(), 2);
        assert_eq!(plan.reused(), 64 << 10);
    }

    #[test]
    fn a_known_digest_with_another_length_is_fetched() {
        let old = synthetic(&[(1, 64 * K), (2, 64 * K)]);
        let new = synthetic(&[(1, 64 * K), (2, 30 * K)]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(plan.to_fetch(), 30 << 10);
    }

    #[test]
    fn chunks_come_from_any_local_image() {
        let a = synthetic(&[(1, 64 * K), (2, 64 * K)]);
        let b = synthetic(&[(3, 64 * K), (4, 64 * K)]);
        let new = synthetic(&[(4, 64 * K), (1, 64 * K), (2, 64 * K)]);
        let plan = plan(&new, &[&a, &b]);
        assert_covers(&plan, &new);
        let sources: Vec<(usize, u64)> = plan
            .steps
            .iter()
            .map(|s| match *s {
                Step::Copy { source, offset, .. } => (source, offset),
                Step::Fetch { .. } => panic!("nothing to fetch"),
            })
            .collect();
        assert_eq!(sources, [(1, 64 << 10), (0, 0), (0, 64 << 10)]);
    }

    #[test]
    fn the_number_of_requests_is_bounded_by_merging_the_closest_ranges() {
        // 3000 new chunks, each between known ones; the gaps grow with i
        // so the closest ones are the first.
        let mut old = Vec::new();
        let mut new = Vec::new();
        for i in 0..3000u32 {
            new.push((1_000_000 + i, MIN_CHUNK));
            let gap = 64 * K + i * 8;
            old.push((i, gap));
            new.push((i, gap));
        }
        let (old, new) = (synthetic(&old), synthetic(&new));
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(plan.requests(), MAX_RANGES);
        // Of the 2999 gaps between new chunks, the 2000 smallest (the first)
        // were fetched; the last 999 and the one after the last new chunk
        // are still copied.
        assert!(matches!(plan.steps.last(), Some(Step::Copy { .. })));
        let kept: u64 = (2000..3000u64).map(|i| (64 << 10) + i * 8).sum();
        assert_eq!(plan.reused(), kept);
        assert!(plan.to_fetch() < new.size);
    }

    #[test]
    fn merging_the_closest_ranges_joins_the_smallest_gaps() {
        let ranges = [(0, 10), (12, 20), (100, 110), (111, 120), (500, 510)];
        assert_eq!(merge_closest(&ranges, 5), ranges);
        assert_eq!(merge_closest(&ranges, 3), [(0, 20), (100, 120), (500, 510)]);
        assert_eq!(merge_closest(&ranges, 1), [(0, 510)]);
    }

    proptest::proptest! {
        /// Whatever the indexes, a plan covers the image in order, fetches at
        /// most the image, within the request bound, and copies only chunks
        /// whose digest and length a local image has.
        #[test]
        fn any_plan_covers_the_image_within_the_bounds(
            new in proptest::collection::vec((0u32..40, 1u32..5), 0..300),
            old in proptest::collection::vec((0u32..40, 1u32..5), 0..300),
        ) {
            // Lengths are chosen from a few sizes so that digests repeat
            // with the same or another length.
            let scale = |v: &[(u32, u32)]| -> Vec<(u32, u32)> {
                v.iter().map(|&(id, l)| (id, l * 24 * K)).collect()
            };
            let (new, old) = (synthetic(&scale(&new)), synthetic(&scale(&old)));
            let plan = plan(&new, &[&old]);
            assert_covers(&plan, &new);
            proptest::prop_assert!(plan.requests() <= MAX_RANGES);
            proptest::prop_assert!(plan.to_fetch() <= new.size);
            let known: std::collections::HashSet<([u8; 32], u32)> =
                old.chunks.iter().map(|c| (c.digest, c.length)).collect();
            for step in &plan.steps {
                if let Step::Copy { digest, length, offset, source } = *step {
                    proptest::prop_assert!(known.contains(&(digest, length)));
                    proptest::prop_assert_eq!(source, 0);
                    proptest::prop_assert!(offset + u64::from(length) <= old.size);
                }
            }
            // Two fetches are never adjacent or closer than the merge gap.
            let mut last_end: Option<u64> = None;
            let mut at = 0;
            for step in &plan.steps {
                if let Step::Fetch { start, end } = *step {
                    if let Some(previous) = last_end {
                        proptest::prop_assert!(start - previous >= MERGE_GAP);
                    }
                    last_end = Some(end);
                }
                at += step_length(step);
            }
            proptest::prop_assert_eq!(at, new.size);
        }
    }

    /// An origin in memory that records the ranges asked for.
    struct Memory {
        image: Vec<u8>,
        asked: Vec<(u64, u64)>,
        /// Bytes to add to (positive) or cut from (negative) each answer.
        skew: i64,
    }

    impl RangeSource for Memory {
        fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read>> {
            self.asked.push((start, end));
            let end = (end as i64 + self.skew).clamp(start as i64, self.image.len() as i64);
            Ok(Box::new(io::Cursor::new(
                self.image[start as usize..end as usize].to_vec(),
            )))
        }
    }

    fn local_file(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    /// An old image and a new one with a few 64 KiB blocks rewritten and a
    /// few bytes inserted.
    fn versions() -> (Vec<u8>, Vec<u8>) {
        let old = noise(11, 4 << 20);
        let mut new = old.clone();
        for block in [5usize, 30, 31, 50] {
            let at = block << 16;
            new[at..at + (64 << 10)].copy_from_slice(&noise(block as u64, 64 << 10));
        }
        new.splice(2_500_000..2_500_000, noise(99, 777));
        (old, new)
    }

    fn assemble(
        plan: &Plan,
        locals: &[File],
        remote: &mut Memory,
    ) -> Result<(Vec<u8>, u64, usize), io::Error> {
        let mut assembly = Assembly::new(plan, locals, remote);
        let mut out = Vec::new();
        // Small reads, as a copy loop with a short buffer would do.
        let mut buf = [0u8; 5000];
        loop {
            let n = assembly.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok((out, assembly.downloaded(), assembly.requests()))
    }

    #[test]
    fn assembles_the_new_image_from_local_chunks_and_ranges() {
        let (old, new) = versions();
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        assert_covers(&plan, &new_index);
        // Most of the image is reused.
        assert!(
            plan.to_fetch() < new.len() as u64 / 4,
            "{}",
            plan.to_fetch()
        );
        let mut remote = Memory {
            image: new.clone(),
            asked: Vec::new(),
            skew: 0,
        };
        let (out, downloaded, requests) =
            assemble(&plan, &[local_file(&old)], &mut remote).unwrap();
        assert!(out == new, "the assembled image differs");
        assert_eq!(downloaded, plan.to_fetch());
        assert_eq!(requests, plan.requests());
        let expected: Vec<(u64, u64)> = plan
            .steps
            .iter()
            .filter_map(|s| match *s {
                Step::Fetch { start, end } => Some((start, end)),
                Step::Copy { .. } => None,
            })
            .collect();
        assert_eq!(remote.asked, expected);
    }

    #[test]
    fn fetched_chunks_are_checked_against_the_index_that_planned_them() {
        let (old, new) = versions();
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        let locals = [local_file(&old)];
        let run = |index: &ChunkIndex| {
            let mut remote = Memory {
                image: new.clone(),
                asked: Vec::new(),
                skew: 0,
            };
            let mut assembly = Assembly::new(&plan, &locals, &mut remote).checking(index);
            let mut out = Vec::new();
            assembly.read_to_end(&mut out).unwrap();
            assert!(out == new, "the assembled image differs");
            assembly.index_verified()
        };
        assert!(run(&new_index));
        // A fetched chunk whose listed digest is wrong: the bytes are still the origin's,
        // but the index no longer describes them.
        let Some(Step::Fetch { start, .. }) =
            plan.steps.iter().find(|s| matches!(s, Step::Fetch { .. }))
        else {
            panic!("the plan fetches something");
        };
        let mut wrong = new_index.clone();
        let position = wrong
            .offsets()
            .position(|(offset, _)| offset == *start)
            .unwrap();
        wrong.chunks[position].digest[0] ^= 1;
        assert!(!run(&wrong));
        // Without checking, nothing is claimed.
        let mut remote = Memory {
            image: new.clone(),
            asked: Vec::new(),
            skew: 0,
        };
        assert!(!Assembly::new(&plan, &locals, &mut remote).index_verified());
    }

    #[test]
    fn a_local_chunk_that_changed_since_indexing_is_fetched_instead() {
        let (old, new) = versions();
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        // Damage the local file after it was indexed, in its first chunk,
        // which the new image reuses.
        let mut damaged = old.clone();
        damaged[100] ^= 0xff;
        let mut remote = Memory {
            image: new.clone(),
            asked: Vec::new(),
            skew: 0,
        };
        let (out, downloaded, _) = assemble(&plan, &[local_file(&damaged)], &mut remote).unwrap();
        assert!(out == new, "the assembled image differs");
        let first = u64::from(new_index.chunks[0].length);
        assert_eq!(downloaded, plan.to_fetch() + first);
        assert_eq!(remote.asked[0], (0, first));
    }

    #[test]
    fn a_shorter_local_file_is_fetched_instead() {
        let (old, new) = versions();
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        let mut remote = Memory {
            image: new.clone(),
            asked: Vec::new(),
            skew: 0,
        };
        // Cut to one chunk's worth: too many chunks are missing.
        let err = assemble(&plan, &[local_file(&old[..100_000])], &mut remote).unwrap_err();
        assert!(err.to_string().contains("do not match"), "{err}");
    }

    #[test]
    fn a_range_answered_short_or_long_stops_the_assembly() {
        let (old, new) = versions();
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        for (skew, says) in [(-1, "bytes instead of"), (1, "has more bytes")] {
            let mut remote = Memory {
                image: new.clone(),
                asked: Vec::new(),
                skew,
            };
            let err = assemble(&plan, &[local_file(&old)], &mut remote).unwrap_err();
            assert!(err.to_string().contains(says), "{skew}: {err}");
        }
    }

    #[test]
    fn a_failing_range_request_stops_the_assembly() {
        struct Refusing;
        impl RangeSource for Refusing {
            fn range(&mut self, _: u64, _: u64) -> io::Result<Box<dyn Read>> {
                Err(io::Error::other("416 Range Not Satisfiable"))
            }
        }
        let new = synthetic(&[(1, 64 * K)]);
        let plan = plan(&new, &[]);
        let mut remote = Refusing;
        let mut assembly = Assembly::new(&plan, &[], &mut remote);
        let err = assembly.read(&mut [0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("416"), "{err}");
        assert!(err.to_string().contains("range 0-65536"), "{err}");
    }

    fn destination_with(image: &[u8]) -> (tempfile::TempDir, Dir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let hex = hex::encode(Sha256::digest(image));
        std::fs::write(dir.path().join("store").join(&hex), image).unwrap();
        let dest = Dir::open(dir.path()).unwrap();
        (dir, dest, hex)
    }

    #[test]
    fn the_local_index_is_computed_once_and_cached() {
        let image = noise(21, 1 << 20);
        let (dir, dest, hex) = destination_with(&image);
        let (index, mut file) = local_index(&dest, &hex).unwrap();
        assert_eq!(index, chunking::index_of(&mut image.as_slice()).unwrap());
        let mut read_back = Vec::new();
        file.read_to_end(&mut read_back).unwrap();
        assert!(read_back == image);
        let cached = dir.path().join("index").join(&hex);
        assert_eq!(std::fs::read(&cached).unwrap(), index.to_bytes());
        assert_eq!(
            std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
            0o444
        );

        // The cache is what a second call reads: an index of the same image
        // with other (valid) chunk boundaries is taken as it is.
        let mut other = ChunkIndex {
            size: index.size,
            digest: index.digest,
            chunks: vec![],
        };
        let mut left = index.size;
        while left > 0 {
            let length = left.min(u64::from(MAX_CHUNK)) as u32;
            other.chunks.push(Chunk {
                digest: [1; 32],
                length,
            });
            left -= u64::from(length);
        }
        std::fs::remove_file(&cached).unwrap();
        std::fs::write(&cached, other.to_bytes()).unwrap();
        assert_eq!(local_index(&dest, &hex).unwrap().0, other);
    }

    #[test]
    fn a_bad_cached_index_is_replaced() {
        let image = noise(22, 300_000);
        let (dir, dest, hex) = destination_with(&image);
        let right = chunking::index_of(&mut image.as_slice()).unwrap();
        let cached = dir.path().join("index").join(&hex);
        std::fs::create_dir(dir.path().join("index")).unwrap();
        let of_another = chunking::index_of(&mut &b"another"[..]).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        for planted in [b"garbage".to_vec(), of_another.to_bytes()] {
            std::fs::write(&cached, &planted).unwrap();
            assert_eq!(local_index(&dest, &hex).unwrap().0, right);
            assert_eq!(std::fs::read(&cached).unwrap(), right.to_bytes());
            std::fs::remove_file(&cached).unwrap();
        }
        // A symlink is replaced, never written through.
        std::os::unix::fs::symlink(&victim, &cached).unwrap();
        assert_eq!(local_index(&dest, &hex).unwrap().0, right);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&cached).unwrap().is_symlink());
    }

    #[test]
    fn a_local_image_that_does_not_match_its_name_is_no_source() {
        let image = noise(23, 100_000);
        let (dir, dest, hex) = destination_with(&image);
        let path = dir.path().join("store").join(&hex);
        std::fs::write(&path, b"changed").unwrap();
        let err = local_index(&dest, &hex).unwrap_err();
        assert!(err.to_string().contains("does not match its name"), "{err}");
        assert!(!dir.path().join("index").join(&hex).exists());
        let err = local_index(&dest, &"0".repeat(64)).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
