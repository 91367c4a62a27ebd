//! Images the image proxy serves from this host's disk: `oci:PATH[:TAG]`, an OCI image
//! layout directory, and `tako:CONFIG`, the image a `Kind=container` config has installed.
//!
//! Both read blobs through a handle on their `blobs/sha256` directory, never following a
//! symlink inside it (one planted there cannot send a read outside the directory), and
//! check every blob against the digest that names it: a manifest or config before it is
//! used, a layer while it streams (see `image_proxy`).
//!
//! `tako:CONFIG` serves what the config's destination has installed, offline, as `tako
//! status` sees it: `latest` must name an entry of the local manifest that one of the
//! config's keys verifies (so a version the signer never listed, or one a rolled-back
//! manifest lists, is refused), that entry must match the config's `Version=`, and its
//! tree must be intact (`store/<hex>/manifest.json` holds the signed bytes). The newest
//! version is the one `tako fetch` installed; this never fetches.

use std::fs::File;

use crate::container::install::{self, MANIFEST_FILE};
use crate::container::pull::PullError;
use crate::container::resolve::{self, Chosen, Fetched, WantedPlatform};
use crate::destination::Destination;
use crate::destination::blob_cache::{BLOBS, SHA256};
use crate::format::config::{ConfigError, Kind};
use crate::format::oci::digest::Digest;
use crate::format::oci::layout::{self, LayoutError};
use crate::format::oci::manifest::{self, Descriptor, MAX_MANIFEST_SIZE, ParsedManifest};
use crate::format::oci::media;
use crate::format::oci::reference::LayoutReference;
use crate::format::text::untrusted;
use crate::fs::{Dir, Found, IoError};
use crate::update::fetch::{self, FetchError};

/// The index of an OCI image layout.
const INDEX_JSON: &str = "index.json";

/// Why a local image cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{image}: {path} has no blobs/sha256 directory")]
    NoBlobs { image: String, path: String },
    #[error("{image}: {path} is not an OCI image layout (it has no index.json)")]
    NoIndex { image: String, path: String },
    #[error("{image}: {path}/index.json: {source}")]
    Index {
        image: String,
        path: String,
        #[source]
        source: Box<manifest::ManifestError>,
    },
    #[error("{image}: {path}/index.json is a manifest, not an index")]
    IndexIsManifest { image: String, path: String },
    #[error("{image}: {source}")]
    Layout {
        image: String,
        #[source]
        source: LayoutError,
    },
    #[error("{image}: blob {digest} is not in {path}")]
    Missing {
        image: String,
        digest: Digest,
        path: String,
    },
    #[error("{image}: blob {digest} in {path} is {found}, not a regular file")]
    NotAFile {
        image: String,
        digest: Digest,
        path: String,
        found: &'static str,
    },
    #[error("{image}: {what} {digest} is larger than the {max} bytes tako reads")]
    TooLarge {
        image: String,
        what: &'static str,
        digest: Digest,
        max: u64,
    },
    #[error("{image}: {what} {digest} in {path} does not match its digest and size")]
    Mismatch {
        image: String,
        what: &'static str,
        digest: Digest,
        path: String,
    },
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{image}: the config is Kind=file; tako: serves Kind=container configs only")]
    NotContainer { image: String },
    #[error("{image}: refused: {why}")]
    Refused { image: String, why: String },
}

/// A local image's blobs.
pub struct Local {
    /// `blobs/sha256` of the layout or the destination.
    blobs: Dir,
    /// The image as the client named it, fit to print.
    pub shown: String,
}

impl Local {
    fn path(&self) -> String {
        untrusted(&self.blobs.path().display().to_string())
    }

