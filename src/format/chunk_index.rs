//! The chunk index (format version 2) of an image: parse and serialize, no I/O.
//!
//! An index lists an image cut by content-defined chunking into an ordered
//! list of (chunk digest, length), headed by the image's size and SHA-256. It
//! is not signed: it only tells a host which of its local bytes are probably
//! worth copying, and the signed manifest's size and digest decide whether the
//! assembled image is kept. A hostile index can therefore cost one attempt and
//! no more, provided that its size and the number of chunks are bounded by
//! the image size, which this parser enforces.
//!
//! The format (docs/index.md): a text head in the manifest's style, then one
//! fixed-size binary record per chunk, because a delta downloads the whole
//! index and every byte of it counts against the changed bytes:
//!
//! ```text
//! Tako Chunk Index 2\n
//! \n
//! <image size> <image sha256>\n
//! \n
//! <16-byte BLAKE3 digest of the chunk><chunk length - 1, 2 bytes big-endian>
//! …
//! ```
//!
//! Every chunk is `MIN_CHUNK` to `MAX_CHUNK` bytes long except the last,
//! which may be shorter; the lengths add up to the image size. An empty image
//! has no records.
//!
//! Version 1 (text lines of a SHA-256 and a length, chunks of 4/16/64 KiB)
//! is refused with a hint: its chunks can match nothing a version-2 host
//! cuts, and `tako index` replaces it.

use thiserror::Error;

use crate::format::text::{header_prefix, untrusted_bytes};

/// The smallest chunk the chunker cuts, except at the end of an image.
pub const MIN_CHUNK: u32 = 2 << 10;
/// The average chunk size the chunker aims at.
pub const AVG_CHUNK: u32 = 8 << 10;
/// The largest chunk the chunker cuts.
pub const MAX_CHUNK: u32 = 32 << 10;

/// Bytes of a chunk's digest: the first 16 bytes of its BLAKE3 hash. 128 bits
/// make an accidental match between two different chunks of a host's images
/// impossible in practice and a crafted one far too costly, and even one
/// would only cost the delta: the assembled image is checked against its
/// signed SHA-256.
pub const DIGEST_LEN: usize = 16;

/// The digest of a chunk as an index lists it.
pub type ChunkDigest = [u8; DIGEST_LEN];

/// The digest of one chunk's bytes.
pub fn chunk_digest(bytes: &[u8]) -> ChunkDigest {
    let mut hasher = ChunkHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// A chunk's digest over bytes that arrive in pieces.
#[derive(Clone, Default)]
pub struct ChunkHasher(blake3::Hasher);

impl ChunkHasher {
    pub fn new() -> ChunkHasher {
        ChunkHasher(blake3::Hasher::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> ChunkDigest {
        let mut digest = [0u8; DIGEST_LEN];
        self.0.finalize_xof().fill(&mut digest);
        digest
    }
}

const HEADER: &str = "Tako Chunk Index 2";
const HEADER_V1: &str = "Tako Chunk Index 1";
const HEADER_FAMILY: &str = "Tako Chunk Index ";

/// One chunk's record: its digest and its length less one, big-endian.
const RECORD: usize = DIGEST_LEN + 2;
/// Room for the header, the blank lines and the summary line (a size of up
/// to 20 digits and a digest).
const MAX_HEAD: u64 = 128;

/// The most chunks an index of an image of `size` bytes may list: every
/// chunk but the last is at least [`MIN_CHUNK`] long.
pub fn max_chunks(size: u64) -> u64 {
    size / u64::from(MIN_CHUNK) + 1
}

/// The largest index of an image of `size` bytes, in bytes: what a host
/// reads at most before it gives up on an index. About 0.9 % of the image
/// for a large one; real indexes are about a fifth of that.
pub fn max_index_size(size: u64) -> u64 {
    MAX_HEAD.saturating_add(max_chunks(size).saturating_mul(RECORD as u64))
}

/// One chunk of an image, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    pub digest: ChunkDigest,
    pub length: u32,
}

/// The chunks of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub size: u64,
    /// The image's SHA-256.
    pub digest: [u8; 32],
    pub chunks: Vec<Chunk>,
}

/// Why an index was refused. Text taken from the index is escaped and cut,
/// since it came from a server.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkIndexError {
    #[error("it is empty")]
    Empty,
    #[error("it is larger than an index of a {size}-byte image can be ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "it is a version-1 index (written by a tako before chunk index version 2); run 'tako index' on the server directory to replace it"
    )]
    Version1,
    #[error("unsupported chunk index version: header is '{0}', expected '{HEADER}'")]
    UnsupportedVersion(String),
    #[error("it does not start with the header '{HEADER}' (its first line is '{0}')")]
    MissingHeader(String),
    #[error("line {0}: expected a blank line")]
    MissingBlankLine(usize),
    #[error("it is truncated: it ends inside its head")]
    Truncated,
    #[error("line 3: malformed line '{text}': {why}")]
    Malformed { text: String, why: &'static str },
    #[error("its chunk records take {0} bytes, not a multiple of {RECORD}")]
    PartialRecord(usize),
    #[error("chunk {number}: {length} bytes, outside {MIN_CHUNK} to {MAX_CHUNK}")]
    ChunkLength { number: usize, length: u64 },
    #[error("its chunks add up to {total} bytes, not the image size {size}")]
    WrongTotal { total: u64, size: u64 },
}

