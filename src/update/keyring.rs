//! Trusting several publisher keys at once: which manifest file a host takes from an origin,
//! and what its own copy is still good for once the key that signed it is no longer trusted.
//!
//! An origin holds `manifest`, signed by the publisher's primary key (the file the original
//! Tako reads), and `manifest.<keyid>` for each other current key: the same entries, signed by
//! that key. A host trusts every `PublicKey=` of its config. It takes `manifest` if any of its
//! keys verifies it, which is the common case and costs one request; otherwise it tries
//! `manifest.<keyid>` for each of its keys in the order configured, which during a rotation
//! costs one more. See docs/key-rotation.md.

use crate::format::key::PublicKey;
use crate::format::manifest::{Entry, Manifest, ManifestError, UnverifiedEntries};
use crate::origin::{Kind, ManifestFile, ManifestName, Origin, OriginError, Validators};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("remote manifest {url} is invalid: {source}")]
    Invalid { url: String, source: ManifestError },
    #[error(
        "remote manifest {url} is invalid: {source}; and no manifest.<keyid> file of a configured key verifies either ({tried})"
    )]
    Untrusted {
        url: String,
        source: ManifestError,
        tried: String,
    },
}

impl KeyringError {
    /// The origin's failure behind this one, if it is one: what decides whether to retry.
    pub fn origin(&self) -> Option<&OriginError> {
        match self {
            KeyringError::Origin(e) => Some(e),
            _ => None,
        }
    }
}

/// A verified manifest as downloaded, and the URL it came from.
#[derive(Debug)]
pub struct RemoteManifest {
    pub url: String,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    /// What the server said about this file, for the next poll to ask whether it changed.
    pub validators: Option<Validators>,
    /// `manifest`, when a `manifest.<keyid>` was taken because no configured key verifies
    /// it: what tells whether the file taken lags behind.
    pub primary: Option<Primary>,
}

/// The origin's `manifest` as served beside the `manifest.<keyid>` a host took instead. No
/// configured key verifies it, so its entries are only ever used to warn that the file
/// taken lags behind it (a publisher whose tool updated `manifest` alone), never to choose
/// or refuse anything.
#[derive(Debug)]
pub struct Primary {
    pub url: String,
    pub entries: UnverifiedEntries,
}

impl Primary {
    /// The warning that the file at `url`, whose entries are `taken`, lacks versions that
    /// `manifest` lists; `None` when it lacks none (it may well be ahead: a `tako store`
    /// writes the `manifest.<keyid>` files first).
    pub fn lag_warning(&self, url: &str, taken: &Manifest) -> Option<String> {
        let missing = self.entries.missing_from(taken);
        let highest = missing.iter().map(|e| &e.version).max()?;
        let (count, versions) = match missing.len() {
            1 => ("1".to_owned(), "version"),
            n => (n.to_string(), "versions"),
        };
        Some(format!(
            "{url} lags behind {}: it lacks {count} {versions} that {} lists (the highest {}), so this host stays on an older release; no configured key verifies {}, so either a tool that updates manifest alone published to the origin (during a key rotation only tako store may, see docs/key-rotation.md) or someone else signed it",
            self.url,
            self.url,
            crate::format::text::untrusted(highest.as_str()),
            self.url
        ))
    }
}

/// What one origin answered.
#[derive(Debug)]
pub enum Remote {
    Fresh(RemoteManifest),
    /// The file at `url` is the one whose validators were sent (304 Not Modified).
    NotModified {
        url: String,
        /// As [`RemoteManifest::primary`].
        primary: Option<Primary>,
    },
}

