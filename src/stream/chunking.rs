//! Content-defined chunking of an image (FastCDC 2020) into a [`ChunkIndex`], streaming.
//!
//! [`Chunker`] cuts bytes handed over in buffers of any size at the very
//! points `fastcdc`'s `StreamCDC` would, without copying them: a chunk that
//! lies inside one buffer is cut and hashed where it is, only the few that
//! straddle two buffers go through a carry-over of at most one maximum chunk
//! (32 KiB). [`copy_hash_and_index`] chunks an image in the same pass as the
//! copy and hash of `tako store`, on a thread of its own: the gear hash and
//! the chunks' BLAKE3 run on the second CPU while the first copies the file
//! and hashes it with SHA-256, so the file is read once.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use fastcdc::v2020::Normalization;
use sha2::{Digest, Sha256};

use crate::format::chunk_index::{
    AVG_CHUNK, Chunk, ChunkIndex, MAX_CHUNK, MIN_CHUNK, chunk_digest,
};
use crate::stream::hashing::{self, CopyError, Summary};

const MIN: usize = MIN_CHUNK as usize;
const AVG: usize = AVG_CHUNK as usize;
const MAX: usize = MAX_CHUNK as usize;

/// Cuts a stream, fed in pieces, into the chunks `StreamCDC` (normalisation
/// level 1, the default) cuts it into, and hashes each.
pub struct Chunker {
    mask_s: u64,
    mask_l: u64,
    /// Bytes of a chunk that began in an earlier piece, less than [`MAX`].
    pending: Vec<u8>,
    chunks: Vec<Chunk>,
    size: u64,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunker {
    pub fn new() -> Chunker {
        let (mask_s, mask_l) = fastcdc::v2020::select_masks(AVG, Normalization::Level1);
        Chunker {
            mask_s,
            mask_l,
            pending: Vec::with_capacity(MAX),
            chunks: Vec::new(),
            size: 0,
        }
    }

    /// The length of the chunk that starts `source`: `source` holds the next
    /// [`MAX`] bytes, or all that is left at the end of the stream, exactly as
    /// `StreamCDC`'s buffer does when it cuts.
    fn cut(&self, source: &[u8]) -> usize {
        let (_, n) = fastcdc::v2020::cut(
            source,
            MIN,
            AVG,
            MAX,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        // Never zero for bytes; the guard keeps a loop over them finite regardless.
        if n == 0 {
            source.len()
        } else {
            n.min(source.len())
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        // At most MAX bytes: `cut` never returns more than its source holds.
        let length = u32::try_from(bytes.len()).unwrap_or(MAX_CHUNK);
        self.chunks.push(Chunk {
            digest: chunk_digest(bytes),
            length,
        });
    }

    /// The next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        let mut pos = 0;
        // First the chunks that began in an earlier piece: `carried` of the pending
        // bytes came from there, the rest from `data[..pos]`.
        let mut carried = self.pending.len();
        while carried > 0 {
            let take = (MAX - self.pending.len()).min(data.len() - pos);
            self.pending.extend_from_slice(&data[pos..pos + take]);
            pos += take;
            if self.pending.len() < MAX {
                // All of `data` is pending: the next piece decides the cut.
                return;
            }
            let pending = std::mem::take(&mut self.pending);
            let n = self.cut(&pending);
            self.push(&pending[..n]);
            self.pending = pending;
            carried = carried.saturating_sub(n);
            if carried == 0 {
                // What is left pending lies in `data`: cut it there.
                pos -= self.pending.len() - n;
                self.pending.clear();
            } else {
                self.pending.drain(..n);
            }
        }
        while data.len() - pos >= MAX {
            let n = self.cut(&data[pos..pos + MAX]);
            self.push(&data[pos..pos + n]);
            pos += n;
        }
        self.pending.extend_from_slice(&data[pos..]);
    }

    /// The size of the stream and its chunks, once it has ended.
    pub fn finish(mut self) -> (u64, Vec<Chunk>) {
        let pending = std::mem::take(&mut self.pending);
        let mut rest = pending.as_slice();
        while !rest.is_empty() {
            let n = self.cut(rest);
            self.push(&rest[..n]);
            rest = &rest[n..];
        }
        (self.size, self.chunks)
    }
}

/// Chunk lengths and digests of everything `input` yields, and its size.
pub fn chunks_of(input: &mut dyn Read) -> io::Result<(u64, Vec<Chunk>)> {
    let mut chunker = Chunker::new();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(chunker.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        chunker.feed(&buf[..n]);
    }
}

/// How much [`chunks_of`] reads at a time: many chunks, so that few straddle two reads.
const READ_SIZE: usize = 1 << 20;

/// The index of everything `input` yields.
pub fn index_of(input: &mut dyn Read) -> io::Result<ChunkIndex> {
    let mut hasher = Sha256::new();
    let (size, chunks) = chunks_of(&mut HashingReader {
        inner: input,
        hasher: &mut hasher,
    })?;
    Ok(ChunkIndex {
        size,
        digest: hasher.finalize().into(),
        chunks,
    })
}

struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: &'a mut Sha256,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// As [`hashing::copy_and_hash_to_file`], and chunks the bytes on the way.
///
/// `direct`: `output` was opened for direct writes (`O_DIRECT`, past the page cache),
/// so every write must start, end and lie in memory at multiples of [`DIRECT_ALIGN`].
/// The bytes and the index are the same either way.
pub fn copy_hash_and_index(
    input: &mut dyn Read,
    output: &File,
    direct: bool,
) -> Result<(Summary, ChunkIndex), CopyError> {
    if direct {
        copy_directly_hash_and_index(input, output)
    } else {
        copy_hash_and_index_buffered(input, output)
    }
}

fn copy_hash_and_index_buffered(
    input: &mut dyn Read,
    output: &File,
) -> Result<(Summary, ChunkIndex), CopyError> {
    // A few reads in flight: the chunker keeps up with the copy, and this
    // bounds the memory if it does not.
    let (to_chunker, from_copy) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    // Used buffers go back to the copy: allocating a fresh 1 MiB buffer per
    // read costs more in page faults than the chunking itself.
    let (to_pool, pool) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    thread::scope(|scope| {
        let chunker = scope.spawn(move || {
            let mut chunker = Chunker::new();
            for buf in from_copy {
                chunker.feed(&buf);
                // A full pool or a finished copy: the buffer is dropped.
                let _ = to_pool.try_send(buf);
            }
            chunker.finish()
        });
        let mut tee = Tee {
            inner: input,
            to: Some(to_chunker),
            pool,
        };
        let copied = hashing::copy_and_hash_to_file(&mut tee, output, None);
        drop(tee);
        let chunked = chunker
            .join()
            .map_err(|_| CopyError::Read(io::Error::other("chunking thread failed")))?;
        indexed(copied?, chunked)
    })
}

/// The copy's summary with the index of what the chunker saw, which must be the same bytes.
fn indexed(
    summary: Summary,
    (size, chunks): (u64, Vec<Chunk>),
) -> Result<(Summary, ChunkIndex), CopyError> {
    if size != summary.size {
        return Err(CopyError::Read(io::Error::other(
            "the chunker saw another size than the copy",
        )));
    }
    let index = ChunkIndex {
        size,
        digest: summary.digest,
        chunks,
    };
    Ok((summary, index))
}

/// Reads the copy may have sent ahead of the chunker.
const IN_FLIGHT: usize = 2;

/// Passes reads through and sends a copy of every byte read to the chunker.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    to: Option<SyncSender<Vec<u8>>>,
    /// Buffers the chunker is done with.
    pool: Receiver<Vec<u8>>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(to) = &self.to
        {
            let mut copy = self.pool.try_recv().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(&buf[..n]);
            if to.send(copy).is_err() {
                self.to = None;
                return Err(io::Error::other("chunking thread stopped"));
            }
        }
        Ok(n)
    }
}

