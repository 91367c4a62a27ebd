//! Where manifests and images come from: the one interface `fetch` talks to.
//!
//! `fetch` asks an [`Origin`] for a manifest file and for an image by digest, and never
//! learns what serves them. Today that is a static directory over `http(s)://` or
//! `file://` ([`dir::Dir`]), an OCI registry repository (`crate::origin::registry::Registry`),
//! or a list of such places tried in order ([`mirrors::Mirrors`]). Above the trait,
//! [`select`] picks the manifest (keys, rollback check, conditional polls) and [`image`]
//! downloads an image (resume, retries), each over every place an origin stands for.
//! The publishing side, which only writes into a local directory, has its own small
//! counterpart in [`local`].

pub mod dir;
pub mod local;
pub mod mirrors;
pub mod registry;
pub mod registry_layout;

use crate::format::config::Config;
use crate::format::key::PublicKey;
use crate::format::manifest::Entry;
use crate::net::{Answer, Body, Conditions, Transport, TransportError};

/// Which manifest file to ask an origin for.
#[derive(Debug, Clone, Copy)]
pub enum ManifestName<'a> {
    /// `manifest`, signed by the publisher's primary key (the file the original Tako reads).
    Primary,
    /// `manifest.<keyid>`, signed by `key` while a publisher changes keys (see `keyring`).
    ForKey(&'a PublicKey),
}

/// What a server said about the manifest it served, to ask next time whether it changed
/// (`If-None-Match`, `If-Modified-Since`). They belong to one URL of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The URL the manifest came from, as printed (no password).
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

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
    ) -> Result<ManifestFile, TransportError>;

    /// Opens the image whose SHA-256 is `hex` (lowercase hex) for streaming: all of it, or
    /// with `resume` the bytes from its offset on. The body says which it got.
    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, TransportError>;

    /// The chunk index (see `chunk_index`) of the image of the signed manifest entry
    /// `entry`, at most `max` bytes, for a delta update (see `origin::delta`). The whole
    /// entry is given, not only the digest, since a registry finds the index through the
    /// version's tag. `Ok(None)`: this origin has no index for it, or does not do deltas at
    /// all (the default); the image is then downloaded whole.
    fn chunk_index(&self, entry: &Entry, max: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let _ = (entry, max);
        Ok(None)
    }

    /// Opens bytes `start..end` of the image `hex`: `Ok(Some)` only with exactly those
    /// bytes, `Ok(None)` if this origin cannot serve ranges (the default).
    fn open_range(&self, hex: &str, start: u64, end: u64) -> Result<Option<Body>, TransportError> {
        let _ = (hex, start, end);
        Ok(None)
    }

    /// The single places this origin stands for, in order of preference: a list of mirrors
    /// gives its members, a single place itself. [`select`] and [`image`] try them in turn.
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
    body: Body,
    start: u64,
    what: &str,
    server: &str,
) -> Result<Option<Body>, TransportError> {
    match body.answer() {
        Answer::Partial { start: got } if got == start => Ok(Some(body)),
        _ => Err(TransportError::BadPartial {
            url: body.url().to_owned(),
            reason: format!(
                "it sent the whole {what} (200 OK) instead: the {server} ignores Range"
            ),
        }),
    }
}

/// The origin a config names, reached through `transport`: its one `Origin=`, or its
/// mirrors in the order written. Each gets its own credentials (from its URL, else from
/// netrc for its host) and the config's `HeaderFile=` and certificates, which are only
/// ever sent to that origin's own host (see `Transport::for_origin`).
pub fn for_config(
    config: &Config,
    transport: &Transport,
) -> Result<Box<dyn Origin>, TransportError> {
    let mut places = config
        .origins
        .iter()
        .map(|o| -> Result<Box<dyn Origin>, TransportError> {
            // A registry has its own credentials (registry auth files); of the config's
            // private-origin files only the certificates apply (docs/registries.md).
            if crate::registry::Reference::is_registry_url(&o.url) {
                let reach = transport.with_tls_for(&o.url, &config.access)?;
                return Ok(Box::new(crate::origin::registry::Registry::new(
                    &o.url, reach,
                )?));
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
