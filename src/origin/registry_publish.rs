//! A registry repository as a place to publish to ([`Publish`]), in Tako's layout
//! (docs/registries.md, [`layout`]).
//!
//! The manifest files are tags: `tako-manifest` and, during a key rotation,
//! `tako-manifest.<keyid>`, found by listing the repository's tags. A registry has no
//! lock and no compare-and-swap on tags, so the digest each tag named when it was read is
//! kept, and a tag is only written (or taken away) while it still names that digest,
//! checked just before and after. That narrows the window but cannot close it: another
//! publisher that checked just before this one wrote may still write a moment later. So
//! `tako store` reads the manifest again after [`Publish::settle_time`] and, if its entry
//! is gone, merges and writes again (see `commands::store`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::publish::{ContainerTarget, Existing, Publish, Removed, Staged};
use super::registry_layout::{self as layout, MANIFEST_TAG};
use super::{OriginError, Slot};
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::format::oci::digest::Digest;
use crate::registry::{Client, OciError, Reference};
use crate::stream::chunking;
use crate::stream::hashing::{self, CopyError};

/// A registry repository that `tako store` pushes to.
pub struct RegistryTarget {
    client: Client,
    /// The digest of the artifact each Tako tag named when read, or after this run wrote
    /// it; a tag that is not here did not exist.
    seen: RefCell<BTreeMap<Slot, String>>,
    /// The longest a manifest write of this run took, from the check before it to the
    /// check after it: how long another publisher's check-and-write may take too.
    slowest_write: Cell<Duration>,
}

/// The least [`Publish::settle_time`] of a registry: another publisher's check and write
/// are two requests apart, but its process may be kept waiting for the CPU meanwhile.
const MIN_SETTLE: Duration = Duration::from_millis(500);
/// The most: a registry this slow is better served by publishers taking turns.
const MAX_SETTLE: Duration = Duration::from_secs(10);

impl RegistryTarget {
    /// The repository `url` (`oci://…`, `oci+http://…`), with credentials for pushing from
    /// the usual auth files.
    pub fn open(url: &str) -> Result<RegistryTarget, OciError> {
        let reference = Reference::parse(url)?;
        let client = Client::new(reference, true);
        Ok(RegistryTarget::with_client(client))
    }

    /// Publishing through `client` (a client for pushing).
    pub fn with_client(client: Client) -> RegistryTarget {
        RegistryTarget {
            client,
            seen: RefCell::new(BTreeMap::new()),
            slowest_write: Cell::new(Duration::ZERO),
        }
    }

    /// Reads the tag of `slot`: `Ok(None)` when it is missing or holds a retired key's
    /// marker. Either way what it named is remembered.
    fn read(&self, slot: &Slot) -> Result<Option<Vec<u8>>, OciError> {
        let tag = layout::manifest_tag(slot);
        let Some(fetched) = self.client.manifest(&tag)? else {
            self.seen.borrow_mut().remove(slot);
            return Ok(None);
        };
        self.seen
            .borrow_mut()
            .insert(slot.clone(), fetched.digest.clone());
        if layout::is_retired(&fetched.bytes) {
            return Ok(None);
        }
        let bytes = layout::signed_manifest_of(&self.client, &tag, &fetched, MAX_MANIFEST_SIZE)?;
        Ok(Some(bytes))
    }
}

impl Publish for RegistryTarget {
    fn location(&self, slot: &Slot) -> String {
        format!("{}:{}", self.client.reference, layout::manifest_tag(slot))
    }

    fn title(&self, slot: &Slot) -> String {
        match slot {
            Slot::Primary => format!("the manifest in {}", self.client.reference),
            Slot::Key(id) => format!("the manifest of key {id} in {}", self.client.reference),
        }
    }

    fn manifests(&self) -> Result<Vec<Existing>, OriginError> {
        // `tako-manifest` is read whatever the list says (a registry may list a new tag
        // late); the keys' tags are only known from the list.
        let mut slots: Vec<Slot> = self
            .client
            .tags()?
            .iter()
            .filter_map(|tag| Slot::parse(tag, MANIFEST_TAG))
            .chain([Slot::Primary])
            .collect();
        slots.sort();
        slots.dedup();
        let mut found = Vec::new();
        for slot in slots {
            if let Some(bytes) = self.read(&slot)? {
                found.push(Existing { slot, bytes });
            }
        }
        Ok(found)
    }