/// The alignment of the memory, file offsets and lengths of the writes of a direct copy:
/// no file system that allows direct writes asks for more in practice, and one that does
/// is written through the page cache (the caller's check, `fs::direct`).
pub const DIRECT_ALIGN: usize = 4096;
/// The size of each buffer of a direct copy, a multiple of [`DIRECT_ALIGN`].
const DIRECT_BUFFER: usize = 1 << 20;
/// Buffers of a direct copy, read ahead of the slower of the writer and the chunker.
const DIRECT_BUFFERS: usize = 6;

/// A buffer whose bytes start at a [`DIRECT_ALIGN`]-aligned address.
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let storage = vec![0u8; DIRECT_BUFFER + DIRECT_ALIGN];
        let start = (DIRECT_ALIGN - storage.as_ptr().addr() % DIRECT_ALIGN) % DIRECT_ALIGN;
        Aligned {
            storage,
            start,
            len: 0,
        }
    }

    fn space(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + DIRECT_BUFFER]
    }

    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The bytes rounded up to a multiple of [`DIRECT_ALIGN`]: only the last buffer of a
    /// copy is short, and what follows its bytes is written and then cut off.
    fn padded(&self) -> &[u8] {
        let end = self.start + self.len.next_multiple_of(DIRECT_ALIGN);
        &self.storage[self.start..end]
    }
}