    /// Opens the blob `digest` for reading; its bytes are checked by whoever reads them.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, LocalError> {
        match self.blobs.open_file(&digest.hex())? {
            Found::File(file) => Ok(file),
            Found::Missing => Err(LocalError::Missing {
                image: self.shown.clone(),
                digest: *digest,
                path: self.path(),
            }),
            Found::Directory => Err(self.not_a_file(digest, "a directory")),
            Found::Other(found) => Err(self.not_a_file(digest, found)),
        }
    }

    fn not_a_file(&self, digest: &Digest, found: &'static str) -> LocalError {
        LocalError::NotAFile {
            image: self.shown.clone(),
            digest: *digest,
            path: self.path(),
            found,
        }
    }

    /// The blob `digest` of `size` bytes (at most `max`), checked against both.
    pub fn read_blob(
        &self,
        what: &'static str,
        digest: &Digest,
        size: u64,
        max: u64,
    ) -> Result<Vec<u8>, LocalError> {
        if size > max {
            return Err(LocalError::TooLarge {
                image: self.shown.clone(),
                what,
                digest: *digest,
                max,
            });
        }
        let bytes = self
            .blobs
            .read_file(&digest.hex(), size, "read")
            .map_err(|_| self.mismatch(what, digest))?
            .ok_or_else(|| LocalError::Missing {
                image: self.shown.clone(),
                digest: *digest,
                path: self.path(),
            })?;
        if bytes.len() as u64 != size || Digest::of(&bytes) != *digest {
            return Err(self.mismatch(what, digest));
        }
        Ok(bytes)
    }

    fn mismatch(&self, what: &'static str, digest: &Digest) -> LocalError {
        LocalError::Mismatch {
            image: self.shown.clone(),
            what,
            digest: *digest,
            path: self.path(),
        }
    }

    /// The manifest or index `descriptor` names, checked against it.
    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, LocalError> {
        let bytes = self.read_blob(
            "manifest",
            &descriptor.digest,
            descriptor.size,
            MAX_MANIFEST_SIZE,
        )?;
        Ok(Fetched::read(
            &self.shown,
            descriptor.digest,
            bytes,
            Some(&descriptor.media_type),
        )?)
    }

    /// The image manifest for `wanted`, from `top` through the index entries in `blobs`.
    fn choose(&self, top: Fetched, wanted: &WantedPlatform) -> Result<Chosen, LocalError> {
        let mut failed = None;
        let chosen = resolve::choose_from(&self.shown, top, wanted, &mut |entry| {
            self.manifest(entry).map_err(|e| {
                // The local error says more than a pull error could; it is kept aside.
                let pull = PullError::NotFound {
                    image: self.shown.clone(),
                    reference: entry.digest.to_string(),
                };
                failed = Some(e);
                pull
            })
        });
        match (chosen, failed) {
            (Ok(chosen), _) => Ok(chosen),
            (Err(_), Some(local)) => Err(local),
            (Err(e), None) => Err(e.into()),
        }
    }
}

/// Opens `oci:PATH[:TAG]`: the entry of the layout's `index.json` the tag names, then the
/// manifest for `wanted` if that entry is an index.
pub fn open_layout(
    reference: &LayoutReference,
    wanted: &WantedPlatform,
) -> Result<(Local, Chosen), LocalError> {
    let shown = untrusted(&match &reference.tag {
        Some(tag) => format!("oci:{}:{tag}", reference.path),
        None => format!("oci:{}", reference.path),
    });
    let path = untrusted(&reference.path);
    // The path was given by the client, as a `Destination=` is by whoever runs tako: a
    // symlink on it is followed; inside the layout, none is.
    let root = Dir::open(std::path::Path::new(&reference.path))?;
    let blobs = root
        .subdir(BLOBS)?
        .map(|d| d.subdir(SHA256))
        .transpose()?
        .flatten()
        .ok_or_else(|| LocalError::NoBlobs {
            image: shown.clone(),
            path: path.clone(),
        })?;
    let bytes = root
        .read_file(INDEX_JSON, MAX_MANIFEST_SIZE, "read")?
        .ok_or_else(|| LocalError::NoIndex {
            image: shown.clone(),
            path: path.clone(),
        })?;
    let index = match manifest::parse(&bytes, Some(media::OCI_INDEX)) {
        Ok(ParsedManifest::Index { index, .. }) => index,
        Ok(ParsedManifest::Image { .. }) => {
            return Err(LocalError::IndexIsManifest { image: shown, path });
        }
        Err(e) => {
            return Err(LocalError::Index {
                image: shown,
                path,
                source: Box::new(e),
            });
        }
    };
    let entry =
        layout::entry(&index, reference.tag.as_deref()).map_err(|source| LocalError::Layout {
            image: shown.clone(),
            source,
        })?;
    let local = Local { blobs, shown };
    let top = local.manifest(entry)?;
    let chosen = local.choose(top, wanted)?;
    Ok((local, chosen))
}

