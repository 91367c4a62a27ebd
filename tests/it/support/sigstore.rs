//! Sigstore (cosign) signatures made test-side: ECDSA P-256 and Ed25519 key pairs (ring),
//! their public keys in PEM, simple-signing payloads, and the signature manifest cosign
//! stores under the tag `sha256-<hex>.sig`, so that the policy tests check tako against
//! signatures it never made. Names no other support module: the interop test includes it
//! by path.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use sha2::Digest;

/// The media type of a signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The config of a signature manifest: cosign's, without its dates.
const CONFIG: &[u8] =
    br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
/// The DER of a P-256 SubjectPublicKeyInfo up to its point.
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The DER of an Ed25519 SubjectPublicKeyInfo up to its key.
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A signing key made for one test.
pub enum SigningKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    pub fn p256() -> SigningKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        SigningKey::P256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    pub fn ed25519() -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        SigningKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    /// The public key as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo), as cosign writes it.
    pub fn public_pem(&self) -> String {
        let (prefix, key) = match self {
            SigningKey::P256(pair) => (P256_SPKI, pair.public_key().as_ref()),
            SigningKey::Ed25519(pair) => (ED25519_SPKI, pair.public_key().as_ref()),
        };
        let der = [prefix, key].concat();
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The signature of `payload`: ASN.1 DER ECDSA over its SHA-256, or Ed25519.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::P256(pair) => pair
                .sign(&SystemRandom::new(), payload)
                .unwrap()
                .as_ref()
                .to_vec(),
            SigningKey::Ed25519(pair) => pair.sign(payload).as_ref().to_vec(),
        }
    }
}

/// A simple-signing payload saying that `docker_reference` is the manifest `digest`.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let payload = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).unwrap()
}

/// The tag cosign stores the signatures of `digest` (`sha256:…`) under.
pub fn signature_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.strip_prefix("sha256:").unwrap())
}

fn blob_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A signature manifest holding each `(payload, signature)` as a layer, and the blobs it
/// names (config first), to be pushed before it.
pub fn signature_manifest(signatures: &[(Vec<u8>, Vec<u8>)]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut blobs = vec![CONFIG.to_vec()];
    let layers: Vec<serde_json::Value> = signatures
        .iter()
        .map(|(payload, signature)| {
            blobs.push(payload.clone());
            serde_json::json!({
                "mediaType": SIMPLE_SIGNING,
                "digest": blob_digest(payload),
                "size": payload.len(),
                "annotations": {
                    SIGNATURE_ANNOTATION:
                        base64::engine::general_purpose::STANDARD.encode(signature),
                },
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": blob_digest(CONFIG), "size": CONFIG.len() },
        "layers": layers,
    });
    (serde_json::to_vec(&manifest).unwrap(), blobs)
}

/// A containers-registries.d(5) file telling skopeo to read sigstore attachments.
pub const REGISTRIES_D: &str = "default-docker:\n  use-sigstore-attachments: true\n";