/// Hands a buffer back to the reader once both the writer and the chunker are done
/// with it: of the two, exactly the one that lets go last gets it.
fn recycle(buffer: Arc<Aligned>, pool: &SyncSender<Aligned>) {
    if let Some(buffer) = Arc::into_inner(buffer) {
        let _ = pool.try_send(buffer);
    }
}

/// The copy of [`copy_hash_and_index`] for a file open for direct writes. The calling
/// thread reads whole buffers and hashes them; one thread writes them, another chunks
/// them, both from the same buffers (nothing is copied in memory), and the buffers go
/// back to the reader once both are done. Without the page cache, the kernel neither
/// copies the image into fresh pages nor writes them back later: on the VM of
/// `bench/README.md` that was as much CPU as the image's SHA-256.
fn copy_directly_hash_and_index(
    input: &mut dyn Read,
    output: &File,
) -> Result<(Summary, ChunkIndex), CopyError> {
    let (to_writer, for_writer) = mpsc::sync_channel::<Arc<Aligned>>(DIRECT_BUFFERS);
    let (to_chunker, for_chunker) = mpsc::sync_channel::<Arc<Aligned>>(DIRECT_BUFFERS);
    let (to_pool, pool) = mpsc::sync_channel::<Aligned>(DIRECT_BUFFERS);
    let failed = AtomicBool::new(false);
    thread::scope(|scope| {
        let back = to_pool.clone();
        let failed = &failed;
        let writer = scope.spawn(move || write_directly(output, for_writer, &back, failed));
        let chunker = scope.spawn(move || {
            let mut chunker = Chunker::new();
            for buffer in for_chunker {
                chunker.feed(buffer.data());
                recycle(buffer, &to_pool);
            }
            chunker.finish()
        });
        let read = read_into(input, &pool, &to_writer, &to_chunker, failed);
        drop((to_writer, to_chunker));
        let written = writer
            .join()
            .map_err(|_| CopyError::Write(io::Error::other("writing thread failed")))?;
        let chunked = chunker
            .join()
            .map_err(|_| CopyError::Read(io::Error::other("chunking thread failed")))?;
        let summary = read?;
        written.map_err(CopyError::Write)?;
        indexed(summary, chunked)
    })
}

/// The reading side of a direct copy: whole buffers (all but the last full), hashed, and
/// sent to the writer and the chunker; stops early once the writer has failed.
fn read_into(
    input: &mut dyn Read,
    pool: &Receiver<Aligned>,
    to_writer: &SyncSender<Arc<Aligned>>,
    to_chunker: &SyncSender<Arc<Aligned>>,
    failed: &AtomicBool,
) -> Result<Summary, CopyError> {
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut made = 0;
    while !failed.load(Ordering::Relaxed) {
        let mut buffer = match pool.try_recv() {
            Ok(buffer) => buffer,
            Err(_) if made < DIRECT_BUFFERS => {
                made += 1;
                Aligned::new()
            }
            // Every buffer is out: the writer and the chunker drain their channels
            // whatever happens, so one comes back.
            Err(_) => match pool.recv() {
                Ok(buffer) => buffer,
                Err(_) => break,
            },
        };
        let n = hashing::fill(input, buffer.space()).map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        buffer.len = n;
        sha.update(buffer.data());
        size += n as u64;
        let shared = Arc::new(buffer);
        if to_writer.send(Arc::clone(&shared)).is_err() || to_chunker.send(shared).is_err() {
            break;
        }
        // `fill` comes back short only at the end of the input.
        if n < DIRECT_BUFFER {
            break;
        }
    }
    Ok(Summary {
        size,
        digest: sha.finalize().into(),
    })
}