impl ChunkIndex {
    /// Parses an index, refusing anything not exactly in the format.
    pub fn parse(bytes: &[u8]) -> Result<ChunkIndex, ChunkIndexError> {
        if bytes.is_empty() {
            return Err(ChunkIndexError::Empty);
        }
        // The head: four lines, the first and third of text, the others blank.
        let mut rest = bytes;
        let header = match line(&mut rest) {
            Ok(header) => header,
            // No line end at all: whatever it is, it is no index.
            Err(_) => bytes,
        };
        if header != HEADER.as_bytes() {
            return Err(if header == HEADER_V1.as_bytes() {
                ChunkIndexError::Version1
            } else if header.starts_with(HEADER_FAMILY.as_bytes()) {
                ChunkIndexError::UnsupportedVersion(header_prefix(header))
            } else {
                ChunkIndexError::MissingHeader(header_prefix(header))
            });
        }
        if !line(&mut rest)?.is_empty() {
            return Err(ChunkIndexError::MissingBlankLine(2));
        }
        let (size, digest) = parse_summary(line(&mut rest)?)?;
        let max = max_index_size(size);
        if bytes.len() as u64 > max {
            return Err(ChunkIndexError::TooLarge { size, max });
        }
        if !line(&mut rest)?.is_empty() {
            return Err(ChunkIndexError::MissingBlankLine(4));
        }
        if !rest.len().is_multiple_of(RECORD) {
            return Err(ChunkIndexError::PartialRecord(rest.len()));
        }

        // The size bound above keeps the count within `max_chunks(size)`.
        let mut chunks: Vec<Chunk> = Vec::with_capacity(rest.len() / RECORD);
        let mut total: u64 = 0;
        for (i, record) in rest.chunks_exact(RECORD).enumerate() {
            let (digest_bytes, length_bytes) = record.split_at(DIGEST_LEN);
            let mut digest = [0u8; DIGEST_LEN];
            digest.copy_from_slice(digest_bytes);
            let length = u32::from(u16::from_be_bytes([length_bytes[0], length_bytes[1]])) + 1;
            if length > MAX_CHUNK {
                return Err(ChunkIndexError::ChunkLength {
                    number: i + 1,
                    length: u64::from(length),
                });
            }
            // Only the last chunk may be short; the one before this one is
            // now known not to be the last.
            if let Some(previous) = chunks.last()
                && previous.length < MIN_CHUNK
            {
                return Err(ChunkIndexError::ChunkLength {
                    number: i,
                    length: u64::from(previous.length),
                });
            }
            total = total.saturating_add(u64::from(length));
            if total > size {
                return Err(ChunkIndexError::WrongTotal { total, size });
            }
            chunks.push(Chunk { digest, length });
        }
        if total != size {
            return Err(ChunkIndexError::WrongTotal { total, size });
        }
        Ok(ChunkIndex {
            size,
            digest,
            chunks,
        })
    }

