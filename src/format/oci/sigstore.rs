//! Sigstore (cosign) signatures of container images, as containers-policy.json(5)'s
//! `sigstoreSigned` requirement checks them with a public key: the PEM key, the
//! simple-signing payload a signature covers, and whether the identity it names satisfies
//! a `signedIdentity` rule.
//!
//! Pure: the caller reads key files and the registry's `sha256-<hex>.sig` manifest and its
//! layers, and hands the bytes here. Signatures are checked with `ring` (ECDSA P-256 with
//! SHA-256, ASN.1 DER signatures, as cosign writes them) and `ed25519-dalek` (Ed25519 over
//! the payload itself). The payload is read as strictly as containers/image reads it: a
//! signature whose payload holds unknown critical fields is not one tako understands, so
//! it is refused rather than half-read.

use base64::Engine;
use serde_json::{Map, Value};

use super::digest::Digest;
use super::policy::SignedIdentity;
use super::reference::Reference;
use crate::format::text::untrusted;

/// The media type of a cosign signature layer: a simple-signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// The largest payload read (containers/image reads at most 4 MiB of a signature).
pub const MAX_PAYLOAD: u64 = 4 * 1024 * 1024;
/// The most signature layers one `.sig` manifest may have; a manifest with more is refused.
pub const MAX_SIGNATURES: usize = 64;
/// The largest PEM key file or `keyData` read.
pub const MAX_KEY: u64 = 64 * 1024;
/// The largest base64 signature annotation (an ECDSA P-256 DER signature is at most 72
/// bytes, Ed25519's 64).
const MAX_SIGNATURE_TEXT: usize = 1024;

/// The tag cosign stores the signatures of the manifest `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Why a public key is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("it is not a PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo)")]
    NotPem,
    #[error("its PEM block is not base64")]
    Base64,
    #[error("its DER does not parse: {0}")]
    Der(&'static str),
    #[error("it is a {0} key: tako checks sigstore signatures of ECDSA P-256 and Ed25519 keys")]
    Unsupported(&'static str),
    #[error("it is larger than {MAX_KEY} bytes")]
    TooLarge,
}

/// A public key a `sigstoreSigned` requirement trusts.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// The uncompressed point (0x04, X, Y).
    EcdsaP256(Vec<u8>),
    Ed25519([u8; 32]),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_BIT_STRING: u8 = 0x03;

/// One DER element: its tag, its content and what follows it.
fn der(input: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let (&tag, rest) = input.split_first().ok_or(KeyError::Der("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
    let (length, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&n, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
            if n < 0x80 {
                return Err(KeyError::Der("a length not in its shortest form"));
            }
            (usize::from(n), rest)
        }
        0x82 => {
            let (bytes, rest) = rest.split_at_checked(2).ok_or(KeyError::Der("truncated"))?;
            let n = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            if n < 0x100 {
                return Err(KeyError::Der("a length not in its shortest form"));
            }
            (n, rest)
        }
        _ => return Err(KeyError::Der("a length too large for a key")),
    };
    let (content, rest) = rest
        .split_at_checked(length)
        .ok_or(KeyError::Der("truncated"))?;
    Ok((tag, content, rest))
}

/// One DER element of tag `want`, and what follows it.
fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), KeyError> {
    let (tag, content, rest) = der(input)?;
    if tag != want {
        return Err(KeyError::Der("an unexpected element"));
    }
    Ok((content, rest))
}

impl PublicKey {
    /// Reads a PEM file or `keyData` holding one "PUBLIC KEY" block (the first PEM block,
    /// as containers/image reads it).
    pub fn from_pem(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        if bytes.len() as u64 > MAX_KEY {
            return Err(KeyError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| KeyError::NotPem)?;
        let mut lines = text.lines().map(str::trim);
        // The first PEM block must be the public key; text before it is allowed, as in
        // Go's pem.Decode.
        let begin = lines
            .by_ref()
            .find(|line| line.starts_with("-----BEGIN "))
            .ok_or(KeyError::NotPem)?;
        if begin != "-----BEGIN PUBLIC KEY-----" {
            return Err(KeyError::NotPem);
        }
        let mut body = String::new();
        let mut ended = false;
        for line in lines {
            if line == "-----END PUBLIC KEY-----" {
                ended = true;
                break;
            }
            if line.starts_with("-----") || line.contains(':') {
                // Another boundary, or RFC 1421 headers, which a public key never has.
                return Err(KeyError::NotPem);
            }
            body.push_str(line);
        }
        if !ended {
            return Err(KeyError::NotPem);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| KeyError::Base64)?;
        PublicKey::from_spki(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (spki, rest) = expect(der, TAG_SEQUENCE)?;
        if !rest.is_empty() {
            return Err(KeyError::Der("data after the key"));
        }
        let (algorithm, rest) = expect(spki, TAG_SEQUENCE)?;
        let (bits, rest) = expect(rest, TAG_BIT_STRING)?;
        if !rest.is_empty() {
            return Err(KeyError::Der("data after the key"));
        }
        let (oid, parameters) = expect(algorithm, TAG_OID)?;
        let key = match bits.split_first() {
            Some((0, key)) => key,
            _ => return Err(KeyError::Der("a key that is not whole bytes")),
        };
        if oid == OID_ED25519 {
            if !parameters.is_empty() {
                return Err(KeyError::Der("Ed25519 with parameters"));
            }
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| KeyError::Der("an Ed25519 key that is not 32 bytes"))?;
            return Ok(PublicKey::Ed25519(key));
        }
        if oid == OID_EC_PUBLIC_KEY {
            let (curve, rest) = expect(parameters, TAG_OID)?;
            if !rest.is_empty() {
                return Err(KeyError::Der("data after the curve"));
            }
            if curve != OID_P256 {
                return Err(KeyError::Unsupported(
                    "ECDSA key on a curve other than P-256",
                ));
            }
            return match key {
                [0x04, ..] if key.len() == 65 => Ok(PublicKey::EcdsaP256(key.to_vec())),
                [0x02 | 0x03, ..] => Err(KeyError::Unsupported("compressed P-256")),
                _ => Err(KeyError::Der("a P-256 point that is not 65 bytes")),
            };
        }
        if oid == OID_RSA {
            return Err(KeyError::Unsupported("RSA"));
        }
        Err(KeyError::Unsupported("other"))
    }

    /// The key's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "ECDSA P-256",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }

    /// Whether `signature` is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::EcdsaP256(point) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .verify(payload, signature)
            .is_ok(),
            PublicKey::Ed25519(key) => {
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
                    return false;
                };
                let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify_strict(payload, &signature).is_ok()
            }
        }
    }
}

