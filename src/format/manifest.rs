//! The signed manifest (format version 1): parse-and-verify, insert, sign-and-serialize.
//!
//! Pure functions over bytes: no I/O here, so the parser is unit-tested and
//! fuzzed directly. Parsing is strict because a manifest is security-relevant
//! input: anything not exactly in the format is refused with a reason.

use thiserror::Error;

use crate::format::key::{self, PublicKey, SecretKey};
use crate::format::text::{header_prefix, untrusted};
use crate::format::version::{Version, VersionError};

/// The largest manifest Tako reads, wherever it comes from (an origin, a
/// destination's copy, a server directory): 8 MiB, about 90,000 entries.
pub const MAX_MANIFEST_SIZE: u64 = 8 << 20;

const HEADER: &str = "Tako Manifest 1";
const HEADER_FAMILY: &str = "Tako Manifest ";

/// Why a manifest was refused. Line numbers are 1-based. Text taken from
/// the manifest is held escaped and cut (see `text::untrusted`): until the
/// signature is checked, it is whatever the server sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    #[error("it contains a carriage return (manifests use LF line ends only)")]
    CarriageReturn,
    #[error("it is not ASCII text")]
    NotAscii,
    #[error("it is empty")]
    Empty,
    #[error("it does not start with the header 'Tako Manifest 1' (its first line is '{0}')")]
    MissingHeader(String),
    #[error("unsupported manifest version: header is '{0}', expected 'Tako Manifest 1'")]
    UnsupportedVersion(String),
    #[error("line {0}: expected a blank line after the header")]
    MissingBlankLine(usize),
    #[error("it is truncated: it ends before the blank line and signature that close it")]
    Truncated,
    #[error("line {line}: malformed entry '{text}': {why}")]
    MalformedEntry {
        line: usize,
        text: String,
        why: String,
    },
    #[error("line {line}: invalid version in entry: {source}")]
    InvalidVersion { line: usize, source: VersionError },
    #[error("line {line}: entries are out of order: '{version}' comes after '{previous}'")]
    Unsorted {
        line: usize,
        version: String,
        previous: String,
    },
    #[error("line {line}: duplicate version: '{version}' is equal to '{previous}'")]
    Duplicate {
        line: usize,
        version: String,
        previous: String,
    },
    #[error("line {0}: malformed signature: expected 88 characters of base64")]
    MalformedSignature(usize),
    #[error("it has no newline after the signature")]
    MissingFinalNewline,
    #[error("it has trailing data after the signature line")]
    TrailingData,
    #[error(
        "the signature does not verify with public key {0} (signed by another key, or changed after signing)"
    )]
    BadSignature(String),
    #[error(
        "the signature verifies with none of the public keys {0} (signed by another key, or changed after signing)"
    )]
    BadSignatureAny(String),
}

/// One published version.
#[derive(Debug, Clone)]
pub struct Entry {
    pub version: Version,
    pub size: u64,
    pub digest: [u8; 32],
}

impl Entry {
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Identical as published: same version string, size and digest. This is
    /// stricter than version equality (`1.0` and `1-0` are equal versions
    /// but different entries).
    pub fn same_as(&self, other: &Entry) -> bool {
        self.version.as_str() == other.version.as_str()
            && self.size == other.size
            && self.digest == other.digest
    }

    fn line(&self) -> String {
        format!("{} {} {}", self.version, self.size, self.digest_hex())
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

/// What [`Manifest::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    Added,
    AlreadyPresent,
}

/// The entry being inserted conflicts with a published one.
#[derive(Debug, Clone, Error)]
#[error(
    "version {new_version} conflicts with the published entry '{existing}'; a published version can never change"
)]
pub struct Conflict {
    pub new_version: String,
    pub existing: Entry,
}

