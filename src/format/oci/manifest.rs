//! Image manifests and indexes (OCI image-spec 1.1 and Docker schema 2), read with caps.
//!
//! [`parse`] decides what a manifest is from its own `mediaType` (the bytes a digest or
//! signature pins), falling back to the `Content-Type` the server sent and then to its shape,
//! and refuses Docker schema 1. Fields tako does not use are ignored; every size a later
//! download trusts is bounded here, so a hostile manifest cannot name a 10k-layer image, a
//! multi-terabyte layer or a config bigger than tako will read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::media::{self, LayerCompression, LayerTypeError, ManifestKind};
use crate::format::text::untrusted;

/// The most bytes of a manifest or index read (as the distribution spec suggests).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// The most layers an image manifest may name (Docker's own limit is 127 for a build).
pub const MAX_LAYERS: usize = 1000;
/// The most entries an index may list.
pub const MAX_INDEX_ENTRIES: usize = 1000;
/// The largest image config read.
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;
/// The largest blob a descriptor may name: 1 TiB, far above any real layer and far below
/// where a sum of sizes could overflow.
pub const MAX_BLOB_SIZE: u64 = 1 << 40;

/// Why a manifest or index was refused. Messages describe the manifest; the caller names
/// the image it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is {size} bytes, more than the {max} tako reads")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "the manifest is Docker schema 1 ({0}), deprecated and not supported: push the image again with a current docker, podman or skopeo"
    )]
    Schema1(String),
    #[error("unsupported manifest media type '{0}'")]
    MediaType(String),
    #[error(
        "the manifest names no media type and has neither 'manifests' nor 'config' and 'layers': not an image manifest or index"
    )]
    Unrecognised,
    #[error("schemaVersion {0} is not 2")]
    SchemaVersion(i64),
    #[error("not a valid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("the manifest names {count} layers; at most {max} are accepted")]
    TooManyLayers { count: usize, max: usize },
    #[error("the index lists {count} manifests; at most {max} are accepted")]
    TooManyEntries { count: usize, max: usize },
    #[error("{what} {digest} is {size} bytes, more than the {max} accepted")]
    BlobTooLarge {
        what: &'static str,
        digest: Digest,
        size: u64,
        max: u64,
    },
    #[error("{0} is an index, not an image manifest: choose a platform first")]
    NotAnImage(&'static str),
    #[error(
        "layer {index} ({digest}) of a Docker manifest has the unknown media type '{media_type}'"
    )]
    DockerLayerType {
        index: usize,
        digest: Digest,
        media_type: String,
    },
    #[error("the image is an artifact of type '{0}', not a container image")]
    NotAContainerImage(String),
    #[error("layer {index} ({digest}): {source}")]
    Layer {
        index: usize,
        digest: Digest,
        source: LayerTypeError,
    },
    #[error(
        "entry {digest} of the index has the media type '{media_type}', which is not a manifest or index tako can copy"
    )]
    EntryType { digest: Digest, media_type: String },
}

/// The platform an index entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSpec {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor. Field order is the image-spec's, so a manifest written from these
/// types reads as other tools write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    #[serde(deserialize_with = "size")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The annotation `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest that passed [`parse`], with the kind it was read as.
// One value per manifest read and moved out at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedManifest {
    Image {
        kind: ManifestKind,
        manifest: ImageManifest,
    },
    Index {
        kind: ManifestKind,
        index: ImageIndex,
    },
}

impl ParsedManifest {
    pub fn kind(&self) -> ManifestKind {
        match self {
            ParsedManifest::Image { kind, .. } | ParsedManifest::Index { kind, .. } => *kind,
        }
    }

    /// Everything this manifest pins by digest, in its own order: an index's entries (each
    /// a manifest or index of the kind its media type names, attestations included, since
    /// the index's digest pins them too), or an image's config and then its layers. A
    /// `subject` is not pinned: it names another image this one refers to, not a part of
    /// it. Sizes were bounded when the manifest was parsed (see [`parse`]).
    pub fn pinned(&self) -> Result<Vec<Pinned<'_>>, ManifestError> {
        match self {
            ParsedManifest::Index { index, .. } => index
                .manifests
                .iter()
                .map(
                    |entry| match ManifestKind::from_media_type(&entry.media_type) {
                        Some(kind) => Ok(Pinned::Manifest(kind, entry)),
                        None => Err(ManifestError::EntryType {
                            digest: entry.digest,
                            media_type: untrusted(&entry.media_type),
                        }),
                    },
                )
                .collect(),
            ParsedManifest::Image { manifest, .. } => Ok(std::iter::once(&manifest.config)
                .chain(&manifest.layers)
                .map(Pinned::Blob)
                .collect()),
        }
    }
}

