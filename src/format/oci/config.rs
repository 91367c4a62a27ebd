//! The image config: the platform an image is for, and the `diff_ids` each unpacked layer is
//! checked against. The runtime part (`config`: entrypoint, environment…) is kept as raw JSON
//! for whoever hands it on; the history is not read.

use super::digest::Digest;
use super::manifest::{ImageManifest, MAX_LAYERS};
use super::platform::Platform;
use crate::format::text::untrusted;

/// The largest config read (the same bound the manifest puts on its config descriptor).
pub const MAX_CONFIG_SIZE: u64 = super::manifest::MAX_CONFIG_SIZE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the image config is {size} bytes, more than the {max} tako reads")]
    TooLarge { size: u64, max: u64 },
    #[error("not a valid image config: {0}")]
    Invalid(String),
    #[error("the image config's rootfs type is '{0}', not 'layers'")]
    RootfsType(String),
    #[error("the image config lists {count} layer diff_ids; at most {max} are accepted")]
    TooManyDiffIds { count: usize, max: usize },
    #[error(
        "the image config lists {diff_ids} layer diff_ids but the manifest names {layers} layers"
    )]
    LayerCount { diff_ids: usize, layers: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// The parts of an image config tako uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub rootfs: RootFs,
    /// The runtime config (`Entrypoint`, `Env`, `User`…), as the image has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl ImageConfig {
    /// Reads a config blob (already checked against its digest by the caller).
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge {
                size: bytes.len() as u64,
                max: MAX_CONFIG_SIZE,
            });
        }
        if !super::manifest::is_json_object(bytes) {
            return Err(ConfigError::Invalid("it is not a JSON object".to_string()));
        }
        let config: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::Invalid(untrusted(&e.to_string())))?;
        if config.rootfs.kind != "layers" {
            return Err(ConfigError::RootfsType(untrusted(&config.rootfs.kind)));
        }
        if config.rootfs.diff_ids.len() > MAX_LAYERS {
            return Err(ConfigError::TooManyDiffIds {
                count: config.rootfs.diff_ids.len(),
                max: MAX_LAYERS,
            });
        }
        Ok(config)
    }

    /// The platform the config names, if it names an os and an architecture.
    pub fn platform(&self) -> Option<Platform> {
        Some(Platform {
            os: self.os.clone()?,
            architecture: self.architecture.clone()?,
            variant: self.variant.clone(),
        })
    }

    /// Checks that the config describes the manifest's layers: one diff_id per layer, so
    /// each unpacked layer has the digest it must have.
    pub fn check_layers(&self, manifest: &ImageManifest) -> Result<(), ConfigError> {
        let (diff_ids, layers) = (self.rootfs.diff_ids.len(), manifest.layers.len());
        if diff_ids != layers {
            return Err(ConfigError::LayerCount { diff_ids, layers });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::tests::{docker_manifest, hex_of};
    use crate::format::oci::manifest::{self, ParsedManifest};

    fn config_json(diff_ids: usize) -> String {
        let ids: Vec<String> = (0..diff_ids)
            .map(|i| format!("\"{}\"", hex_of(i as u8)))
            .collect();
        format!(
            r#"{{"created":"2024-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8",
               "config":{{"Entrypoint":["/bin/sh"],"Env":["PATH=/usr/bin"]}},
               "rootfs":{{"type":"layers","diff_ids":[{}]}},
               "history":[{{"created_by":"x","empty_layer":true}}]}}"#,
            ids.join(",")
        )
    }

    fn image(layers: usize) -> ImageManifest {
        match manifest::parse(docker_manifest(layers).as_bytes(), None).unwrap() {
            ParsedManifest::Image { manifest, .. } => manifest,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_config_gives_its_platform_diff_ids_and_runtime_config() {
        let config = ImageConfig::parse(config_json(2).as_bytes()).unwrap();
        assert_eq!(
            config.platform(),
            Some(Platform::new("linux", "arm64", Some("v8")))
        );
        assert_eq!(config.rootfs.diff_ids[1].to_string(), hex_of(1));
        assert_eq!(config.config.unwrap()["Entrypoint"][0], "/bin/sh");
    }

    #[test]
    fn a_config_without_os_or_architecture_names_no_platform() {
        let config = ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(config.platform(), None);
        assert_eq!(config.config, None);
    }

    #[test]
    fn the_config_must_list_one_diff_id_per_manifest_layer() {
        let config = ImageConfig::parse(config_json(2).as_bytes()).unwrap();
        config.check_layers(&image(2)).unwrap();
        let e = config.check_layers(&image(3)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::LayerCount {
                diff_ids: 2,
                layers: 3
            }
        );
        assert!(e.to_string().contains("2 layer diff_ids") && e.to_string().contains("3 layers"));
    }

    #[test]
    fn oversized_configs_and_too_many_diff_ids_are_refused() {
        let mut big = config_json(1).into_bytes();
        big.resize(MAX_CONFIG_SIZE as usize + 1, b' ');
        assert!(matches!(
            ImageConfig::parse(&big),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            ImageConfig::parse(config_json(MAX_LAYERS + 1).as_bytes()),
            Err(ConfigError::TooManyDiffIds { count: 1001, .. })
        ));
    }

    #[test]
    fn malformed_configs_are_refused_with_escaped_reasons() {
        let e =
            ImageConfig::parse(br#"{"rootfs":{"type":"\u001b[2J","diff_ids":[]}}"#).unwrap_err();
        assert!(matches!(e, ConfigError::RootfsType(_)));
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        for bad in [
            &br#"{"os":"linux"}"#[..],
            br#"{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}"#,
            br#"{"rootfs":{"type":"layers","diff_ids":[1]}}"#,
            b"[]",
            b"",
        ] {
            assert!(
                matches!(ImageConfig::parse(bad), Err(ConfigError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