/// Why one signature does not accept an image. Each is one reason among the signatures
/// tried; the caller says which signature and key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the layer is a {0}, not a simple-signing payload")]
    MediaType(String),
    #[error("the layer has no {SIGNATURE_ANNOTATION} annotation")]
    NoSignature,
    #[error("the signature annotation is not base64")]
    Base64,
    #[error("no key of the requirement made this signature")]
    BadSignature,
    #[error("the payload does not parse: {0}")]
    Payload(String),
    #[error("the payload signs manifest {signed}, not {wanted}")]
    OtherDigest { signed: Digest, wanted: Digest },
    #[error("the payload names {signed}, which does not match {image} ({rule})")]
    Identity {
        signed: String,
        image: String,
        rule: String,
    },
}

fn payload_error(what: impl Into<String>) -> SignatureError {
    SignatureError::Payload(what.into())
}

/// What a simple-signing payload says: the manifest it signs and the image it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub manifest_digest: Digest,
    pub docker_reference: SignedReference,
}

/// The members of `object` at `at`, which must be exactly `keys`.
fn exactly<'a>(
    value: &'a Value,
    at: &str,
    keys: &[&str],
) -> Result<&'a Map<String, Value>, SignatureError> {
    let object = value
        .as_object()
        .ok_or_else(|| payload_error(format!("{at} is not an object")))?;
    if let Some(key) = object.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(payload_error(format!(
            "{at} has an unknown member {}",
            untrusted(key)
        )));
    }
    if let Some(key) = keys.iter().find(|k| !object.contains_key(**k)) {
        return Err(payload_error(format!("{at} has no member {key}")));
    }
    Ok(object)
}

