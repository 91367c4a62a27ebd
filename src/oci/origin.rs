//! A registry repository as an [`Origin`] for `tako fetch` (docs/registries.md).
//!
//! The signed manifest is the single layer of the `tako-manifest` artifact, read through
//! the registry client with its digest checked; the image is the blob `sha256:<hex>`,
//! streamed through the [`Transport`] like a web origin's `store/<hex>`, so that resume,
//! retries, `--limit-rate` and `--max-time` work the same. The registry's `Authorization`
//! (Basic, or a Bearer token from its token service) is handed to that transport scoped
//! to the registry's own scheme, host and port: a redirect to storage never carries it.

use super::{Client, OciError, layout};
use crate::origin::{ManifestFile, ManifestName, Origin, Resume};
use crate::transport::{self, Body, Conditions, Transport, TransportError};

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
    pub fn new(url: &str, transport: Transport) -> Result<Registry, TransportError> {
        let reference = super::Reference::parse(url).map_err(registry_error)?;
        let client = Client::new(reference, false).map_err(registry_error)?;
        Ok(Registry { client, transport })
    }
}

fn registry_error(e: OciError) -> TransportError {
    TransportError::Registry(Box::new(e))
}

impl Origin for Registry {
    fn describe(&self) -> String {
        self.client.reference.to_string()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        _known: Option<&crate::origin::Validators>,
    ) -> Result<ManifestFile, TransportError> {
        let url = format!("{}:{}", self.client.reference, layout::MANIFEST_TAG);
        // A registry holds one signed manifest; `manifest.<keyid>` files of a key rotation
        // have no place in it (yet), so they are simply not there.
        if let ManifestName::ForKey(_) = name {
            return Err(TransportError::NotFound { url });
        }
        match layout::read_manifest_capped(&self.client, max).map_err(registry_error)? {
            Some((bytes, _)) => Ok(ManifestFile {
                url,
                bytes: Some(bytes),
                validators: None,
            }),
            None => Err(TransportError::NotFound { url }),
        }
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, TransportError> {
        let digest = format!("sha256:{hex}");
        // Answers the registry's challenge once (HEAD), so the download carries what works.
        if !self.client.has_blob(&digest).map_err(registry_error)? {
            return Err(TransportError::NotFound {
                url: format!("{} blob {digest}", self.client.reference),
            });
        }
        let url = self.client.blob_url(&digest);
        let transport = match self.client.authorization() {
            Some(value) => self
                .transport
                .with_credentials(transport::Credentials::authorization(&url, &value)),
            None => self.transport.with_credentials(None),
        };
        let conditions = match resume {
            Some(resume) => Conditions {
                range_from: Some(resume.offset),
                if_range: resume.if_range.clone(),
                ..Conditions::default()
            },
            None => Conditions::default(),
        };
        transport.open_with(&url, &conditions)
    }

    fn places(&self) -> Vec<&dyn Origin> {
        vec![self]
    }
}
