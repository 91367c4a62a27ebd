//! A layer blob turned into its tar stream: decompressed, counted, capped and hashed as it is read.
//!
//! An image layer arrives compressed (`tar+gzip`, `tar+zstd`) or not (`tar`),
//! and its config names the SHA-256 of the *uncompressed* stream (the
//! `diff_id`). [`Uncompressed`] yields that stream once, hashing every byte as
//! it goes, so the digest costs no second pass; the caller compares it with the
//! config when the stream has been read to its end ([`Uncompressed::finish`]).
//!
//! A small blob can expand without bound (a gzip stream of zeros shrinks about
//! a thousand times), so the stream stops with [`TooLarge`] once more than a
//! cap has come out: a compression bomb ends with an error, not a full disk.
//! The count and that flag live in a [`Meter`] the caller keeps while a tar
//! parser owns the reader, because a parser may wrap or replace the I/O error
//! on its way up.

use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `…tar`: the blob is the tar stream.
    None,
    /// `…tar+gzip` (and Docker's `diff.tar.gzip`); one or more gzip members.
    Gzip,
    /// `…tar+zstd`, including `zstd:chunked`, which is plain zstd with
    /// skippable frames for its table of contents.
    Zstd,
}

impl Compression {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The uncompressed stream grew past its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {cap} bytes once uncompressed; stopped there (a compression bomb?)")]
pub struct TooLarge {
    pub cap: u64,
}

/// How much of the uncompressed stream has been read, and whether it went
/// past the cap; shared with the reader it measures.
#[derive(Debug, Clone)]
pub struct Meter(Arc<MeterState>);

#[derive(Debug)]
struct MeterState {
    bytes: AtomicU64,
    cap: u64,
    over_cap: AtomicBool,
}

impl Meter {
    /// Uncompressed bytes handed out so far.
    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }

    /// The most uncompressed bytes the stream may have.
    pub fn cap(&self) -> u64 {
        self.0.cap
    }

    /// Whether the stream stopped because it went past [`Meter::cap`].
    pub fn over_cap(&self) -> bool {
        self.0.over_cap.load(Ordering::Relaxed)
    }
}

/// Size and SHA-256 of a whole uncompressed stream: for a layer, its `diff_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// Buffer in front of the blob: the tar parser reads in 512-byte blocks, and
/// the decoders read their input in whatever pieces they like.
const INPUT_BUFFER: usize = 128 << 10;

/// The uncompressed stream of one layer blob.
pub struct Uncompressed<'a> {
    inner: Box<dyn Read + Send + 'a>,
    sha: Sha256,
    meter: Meter,
}

impl<'a> Uncompressed<'a> {
    /// Reads `blob` as `compression` says, stopping with [`TooLarge`] past
    /// `cap` uncompressed bytes.
    pub fn new(
        blob: impl Read + Send + 'a,
        compression: Compression,
        cap: u64,
    ) -> io::Result<Uncompressed<'a>> {
        let buffered = BufReader::with_capacity(INPUT_BUFFER, blob);
        let inner: Box<dyn Read + Send + 'a> = match compression {
            Compression::None => Box::new(buffered),
            // MultiGzDecoder goes on after the first member, as `gzip -d` and
            // Go's reader do: a layer may be several members end to end.
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            // The zstd decoder goes on across frames and skips skippable ones
            // unless told to stop after one, so `zstd:chunked` reads to its end.
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        };
        Ok(Uncompressed {
            inner,
            sha: Sha256::new(),
            meter: Meter(Arc::new(MeterState {
                bytes: AtomicU64::new(0),
                cap,
                over_cap: AtomicBool::new(false),
            })),
        })
    }

    /// A handle on the count, to keep while a parser owns this reader.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// Reads what is left of the stream (still capped) and returns the size
    /// and SHA-256 of all of it.
    pub fn finish(mut self) -> io::Result<Summary> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Summary {
            bytes: self.meter.bytes(),
            sha256: self.sha.finalize().into(),
        })
    }
}

