//! Tako's layout in an OCI repository (docs/registries.md), and the pushes that build it.
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

use std::fs::File;
use std::io::Seek;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Slot;
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::registry::{Client, Deleted, OciError};

/// The tag of the artifact that holds the signed manifest.
pub const MANIFEST_TAG: &str = "tako-manifest";
/// `artifactType` and layer media type of the signed manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.tako.manifest.v1";
/// `artifactType` and layer media type of an image.
pub const IMAGE_TYPE: &str = "application/vnd.tako.image.v1";
/// Layer media type of an image's chunk index (docs/index.md), beside the image.
pub const INDEX_TYPE: &str = "application/vnd.tako.chunk-index.v1";
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

/// The tag of the manifest file `slot`: `tako-manifest` or `tako-manifest.<keyid>`.
pub fn manifest_tag(slot: &Slot) -> String {
    slot.name(MANIFEST_TAG)
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
    let bytes = signed_manifest_of(client, MANIFEST_TAG, &fetched, max)?;
    Ok(Some((bytes, fetched.digest)))
}

/// Whether the artifact `bytes` is what the tag of a retired key holds.
pub fn is_retired(bytes: &[u8]) -> bool {
    serde_json::from_slice::<ImageManifest>(bytes).is_ok_and(|m| m.kind() == RETIRED_TYPE)
}

/// The signed Tako manifest that the manifest artifact `fetched`, tagged `tag`, holds as its
/// layer, at most `max` bytes (refused before reading when the artifact says it is
/// larger), checked against the layer's digest.
pub fn signed_manifest_of(
    client: &Client,
    tag: &str,
    fetched: &crate::registry::Fetched,
    max: u64,
) -> Result<Vec<u8>, OciError> {
    let what = format!("manifest {}:{tag}", client.reference);
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

/// An image to publish: its file, as hashed before.
pub struct Image<'a> {
    pub path: &'a Path,
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub hex: &'a str,
    /// Its chunk index (`ChunkIndex::to_bytes`), unless published with `--no-index`.
    pub index: Option<&'a [u8]>,
}

/// Pushes the image blob (unless the registry has it), its chunk index (if any) and the
/// artifact of `version`, under the version's tag; returns that tag. The signed manifest
/// that lists the version comes after, with [`push_manifest`].
pub fn push_image(client: &Client, image: &Image<'_>, version: &str) -> Result<String, OciError> {
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
    Ok(tag)
}

/// The annotations that set the artifact of a key's tag apart: none for `tako-manifest`
/// (byte for byte what Tako always pushed), the key id for `tako-manifest.<keyid>`.
fn key_annotations(slot: &Slot) -> Option<std::collections::BTreeMap<String, String>> {
    match slot {
        Slot::Primary => None,
        Slot::Key(id) => {
            Some(std::iter::once((KEY_ID_ANNOTATION.to_string(), id.to_string())).collect())
        }
    }
}

/// Pushes `signed` as the manifest of `slot` and returns the digest of its artifact;
/// `previous` is the digest of that tag's artifact as read before (`None`: there was
/// none). The tag is checked again just before and after the push, since registries have
/// no compare-and-swap on tags.
pub fn push_manifest(
    client: &Client,
    slot: &Slot,
    signed: &[u8],
    previous: Option<&str>,
) -> Result<String, OciError> {
    let tag = manifest_tag(slot);
    client.push_blob(EMPTY_CONFIG)?;
    let layer = client.push_blob(signed)?;
    let manifest_artifact = artifact(
        MANIFEST_TYPE,
        Descriptor {
            media_type: MANIFEST_TYPE.to_string(),
            digest: layer,
            size: signed.len() as u64,
            annotations: None,
        },
        key_annotations(slot),
    );
    put_checked(client, &tag, &manifest_artifact, previous)
}

