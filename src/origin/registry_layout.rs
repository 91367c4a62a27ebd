//! Tako's layout in an OCI repository (docs/registries.md), and the pushes that build it.
//! The artifacts themselves (tags, media types, their JSON) are `format::tako_artifact`,
//! re-exported here for the callers that name them through this module.

use std::fs::File;
use std::io::Seek;
use std::path::Path;

use super::{OriginError, Slot};
use crate::format::oci::digest::Digest;
use crate::format::tako_artifact::{self, ArtifactError};
pub use crate::format::tako_artifact::{
    Descriptor, EMPTY_CONFIG, EMPTY_TYPE, IMAGE_TYPE, INDEX_TYPE, KEY_ID_ANNOTATION, MANIFEST_TAG,
    MANIFEST_TYPE, RETIRED_TYPE, artifact, artifact_with_layers, is_retired, version_tag,
};
use crate::registry::{Client, Deleted, OciError};

/// The tag of the manifest file `slot`: `tako-manifest` or `tako-manifest.<keyid>`.
pub fn manifest_tag(slot: &Slot) -> String {
    slot.name(MANIFEST_TAG)
}

/// An error about the registry object `what`, for a reason the registry cannot be trusted on.
fn invalid(client: &Client, what: &str, reason: ArtifactError) -> OciError {
    OciError::Invalid {
        what: what.to_string(),
        registry: client.reference.registry.clone(),
        reason: reason.to_string(),
    }
}

/// The single layer of an artifact manifest of `artifact_type`.
pub fn single_layer(
    client: &Client,
    what: &str,
    bytes: &[u8],
    artifact_type: &str,
) -> Result<Descriptor, OciError> {
    tako_artifact::single_layer(bytes, artifact_type).map_err(|e| invalid(client, what, e))
}

/// The chunk-index layer of the version artifact `bytes`, if it is the artifact of the
/// image `sha256:<hex>` and has one (see `tako_artifact::index_layer`).
pub fn index_layer(
    client: &Client,
    what: &str,
    bytes: &[u8],
    hex: &str,
) -> Result<Option<Descriptor>, OciError> {
    tako_artifact::index_layer(bytes, hex).map_err(|e| invalid(client, what, e))
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
) -> Result<String, OriginError> {
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
) -> Result<String, OriginError> {
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
) -> Result<Retired, OriginError> {
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
            digest: Digest::of(EMPTY_CONFIG).to_string(),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        key_annotations(slot),
    );
    put_checked(client, &tag, &marker, Some(previous))?;
    Ok(Retired::Marked)
}

fn concurrent(client: &Client, tag: &str) -> OriginError {
    OriginError::Changed {
        location: format!("{}:{tag}", client.reference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