/// The writing side of a direct copy. Buffers that wait are written together, up to
/// [`WRITE_BATCH`] in one `pwritev`: the disk of the VM of `bench/README.md` took 1 GiB in
/// 1 MiB direct writes in 1.0 to 2.3 s, in 2 or 4 MiB ones in 0.8 to 1.2 s, and this costs
/// no memory. After a failed write it goes on taking
/// buffers (and handing them back) without writing, so that the reader never waits for a
/// buffer that does not come, and it raises `failed` so that the reader stops.
fn write_directly(
    output: &File,
    buffers: Receiver<Arc<Aligned>>,
    pool: &SyncSender<Aligned>,
    failed: &AtomicBool,
) -> io::Result<()> {
    let mut result = Ok(());
    let mut offset = 0u64;
    let mut size = 0u64;
    let mut batch: Vec<Arc<Aligned>> = Vec::with_capacity(WRITE_BATCH);
    while let Ok(first) = buffers.recv() {
        batch.push(first);
        while batch.len() < WRITE_BATCH
            && let Ok(next) = buffers.try_recv()
        {
            batch.push(next);
        }
        if result.is_ok() {
            let parts: Vec<&[u8]> = batch.iter().map(|b| b.padded()).collect();
            result = write_all_vectored_at(output, &parts, offset);
            offset += parts.iter().map(|p| p.len() as u64).sum::<u64>();
            size += batch.iter().map(|b| b.len as u64).sum::<u64>();
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
        for buffer in batch.drain(..) {
            recycle(buffer, pool);
        }
    }
    result?;
    if offset != size {
        output.set_len(size)?;
    }
    Ok(())
}

/// The most buffers [`write_directly`] writes in one call: two leave the reader room for
/// as much again while a write is under way (with four, the reader waited for buffers).
const WRITE_BATCH: usize = 2;

/// Writes all of `parts`, one after the other, at `offset`, in as few calls as the
/// kernel allows. A direct write cut short off the alignment cannot go on (the next call
/// would only fail with "invalid argument"), so that is reported as what it is.
fn write_all_vectored_at(output: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        // What is left: the parts from the one `done` ends in.
        let mut skip = done;
        let left: Vec<io::IoSlice> = parts
            .iter()
            .filter_map(|part| {
                if skip >= part.len() {
                    skip -= part.len();
                    None
                } else {
                    let rest = &part[skip..];
                    skip = 0;
                    Some(io::IoSlice::new(rest))
                }
            })
            .collect();
        match rustix::io::pwritev(output, &left, offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < total - done && !(done + n).is_multiple_of(DIRECT_ALIGN) => {
                return Err(io::Error::other(format!(
                    "the disk took {n} of {} bytes of a write (is it full?)",
                    total - done
                )));
            }
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so that chunk
    /// boundaries depend on content as they do on a real image.
    pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    /// The chunks `fastcdc`'s own streaming chunker cuts: what indexes were
    /// made with before [`Chunker`], and what published indexes hold.
    fn stream_cdc_chunks(data: &[u8]) -> Vec<Chunk> {
        fastcdc::v2020::StreamCDC::new(data, MIN, AVG, MAX)
            .map(|chunk| {
                let chunk = chunk.unwrap();
                Chunk {
                    digest: chunk_digest(&chunk.data),
                    length: chunk.data.len() as u32,
                }
            })
            .collect()
    }

    /// Sizes around the chunk bounds and the 1 MiB pieces of a copy.
    fn awkward_sizes() -> Vec<usize> {
        let mut sizes = vec![0, 1, 2, MIN - 1, MIN, MIN + 1, AVG, MAX - 1, MAX, MAX + 1];
        sizes.extend([2 * MAX - 1, 2 * MAX, 2 * MAX + 1, 3 * MAX + 7]);
        sizes.extend([
            READ_SIZE - 1,
            READ_SIZE,
            READ_SIZE + 1,
            3 * READ_SIZE + 4321,
        ]);
        sizes
    }

    #[test]
    fn the_chunker_cuts_where_the_streaming_chunker_of_fastcdc_cuts() {
        for (seed, size) in awkward_sizes().into_iter().enumerate() {
            let data = noise(seed as u64 + 10, size);
            let expected = stream_cdc_chunks(&data);
            // Whole, and in pieces smaller than, equal to and larger than a chunk.
            for piece in [usize::MAX, 1000, MAX, MAX + 3, 100_000] {
                let mut chunker = Chunker::new();
                for part in data.chunks(piece.min(data.len().max(1))) {
                    chunker.feed(part);
                }
                let (got_size, chunks) = chunker.finish();
                assert_eq!(got_size, size as u64, "size {size}, pieces of {piece}");
                assert_eq!(chunks, expected, "size {size}, pieces of {piece}");
            }
        }
    }

    /// A temporary file open for direct writes where its file system allows them (as
    /// `fs::direct` opens one; without, the direct copy's writes are still aligned and
    /// its last one cut back), with a path to read it back through the page cache.
    fn direct_file() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let flags = rustix::fs::fcntl_getfl(file.as_file()).unwrap();
        let _ = rustix::fs::fcntl_setfl(file.as_file(), flags | rustix::fs::OFlags::DIRECT);
        file
    }

    #[test]
    fn the_parallel_copy_writes_the_index_bytes_of_the_sequential_one() {
        let mut sizes = awkward_sizes();
        sizes.extend([DIRECT_BUFFER - 1, DIRECT_BUFFER, DIRECT_BUFFER + 1]);
        sizes.extend([DIRECT_BUFFERS * DIRECT_BUFFER + DIRECT_ALIGN + 1]);
        for (seed, size) in sizes.into_iter().enumerate() {
            let data = noise(seed as u64 + 40, size);
            let sequential = index_of(&mut data.as_slice()).unwrap();
            for direct in [false, true] {
                let file = if direct {
                    direct_file()
                } else {
                    tempfile::NamedTempFile::new().unwrap()
                };
                let (summary, parallel) =
                    copy_hash_and_index(&mut data.as_slice(), file.as_file(), direct).unwrap();
                assert_eq!(summary.size, size as u64);
                assert_eq!(summary.digest, sequential.digest);
                assert_eq!(parallel.to_bytes(), sequential.to_bytes(), "size {size}");
                assert_eq!(parallel.chunks, stream_cdc_chunks(&data), "size {size}");
                let written = std::fs::read(file.path()).unwrap();
                assert!(written == data, "size {size}, direct {direct}");
            }
        }
    }

    #[test]
    fn a_direct_copy_that_cannot_write_fails_naming_the_write_and_does_not_hang() {
        let data = noise(5, 3 * DIRECT_BUFFERS * DIRECT_BUFFER);
        let file = tempfile::NamedTempFile::new().unwrap();
        let read_only = File::open(file.path()).unwrap();
        let err = copy_hash_and_index(&mut data.as_slice(), &read_only, true).unwrap_err();
        assert!(matches!(err, CopyError::Write(_)), "{err:?}");
    }

    #[test]
    fn a_direct_copy_whose_input_fails_reports_the_read() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.0).min(100_000);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let file = direct_file();
        let err = copy_hash_and_index(&mut Failing(9 << 20), file.as_file(), true).unwrap_err();
        assert!(
            matches!(err, CopyError::Read(ref e) if e.to_string() == "disk gone"),
            "{err:?}"
        );
    }

    #[test]
    fn chunks_cover_the_input_within_the_bounds() {
        let data = noise(1, 3 << 20);
        let index = index_of(&mut data.as_slice()).unwrap();
        assert_eq!(index.size, data.len() as u64);
        assert_eq!(index.digest, <[u8; 32]>::from(Sha256::digest(&data)));
        let last = index.chunks.len() - 1;
        for (i, (offset, chunk)) in index.offsets().enumerate() {
            assert!(chunk.length <= MAX_CHUNK);
            assert!(i == last || chunk.length >= MIN_CHUNK);
            let bytes = &data[offset as usize..offset as usize + chunk.length as usize];
            assert_eq!(chunk.digest, chunk_digest(bytes));
        }
        // Content-defined: about the average size, not all at the maximum.
        assert!(index.chunks.len() > 20, "{}", index.chunks.len());
        // What is computed is what the parser accepts.
        assert_eq!(ChunkIndex::parse(&index.to_bytes()).unwrap(), index);
    }

    #[test]
    fn an_insertion_only_changes_the_chunks_around_it() {
        let old = noise(2, 4 << 20);
        let mut new = old.clone();
        new.splice(1_000_000..1_000_000, noise(3, 1000));
        let old_index = index_of(&mut old.as_slice()).unwrap();
        let new_index = index_of(&mut new.as_slice()).unwrap();
        let known: std::collections::HashSet<_> =
            old_index.chunks.iter().map(|c| c.digest).collect();
        let fresh = new_index
            .chunks
            .iter()
            .filter(|c| !known.contains(&c.digest))
            .count();
        assert!(
            fresh <= 3,
            "{fresh} of {} chunks changed",
            new_index.chunks.len()
        );
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let index = index_of(&mut io::empty()).unwrap();
        assert_eq!((index.size, index.chunks.len()), (0, 0));
        let index = index_of(&mut &b"abc"[..]).unwrap();
        assert_eq!(index.chunks.len(), 1);
        assert_eq!(index.chunks[0].length, 3);
    }

    #[test]
    fn the_copy_computes_the_same_index_in_one_pass() {
        let data = noise(4, (5 << 20) + 333);
        let mut file = tempfile::tempfile().unwrap();
        let (summary, index) = copy_hash_and_index(&mut data.as_slice(), &file, false).unwrap();
        assert_eq!(summary.size, data.len() as u64);
        assert_eq!(index, index_of(&mut data.as_slice()).unwrap());
        let mut written = Vec::new();
        io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert_eq!(written, data);
    }
}
