//! One pass over an image: read, optionally write, and SHA-256 hash, overlapped.
//!
//! Hashing is the bottleneck of every Tako operation on a large image, so the
//! reading (and writing) thread never waits for it: filled buffers go to a
//! hashing thread and come back through a small fixed pool. Memory use is the
//! pool, whatever the image size.
//!
//! [`copy_and_hash_to_file`] adds a third thread for an output file: it flushes
//! what has been written to disk every [`FLUSH_INTERVAL`] bytes, so that disk
//! writes overlap the copy and the caller's final `fsync` has only the tail
//! left, instead of the whole image after the copy.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread;

use sha2::{Digest, Sha256};

// Re-checking 1 GiB on the 2-CPU VM of `bench/README.md`: four 1 MiB buffers
// are as fast as eight 512 KiB, four 2 MiB or two 4 MiB ones (those two only
// add to the peak RSS), and 5 to 10 % faster than eight 256 KiB or sixteen
// 128 KiB ones, which hand over more often per byte.
const BUFFER_SIZE: usize = 1 << 20;
const BUFFERS: usize = 4;

/// How much [`copy_and_hash_to_file`] writes between two background flushes.
/// On the VM of `bench/README.md`, `tako store` of 1 GiB took 0.60 to 0.67 s
/// with 16 or 32 MiB, 0.70 to 0.73 s with 64 MiB, and 0.86 to 0.91 s with a
/// single `fsync` at the end.
pub const FLUSH_INTERVAL: u64 = 32 << 20;

/// Size and digest of the bytes that went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub size: u64,
    pub digest: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("read failed: {0}")]
    Read(#[source] io::Error),
    #[error("write failed: {0}")]
    Write(#[source] io::Error),
    /// More bytes arrived than allowed; `limit` bytes were accepted.
    #[error("more than the expected {limit} bytes")]
    TooLong { limit: u64 },
}

/// Bytes hashed already, to go on from: what a resumed download has on disk.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    sha: Sha256,
    size: u64,
}

impl Prefix {
    /// Hashes all of `input` (the bytes kept from an interrupted download).
    pub fn read(input: &mut dyn Read) -> io::Result<Prefix> {
        let mut prefix = Prefix::default();
        let mut buf = vec![0u8; BUFFER_SIZE];
        loop {
            let n = fill(input, &mut buf)?;
            if n == 0 {
                return Ok(prefix);
            }
            prefix.sha.update(&buf[..n]);
            prefix.size += n as u64;
        }
    }

    /// How many bytes it covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size and digest of these bytes alone.
    pub fn finish(self) -> Summary {
        Summary {
            size: self.size,
            digest: self.sha.finalize().into(),
        }
    }
}

/// Reads `input` to its end, writes every byte to `output` (if any) and
/// hashes it. With a `limit`, fails as soon as byte `limit + 1` arrives.
pub fn copy_and_hash(
    input: &mut dyn Read,
    output: Option<&mut dyn Write>,
    limit: Option<u64>,
) -> Result<Summary, CopyError> {
    copy_and_hash_after(Prefix::default(), input, output, limit)
}

/// As [`copy_and_hash`], as if the bytes of `prefix` had come first: the summary and the
/// `limit` count them too, but they are not written again.
fn copy_and_hash_after(
    prefix: Prefix,
    input: &mut dyn Read,
    mut output: Option<&mut dyn Write>,
    limit: Option<u64>,
) -> Result<Summary, CopyError> {
    if let Some(limit) = limit.filter(|&l| prefix.size > l) {
        return Err(CopyError::TooLong { limit });
    }
    let Prefix { sha, size: start } = prefix;
    let (to_hasher, hasher_in) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    let (to_pool, pool) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        // The pool channel has room for every buffer, so this cannot block.
        let _ = to_pool.send(vec![0u8; BUFFER_SIZE]);
    }

    thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut sha = sha;
            for buf in hasher_in {
                sha.update(&buf);
                // The reader may have stopped early; a closed pool is fine.
                let _ = to_pool.send(buf);
            }
            <[u8; 32]>::from(sha.finalize())
        });

        let mut size: u64 = start;
        let outcome = loop {
            let Ok(mut buf) = pool.recv() else {
                break Err(CopyError::Read(io::Error::other("hashing thread stopped")));
            };
            // Never ask for more than one byte past the limit, so an
            // oversized input is caught without reading on.
            let want = limit.map_or(BUFFER_SIZE, |l| {
                usize::try_from(l.saturating_sub(size).saturating_add(1))
                    .map_or(BUFFER_SIZE, |w| w.min(BUFFER_SIZE))
            });
            buf.resize(want, 0);
            // Bytes that arrived before a read failed are still written: a resumed
            // download goes on from the last byte received, not from the last full buffer.
            let (filled, failed) = fill_until_error(input, &mut buf);
            if filled == 0 {
                break failed.map_or(Ok(()), |e| Err(CopyError::Read(e)));
            }
            buf.truncate(filled);
            size += filled as u64;
            if let Some(limit) = limit.filter(|&l| size > l) {
                break Err(CopyError::TooLong { limit });
            }
            if let Some(out) = output.as_mut()
                && let Err(e) = out.write_all(&buf)
            {
                break Err(CopyError::Write(e));
            }
            if to_hasher.send(buf).is_err() {
                break Err(CopyError::Read(io::Error::other("hashing thread stopped")));
            }
            if let Some(e) = failed {
                break Err(CopyError::Read(e));
            }
        };
        drop(to_hasher);
        let digest = hasher
            .join()
            .map_err(|_| CopyError::Read(io::Error::other("hashing thread failed")))?;
        outcome.map(|()| Summary { size, digest })
    })
}

