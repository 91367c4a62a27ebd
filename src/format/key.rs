//! Ed25519 keys in Tako's text formats: parsing, generation, signing, verifying.
//!
//! A public key is the base64 of its 32 bytes. A secret key is `SECRET+`
//! followed by the base64 of seed ‖ public ‖ public (96 bytes), the layout the
//! original Tako wrote, so key files move freely between the two tools.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand::TryRng;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::format::text;

const SECRET_PREFIX: &str = "SECRET+";
const SECRET_LEN: usize = 96;

/// The length of a key id in hexadecimal digits (8 bytes of SHA-256).
pub const KEY_ID_LEN: usize = 16;

/// The length of a signature once base64-encoded.
pub const SIGNATURE_BASE64_LEN: usize = 88;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Holds the text already made safe to print.
    #[error("invalid public key '{0}': it is not base64 of 32 bytes")]
    PublicNotBase64(String),
    #[error("invalid public key '{0}': it is not a usable Ed25519 key (a weak or invalid point)")]
    PublicInvalidPoint(String),
    /// Never holds the text: it is a secret key, and must not reach a log.
    #[error(
        "a secret key (SECRET+…) was given where a public key belongs; it is not shown here. Use the public key printed by 'tako gen-key' (or 'tako key-id -' to read a secret key from standard input)"
    )]
    SecretAsPublic,
    /// Says nothing of what was read: it might be a mangled secret key.
    #[error("standard input holds neither a public key nor a secret key (SECRET+…)")]
    NotAKey,
    #[error("invalid key id '{0}': expected 16 lowercase hexadecimal digits")]
    BadKeyId(String),
    #[error("invalid secret key: it must start with 'SECRET+' (as printed by 'tako gen-key')")]
    SecretPrefix,
    #[error("invalid secret key: the text after 'SECRET+' is not base64 of 96 bytes")]
    SecretEncoding,
    #[error(
        "invalid secret key: the public keys embedded in it do not belong to its seed; the key is corrupted"
    )]
    SecretMismatch,
    #[error("cannot read the operating system's random source: {0}")]
    Random(String),
}

/// A publisher's public key, checked to be a valid, not small-order point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let text = text.trim();
        // A pasted secret key must not be echoed into an error message.
        if text.starts_with(SECRET_PREFIX) {
            return Err(KeyError::SecretAsPublic);
        }
        let shown = || text::untrusted(text);
        let bytes: [u8; 32] = BASE64
            .decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::PublicNotBase64(shown()))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::PublicInvalidPoint(shown()))?;
        if key.is_weak() {
            return Err(KeyError::PublicInvalidPoint(shown()));
        }
        Ok(PublicKey(key))
    }

    /// The key's id: the first 16 hex digits of the SHA-256 of its 32
    /// bytes. Short enough for a file name (`manifest.<id>`), long enough
    /// that two keys of one publisher never share it by accident.
    pub fn id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyId(hex::encode(&digest[..KEY_ID_LEN / 2]))
    }

    /// Strict verification: rejects non-canonical signatures and weak keys.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// A key id as printed by `tako key-id` and used in `manifest.<id>`: 16
/// lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses an id as written by Tako; anything else (upper case, another
    /// length) is refused so that one key has exactly one spelling.
    pub fn parse(text: &str) -> Result<KeyId, KeyError> {
        let text = text.trim();
        if text.len() == KEY_ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            Ok(KeyId(text.to_string()))
        } else {
            Err(KeyError::BadKeyId(text::untrusted(text)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A publisher's signing key.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Parses the `SECRET+…` form. Trailing whitespace, such as the newline
    /// at the end of a key file, is ignored.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let body = text
            .trim_end()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(KeyError::SecretPrefix)?;
        let bytes = BASE64.decode(body).map_err(|_| KeyError::SecretEncoding)?;
        if bytes.len() != SECRET_LEN {
            return Err(KeyError::SecretEncoding);
        }
        let (seed, publics) = bytes.split_at(32);
        let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::SecretEncoding)?;
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        if publics[..32] != public || publics[32..] != public {
            return Err(KeyError::SecretMismatch);
        }
        Ok(SecretKey(key))
    }

    /// A new key from the operating system's secure random source.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(message).to_bytes()
    }

    /// The `SECRET+…` text form.
    pub fn to_text(&self) -> String {
        let public = self.0.verifying_key().to_bytes();
        let mut bytes = Vec::with_capacity(SECRET_LEN);
        bytes.extend_from_slice(self.0.as_bytes());
        bytes.extend_from_slice(&public);
        bytes.extend_from_slice(&public);
        format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
    }
}

