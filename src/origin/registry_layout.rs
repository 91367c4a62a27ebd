//! Tako's layout in an OCI repository (docs/registries.md), and `tako store` into one.
//!
//! - tag `tako-manifest`: an OCI 1.1 artifact (`artifactType` [`MANIFEST_TYPE`], the empty
//!   config) whose single layer is the signed Tako manifest, byte for byte;
//! - each version: an artifact ([`IMAGE_TYPE`]) whose first layer is the image blob, so
//!   its digest is Tako's own, tagged with [`version_tag`] so that registry garbage
//!   collection never deletes an image and stock tools list the versions. A second layer
//!   ([`INDEX_TYPE`]), unless published with `--no-index`, is the image's chunk index, for
//!   delta updates. It comes second so that stock tools and readers that take the first
//!   layer (or the layer of the image's media type) find the image as before.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::chunk_index::ChunkIndex;
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::registry::{Client, OciError};

/// The tag of the artifact that holds the signed manifest.
pub const MANIFEST_TAG: &str = "tako-manifest";
/// `artifactType` and layer media type of the signed manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.tako.manifest.v1";
/// `artifactType` and layer media type of an image.
pub const IMAGE_TYPE: &str = "application/vnd.tako.image.v1";
/// Layer media type of an image's chunk index (docs/index.md), beside the image.
pub const INDEX_TYPE: &str = "application/vnd.tako.chunk-index.v1";
/// The OCI 1.1 empty config: the two bytes `{}`.
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";

#[derive(Debug, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// The tag of a version: the version itself where the OCI tag grammar
/// (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`) allows, else `sha256-<hex>` of its image. Versions
/// that could be mistaken for Tako's own tags (`tako-manifest`, `sha256-…`) get the digest
/// tag too, so no version can move another one's tag.
pub fn version_tag(version: &str, hex: &str) -> String {
    let bytes = version.as_bytes();
    let grammar = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if grammar && version != MANIFEST_TAG && !version.starts_with("sha256-") {
        version.to_string()
    } else {
        format!("sha256-{hex}")
    }
}

/// An artifact manifest whose single layer is `layer`.
pub fn artifact(
    artifact_type: &str,
    layer: Descriptor,
    annotations: Option<std::collections::BTreeMap<String, String>>,
) -> Vec<u8> {
    artifact_with_layers(artifact_type, vec![layer], annotations)
}

