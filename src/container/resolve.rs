//! From an image reference to one image manifest: the tag or digest asked for, the index
//! entry for a platform, nested indexes to a bounded depth, every manifest checked.
//!
//! A manifest is asked for with the four manifest media types (see `registry::image`) and
//! read with the manifest cap. One named by digest (pinned in the reference, or an index
//! entry) must have that digest and the size its descriptor gives. With both a tag and a
//! digest, the digest is what is pulled, and the tag must name it: either the tag's
//! manifest is that digest, or it is an index that lists it. The platform is never "the
//! first entry": see `format::oci::platform`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::pull::{PullError, Report};
use crate::format::oci::config::ImageConfig;
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{
    self, Descriptor, ImageIndex, ImageManifest, MAX_MANIFEST_SIZE, ParsedManifest,
};
use crate::format::oci::media::ManifestKind;
use crate::format::oci::platform::{self, Platform};
use crate::format::oci::reference::{self, Reference, Scheme};
use crate::format::oci::registries_conf::Endpoint;
use crate::format::transport_config::TransportConfig;
use crate::origin::registry::{Registry, RegistryTls, speaks_tls};
use crate::registry::Credentials;
use crate::registry::auth;
use crate::registry::image::ServedManifest;
use crate::registry::{Client, OciError};
use crate::update::retry::{RetryPolicy, describe_wait};

/// How deep indexes may nest (an index whose chosen entry is an index, …).
pub const MAX_INDEX_DEPTH: usize = 4;
/// The largest `--auth` key file read.
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Where the registry credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The registry auth files tako reads for every registry (see `registry::auth`).
    Files,
    /// A Google service-account JSON key (`--auth FILE`): sent as Basic `_json_key` with the
    /// file's content as the password, as Google's registries take it.
    JsonKey(PathBuf),
    /// Only this registry auth file (the image proxy's `--authfile`), read now.
    File(PathBuf),
    /// No credentials at all (the image proxy's `--no-creds`).
    Anonymous,
}

/// The platform to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPlatform {
    pub platform: Platform,
    /// Named on the command line (`--platform`, `--os`/`--arch`), rather than the host's.
    pub explicit: bool,
}

/// One image's repository, reached with its credentials: at the places registries.conf
/// names (mirrors, then the registry's own location), of which [`top`] picks the first
/// that serves the image, and the rest of the pull stays there.
pub struct Source {
    pub image: Reference,
    /// The image as printed: canonical, escaped already by the reference grammar.
    pub shown: String,
    /// The mirrors to try first, in order, then the registry's own location.
    mirrors: Vec<Place>,
    primary: Place,
    /// The index in `mirrors` of the one in use; past its end, the primary.
    current: AtomicUsize,
}

/// One place the image may be pulled from.
struct Place {
    registry: Registry,
    /// The registries.conf mirror's location, if a mirror.
    mirror: Option<String>,
    /// The repository as reached there, for messages.
    shown: String,
}

fn read_key_file(path: &Path) -> Result<String, PullError> {
    use std::io::Read;
    let failed = |source| PullError::AuthFile {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(failed(std::io::Error::other("it is larger than 1 MiB")));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| failed(std::io::Error::other("it is not UTF-8 text")))?;
    // As `docker login -p "$(cat key.json)"` sends it: without the final newline.
    let key = text.trim_end();
    if key.is_empty() {
        return Err(failed(std::io::Error::other("it is empty")));
    }
    Ok(key.to_owned())
}

/// The client for `image`'s repository with the credentials `auth` says: those of the key
/// file, read now; or those of the auth files (Docker Hub's under its old name too, as
/// `docker login` files them), looked up only when the registry asks for credentials.
fn client(
    image: &Reference,
    reference: crate::registry::Reference,
    auth: &Auth,
) -> Result<Client, PullError> {
    match auth {
        Auth::JsonKey(path) => {
            let found = auth::Found {
                credentials: key_credentials(path)?,
                from: format!("key file {} (--auth)", path.display()),
            };
            return Ok(Client::with_credentials(reference, Some(found), false));
        }
        Auth::File(path) => {
            let file = auth::AuthPath {
                path: path.clone(),
                named: true,
            };
            let found = auth::lookup(
                &[file],
                image.registry(),
                image.repository(),
                auth::HELPER_TIME,
            )
            .map_err(|e| PullError::Registry {
                image: image.to_string(),
                source: Box::new(e.into()),
            })?;
            return Ok(Client::with_credentials(reference, found, false));
        }
        Auth::Anonymous => return Ok(Client::with_credentials(reference, None, false)),
        Auth::Files => {}
    }
    let mut names = vec![image.registry().to_owned()];
    if image.registry() == reference::DOCKER_HUB {
        names.push("index.docker.io".to_owned());
    }
    Ok(Client::looking_up(reference, names, false))
}

