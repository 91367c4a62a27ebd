//! Where manifests and images come from: the one interface `fetch` talks to.
//!
//! `fetch` asks an [`Origin`] for a manifest file and for an image by digest, and never
//! learns what serves them. Today that is a static directory over `http(s)://` or
//! `file://` ([`dir::Dir`]); a registry or a list of mirrors plugs in behind the same
//! trait. The publishing side, which only writes into a local directory, has its own
//! small counterpart in [`local`].

pub mod dir;
pub mod local;

use crate::config::Config;
use crate::key::PublicKey;
use crate::transport::{Body, Transport, TransportError};

/// Which manifest file to ask an origin for.
#[derive(Debug, Clone, Copy)]
pub enum ManifestName<'a> {
    /// `manifest`, signed by the publisher's primary key (the file the original Tako reads).
    Primary,
    /// `manifest.<keyid>`, signed by `key` while a publisher changes keys (see `keyring`).
    ForKey(&'a PublicKey),
}

/// A manifest file as the origin served it, not yet verified.
#[derive(Debug)]
pub struct ManifestFile {
    /// Where it came from, fit to print.
    pub url: String,
    pub bytes: Vec<u8>,
}

/// A place that serves a publisher's manifest and images.
pub trait Origin: Send + Sync {
    /// The origin as it may be printed: credentials hidden.
    fn describe(&self) -> String;

    /// Downloads one manifest file, failing with `TooLarge` past `max` bytes.
    fn manifest(&self, name: ManifestName<'_>, max: u64) -> Result<ManifestFile, TransportError>;

    /// Opens the image whose SHA-256 is `hex` (lowercase hex) for streaming.
    fn open_image(&self, hex: &str) -> Result<Body, TransportError>;
}

/// The origin a config names, reached through `transport`.
pub fn for_config(
    config: &Config,
    transport: &Transport,
) -> Result<Box<dyn Origin>, TransportError> {
    let origin = dir::Dir::new(
        &config.origin,
        transport.with_credentials(config.credentials.clone()),
    )?;
    Ok(Box::new(origin))
}
