//! Where manifests and images come from and go to: the one seam `fetch`, `check` and
//! `store` talk to.
//!
//! `fetch` asks an [`Origin`] for a manifest file and for an image by digest, and never
//! learns what serves them. Today that is a static directory over `http(s)://` or
//! `file://` ([`dir::Dir`]), an OCI registry repository ([`registry::Registry`]), or a
//! list of such places tried in order ([`mirrors::Mirrors`]). Above the trait, the engine
//! (`update/`) picks the manifest and downloads an image over every place an origin
//! stands for, deciding what to do next from an [`OriginError`]'s [`Kind`] alone.
//!
//! `store` writes through [`Publish`] (see [`publish`]), to a local directory
//! ([`local::LocalDir`]) or a registry repository
//! ([`registry_publish::RegistryTarget`]), in one flow for both.

pub mod body;
pub mod dir;
pub mod error;
pub mod local;
pub mod mirrors;
pub mod parts;
pub mod publish;
pub mod registry;
pub mod registry_layout;
pub mod registry_publish;
#[cfg(test)]
mod registry_tests;

/// The connections, proxies and limits that every origin of one run shares (the run's
/// `--limit-rate` is one budget): the one thing of the transport a caller of the seam
/// holds, made once per run and handed to [`for_config`].
pub use crate::net::Transport;
pub use body::{Answer, Body};
pub use error::{Kind, OriginError};

use crate::format::config::Config;
use crate::format::key::{KeyId, PublicKey};
use crate::format::manifest::Entry;
use crate::net::Conditions;

/// Which manifest file to ask an origin for.
#[derive(Debug, Clone, Copy)]
pub enum ManifestName<'a> {
    /// `manifest`, signed by the publisher's primary key (the file the original Tako reads).
    Primary,
    /// `manifest.<keyid>`, signed by `key` while a publisher changes keys (see `update::keyring`).
    ForKey(&'a PublicKey),
}

impl ManifestName<'_> {
    /// The manifest file this names, by key id.
    pub fn slot(&self) -> Slot {
        match self {
            ManifestName::Primary => Slot::Primary,
            ManifestName::ForKey(key) => Slot::Key(key.id()),
        }
    }
}

/// A manifest file of an origin named by the id of the key that signs it, as publishing
/// reads, writes and removes them: `manifest` ([`Slot::Primary`], whichever key signs it)
/// and `manifest.<keyid>` in a directory; the tags `tako-manifest` and
/// `tako-manifest.<keyid>` in a registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    Primary,
    Key(KeyId),
}

impl Slot {
    /// The slot whose name is `prefix` (`manifest`, `tako-manifest`) or `prefix.<keyid>`
    /// exactly; `None` for any other name (a `manifest.new` left by a crash, a version).
    pub fn parse(name: &str, prefix: &str) -> Option<Slot> {
        let rest = name.strip_prefix(prefix)?;
        if rest.is_empty() {
            return Some(Slot::Primary);
        }
        let id = rest.strip_prefix('.')?;
        // `KeyId::parse` forgives surrounding whitespace; a name must be exact.
        KeyId::parse(id)
            .ok()
            .filter(|k| k.as_str() == id)
            .map(Slot::Key)
    }

    /// Its name after `prefix`: `prefix` itself or `prefix.<keyid>`.
    pub fn name(&self, prefix: &str) -> String {
        match self {
            Slot::Primary => prefix.to_owned(),
            Slot::Key(id) => format!("{prefix}.{id}"),
        }
    }
}

pub use crate::format::validators::Validators;

/// A manifest file as the origin served it, not yet verified.
#[derive(Debug)]
pub struct ManifestFile {
    /// Where it came from, fit to print.
    pub url: String,
    /// `None`: the server answered 304 Not Modified to the validators it was sent.
    pub bytes: Option<Vec<u8>>,
    /// The validators of this response, if the server sent any.
    pub validators: Option<Validators>,
}

/// Where to go on with an image whose first bytes a host already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// How many bytes are there: the request asks for the rest.
    pub offset: u64,
    /// The entity tag or date those bytes came with (`If-Range`), if the server sent one.
    pub if_range: Option<String>,
}

/// A place that serves a publisher's manifest and images.
pub trait Origin: Send + Sync {
    /// The origin as it may be printed: credentials hidden.
    fn describe(&self) -> String;

    /// Downloads one manifest file, failing with `TooLarge` past `max` bytes. If `known`
    /// are the validators of this very file's URL, the request is conditional and may come
    /// back without bytes (not modified).
    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError>;

    /// Opens the image whose SHA-256 is `hex` (lowercase hex) for streaming: all of it, or
    /// with `resume` the bytes from its offset on. The body says which it got.
    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError>;