/// Puts `artifact` under `tag` if the tag still names `previous`, and checks that it then
/// names the artifact.
fn put_checked(
    client: &Client,
    tag: &str,
    artifact: &[u8],
    previous: Option<&str>,
) -> Result<String, OciError> {
    let current = client.manifest(tag)?.map(|f| f.digest);
    if current.as_deref() != previous {
        return Err(concurrent(client, tag));
    }
    let pushed = client.put_manifest(tag, artifact)?;
    let after = client.manifest(tag)?.map(|f| f.digest);
    if after.as_deref() != Some(pushed.as_str()) {
        return Err(concurrent(client, tag));
    }
    Ok(pushed)
}

/// How the tag of a retired key was taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// The registry deleted the artifact, and with it the tag.
    Deleted,
    /// The registry refused to delete it: the tag now names a [`RETIRED_TYPE`] artifact.
    Marked,
}

/// Takes away the tag of `slot` (a key's, never `tako-manifest`), which names the
/// artifact `previous` as read before. `others` are the digests every other Tako tag
/// named then: an artifact one of them shares is never deleted, since a registry deletes
/// a manifest with every tag that names it. Where the registry will not delete (deletes
/// disabled, or not allowed to this publisher), the tag gets a [`RETIRED_TYPE`] artifact,
/// which hosts take as no manifest and `tako store` as no file.
pub fn retire(
    client: &Client,
    slot: &Slot,
    previous: &str,
    others: &[&str],
) -> Result<Retired, OciError> {
    let tag = manifest_tag(slot);
    let current = client.manifest(&tag)?.map(|f| f.digest);
    if current.as_deref() != Some(previous) {
        return Err(concurrent(client, &tag));
    }
    if !others.contains(&previous) {
        match client.delete_manifest(previous)? {
            Deleted::Yes | Deleted::Absent => return Ok(Retired::Deleted),
            Deleted::Refused => {}
        }
    }
    client.push_blob(EMPTY_CONFIG)?;
    let marker = artifact(
        RETIRED_TYPE,
        Descriptor {
            media_type: EMPTY_TYPE.to_string(),
            digest: crate::registry::digest_of(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        key_annotations(slot),
    );
    put_checked(client, &tag, &marker, Some(previous))?;
    Ok(Retired::Marked)
}

fn concurrent(client: &Client, tag: &str) -> OciError {
    OciError::Invalid {
        what: format!("tag {tag} of {}", client.reference),
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
    fn the_manifest_of_each_key_has_its_own_tag_and_a_retired_key_a_marker() {
        let id = crate::format::key::KeyId::parse("9ee3a79654281274").unwrap();
        let slot = Slot::Key(id.clone());
        assert_eq!(manifest_tag(&Slot::Primary), "tako-manifest");
        assert_eq!(manifest_tag(&slot), "tako-manifest.9ee3a79654281274");
        assert_eq!(
            Slot::parse(&manifest_tag(&slot), MANIFEST_TAG),
            Some(slot.clone())
        );
        // A version's tag is never taken for a manifest's.
        let hex = "ab".repeat(32);
        assert_eq!(Slot::parse(&version_tag("1.0", &hex), MANIFEST_TAG), None);

        let layer = || Descriptor {
            media_type: MANIFEST_TYPE.to_string(),
            digest: format!("sha256:{hex}"),
            size: 1,
            annotations: None,
        };
        let primary = artifact(MANIFEST_TYPE, layer(), key_annotations(&Slot::Primary));
        let keyed = artifact(MANIFEST_TYPE, layer(), key_annotations(&slot));
        // The same signed bytes under two tags are two artifacts, so deleting one by
        // digest cannot take the other's tag with it.
        assert_ne!(primary, keyed);
        assert!(!is_retired(&primary) && !is_retired(&keyed));
        let marker = artifact(RETIRED_TYPE, layer(), key_annotations(&slot));
        assert!(is_retired(&marker));
        assert!(!is_retired(b"\x1b[2J not json"));
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
