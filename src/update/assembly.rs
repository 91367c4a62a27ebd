//! Delta updates: assemble a new image from local chunks and remote ranges, following a
//! plan (`format::delta_plan`).
//!
//! [`Assembly`] turns a plan into the new image as a [`Read`], strictly in
//! order, so that the caller writes and hashes it exactly as a plain
//! download (see `hashing::copy_and_hash_to_file`): the final size and
//! SHA-256 from the signed manifest decide. Each local chunk is hashed before
//! it is used; one that does not match (a local file changed since it was
//! indexed) is fetched instead.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use crate::format::byteranges;
use crate::format::chunk_index::{
    Chunk, ChunkDigest, ChunkHasher, ChunkIndex, MAX_CHUNK, chunk_digest,
};
use crate::format::delta_plan::{MAX_MISMATCHES, Plan, Step};

/// Where an assembly gets the bytes it does not have: byte ranges of the
/// remote image, many in one request where the origin allows it.
pub trait RangeSource {
    /// A reader of bytes `start..end` of the remote image. It may yield
    /// more or fewer bytes (a broken server); the assembly checks.
    fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read>>;

    /// A reader of the bytes of all `ranges` (each `start..end`, ascending), back to
    /// back, from one request; `None` if the origin answers only one range at a time
    /// (the default), after which only [`RangeSource::range`] is used.
    fn ranges(&mut self, ranges: &[(u64, u64)]) -> io::Result<Option<Box<dyn Read>>> {
        let _ = ranges;
        Ok(None)
    }
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
    /// A remote range, with the bytes still expected: from a reader of its own, or
    /// (`None`) from the current batch of several ranges.
    Remote {
        reader: Option<Box<dyn Read>>,
        start: u64,
        end: u64,
        left: u64,
    },
    Idle,
}

impl Current {
    /// The remote range `start..end`, none of its bytes read yet.
    fn remote(reader: Option<Box<dyn Read>>, start: u64, end: u64) -> Current {
        Current::Remote {
            reader,
            start,
            end,
            left: end - start,
        }
    }
}

/// The new image as a reader, produced step by step from a [`Plan`].
pub struct Assembly<'a> {
    steps: std::slice::Iter<'a, Step>,
    locals: &'a [File],
    remote: &'a mut dyn RangeSource,
    /// The reader of several ranges asked for in one request, and those of them not
    /// begun yet, in order.
    batch: Option<Box<dyn Read>>,
    queued: VecDeque<(u64, u64)>,
    /// Whether to ask for several ranges at once: until the origin says it cannot.
    multi: bool,
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
    current: Option<(u64, u64, ChunkDigest, ChunkHasher)>,
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
                self.current = Some((offset, end, chunk.digest, ChunkHasher::new()));
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
                    self.ok &= hasher.finish() == digest;
                }
            }
        }
    }

    fn passed(&self) -> bool {
        self.ok && self.current.is_none()
    }
}