/// One thing a manifest pins (see [`ParsedManifest::pinned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned<'a> {
    /// A manifest or index, to be read (at most [`MAX_MANIFEST_SIZE`] bytes) for what it
    /// pins in turn.
    Manifest(ManifestKind, &'a Descriptor),
    /// A config or layer blob.
    Blob(&'a Descriptor),
}

/// Reads a size that must be a non-negative integer no larger than [`MAX_BLOB_SIZE`], with
/// a message that says which of these it is not.
fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size in bytes")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            if v > MAX_BLOB_SIZE {
                return Err(E::custom(format_args!(
                    "size {v} is more than the {MAX_BLOB_SIZE} bytes accepted"
                )));
            }
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format_args!("size {v} is negative"))),
            }
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // serde_json reads integers beyond u64 as floats too.
            Err(if v < 0.0 {
                E::custom(format_args!("size {v} is negative"))
            } else if v.fract() == 0.0 {
                E::custom(format_args!(
                    "size {v} is more than the {MAX_BLOB_SIZE} bytes accepted"
                ))
            } else {
                E::custom(format_args!("size {v} is not a whole number"))
            })
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// Just enough of a manifest to tell what it is.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    layers: Option<serde::de::IgnoredAny>,
}

/// A serde error as a reason: its text can quote the input, so it is escaped.
fn invalid(what: &'static str, e: &serde_json::Error) -> ManifestError {
    ManifestError::Invalid {
        what,
        reason: untrusted(&e.to_string()),
    }
}

/// Whether `bytes` hold a JSON object (rather than something serde would also read into a
/// struct, such as an array of its fields).
pub(crate) fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The media type named by a `Content-Type` value, without parameters.
fn content_type_essence(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// Reads a manifest or index. `content_type` is the `Content-Type` the server sent, if any:
/// it is only consulted when the body names no `mediaType` (the body is what a digest pins).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ManifestError> {
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge {
            size: bytes.len() as u64,
            max: MAX_MANIFEST_SIZE,
        });
    }
    if !is_json_object(bytes) {
        return Err(ManifestError::Invalid {
            what: "manifest",
            reason: "it is not a JSON object".to_string(),
        });
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid("manifest (JSON object)", &e))?;
    let header = content_type.map(content_type_essence);
    if let Some(t) = probe
        .media_type
        .as_deref()
        .or(header)
        .filter(|t| media::is_schema1(t))
    {
        return Err(ManifestError::Schema1(t.to_string()));
    }
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1("schemaVersion 1".to_string()));
    }
    let kind = if let Some(body) = &probe.media_type {
        ManifestKind::from_media_type(body)
            .ok_or_else(|| ManifestError::MediaType(untrusted(body)))?
    } else if let Some(kind) = header.and_then(ManifestKind::from_media_type) {
        kind
    } else if probe.manifests.is_some() {
        // An OCI manifest may omit its media type (image-spec 1.0 made it optional); its
        // shape then says what it is, as other tools guess it.
        ManifestKind::OciIndex
    } else if probe.config.is_some() && probe.layers.is_some() {
        ManifestKind::OciManifest
    } else {
        return Err(ManifestError::Unrecognised);
    };
    if kind.is_index() {
        let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| {
            invalid(
                if kind == ManifestKind::DockerList {
                    "Docker manifest list"
                } else {
                    "OCI image index"
                },
                &e,
            )
        })?;
        check_index(&index)?;
        Ok(ParsedManifest::Index { kind, index })
    } else {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
            invalid(
                if kind == ManifestKind::DockerManifest {
                    "Docker image manifest"
                } else {
                    "OCI image manifest"
                },
                &e,
            )
        })?;
        check_image(&manifest)?;
        Ok(ParsedManifest::Image { kind, manifest })
    }
}

