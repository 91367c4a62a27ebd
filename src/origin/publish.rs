//! The writing side of the seam: what `tako store` needs of the place it publishes to.
//!
//! A place holds signed manifest files, named by [`Slot`] (`manifest` and `manifest.<keyid>`
//! in a directory, the tags `tako-manifest` and `tako-manifest.<keyid>` in a registry), and
//! images by digest, each with its chunk index. `tako store` reads every manifest file,
//! checks them, stages the image (reading it once for its size, digest and index), puts
//! the image, writes the manifest files in the order that keeps every host served, and
//! removes the ones no longer wanted, in one flow for a directory ([`LocalDir`]) and a
//! registry ([`RegistryTarget`]).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::local::LocalDir;
use super::registry_publish::RegistryTarget;
use super::{OriginError, Slot};
use crate::format::oci::digest::Digest;
use crate::registry::Reference;

/// A manifest file as it stands before this run changes anything.
#[derive(Debug)]
pub struct Existing {
    pub slot: Slot,
    /// Its bytes, at most as many as a host accepts.
    pub bytes: Vec<u8>,
}

/// How a manifest file was taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// It is gone.
    Deleted,
    /// The place would not delete it (a registry with deletes off): it now holds a marker
    /// that hosts take as no manifest and `tako store` as no file.
    Marked,
}

/// An image read once and ready to be put: its size and SHA-256 are known (the entry to
/// sign), and its chunk index if one was asked for. Dropped without [`Staged::put`],
/// nothing of it stays behind.
pub trait Staged {
    fn size(&self) -> u64;
    fn digest(&self) -> [u8; 32];
    /// Puts the image, and its index, where hosts find them under the version `version`.
    fn put(self: Box<Self>, version: &str) -> Result<(), OriginError>;
}

/// A place `tako store` publishes to, held for the whole run (a directory is locked).
pub trait Publish {
    /// Where the manifest file `slot` is, fit to print: a path, or `oci://…:tag`.
    fn location(&self, slot: &Slot) -> String;

    /// How a message introduces the existing manifest file `slot` ("existing manifest
    /// PATH", "the manifest in oci://…").
    fn title(&self, slot: &Slot) -> String;

    /// Every manifest file there is, in [`Slot`] order. Their versions (a registry's tag
    /// digests) are kept, so that writing one the place changed meanwhile is refused.
    fn manifests(&self) -> Result<Vec<Existing>, OriginError>;

    /// Reads the image at `image` once for its size, SHA-256 and, with `index`, its chunk
    /// index; a directory copies it aside on the way.
    fn stage(&self, image: &Path, index: bool) -> Result<Box<dyn Staged + '_>, OriginError>;

    /// Writes `signed` as the manifest file `slot`, replacing any: a host reads the old
    /// file or the new one, never a mix.
    fn put_manifest(&self, slot: &Slot, signed: &[u8]) -> Result<(), OriginError>;

    /// Takes away the manifest file `slot`, which [`Publish::manifests`] found.
    fn remove_manifest(&self, slot: &Slot) -> Result<Removed, OriginError>;

    /// Makes the removals durable (a directory is flushed once after several).
    fn finish(&self) -> Result<(), OriginError>;

    /// How long after writing the manifest files to read them again, to find out whether
    /// another publisher, which read them before this run wrote them, overwrote them
    /// with a manifest that lacks this run's entry. `None` for a place that is locked
    /// while `tako store` runs (a directory): nobody else can write meanwhile.
    fn settle_time(&self) -> Option<Duration> {
        None
    }

    /// The same place as a home for a container image's blobs and manifests
    /// (`tako store --container`).
    fn container(&self) -> &dyn ContainerTarget;
}

/// What `tako store --container` needs of a place: somewhere to put every blob and
/// manifest an image pins, by digest, and the image itself under its version, where hosts
/// look for them. A directory keeps them as `blobs/sha256/<hex>` (an OCI image layout's
/// blob directory) and the image as `store/<hex>`; a registry repository as its own blobs
/// and manifests, the image tagged with the version.
///
/// The caller puts blobs first, then the manifests that name them (children before the
/// index), then the image, then the signed manifest: a registry refuses a manifest whose
/// blobs it lacks, and a host never finds a version whose parts are missing.
pub trait ContainerTarget {
    /// Whether the place holds the blob `digest` of `size` bytes already. A directory
    /// checks the file's bytes (one that does not match is replaced); a registry, which
    /// keeps blobs by digest, is asked.
    fn has_blob(&self, digest: &Digest, size: u64) -> Result<bool, OriginError>;

    /// Lets the place take the blob from the repository `from` without copying it: a
    /// registry mounts it when `from` is another repository of the same registry. `false`
    /// when it did not (a directory never does); the blob is then copied.
    fn mount_blob(&self, digest: &Digest, from: &Reference) -> Result<bool, OriginError>;

    /// Writes the `size` bytes of `source` as the blob `digest`, refusing bytes that do
    /// not have that digest: a directory hashes what it writes, a registry what it
    /// receives. Streamed, never held whole in memory.
    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &mut dyn Read,
    ) -> Result<(), OriginError>;

    /// Puts a manifest or index below the image (a platform's manifest) by its digest.
    fn put_manifest_blob(
        &self,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), OriginError>;

    /// Puts the image's own manifest or index, `bytes` of `media_type`, where a host of
    /// the version `version` finds it by its SHA-256: `store/<hex>` (and the blob
    /// directory) of a directory; in a registry, the version's tag and a blob of the same
    /// bytes. Returns where it is, fit to print.
    fn put_image(
        &self,
        bytes: &[u8],
        media_type: &str,
        version: &str,
    ) -> Result<String, OriginError>;
}

/// The place `output` names: a registry repository (`oci://…`, `oci+http://…`) or a local
/// directory, which must exist.
pub fn open(output: &Path) -> Result<Box<dyn Publish>, OriginError> {
    if let Some(url) = output
        .to_str()
        .filter(|o| crate::registry::Reference::is_registry_url(o))
    {
        return Ok(Box::new(RegistryTarget::open(url)?));
    }
    Ok(Box::new(LocalDir::open(output)?))
}
