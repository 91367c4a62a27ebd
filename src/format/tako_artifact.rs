//! Tako's artifacts in an OCI repository as data (docs/registries.md): the tags and media
//! types, the artifact manifests tako writes, and what it reads back out of one a registry
//! served. Pure: the pushes and fetches that use them are `origin::registry_layout`.
//!
//! - tag `tako-manifest`: an OCI 1.1 artifact (`artifactType` [`MANIFEST_TYPE`], the empty
//!   config) whose single layer is the signed Tako manifest, byte for byte;
//! - during a key rotation, tag `tako-manifest.<keyid>` for each other current key: the
//!   same artifact shape, its layer the manifest signed by that key, and an annotation
//!   [`KEY_ID_ANNOTATION`] that keeps its digest apart from every other tag's (a registry
//!   deletes a manifest by digest, with every tag that names it). A key retired where the
//!   registry refuses to delete its tag leaves there a [`RETIRED_TYPE`] artifact instead;
//! - each version: an artifact ([`IMAGE_TYPE`]) whose first layer is the image blob, so
//!   its digest is Tako's own, tagged with [`version_tag`] so that registry garbage
//!   collection never deletes an image and stock tools list the versions. A second layer
//!   ([`INDEX_TYPE`]), unless published with `--no-index`, is the image's chunk index, for
//!   delta updates. It comes second so that stock tools and readers that take the first
//!   layer (or the layer of the image's media type) find the image as before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::oci::digest::Digest;
use crate::format::oci::media::OCI_MANIFEST;
use crate::format::text::untrusted;

/// The tag of the artifact that holds the signed manifest.
pub const MANIFEST_TAG: &str = "tako-manifest";
/// `artifactType` and layer media type of the signed manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.tako.manifest.v1";
/// `artifactType` and layer media type of an image.
pub const IMAGE_TYPE: &str = "application/vnd.tako.image.v1";
/// Layer media type of an image's chunk index (docs/index.md), beside the image.
pub const INDEX_TYPE: &str = "application/vnd.tako.chunk-index.v2";
/// `artifactType` of what the tag of a retired key holds where the registry would not
/// delete it: the empty config as its only layer, nothing a host could take for a manifest.
pub const RETIRED_TYPE: &str = "application/vnd.tako.retired.v1";
/// The annotation of a `tako-manifest.<keyid>` artifact (and a retired one) naming its key.
pub const KEY_ID_ANNOTATION: &str = "vnd.tako.key-id";
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
    pub annotations: Option<BTreeMap<String, String>>,
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
    pub annotations: Option<BTreeMap<String, String>>,
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

/// The tag of a version: the version itself where the OCI tag grammar
/// (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`) allows, else `sha256-<hex>` of its image. Versions
/// that could be mistaken for Tako's own tags (`tako-manifest`, `tako-manifest.<keyid>`,
/// `sha256-…`) get the digest tag too, so no version can move another one's tag.
pub fn version_tag(version: &str, hex: &str) -> String {
    let bytes = version.as_bytes();
    let grammar = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if grammar && !version.starts_with(MANIFEST_TAG) && !version.starts_with("sha256-") {
        version.to_string()
    } else {
        format!("sha256-{hex}")
    }
}

/// An artifact manifest whose single layer is `layer`.
pub fn artifact(
    artifact_type: &str,
    layer: Descriptor,
    annotations: Option<BTreeMap<String, String>>,
) -> Vec<u8> {
    artifact_with_layers(artifact_type, vec![layer], annotations)
}