fn check_index(index: &ImageIndex) -> Result<(), ManifestError> {
    if index.schema_version != 2 {
        return Err(ManifestError::SchemaVersion(index.schema_version));
    }
    if index.manifests.len() > MAX_INDEX_ENTRIES {
        return Err(ManifestError::TooManyEntries {
            count: index.manifests.len(),
            max: MAX_INDEX_ENTRIES,
        });
    }
    for entry in &index.manifests {
        // An entry tako may fetch is read with the manifest cap; saying so here lets the
        // download refuse a larger one before reading it.
        if ManifestKind::from_media_type(&entry.media_type).is_some()
            && entry.size > MAX_MANIFEST_SIZE
        {
            return Err(ManifestError::BlobTooLarge {
                what: "manifest",
                digest: entry.digest,
                size: entry.size,
                max: MAX_MANIFEST_SIZE,
            });
        }
    }
    Ok(())
}

fn check_image(manifest: &ImageManifest) -> Result<(), ManifestError> {
    if manifest.schema_version != 2 {
        return Err(ManifestError::SchemaVersion(manifest.schema_version));
    }
    if manifest.layers.len() > MAX_LAYERS {
        return Err(ManifestError::TooManyLayers {
            count: manifest.layers.len(),
            max: MAX_LAYERS,
        });
    }
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(ManifestError::BlobTooLarge {
            what: "config",
            digest: manifest.config.digest,
            size: manifest.config.size,
            max: MAX_CONFIG_SIZE,
        });
    }
    Ok(())
}

impl ImageManifest {
    /// Checks that this is a container image tako can unpack: an image config and only
    /// layers it can read. Returns each layer's compression, in order.
    pub fn layer_compressions(&self) -> Result<Vec<LayerCompression>, ManifestError> {
        if !matches!(
            self.config.media_type.as_str(),
            media::OCI_CONFIG | media::DOCKER_CONFIG
        ) {
            let kind = self
                .artifact_type
                .as_deref()
                .unwrap_or(&self.config.media_type);
            return Err(ManifestError::NotAContainerImage(untrusted(kind)));
        }
        self.layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                LayerCompression::from_media_type(&layer.media_type).map_err(|source| {
                    ManifestError::Layer {
                        index,
                        digest: layer.digest,
                        source,
                    }
                })
            })
            .collect()
    }

    /// The compressed size of all layers (each is at most [`MAX_BLOB_SIZE`], so this cannot
    /// overflow; it saturates all the same).
    #[allow(dead_code)] // For a size check before a pull; unused so far.
    pub fn layers_size(&self) -> u64 {
        self.layers
            .iter()
            .fold(0u64, |sum, layer| sum.saturating_add(layer.size))
    }
}

/// An OCI layer media type for a Docker one, as containers/image converts them.
fn oci_layer_type(docker: &str) -> Option<&'static str> {
    match docker {
        media::DOCKER_LAYER_TAR_GZIP => Some(media::OCI_LAYER_TAR_GZIP),
        media::DOCKER_LAYER_TAR => Some(media::OCI_LAYER_TAR),
        media::DOCKER_FOREIGN_LAYER_TAR_GZIP => Some(media::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP),
        media::DOCKER_FOREIGN_LAYER_TAR => Some(media::OCI_LAYER_NONDISTRIBUTABLE_TAR),
        _ => None,
    }
}

/// An image manifest as OCI: an OCI manifest is returned byte for byte; a Docker schema 2
/// manifest becomes an OCI manifest naming the same config and layers, with media types
/// mapped (config to [`media::OCI_CONFIG`], `diff.tar.gzip` to `tar+gzip`, `diff.tar` to
/// `tar`, foreign layers to non-distributable ones; `urls` kept). An index is refused.
///
/// Unlike skopeo, which names a config it re-serialised in memory, the config descriptor
/// keeps the digest and size of the config blob the registry holds, so every descriptor of
/// the result can be fetched. Use [`to_oci_with_config`] to name another config.
pub fn to_oci(bytes: &[u8]) -> Result<Vec<u8>, ManifestError> {
    to_oci_with_config(bytes, None)
}