impl Read for Uncompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let state = &self.meter.0;
        if state.over_cap.load(Ordering::Relaxed) {
            return Err(io::Error::other(TooLarge { cap: state.cap }));
        }
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        let total = state.bytes.load(Ordering::Relaxed).saturating_add(n as u64);
        if total > state.cap {
            // Nothing past the cap reaches the caller, so nothing past it is
            // ever written anywhere.
            state.over_cap.store(true, Ordering::Relaxed);
            return Err(io::Error::other(TooLarge { cap: state.cap }));
        }
        state.bytes.store(total, Ordering::Relaxed);
        self.sha.update(got);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    fn read_all(blob: &[u8], compression: Compression, cap: u64) -> io::Result<(Vec<u8>, Summary)> {
        let mut stream = Uncompressed::new(blob, compression, cap)?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out)?;
        Ok((out, stream.finish()?))
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn an_uncompressed_blob_is_passed_through_counted_and_hashed() {
        let data = b"plain tar bytes".repeat(1000);
        let (out, summary) = read_all(&data, Compression::None, 1 << 20).unwrap();
        assert_eq!(out, data);
        assert_eq!(summary.bytes, data.len() as u64);
        assert_eq!(summary.sha256, sha256(&data));
    }

    #[test]
    fn every_member_of_a_multi_member_gzip_stream_is_read() {
        let mut blob = gzip(b"first member, ");
        blob.extend(gzip(b"second member, "));
        blob.extend(gzip(b"third member"));
        let (out, summary) = read_all(&blob, Compression::Gzip, 1 << 20).unwrap();
        assert_eq!(out, b"first member, second member, third member");
        assert_eq!(summary.sha256, sha256(&out));
    }

    #[test]
    fn every_zstd_frame_is_read_and_skippable_frames_are_passed_over() {
        let mut blob = zstd(b"frame one, ");
        // A skippable frame, as zstd:chunked writes for its table of contents:
        // magic 0x184D2A5?, little-endian length, then that many bytes.
        blob.extend([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, b't', b'o', b'c', b'!']);
        blob.extend(zstd(b"frame two"));
        let (out, summary) = read_all(&blob, Compression::Zstd, 1 << 20).unwrap();
        assert_eq!(out, b"frame one, frame two");
        assert_eq!(summary.bytes, out.len() as u64);
    }

    #[test]
    fn a_truncated_gzip_stream_is_an_error() {
        let blob = gzip(&b"some content that compresses ".repeat(100));
        let cut = blob.get(..blob.len() - 10).unwrap();
        assert!(read_all(cut, Compression::Gzip, 1 << 20).is_err());
    }

    #[test]
    fn a_truncated_zstd_stream_is_an_error() {
        let blob = zstd(&b"some content that compresses ".repeat(100));
        let cut = blob.get(..blob.len() - 5).unwrap();
        assert!(read_all(cut, Compression::Zstd, 1 << 20).is_err());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap_and_says_so() {
        // 64 MiB of zeros is about 64 KiB of gzip.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let blob = encoder.finish().unwrap();
        assert!(blob.len() < 1 << 20);

        let cap = 4 << 20;
        let mut stream = Uncompressed::new(&blob[..], Compression::Gzip, cap).unwrap();
        let meter = stream.meter();
        let err = io::copy(&mut stream, &mut io::sink()).unwrap_err();
        assert!(meter.over_cap());
        assert!(meter.bytes() <= cap);
        let too_large = err.get_ref().and_then(|e| e.downcast_ref::<TooLarge>());
        assert_eq!(too_large, Some(&TooLarge { cap }));
        assert!(err.to_string().contains("4194304 bytes"), "{err}");
        // And it stays stopped.
        assert!(stream.read(&mut [0u8; 16]).is_err());
    }

    #[test]
    fn a_stream_of_exactly_the_cap_is_accepted() {
        let data = vec![7u8; 4096];
        let (_, summary) = read_all(&zstd(&data), Compression::Zstd, 4096).unwrap();
        assert_eq!(summary.bytes, 4096);
        assert!(read_all(&zstd(&data), Compression::Zstd, 4095).is_err());
    }

    #[test]
    fn finish_hashes_what_the_caller_left_unread() {
        let data = b"header and trailing padding".repeat(50);
        let blob = gzip(&data);
        let mut stream = Uncompressed::new(&blob[..], Compression::Gzip, 1 << 20).unwrap();
        let mut first = [0u8; 10];
        stream.read_exact(&mut first).unwrap();
        let summary = stream.finish().unwrap();
        assert_eq!(summary.bytes, data.len() as u64);
        assert_eq!(summary.sha256, sha256(&data));
    }
}
