//! Container image manifests as `tako image` reads them: asked for by tag or digest with the
//! four manifest media types in `Accept`, read with a cap, and checked against every digest
//! that names them.
//!
//! Asking for all four types matters: a registry asked only for OCI types may answer a
//! Docker image with a freshly converted, freshly signed schema 1 manifest, which tako
//! refuses; asked for all four it serves what was pushed. The digest of a manifest is that
//! of the bytes as served, so they are kept as they are. A registry's `Docker-Content-Digest`
//! header is never trusted, only checked: when it names a SHA-256 other than that of the
//! bytes, the registry (or something between) is lying and the answer is refused.

use super::{Client, OciError, api_base};
use crate::format::oci::digest::Digest;
use crate::format::oci::media;

/// A manifest or index as the registry served it, its digest checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedManifest {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub digest: Digest,
    /// The `Content-Type` sent, if any: only a hint when the manifest names no media type.
    pub content_type: Option<String>,
}

/// Checks a manifest answer: the bytes must have the digest asked for (if a digest was),
/// and a `Docker-Content-Digest` the registry sent must name the same bytes. A header with
/// another algorithm than SHA-256 cannot be checked and is ignored; one that does not parse
/// is refused, as a registry that garbles it cannot be told from one that lies.
fn check_digests(
    bytes: &[u8],
    asked: Option<&Digest>,
    header: Option<&str>,
) -> Result<Digest, String> {
    let digest = Digest::of(bytes);
    if let Some(asked) = asked
        && *asked != digest
    {
        return Err(format!(
            "asked for {asked}, it served content whose digest is {digest}"
        ));
    }
    if let Some(header) = header.map(str::trim)
        && header.starts_with("sha256:")
    {
        match Digest::parse(header) {
            Ok(claimed) if claimed == digest => {}
            // The claimed digest is not repeated: it is what a lying registry wants written
            // down, and a digest in a message gets copied.
            Ok(_) => {
                return Err(format!(
                    "its Docker-Content-Digest header names another digest than that of the content it sent ({digest})"
                ));
            }
            Err(_) => {
                return Err(
                    "its Docker-Content-Digest header is not a valid SHA-256 digest".to_owned(),
                );
            }
        }
    }
    Ok(digest)
}

impl Client {
    /// The manifest or index `reference` (a tag, or `sha256:…`) names, at most `max` bytes,
    /// or `None` when the registry has no such tag or digest (404). Asked for with the four
    /// manifest media types; checked against the digest asked for and against the
    /// registry's `Docker-Content-Digest`.
    pub fn image_manifest(
        &self,
        reference: &str,
        max: u64,
    ) -> Result<Option<ServedManifest>, OciError> {
        let what = format!("manifest {}:{reference}", self.reference);
        let asked = reference
            .starts_with("sha256:")
            .then(|| Digest::parse(reference))
            .transpose()
            .map_err(|e| OciError::Invalid {
                what: what.clone(),
                registry: self.reference.registry.clone(),
                reason: e.to_string(),
            })?;
        let url = format!("{}/manifests/{reference}", api_base(&self.reference));
        let mut reply = self.get_following(&what, &url, &[("Accept", media::ACCEPT)])?;
        match reply.status() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status(&what, &mut reply)),
        }
        let content_type = reply.header("content-type").map(str::to_owned);
        let claimed = reply.header("docker-content-digest").map(str::to_owned);
        let bytes = reply
            .body()
            .read_capped(max)
            .map_err(|e| self.transport_error(&what, e))?;
        let digest =
            check_digests(&bytes, asked.as_ref(), claimed.as_deref()).map_err(|reason| {
                OciError::Invalid {
                    what: what.clone(),
                    registry: self.reference.registry.clone(),
                    reason,
                }
            })?;
        Ok(Some(ServedManifest {
            bytes,
            digest,
            content_type,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"schemaVersion":2}"#;

    #[test]
    fn a_manifest_asked_for_by_digest_must_have_that_digest() {
        let right = Digest::of(BODY);
        assert_eq!(check_digests(BODY, Some(&right), None), Ok(right));
        let wrong = Digest::of(b"something else");
        let e = check_digests(BODY, Some(&wrong), None).unwrap_err();
        assert!(
            e.contains(&wrong.to_string()) && e.contains(&right.to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_docker_content_digest_that_lies_is_refused() {
        let right = Digest::of(BODY);
        assert_eq!(
            check_digests(BODY, None, Some(&right.to_string())),
            Ok(right)
        );
        let lie = Digest::of(b"another manifest").to_string();
        let e = check_digests(BODY, None, Some(&lie)).unwrap_err();
        assert!(e.contains("Docker-Content-Digest"), "{e}");
        assert!(!e.contains(&lie), "the lie is not repeated: {e}");
        assert!(e.contains(&right.to_string()), "{e}");
        let garbled = check_digests(BODY, None, Some("sha256:xyz\u{1b}[2J")).unwrap_err();
        assert!(!garbled.contains('\u{1b}'), "{garbled}");
    }

    #[test]
    fn a_docker_content_digest_of_another_algorithm_is_not_held_against_the_registry() {
        let right = Digest::of(BODY);
        assert_eq!(
            check_digests(BODY, None, Some("sha512:0123456789abcdef")),
            Ok(right)
        );
    }
}
