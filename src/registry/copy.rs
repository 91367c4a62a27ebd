//! The calls that copy a container image between repositories (`tako store --container`):
//! a blob opened for streaming, a blob mounted from another repository of the same
//! registry, and a manifest or index pushed under its own media type.

use super::{Client, OciError, Request, api_base};
use crate::format::oci::digest::Digest;
use crate::net::{Body, Method};

impl Client {
    /// Opens the blob `digest` for streaming (see `open_blob`: redirects to storage are
    /// followed without `Authorization`). The caller checks the bytes against the digest.
    pub fn blob_reader(&self, digest: &Digest) -> Result<Body, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        self.open_blob(&what, &digest.to_string())
    }

    /// Asks the registry to mount the blob `digest` of the repository `from` (of the same
    /// registry) into this one, without any byte travelling: `true` when it did (201).
    /// A registry that cannot (the blob is not there, mounts are off, the credentials may
    /// not read `from`) starts an ordinary upload instead (202), which is cancelled here:
    /// the caller then copies the blob.
    pub fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool, OciError> {
        let what = format!("mount of blob {digest} from {from} into {}", self.reference);
        let mut url = url::Url::parse(&format!("{}/blobs/uploads/", api_base(&self.reference)))
            .map_err(|_| OciError::Invalid {
                what: what.clone(),
                registry: self.reference.registry.clone(),
                reason: "the repository does not make a URL".to_owned(),
            })?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let request = Request {
            method: Method::Post,
            url: url.as_str(),
            headers: &[],
            body: Some(&[]),
        };
        let mut reply = self.send(&what, &request)?;
        match reply.status() {
            201 => Ok(true),
            202 => {
                // An upload session nobody will use: let the registry forget it now rather
                // than when it expires. Failing to is harmless.
                if let Ok(location) = self.upload_location(&what, url.as_str(), &reply) {
                    let cancel = Request {
                        method: Method::Delete,
                        url: &location,
                        headers: &[],
                        body: None,
                    };
                    let _ = self.send(&what, &cancel);
                }
                Ok(false)
            }
            _ => Err(self.status(&what, &mut reply)),
        }
    }

    /// Pushes the manifest or index `bytes` of `media_type` under `reference` (a tag, or
    /// its own digest) and returns its digest. The registry's `Docker-Content-Digest`, if
    /// it sends one, must name these bytes.
    pub fn put_manifest_as(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, OciError> {
        let what = format!("push of manifest {}:{reference}", self.reference);
        let url = format!("{}/manifests/{reference}", api_base(&self.reference));
        let request = Request {
            method: Method::Put,
            url: &url,
            headers: &[("Content-Type", media_type)],
            body: Some(bytes),
        };
        let mut reply = self.send(&what, &request)?;
        if reply.status() != 201 {
            return Err(self.status(&what, &mut reply));
        }
        let digest = Digest::of(bytes);
        if let Some(claimed) = reply.header("docker-content-digest")
            && claimed.trim().starts_with("sha256:")
            && Digest::parse(claimed.trim()).ok() != Some(digest)
        {
            return Err(OciError::Invalid {
                what,
                registry: self.reference.registry.clone(),
                reason: format!(
                    "it stored the manifest under another digest than that of the bytes sent ({digest})"
                ),
            });
        }
        Ok(digest)
    }
}