/// The credentials of a Google service-account key file (`--auth FILE`).
fn key_credentials(path: &Path) -> Result<Credentials, PullError> {
    Ok(Credentials {
        username: "_json_key".to_owned(),
        password: read_key_file(path)?,
    })
}

impl Source {
    /// The repository of `image` at `endpoints` (registries.conf's, in the order to try),
    /// with credentials from `auth`; layers are downloaded with the transport's `limits`,
    /// all by `max_time` from now.
    /// A `--auth` key goes to the image's own registry only, never to a mirror elsewhere:
    /// a mirror gets the credentials the auth files hold for it.
    pub fn connect(
        image: Reference,
        endpoints: Vec<Endpoint>,
        auth: &Auth,
        limits: TransportConfig,
        max_time: Option<std::time::Duration>,
    ) -> Result<Source, PullError> {
        Source::connect_with(
            image,
            endpoints,
            auth,
            limits,
            max_time,
            &RegistryTls::default(),
        )
    }

    /// As [`Source::connect`], with what `tls` trusts and presents (`--cert-dir`).
    ///
    /// An insecure endpoint (registries.conf's `insecure = true`, or every endpoint under
    /// `--tls-verify=false`) whose reference has no `http` scheme is asked for a TLS
    /// handshake first, as containers/image tries HTTPS first: one that answers is spoken
    /// to over HTTPS without checking its certificate, any other over plain HTTP.
    pub fn connect_with(
        image: Reference,
        endpoints: Vec<Endpoint>,
        auth: &Auth,
        limits: TransportConfig,
        max_time: Option<std::time::Duration>,
        tls: &RegistryTls,
    ) -> Result<Source, PullError> {
        let place = |endpoint: Endpoint| -> Result<Place, PullError> {
            let at = &endpoint.reference;
            let https = !endpoint.insecure
                || (at.scheme() != Scheme::Http
                    && speaks_tls(at.api_host(), limits.connect_timeout));
            let reference = crate::registry::Reference {
                https,
                registry: at.api_host().to_owned(),
                repository: at.repository().to_owned(),
            };
            let auth = if at.registry() == image.registry() {
                auth
            } else {
                &Auth::Files
            };
            let client = client(at, reference, auth)?;
            Ok(Place {
                registry: Registry::for_image(client, limits, max_time, tls, !endpoint.insecure),
                mirror: endpoint.mirror,
                shown: format!("{}/{}", at.registry(), at.repository()),
            })
        };
        let mut endpoints = endpoints;
        let primary = match endpoints.pop() {
            Some(primary) => primary,
            None => Endpoint {
                insecure: image.scheme() == Scheme::Http,
                reference: image.clone(),
                mirror: None,
            },
        };
        let primary = place(primary)?;
        let mirrors = endpoints
            .into_iter()
            .map(place)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Source {
            shown: image.to_string(),
            image,
            mirrors,
            primary,
            current: AtomicUsize::new(0),
        })
    }

    fn place(&self) -> &Place {
        self.mirrors
            .get(self.current.load(Ordering::Relaxed))
            .unwrap_or(&self.primary)
    }

    fn places(&self) -> impl Iterator<Item = &Place> {
        self.mirrors.iter().chain(std::iter::once(&self.primary))
    }

    /// The registries.conf mirror in use, if one is.
    pub fn mirror(&self) -> Option<&str> {
        self.place().mirror.as_deref()
    }

    /// The origin layers are downloaded from.
    pub fn registry(&self) -> &Registry {
        &self.place().registry
    }

    fn client(&self) -> &Client {
        self.place().registry.client()
    }

    fn registry_error(&self, source: OciError) -> PullError {
        PullError::Registry {
            image: self.shown.clone(),
            source: Box::new(source),
        }
    }

    /// Calls the registry, trying a transient failure again after a backoff.
    pub fn retrying<T>(
        &self,
        retry: RetryPolicy,
        report: &dyn Report,
        mut call: impl FnMut(&Client) -> Result<T, OciError>,
    ) -> Result<T, PullError> {
        let mut round = 0;
        loop {
            match call(self.client()) {
                Err(e) if e.is_transient() && round < retry.retries => {
                    let wait = retry.delay(round, None);
                    report.warn(&format!(
                        "{}: {e}; retrying in {} (retry {} of {})",
                        self.shown,
                        describe_wait(wait),
                        round + 1,
                        retry.retries
                    ));
                    std::thread::sleep(wait);
                    round += 1;
                }
                other => return other.map_err(|e| self.registry_error(e)),
            }
        }
    }

    /// The manifest `reference` (a tag or a digest) names; `size` when a descriptor gives it.
    pub fn fetch(
        &self,
        reference: &str,
        size: Option<u64>,
        retry: RetryPolicy,
        report: &dyn Report,
    ) -> Result<Fetched, PullError> {
        let max = size.unwrap_or(MAX_MANIFEST_SIZE).min(MAX_MANIFEST_SIZE);
        let served = self
            .retrying(retry, report, |client| {
                client.image_manifest(reference, max)
            })?
            .ok_or_else(|| PullError::NotFound {
                image: self.shown.clone(),
                reference: reference.to_owned(),
            })?;
        if let Some(size) = size
            && served.bytes.len() as u64 != size
        {
            return Err(PullError::Size {
                image: self.shown.clone(),
                what: "manifest",
                digest: served.digest,
                expected: size,
                actual: served.bytes.len() as u64,
            });
        }
        Fetched::parse(self, served)
    }
}