/// A verified manifest: entries in ascending version order, no two equal.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Parses `bytes` and verifies the signature with `key`.
    pub fn parse(bytes: &[u8], key: &PublicKey) -> Result<Manifest, ManifestError> {
        Manifest::parse_any(bytes, std::slice::from_ref(key)).map(|(manifest, _)| manifest)
    }

    /// Parses `bytes` and verifies the signature with whichever of `keys`
    /// made it; returns the manifest and the index of that key.
    pub fn parse_any(bytes: &[u8], keys: &[PublicKey]) -> Result<(Manifest, usize), ManifestError> {
        let parsed = parse_unverified(bytes)?;
        let signed = &bytes[..parsed.signed_len];
        match keys
            .iter()
            .position(|k| k.verify(signed, &parsed.signature))
        {
            Some(i) => Ok((
                Manifest {
                    entries: parsed.entries,
                },
                i,
            )),
            None => Err(match keys {
                [key] => ManifestError::BadSignature(key.to_base64()),
                keys => ManifestError::BadSignatureAny(
                    keys.iter()
                        .map(PublicKey::to_base64)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            }),
        }
    }

    /// Adds an entry in version order. An entry with an equal version is
    /// either the identical entry (a no-op) or a conflict.
    pub fn insert(&mut self, entry: Entry) -> Result<Insert, Conflict> {
        match self
            .entries
            .binary_search_by(|e| e.version.cmp(&entry.version))
        {
            Ok(i) if self.entries[i].same_as(&entry) => Ok(Insert::AlreadyPresent),
            Ok(i) => Err(Conflict {
                new_version: entry.version.to_string(),
                existing: self.entries[i].clone(),
            }),
            Err(i) => {
                self.entries.insert(i, entry);
                Ok(Insert::Added)
            }
        }
    }

    /// The bytes of the manifest, signed with `key`.
    pub fn to_signed_bytes(&self, key: &SecretKey) -> Vec<u8> {
        let mut out = String::with_capacity(64 + self.entries.len() * 90);
        out.push_str(HEADER);
        out.push_str("\n\n");
        for e in &self.entries {
            out.push_str(&e.line());
            out.push('\n');
        }
        out.push('\n');
        let signature = key.sign(out.as_bytes());
        out.push_str(&key::encode_signature(&signature));
        out.push('\n');
        out.into_bytes()
    }

    /// Every entry of `self` that `newer` lacks (same string, size, digest):
    /// a newer manifest only ever adds entries, so any of these means a
    /// rollback or a rewritten history.
    ///
    /// Both entry lists are in strictly ascending version order, so one
    /// merge-like pass over both finds them, linear in the manifests' size:
    /// 2 ms for two 8 MiB manifests, where looking each entry up in the
    /// whole other list took 79 s (`bench/rollback.sh`).
    pub fn missing_from<'a>(&'a self, newer: &Manifest) -> Vec<&'a Entry> {
        missing(&self.entries, newer)
    }

    /// Entries that `pattern` accepts, highest version first.
    pub fn matching<'a>(
        &'a self,
        pattern: &'a crate::format::version::Pattern,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .rev()
            .filter(move |e| pattern.matches(&e.version))
    }

    /// The entries whose image is `digest`, highest version first (one
    /// image may be published under several versions).
    pub fn with_digest(&self, digest: [u8; 32]) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .iter()
            .rev()
            .filter(move |e| e.digest == digest)
    }
}

/// A manifest checked in every detail but its signature.
struct Unverified {
    entries: Vec<Entry>,
    /// How many leading bytes the signature covers.
    signed_len: usize,
    signature: [u8; 64],
}