fn text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'a str, SignatureError> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| payload_error(format!("{at}.{key} is not a string")))
}

impl Payload {
    /// Reads a simple-signing payload as containers/image does: `critical` with exactly
    /// `type`, `image.docker-manifest-digest` and `identity.docker-reference`; `optional`
    /// present, `null` or an object, and otherwise ignored.
    pub fn parse(bytes: &[u8]) -> Result<Payload, SignatureError> {
        if bytes.len() as u64 > MAX_PAYLOAD {
            return Err(payload_error(format!("larger than {MAX_PAYLOAD} bytes")));
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|_| payload_error("it is not JSON"))?;
        let top = exactly(&value, "the payload", &["critical", "optional"])?;
        if !top
            .get("optional")
            .is_some_and(|v| v.is_null() || v.is_object())
        {
            return Err(payload_error("optional is not an object"));
        }
        let critical = exactly(
            top.get("critical").unwrap_or(&Value::Null),
            "critical",
            &["type", "image", "identity"],
        )?;
        let kind = text(critical, "type", "critical")?;
        if kind != SIGNATURE_TYPE {
            return Err(payload_error(format!(
                "critical.type is {}, not {SIGNATURE_TYPE:?}",
                untrusted(&format!("{kind:?}"))
            )));
        }
        let image = exactly(
            critical.get("image").unwrap_or(&Value::Null),
            "critical.image",
            &["docker-manifest-digest"],
        )?;
        let digest = text(image, "docker-manifest-digest", "critical.image")?;
        let manifest_digest = Digest::parse(digest).map_err(|e| payload_error(e.to_string()))?;
        let identity = exactly(
            critical.get("identity").unwrap_or(&Value::Null),
            "critical.identity",
            &["docker-reference"],
        )?;
        let reference = text(identity, "docker-reference", "critical.identity")?;
        let docker_reference = SignedReference::parse(reference)
            .map_err(|e| payload_error(format!("critical.identity.docker-reference: {e}")))?;
        Ok(Payload {
            manifest_digest,
            docker_reference,
        })
    }
}

/// An image identity as signatures and `signedIdentity` name it: a registry and
/// repository, with a tag and a digest only where written (`busybox` is
/// `docker.io/library/busybox`, without `:latest`, as Docker's normalization reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReference {
    /// `registry/repository`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl SignedReference {
    /// Reads a Docker reference (no scheme).
    pub fn parse(text: &str) -> Result<SignedReference, String> {
        if text.contains("://") {
            return Err(format!("{} has a scheme", untrusted(text)));
        }
        let reference = Reference::parse(text).map_err(|e| e.to_string())?;
        let name_part = text.split('@').next().unwrap_or(text);
        let last = name_part.rsplit('/').next().unwrap_or(name_part);
        let tagged = last.contains(':');
        Ok(SignedReference {
            name: format!("{}/{}", reference.registry(), reference.repository()),
            tag: reference.tag().filter(|_| tagged).map(str::to_owned),
            digest: reference.digest(),
        })
    }

    /// The identity of an image pulled as `image` (its tag, `latest` when it names none,
    /// is part of it).
    pub fn of_image(image: &Reference) -> SignedReference {
        SignedReference {
            name: format!("{}/{}", image.registry(), image.repository()),
            tag: image.tag().map(str::to_owned),
            digest: image.digest(),
        }
    }

    /// Whether this names a tag or a digest, not only a repository.
    fn is_specific(&self) -> bool {
        self.tag.is_some() || self.digest.is_some()
    }
}

impl std::fmt::Display for SignedReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&untrusted(&self.name))?;
        if let Some(tag) = &self.tag {
            write!(f, ":{}", untrusted(tag))?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `matchRepoDigestOrExact`: a digest-pinned image accepts any identity of its repository;
/// a tagged one only that tag.
fn repo_digest_or_exact(image: &SignedReference, signed: &SignedReference) -> bool {
    if image.digest.is_some() {
        image.name == signed.name
    } else {
        image == signed
    }
}

/// Whether `reference` (as written, `registry/repository:tag`) falls under `prefix`: the
/// same text, or followed by a path separator, or (for a repository prefix) by its tag or
/// digest.
fn under_prefix<'a>(reference: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = reference.strip_prefix(prefix)?;
    let ok = rest.is_empty()
        || rest.starts_with('/')
        || (prefix.contains('/') && (rest.starts_with(':') || rest.starts_with('@')));
    ok.then_some(rest)
}