/// As [`copy_and_hash`] into the file `output`, while a background thread
/// flushes the data written so far to disk (`fdatasync`) after every
/// [`FLUSH_INTERVAL`] bytes. The caller still makes the file durable at the
/// end (`sync_all`), but by then little is left to write. A failed background
/// flush fails the copy, as a later `fsync` might not report the lost data.
pub fn copy_and_hash_to_file(
    input: &mut dyn Read,
    output: &File,
    limit: Option<u64>,
) -> Result<Summary, CopyError> {
    copy_and_hash_flushing(Prefix::default(), input, output, limit, FLUSH_INTERVAL)
}

/// As [`copy_and_hash_to_file`] for a file that already holds the bytes of `prefix`: the
/// new bytes are appended where the file's position is, and the summary covers all of them.
pub fn append_and_hash_to_file(
    prefix: Prefix,
    input: &mut dyn Read,
    output: &File,
    limit: Option<u64>,
) -> Result<Summary, CopyError> {
    copy_and_hash_flushing(prefix, input, output, limit, FLUSH_INTERVAL)
}

fn copy_and_hash_flushing(
    prefix: Prefix,
    input: &mut dyn Read,
    output: &File,
    limit: Option<u64>,
    interval: u64,
) -> Result<Summary, CopyError> {
    // Room for one request: while a flush runs, later requests merge into the
    // one waiting, and the writer never blocks on the flusher.
    let (to_flusher, requests) = mpsc::sync_channel::<()>(1);
    thread::scope(|scope| {
        let flusher = scope.spawn(move || -> io::Result<()> {
            for () in requests {
                output.sync_data()?;
            }
            Ok(())
        });
        let mut writer = FlushingWriter {
            file: output,
            to_flusher: Some(to_flusher),
            unflushed: 0,
            interval,
        };
        let copied = copy_and_hash_after(prefix, input, Some(&mut writer), limit);
        drop(writer);
        let flushed = flusher
            .join()
            .map_err(|_| CopyError::Write(io::Error::other("flushing thread failed")))?;
        match (copied, flushed) {
            // The flush error is the cause of a write that stopped for it.
            (Ok(_) | Err(CopyError::Write(_)), Err(e)) => Err(CopyError::Write(e)),
            (copied, _) => copied,
        }
    })
}

/// Writes to a file and asks the flusher for a flush every `interval` bytes.
struct FlushingWriter<'a> {
    file: &'a File,
    to_flusher: Option<SyncSender<()>>,
    unflushed: u64,
    interval: u64,
}