impl<'a> Assembly<'a> {
    /// `locals` are the local images, in the order given to [`plan`](crate::format::delta_plan::plan).
    pub fn new(plan: &'a Plan, locals: &'a [File], remote: &'a mut dyn RangeSource) -> Self {
        Assembly {
            steps: plan.steps.iter(),
            locals,
            remote,
            batch: None,
            queued: VecDeque::new(),
            multi: true,
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

    /// Range requests whose answers were used so far: one per batch of ranges asked for
    /// together, one per range asked for alone.
    pub fn requests(&self) -> usize {
        self.requests
    }

    fn open_range(&mut self, start: u64, end: u64) -> Result<(), AssemblyError> {
        self.requests += 1;
        let reader = self
            .remote
            .range(start, end)
            .map_err(|error| AssemblyError::Range { start, end, error })?;
        self.current = Current::remote(Some(reader), start, end);
        Ok(())
    }

    /// Starts the planned range `start..end`: from the batch it was asked for in, else
    /// with this and the next planned ranges in one request, else alone.
    fn open_planned(&mut self, start: u64, end: u64) -> Result<(), AssemblyError> {
        if self.queued.front() == Some(&(start, end)) {
            self.queued.pop_front();
            self.current = Current::remote(None, start, end);
            return Ok(());
        }
        if self.multi {
            let upcoming: Vec<(u64, u64)> = std::iter::once((start, end))
                .chain(self.steps.clone().filter_map(|step| match *step {
                    Step::Fetch { start, end } => Some((start, end)),
                    Step::Copy { .. } => None,
                }))
                .take(byteranges::MAX_RANGES_PER_REQUEST)
                .collect();
            let asked = &upcoming[..byteranges::per_request(&upcoming)];
            if asked.len() > 1 {
                // Counted when answered with the ranges: an origin that cannot send
                // several (a registry, `file://`) makes no request for them, and one that
                // answers with the whole file has its answer dropped unread.
                let batch = self
                    .remote
                    .ranges(asked)
                    .map_err(|error| AssemblyError::Range { start, end, error })?;
                match batch {
                    Some(reader) => {
                        self.requests += 1;
                        self.batch = Some(reader);
                        self.queued = asked[1..].iter().copied().collect();
                        self.current = Current::remote(None, start, end);
                        return Ok(());
                    }
                    None => self.multi = false,
                }
            }
        }
        self.open_range(start, end)
    }

    /// Starts the next step; false at the end of the plan.
    fn advance(&mut self) -> Result<bool, AssemblyError> {
        let Some(&step) = self.steps.next() else {
            return Ok(false);
        };
        let here = self.next_offset;
        match step {
            Step::Fetch { start, end } => {
                self.next_offset = here + step.length();
                self.open_planned(start, end)?;
            }
            Step::Copy {
                source,
                offset,
                length,
                digest,
            } => {
                self.next_offset = here + step.length();
                self.buffer.resize(length as usize, 0);
                let read = match self.locals.get(source) {
                    Some(file) => file.read_exact_at(&mut self.buffer, offset),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no such local image",
                    )),
                };
                let matches = read.is_ok() && chunk_digest(&self.buffer) == digest;
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
                    let batched = reader.is_none();
                    let Some(reader) = reader.as_mut().or(self.batch.as_mut()) else {
                        return Err(AssemblyError::Range {
                            start,
                            end,
                            error: io::Error::other("no request open for it"),
                        }
                        .into());
                    };
                    if *left == 0 {
                        // The range must end where it was asked to; a batch, after its
                        // last range, with its closing delimiter.
                        if !batched || self.queued.is_empty() {
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
                            if batched {
                                self.batch = None;
                            }
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
    use crate::format::delta_plan::plan;
    use crate::format::delta_plan::tests::{assert_covers, synthetic};
    use crate::stream::chunking::{self, tests::noise};
    use std::io::Write;

    const K: u32 = 1 << 10;

    /// An origin in memory that records the ranges asked for.
    struct Memory {
        image: Vec<u8>,
        asked: Vec<(u64, u64)>,
        /// Bytes to add to (positive) or cut from (negative) each answer.
        skew: i64,
        /// `Some`: several ranges are answered at once, and the number of ranges of each
        /// such request is recorded.
        batches: Option<Vec<usize>>,
    }

    impl RangeSource for Memory {
        fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read>> {
            self.asked.push((start, end));
            let end = (end as i64 + self.skew).clamp(start as i64, self.image.len() as i64);
            Ok(Box::new(io::Cursor::new(
                self.image[start as usize..end as usize].to_vec(),
            )))
        }

        fn ranges(&mut self, ranges: &[(u64, u64)]) -> io::Result<Option<Box<dyn Read>>> {
            let Some(batches) = &mut self.batches else {
                return Ok(None);
            };
            batches.push(ranges.len());
            let mut bytes = Vec::new();
            for &(start, end) in ranges {
                self.asked.push((start, end));
                bytes.extend_from_slice(&self.image[start as usize..end as usize]);
            }
            let len = (bytes.len() as i64 + self.skew).max(0) as usize;
            bytes.resize(len, 0);
            Ok(Some(Box::new(io::Cursor::new(bytes))))
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
            batches: None,
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
    fn an_origin_that_answers_several_ranges_at_once_gets_one_request_per_batch() {
        let old = noise(12, 32 << 20);
        let mut new = old.clone();
        // Enough separate changes for more than one batch.
        for block in (0..new.len() >> 16).step_by(2).skip(1) {
            let at = (block << 16) + 20_000;
            new[at..at + 100].copy_from_slice(&noise(block as u64 + 500, 100));
        }
        let old_index = chunking::index_of(&mut old.as_slice()).unwrap();
        let new_index = chunking::index_of(&mut new.as_slice()).unwrap();
        let plan = plan(&new_index, &[&old_index]);
        let ranges = plan.requests();
        assert!(ranges > byteranges::MAX_RANGES_PER_REQUEST, "{ranges}");
        let mut remote = Memory {
            image: new.clone(),
            asked: Vec::new(),
            skew: 0,
            batches: Some(Vec::new()),
        };
        let (out, downloaded, requests) =
            assemble(&plan, &[local_file(&old)], &mut remote).unwrap();
        assert!(out == new, "the assembled image differs");
        assert_eq!(downloaded, plan.to_fetch());
        let batches = remote.batches.clone().unwrap();
        assert_eq!(batches.iter().sum::<usize>(), ranges);
        assert_eq!(
            requests,
            ranges.div_ceil(byteranges::MAX_RANGES_PER_REQUEST)
        );
        assert_eq!(requests, batches.len());
        // A batch answered with a byte too many or too few stops the assembly.
        for skew in [1, -1] {
            let mut remote = Memory {
                image: new.clone(),
                asked: Vec::new(),
                skew,
                batches: Some(Vec::new()),
            };
            assert!(assemble(&plan, &[local_file(&old)], &mut remote).is_err());
        }
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
                batches: None,
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
            batches: None,
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
            batches: None,
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
            batches: None,
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
                batches: None,
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
}