/// A manifest or index as served, read.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    /// The bytes as served, which `digest` names (what `tako store --container` signs).
    pub bytes: Vec<u8>,
    pub parsed: ParsedManifest,
}

impl Fetched {
    fn parse(source: &Source, served: ServedManifest) -> Result<Fetched, PullError> {
        Fetched::read(
            &source.shown,
            served.digest,
            served.bytes,
            served.content_type.as_deref(),
        )
    }

    /// Reads `bytes`, whose digest the caller checked is `digest`, as the manifest or index
    /// `content_type` (a media type, if one is known) names; `shown` names the image.
    pub fn read(
        shown: &str,
        digest: Digest,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<Fetched, PullError> {
        let parsed = manifest::parse(&bytes, content_type).map_err(|e| PullError::Manifest {
            image: shown.to_owned(),
            digest,
            source: Box::new(e),
        })?;
        Ok(Fetched {
            digest,
            bytes,
            parsed,
        })
    }
}

/// How the manifest a tag names relates to the digest pinned next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pinned {
    /// The tag names the pinned manifest itself.
    Itself,
    /// The tag names an index that lists the pinned manifest (of this size).
    Listed { size: u64 },
    /// Neither: the tag moved, or the digest is of another image.
    No,
}

fn pinned_by(tagged: &Fetched, pinned: &Digest) -> Pinned {
    if tagged.digest == *pinned {
        return Pinned::Itself;
    }
    match &tagged.parsed {
        ParsedManifest::Index { index, .. } => index
            .manifests
            .iter()
            .find(|entry| entry.digest == *pinned)
            .map_or(Pinned::No, |entry| Pinned::Listed { size: entry.size }),
        ParsedManifest::Image { .. } => Pinned::No,
    }
}

/// The manifest the reference itself names, from the first place that serves it (the
/// mirrors in order, then the registry's own location); the pull stays at that place.
/// What a mirror serves is checked as what the registry serves is: a digest named is the
/// digest of the bytes.
pub fn top(source: &Source, retry: RetryPolicy, report: &dyn Report) -> Result<Fetched, PullError> {
    let count = source.mirrors.len() + 1;
    for (i, place) in source.places().enumerate() {
        source.current.store(i, Ordering::Relaxed);
        match top_here(source, retry, report) {
            Err(e) if i + 1 < count => {
                let at = match &place.mirror {
                    Some(mirror) => format!("mirror {mirror} ({})", place.shown),
                    None => place.shown.clone(),
                };
                report.warn(&format!(
                    "{at}: {e}; trying the next place (registries.conf)"
                ));
            }
            done => return done,
        }
    }
    top_here(source, retry, report)
}