impl Write for FlushingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unflushed += n as u64;
        if self.unflushed >= self.interval {
            self.unflushed = 0;
            if let Some(to_flusher) = &self.to_flusher {
                match to_flusher.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    Err(TrySendError::Disconnected(())) => {
                        self.to_flusher = None;
                        return Err(io::Error::other("flushing to disk failed"));
                    }
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// As [`fill`], but a read error after some bytes arrived comes back beside them.
fn fill_until_error(input: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// Fills `buf` as far as the input allows; returns less only at the end.
pub(crate) fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    match fill_until_error(input, buf) {
        (filled, None) => Ok(filled),
        (_, Some(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// A reader that hands out at most 7 bytes per call, as a network might.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn hashes_and_copies_every_byte() {
        let data: Vec<u8> = (0..(3 * BUFFER_SIZE + 12345))
            .map(|i| (i * 31) as u8)
            .collect();
        let mut out = Vec::new();
        let s = copy_and_hash(&mut data.as_slice(), Some(&mut out), None).unwrap();
        assert_eq!(out, data);
        assert_eq!(s.size, data.len() as u64);
        assert_eq!(s.digest, sha(&data));
    }

    #[test]
    fn hashes_an_empty_input() {
        let s = copy_and_hash(&mut io::empty(), None, Some(0)).unwrap();
        assert_eq!(
            s,
            Summary {
                size: 0,
                digest: sha(b"")
            }
        );
    }

    #[test]
    fn accepts_exactly_the_limit_and_refuses_one_byte_more() {
        let data = vec![5u8; 1000];
        let s = copy_and_hash(&mut Trickle(&data), None, Some(1000)).unwrap();
        assert_eq!(s.digest, sha(&data));
        let err = copy_and_hash(&mut Trickle(&data), None, Some(999)).unwrap_err();
        assert!(matches!(err, CopyError::TooLong { limit: 999 }));
    }

    #[test]
    fn stops_an_endless_input_at_the_limit() {
        let err =
            copy_and_hash(&mut io::repeat(1), None, Some(5 * BUFFER_SIZE as u64)).unwrap_err();
        assert!(matches!(err, CopyError::TooLong { .. }));
    }

    #[test]
    fn copies_into_a_file_while_flushing_it() {
        let data: Vec<u8> = (0..(2 * BUFFER_SIZE + 777))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        // A small interval, so that many flushes run during the copy.
        let s = copy_and_hash_flushing(Prefix::default(), &mut Trickle(&data), &file, None, 4096)
            .unwrap();
        assert_eq!(s.size, data.len() as u64);
        assert_eq!(s.digest, sha(&data));
        let mut written = Vec::new();
        io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert_eq!(written, data);
    }

    #[test]
    fn copies_an_empty_input_into_a_file() {
        let file = tempfile::tempfile().unwrap();
        let s = copy_and_hash_to_file(&mut io::empty(), &file, Some(0)).unwrap();
        assert_eq!(s.size, 0);
        assert_eq!(s.digest, sha(b""));
        assert_eq!(file.metadata().unwrap().len(), 0);
    }

    #[test]
    fn file_copy_respects_the_limit() {
        let file = tempfile::tempfile().unwrap();
        let err = copy_and_hash_flushing(
            Prefix::default(),
            &mut io::repeat(3),
            &file,
            Some(3 << 20),
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, CopyError::TooLong { limit } if limit == 3 << 20));
    }

    #[test]
    fn file_copy_reports_write_errors() {
        // A file opened only for reading refuses writes.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let read_only = File::open(tmp.path()).unwrap();
        let err = copy_and_hash_to_file(&mut &[1u8; 10][..], &read_only, None).unwrap_err();
        assert!(matches!(err, CopyError::Write(_)), "{err:?}");
    }

    #[test]
    fn appending_hashes_the_prefix_and_the_rest_as_one_input() {
        let data: Vec<u8> = (0..(BUFFER_SIZE + 999)).map(|i| (i * 13) as u8).collect();
        let (head, tail) = data.split_at(BUFFER_SIZE / 2 + 7);
        let prefix = Prefix::read(&mut Trickle(head)).unwrap();
        assert_eq!(prefix.size(), head.len() as u64);
        let mut file = tempfile::tempfile().unwrap();
        let limit = Some(data.len() as u64);
        let s = append_and_hash_to_file(prefix.clone(), &mut Trickle(tail), &file, limit).unwrap();
        assert_eq!(s.size, data.len() as u64);
        assert_eq!(s.digest, sha(&data));
        let mut written = Vec::new();
        io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert_eq!(written, tail, "only the new bytes are written");
        // The limit counts the prefix: one byte too many is refused.
        let short = Some(data.len() as u64 - 1);
        let err = append_and_hash_to_file(prefix.clone(), &mut Trickle(tail), &file, short);
        assert!(matches!(err, Err(CopyError::TooLong { .. })));
        // A prefix already past the limit is refused before anything is read.
        let err = append_and_hash_to_file(prefix, &mut io::repeat(1), &file, Some(3));
        assert!(matches!(err, Err(CopyError::TooLong { limit: 3 })));
    }

    #[test]
    fn bytes_read_before_an_error_are_written_and_hashed() {
        struct Cut<'a>(&'a [u8]);
        impl Read for Cut<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("connection reset"));
                }
                let n = buf.len().min(1000).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = vec![7u8; 5500];
        let mut out = Vec::new();
        let err = copy_and_hash(&mut Cut(&data), Some(&mut out), None).unwrap_err();
        assert!(matches!(err, CopyError::Read(_)), "{err:?}");
        assert_eq!(out, data, "everything that arrived was written");
    }

    #[test]
    fn reports_read_errors() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("connection reset"))
            }
        }
        let err = copy_and_hash(&mut Broken, None, None).unwrap_err();
        assert!(err.to_string().contains("connection reset"));
    }
}