/// Everything [`Manifest::parse`] checks except the signature.
fn parse_unverified(bytes: &[u8]) -> Result<Unverified, ManifestError> {
    if bytes.contains(&b'\r') {
        return Err(ManifestError::CarriageReturn);
    }
    if bytes.is_empty() {
        return Err(ManifestError::Empty);
    }
    // The header is checked on the raw bytes, before the ASCII check, so
    // that whatever the server sent instead of a manifest (an HTML error
    // page, a compressed body) can be shown, escaped and cut.
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line != HEADER.as_bytes() {
        let shown = header_prefix(first_line);
        return Err(if first_line.starts_with(HEADER_FAMILY.as_bytes()) {
            ManifestError::UnsupportedVersion(shown)
        } else {
            ManifestError::MissingHeader(shown)
        });
    }
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(ManifestError::NotAscii)?;

    // Lines with their terminator; the last piece has none if the file
    // does not end in '\n'.
    let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| {
        let body = l.strip_suffix('\n');
        (i + 1, body.unwrap_or(l), body.is_some())
    });

    // The header itself was checked above.
    let (_, _, terminated) = lines.next().ok_or(ManifestError::Empty)?;
    if !terminated {
        return Err(ManifestError::Truncated);
    }
    match lines.next() {
        Some((_, "", true)) => {}
        Some((n, _, true)) => return Err(ManifestError::MissingBlankLine(n)),
        _ => return Err(ManifestError::Truncated),
    }

    let mut entries: Vec<Entry> = Vec::new();
    loop {
        match lines.next() {
            Some((_, "", true)) => break,
            Some((n, line, true)) => {
                let entry = parse_entry(n, line)?;
                if let Some(prev) = entries.last() {
                    check_order(n, prev, &entry)?;
                }
                entries.push(entry);
            }
            _ => return Err(ManifestError::Truncated),
        }
    }

    let (n, sig_text, terminated) = lines.next().ok_or(ManifestError::Truncated)?;
    let signature = key::decode_signature(sig_text).ok_or(ManifestError::MalformedSignature(n))?;
    if !terminated {
        return Err(ManifestError::MissingFinalNewline);
    }
    if lines.next().is_some() {
        return Err(ManifestError::TrailingData);
    }

    Ok(Unverified {
        entries,
        signed_len: text.len() - sig_text.len() - 1,
        signature,
    })
}

/// The entries of a manifest that no trusted key verifies, such as a
/// host's own copy after the key that signed it was removed from its
/// config. They can only make a check stricter: the one thing they offer
/// is [`UnverifiedEntries::missing_from`], for refusing a rollback. They are
/// never used to choose, find or trust an image.
#[derive(Debug, Clone)]
pub struct UnverifiedEntries {
    entries: Vec<Entry>,
}

impl UnverifiedEntries {
    /// Parses `bytes` as strictly as [`Manifest::parse`], without checking
    /// the signature.
    pub fn parse(bytes: &[u8]) -> Result<UnverifiedEntries, ManifestError> {
        Ok(UnverifiedEntries {
            entries: parse_unverified(bytes)?.entries,
        })
    }

    /// As [`Manifest::missing_from`].
    pub fn missing_from<'a>(&'a self, newer: &Manifest) -> Vec<&'a Entry> {
        missing(&self.entries, newer)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Both entry lists are in strictly ascending version order, so one
/// merge-like pass over both finds the missing ones, linear in the
/// manifests' size.
fn missing<'a>(entries: &'a [Entry], newer: &Manifest) -> Vec<&'a Entry> {
    let mut missing = Vec::new();
    let mut rest = newer.entries.iter().peekable();
    for entry in entries {
        while rest.next_if(|n| n.version < entry.version).is_some() {}
        match rest.peek() {
            Some(n) if n.same_as(entry) => {
                rest.next();
            }
            _ => missing.push(entry),
        }
    }
    missing
}

fn parse_entry(line_no: usize, line: &str) -> Result<Entry, ManifestError> {
    let malformed = |why: &str| ManifestError::MalformedEntry {
        line: line_no,
        text: untrusted(line),
        why: why.to_string(),
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let [version, size, digest] = fields[..] else {
        return Err(malformed(
            "expected three fields separated by single spaces: version, size, sha256",
        ));
    };
    if version.is_empty() {
        return Err(malformed("the version is empty"));
    }
    if !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("the version contains a control character"));
    }
    // Lenient: the original Tako published separator-only versions (`...`).
    let version =
        Version::parse_published(version).map_err(|source| ManifestError::InvalidVersion {
            line: line_no,
            source,
        })?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("the size is not a plain decimal number"));
    }
    // One number, one spelling: a signed manifest re-serializes to itself.
    if size.len() > 1 && size.starts_with('0') {
        return Err(malformed("the size has leading zeros"));
    }
    let size: u64 = size
        .parse()
        .map_err(|_| malformed("the size does not fit in 64 bits"))?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("the digest is not 64 hexadecimal characters"));
    }
    if digest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(malformed("the digest must be lowercase hexadecimal"));
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digest, &mut bytes)
        .map_err(|_| malformed("the digest is not 64 hexadecimal characters"))?;
    Ok(Entry {
        version,
        size,
        digest: bytes,
    })
}

