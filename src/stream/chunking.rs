//! Content-defined chunking of an image (FastCDC 2020) into a [`ChunkIndex`], streaming.
//!
//! The chunker reads through a buffer of one maximum chunk (64 KiB), so memory
//! use does not grow with the image. [`copy_hash_and_index`] chunks an image in
//! the same pass as the copy and hash of `tako store`, on a thread of its own:
//! chunk hashing costs as much as hashing the image, and the second CPU does it
//! while the file is read once.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use fastcdc::v2020::StreamCDC;
use sha2::{Digest, Sha256};

use crate::format::chunk_index::{AVG_CHUNK, Chunk, ChunkIndex, MAX_CHUNK, MIN_CHUNK};
use crate::stream::hashing::{self, CopyError, Summary};

/// Chunk lengths and digests of everything `input` yields, and its size.
pub fn chunks_of(input: &mut dyn Read) -> io::Result<(u64, Vec<Chunk>)> {
    let chunker = StreamCDC::new(
        input,
        MIN_CHUNK as usize,
        AVG_CHUNK as usize,
        MAX_CHUNK as usize,
    );
    let mut chunks = Vec::new();
    let mut size: u64 = 0;
    for chunk in chunker {
        let chunk = chunk.map_err(io::Error::from)?;
        // StreamCDC never cuts more than MAX_CHUNK bytes.
        let length = u32::try_from(chunk.data.len())
            .map_err(|_| io::Error::other("the chunker cut an oversized chunk"))?;
        size += u64::from(length);
        chunks.push(Chunk {
            digest: Sha256::digest(&chunk.data).into(),
            length,
        });
    }
    Ok((size, chunks))
}

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
            chunks_of(&mut ChannelReader {
                from: from_copy,
                to_pool,
                current: Vec::new(),
                position: 0,
            })
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
        let (size, chunks) = chunked.map_err(CopyError::Read)?;
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

/// Reads what a [`Tee`] sends, to the end of the copy.
struct ChannelReader {
    from: Receiver<Vec<u8>>,
    to_pool: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.from.recv() {
                Ok(next) => {
                    let used = std::mem::replace(&mut self.current, next);
                    // A full pool or a finished copy: the buffer is dropped.
                    let _ = self.to_pool.try_send(used);
                    self.position = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
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
            assert_eq!(chunk.digest, <[u8; 32]>::from(Sha256::digest(bytes)));
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
