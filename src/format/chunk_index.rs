//! The chunk index (format version 1) of an image: parse and serialize, no I/O.
//!
//! An index lists an image cut by content-defined chunking into an ordered
//! list of (chunk SHA-256, length), headed by the image's size and digest. It
//! is not signed: it only tells a host which of its local bytes are probably
//! worth copying, and the signed manifest's size and digest decide whether the
//! assembled image is kept. A hostile index can therefore cost one attempt and
//! no more, provided that its size and the number of chunks are bounded by
//! the image size, which this parser enforces.
//!
//! The format, in the manifest's style (ASCII, LF line ends, lowercase hex,
//! decimal numbers without leading zeros):
//!
//! ```text
//! Tako Chunk Index 1
//!
//! <image size> <image sha256>
//!
//! <chunk sha256> <chunk length>
//! …
//! ```
//!
//! Every chunk is `MIN_CHUNK` to `MAX_CHUNK` bytes long except the last,
//! which may be shorter; the lengths add up to the image size. An empty image
//! has no chunk lines.

use thiserror::Error;

use crate::format::text::{header_prefix, untrusted_bytes};

/// The smallest chunk the chunker cuts, except at the end of an image.
pub const MIN_CHUNK: u32 = 4 << 10;
/// The average chunk size the chunker aims at.
pub const AVG_CHUNK: u32 = 16 << 10;
/// The largest chunk the chunker cuts.
pub const MAX_CHUNK: u32 = 64 << 10;

const HEADER: &str = "Tako Chunk Index 1";
const HEADER_FAMILY: &str = "Tako Chunk Index ";

/// The longest chunk line: 64 hex digits, a space, up to 5 digits, LF; one
/// more for good measure.
const MAX_CHUNK_LINE: u64 = 64 + 1 + 6 + 1;
/// Room for the header, the blank lines and the summary line (a size of up
/// to 20 digits and a digest).
const MAX_HEAD: u64 = 128;

/// The most chunks an index of an image of `size` bytes may list: every
/// chunk but the last is at least [`MIN_CHUNK`] long.
pub fn max_chunks(size: u64) -> u64 {
    size / u64::from(MIN_CHUNK) + 1
}

/// The largest index of an image of `size` bytes, in bytes: what a host
/// reads at most before it gives up on an index. About 1.8 % of the image
/// for a large one; real indexes are about a quarter of that.
pub fn max_index_size(size: u64) -> u64 {
    MAX_HEAD.saturating_add(max_chunks(size).saturating_mul(MAX_CHUNK_LINE))
}

/// One chunk of an image, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    pub digest: [u8; 32],
    pub length: u32,
}

/// The chunks of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub size: u64,
    pub digest: [u8; 32],
    pub chunks: Vec<Chunk>,
}

/// Why an index was refused. Line numbers are 1-based; text taken from the
/// index is escaped and cut, since it came from a server.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkIndexError {
    #[error("it is empty")]
    Empty,
    #[error("it is not ASCII text without carriage returns")]
    NotText,
    #[error("it is larger than an index of a {size}-byte image can be ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("unsupported chunk index version: header is '{0}', expected '{HEADER}'")]
    UnsupportedVersion(String),
    #[error("it does not start with the header '{HEADER}' (its first line is '{0}')")]
    MissingHeader(String),
    #[error("line {0}: expected a blank line")]
    MissingBlankLine(usize),
    #[error("it is truncated: the last line has no newline")]
    Truncated,
    #[error("line {line}: malformed line '{text}': {why}")]
    Malformed {
        line: usize,
        text: String,
        why: &'static str,
    },
    #[error("line {line}: chunk of {length} bytes, outside {MIN_CHUNK} to {MAX_CHUNK}")]
    ChunkLength { line: usize, length: u64 },
    #[error("its chunks add up to {total} bytes, not the image size {size}")]
    WrongTotal { total: u64, size: u64 },
}

