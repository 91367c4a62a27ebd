//! One pass over an image: read, optionally write, and SHA-256 hash, overlapped.
//!
//! Hashing is the bottleneck of every Tako operation on a large image, so the
//! reading (and writing) thread never waits for it: filled buffers go to a
//! hashing thread and come back through a small fixed pool. Memory use is the
//! pool, whatever the image size.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread;

use sha2::{Digest, Sha256};

const BUFFER_SIZE: usize = 1 << 20;
const BUFFERS: usize = 4;

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

/// Reads `input` to its end, writes every byte to `output` (if any) and
/// hashes it. With a `limit`, fails as soon as byte `limit + 1` arrives.
pub fn copy_and_hash(
    input: &mut dyn Read,
    mut output: Option<&mut dyn Write>,
    limit: Option<u64>,
) -> Result<Summary, CopyError> {
    let (to_hasher, hasher_in) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    let (to_pool, pool) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        // The pool channel has room for every buffer, so this cannot block.
        let _ = to_pool.send(vec![0u8; BUFFER_SIZE]);
    }

    thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut sha = Sha256::new();
            for buf in hasher_in {
                sha.update(&buf);
                // The reader may have stopped early; a closed pool is fine.
                let _ = to_pool.send(buf);
            }
            <[u8; 32]>::from(sha.finalize())
        });

        let mut size: u64 = 0;
        let outcome = loop {
            let Ok(mut buf) = pool.recv() else {
                break Err(CopyError::Read(io::Error::other("hashing thread stopped")));
            };
            // Never ask for more than one byte past the limit, so an
            // oversized input is caught without reading on.
            let want = limit.map_or(BUFFER_SIZE, |l| {
                usize::try_from((l - size).saturating_add(1))
                    .map_or(BUFFER_SIZE, |w| w.min(BUFFER_SIZE))
            });
            buf.resize(want, 0);
            let filled = match fill(input, &mut buf) {
                Ok(n) => n,
                Err(e) => break Err(CopyError::Read(e)),
            };
            if filled == 0 {
                break Ok(());
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
        };
        drop(to_hasher);
        let digest = hasher
            .join()
            .map_err(|_| CopyError::Read(io::Error::other("hashing thread failed")))?;
        outcome.map(|()| Summary { size, digest })
    })
}

/// Fills `buf` as far as the input allows; returns less only at the end.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