/// The id of the one key in `text` read from standard input: a public key,
/// or a secret key whose public half is used. Unlike a command-line
/// argument, standard input can carry a secret key without exposing it to
/// other users; it is never echoed, whatever the outcome.
pub fn key_id_from_input(text: &str) -> Result<KeyId, KeyError> {
    let text = text.trim();
    if text.starts_with(SECRET_PREFIX) {
        return Ok(SecretKey::parse(text)?.public_key().id());
    }
    PublicKey::parse(text)
        .map(|key| key.id())
        .map_err(|_| KeyError::NotAKey)
}

/// What `tako gen-key` prints for a key.
pub fn gen_key_report(key: &SecretKey) -> String {
    format!(
        "Key pair including secret key (save to an encrypted secret store):\n{}\n\nPublic key:\n{}\n",
        key.to_text(),
        key.public_key()
    )
}

pub fn encode_signature(signature: &[u8; 64]) -> String {
    BASE64.encode(signature)
}

/// Decodes a base64 signature; `None` unless it is exactly 88 characters of
/// canonical base64 for 64 bytes.
pub fn decode_signature(text: &str) -> Option<[u8; 64]> {
    if text.len() != SIGNATURE_BASE64_LEN {
        return None;
    }
    BASE64.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PUBLIC: &str = "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=";
    const TEST_SECRET: &str = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";

    #[test]
    fn parses_the_test_secret_key_to_its_public_key() {
        let key = SecretKey::parse(TEST_SECRET).unwrap();
        assert_eq!(key.public_key().to_base64(), TEST_PUBLIC);
        assert_eq!(key.to_text(), TEST_SECRET);
    }

    #[test]
    fn test_key_comes_from_the_documented_seed() {
        let key = SigningKey::from_bytes(b"test-key-very-security-such-safe");
        assert_eq!(BASE64.encode(key.verifying_key().as_bytes()), TEST_PUBLIC);
    }

    #[test]
    fn ignores_a_trailing_newline_in_a_secret_key() {
        assert!(SecretKey::parse(&format!("{TEST_SECRET}\n")).is_ok());
        assert!(SecretKey::parse(&format!("{TEST_SECRET} \r\n")).is_ok());
    }

    #[test]
    fn rejects_a_secret_key_without_its_prefix() {
        let err = SecretKey::parse(&TEST_SECRET[7..]).err().unwrap();
        assert_eq!(err, KeyError::SecretPrefix);
        assert!(err.to_string().contains("SECRET+"));
    }

    #[test]
    fn rejects_a_secret_key_of_the_wrong_length() {
        let short = &TEST_SECRET[..TEST_SECRET.len() - 4];
        assert_eq!(
            SecretKey::parse(short).err().unwrap(),
            KeyError::SecretEncoding
        );
        assert_eq!(
            SecretKey::parse("SECRET+!!!!").err().unwrap(),
            KeyError::SecretEncoding
        );
    }

    #[test]
    fn rejects_a_secret_key_whose_embedded_public_keys_disagree() {
        let mut bytes = BASE64.decode(&TEST_SECRET[7..]).unwrap();
        bytes[95] ^= 1;
        let corrupted = format!("SECRET+{}", BASE64.encode(&bytes));
        assert_eq!(
            SecretKey::parse(&corrupted).err().unwrap(),
            KeyError::SecretMismatch
        );
        let mut bytes = BASE64.decode(&TEST_SECRET[7..]).unwrap();
        bytes[0] ^= 1;
        let corrupted = format!("SECRET+{}", BASE64.encode(&bytes));
        assert_eq!(
            SecretKey::parse(&corrupted).err().unwrap(),
            KeyError::SecretMismatch
        );
    }

    #[test]
    fn rejects_public_keys_that_are_not_32_bytes() {
        for bad in ["", "abc", "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH2"] {
            assert!(matches!(
                PublicKey::parse(bad),
                Err(KeyError::PublicNotBase64(_))
            ));
        }
    }

    #[test]
    fn key_ids_are_the_first_16_hex_digits_of_the_sha256_of_the_key() {
        // Computed independently: base64 -d | sha256sum | cut -c1-16.
        let id = PublicKey::parse(TEST_PUBLIC).unwrap().id();
        assert_eq!(id.as_str(), "9ee3a79654281274");
        let other = PublicKey::parse("CIXmyAykawJ4QprUaE1+bqcHVjQUhW+FwPdmHsYsFK8=").unwrap();
        assert_eq!(other.id().to_string(), "fbe6931bfb853cd4");
        let secret = SecretKey::parse(TEST_SECRET).unwrap();
        assert_eq!(secret.public_key().id(), id);
    }

    #[test]
    fn key_ids_parse_only_in_their_one_spelling() {
        assert_eq!(
            KeyId::parse(" 9ee3a79654281274\n").unwrap().as_str(),
            "9ee3a79654281274"
        );
        for bad in [
            "",
            "9EE3A79654281274",
            "9ee3a7965428127",
            "9ee3a796542812745",
            "9ee3a7965428127g",
        ] {
            assert!(
                matches!(KeyId::parse(bad), Err(KeyError::BadKeyId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_ids_from_input_accept_either_half_and_never_echo() {
        let id = "9ee3a79654281274";
        assert_eq!(
            key_id_from_input(&format!("{TEST_PUBLIC}\n"))
                .unwrap()
                .as_str(),
            id
        );
        assert_eq!(
            key_id_from_input(&format!("{TEST_SECRET}\n"))
                .unwrap()
                .as_str(),
            id
        );
        let mangled = format!("x{TEST_SECRET}");
        let err = key_id_from_input(&mangled).unwrap_err();
        assert_eq!(err, KeyError::NotAKey);
        let err = key_id_from_input(&TEST_SECRET[..100]).unwrap_err();
        assert_eq!(err, KeyError::SecretEncoding);
        assert!(!err.to_string().contains(&TEST_SECRET[7..20]));
    }

    #[test]
    fn a_secret_key_given_as_a_public_key_is_refused_without_being_shown() {
        let err = PublicKey::parse(TEST_SECRET).unwrap_err();
        assert_eq!(err, KeyError::SecretAsPublic);
        assert!(!err.to_string().contains(&TEST_SECRET[7..20]), "{err}");
    }

    #[test]
    fn invalid_public_keys_are_shown_escaped() {
        let err = PublicKey::parse("abc\u{1b}[2J").unwrap_err();
        assert_eq!(err, KeyError::PublicNotBase64("abc\\u{1b}[2J".into()));
    }

    #[test]
    fn rejects_small_order_public_keys() {
        // The identity point, encoded: y = 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let text = BASE64.encode(identity);
        assert_eq!(
            PublicKey::parse(&text).err().unwrap(),
            KeyError::PublicInvalidPoint(text)
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_and_differ() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.to_text(), b.to_text());
        let sig = a.sign(b"message");
        assert!(a.public_key().verify(b"message", &sig));
        assert!(!a.public_key().verify(b"messagE", &sig));
        assert!(!b.public_key().verify(b"message", &sig));
        let reparsed = SecretKey::parse(&a.to_text()).unwrap();
        assert_eq!(reparsed.public_key(), a.public_key());
    }

    #[test]
    fn gen_key_report_has_the_documented_layout() {
        let key = SecretKey::parse(TEST_SECRET).unwrap();
        assert_eq!(
            gen_key_report(&key),
            format!(
                "Key pair including secret key (save to an encrypted secret store):\n{TEST_SECRET}\n\nPublic key:\n{TEST_PUBLIC}\n"
            )
        );
    }

    #[test]
    fn rejects_signatures_of_the_wrong_length() {
        assert!(decode_signature("AAAA").is_none());
        assert!(decode_signature(&"A".repeat(88)).is_none());
        let sig = encode_signature(&[7u8; 64]);
        assert_eq!(decode_signature(&sig), Some([7u8; 64]));
    }
}