    fn stage(&self, image: &Path, index: bool) -> Result<Box<dyn Staged + '_>, OriginError> {
        // The index comes from the same single read as the size and digest, so that it
        // always describes the image hashed (an image changed meanwhile is refused by the
        // registry, which hashes the upload).
        let read = |source| OciError::ReadImage {
            path: image.to_path_buf(),
            source,
        };
        let mut file = File::open(image).map_err(read)?;
        let (size, digest, index) = if index {
            let index = chunking::index_of(&mut file).map_err(read)?;
            (index.size, index.digest, Some(index.to_bytes()))
        } else {
            let summary = hashing::copy_and_hash(&mut file, None, None).map_err(|e| match e {
                CopyError::Read(e) | CopyError::Write(e) => read(e),
                CopyError::TooLong { .. } => read(io::Error::other(e.to_string())),
            })?;
            (summary.size, summary.digest, None)
        };
        Ok(Box::new(RegistryStaged {
            client: &self.client,
            path: image.to_path_buf(),
            size,
            digest,
            index,
        }))
    }

    fn put_manifest(&self, slot: &Slot, signed: &[u8]) -> Result<(), OriginError> {
        let previous = self.seen.borrow().get(slot).cloned();
        let started = Instant::now();
        let pushed = layout::push_manifest(&self.client, slot, signed, previous.as_deref())?;
        self.slowest_write
            .set(self.slowest_write.get().max(started.elapsed()));
        self.seen.borrow_mut().insert(slot.clone(), pushed);
        Ok(())
    }

    fn remove_manifest(&self, slot: &Slot) -> Result<Removed, OriginError> {
        let Some(previous) = self.seen.borrow().get(slot).cloned() else {
            return Ok(Removed::Deleted);
        };
        let others: Vec<String> = self
            .seen
            .borrow()
            .iter()
            .filter(|(s, _)| *s != slot)
            .map(|(_, digest)| digest.clone())
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let retired = layout::retire(&self.client, slot, &previous, &others)?;
        self.seen.borrow_mut().remove(slot);
        Ok(match retired {
            layout::Retired::Deleted => Removed::Deleted,
            layout::Retired::Marked => Removed::Marked,
        })
    }

    fn finish(&self) -> Result<(), OriginError> {
        Ok(())
    }

    fn settle_time(&self) -> Option<Duration> {
        Some(
            self.slowest_write
                .get()
                .saturating_mul(4)
                .clamp(MIN_SETTLE, MAX_SETTLE),
        )
    }

    fn container(&self) -> &dyn ContainerTarget {
        self
    }
}

/// A container image in the repository: its blobs and manifests by digest, the image
/// tagged with the version's tag (`layout::version_tag`, the rule file images follow).
impl ContainerTarget for RegistryTarget {
    fn has_blob(&self, digest: &Digest, _size: u64) -> Result<bool, OriginError> {
        Ok(self.client.has_blob(&digest.to_string())?)
    }

    fn mount_blob(&self, digest: &Digest, from: &Reference) -> Result<bool, OriginError> {
        let own = &self.client.reference;
        // Only within one registry (same scheme, host and port), and only from elsewhere.
        if from.https != own.https
            || from.registry != own.registry
            || from.repository == own.repository
        {
            return Ok(false);
        }
        Ok(self.client.mount_blob(digest, &from.repository)?)
    }

    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &mut dyn Read,
    ) -> Result<(), OriginError> {
        // The registry hashes what it receives and refuses an upload whose bytes do not
        // have the digest.
        self.client.upload(&digest.to_string(), size, source)?;
        Ok(())
    }

    fn put_manifest_blob(
        &self,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), OriginError> {
        self.client
            .put_manifest_as(&digest.to_string(), media_type, bytes)?;
        Ok(())
    }

    fn put_image(
        &self,
        bytes: &[u8],
        media_type: &str,
        version: &str,
    ) -> Result<String, OriginError> {
        let digest = Digest::of(bytes);
        // Also as a blob, where a host that takes the version as a file (`Kind=file`, the
        // way every host reads a registry origin today) downloads `sha256:<hex>` from.
        self.client.push_blob(bytes)?;
        let tag = layout::version_tag(version, &digest.hex());
        self.client.put_manifest_as(&tag, media_type, bytes)?;
        Ok(format!("{}:{tag}", self.client.reference))
    }
}

/// An image hashed (and indexed), to be uploaded from its file.
struct RegistryStaged<'c> {
    client: &'c Client,
    path: PathBuf,
    size: u64,
    digest: [u8; 32],
    index: Option<Vec<u8>>,
}

impl Staged for RegistryStaged<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn digest(&self) -> [u8; 32] {
        self.digest
    }

    fn put(self: Box<Self>, version: &str) -> Result<(), OriginError> {
        let hex = hex::encode(self.digest);
        let image = layout::Image {
            path: &self.path,
            size: self.size,
            hex: &hex,
            index: self.index.as_deref(),
        };
        layout::push_image(self.client, &image, version)?;
        Ok(())
    }
}