/// Opens `tako:CONFIG`: the image the config's destination has installed, if its signed
/// manifest vouches for it (see the module's comment). `host` is the platform chosen when
/// the config names none, as `tako fetch` chose it.
pub fn open_tako(config_path: &str, host: &WantedPlatform) -> Result<(Local, Chosen), LocalError> {
    let shown = untrusted(&format!("tako:{config_path}"));
    let refused = |why: String| LocalError::Refused {
        image: shown.clone(),
        why,
    };
    let config = crate::fs::config::load(std::path::Path::new(config_path))?;
    if config.kind != Kind::Container {
        return Err(LocalError::NotContainer { image: shown });
    }
    let dest = Destination::open(&config.destination)?;
    // `tako fetch` and `tako gc` move `latest` and remove trees under the lock; waiting for
    // it shared keeps the reads below from straddling such a run. A destination this user
    // cannot lock is read as it is (the checks below still hold).
    let _lock = dest.lock_shared().ok();
    let manifest_path = untrusted(&dest.manifest_path().display().to_string());
    let local = fetch::read_local_manifest(&dest, &config)?
        .ok_or_else(|| refused(format!("there is no local manifest {manifest_path}")))?;
    let signed = local.verified().ok_or_else(|| {
        refused(format!(
            "the local manifest {manifest_path} is not signed by any key the config lists"
        ))
    })?;
    let digest = dest
        .latest_digest()
        .ok_or_else(|| refused("nothing is installed (latest names no image)".to_owned()))?;
    let entries: Vec<_> = signed.with_digest(digest).collect();
    let entry = *entries
        .iter()
        .find(|e| config.version.matches(&e.version))
        .or(entries.first())
        .ok_or_else(|| {
            refused(format!(
                "the installed image {} is not in the signed manifest {manifest_path}",
                hex::encode(digest)
            ))
        })?;
    if !config.version.matches(&entry.version) {
        return Err(refused(format!(
            "the installed version {} does not match Version={}",
            untrusted(entry.version.as_str()),
            untrusted(config.version.as_str())
        )));
    }
    let store = dest.store()?;
    let intact = match &store {
        Some(store) => install::tree_intact(store, entry)?,
        None => false,
    };
    let tree = store
        .filter(|_| intact)
        .and_then(|store| store.subdir(&entry.digest_hex()).ok().flatten())
        .ok_or_else(|| {
            refused(format!(
                "the installed version {}'s tree store/{} is missing or damaged",
                untrusted(entry.version.as_str()),
                entry.digest_hex()
            ))
        })?;
    let blobs = dest
        .dir()
        .subdir(BLOBS)?
        .map(|d| d.subdir(SHA256))
        .transpose()?
        .flatten()
        .ok_or_else(|| LocalError::NoBlobs {
            image: shown.clone(),
            path: untrusted(&dest.path().display().to_string()),
        })?;
    let top_digest = Digest::from(entry.digest);
    // Read again and checked again: `tree_intact` looked at it, this is what is used.
    let bytes = tree
        .read_file(MANIFEST_FILE, entry.size, "read")?
        .filter(|b| b.len() as u64 == entry.size && Digest::of(b) == top_digest)
        .ok_or_else(|| {
            refused(format!(
                "store/{}/{MANIFEST_FILE} is not the signed manifest",
                entry.digest_hex()
            ))
        })?;
    let wanted = match &config.platform {
        Some(platform) => WantedPlatform {
            platform: platform.clone(),
            explicit: true,
        },
        None => host.clone(),
    };
    let local = Local { blobs, shown };
    let top = Fetched::read(&local.shown, top_digest, bytes, None)?;
    let chosen = local.choose(top, &wanted)?;
    Ok((local, chosen))
}