/// An artifact manifest with `layers`, in that order.
pub fn artifact_with_layers(
    artifact_type: &str,
    layers: Vec<Descriptor>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
) -> Vec<u8> {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(crate::registry::OCI_MANIFEST.to_string()),
        artifact_type: Some(artifact_type.to_string()),
        config: Descriptor {
            media_type: EMPTY_TYPE.to_string(),
            digest: crate::registry::digest_of(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        layers,
        annotations,
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// An error about the registry object `what`, for a reason the registry cannot be trusted on.
fn invalid(client: &Client, what: &str, reason: String) -> OciError {
    OciError::Invalid {
        what: what.to_string(),
        registry: client.reference.registry.clone(),
        reason,
    }
}

/// An artifact manifest as the registry served it (not yet checked for its type or layers).
fn parse_manifest(client: &Client, what: &str, bytes: &[u8]) -> Result<ImageManifest, OciError> {
    serde_json::from_slice(bytes)
        .map_err(|_| invalid(client, what, "not an OCI image manifest".to_string()))
}

impl ImageManifest {
    /// What the manifest says it is: its artifact type, or else its config's media type
    /// (the OCI 1.1 rule for artifacts made before `artifactType` existed).
    fn kind(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

/// The single layer of an artifact manifest of `artifact_type`.
pub fn single_layer(
    client: &Client,
    what: &str,
    bytes: &[u8],
    artifact_type: &str,
) -> Result<Descriptor, OciError> {
    let invalid = |reason: String| invalid(client, what, reason);
    let manifest = parse_manifest(client, what, bytes)?;
    let kind = manifest.kind();
    if kind != artifact_type {
        return Err(invalid(format!(
            "its artifact type is '{}', not {artifact_type}",
            crate::format::text::untrusted(kind)
        )));
    }
    let mut layers = manifest.layers.into_iter();
    match (layers.next(), layers.next()) {
        (Some(layer), None) => {
            if !is_sha256_digest(&layer.digest) {
                return Err(invalid(format!(
                    "its layer digest '{}' is not sha256:<64 lowercase hex digits>",
                    crate::format::text::untrusted(&layer.digest)
                )));
            }
            Ok(layer)
        }
        _ => Err(invalid("it does not have exactly one layer".to_string())),
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits: a layer's digest goes into a
/// blob URL, so nothing else may.
fn is_sha256_digest(digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The chunk-index layer of the version artifact `bytes`, if it is the artifact of the
/// image `sha256:<hex>` and has one. `Ok(None)`: an artifact of another image (a tag that
/// moved), or one without an index (published with `--no-index`, or by an older Tako);
/// the image is then downloaded whole. The index itself proves nothing: the delta checks
/// it names the signed image, and the image its signed digest.
pub fn index_layer(
    client: &Client,
    what: &str,
    bytes: &[u8],
    hex: &str,
) -> Result<Option<Descriptor>, OciError> {
    let invalid = |reason: String| invalid(client, what, reason);
    let manifest = parse_manifest(client, what, bytes)?;
    let kind = manifest.kind();
    let image = format!("sha256:{hex}");
    let ours = kind == IMAGE_TYPE
        && manifest
            .layers
            .first()
            .is_some_and(|l| l.media_type == IMAGE_TYPE && l.digest == image);
    if !ours {
        return Ok(None);
    }
    let mut indexes = manifest
        .layers
        .into_iter()
        .skip(1)
        .filter(|l| l.media_type == INDEX_TYPE);
    let Some(layer) = indexes.next() else {
        return Ok(None);
    };
    if indexes.next().is_some() {
        return Err(invalid(
            "it has more than one chunk-index layer".to_string(),
        ));
    }
    if !is_sha256_digest(&layer.digest) {
        return Err(invalid(format!(
            "its chunk-index layer digest '{}' is not sha256:<64 lowercase hex digits>",
            crate::format::text::untrusted(&layer.digest)
        )));
    }
    Ok(Some(layer))
}

/// The signed Tako manifest the repository serves, byte for byte, or `None` when the
/// repository has no `tako-manifest` tag yet, with the digest of the artifact that holds it.
pub fn read_manifest(client: &Client) -> Result<Option<(Vec<u8>, String)>, OciError> {
    read_manifest_capped(client, MAX_MANIFEST_SIZE)
}

/// As [`read_manifest`], with a layer of at most `max` bytes.
pub fn read_manifest_capped(
    client: &Client,
    max: u64,
) -> Result<Option<(Vec<u8>, String)>, OciError> {
    let Some(fetched) = client.manifest(MANIFEST_TAG)? else {
        return Ok(None);
    };
    let bytes = signed_manifest_of(client, &fetched, max)?;
    Ok(Some((bytes, fetched.digest)))
}

/// The signed Tako manifest that the `tako-manifest` artifact `fetched` holds as its layer,
/// at most `max` bytes (refused before reading when the artifact says it is larger), checked
/// against the layer's digest.
pub fn signed_manifest_of(
    client: &Client,
    fetched: &crate::registry::Fetched,
    max: u64,
) -> Result<Vec<u8>, OciError> {
    let what = format!("manifest {}:{MANIFEST_TAG}", client.reference);
    let layer = single_layer(client, &what, &fetched.bytes, MANIFEST_TYPE)?;
    if layer.size > max {
        return Err(OciError::TooLarge {
            what,
            registry: client.reference.registry.clone(),
            max,
        });
    }
    client.read_blob(&layer.digest, max)
}

/// What [`publish`] pushed.
pub struct Published {
    /// The tag the version got.
    pub tag: String,
}

/// The size and SHA-256 of a file, read once.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), OciError> {
    let read = |source| OciError::ReadImage {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}

/// The chunk index of a file (which holds its size and SHA-256), read once: the bytes
/// `tako store` writes to `index/<hex>` for a directory.
pub fn index_file(path: &Path) -> Result<ChunkIndex, OciError> {
    let read = |source| OciError::ReadImage {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read)?;
    crate::stream::chunking::index_of(&mut file).map_err(read)
}

/// An image to publish: its file, as hashed before.
pub struct Image<'a> {
    pub path: &'a Path,
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub hex: &'a str,
    /// Its chunk index (`ChunkIndex::to_bytes`), unless published with `--no-index`.
    pub index: Option<&'a [u8]>,
}

/// Pushes the image blob, its chunk index (if any) and its version artifact, then the newly
/// signed manifest as `tako-manifest`; `previous` is the digest of the `tako-manifest`
/// artifact read before (`None`: there was none). The tag is checked again just before and
/// after the push, since registries have no compare-and-swap on tags.
pub fn publish(
    client: &Client,
    image: &Image<'_>,
    version: &str,
    signed: &[u8],
    previous: Option<&str>,
) -> Result<Published, OciError> {
    let Image {
        path: image,
        size,
        hex,
        index,
    } = *image;
    client.push_blob(EMPTY_CONFIG)?;
    let digest = format!("sha256:{hex}");
    if !client.has_blob(&digest)? {
        let read = |source| OciError::ReadImage {
            path: image.to_path_buf(),
            source,
        };
        let mut file = File::open(image).map_err(read)?;
        file.rewind().map_err(read)?;
        // The registry hashes what it receives and refuses an upload whose bytes do not
        // match the digest, so an image changed since it was hashed is not published.
        client.upload(&digest, size, &mut file)?;
    }
    let tag = version_tag(version, hex);
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.version".to_string(),
        version.to_string(),
    );
    let mut layers = vec![Descriptor {
        media_type: IMAGE_TYPE.to_string(),
        digest,
        size,
        annotations: None,
    }];
    // Before the artifact that names it, as every blob: a registry refuses a manifest
    // whose layers it does not have.
    if let Some(index) = index {
        layers.push(Descriptor {
            media_type: INDEX_TYPE.to_string(),
            digest: client.push_blob(index)?,
            size: index.len() as u64,
            annotations: None,
        });
    }
    let version_artifact = artifact_with_layers(IMAGE_TYPE, layers, Some(annotations));
    client.put_manifest(&tag, &version_artifact)?;

    let layer = client.push_blob(signed)?;
    let manifest_artifact = artifact(
        MANIFEST_TYPE,
        Descriptor {
            media_type: MANIFEST_TYPE.to_string(),
            digest: layer,
            size: signed.len() as u64,
            annotations: None,
        },
        None,
    );
    let current = client.manifest(MANIFEST_TAG)?.map(|f| f.digest);
    if current.as_deref() != previous {
        return Err(concurrent(client));
    }
    let pushed = client.put_manifest(MANIFEST_TAG, &manifest_artifact)?;
    let after = client.manifest(MANIFEST_TAG)?.map(|f| f.digest);
    if after.as_deref() != Some(pushed.as_str()) {
        return Err(concurrent(client));
    }
    Ok(Published { tag })
}

fn concurrent(client: &Client) -> OciError {
    OciError::Invalid {
        what: format!("tag {MANIFEST_TAG} of {}", client.reference),
        registry: client.reference.registry.clone(),
        reason: "another publisher changed it during this run; publishers of one repository must take turns. Run tako store again: it starts from the manifest the registry now has".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, digest: String) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: 1,
            annotations: None,
        }
    }

    #[test]
    fn the_index_layer_is_only_taken_from_the_artifact_of_the_very_image() {
        let reference = crate::registry::Reference::parse("oci+http://127.0.0.1:1/app").unwrap();
        let client = Client::with_credentials(reference, None, false);
        let hex = "ab".repeat(32);
        let image = layer(IMAGE_TYPE, format!("sha256:{hex}"));
        let index = || layer(INDEX_TYPE, format!("sha256:{}", "cd".repeat(32)));
        let find = |layers: Vec<Descriptor>| {
            index_layer(
                &client,
                "m",
                &artifact_with_layers(IMAGE_TYPE, layers, None),
                &hex,
            )
        };
        let image2 = || layer(IMAGE_TYPE, format!("sha256:{hex}"));
        let found = find(vec![image, index()]).unwrap().unwrap();
        assert_eq!(found.digest, format!("sha256:{}", "cd".repeat(32)));
        // No index layer, or the artifact of another image: no index, no error.
        assert!(find(vec![image2()]).unwrap().is_none());
        let other = layer(IMAGE_TYPE, format!("sha256:{}", "ef".repeat(32)));
        assert!(find(vec![other, index()]).unwrap().is_none());
        assert!(find(vec![index(), image2()]).unwrap().is_none());
        let wrong_type = artifact_with_layers(MANIFEST_TYPE, vec![image2(), index()], None);
        assert!(
            index_layer(&client, "m", &wrong_type, &hex)
                .unwrap()
                .is_none()
        );
        // Ambiguous or malformed index layers are refused, without a URL built from them.
        assert!(find(vec![image2(), index(), index()]).is_err());
        let bad = layer(INDEX_TYPE, "sha256:../../x".to_string());
        assert!(find(vec![image2(), bad]).is_err());
        assert!(index_layer(&client, "m", b"\x1b[2J not json", &hex).is_err());
    }

    #[test]
    fn versions_that_are_not_tags_get_a_digest_tag() {
        let hex = "ab".repeat(32);
        assert_eq!(version_tag("1.2.0", &hex), "1.2.0");
        assert_eq!(version_tag("2024.01.05-rc1", &hex), "2024.01.05-rc1");
        for odd in [
            "1.0+build",
            "-1",
            ".1",
            "tako-manifest",
            "sha256-x",
            "a:b",
            &"1".repeat(129),
        ] {
            assert_eq!(version_tag(odd, &hex), format!("sha256-{hex}"), "{odd}");
        }
    }
}