    /// The index in its canonical form: what [`ChunkIndex::parse`] reads back.
    pub fn to_bytes(&self) -> Vec<u8> {
        let head = format!("{HEADER}\n\n{} {}\n\n", self.size, hex::encode(self.digest));
        let mut out = Vec::with_capacity(head.len() + self.chunks.len() * RECORD);
        out.extend_from_slice(head.as_bytes());
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.digest);
            // Lengths are 1 to MAX_CHUNK (at most 65536) in every index the
            // chunker or the parser makes.
            debug_assert!((1..=MAX_CHUNK).contains(&chunk.length));
            let stored = u16::try_from(chunk.length.saturating_sub(1)).unwrap_or(u16::MAX);
            out.extend_from_slice(&stored.to_be_bytes());
        }
        out
    }

    /// Where each chunk starts in the image, in order.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, &Chunk)> {
        self.chunks.iter().scan(0u64, |offset, chunk| {
            let start = *offset;
            *offset += u64::from(chunk.length);
            Some((start, chunk))
        })
    }
}

/// The next line of `rest` without its LF, and `rest` moved past it.
fn line<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], ChunkIndexError> {
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(ChunkIndexError::Truncated)?;
    let (text, after) = rest.split_at(end);
    *rest = &after[1..];
    Ok(text)
}

/// Parses the summary line `<decimal size> <hex SHA-256>`.
fn parse_summary(text: &[u8]) -> Result<(u64, [u8; 32]), ChunkIndexError> {
    let malformed = |why| ChunkIndexError::Malformed {
        text: untrusted_bytes(text),
        why,
    };
    let mut fields = text.split(|&b| b == b' ');
    let (Some(number), Some(digest), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(
            "expected a size and a SHA-256 separated by one space",
        ));
    };
    let number = parse_decimal(number).ok_or_else(|| malformed("invalid number"))?;
    let digest = parse_digest(digest).ok_or_else(|| malformed("invalid SHA-256 digest"))?;
    Ok((number, digest))
}

