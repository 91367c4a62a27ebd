//! A registry repository as an [`Origin`] for `tako fetch` (docs/registries.md).
//!
//! The signed manifest is the single layer of the `tako-manifest` artifact (and during a key
//! rotation, of `tako-manifest.<keyid>` for a key's own), read through the registry client
//! with its digest checked; the tag of a retired key is gone, as a removed file is. The image is the blob `sha256:<hex>`,
//! streamed through the [`Transport`] like a web origin's `store/<hex>`, so that resume,
//! retries, `--limit-rate` and `--max-time` work the same. The registry's `Authorization`
//! (Basic, or a Bearer token from its token service) is handed to that transport scoped
//! to the registry's own scheme, host and port: a redirect to storage never carries it.
//!
//! Deltas: the chunk index is the second layer of the version's artifact, found through
//! the version's tag (`layout::index_layer`); ranges of the image are requested exactly as
//! the image is, so they get the same `Authorization` scoping and redirect rules.
//!
//! Conditional polls: the validator of the signed manifest is the digest of the
//! manifest artifact that holds it. The artifact names its layer by digest, so the
//! same artifact digest means the same signed bytes; a poll then reads the small artifact
//! and not the layer.

use super::registry_layout as layout;
use super::{Body, ManifestFile, ManifestName, Origin, OriginError, Resume, Validators};
use crate::format::manifest::Entry;
use crate::format::transport_config::TransportConfig;
use crate::net::{self, Conditions, Transport, TransportError};

/// What a registry connection trusts and presents beyond the defaults (`--cert-dir`).
pub use crate::net::RegistryTls;
/// Why `--cert-dir` could not be read.
pub use crate::net::TransportError as CertDirError;
/// Whether a registry host answers TLS at all, for an endpoint that may be insecure.
pub use crate::net::speaks_tls;
use crate::registry::{Client, OciError};

pub struct Registry {
    client: Client,
    transport: Transport,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("reference", &self.client.reference)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The repository `url` (`oci://…` or `oci+http://…`), with credentials from the usual
    /// auth files; images come through `transport`.
    pub fn new(url: &str, transport: Transport) -> Result<Registry, OciError> {
        let reference = crate::registry::Reference::parse(url)?;
        // The registry's own requests (manifests, tokens, the index) take the same road as
        // the image: proxies, limits and TLS setup of `transport`.
        let client = Client::new(reference, false).with_transport(transport.clone());
        Ok(Registry { client, transport })
    }

    /// A repository reached through `client` (whatever its credentials), on a transport
    /// with `limits` whose requests all end by `max_time` from now: for container images,
    /// whose repository is not a tako origin. `tls` adds trusted CAs and a client
    /// certificate; with `verify` false no certificate is checked (see
    /// [`Transport::for_registry`]).
    pub fn for_image(
        client: Client,
        limits: TransportConfig,
        max_time: Option<std::time::Duration>,
        tls: &RegistryTls,
        verify: bool,
    ) -> Registry {
        let transport = Transport::new(limits)
            .for_registry(tls, verify)
            .with_max_time(max_time);
        let client = client.with_transport(transport.clone());
        Registry { client, transport }
    }

    /// The registry client, for the manifests and small blobs read through it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the blob through the transport with the `Authorization` the registry accepted
    /// last, if any.
    fn open_blob(&self, url: &str, conditions: &Conditions) -> Result<net::Body, TransportError> {
        let credentials = self
            .client
            .authorization()
            .and_then(|value| net::Credentials::authorization(url, &value));
        self.transport
            .with_credentials(credentials)
            .open_with(url, conditions)
    }

    /// Opens the image blob `sha256:<hex>` with `conditions` (a resume or a delta's range),
    /// through the transport: the registry's `Authorization` scoped to its own host, its
    /// redirects to storage followed as a web origin's.
    fn open_image_with(
        &self,
        hex: &str,
        conditions: &Conditions,
    ) -> Result<net::Body, OriginError> {
        let digest = format!("sha256:{hex}");
        let url = self.client.blob_url(&digest);
        match self.open_blob(&url, conditions) {
            // No token yet, or it expired: the client answers the challenge (on a HEAD of
            // the blob) and the download is tried once more with what it got.
            Err(TransportError::Status { status: 401, .. }) => {
                if !self.client.has_blob(&digest)? {
                    return Err(TransportError::NotFound { url }.into());
                }
                Ok(self.open_blob(&url, conditions)?)
            }
            answer => Ok(answer?),
        }
    }
}

impl Origin for Registry {
    fn describe(&self) -> String {
        self.client.reference.to_string()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        let tag = layout::manifest_tag(&name.slot());
        let url = format!("{}:{tag}", self.client.reference);
        let Some(fetched) = self.client.manifest(&tag)? else {
            return Err(OriginError::NotFound { url });
        };
        if layout::is_retired(&fetched.bytes) {
            return Err(OriginError::Retired { url });
        }
        let validators = Validators {
            url: url.clone(),
            etag: Some(fetched.digest.clone()),
            last_modified: None,
        };
        let unchanged = known.is_some_and(|k| k.url == url && k.etag == validators.etag);
        let bytes = if unchanged {
            None
        } else {
            Some(layout::signed_manifest_of(
                &self.client,
                &tag,
                &fetched,
                max,
            )?)
        };
        Ok(ManifestFile {
            url,
            bytes,
            validators: Some(validators),
        })
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        let conditions = match resume {
            Some(resume) => Conditions {
                range_from: Some(resume.offset),
                if_range: resume.if_range.clone(),
                ..Conditions::default()
            },
            None => Conditions::default(),
        };
        Ok(self.open_image_with(hex, &conditions)?.into())
    }

    fn image_manifest(&self, hex: &str, max: u64) -> Result<Vec<u8>, OriginError> {
        let digest = format!("sha256:{hex}");
        match self.client.image_manifest(&digest, max)? {
            Some(served) => Ok(served.bytes),
            None => Err(OriginError::NotFound {
                url: format!("{}@{digest}", self.client.reference),
            }),
        }
    }

    fn chunk_index(&self, entry: &Entry, max: u64) -> Result<Option<Vec<u8>>, OriginError> {
        let hex = entry.digest_hex();
        // The tag `tako store` gave this version; the artifact it names must be that of
        // this very image (a tag can be moved by anyone who may push).
        let tag = layout::version_tag(entry.version.as_str(), &hex);
        let Some(fetched) = self.client.manifest(&tag)? else {
            return Ok(None);
        };
        let what = format!("manifest {}:{tag}", self.client.reference);
        let Some(layer) = layout::index_layer(&self.client, &what, &fetched.bytes, &hex)? else {
            return Ok(None);
        };
        // Refused before reading when the artifact says it is larger than any index of an
        // image this size can be; the bytes read are capped and checked against the digest.
        if layer.size > max {
            return Err(OciError::TooLarge {
                what: format!("chunk index {} of {}", layer.digest, self.client.reference),
                registry: self.client.reference.registry.clone(),
                max,
            }
            .into());
        }
        Ok(Some(self.client.read_blob(&layer.digest, max)?))
    }

    fn open_range(&self, hex: &str, start: u64, end: u64) -> Result<Option<Body>, OriginError> {
        let body = self.open_image_with(hex, &super::range_conditions(start, end))?;
        super::exact_range(body, start, "blob", "registry")
    }

    fn places(&self) -> Vec<&dyn Origin> {
        vec![self]
    }
}
