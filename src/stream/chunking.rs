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
pub fn copy_hash_and_index(
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
        let summary = copied?;
        let (size, chunks) = chunked;
        if size != summary.size {
            return Err(CopyError::Read(io::Error::other(
                "the chunker saw another size than the copy",
            )));
        }
        Ok((
            summary,
            ChunkIndex {
                size,
                digest: summary.digest,
                chunks,
            },
        ))
    })
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

    #[test]
    fn the_parallel_copy_writes_the_index_bytes_of_the_sequential_one() {
        for (seed, size) in awkward_sizes().into_iter().enumerate() {
            let data = noise(seed as u64 + 40, size);
            let file = tempfile::tempfile().unwrap();
            let (summary, parallel) = copy_hash_and_index(&mut data.as_slice(), &file).unwrap();
            let sequential = index_of(&mut data.as_slice()).unwrap();
            assert_eq!(summary.size, size as u64);
            assert_eq!(parallel.to_bytes(), sequential.to_bytes(), "size {size}");
            assert_eq!(parallel.chunks, stream_cdc_chunks(&data), "size {size}");
        }
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
        let (summary, index) = copy_hash_and_index(&mut data.as_slice(), &file).unwrap();
        assert_eq!(summary.size, data.len() as u64);
        assert_eq!(index, index_of(&mut data.as_slice()).unwrap());
        let mut written = Vec::new();
        io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert_eq!(written, data);
    }
}
