//! Publishing a container image (`tako store --container`): everything its manifest or
//! index pins, listed and copied to the place hosts read, every byte checked on the way.
//!
//! 1. [`read_image`]: the manifest or index the reference names (a tag resolved, a pinned
//!    digest checked), its bytes kept as served: their size and SHA-256 are what the
//!    publisher signs.
//! 2. [`walk`]: every manifest below it (fetched by digest, checked against digest and
//!    size), and every config and layer, each once, children before the manifest that
//!    names them. Attestation entries of an index are walked too: the index's digest pins
//!    them, and a registry refuses an index whose manifests it lacks. A host-side update
//!    can use the same list to know which blobs a version needs.
//! 3. [`copy`]: each into a [`ContainerTarget`], in that order: a blob the place has is
//!    left alone, one in another repository of the same registry is mounted, any other is
//!    streamed from the source registry through a [`Checked`] reader that fails the copy
//!    before its last byte is handed on when the bytes are not the blob (the place checks
//!    again: a directory hashes what it writes, a registry what it receives).
//!
//! The engine never prints: it tells the caller through [`Report`].

use std::collections::HashSet;
use std::io::{self, Read};

use super::policy::{self, Applied, PolicyChoice};
use super::pull::{PullError, Report};
use super::resolve::{self, Auth, Fetched, MAX_INDEX_DEPTH, Source};
use crate::format::oci::digest::{Digest, Verifier};
use crate::format::oci::manifest::{MAX_MANIFEST_SIZE, ParsedManifest, Pinned};
use crate::format::oci::reference::Reference;
use crate::format::transport_config::TransportConfig;
use crate::origin::OriginError;
use crate::origin::publish::ContainerTarget;
use crate::update::retry::RetryPolicy;

/// The most manifests, configs and layers one image may pin: far more than any real one.
pub const MAX_PARTS: u64 = 100_000;
/// The most bytes of manifests below the top one read and held for one image.
pub const MAX_MANIFEST_BYTES: u64 = 64 * MAX_MANIFEST_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The source registry served bytes that are not the blob asked for.
    #[error("{image}: blob {digest}: {reason}; nothing was signed")]
    Blob {
        image: String,
        digest: Digest,
        reason: String,
    },
    /// Writing to the place published to failed.
    #[error(transparent)]
    Target(#[from] OriginError),
}

/// One manifest or blob an image pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The bytes of a manifest or index (checked against `digest`); `None` for a config
    /// or layer, which is streamed when copied.
    pub manifest: Option<Vec<u8>>,
}

/// The image a reference names, in its repository.
pub struct Image {
    pub source: Source,
    /// Its manifest or index, as served.
    pub top: Fetched,
    /// The policy.json that accepted it, if one applied.
    pub policy: Option<Applied>,
}

