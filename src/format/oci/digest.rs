//! Content digests (`sha256:<64 lowercase hex>`) and a pure verifier for streamed blobs.
//!
//! A digest names a blob in a URL (`/v2/<repo>/blobs/<digest>`) and on disk
//! (`blobs/sha256/<hex>`), so only one spelling is accepted: the algorithm `sha256` and
//! exactly 64 lowercase hex digits. Other algorithms the OCI spec allows (`sha512`) are
//! refused by name rather than mistaken for malformed input: every registry tako has met
//! writes sha256, and a second algorithm would double every path and check for no user.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::format::text::untrusted;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "sha256";

/// Why a digest string was refused. Each message shows the (escaped) text it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("'{0}' is not a digest: use sha256:<64 lowercase hex digits>")]
    NotADigest(String),
    #[error("digest '{text}' uses the algorithm '{algorithm}': tako checks sha256 digests only")]
    Algorithm { text: String, algorithm: String },
    #[error("digest '{0}' has uppercase hex digits: digests are written in lowercase")]
    Uppercase(String),
    #[error("digest '{text}' has {count} hex digits, not 64")]
    Length { text: String, count: usize },
    #[error("digest '{0}' has characters that are not hex digits")]
    NotHex(String),
}

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(DigestError::NotADigest(untrusted(text)));
        };
        if algorithm != ALGORITHM {
            // An algorithm name per the OCI grammar (`[a-z0-9]+([+._-][a-z0-9]+)*`) is named
            // as such; anything else is simply not a digest.
            let looks_like_algorithm = !algorithm.is_empty()
                && algorithm.len() <= 32
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            return Err(if looks_like_algorithm {
                DigestError::Algorithm {
                    text: untrusted(text),
                    algorithm: algorithm.to_string(),
                }
            } else {
                DigestError::NotADigest(untrusted(text))
            });
        }
        Digest::from_hex(hex).map_err(|e| match e {
            // The message names the whole digest, not only its hex part.
            DigestError::Uppercase(_) => DigestError::Uppercase(untrusted(text)),
            DigestError::Length { count, .. } => DigestError::Length {
                text: untrusted(text),
                count,
            },
            _ => DigestError::NotHex(untrusted(text)),
        })
    }

    /// Parses the 64 lowercase hex digits alone, as in a `blobs/sha256/<hex>` file name.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::NotHex(untrusted(hex)));
        }
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestError::Uppercase(untrusted(hex)));
        }
        if hex.len() != 64 {
            return Err(DigestError::Length {
                text: untrusted(hex),
                count: hex.len(),
            });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| DigestError::NotHex(untrusted(hex)))?;
        Ok(Digest(bytes))
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Digest {
    fn from(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Digest, DigestError> {
        Digest::parse(text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest sha256:<64 lowercase hex digits>")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                Digest::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A blob whose bytes are not the ones its descriptor names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the content does not match: expected {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes)"
)]
pub struct VerifyError {
    pub expected: Digest,
    pub expected_size: u64,
    pub actual: Digest,
    pub actual_size: u64,
}

/// Hashes a blob as it streams past and checks it against its descriptor at the end.
///
/// Pure: the caller reads and feeds the bytes. [`Verifier::exceeds`] lets a download stop
/// as soon as more bytes arrived than the descriptor allows, rather than at the end.
#[derive(Clone)]
pub struct Verifier {
    expected: Digest,
    sha: Sha256,
    count: u64,
}

impl Verifier {
    pub fn new(expected: Digest) -> Verifier {
        Verifier {
            expected,
            sha: Sha256::new(),
            count: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        // A u64 of bytes cannot be reached by any stream; saturating keeps the count honest.
        self.count = self.count.saturating_add(bytes.len() as u64);
    }

    /// Bytes seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether more than `expected_size` bytes have been seen already.
    pub fn exceeds(&self, expected_size: u64) -> bool {
        self.count > expected_size
    }

    /// The digest and size of what was fed.
    pub fn digest(self) -> (Digest, u64) {
        (Digest(self.sha.finalize().into()), self.count)
    }

    /// Checks that exactly `expected_size` bytes with the expected digest were fed.
    pub fn finish(self, expected_size: u64) -> Result<(), VerifyError> {
        let expected = self.expected;
        let (actual, actual_size) = self.digest();
        if actual == expected && actual_size == expected_size {
            Ok(())
        } else {
            Err(VerifyError {
                expected,
                expected_size,
                actual,
                actual_size,
            })
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected", &self.expected)
            .field("count", &self.count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of the empty string, from FIPS 180-4's test vectors.
    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_digest_is_sha256_with_64_lowercase_hex_digits_and_prints_as_it_was_written() {
        let digest = Digest::parse(EMPTY).unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(format!("{digest:?}"), EMPTY);
        assert_eq!(format!("sha256:{}", digest.hex()), EMPTY);
        assert_eq!(Digest::of(b""), digest);
        assert_eq!(Digest::from_hex(&digest.hex()).unwrap(), digest);
        assert_eq!(EMPTY.parse::<Digest>().unwrap(), digest);
    }

    #[test]
    fn another_algorithm_is_refused_by_name() {
        let text = format!("sha512:{}", "ab".repeat(64));
        let e = Digest::parse(&text).unwrap_err();
        assert!(matches!(&e, DigestError::Algorithm { algorithm, .. } if algorithm == "sha512"));
        assert!(e.to_string().contains("sha256 digests only"), "{e}");
        let e = Digest::parse("SHA256:abc").unwrap_err();
        assert!(matches!(e, DigestError::NotADigest(_)), "{e}");
    }

    #[test]
    fn uppercase_hex_is_refused_with_the_reason() {
        let e = Digest::parse(&EMPTY.to_uppercase().replace("SHA256", "sha256")).unwrap_err();
        assert!(matches!(e, DigestError::Uppercase(_)));
        assert!(e.to_string().contains("lowercase"), "{e}");
    }

    #[test]
    fn a_digest_of_the_wrong_length_says_how_many_digits_it_has() {
        let e = Digest::parse(&EMPTY[..EMPTY.len() - 1]).unwrap_err();
        assert_eq!(
            e,
            DigestError::Length {
                text: EMPTY[..EMPTY.len() - 1].to_string(),
                count: 63
            }
        );
        assert!(e.to_string().contains("63 hex digits"), "{e}");
        assert!(matches!(
            Digest::parse(&format!("{EMPTY}0")),
            Err(DigestError::Length { count: 65, .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:"),
            Err(DigestError::Length { count: 0, .. })
        ));
    }

    #[test]
    fn text_that_is_not_a_digest_is_refused_and_shown_escaped() {
        for bad in ["", "abc", ":", "sha256", "../../etc/passwd"] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        let e = Digest::parse(&format!("sha256:{}\n", &EMPTY[7..70])).unwrap_err();
        assert!(matches!(e, DigestError::NotHex(_)));
        assert!(e.to_string().contains("\\n"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let e = Digest::parse(&format!("sha256:{}", "g".repeat(64))).unwrap_err();
        assert!(matches!(e, DigestError::NotHex(_)));
        // A multi-byte character that makes 64 bytes is not 64 hex digits.
        assert!(Digest::parse(&format!("sha256:{}é", "a".repeat(62))).is_err());
    }

    #[test]
    fn digests_read_and_write_as_json_strings() {
        let digest: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"{EMPTY}\"")
        );
        let e = serde_json::from_str::<Digest>("\"md5:abc\"").unwrap_err();
        assert!(e.to_string().contains("sha256 digests only"), "{e}");
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn the_verifier_accepts_the_blob_its_descriptor_names_fed_in_pieces() {
        let blob = b"a layer, read in pieces";
        let mut verifier = Verifier::new(Digest::of(blob));
        for piece in blob.chunks(5) {
            verifier.update(piece);
        }
        assert_eq!(verifier.count(), blob.len() as u64);
        assert!(!verifier.exceeds(blob.len() as u64));
        verifier.finish(blob.len() as u64).unwrap();
    }

    #[test]
    fn the_verifier_names_expected_and_actual_digest_and_size_on_a_mismatch() {
        let mut verifier = Verifier::new(Digest::of(b"expected"));
        verifier.update(b"something else");
        let e = verifier.finish(8).unwrap_err();
        assert_eq!(e.expected, Digest::of(b"expected"));
        assert_eq!(e.actual, Digest::of(b"something else"));
        assert_eq!((e.expected_size, e.actual_size), (8, 14));
        let message = e.to_string();
        assert!(
            message.contains(&Digest::of(b"expected").to_string()),
            "{message}"
        );
        assert!(
            message.contains(&Digest::of(b"something else").to_string()),
            "{message}"
        );
        assert!(
            message.contains("8 bytes") && message.contains("14 bytes"),
            "{message}"
        );
    }

    #[test]
    fn the_right_bytes_with_the_wrong_size_are_refused() {
        let mut verifier = Verifier::new(Digest::of(b"blob"));
        verifier.update(b"blob");
        assert!(verifier.exceeds(3));
        assert!(verifier.finish(5).is_err());
    }
}