impl ChunkIndex {
    /// Parses an index, refusing anything not exactly in the format.
    pub fn parse(bytes: &[u8]) -> Result<ChunkIndex, ChunkIndexError> {
        if bytes.is_empty() {
            return Err(ChunkIndexError::Empty);
        }
        if !bytes.is_ascii() || bytes.contains(&b'\r') {
            return Err(ChunkIndexError::NotText);
        }
        if bytes.last() != Some(&b'\n') {
            return Err(ChunkIndexError::Truncated);
        }
        // Every line ends with LF, so splitting leaves one empty piece after
        // the last one.
        let mut lines = bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate();
        let mut next = |expect_blank: bool| -> Result<(usize, &[u8]), ChunkIndexError> {
            match lines.next() {
                Some((i, line)) if expect_blank && !line.is_empty() => {
                    Err(ChunkIndexError::MissingBlankLine(i + 1))
                }
                Some((i, line)) => Ok((i + 1, line)),
                None => Err(ChunkIndexError::Truncated),
            }
        };

        let (_, header) = next(false)?;
        if header != HEADER.as_bytes() {
            let shown = header_prefix(header);
            return Err(if header.starts_with(HEADER_FAMILY.as_bytes()) {
                ChunkIndexError::UnsupportedVersion(shown)
            } else {
                ChunkIndexError::MissingHeader(shown)
            });
        }
        next(true)?;
        let (line, summary) = next(false)?;
        let (size, digest) = parse_pair(line, summary)?;
        let max = max_index_size(size);
        if bytes.len() as u64 > max {
            return Err(ChunkIndexError::TooLarge { size, max });
        }
        next(true)?;

        // With every chunk but the last at least MIN_CHUNK long and the total
        // at most `size`, the count cannot pass `max_chunks(size)`.
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut total: u64 = 0;
        for (i, text) in lines {
            let line = i + 1;
            let (length, digest) = parse_pair(line, text)?;
            let length_u32 = u32::try_from(length)
                .ok()
                .filter(|l| (1..=MAX_CHUNK).contains(l))
                .ok_or(ChunkIndexError::ChunkLength { line, length })?;
            // Only the last chunk may be short; the one before this one is
            // now known not to be the last.
            if let Some(previous) = chunks.last()
                && previous.length < MIN_CHUNK
            {
                return Err(ChunkIndexError::ChunkLength {
                    line: line - 1,
                    length: u64::from(previous.length),
                });
            }
            total = total.saturating_add(length);
            if total > size {
                return Err(ChunkIndexError::WrongTotal { total, size });
            }
            chunks.push(Chunk {
                digest,
                length: length_u32,
            });
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
        let mut out =
            String::with_capacity(usize::try_from(MAX_HEAD).unwrap_or(0) + self.chunks.len() * 72);
        out.push_str(HEADER);
        out.push_str("\n\n");
        out.push_str(&format!("{} {}\n\n", self.size, hex::encode(self.digest)));
        for chunk in &self.chunks {
            out.push_str(&hex::encode(chunk.digest));
            out.push(' ');
            out.push_str(&chunk.length.to_string());
            out.push('\n');
        }
        out.into_bytes()
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

/// Parses `<decimal> <hex digest>` (the summary line) or `<hex digest>
/// <decimal>` (a chunk line), returning (number, digest) either way.
fn parse_pair(line: usize, text: &[u8]) -> Result<(u64, [u8; 32]), ChunkIndexError> {
    let malformed = |why| ChunkIndexError::Malformed {
        line,
        text: untrusted_bytes(text),
        why,
    };
    let mut fields = text.split(|&b| b == b' ');
    let (Some(first), Some(second), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed("expected two fields separated by one space"));
    };
    // A digest is always 64 characters and a number at most 20, so the
    // field lengths tell which line kind this is.
    let (number, digest) = if first.len() == 64 {
        (second, first)
    } else {
        (first, second)
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
            digest: [byte; 32],
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

    fn text(index: &str) -> Result<ChunkIndex, ChunkIndexError> {
        ChunkIndex::parse(index.as_bytes())
    }

    #[test]
    fn round_trips_in_the_documented_form() {
        let index = sample();
        let bytes = index.to_bytes();
        let expected = format!(
            "Tako Chunk Index 1\n\n{} {}\n\n{} 4096\n{} 65536\n{} 5\n",
            index.size,
            "ab".repeat(32),
            "01".repeat(32),
            "02".repeat(32),
            "03".repeat(32)
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(ChunkIndex::parse(&bytes).unwrap(), index);
        let offsets: Vec<u64> = index.offsets().map(|(o, _)| o).collect();
        assert_eq!(offsets, [0, 4096, 4096 + 65536]);
    }

    #[test]
    fn an_empty_image_has_no_chunk_lines() {
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
    fn refuses_what_is_off_format() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        let d = "cd".repeat(32);
        type Check = fn(&ChunkIndexError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (String::new(), |e| matches!(e, ChunkIndexError::Empty)),
            (good.replace('\n', "\r\n"), |e| {
                matches!(e, ChunkIndexError::NotText)
            }),
            (good.replacen("Tako", "Täko", 1), |e| {
                matches!(e, ChunkIndexError::NotText)
            }),
            (good.trim_end().to_string(), |e| {
                matches!(e, ChunkIndexError::Truncated)
            }),
            (good.replace("Index 1", "Index 2"), |e| {
                matches!(e, ChunkIndexError::UnsupportedVersion(_))
            }),
            (good.replace("Tako Chunk Index 1", "Tako Manifest 1"), |e| {
                matches!(e, ChunkIndexError::MissingHeader(_))
            }),
            (good.replacen("\n\n", "\nx\n", 1), |e| {
                matches!(e, ChunkIndexError::MissingBlankLine(2))
            }),
            (format!("Tako Chunk Index 1\n\n5 {d}\n"), |e| {
                matches!(e, ChunkIndexError::Truncated)
            }),
            (format!("Tako Chunk Index 1\n\n05 {d}\n\n{d} 5\n"), |e| {
                matches!(e, ChunkIndexError::Malformed { line: 3, .. })
            }),
            (
                format!("Tako Chunk Index 1\n\n5 {}\n\n{d} 5\n", d.to_uppercase()),
                |e| matches!(e, ChunkIndexError::Malformed { line: 3, .. }),
            ),
            (format!("Tako Chunk Index 1\n\n5  {d}\n\n{d} 5\n"), |e| {
                matches!(e, ChunkIndexError::Malformed { line: 3, .. })
            }),
            (format!("Tako Chunk Index 1\n\n5 {d}\n\n{d} 5 x\n"), |e| {
                matches!(e, ChunkIndexError::Malformed { line: 5, .. })
            }),
            (format!("Tako Chunk Index 1\n\n5 {d}\n\n{d} +5\n"), |e| {
                matches!(e, ChunkIndexError::Malformed { line: 5, .. })
            }),
            (format!("Tako Chunk Index 1\n\n5 {d}\n\n{d} 5\n\n"), |e| {
                matches!(e, ChunkIndexError::Malformed { line: 6, .. })
            }),
            (format!("Tako Chunk Index 1\n\n0 {d}\n\n{d} 0\n"), |e| {
                matches!(e, ChunkIndexError::ChunkLength { line: 5, length: 0 })
            }),
            (
                format!("Tako Chunk Index 1\n\n300000 {d}\n\n{d} 300000\n"),
                |e| matches!(e, ChunkIndexError::ChunkLength { line: 5, .. }),
            ),
            // A short chunk that is not the last.
            (
                format!("Tako Chunk Index 1\n\n4101 {d}\n\n{d} 5\n{d} 4096\n"),
                |e| matches!(e, ChunkIndexError::ChunkLength { line: 5, length: 5 }),
            ),
            (format!("Tako Chunk Index 1\n\n6 {d}\n\n{d} 5\n"), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 5, size: 6 })
            }),
            (format!("Tako Chunk Index 1\n\n4 {d}\n\n{d} 5\n"), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 5, size: 4 })
            }),
            (format!("Tako Chunk Index 1\n\n5 {d}\n\n"), |e| {
                matches!(e, ChunkIndexError::WrongTotal { total: 0, size: 5 })
            }),
        ];
        for (input, expected) in cases {
            let err = text(&input).expect_err(&input);
            assert!(expected(&err), "{input:?}: {err:?}");
        }
    }

    #[test]
    fn the_size_of_an_index_is_bounded_by_the_image_size() {
        // A claimed 1-byte image with room for only one chunk line.
        let d = "cd".repeat(32);
        let padded = format!("Tako Chunk Index 1\n\n1 {d}\n\n{d} 1\n{}", "\n".repeat(200));
        assert!(matches!(
            text(&padded),
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

    #[test]
    fn never_panics_on_huge_numbers() {
        let d = "cd".repeat(32);
        for size in [
            "18446744073709551615",
            "99999999999999999999",
            "184467440737095516150",
        ] {
            let _ = text(&format!("Tako Chunk Index 1\n\n{size} {d}\n\n{d} 65536\n"));
        }
        assert!(max_index_size(u64::MAX) >= max_chunks(u64::MAX));
    }
}