/// As [`to_oci`], with the config descriptor of a Docker manifest replaced by `config`
/// (for a server that hands out a converted config, as skopeo's image proxy does).
pub fn to_oci_with_config(
    bytes: &[u8],
    config: Option<Descriptor>,
) -> Result<Vec<u8>, ManifestError> {
    match parse(bytes, None)? {
        ParsedManifest::Index { kind, .. } => Err(ManifestError::NotAnImage(kind.media_type())),
        ParsedManifest::Image {
            kind: ManifestKind::DockerManifest,
            manifest,
        } => {
            let mut layers = Vec::with_capacity(manifest.layers.len());
            for (index, layer) in manifest.layers.into_iter().enumerate() {
                let media_type = oci_layer_type(&layer.media_type).ok_or_else(|| {
                    ManifestError::DockerLayerType {
                        index,
                        digest: layer.digest,
                        media_type: untrusted(&layer.media_type),
                    }
                })?;
                layers.push(Descriptor {
                    media_type: media_type.to_string(),
                    digest: layer.digest,
                    size: layer.size,
                    urls: layer.urls,
                    annotations: None,
                    platform: None,
                    artifact_type: None,
                });
            }
            let config = config.unwrap_or(Descriptor {
                media_type: media::OCI_CONFIG.to_string(),
                digest: manifest.config.digest,
                size: manifest.config.size,
                urls: None,
                annotations: None,
                platform: None,
                artifact_type: None,
            });
            let oci = ImageManifest {
                schema_version: 2,
                media_type: Some(media::OCI_MANIFEST.to_string()),
                artifact_type: None,
                config,
                layers,
                subject: None,
                annotations: None,
            };
            serde_json::to_vec(&oci).map_err(|e| invalid("converted manifest", &e))
        }
        ParsedManifest::Image { .. } => Ok(bytes.to_vec()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn hex_of(byte: u8) -> String {
        Digest::from([byte; 32]).to_string()
    }

    pub fn descriptor_json(media_type: &str, byte: u8, size: u64) -> String {
        format!(
            r#"{{"mediaType":"{media_type}","digest":"{}","size":{size}}}"#,
            hex_of(byte)
        )
    }

    pub fn docker_manifest(layers: usize) -> String {
        let layers: Vec<String> = (0..layers)
            .map(|i| descriptor_json(media::DOCKER_LAYER_TAR_GZIP, i as u8, 100 + i as u64))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            media::DOCKER_MANIFEST,
            descriptor_json(media::DOCKER_CONFIG, 0xcc, 1469),
            layers.join(",")
        )
    }

    pub fn oci_manifest(layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}],"annotations":{{"a":"b"}}}}"#,
            media::OCI_MANIFEST,
            descriptor_json(media::OCI_CONFIG, 0xcc, 1469),
            descriptor_json(layer_type, 1, 5000),
        )
    }

    fn image(bytes: &str) -> (ManifestKind, ImageManifest) {
        match parse(bytes.as_bytes(), None).unwrap() {
            ParsedManifest::Image { kind, manifest } => (kind, manifest),
            other => panic!("not an image: {other:?}"),
        }
    }

    #[test]
    fn an_image_pins_its_config_then_its_layers() {
        let parsed = parse(docker_manifest(2).as_bytes(), None).unwrap();
        let pinned: Vec<String> = parsed
            .pinned()
            .unwrap()
            .iter()
            .map(|p| match p {
                Pinned::Blob(d) => d.digest.to_string(),
                Pinned::Manifest(..) => panic!("an image pins no manifest: {p:?}"),
            })
            .collect();
        assert_eq!(pinned, [hex_of(0xcc), hex_of(0), hex_of(1)]);
    }

    #[test]
    fn an_index_pins_every_entry_attestations_included_and_refuses_an_unknown_entry_type() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{},{}]}}"#,
            media::OCI_INDEX,
            descriptor_json(media::OCI_MANIFEST, 1, 500),
            descriptor_json(media::DOCKER_MANIFEST_LIST, 2, 600).replace(
                "}",
                r#","annotations":{"vnd.docker.reference.type":"attestation-manifest"}}"#
            ),
            descriptor_json(media::OCI_INDEX, 3, 700),
        );
        let parsed = parse(index.as_bytes(), None).unwrap();
        let pinned = parsed.pinned().unwrap();
        let kinds: Vec<(ManifestKind, String, u64)> = pinned
            .iter()
            .map(|p| match p {
                Pinned::Manifest(kind, d) => (*kind, d.digest.to_string(), d.size),
                Pinned::Blob(_) => panic!("an index pins no blob: {p:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (ManifestKind::OciManifest, hex_of(1), 500),
                (ManifestKind::DockerList, hex_of(2), 600),
                (ManifestKind::OciIndex, hex_of(3), 700),
            ]
        );
        let odd = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            media::OCI_INDEX,
            descriptor_json("application/x-\\u001b[2Jodd", 4, 10),
        );
        let e = parse(odd.as_bytes(), None).unwrap().pinned().unwrap_err();
        assert!(matches!(e, ManifestError::EntryType { .. }), "{e}");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        assert!(e.to_string().contains(&hex_of(4)), "{e}");
    }

    #[test]
    fn an_oci_manifest_is_read_with_its_config_layers_and_annotations() {
        let (kind, manifest) = image(&oci_manifest(media::OCI_LAYER_TAR_ZSTD));
        assert_eq!(kind, ManifestKind::OciManifest);
        assert_eq!(manifest.config.digest.to_string(), hex_of(0xcc));
        assert_eq!(manifest.config.size, 1469);
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.layers[0].size, 5000);
        assert_eq!(manifest.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn a_docker_manifest_is_read_as_docker() {
        let (kind, manifest) = image(&docker_manifest(3));
        assert_eq!(kind, ManifestKind::DockerManifest);
        assert_eq!(manifest.layers.len(), 3);
        assert_eq!(manifest.layers_size(), 100 + 101 + 102);
        assert_eq!(
            manifest.layer_compressions().unwrap(),
            vec![LayerCompression::Gzip; 3]
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = oci_manifest(media::OCI_LAYER_TAR).replacen(
            "{",
            r#"{"futureField":{"nested":[1,2,3]},"data":"e30=","#,
            1,
        );
        image(&text);
    }

    #[test]
    fn an_index_is_read_with_its_platforms() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
                {{"mediaType":"{}","digest":"{}","size":500,
                  "platform":{{"architecture":"arm64","os":"linux","variant":"v8","os.features":["x"]}}}},
                {{"mediaType":"{}","digest":"{}","size":600,
                  "platform":{{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1"}}}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            hex_of(1),
            media::OCI_MANIFEST,
            hex_of(2)
        );
        let ParsedManifest::Index { kind, index } = parse(text.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(kind, ManifestKind::OciIndex);
        let platforms: Vec<&PlatformSpec> = index
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().unwrap())
            .collect();
        assert_eq!(platforms[0].variant.as_deref(), Some("v8"));
        assert_eq!(
            platforms[0].os_features.as_deref(),
            Some(&["x".to_string()][..])
        );
        assert_eq!(platforms[1].os_version.as_deref(), Some("10.0.17763.1"));
    }

    #[test]
    fn the_body_media_type_decides_over_the_content_type() {
        let (kind, _) = match parse(docker_manifest(1).as_bytes(), Some(media::OCI_INDEX)).unwrap()
        {
            ParsedManifest::Image { kind, manifest } => (kind, manifest),
            other => panic!("{other:?}"),
        };
        assert_eq!(kind, ManifestKind::DockerManifest);
    }

    #[test]
    fn without_a_body_media_type_the_content_type_and_then_the_shape_decide() {
        let bare_index = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            descriptor_json(media::DOCKER_MANIFEST, 1, 10)
        );
        let parsed = parse(
            bare_index.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(parsed.kind(), ManifestKind::DockerList);
        // A static file server's type says nothing; the shape does.
        let parsed = parse(bare_index.as_bytes(), Some("application/octet-stream")).unwrap();
        assert_eq!(parsed.kind(), ManifestKind::OciIndex);
        let bare_image = oci_manifest(media::OCI_LAYER_TAR)
            .replace(&format!(r#""mediaType":"{}","#, media::OCI_MANIFEST), "");
        assert_eq!(
            parse(bare_image.as_bytes(), None).unwrap().kind(),
            ManifestKind::OciManifest
        );
        assert_eq!(
            parse(br#"{"schemaVersion":2}"#, None),
            Err(ManifestError::Unrecognised)
        );
    }

    #[test]
    fn schema1_is_refused_whether_the_body_the_header_or_the_version_says_so() {
        let signed = br#"{"schemaVersion":1,"name":"library/debian","tag":"12","fsLayers":[],"signatures":[]}"#;
        let e = parse(signed, None).unwrap_err();
        assert!(matches!(e, ManifestError::Schema1(_)), "{e}");
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse(signed, Some(media::DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert_eq!(
            e,
            ManifestError::Schema1(media::DOCKER_SCHEMA1_SIGNED.to_string())
        );
        let body = format!(
            r#"{{"schemaVersion":1,"mediaType":"{}"}}"#,
            media::DOCKER_SCHEMA1
        );
        assert!(matches!(
            parse(body.as_bytes(), None),
            Err(ManifestError::Schema1(_))
        ));
    }

    #[test]
    fn a_manifest_naming_ten_thousand_layers_is_refused_with_the_count() {
        let e = parse(docker_manifest(10_000).as_bytes(), None).unwrap_err();
        assert_eq!(
            e,
            ManifestError::TooManyLayers {
                count: 10_000,
                max: MAX_LAYERS
            }
        );
        assert!(e.to_string().contains("10000 layers"), "{e}");
        image(&docker_manifest(MAX_LAYERS));
    }

    #[test]
    fn an_index_with_too_many_entries_is_refused() {
        let entries: Vec<String> = (0..=MAX_INDEX_ENTRIES)
            .map(|i| descriptor_json(media::OCI_MANIFEST, i as u8, 10))
            .collect();
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            media::OCI_INDEX,
            entries.join(",")
        );
        assert!(matches!(
            parse(text.as_bytes(), None),
            Err(ManifestError::TooManyEntries { count: 1001, .. })
        ));
    }

    #[test]
    fn a_manifest_larger_than_the_cap_is_refused_before_it_is_parsed() {
        let mut text = oci_manifest(media::OCI_LAYER_TAR).into_bytes();
        text.resize(MAX_MANIFEST_SIZE as usize + 1, b' ');
        assert!(matches!(
            parse(&text, None),
            Err(ManifestError::TooLarge { .. })
        ));
    }

    #[test]
    fn negative_huge_and_fractional_sizes_are_refused_by_what_is_wrong() {
        for (size, says) in [
            ("-1", "negative"),
            ("1099511627777", "more than"),
            ("18446744073709551616", "more than"),
            ("-0.5", "negative"),
            ("1.5", "whole number"),
            ("\"12\"", ""),
        ] {
            let text = oci_manifest(media::OCI_LAYER_TAR).replace("5000", size);
            let e = parse(text.as_bytes(), None).unwrap_err();
            assert!(matches!(e, ManifestError::Invalid { .. }), "{size}: {e}");
            assert!(e.to_string().contains(says), "{size}: {e}");
        }
    }

    #[test]
    fn a_config_or_index_entry_larger_than_tako_reads_is_refused() {
        let text = oci_manifest(media::OCI_LAYER_TAR).replace("1469", "8388609");
        assert!(matches!(
            parse(text.as_bytes(), None),
            Err(ManifestError::BlobTooLarge { what: "config", .. })
        ));
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            descriptor_json(media::OCI_MANIFEST, 1, MAX_MANIFEST_SIZE + 1)
        );
        assert!(matches!(
            parse(text.as_bytes(), None),
            Err(ManifestError::BlobTooLarge {
                what: "manifest",
                ..
            })
        ));
    }

    #[test]
    fn bad_digests_versions_and_media_types_are_refused() {
        let text = oci_manifest(media::OCI_LAYER_TAR).replace(&hex_of(1)[7..], "abc");
        let e = parse(text.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("3 hex digits"), "{e}");
        let text = oci_manifest(media::OCI_LAYER_TAR)
            .replace("\"schemaVersion\":2", "\"schemaVersion\":3");
        assert_eq!(
            parse(text.as_bytes(), None),
            Err(ManifestError::SchemaVersion(3))
        );
        let text = oci_manifest(media::OCI_LAYER_TAR).replace(
            media::OCI_MANIFEST,
            "application/vnd.oci.artifact.manifest.v1+json",
        );
        assert!(matches!(
            parse(text.as_bytes(), None),
            Err(ManifestError::MediaType(_))
        ));
        assert!(matches!(
            parse(b"[]", None),
            Err(ManifestError::Invalid { .. })
        ));
        let fields = format!(
            r#" [2, null, null, {}, []]"#,
            descriptor_json(media::OCI_CONFIG, 1, 2)
        );
        assert!(matches!(
            parse(fields.as_bytes(), Some(media::OCI_MANIFEST)),
            Err(ManifestError::Invalid { .. })
        ));
        assert!(matches!(
            parse(b"\xff", None),
            Err(ManifestError::Invalid { .. })
        ));
        // An index media type on a manifest's body is a broken index, not a guess.
        let text =
            oci_manifest(media::OCI_LAYER_TAR).replace(media::OCI_MANIFEST, media::OCI_INDEX);
        assert!(matches!(
            parse(text.as_bytes(), None),
            Err(ManifestError::Invalid {
                what: "OCI image index",
                ..
            })
        ));
    }

    #[test]
    fn errors_quoting_the_input_are_escaped() {
        let text =
            oci_manifest(media::OCI_LAYER_TAR).replace("\"size\":5000", "\"size\":\"\u{1b}[2J\"");
        let e = parse(text.as_bytes(), None).unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn artifacts_foreign_and_encrypted_layers_are_not_container_images() {
        let (_, manifest) = image(&oci_manifest(media::OCI_LAYER_TAR_GZIP_ENCRYPTED));
        let e = manifest.layer_compressions().unwrap_err();
        assert!(
            e.to_string().contains("layer 0") && e.to_string().contains("encrypted"),
            "{e}"
        );
        let (_, manifest) = image(&oci_manifest(media::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP));
        assert!(matches!(
            manifest.layer_compressions(),
            Err(ManifestError::Layer {
                source: LayerTypeError::Foreign(_),
                ..
            })
        ));
        let text = oci_manifest(media::OCI_LAYER_TAR).replace(
            media::OCI_CONFIG,
            "application/vnd.cncf.helm.config.v1+json",
        );
        let (_, manifest) = image(&text);
        assert_eq!(
            manifest.layer_compressions(),
            Err(ManifestError::NotAContainerImage(
                "application/vnd.cncf.helm.config.v1+json".to_string()
            ))
        );
    }

    #[test]
    fn a_docker_manifest_becomes_an_oci_manifest_naming_the_same_blobs() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{},{},{}]}}"#,
            media::DOCKER_MANIFEST,
            descriptor_json(media::DOCKER_CONFIG, 0xcc, 1469),
            descriptor_json(media::DOCKER_LAYER_TAR_GZIP, 1, 100),
            descriptor_json(media::DOCKER_LAYER_TAR, 2, 200),
            descriptor_json(media::DOCKER_FOREIGN_LAYER_TAR_GZIP, 3, 300)
                .replace("}", r#","urls":["https://example.com/layer"]}"#),
        );
        let oci = to_oci(docker.as_bytes()).unwrap();
        let expected = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{},{},{}]}}"#,
            media::OCI_MANIFEST,
            descriptor_json(media::OCI_CONFIG, 0xcc, 1469),
            descriptor_json(media::OCI_LAYER_TAR_GZIP, 1, 100),
            descriptor_json(media::OCI_LAYER_TAR, 2, 200),
            descriptor_json(media::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP, 3, 300)
                .replace("}", r#","urls":["https://example.com/layer"]}"#),
        );
        assert_eq!(String::from_utf8(oci.clone()).unwrap(), expected);
        // The result is itself a valid OCI manifest.
        let (kind, manifest) = image(&expected);
        assert_eq!(kind, ManifestKind::OciManifest);
        assert_eq!(manifest.layers.len(), 3);
    }

    #[test]
    fn an_oci_manifest_converts_to_itself_byte_for_byte() {
        let text = oci_manifest(media::OCI_LAYER_TAR_ZSTD).replace(",", ",\n  ");
        assert_eq!(to_oci(text.as_bytes()).unwrap(), text.as_bytes());
    }

    #[test]
    fn conversion_can_name_a_converted_config_and_refuses_indexes_and_unknown_layers() {
        let config = Descriptor {
            media_type: media::OCI_CONFIG.to_string(),
            digest: Digest::of(b"{}"),
            size: 2,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        };
        let oci = to_oci_with_config(docker_manifest(1).as_bytes(), Some(config.clone())).unwrap();
        let (_, manifest) = image(std::str::from_utf8(&oci).unwrap());
        assert_eq!(manifest.config, config);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media::DOCKER_MANIFEST_LIST
        );
        assert!(matches!(
            to_oci(index.as_bytes()),
            Err(ManifestError::NotAnImage(media::DOCKER_MANIFEST_LIST))
        ));
        let odd = docker_manifest(2).replacen(media::DOCKER_LAYER_TAR_GZIP, "application/x-odd", 1);
        let e = to_oci(odd.as_bytes()).unwrap_err();
        assert!(
            matches!(e, ManifestError::DockerLayerType { index: 0, .. }),
            "{e}"
        );
    }
}