/// An artifact manifest with `layers`, in that order.
pub fn artifact_with_layers(
    artifact_type: &str,
    layers: Vec<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
) -> Vec<u8> {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: Some(artifact_type.to_string()),
        config: Descriptor {
            media_type: EMPTY_TYPE.to_string(),
            digest: Digest::of(EMPTY_CONFIG).to_string(),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        layers,
        annotations,
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// Why an artifact a registry served is not one tako can use. The Display is the reason
/// given after the name of the registry object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("not an OCI image manifest")]
    NotAManifest,
    #[error("its artifact type is '{found}', not {expected}")]
    ArtifactType { found: String, expected: String },
    #[error("its layer digest '{0}' is not sha256:<64 lowercase hex digits>")]
    LayerDigest(String),
    #[error("it does not have exactly one layer")]
    NotOneLayer,
    #[error("it has more than one chunk-index layer")]
    IndexLayers,
    #[error("its chunk-index layer digest '{0}' is not sha256:<64 lowercase hex digits>")]
    IndexDigest(String),
}

/// An artifact manifest as the registry served it (not yet checked for its type or layers).
fn parse(bytes: &[u8]) -> Result<ImageManifest, ArtifactError> {
    serde_json::from_slice(bytes).map_err(|_| ArtifactError::NotAManifest)
}

/// The single layer of an artifact manifest of `artifact_type`.
pub fn single_layer(bytes: &[u8], artifact_type: &str) -> Result<Descriptor, ArtifactError> {
    let manifest = parse(bytes)?;
    let kind = manifest.kind();
    if kind != artifact_type {
        return Err(ArtifactError::ArtifactType {
            found: untrusted(kind),
            expected: artifact_type.to_string(),
        });
    }
    let mut layers = manifest.layers.into_iter();
    match (layers.next(), layers.next()) {
        (Some(layer), None) => {
            // The digest goes into a blob URL: only sha256:<64 lowercase hex> may.
            if Digest::parse(&layer.digest).is_err() {
                return Err(ArtifactError::LayerDigest(untrusted(&layer.digest)));
            }
            Ok(layer)
        }
        _ => Err(ArtifactError::NotOneLayer),
    }
}

/// The chunk-index layer of the version artifact `bytes`, if it is the artifact of the
/// image `sha256:<hex>` and has one. `Ok(None)`: an artifact of another image (a tag that
/// moved), or one without an index (published with `--no-index`, or by an older Tako);
/// the image is then downloaded whole. The index itself proves nothing: the delta checks
/// it names the signed image, and the image its signed digest.
pub fn index_layer(bytes: &[u8], hex: &str) -> Result<Option<Descriptor>, ArtifactError> {
    let manifest = parse(bytes)?;
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
        return Err(ArtifactError::IndexLayers);
    }
    if Digest::parse(&layer.digest).is_err() {
        return Err(ArtifactError::IndexDigest(untrusted(&layer.digest)));
    }
    Ok(Some(layer))
}

/// Whether the artifact `bytes` is what the tag of a retired key holds.
pub fn is_retired(bytes: &[u8]) -> bool {
    serde_json::from_slice::<ImageManifest>(bytes).is_ok_and(|m| m.kind() == RETIRED_TYPE)
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
        let hex = "ab".repeat(32);
        let image = layer(IMAGE_TYPE, format!("sha256:{hex}"));
        let index = || layer(INDEX_TYPE, format!("sha256:{}", "cd".repeat(32)));
        let find = |layers: Vec<Descriptor>| {
            index_layer(&artifact_with_layers(IMAGE_TYPE, layers, None), &hex)
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
        assert!(index_layer(&wrong_type, &hex).unwrap().is_none());
        // Ambiguous or malformed index layers are refused, without a URL built from them.
        assert!(find(vec![image2(), index(), index()]).is_err());
        let bad = layer(INDEX_TYPE, "sha256:../../x".to_string());
        assert!(find(vec![image2(), bad]).is_err());
        assert!(index_layer(b"\x1b[2J not json", &hex).is_err());
    }

    #[test]
    fn a_version_1_index_layer_of_an_older_tako_is_passed_over() {
        let hex = "ab".repeat(32);
        let image = layer(IMAGE_TYPE, format!("sha256:{hex}"));
        let old = layer(
            "application/vnd.tako.chunk-index.v1",
            format!("sha256:{}", "cd".repeat(32)),
        );
        let bytes = artifact_with_layers(IMAGE_TYPE, vec![image, old], None);
        assert!(index_layer(&bytes, &hex).unwrap().is_none());
    }

    #[test]
    fn the_signed_manifest_is_the_single_layer_of_a_manifest_artifact() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let manifest = || layer(MANIFEST_TYPE, digest.clone());
        let ok = artifact(MANIFEST_TYPE, manifest(), None);
        assert_eq!(single_layer(&ok, MANIFEST_TYPE).unwrap().digest, digest);
        let image = artifact(IMAGE_TYPE, manifest(), None);
        assert_eq!(
            single_layer(&image, MANIFEST_TYPE).unwrap_err().to_string(),
            format!("its artifact type is '{IMAGE_TYPE}', not {MANIFEST_TYPE}")
        );
        let two = artifact_with_layers(MANIFEST_TYPE, vec![manifest(), manifest()], None);
        assert_eq!(
            single_layer(&two, MANIFEST_TYPE).unwrap_err(),
            ArtifactError::NotOneLayer
        );
        // A digest goes into a blob URL: anything but sha256:<64 lowercase hex> is refused.
        for bad in [
            "sha256:../../x".to_string(),
            format!("sha256:{}", "AB".repeat(32)),
        ] {
            let bad = artifact(MANIFEST_TYPE, layer(MANIFEST_TYPE, bad), None);
            assert!(matches!(
                single_layer(&bad, MANIFEST_TYPE),
                Err(ArtifactError::LayerDigest(_))
            ));
        }
        assert_eq!(
            single_layer(b"\x1b[2J not json", MANIFEST_TYPE).unwrap_err(),
            ArtifactError::NotAManifest
        );
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
            "tako-manifest.9ee3a79654281274",
            "sha256-x",
            "a:b",
            &"1".repeat(129),
        ] {
            assert_eq!(version_tag(odd, &hex), format!("sha256-{hex}"), "{odd}");
        }
    }
}
