//! Media types of container images (OCI image-spec and Docker's schema 2), and what a layer's
//! media type says about how to read it.

use crate::format::text::untrusted;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a list of manifests, one per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI 1.1 empty descriptor (`{}`), the config of artifacts.
#[allow(dead_code)] // Named for the tests and the artifact work to come.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI layers: uncompressed, gzip and zstd tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layers (deprecated in image-spec 1.1): served from elsewhere,
/// often under a licence that forbids redistribution.
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Encrypted layers (ocicrypt) end in this suffix.
pub const ENCRYPTED_SUFFIX: &str = "+encrypted";
// The full names, for the tests: the code tests the suffix.
#[allow(dead_code)]
pub const OCI_LAYER_TAR_ENCRYPTED: &str = "application/vnd.oci.image.layer.v1.tar+encrypted";
#[allow(dead_code)]
pub const OCI_LAYER_TAR_GZIP_ENCRYPTED: &str =
    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
#[allow(dead_code)]
pub const OCI_LAYER_TAR_ZSTD_ENCRYPTED: &str =
    "application/vnd.oci.image.layer.v1.tar+zstd+encrypted";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (one manifest per platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker container config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layers: gzip tar, and the rarely seen uncompressed tar.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign layers (Windows base layers), served from elsewhere.
pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker schema 1, unsigned and signed: deprecated, with no config and no diff_ids.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for a manifest request: all four kinds tako reads. A registry asked
/// only for OCI types may down-convert a Docker image to a freshly signed schema 1, whose
/// digest matches nothing the publisher pushed.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// The four manifest kinds tako reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl ManifestKind {
    /// The kind a media type names; `None` for anything else (schema 1 included).
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        match media_type {
            OCI_MANIFEST => Some(ManifestKind::OciManifest),
            OCI_INDEX => Some(ManifestKind::OciIndex),
            DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerList),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::DockerList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this kind lists other manifests (an index or manifest list).
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerList)
    }
}

/// Whether a media type is Docker's schema 1 (signed or not).
pub fn is_schema1(media_type: &str) -> bool {
    matches!(media_type, DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    /// Also `zstd:chunked` layers, which are plain zstd frames read to their end.
    Zstd,
}

/// Why a layer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerTypeError {
    #[error(
        "layer of type {0} is encrypted: tako does not decrypt images (use skopeo with --decryption-key)"
    )]
    Encrypted(String),
    #[error(
        "layer of type {0} is foreign (non-distributable): the registry does not serve it and tako does not fetch layers from elsewhere"
    )]
    Foreign(String),
    #[error(
        "{0} is a Docker schema 1 manifest type, not a layer: schema 1 images are deprecated and not supported"
    )]
    Schema1(String),
    #[error("layer of unknown media type '{0}' (not a tar, tar+gzip or tar+zstd layer)")]
    Unknown(String),
}

impl LayerCompression {
    /// How a layer of `media_type` is read, or why it cannot be.
    pub fn from_media_type(media_type: &str) -> Result<LayerCompression, LayerTypeError> {
        match media_type {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Ok(LayerCompression::None),
            OCI_LAYER_TAR_GZIP | DOCKER_LAYER_TAR_GZIP => Ok(LayerCompression::Gzip),
            OCI_LAYER_TAR_ZSTD => Ok(LayerCompression::Zstd),
            OCI_LAYER_NONDISTRIBUTABLE_TAR
            | OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD
            | DOCKER_FOREIGN_LAYER_TAR
            | DOCKER_FOREIGN_LAYER_TAR_GZIP => Err(LayerTypeError::Foreign(media_type.to_string())),
            t if is_schema1(t) => Err(LayerTypeError::Schema1(t.to_string())),
            t if t.ends_with(ENCRYPTED_SUFFIX) => Err(LayerTypeError::Encrypted(untrusted(t))),
            t => Err(LayerTypeError::Unknown(untrusted(t))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_readable_layer_type_names_its_compression() {
        for (media_type, compression) in [
            (OCI_LAYER_TAR, LayerCompression::None),
            (DOCKER_LAYER_TAR, LayerCompression::None),
            (OCI_LAYER_TAR_GZIP, LayerCompression::Gzip),
            (DOCKER_LAYER_TAR_GZIP, LayerCompression::Gzip),
            (OCI_LAYER_TAR_ZSTD, LayerCompression::Zstd),
        ] {
            assert_eq!(
                LayerCompression::from_media_type(media_type),
                Ok(compression),
                "{media_type}"
            );
        }
    }

    #[test]
    fn foreign_and_nondistributable_layers_are_refused_as_such() {
        for media_type in [
            OCI_LAYER_NONDISTRIBUTABLE_TAR,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD,
            DOCKER_FOREIGN_LAYER_TAR,
            DOCKER_FOREIGN_LAYER_TAR_GZIP,
        ] {
            let e = LayerCompression::from_media_type(media_type).unwrap_err();
            assert!(matches!(e, LayerTypeError::Foreign(_)), "{media_type}");
            assert!(e.to_string().contains("non-distributable"), "{e}");
        }
    }

    #[test]
    fn encrypted_layers_are_refused_as_such() {
        for media_type in [
            OCI_LAYER_TAR_ENCRYPTED,
            OCI_LAYER_TAR_GZIP_ENCRYPTED,
            OCI_LAYER_TAR_ZSTD_ENCRYPTED,
        ] {
            let e = LayerCompression::from_media_type(media_type).unwrap_err();
            assert!(matches!(e, LayerTypeError::Encrypted(_)), "{media_type}");
            assert!(e.to_string().contains("encrypted"), "{e}");
        }
    }

    #[test]
    fn schema1_and_unknown_types_are_refused_with_the_type_escaped() {
        assert!(matches!(
            LayerCompression::from_media_type(DOCKER_SCHEMA1_SIGNED),
            Err(LayerTypeError::Schema1(_))
        ));
        let e = LayerCompression::from_media_type("application/x-evil\u{1b}[2J").unwrap_err();
        assert!(matches!(e, LayerTypeError::Unknown(_)));
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        // Media types are compared exactly, as the spec says.
        assert!(LayerCompression::from_media_type(&OCI_LAYER_TAR_GZIP.to_uppercase()).is_err());
    }

    #[test]
    fn accept_names_the_four_manifest_kinds_and_nothing_else() {
        let named: Vec<&str> = ACCEPT.split(", ").collect();
        assert_eq!(
            named,
            [
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_MANIFEST,
                DOCKER_MANIFEST_LIST
            ]
        );
        for media_type in named {
            let kind = ManifestKind::from_media_type(media_type).unwrap();
            assert_eq!(kind.media_type(), media_type);
        }
        assert!(ManifestKind::OciIndex.is_index() && ManifestKind::DockerList.is_index());
        assert!(!ManifestKind::OciManifest.is_index());
        assert_eq!(ManifestKind::from_media_type(DOCKER_SCHEMA1), None);
        assert!(is_schema1(DOCKER_SCHEMA1) && is_schema1(DOCKER_SCHEMA1_SIGNED));
    }
}