/// The text of an identity, unescaped, for prefix rewriting.
fn raw(reference: &SignedReference) -> String {
    let mut text = reference.name.clone();
    if let Some(tag) = &reference.tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = &reference.digest {
        text.push('@');
        text.push_str(&digest.to_string());
    }
    text
}

/// The name of a `signedIdentity` rule, for messages.
pub fn rule_name(rule: &SignedIdentity) -> &'static str {
    match rule {
        SignedIdentity::MatchExact => "matchExact",
        SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
        SignedIdentity::MatchRepository => "matchRepository",
        SignedIdentity::ExactReference(_) => "exactReference",
        SignedIdentity::ExactRepository(_) => "exactRepository",
        SignedIdentity::RemapIdentity { .. } => "remapIdentity",
    }
}

/// Whether a signature naming `signed` satisfies `rule` for the image pulled as `image`
/// (containers-policy.json(5)).
pub fn identity_matches(
    rule: &SignedIdentity,
    image: &Reference,
    signed: &SignedReference,
) -> bool {
    let image = SignedReference::of_image(image);
    // A tag and a digest together: the digest is what is pulled.
    let image = if image.digest.is_some() {
        SignedReference { tag: None, ..image }
    } else {
        image
    };
    match rule {
        SignedIdentity::MatchExact => image.is_specific() && image == *signed,
        SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(&image, signed),
        SignedIdentity::MatchRepository => image.name == signed.name,
        SignedIdentity::ExactReference(reference) => SignedReference::parse(reference)
            .is_ok_and(|wanted| wanted.is_specific() && wanted == *signed),
        SignedIdentity::ExactRepository(repository) => {
            SignedReference::parse(repository).is_ok_and(|wanted| wanted.name == signed.name)
        }
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => {
            let text = raw(&image);
            let remapped = match under_prefix(&text, prefix) {
                Some(rest) => match SignedReference::parse(&format!("{signed_prefix}{rest}")) {
                    Ok(remapped) => remapped,
                    Err(_) => return false,
                },
                None => image,
            };
            repo_digest_or_exact(&remapped, signed)
        }
    }
}

/// One signature layer as read from the registry.
#[derive(Debug, Clone)]
pub struct SignatureLayer<'a> {
    pub media_type: &'a str,
    /// The `dev.cosignproject.cosign/signature` annotation.
    pub signature: Option<&'a str>,
    pub payload: &'a [u8],
}

/// Checks one signature layer found under the `.sig` tag of `wanted` (the manifest
/// digest being checked) against the keys and identity rule of a requirement; the key that
/// verified it on success.
pub fn check<'k>(
    layer: &SignatureLayer<'_>,
    keys: &'k [PublicKey],
    wanted: &Digest,
    image: &Reference,
    rule: &SignedIdentity,
) -> Result<&'k PublicKey, SignatureError> {
    if layer.media_type != SIMPLE_SIGNING {
        return Err(SignatureError::MediaType(untrusted(layer.media_type)));
    }
    let text = layer.signature.ok_or(SignatureError::NoSignature)?;
    if text.len() > MAX_SIGNATURE_TEXT {
        return Err(SignatureError::BadSignature);
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| SignatureError::Base64)?;
    // The signature first: nothing of an unsigned payload is believed, not even to say
    // what it names.
    let key = keys
        .iter()
        .find(|key| key.verifies(layer.payload, &signature))
        .ok_or(SignatureError::BadSignature)?;
    let payload = Payload::parse(layer.payload)?;
    if payload.manifest_digest != *wanted {
        return Err(SignatureError::OtherDigest {
            signed: payload.manifest_digest,
            wanted: *wanted,
        });
    }
    if !identity_matches(rule, image, &payload.docker_reference) {
        return Err(SignatureError::Identity {
            signed: payload.docker_reference.to_string(),
            image: SignedReference::of_image(image).to_string(),
            rule: rule_name(rule).to_owned(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