fn parse_decimal(text: &[u8]) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.iter().all(u8::is_ascii_digit)
        && (text == b"0" || text[0] != b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_digest(text: &[u8]) -> Option<[u8; 32]> {
    let lowercase_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if text.len() != 64 || !text.iter().all(lowercase_hex) {
        return None;
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(byte: u8, length: u32) -> Chunk {
        Chunk {
            digest: [byte; DIGEST_LEN],
            length,
        }
    }

    fn sample() -> ChunkIndex {
        ChunkIndex {
            size: u64::from(MIN_CHUNK) + u64::from(MAX_CHUNK) + 5,
            digest: [0xab; 32],
            chunks: vec![chunk(1, MIN_CHUNK), chunk(2, MAX_CHUNK), chunk(3, 5)],
        }
    }

    fn head(size: u64) -> Vec<u8> {
        format!("Tako Chunk Index 2\n\n{size} {}\n\n", "cd".repeat(32)).into_bytes()
    }

    fn record(byte: u8, length: u32) -> Vec<u8> {
        let mut out = vec![byte; DIGEST_LEN];
        out.extend_from_slice(&((length - 1) as u16).to_be_bytes());
        out
    }

    #[test]
    fn round_trips_in_the_documented_form() {
        let index = sample();
        let bytes = index.to_bytes();
        let mut expected = format!(
            "Tako Chunk Index 2\n\n{} {}\n\n",
            index.size,
            "ab".repeat(32)
        )
        .into_bytes();
        expected.extend([[1u8; 16].as_slice(), &[0x07, 0xff]].concat());
        expected.extend([[2u8; 16].as_slice(), &[0x7f, 0xff]].concat());
        expected.extend([[3u8; 16].as_slice(), &[0x00, 0x04]].concat());
        assert_eq!(bytes, expected);
        assert_eq!(ChunkIndex::parse(&bytes).unwrap(), index);
        let offsets: Vec<u64> = index.offsets().map(|(o, _)| o).collect();
        assert_eq!(offsets, [0, 2048, 2048 + 32768]);
    }

    #[test]
    fn a_chunk_digest_is_the_start_of_its_blake3_hash() {
        // BLAKE3 of the empty input, from the BLAKE3 test vectors.
        assert_eq!(
            hex::encode(chunk_digest(b"")),
            "af1349b9f5f9a1a6a0404dea36dcc949"
        );
        let mut hasher = ChunkHasher::new();
        hasher.update(b"abc");
        hasher.update(b"def");
        assert_eq!(hasher.finish(), chunk_digest(b"abcdef"));
    }

    #[test]
    fn an_empty_image_has_no_records() {
        let index = ChunkIndex {
            size: 0,
            digest: [7; 32],
            chunks: vec![],
        };
        let bytes = index.to_bytes();
        assert!(bytes.ends_with(b"\n\n"));
        assert_eq!(ChunkIndex::parse(&bytes).unwrap(), index);
    }

    #[test]
    fn a_single_short_chunk_is_fine() {
        let index = ChunkIndex {
            size: 1,
            digest: [7; 32],
            chunks: vec![chunk(9, 1)],
        };
        assert_eq!(ChunkIndex::parse(&index.to_bytes()).unwrap(), index);
    }

    #[test]
    fn a_version_1_index_is_refused_with_what_to_do() {
        let v1 = format!(
            "Tako Chunk Index 1\n\n5 {}\n\n{} 5\n",
            "cd".repeat(32),
            "ab".repeat(32)
        );
        let err = ChunkIndex::parse(v1.as_bytes()).unwrap_err();
        assert_eq!(err, ChunkIndexError::Version1);
        assert!(err.to_string().contains("run 'tako index'"), "{err}");
    }

    #[test]
    fn refuses_what_is_off_format() {
        let good = sample().to_bytes();
        let d = "cd".repeat(32);
        let with = |size: u64, records: &[Vec<u8>]| [head(size), records.concat()].concat();
        type Check = fn(&ChunkIndexError) -> bool;
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (vec![], |e| matches!(e, ChunkIndexError::Empty)),
            (b"Tako Chunk Index 2".to_vec(), |e| {
                matches!(e, ChunkIndexError::Truncated)
            }),
            (b"Tako Chunk Index 2\n\n5 ".to_vec(), |e| {
                matches!(e, ChunkIndexError::Truncated)
            }),
            (b"Tako Chunk Index 3\n\n".to_vec(), |e| {
                matches!(e, ChunkIndexError::UnsupportedVersion(_))
            }),
            (
                b"<!DOCTYPE html>\n<html>".to_vec(),
                |e| matches!(e, ChunkIndexError::MissingHeader(s) if s == "<!DOCTYPE html>"),
            ),
            (b"Tako Chunk Index 2\r\n\r\n".to_vec(), |e| {
                matches!(e, ChunkIndexError::UnsupportedVersion(_))
            }),
            (
                format!("Tako Chunk Index 2\nx\n5 {d}\n\n").into_bytes(),
                |e| matches!(e, ChunkIndexError::MissingBlankLine(2)),
            ),
            (
                format!("Tako Chunk Index 2\n\n5 {d}\nx\n").into_bytes(),
                |e| matches!(e, ChunkIndexError::MissingBlankLine(4)),
            ),
            (
                format!("Tako Chunk Index 2\n\n05 {d}\n\n").into_bytes(),
                |e| matches!(e, ChunkIndexError::Malformed { .. }),
            ),
            (
                format!("Tako Chunk Index 2\n\n5 {}\n\n", d.to_uppercase()).into_bytes(),
                |e| matches!(e, ChunkIndexError::Malformed { .. }),
            ),
            (
                format!("Tako Chunk Index 2\n\n5  {d}\n\n").into_bytes(),
                |e| matches!(e, ChunkIndexError::Malformed { .. }),
            ),
            (
                format!("Tako Chunk Index 2\n\n+5 {d}\n\n").into_bytes(),
                |e| matches!(e, ChunkIndexError::Malformed { .. }),
            ),
            ([head(5), record(1, 5), vec![0]].concat(), |e| {
                matches!(e, ChunkIndexError::PartialRecord(19))
            }),
            (with(40_000, &[record(1, 40_000)]), |e| {
                matches!(
                    e,
                    ChunkIndexError::ChunkLength {
                        number: 1,
                        length: 40_000
                    }
                )
            }),
            // A short chunk that is not the last.
            (with(2053, &[record(1, 5), record(2, 2048)]), |e| {
                matches!(
                    e,
                    ChunkIndexError::ChunkLength {
                        number: 1,
                        length: 5
                    }
                )
            }),
            (with(6, &[record(1, 5)]), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 5, size: 6 })
            }),
            (with(4, &[record(1, 5)]), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 5, size: 4 })
            }),
            (with(5, &[]), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 0, size: 5 })
            }),
        ];
        for (input, expected) in cases {
            let err = ChunkIndex::parse(&input).expect_err(&String::from_utf8_lossy(&input));
            assert!(
                expected(&err),
                "{:?}: {err:?}",
                String::from_utf8_lossy(&input)
            );
        }
        assert!(ChunkIndex::parse(&good).is_ok());
    }

    #[test]
    fn the_size_of_an_index_is_bounded_by_the_image_size() {
        // A claimed 1-byte image with room for only one record.
        let padded = [head(1), record(1, 1), vec![0; 18 * 8]].concat();
        assert!(matches!(
            ChunkIndex::parse(&padded),
            Err(ChunkIndexError::TooLarge { size: 1, .. })
        ));
        // The largest real index stays within the bound.
        let size = 40 * u64::from(MIN_CHUNK) + 7;
        let mut chunks = vec![chunk(1, MIN_CHUNK); 40];
        chunks.push(chunk(2, 7));
        let index = ChunkIndex {
            size,
            digest: [0; 32],
            chunks,
        };
        let bytes = index.to_bytes();
        assert!(bytes.len() as u64 <= max_index_size(size));
        assert_eq!(ChunkIndex::parse(&bytes).unwrap(), index);
        assert_eq!(max_chunks(size), 41);
    }

    proptest::proptest! {
        /// A valid index with one byte changed, or cut short, or with bytes added: the
        /// parser never panics, and whatever it accepts is canonical and within bounds.
        #[test]
        fn a_damaged_index_is_refused_or_read_canonically(
            lengths in proptest::collection::vec(1u32..=MAX_CHUNK, 0..12),
            at in proptest::num::usize::ANY,
            value in proptest::num::u8::ANY,
            how in 0u8..3,
        ) {
            // Every length but the last at least MIN_CHUNK, as the format wants.
            let last = lengths.len().saturating_sub(1);
            let chunks: Vec<Chunk> = lengths
                .iter()
                .enumerate()
                .map(|(i, &l)| chunk(i as u8, if i == last { l } else { l.max(MIN_CHUNK) }))
                .collect();
            let size = chunks.iter().map(|c| u64::from(c.length)).sum();
            let mut bytes = ChunkIndex { size, digest: [9; 32], chunks }.to_bytes();
            let at = at % (bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, value),
            }
            if let Ok(index) = ChunkIndex::parse(&bytes) {
                proptest::prop_assert_eq!(index.to_bytes(), bytes.clone());
                proptest::prop_assert!(bytes.len() as u64 <= max_index_size(index.size));
                let total: u64 = index.chunks.iter().map(|c| u64::from(c.length)).sum();
                proptest::prop_assert_eq!(total, index.size);
            }
        }
    }

    #[test]
    fn never_panics_on_huge_numbers() {
        let d = "cd".repeat(32);
        for size in [
            "18446744073709551615",
            "99999999999999999999",
            "184467440737095516150",
        ] {
            let mut bytes = format!("Tako Chunk Index 2\n\n{size} {d}\n\n").into_bytes();
            bytes.extend(record(1, MAX_CHUNK));
            let _ = ChunkIndex::parse(&bytes);
        }
        assert!(max_index_size(u64::MAX) >= max_chunks(u64::MAX));
    }
}