/// The manifest the reference itself names at the place in use: its pinned digest (checked
/// against its tag if it has both), else its tag.
fn top_here(
    source: &Source,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Fetched, PullError> {
    let image = &source.image;
    match (image.tag(), image.digest()) {
        (Some(tag), Some(pinned)) => {
            let tagged = source.fetch(tag, None, retry, report)?;
            match pinned_by(&tagged, &pinned) {
                Pinned::Itself => Ok(tagged),
                Pinned::Listed { size } => {
                    source.fetch(&pinned.to_string(), Some(size), retry, report)
                }
                Pinned::No => Err(PullError::TagMismatch {
                    image: source.shown.clone(),
                    tag: tag.to_owned(),
                    named: tagged.digest,
                    pinned,
                }),
            }
        }
        (None, Some(pinned)) => source.fetch(&pinned.to_string(), None, retry, report),
        (tag, None) => source.fetch(tag.unwrap_or(reference::DEFAULT_TAG), None, retry, report),
    }
}

/// The platform of this host, in Go's names: what `tako image pull` and `Kind=container`
/// install when no platform is named.
pub fn host_platform() -> Result<Platform, platform::PlatformError> {
    Platform::host(
        std::env::consts::OS,
        std::env::consts::ARCH,
        cfg!(target_endian = "little"),
    )
}

/// The image manifest chosen for a platform.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The digest of the index the reference named, if it named one.
    pub index: Option<Digest>,
    /// The platforms that index offers (the top-level one), in its order.
    pub platforms: Vec<Platform>,
    pub digest: Digest,
    /// The manifest's bytes as served (which `digest` names), for the image proxy.
    pub bytes: Vec<u8>,
    pub kind: ManifestKind,
    pub manifest: ImageManifest,
    /// The platform of the index entry chosen, if any.
    #[allow(dead_code)]
    pub platform: Option<Platform>,
}

fn choose_entry(
    shown: &str,
    index: &ImageIndex,
    wanted: &WantedPlatform,
) -> Result<Descriptor, PullError> {
    platform::choose(index, &wanted.platform)
        .cloned()
        .map_err(|e| PullError::Platform {
            image: shown.to_owned(),
            source: Box::new(e),
        })
}

/// The image manifest for `wanted`: `top` itself if it is one, else the index entry for
/// the platform, through nested indexes up to [`MAX_INDEX_DEPTH`].
pub fn choose(
    source: &Source,
    top: Fetched,
    wanted: &WantedPlatform,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Chosen, PullError> {
    choose_from(&source.shown, top, wanted, &mut |entry| {
        source.fetch(&entry.digest.to_string(), Some(entry.size), retry, report)
    })
}

/// As [`choose`], with each index entry read by `fetch`, which checks it against the
/// entry's digest and size (an image in a local directory, for the image proxy).
pub fn choose_from(
    shown: &str,
    top: Fetched,
    wanted: &WantedPlatform,
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Fetched, PullError>,
) -> Result<Chosen, PullError> {
    let (index, platforms) = match &top.parsed {
        ParsedManifest::Index { index, .. } => (Some(top.digest), platform::platforms(index)),
        ParsedManifest::Image { .. } => (None, Vec::new()),
    };
    let mut current = top;
    let mut chosen_platform = None;
    for _ in 0..=MAX_INDEX_DEPTH {
        match current.parsed {
            ParsedManifest::Image { kind, manifest } => {
                return Ok(Chosen {
                    index,
                    platforms,
                    digest: current.digest,
                    bytes: current.bytes,
                    kind,
                    manifest,
                    platform: chosen_platform,
                });
            }
            ParsedManifest::Index { index: list, .. } => {
                let entry = choose_entry(shown, &list, wanted)?;
                chosen_platform = entry.platform.as_ref().map(Platform::from_spec);
                current = fetch(&entry)?;
            }
        }
    }
    Err(PullError::TooDeep {
        image: shown.to_owned(),
        max: MAX_INDEX_DEPTH,
    })
}

/// Checks that the config's platform runs on the platform wanted: a single-platform image
/// built for another one is refused unless that platform was asked for.
pub fn check_platform(
    source: &Source,
    config: &ImageConfig,
    wanted: &WantedPlatform,
) -> Result<(), PullError> {
    platform::check_image_platform(config.platform().as_ref(), &wanted.platform).map_err(|e| {
        PullError::Platform {
            image: source.shown.clone(),
            source: Box::new(e),
        }
    })
}

/// What `tako image digest` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The image, canonical.
    pub image: String,
    /// The digest of the index the reference names, if it names one.
    pub index: Option<Digest>,
    /// The image manifest for the platform (the wanted one, else the host's), if there is
    /// one for it.
    pub manifest: Option<Digest>,
    /// The platforms the index offers, or the one the single manifest's config names.
    pub platforms: Vec<Platform>,
    /// What the reference resolves to: the index (or single manifest), or with an explicit
    /// platform the platform's manifest.
    pub digest: Digest,
    /// The registries.conf mirror that answered, if not the registry.
    pub mirror: Option<String>,
}