/// Reads the manifest or index `image` names (as `tako image pull` takes it), with
/// credentials from `auth`, if the signature policy `policy` accepts it.
pub fn read_image(
    image: &str,
    auth: &Auth,
    policy: &PolicyChoice,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Image, PublishError> {
    Reference::parse(image).map_err(PullError::from)?;
    // The host's registries.conf applies here as for `tako image pull`: mirrors first, a
    // blocked registry refused before any request; then its policy.json.
    let (reference, endpoints) = super::registries::route(image).map_err(PullError::from)?;
    let mut applied = policy::check(policy, &reference).map_err(PullError::from)?;
    let source = Source::connect(reference, endpoints, auth, TransportConfig::default(), None)?;
    let top = resolve::top(&source, retry, report)?;
    // Every platform is copied: only a signature of what is copied, the top manifest or
    // index, accepts it.
    if let Some(applied) = &mut applied {
        policy::verify(
            applied,
            &source.image,
            &source,
            &[(
                top.digest,
                matches!(top.parsed, ParsedManifest::Index { .. }),
            )],
            retry,
            report,
        )?;
    }
    Ok(Image {
        source,
        top,
        policy: applied,
    })
}

/// What [`walk`] has taken so far, against the caps.
struct Budget {
    parts: u64,
    manifest_bytes: u64,
}

/// Everything `top` pins, each once, children before the manifest that names them; `top`
/// itself is not in the list.
pub fn walk(
    source: &Source,
    top: &Fetched,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Vec<Part>, PullError> {
    let mut seen = HashSet::from([top.digest]);
    let mut parts = Vec::new();
    let mut budget = Budget {
        parts: 0,
        manifest_bytes: 0,
    };
    visit(
        source,
        top,
        0,
        retry,
        report,
        &mut seen,
        &mut parts,
        &mut budget,
    )?;
    Ok(parts)
}

#[allow(clippy::too_many_arguments)]
fn visit(
    source: &Source,
    manifest: &Fetched,
    depth: usize,
    retry: RetryPolicy,
    report: &dyn Report,
    seen: &mut HashSet<Digest>,
    parts: &mut Vec<Part>,
    budget: &mut Budget,
) -> Result<(), PullError> {
    let too_much = |what, max| PullError::TooMuch {
        image: source.shown.clone(),
        what,
        max,
    };
    let pinned = manifest.parsed.pinned().map_err(|e| PullError::Manifest {
        image: source.shown.clone(),
        digest: manifest.digest,
        source: Box::new(e),
    })?;
    for pin in pinned {
        let descriptor = match pin {
            Pinned::Blob(d) | Pinned::Manifest(_, d) => d,
        };
        if !seen.insert(descriptor.digest) {
            continue;
        }
        budget.parts += 1;
        if budget.parts > MAX_PARTS {
            return Err(too_much("manifests, configs and layers", MAX_PARTS));
        }
        match pin {
            Pinned::Blob(blob) => parts.push(Part {
                digest: blob.digest,
                size: blob.size,
                media_type: blob.media_type.clone(),
                manifest: None,
            }),
            Pinned::Manifest(_, entry) => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(PullError::TooDeep {
                        image: source.shown.clone(),
                        max: MAX_INDEX_DEPTH,
                    });
                }
                budget.manifest_bytes = budget.manifest_bytes.saturating_add(entry.size);
                if budget.manifest_bytes > MAX_MANIFEST_BYTES {
                    return Err(too_much("bytes of manifests", MAX_MANIFEST_BYTES));
                }
                let child =
                    source.fetch(&entry.digest.to_string(), Some(entry.size), retry, report)?;
                visit(
                    source,
                    &child,
                    depth + 1,
                    retry,
                    report,
                    seen,
                    parts,
                    budget,
                )?;
                parts.push(Part {
                    digest: child.digest,
                    size: entry.size,
                    // What the bytes say they are, which the registry checks on a push.
                    media_type: child.parsed.kind().media_type().to_owned(),
                    manifest: Some(child.bytes),
                });
            }
        }
    }
    Ok(())
}

/// What [`copy`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Manifests and indexes below the image, put by digest.
    pub manifests: u64,
    /// Configs and layers streamed from the source, and their bytes.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Mounted from the source repository without a byte travelling.
    pub mounted: u64,
    pub mounted_bytes: u64,
    /// Found at the place already.
    pub present: u64,
    pub present_bytes: u64,
}