    /// The chunk index (see `chunk_index`) of the image of the signed manifest entry
    /// `entry`, at most `max` bytes, for a delta update (see `update::delta`). The whole
    /// entry is given, not only the digest, since a registry finds the index through the
    /// version's tag. `Ok(None)`: this origin has no index for it, or does not do deltas at
    /// all (the default); the image is then downloaded whole.
    fn chunk_index(&self, entry: &Entry, max: u64) -> Result<Option<Vec<u8>>, OriginError> {
        let _ = (entry, max);
        Ok(None)
    }

    /// Opens bytes `start..end` of the image `hex`: `Ok(Some)` only with exactly those
    /// bytes, `Ok(None)` if this origin cannot serve ranges (the default).
    fn open_range(&self, hex: &str, start: u64, end: u64) -> Result<Option<Body>, OriginError> {
        let _ = (hex, start, end);
        Ok(None)
    }

    /// Opens the bytes of several `ranges` (each `start..end`, in ascending order, apart) of
    /// the image `hex` with one request: `Ok(Some)` reads exactly those bytes back to back,
    /// checked part by part as they arrive; `Ok(None)` if this origin does not answer
    /// several ranges at once (the default, or a server that sent one range or the whole
    /// file), so that they are to be asked for one at a time.
    fn open_ranges(&self, hex: &str, ranges: &[(u64, u64)]) -> Result<Option<Body>, OriginError> {
        let _ = (hex, ranges);
        Ok(None)
    }

    /// Opens blob `hex` of a container image (a config or a layer) for streaming, as
    /// [`Origin::open_image`] opens an image: a static directory's `blobs/sha256/<hex>`, a
    /// registry's blob (the default: a registry serves images as blobs already).
    fn open_blob(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        self.open_image(hex, resume)
    }

    /// A manifest below a container image's index, by its SHA-256, at most `max` bytes:
    /// a static directory's `blobs/sha256/<hex>`, a registry's manifest. The caller checks
    /// the bytes against the digest that named them.
    fn image_manifest(&self, hex: &str, max: u64) -> Result<Vec<u8>, OriginError> {
        use std::io::Read;
        let mut body = self.open_blob(hex, None)?;
        let url = body.url().to_owned();
        let mut bytes = Vec::new();
        (&mut body)
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| OriginError::from_read_error(&url, e))?;
        if bytes.len() as u64 > max {
            return Err(crate::net::TransportError::TooLarge { url, max }.into());
        }
        Ok(bytes)
    }

    /// The single places this origin stands for, in order of preference: a list of mirrors
    /// gives its members, a single place itself. The engine tries them in turn.
    fn places(&self) -> Vec<&dyn Origin>;
}

/// The request for bytes `start..end` of an image, for [`Origin::open_range`].
pub(crate) fn range_conditions(start: u64, end: u64) -> Conditions {
    Conditions {
        range_from: Some(start),
        range_to: Some(end.saturating_sub(1)),
        ..Conditions::default()
    }
}

/// `body` if it holds the range from `start` that was asked for. The transport has checked
/// that a 206 names exactly those bytes; a 200 is all of `what` from a `server` that
/// ignores `Range`, which a delta cannot use.
pub(crate) fn exact_range(
    body: crate::net::Body,
    start: u64,
    what: &str,
    server: &str,
) -> Result<Option<Body>, OriginError> {
    match body.answer() {
        Answer::Partial { start: got } if got == start => Ok(Some(body.into())),
        _ => Err(crate::net::TransportError::BadPartial {
            url: body.url().to_owned(),
            reason: format!(
                "it sent the whole {what} (200 OK) instead: the {server} ignores Range"
            ),
        }
        .into()),
    }
}

/// The origin a config names, reached through `transport`: its one `Origin=`, or its
/// mirrors in the order written. Each gets its own credentials (from its URL, else from
/// netrc for its host) and the config's `HeaderFile=` and certificates, which are only
/// ever sent to that origin's own host (see `Transport::for_origin`).
pub fn for_config(config: &Config, transport: &Transport) -> Result<Box<dyn Origin>, OriginError> {
    let mut places = config
        .origins
        .iter()
        .map(|o| -> Result<Box<dyn Origin>, OriginError> {
            // A registry has its own credentials (registry auth files); of the config's
            // private-origin files only the certificates apply (docs/registries.md).
            if crate::registry::Reference::is_registry_url(&o.url) {
                let reach = transport.with_tls_for(&o.url, &config.access)?;
                return Ok(Box::new(registry::Registry::new(&o.url, reach)?));
            }
            let reach = transport.for_origin(&o.url, o.credentials.clone(), &config.access)?;
            Ok(Box::new(dir::Dir::new(&o.url, reach)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if places.len() == 1
        && let Some(place) = places.pop()
    {
        return Ok(place);
    }
    Ok(Box::new(mirrors::Mirrors::of(places)))
}