/// Resolves `source` as `tako image digest` does. `config` fetches (and checks) the config
/// of a single-platform image, which is only needed to list its platform or to check it.
pub fn describe(
    source: &Source,
    wanted: &WantedPlatform,
    fetch_config: &dyn Fn(&ImageManifest) -> Result<ImageConfig, PullError>,
    list_platforms: bool,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Described, PullError> {
    let top = top(source, retry, report)?;
    let top_digest = top.digest;
    let platforms = match &top.parsed {
        ParsedManifest::Index { index, .. } => platform::platforms(index),
        ParsedManifest::Image { manifest, .. } => {
            let mut platforms = Vec::new();
            if wanted.explicit || list_platforms {
                let config = fetch_config(manifest)?;
                if wanted.explicit {
                    check_platform(source, &config, wanted)?;
                }
                platforms.extend(config.platform());
            }
            return Ok(Described {
                image: source.shown.clone(),
                index: None,
                manifest: Some(top_digest),
                platforms,
                digest: top_digest,
                mirror: source.mirror().map(str::to_owned),
            });
        }
    };
    let manifest = match choose(source, top, wanted, retry, report) {
        Ok(chosen) => Some(chosen.digest),
        // Without --platform only the index's digest was asked for, which an index with no
        // entry for this host still has.
        Err(PullError::Platform { .. }) if !wanted.explicit => None,
        Err(e) => return Err(e),
    };
    Ok(Described {
        image: source.shown.clone(),
        index: Some(top_digest),
        manifest,
        platforms,
        digest: match manifest {
            Some(manifest) if wanted.explicit => manifest,
            _ => top_digest,
        },
        mirror: source.mirror().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::tests::{docker_manifest, hex_of};
    use crate::format::oci::media;

    fn fetched(bytes: &[u8]) -> Fetched {
        Fetched {
            digest: Digest::of(bytes),
            bytes: bytes.to_vec(),
            parsed: manifest::parse(bytes, None).unwrap(),
        }
    }

    fn index_listing(digest: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{digest}","size":321,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST
        )
    }

    #[test]
    fn a_tag_and_a_digest_must_name_the_same_image() {
        let image = docker_manifest(2);
        let tagged = fetched(image.as_bytes());
        assert_eq!(pinned_by(&tagged, &tagged.digest), Pinned::Itself);
        let other = Digest::parse(&hex_of(7)).unwrap();
        assert_eq!(pinned_by(&tagged, &other), Pinned::No);
        // A tag naming an index pins any of its entries.
        let index = fetched(index_listing(&hex_of(7)).as_bytes());
        assert_eq!(pinned_by(&index, &other), Pinned::Listed { size: 321 });
        let unlisted = Digest::parse(&hex_of(8)).unwrap();
        assert_eq!(pinned_by(&index, &unlisted), Pinned::No);
    }

    #[test]
    fn a_json_key_is_sent_as_google_wants_it_without_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        std::fs::write(&key, "{\"type\": \"service_account\"}\n\n").unwrap();
        let found = key_credentials(&key).unwrap();
        assert_eq!(found.username, "_json_key");
        assert_eq!(found.password, "{\"type\": \"service_account\"}");
        std::fs::write(&key, "\n").unwrap();
        let e = key_credentials(&key).unwrap_err();
        assert!(e.to_string().contains("key.json"), "{e}");
        assert!(e.to_string().contains("empty"), "{e}");
        let missing = key_credentials(&dir.path().join("gone")).unwrap_err();
        assert!(missing.to_string().contains("gone"), "{missing}");
    }
}