/// Downloads the origin's manifest and verifies it with one of `keys`:
/// `manifest` first, then `manifest.<keyid>` for each key in order. A
/// `manifest.<keyid>` must verify with the key it is named after. `known` makes the
/// request for the file it belongs to conditional.
pub fn fetch_remote(
    origin: &dyn Origin,
    keys: &[PublicKey],
    max_size: u64,
    known: Option<&Validators>,
) -> Result<Remote, KeyringError> {
    let ManifestFile {
        url,
        bytes,
        validators,
    } = origin.manifest(ManifestName::Primary, max_size, known)?;
    let Some(bytes) = bytes else {
        return Ok(Remote::NotModified { url, primary: None });
    };
    let not_ours = match Manifest::parse_any(&bytes, keys) {
        Ok((manifest, _)) => {
            return Ok(Remote::Fresh(RemoteManifest {
                url,
                bytes,
                manifest,
                validators,
                primary: None,
            }));
        }
        // Only a signature by another key sends us looking for another
        // file; a malformed `manifest` is a fault of the origin to report.
        Err(e @ (ManifestError::BadSignature(_) | ManifestError::BadSignatureAny(_))) => e,
        Err(source) => return Err(KeyringError::Invalid { url, source }),
    };

    // Well-formed but signed by another key: kept to tell whether the file taken instead
    // lags behind it.
    let primary = || {
        UnverifiedEntries::parse(&bytes)
            .ok()
            .map(|entries| Primary {
                url: url.clone(),
                entries,
            })
    };
    let mut tried = Vec::new();
    for key in keys {
        let file = match origin.manifest(ManifestName::ForKey(key), max_size, known) {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), Kind::NotFound | Kind::Gone) => {
                tried.push(match e.url() {
                    Some(alternative) => format!("{alternative}: not found"),
                    None => e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(bytes) = file.bytes else {
            return Ok(Remote::NotModified {
                url: file.url,
                primary: primary(),
            });
        };
        // A broken file for one key must not keep a host from the next.
        match Manifest::parse(&bytes, key) {
            Ok(manifest) => {
                return Ok(Remote::Fresh(RemoteManifest {
                    url: file.url,
                    bytes,
                    manifest,
                    validators: file.validators,
                    primary: primary(),
                }));
            }
            Err(e) => tried.push(format!("{}: {e}", file.url)),
        }
    }
    Err(KeyringError::Untrusted {
        url,
        source: not_ours,
        tried: tried.join("; "),
    })
}

/// A host's own copy of the manifest (`DEST/manifest`).
#[derive(Debug)]
pub struct LocalManifest {
    pub bytes: Vec<u8>,
    trust: Trust,
}

#[derive(Debug)]
enum Trust {
    Verified(Manifest),
    /// Well-formed, but signed by no configured key: what a host holds
    /// after the key that signed its copy was removed from its config.
    Unverified(UnverifiedEntries),
}

impl LocalManifest {
    /// Checks a host's copy. It must be well-formed in every detail; a
    /// signature by a key that is not (or no longer) configured leaves only
    /// its entries, for the rollback check.
    ///
    /// Why those entries may still be used: tako wrote these bytes itself,
    /// after verifying them with a key the config trusted at the time. They
    /// are only ever used to demand more of a new manifest (it must list
    /// every one of them), never to pick, find or vouch for an image, so
    /// whoever could forge them gains nothing beyond refusals, which they
    /// could cause anyway by deleting the destination's files.
    pub fn check(bytes: Vec<u8>, keys: &[PublicKey]) -> Result<LocalManifest, ManifestError> {
        let trust = match Manifest::parse_any(&bytes, keys) {
            Ok((manifest, _)) => Trust::Verified(manifest),
            Err(ManifestError::BadSignature(_) | ManifestError::BadSignatureAny(_)) => {
                Trust::Unverified(UnverifiedEntries::parse(&bytes)?)
            }
            Err(e) => return Err(e),
        };
        Ok(LocalManifest { bytes, trust })
    }

    /// The manifest, if a configured key verifies it.
    pub fn verified(&self) -> Option<&Manifest> {
        match &self.trust {
            Trust::Verified(manifest) => Some(manifest),
            Trust::Unverified(_) => None,
        }
    }

    /// Every local entry that `remote` lacks: a rollback if not empty.
    pub fn missing_from<'a>(&'a self, remote: &Manifest) -> Vec<&'a Entry> {
        match &self.trust {
            Trust::Verified(manifest) => manifest.missing_from(remote),
            Trust::Unverified(entries) => entries.missing_from(remote),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::key::SecretKey;
    use crate::format::manifest::Entry;
    use crate::format::version::Version;

    fn entry(version: &str) -> Entry {
        Entry {
            version: Version::parse(version).unwrap(),
            size: 1,
            digest: [7; 32],
        }
    }

    fn signed(versions: &[&str], key: &SecretKey) -> Vec<u8> {
        let mut m = Manifest::default();
        for v in versions {
            m.insert(entry(v)).unwrap();
        }
        m.to_signed_bytes(key)
    }

    #[test]
    fn a_local_manifest_of_a_configured_key_is_verified() {
        let k1 = SecretKey::generate().unwrap();
        let k2 = SecretKey::generate().unwrap();
        let keys = [k2.public_key(), k1.public_key()];
        let local = LocalManifest::check(signed(&["1.0"], &k1), &keys).unwrap();
        assert_eq!(local.verified().unwrap().entries().len(), 1);
    }

    #[test]
    fn a_local_manifest_of_a_dropped_key_still_refuses_rollbacks() {
        let k1 = SecretKey::generate().unwrap();
        let k2 = SecretKey::generate().unwrap();
        let local = LocalManifest::check(signed(&["1.0", "1.1"], &k1), &[k2.public_key()]).unwrap();
        assert!(local.verified().is_none());
        let older = Manifest::parse(&signed(&["1.0"], &k2), &k2.public_key()).unwrap();
        let missing: Vec<String> = local
            .missing_from(&older)
            .iter()
            .map(|e| e.version.to_string())
            .collect();
        assert_eq!(missing, ["1.1"]);
        let newer =
            Manifest::parse(&signed(&["1.0", "1.1", "1.2"], &k2), &k2.public_key()).unwrap();
        assert!(local.missing_from(&newer).is_empty());
    }

    #[test]
    fn a_damaged_local_manifest_is_an_error_whatever_its_key() {
        let k1 = SecretKey::generate().unwrap();
        let mut bytes = signed(&["1.0"], &k1);
        bytes.push(b'x');
        let err = LocalManifest::check(bytes, &[k1.public_key()]).unwrap_err();
        assert_eq!(err, ManifestError::TrailingData);
    }

    #[test]
    fn a_key_file_behind_manifest_is_warned_about_but_one_ahead_is_not() {
        let k1 = SecretKey::generate().unwrap();
        let k2 = SecretKey::generate().unwrap();
        let primary = |versions: &[&str]| Primary {
            url: "http://o/manifest".to_owned(),
            entries: UnverifiedEntries::parse(&signed(versions, &k1)).unwrap(),
        };
        let taken = Manifest::parse(&signed(&["1.0", "1.1"], &k2), &k2.public_key()).unwrap();
        let behind = primary(&["1.0", "1.1", "1.2", "1.3"])
            .lag_warning("http://o/manifest.k2", &taken)
            .unwrap();
        assert!(
            behind.starts_with("http://o/manifest.k2 lags behind http://o/manifest: it lacks 2 versions that http://o/manifest lists (the highest 1.3)"),
            "{behind}"
        );
        assert_eq!(primary(&["1.0"]).lag_warning("u", &taken), None);
        assert_eq!(primary(&["1.0", "1.1"]).lag_warning("u", &taken), None);
    }
}
