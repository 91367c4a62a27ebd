//! Which manifest a host takes: the first place of the origin that serves one that
//! verifies and passes the no-rollback check, retried while failures are transient.
//!
//! A mirror that serves a manifest no configured key verifies, or one that lacks entries
//! the host already has (a stale copy, or a replay), is skipped with a warning naming it;
//! the next place is asked. With validators of the host's copy (see `fetch`), the place
//! that served it is asked whether it changed, and a 304 means the host's copy stands.

use std::time::Duration;

use super::retry::{self, Failed, Next, RetryPolicy, Tries};
use crate::format::key::PublicKey;
use crate::format::manifest::{Manifest, ManifestError};
use crate::origin::{Origin, Validators};
use crate::update::keyring::{self, KeyringError, LocalManifest, Remote, RemoteManifest};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(
        "remote manifest {url} lacks published entries that the local manifest has ({entries}); refusing it as a possible rollback"
    )]
    Rollback { url: String, entries: String },
    /// A 304 for validators of a host copy that no longer verifies; cannot happen unless
    /// the files changed under the lock.
    #[error("{url} answered 'not modified', but the local manifest does not verify: {source}")]
    NotModifiedUnverified { url: String, source: ManifestError },
    #[error("no origin is configured")]
    NoOrigin,
    #[error(
        "none of the {count} origins served a usable manifest (each is named in a warning above); the last one: {last}"
    )]
    NoneUsable {
        count: usize,
        last: Box<SelectError>,
    },
}

impl SelectError {
    /// What this failure at one place means for the others: only an origin's transient
    /// failure is worth asking that place again; anything else moves on to the next place.
    fn next(&self) -> Next {
        match self {
            SelectError::Keyring(e) => match e.origin() {
                Some(e) if e.is_transient() => Next::Again(e.retry_after()),
                _ => Next::Skip,
            },
            _ => Next::Skip,
        }
    }
}

/// What the manifest must live up to, and how to go about getting it.
pub struct ManifestQuery<'a> {
    /// Every trusted key, the preferred first.
    pub keys: &'a [PublicKey],
    /// The most bytes a manifest file may have.
    pub max: u64,
    /// The host's own copy, whose entries the new manifest must all have.
    pub local: Option<&'a LocalManifest>,
    /// The validators the host's copy came with, if it verifies and they are its own.
    pub known: Option<&'a Validators>,
    pub retry: RetryPolicy,
    /// Says something worth a line in the log (a skipped mirror, a retry).
    pub warn: &'a dyn Fn(&str),
}

/// The first manifest, from the first place of `origin`, that verifies and is no rollback.
pub fn remote_manifest(
    origin: &dyn Origin,
    query: &ManifestQuery<'_>,
) -> Result<RemoteManifest, SelectError> {
    choose(origin, query, &std::thread::sleep)
}

/// [`remote_manifest`], waiting between rounds with `sleep`.
fn choose(
    origin: &dyn Origin,
    query: &ManifestQuery<'_>,
    sleep: &dyn Fn(Duration),
) -> Result<RemoteManifest, SelectError> {
    let places = origin.places();
    let tries = Tries {
        policy: query.retry,
        warn: query.warn,
        sleep,
    };
    let chosen = retry::over_places(
        &places,
        &tries,
        |place| from_place(place, query),
        SelectError::next,
        |place, e| format!("skipping origin {}: {e}", place.describe()),
    );
    chosen.map_err(|failed| match failed {
        Failed::NoPlace => SelectError::NoOrigin,
        Failed::Stopped(e) => e,
        Failed::Exhausted { places: 1, last } => last,
        Failed::Exhausted { places, last } => SelectError::NoneUsable {
            count: places,
            last: Box::new(last),
        },
    })
}

/// The manifest of one place, verified and checked against the host's copy.
fn from_place(
    place: &dyn Origin,
    query: &ManifestQuery<'_>,
) -> Result<RemoteManifest, SelectError> {
    let remote = match keyring::fetch_remote(place, query.keys, query.max, query.known)? {
        Remote::Fresh(remote) => remote,
        Remote::NotModified { url } => return not_modified(url, query),
    };
    if let Some(local) = query.local {
        let missing = local.missing_from(&remote.manifest);
        if !missing.is_empty() {
            let entries = missing
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SelectError::Rollback {
                url: remote.url,
                entries,
            });
        }
    }
    Ok(remote)
}

/// The host's own copy, verified again, as the answer to a 304.
///
/// The host's copy was verified with a configured key when it was read, in this run and
/// under the destination's lock; a copy that did not verify is never polled conditionally
/// (see `fetch`), and is verified here again if it somehow is.
fn not_modified(url: String, query: &ManifestQuery<'_>) -> Result<RemoteManifest, SelectError> {
    let bytes = query.local.map(|l| l.bytes.clone()).unwrap_or_default();
    let manifest = match query.local.and_then(LocalManifest::verified) {
        Some(verified) => verified.clone(),
        None => match Manifest::parse_any(&bytes, query.keys) {
            Ok((manifest, _)) => manifest,
            Err(source) => return Err(SelectError::NotModifiedUnverified { url, source }),
        },
    };
    Ok(RemoteManifest {
        url,
        bytes,
        manifest,
        validators: query.known.cloned(),
        not_modified: true,
    })
}