fn check_order(line: usize, prev: &Entry, entry: &Entry) -> Result<(), ManifestError> {
    let names = || {
        (
            untrusted(entry.version.as_str()),
            untrusted(prev.version.as_str()),
        )
    };
    match prev.version.cmp(&entry.version) {
        std::cmp::Ordering::Less => Ok(()),
        std::cmp::Ordering::Equal => {
            let (version, previous) = names();
            Err(ManifestError::Duplicate {
                line,
                version,
                previous,
            })
        }
        std::cmp::Ordering::Greater => {
            let (version, previous) = names();
            Err(ManifestError::Unsorted {
                line,
                version,
                previous,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vectors of `tests/vectors/`, compiled in: the formats read no files.
    const VECTORS: &[(&str, &[u8])] = &[
        (
            "invalid/bad-signature",
            include_bytes!("../../tests/vectors/invalid/bad-signature"),
        ),
        (
            "invalid/crlf",
            include_bytes!("../../tests/vectors/invalid/crlf"),
        ),
        (
            "invalid/duplicate-version",
            include_bytes!("../../tests/vectors/invalid/duplicate-version"),
        ),
        (
            "invalid/missing-blank-line",
            include_bytes!("../../tests/vectors/invalid/missing-blank-line"),
        ),
        (
            "invalid/no-final-newline",
            include_bytes!("../../tests/vectors/invalid/no-final-newline"),
        ),
        (
            "invalid/other-key",
            include_bytes!("../../tests/vectors/invalid/other-key"),
        ),
        (
            "invalid/size-not-decimal",
            include_bytes!("../../tests/vectors/invalid/size-not-decimal"),
        ),
        (
            "invalid/trailing-data",
            include_bytes!("../../tests/vectors/invalid/trailing-data"),
        ),
        (
            "invalid/truncated",
            include_bytes!("../../tests/vectors/invalid/truncated"),
        ),
        (
            "invalid/unsorted",
            include_bytes!("../../tests/vectors/invalid/unsorted"),
        ),
        (
            "invalid/uppercase-digest",
            include_bytes!("../../tests/vectors/invalid/uppercase-digest"),
        ),
        (
            "invalid/version-2",
            include_bytes!("../../tests/vectors/invalid/version-2"),
        ),
        (
            "manifest-empty",
            include_bytes!("../../tests/vectors/manifest-empty"),
        ),
        (
            "manifest-one-entry",
            include_bytes!("../../tests/vectors/manifest-one-entry"),
        ),
        (
            "manifest-ordering",
            include_bytes!("../../tests/vectors/manifest-ordering"),
        ),
        (
            "origin/manifest",
            include_bytes!("../../tests/vectors/origin/manifest"),
        ),
        (
            "other-key.public",
            include_bytes!("../../tests/vectors/other-key.public"),
        ),
        (
            "test-key.public",
            include_bytes!("../../tests/vectors/test-key.public"),
        ),
        (
            "test-key.secret",
            include_bytes!("../../tests/vectors/test-key.secret"),
        ),
    ];

    fn read(name: &str) -> Vec<u8> {
        VECTORS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.to_vec())
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    fn test_public() -> PublicKey {
        PublicKey::parse(&String::from_utf8(read("test-key.public")).unwrap()).unwrap()
    }

    fn test_secret() -> SecretKey {
        SecretKey::parse(&String::from_utf8(read("test-key.secret")).unwrap()).unwrap()
    }

    fn entry(version: &str, size: u64, digest: &str) -> Entry {
        let mut d = [0u8; 32];
        hex::decode_to_slice(digest, &mut d).unwrap();
        Entry {
            version: Version::parse(version).unwrap(),
            size,
            digest: d,
        }
    }

    fn rejection(name: &str) -> ManifestError {
        Manifest::parse(&read(&format!("invalid/{name}")), &test_public()).unwrap_err()
    }

    #[test]
    fn parses_the_one_entry_vector() {
        let m = Manifest::parse(&read("manifest-one-entry"), &test_public()).unwrap();
        assert_eq!(m.entries().len(), 1);
        let e = &m.entries()[0];
        assert_eq!(e.version.as_str(), "1.0.0");
        assert_eq!(e.size, 17);
        assert_eq!(
            e.digest_hex(),
            "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f"
        );
    }

    #[test]
    fn signs_the_one_entry_vector_byte_for_byte() {
        let mut m = Manifest::default();
        let e = entry(
            "1.0.0",
            17,
            "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f",
        );
        assert_eq!(m.insert(e).unwrap(), Insert::Added);
        assert_eq!(
            m.to_signed_bytes(&test_secret()),
            read("manifest-one-entry")
        );
    }

    #[test]
    fn signs_and_parses_the_empty_vector() {
        let empty = read("manifest-empty");
        assert_eq!(Manifest::default().to_signed_bytes(&test_secret()), empty);
        assert!(
            Manifest::parse(&empty, &test_public())
                .unwrap()
                .entries()
                .is_empty()
        );
    }

    #[test]
    fn accepts_the_ordering_vector_and_round_trips_it() {
        let bytes = read("manifest-ordering");
        let m = Manifest::parse(&bytes, &test_public()).unwrap();
        assert_eq!(m.entries().len(), 15);
        assert_eq!(m.to_signed_bytes(&test_secret()), bytes);
    }

    #[test]
    fn accepts_the_origin_manifest() {
        let m = Manifest::parse(&read("origin/manifest"), &test_public()).unwrap();
        let versions: Vec<_> = m.entries().iter().map(|e| e.version.as_str()).collect();
        assert_eq!(versions, ["1.0.0", "1.1.0", "2.0.0"]);
    }

    #[test]
    fn rejects_manifest_signed_by_another_key() {
        assert!(matches!(
            rejection("other-key"),
            ManifestError::BadSignature(_)
        ));
        let other =
            PublicKey::parse(&String::from_utf8(read("other-key.public")).unwrap()).unwrap();
        assert!(matches!(
            Manifest::parse(&read("manifest-one-entry"), &other),
            Err(ManifestError::BadSignature(_))
        ));
    }

    #[test]
    fn verifies_with_whichever_of_several_keys_signed_it() {
        let other =
            PublicKey::parse(&String::from_utf8(read("other-key.public")).unwrap()).unwrap();
        let bytes = read("manifest-one-entry");
        let (m, i) = Manifest::parse_any(&bytes, &[other.clone(), test_public()]).unwrap();
        assert_eq!((m.entries().len(), i), (1, 1));
        let (_, i) = Manifest::parse_any(&bytes, &[test_public(), other.clone()]).unwrap();
        assert_eq!(i, 0);
        let err = Manifest::parse_any(&read("invalid/other-key"), &[test_public(), test_public()])
            .unwrap_err();
        assert!(matches!(err, ManifestError::BadSignatureAny(_)), "{err}");
        assert!(err.to_string().contains("none of the public keys"), "{err}");
        // Structure is checked before any signature.
        assert_eq!(
            Manifest::parse_any(&read("invalid/trailing-data"), &[other, test_public()])
                .unwrap_err(),
            ManifestError::TrailingData
        );
    }

    #[test]
    fn unverified_entries_are_parsed_as_strictly_but_only_compared() {
        let entries = UnverifiedEntries::parse(&read("invalid/other-key")).unwrap();
        assert!(!entries.is_empty());
        let origin = Manifest::parse(&read("origin/manifest"), &test_public()).unwrap();
        let empty = Manifest::default();
        assert_eq!(entries.missing_from(&empty).len(), entries.len());
        let one = UnverifiedEntries::parse(&read("manifest-one-entry")).unwrap();
        let one_verified = Manifest::parse(&read("manifest-one-entry"), &test_public()).unwrap();
        assert!(one.missing_from(&one_verified).is_empty());
        assert_eq!(one.missing_from(&origin).len(), 1);
        for name in [
            "crlf",
            "unsorted",
            "trailing-data",
            "truncated",
            "version-2",
        ] {
            assert!(
                UnverifiedEntries::parse(&read(&format!("invalid/{name}"))).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn rejects_manifest_with_an_altered_signature() {
        assert!(matches!(
            rejection("bad-signature"),
            ManifestError::BadSignature(_)
        ));
    }

    #[test]
    fn rejects_manifest_with_crlf_line_ends() {
        assert_eq!(rejection("crlf"), ManifestError::CarriageReturn);
    }

    #[test]
    fn rejects_manifest_with_duplicate_versions() {
        assert_eq!(
            rejection("duplicate-version"),
            ManifestError::Duplicate {
                line: 4,
                version: "1.0".into(),
                previous: "1.0.0".into()
            }
        );
    }

    #[test]
    fn rejects_manifest_without_blank_line_after_header() {
        assert_eq!(
            rejection("missing-blank-line"),
            ManifestError::MissingBlankLine(2)
        );
    }

    #[test]
    fn rejects_manifest_without_final_newline() {
        assert_eq!(
            rejection("no-final-newline"),
            ManifestError::MissingFinalNewline
        );
    }

    #[test]
    fn rejects_manifest_with_a_signed_size_not_in_decimal() {
        let err = rejection("size-not-decimal");
        assert!(
            matches!(&err, ManifestError::MalformedEntry { line: 3, why, .. } if why.contains("size")),
            "{err}"
        );
    }

    #[test]
    fn rejects_manifest_with_trailing_data() {
        assert_eq!(rejection("trailing-data"), ManifestError::TrailingData);
    }

    #[test]
    fn rejects_truncated_manifest() {
        assert_eq!(rejection("truncated"), ManifestError::Truncated);
    }

    #[test]
    fn rejects_manifest_with_unsorted_entries() {
        assert_eq!(
            rejection("unsorted"),
            ManifestError::Unsorted {
                line: 4,
                version: "1.1.0".into(),
                previous: "2.0.0".into()
            }
        );
    }

    #[test]
    fn rejects_manifest_with_uppercase_digest() {
        let err = rejection("uppercase-digest");
        assert!(err.to_string().contains("lowercase"), "{err}");
    }

    #[test]
    fn rejects_manifest_of_another_format_version() {
        let err = rejection("version-2");
        assert_eq!(
            err,
            ManifestError::UnsupportedVersion("Tako Manifest 2".into())
        );
        assert!(err.to_string().starts_with("unsupported manifest version"));
    }

    #[test]
    fn every_invalid_vector_has_its_own_message() {
        let mut messages = std::collections::BTreeSet::new();
        let mut count = 0;
        for (name, _) in VECTORS.iter().filter(|(n, _)| n.starts_with("invalid/")) {
            messages.insert(rejection(&name["invalid/".len()..]).to_string());
            count += 1;
        }
        // other-key and bad-signature are the same fault seen from outside.
        assert_eq!(messages.len(), count - 1);
    }

    fn signed(body: &str) -> Vec<u8> {
        let sig = key::encode_signature(&test_secret().sign(body.as_bytes()));
        format!("{body}{sig}\n").into_bytes()
    }

    #[test]
    fn rejects_entries_with_bad_fields_even_when_signed() {
        let d = "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f";
        for (line, why) in [
            (format!("1.0 17 {d} extra"), "three fields"),
            (format!("1.0  17 {d}"), "three fields"),
            (format!(" 17 {d}"), "version is empty"),
            (format!("1.0 -17 {d}"), "decimal"),
            (format!("1.0 017 {d}"), "leading zeros"),
            (format!("1.0 18446744073709551616 {d}"), "64 bits"),
            (format!("1.0 17 {}", &d[1..]), "64 hexadecimal"),
            (format!("1.0 17 {}g", &d[1..]), "64 hexadecimal"),
        ] {
            let bytes = signed(&format!("Tako Manifest 1\n\n{line}\n\n"));
            let err = Manifest::parse(&bytes, &test_public()).unwrap_err();
            assert!(err.to_string().contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn rejects_a_signed_version_beyond_u64() {
        let d = "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f";
        let bytes = signed(&format!(
            "Tako Manifest 1\n\n1.99999999999999999999 17 {d}\n\n"
        ));
        assert!(matches!(
            Manifest::parse(&bytes, &test_public()),
            Err(ManifestError::InvalidVersion { line: 3, .. })
        ));
    }

    #[test]
    fn rejects_other_headers_and_empty_input() {
        let key = test_public();
        assert_eq!(
            Manifest::parse(b"", &key).unwrap_err(),
            ManifestError::Empty
        );
        assert_eq!(
            Manifest::parse(b"<html>404</html>\n", &key).unwrap_err(),
            ManifestError::MissingHeader("<html>404</html>".into())
        );
        assert_eq!(
            Manifest::parse(b"\x1f\x8b\x08\x00", &key).unwrap_err(),
            ManifestError::MissingHeader("…".into())
        );
        assert_eq!(
            Manifest::parse(b"Tako Manifest 1", &key).unwrap_err(),
            ManifestError::Truncated
        );
        assert_eq!(
            Manifest::parse("Tako Manifest 1\n\n\u{e9}".as_bytes(), &key).unwrap_err(),
            ManifestError::NotAscii
        );
        assert!(matches!(
            Manifest::parse(b"Tako Manifest 1\n\n\nshort\n", &key).unwrap_err(),
            ManifestError::MalformedSignature(4)
        ));
    }

    #[test]
    fn accepts_a_separator_only_version_as_the_original_published_it() {
        let d = "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f";
        let body = format!("Tako Manifest 1\n\n... 17 {d}\n1.0 17 {d}\n\n");
        let bytes = signed(&body);
        let m = Manifest::parse(&bytes, &test_public()).unwrap();
        let versions: Vec<_> = m.entries().iter().map(|e| e.version.as_str()).collect();
        assert_eq!(versions, ["...", "1.0"]);
        assert_eq!(m.to_signed_bytes(&test_secret()), bytes);
        // `...` equals `0`: both in one manifest are a duplicate.
        let body = format!("Tako Manifest 1\n\n... 17 {d}\n0 17 {d}\n\n");
        assert!(matches!(
            Manifest::parse(&signed(&body), &test_public()),
            Err(ManifestError::Duplicate { line: 4, .. })
        ));
    }

    #[test]
    fn a_file_that_is_no_manifest_is_quoted_by_a_word_at_most() {
        // Issue 23, hostile review B: a manifest linked to /etc/shadow put root's line
        // into the journal.
        let key = test_public();
        let err = Manifest::parse(b"root:$6$s3cr3t$hash:19000:0:99999:7:::\n", &key).unwrap_err();
        assert_eq!(err, ManifestError::MissingHeader("root…".into()));
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn hostile_text_in_errors_is_escaped_and_cut() {
        let key = test_public();
        let header = format!("Tako Manifest {}\n", "\x1b[2J".repeat(2000));
        let err = Manifest::parse(header.as_bytes(), &key).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("unsupported manifest version"), "{shown}");
        assert!(!shown.contains('\x1b'), "{shown}");
        assert!(shown.contains("'Tako Manifest …'"), "{shown}");
        assert!(shown.len() < 1000, "{} bytes", shown.len());
        let err = Manifest::parse("\x1b[2J".repeat(2000).as_bytes(), &key).unwrap_err();
        assert!(matches!(err, ManifestError::MissingHeader(_)));
        assert!(err.to_string().len() < 1000);
        let line = format!("{}\x1b 1 2", "x".repeat(10_000));
        let err =
            Manifest::parse(format!("Tako Manifest 1\n\n{line}\n").as_bytes(), &key).unwrap_err();
        assert!(matches!(err, ManifestError::MalformedEntry { .. }));
        assert!(err.to_string().len() < 1000, "{err}");
    }

    #[test]
    fn insert_keeps_order_and_refuses_changed_twins() {
        let d1 = "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f";
        let d2 = "0076bc1f2562c14ad9b84ac7d08d936530703d043fe2816b5062f8cb583cf113";
        let mut m = Manifest::default();
        for v in ["2.0", "1.0.0", "1.5", "0.1"] {
            assert_eq!(m.insert(entry(v, 1, d1)).unwrap(), Insert::Added);
        }
        let order: Vec<_> = m.entries().iter().map(|e| e.version.as_str()).collect();
        assert_eq!(order, ["0.1", "1.0.0", "1.5", "2.0"]);
        assert_eq!(
            m.insert(entry("1.0.0", 1, d1)).unwrap(),
            Insert::AlreadyPresent
        );
        let err = m.insert(entry("1.0-0", 1, d1)).unwrap_err();
        assert_eq!(err.existing.version.as_str(), "1.0.0");
        assert!(m.insert(entry("1.0.0", 1, d2)).is_err());
        assert!(m.insert(entry("1.0.0", 2, d1)).is_err());
        assert_eq!(m.entries().len(), 4);
    }

    #[test]
    fn finds_entries_missing_from_a_newer_manifest() {
        let d1 = "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f";
        let d2 = "0076bc1f2562c14ad9b84ac7d08d936530703d043fe2816b5062f8cb583cf113";
        let mut old = Manifest::default();
        old.insert(entry("1.0", 1, d1)).unwrap();
        let mut new = old.clone();
        new.insert(entry("2.0", 1, d2)).unwrap();
        assert!(old.missing_from(&new).is_empty());
        assert_eq!(new.missing_from(&old).len(), 1);
        let mut changed = Manifest::default();
        changed.insert(entry("1.0", 1, d2)).unwrap();
        assert_eq!(old.missing_from(&changed).len(), 1);
        // An equal version written differently is not the same entry.
        let mut respelled = Manifest::default();
        respelled.insert(entry("1-0", 1, d1)).unwrap();
        respelled.insert(entry("2.0", 1, d2)).unwrap();
        assert_eq!(old.missing_from(&respelled).len(), 1);
        assert_eq!(new.missing_from(&respelled).len(), 1);
    }

    #[test]
    fn missing_from_agrees_with_looking_up_every_entry() {
        let d = [
            "9641a49d02e90cbb6213f202fb632da70cdc59073d42283cfcdc1d786454f17f",
            "0076bc1f2562c14ad9b84ac7d08d936530703d043fe2816b5062f8cb583cf113",
        ];
        let spellings = ["{}", "{}.0", "0{}", "{}-0"];
        // A small deterministic generator is enough to mix the cases.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..200 {
            let mut pair = [Manifest::default(), Manifest::default()];
            for m in &mut pair {
                for v in 0..12 {
                    if next(3) == 0 {
                        continue;
                    }
                    let text = spellings[next(4) as usize].replace("{}", &v.to_string());
                    let _ = m.insert(entry(&text, next(2), d[next(2) as usize]));
                }
            }
            let [old, new] = &pair;
            let naive: Vec<&Entry> = old
                .entries()
                .iter()
                .filter(|e| !new.entries().iter().any(|n| n.same_as(e)))
                .collect();
            let fast = old.missing_from(new);
            assert_eq!(
                fast.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                naive.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            );
        }
    }
}