/// Puts every part into `target`, in order (see the module documentation).
pub fn copy(
    source: &Source,
    parts: &[Part],
    target: &dyn ContainerTarget,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Copied, PublishError> {
    let mut done = Copied::default();
    let from = &source.registry().client().reference;
    for part in parts {
        if let Some(bytes) = &part.manifest {
            target.put_manifest_blob(&part.digest, &part.media_type, bytes)?;
            done.manifests += 1;
            continue;
        }
        if target.has_blob(&part.digest, part.size)? {
            done.present += 1;
            done.present_bytes = done.present_bytes.saturating_add(part.size);
            continue;
        }
        if target.mount_blob(&part.digest, from)? {
            done.mounted += 1;
            done.mounted_bytes = done.mounted_bytes.saturating_add(part.size);
            continue;
        }
        report.progress(&format!(
            "copying blob {} ({} bytes)",
            part.digest, part.size
        ));
        let body = source.retrying(retry, report, |client| client.blob_reader(&part.digest))?;
        let mut checked = Checked::new(body, part.digest, part.size);
        let put = target.put_blob(&part.digest, part.size, &mut checked);
        // The source's fault first: a write refused because the bytes were wrong says so.
        if let Some(reason) = checked.failure {
            return Err(PublishError::Blob {
                image: source.shown.clone(),
                digest: part.digest,
                reason,
            });
        }
        put?;
        done.copied += 1;
        done.copied_bytes = done.copied_bytes.saturating_add(part.size);
    }
    Ok(done)
}

/// A blob's bytes as they stream past, checked against its descriptor: the read that
/// brings the last byte fails instead when the bytes are not the blob, so that no writer
/// ever finishes a wrong blob; a longer or shorter stream fails too.
pub struct Checked<R> {
    inner: R,
    verifier: Option<Verifier>,
    size: u64,
    /// Why the bytes are not the blob, once they are known not to be.
    pub failure: Option<String>,
}

impl<R: Read> Checked<R> {
    pub fn new(inner: R, digest: Digest, size: u64) -> Checked<R> {
        Checked {
            inner,
            verifier: Some(Verifier::new(digest)),
            size,
            failure: None,
        }
    }

    fn fail(&mut self, reason: String) -> io::Error {
        let error = io::Error::other(reason.clone());
        self.failure = Some(reason);
        error
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(reason) = &self.failure {
            return Err(io::Error::other(reason.clone()));
        }
        let n = self.inner.read(buf)?;
        let Some(verifier) = self.verifier.as_mut() else {
            // Every byte of the blob was seen and checked: nothing more may come.
            return if n == 0 {
                Ok(0)
            } else {
                Err(self.fail(format!(
                    "the registry sent more than the {} bytes the manifest gives",
                    self.size
                )))
            };
        };
        let got = buf.get(..n).unwrap_or_default();
        if n == 0 {
            let count = verifier.count();
            return Err(self.fail(format!(
                "the registry sent {count} bytes, but the manifest gives {}",
                self.size
            )));
        }
        verifier.update(got);
        if verifier.exceeds(self.size) {
            return Err(self.fail(format!(
                "the registry sent more than the {} bytes the manifest gives",
                self.size
            )));
        }
        if verifier.count() == self.size
            && let Some(verifier) = self.verifier.take()
            && let Err(e) = verifier.finish(self.size)
        {
            return Err(self.fail(e.to_string()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn the_right_bytes_pass_through_unchanged() {
        let blob = b"a layer's bytes".repeat(1000);
        let mut checked = Checked::new(&blob[..], Digest::of(&blob), blob.len() as u64);
        assert_eq!(read_all(&mut checked).unwrap(), blob);
        assert_eq!(checked.failure, None);
    }

    #[test]
    fn other_bytes_of_the_same_size_fail_the_read_that_brings_the_last_byte() {
        let blob = b"the blob".to_vec();
        let lie = b"the lie!".to_vec();
        let mut checked = Checked::new(&lie[..], Digest::of(&blob), blob.len() as u64);
        let mut buf = [0u8; 64];
        assert!(
            checked.read(&mut buf).is_err(),
            "the last byte is never handed on"
        );
        let reason = checked.failure.clone().unwrap();
        assert!(reason.contains(&Digest::of(&blob).to_string()), "{reason}");
        assert!(checked.read(&mut buf).is_err(), "and it stays failed");
    }

    #[test]
    fn a_short_or_long_stream_is_not_the_blob() {
        let blob = b"0123456789".to_vec();
        let mut short = Checked::new(&blob[..5], Digest::of(&blob), 10);
        assert!(read_all(&mut short).is_err());
        assert!(short.failure.unwrap().contains("sent 5 bytes"));
        let mut long_blob = blob.clone();
        long_blob.extend_from_slice(b"more");
        let mut long = Checked::new(&long_blob[..], Digest::of(&blob), 10);
        assert!(read_all(&mut long).is_err());
        assert!(long.failure.unwrap().contains("more than the 10 bytes"));
    }
}
