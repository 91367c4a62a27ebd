//! `tako image pull`: a container image from a registry into a directory tree, every byte
//! verified, the tree moved into place only when it is complete.
//!
//! The steps, for `pull(IMAGE, DIR)`:
//! 1. Lock DIR (`destination::image_dir`), remove what a killed pull left beside it, and
//!    refuse a non-empty DIR without `--force` before anything is downloaded.
//! 2. Take the blob cache's lock shared (`destination::blob_cache`), so that a purge waits.
//! 3. Resolve the reference to one image manifest (`resolve`): tag or digest, the index
//!    entry for the platform, every manifest checked against the digest that names it.
//! 4. Refuse what cannot be unpacked (foreign, encrypted or unknown layers; see
//!    `format::oci::manifest`), fetch the config through the cache, check it against its
//!    digest, its layer count against the manifest and its platform against the one wanted.
//! 5. Download the layers into the cache, `parallel` at a time, each under its blob lock:
//!    one already there is verified (size and SHA-256) instead; one missing goes through
//!    the resumable downloader of `update::image` (`.partial`, `Range`/`If-Range`,
//!    retries with backoff and `Retry-After`). Meanwhile, on this thread, layer N is
//!    unpacked (`container::unpack`) as soon as it and every layer before it are verified,
//!    its uncompressed digest checked against the config's `diff_ids`.
//! 6. Give directories their modes, sync, move the tree into place, record in the cache
//!    which blobs it was built from.
//!
//! On any failure the half-built tree is removed and DIR is as it was. The engine never
//! prints: it tells the caller through [`Report`].

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::policy::{self, Applied, PolicyCheckError, PolicyChoice};
use super::registries::{self, RegistriesError};
use super::resolve::{self, Auth, Source, WantedPlatform};
use super::unpack::{self, Limits, Owners, UnpackError, Unpacker};
use crate::destination::blob_cache::{self, BlobCache, Lookup, TreeRecord};
use crate::destination::image_dir::{Existing, ImageDir, ImageDirError, Placed};
use crate::format::oci::config::{ConfigError, ImageConfig};
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{Descriptor, ImageManifest, ManifestError};
use crate::format::oci::media::LayerCompression;
use crate::format::oci::platform::{Platform, PlatformError};
use crate::format::oci::reference::{Reference, ReferenceError};
use crate::format::transport_config::TransportConfig;
use crate::format::validators::Validators;
use crate::fs::IoError;
use crate::fs::tree::Tree;
use crate::origin::{Body, ManifestFile, ManifestName, Origin, OriginError, Resume};
use crate::registry::OciError;
use crate::stream::decompress::Compression;
use crate::update::image::{self, Downloaded, ImageError, Say, Wanted};
use crate::update::retry::RetryPolicy;

/// Layers downloaded at once unless `--parallel` says otherwise.
pub const DEFAULT_PARALLEL: usize = 3;
/// The most `--parallel` accepts: each download is a connection and a thread.
pub const MAX_PARALLEL: usize = 16;
/// The buffer a layer blob is read through while it is unpacked.
const READ_BUFFER: usize = 256 * 1024;

/// How the engine tells what it does; the command implements it with `ui/`. Called from
/// the download threads too.
impl From<RegistriesError> for PullError {
    fn from(e: RegistriesError) -> PullError {
        PullError::Registries(Box::new(e))
    }
}

impl From<PolicyCheckError> for PullError {
    fn from(e: PolicyCheckError) -> PullError {
        PullError::Policy(Box::new(e))
    }
}

pub trait Report: Sync {
    /// Something worth a line in the log even when nobody watches.
    fn warn(&self, message: &str);
    /// Progress for a person watching.
    fn progress(&self, message: &str);
    /// A progress bar for downloading `total` bytes of `what`, of which `done` are here
    /// already (a resumed download); only asked for when [`PullOptions::progress`] is set.
    fn download_bar(&self, what: &str, done: u64, total: u64) -> indicatif::ProgressBar;
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registries(Box<RegistriesError>),
    #[error(transparent)]
    Policy(Box<PolicyCheckError>),
    #[error("cannot read the key file {} (--auth): {source}", path.display())]
    AuthFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{image}: {source}")]
    Registry {
        image: String,
        #[source]
        source: Box<OciError>,
    },
    #[error(
        "{image}: the registry has no manifest {reference} (no such tag or digest, or no such repository)"
    )]
    NotFound { image: String, reference: String },
    #[error(
        "{image}: the tag {tag} names {named}, which is not the pinned digest {pinned} and does not list it: pull the digest alone, or check the tag"
    )]
    TagMismatch {
        image: String,
        tag: String,
        named: Digest,
        pinned: Digest,
    },
    #[error("{image}: manifest {digest}: {source}")]
    Manifest {
        image: String,
        digest: Digest,
        #[source]
        source: Box<ManifestError>,
    },
    #[error("{image}: indexes nest more than {max} deep")]
    TooDeep { image: String, max: usize },
    #[error("{image}: the signatures under the tag {tag}: {reason}: refused")]
    Signatures {
        image: String,
        tag: String,
        reason: String,
    },
    #[error("{image}: pins more than {max} {what}")]
    TooMuch {
        image: String,
        what: &'static str,
        max: u64,
    },
    #[error("{image}: {source}")]
    Platform {
        image: String,
        #[source]
        source: Box<PlatformError>,
    },
    #[error(
        "{image}: {what} {digest} is {actual} bytes, but the descriptor naming it says {expected}"
    )]
    Size {
        image: String,
        what: &'static str,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{image}: config {digest}: {source}")]
    Config {
        image: String,
        digest: Digest,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("{image}: layer {number} of {count} ({digest}): {reason}")]
    Layer {
        image: String,
        number: usize,
        count: usize,
        digest: Digest,
        reason: String,
    },
    #[error("{image}: {source}")]
    Unpack {
        image: String,
        #[source]
        source: Box<UnpackError>,
    },
    #[error(transparent)]
    Dir(#[from] ImageDirError),
    #[error(transparent)]
    HoldsAnother(Box<HoldsAnother>),
    #[error("{image}: {source}")]
    Io {
        image: String,
        #[source]
        source: IoError,
    },
}

/// DIR holds the tree a pull built from another manifest than the one the image names now.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: holds the tree of {held} (manifest {held_manifest}), but {image} is now manifest {manifest}: add --force to replace the tree",
    dir.display()
)]
pub struct HoldsAnother {
    dir: PathBuf,
    held: String,
    held_manifest: Digest,
    image: String,
    manifest: Digest,
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: WantedPlatform,
    /// Replace a DIR that is not empty.
    pub force: bool,
    /// Build the tree again even when DIR holds the tree built from the very manifest the
    /// reference names now (which is otherwise left as it is: "up to date").
    pub rebuild: bool,
    /// The blob cache; `None` to download into a scratch directory beside DIR instead.
    pub cache: Option<PathBuf>,
    pub auth: Auth,
    pub transport: TransportConfig,
    /// The most time all requests of the pull may take together.
    pub max_time: Option<Duration>,
    pub retry: RetryPolicy,
    /// Layers downloaded at once (at least 1).
    pub parallel: usize,
    /// Whether a person watches: progress messages and bars.
    pub progress: bool,
    /// Caps on each layer's contents.
    pub limits: Limits,
    /// The signature policy (policy.json) to apply.
    pub policy: PolicyChoice,
}

/// One layer as pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledLayer {
    pub digest: Digest,
    pub size: u64,
    /// Found (and verified) in the cache rather than downloaded.
    pub from_cache: bool,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The image, canonical.
    pub image: String,
    /// Whether the reference pinned a digest: the only way the content is known to be the
    /// one meant, as registries sign nothing tako checks.
    pub pinned: bool,
    /// The index the reference named, if any, and the platforms it offers.
    pub index: Option<Digest>,
    pub platforms: Vec<Platform>,
    /// The image manifest pulled, its config, and the platform the config names.
    pub manifest: Digest,
    pub config: Digest,
    pub platform: Option<Platform>,
    pub layers: Vec<PulledLayer>,
    /// Bytes of distinct layer blobs downloaded, and found in the cache.
    pub downloaded_bytes: u64,
    pub cached_bytes: u64,
    /// Bytes of the uncompressed layers, and tar entries read.
    pub unpacked_bytes: u64,
    pub entries: u64,
    /// Whether DIR held a tree that was replaced.
    pub replaced: bool,
    /// Whether DIR already held the tree built from this manifest, and was left alone:
    /// nothing was downloaded or unpacked (`layers` is empty).
    pub up_to_date: bool,
    /// The registries.conf mirror the image came from, if not its registry.
    pub mirror: Option<String>,
    /// The policy.json that accepted the image; `None` when none was applied.
    pub policy: Option<Applied>,
}

/// The stats of building a tree.
#[derive(Debug, Default)]
struct Built {
    layers: Vec<PulledLayer>,
    unpacked_bytes: u64,
    entries: u64,
    devices_skipped: u64,
    xattrs_refused: u64,
    xattrs_unsupported: u64,
}

/// A distinct blob to fetch.
#[derive(Debug, Clone)]
struct Job {
    digest: Digest,
    size: u64,
    /// The first layer that uses it (from 1), for messages.
    number: usize,
}

fn compression_of(layer: LayerCompression) -> Compression {
    match layer {
        LayerCompression::None => Compression::None,
        LayerCompression::Gzip => Compression::Gzip,
        LayerCompression::Zstd => Compression::Zstd,
    }
}

/// Pulls `image` into `dir`; see the module documentation.
pub fn pull(
    image: &str,
    dir: &Path,
    options: &PullOptions,
    report: &dyn Report,
) -> Result<Pulled, PullError> {
    // The reference's own errors first, as before registries.conf; then the host's
    // configuration, a blocked registry refused before anything is touched.
    Reference::parse(image)?;
    let (image, endpoints) = registries::route(image)?;
    // The policy refuses before any request what it refuses without a signature (and
    // reads its keys); the signatures are checked once the manifest is known.
    let mut accepted = policy::check(&options.policy, &image)?;
    let pinned = image.digest().is_some();
    let target = ImageDir::lock(dir, &|| {
        report.progress(&format!(
            "waiting for another pull into {} to finish",
            dir.display()
        ))
    })?;
    target.clear_leftovers(options.cache.is_none())?;
    let existing = target.existing()?;
    // What DIR holds, if it is a tree a pull with this cache moved into place: a pull of
    // the same manifest again leaves it alone.
    let held = match (&options.cache, existing) {
        (Some(path), Existing::Full) => BlobCache::open_existing(path)
            .ok()
            .flatten()
            .and_then(|cache| cache.current_record(&target.path())),
        _ => None,
    };
    if existing == Existing::Full && !options.force && held.is_none() {
        return Err(ImageDirError::NotEmpty(dir.to_path_buf()).into());
    }
    let shown = image.to_string();
    let io = |source| PullError::Io {
        image: shown.clone(),
        source,
    };
    let (cache, _cache_lock) = match &options.cache {
        Some(path) => {
            let cache = BlobCache::open(path).map_err(io)?;
            let lock = cache
                .lock_shared(&|| {
                    report.progress(&format!(
                        "waiting for tako image purge to finish with {}",
                        path.display()
                    ))
                })
                .map_err(io)?;
            (cache, Some(lock))
        }
        None => (
            BlobCache::open(&target.create_scratch()?).map_err(io)?,
            None,
        ),
    };
    let source = Source::connect(
        image,
        endpoints,
        &options.auth,
        options.transport,
        options.max_time,
    )?;
    let top = resolve::top(&source, options.retry, report)?;
    let chosen = resolve::choose(&source, top, &options.platform, options.retry, report)?;
    if let Some(applied) = &mut accepted {
        policy::verify(
            applied,
            &source.image,
            &source,
            &candidates(chosen.index, chosen.digest),
            options.retry,
            report,
        )?;
    }
    if options.progress {
        let index = match chosen.index {
            Some(index) => format!("index {index}, "),
            None => String::new(),
        };
        let mirror = match source.mirror() {
            Some(mirror) => format!("from mirror {mirror}, "),
            None => String::new(),
        };
        report.progress(&format!(
            "{}: {mirror}{index}manifest {} ({} layer(s))",
            source.shown,
            chosen.digest,
            chosen.manifest.layers.len()
        ));
    }
    if let Some(held) = &held
        && held.manifest != chosen.digest
        && !options.force
    {
        return Err(PullError::HoldsAnother(Box::new(HoldsAnother {
            dir: dir.to_path_buf(),
            held: crate::format::text::untrusted(&held.image),
            held_manifest: held.manifest,
            image: source.shown.clone(),
            manifest: chosen.digest,
        })));
    }
    let manifest_error = |source: ManifestError| PullError::Manifest {
        image: shown.clone(),
        digest: chosen.digest,
        source: Box::new(source),
    };
    let compressions = chosen
        .manifest
        .layer_compressions()
        .map_err(manifest_error)?;
    let config_bytes = fetch_config(&source, &cache, &chosen.manifest.config, options, report)?;
    let config_error = |e: ConfigError| PullError::Config {
        image: shown.clone(),
        digest: chosen.manifest.config.digest,
        source: Box::new(e),
    };
    let config = ImageConfig::parse(&config_bytes).map_err(config_error)?;
    config
        .check_layers(&chosen.manifest)
        .map_err(config_error)?;
    resolve::check_platform(&source, &config, &options.platform)?;
    // The config is in the cache: the tree was built from it.
    if let Some(held) = held
        && held.manifest == chosen.digest
        && !options.rebuild
    {
        return Ok(Pulled {
            image: source.shown.clone(),
            pinned,
            index: chosen.index,
            platforms: chosen.platforms.clone(),
            manifest: chosen.digest,
            config: chosen.manifest.config.digest,
            platform: config.platform(),
            layers: Vec::new(),
            downloaded_bytes: 0,
            cached_bytes: 0,
            unpacked_bytes: 0,
            entries: 0,
            replaced: false,
            up_to_date: true,
            mirror: source.mirror().map(str::to_owned),
            policy: accepted,
        });
    }

    let built = match build(
        &source,
        &cache,
        &target,
        &chosen.manifest,
        &config,
        &compressions,
        options,
        report,
    ) {
        Ok(built) => built,
        Err(e) => {
            // The half-built tree goes now; a failure to remove it is left to the next pull.
            let _ = target.remove_staging();
            return Err(e);
        }
    };
    summarise(&source, &built, report);
    let placed = match target.commit(options.force) {
        Ok(Placed::ReplacedOldLeft { left, reason }) => {
            report.warn(&format!(
                "{}: the new tree is in place, but the old one could not be removed entirely ({reason}); what is left of it is at {}, and the next pull into {} removes it",
                source.shown,
                left.display(),
                dir.display()
            ));
            Placed::Replaced
        }
        Ok(placed) => placed,
        Err(e) => {
            let _ = target.remove_staging();
            return Err(e.into());
        }
    };
    if options.cache.is_some() {
        let identity = blob_cache::identity_of(&target.path()).map_err(io)?;
        let mut blobs = vec![chosen.manifest.config.digest];
        for layer in &built.layers {
            if !blobs.contains(&layer.digest) {
                blobs.push(layer.digest);
            }
        }
        if let Some(record) = TreeRecord::new(
            &target.path(),
            identity,
            &source.shown,
            chosen.digest,
            blobs,
        ) {
            cache.record(&record).map_err(io)?;
        }
    } else {
        target.remove_scratch()?;
    }
    let (mut downloaded_bytes, mut cached_bytes) = (0u64, 0u64);
    let mut counted: Vec<Digest> = Vec::new();
    for layer in &built.layers {
        if counted.contains(&layer.digest) {
            continue;
        }
        counted.push(layer.digest);
        if layer.from_cache {
            cached_bytes = cached_bytes.saturating_add(layer.size);
        } else {
            downloaded_bytes = downloaded_bytes.saturating_add(layer.size);
        }
    }
    Ok(Pulled {
        image: source.shown.clone(),
        pinned,
        index: chosen.index,
        platforms: chosen.platforms.clone(),
        manifest: chosen.digest,
        config: chosen.manifest.config.digest,
        platform: config.platform(),
        layers: built.layers,
        downloaded_bytes,
        cached_bytes,
        unpacked_bytes: built.unpacked_bytes,
        entries: built.entries,
        replaced: placed != Placed::New,
        up_to_date: false,
        mirror: source.mirror().map(str::to_owned),
        policy: accepted,
    })
}

/// The registry as the layer downloads see it: once `stop` is set, no download starts and
/// the running ones end at their next read (keeping what arrived, for the next pull), so
/// a failed pull does not wait for other layers it will not use.
struct Stoppable<'a> {
    inner: &'a dyn Origin,
    stop: Arc<AtomicBool>,
}

impl Origin for Stoppable<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        self.inner.manifest(name, max, known)
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        open_stoppable(self.inner, hex, &self.stop, || {
            self.inner.open_image(hex, resume)
        })
    }

    fn places(&self) -> Vec<&dyn Origin> {
        vec![self]
    }
}

/// The download of `sha256:<hex>` from `place` that `open` starts, unless `stop` is set
/// already; it ends with [`OriginError::Stopped`] at its next read once `stop` is set.
pub(super) fn open_stoppable(
    place: &dyn Origin,
    hex: &str,
    stop: &Arc<AtomicBool>,
    open: impl FnOnce() -> Result<Body, OriginError>,
) -> Result<Body, OriginError> {
    if stop.load(Ordering::SeqCst) {
        return Err(OriginError::Stopped {
            url: format!("{} (sha256:{hex})", place.describe()),
        });
    }
    Ok(stoppable_body(open()?, stop))
}

/// `body`, ending with [`OriginError::Stopped`] at its next read once `stop` is set.
fn stoppable_body(body: Body, stop: &Arc<AtomicBool>) -> Body {
    let (url, answer) = (body.url().to_owned(), body.answer());
    let (etag, last_modified) = (
        body.etag().map(str::to_owned),
        body.last_modified().map(str::to_owned),
    );
    let reader = StopReader {
        body,
        stop: Arc::clone(stop),
        url: url.clone(),
    };
    Body::new(url, answer, Box::new(reader)).with_validators(etag, last_modified)
}

/// A download's body that ends with [`OriginError::Stopped`] once `stop` is set.
struct StopReader {
    body: Body,
    stop: Arc<AtomicBool>,
    url: String,
}

impl Read for StopReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(OriginError::Stopped {
                url: self.url.clone(),
            }));
        }
        self.body.read(buf)
    }
}

/// Says that another pull has a blob's lock (it is downloading or checking the blob).
fn waiting_for(source: &Source, cache: &BlobCache, digest: &Digest, report: &dyn Report) {
    report.progress(&format!(
        "{}: waiting for another pull to finish with {}",
        source.shown,
        cache.blob_path(digest).display()
    ));
}

/// Warns once for what the whole tree left out.
fn summarise(source: &Source, built: &Built, report: &dyn Report) {
    if built.devices_skipped > 0 {
        report.warn(&format!(
            "{}: skipped {} device node(s): an image's /dev is populated by whoever runs it (systemd-nspawn does)",
            source.shown, built.devices_skipped
        ));
    }
    if built.xattrs_refused > 0 {
        report.warn(&format!(
            "{}: left out {} extended attribute(s): only user.* and security.capability are applied, and none on symbolic links",
            source.shown, built.xattrs_refused
        ));
    }
    if built.xattrs_unsupported > 0 {
        report.warn(&format!(
            "{}: the file system did not take {} extended attribute(s)",
            source.shown, built.xattrs_unsupported
        ));
    }
}

/// The config blob, from the cache or the registry (then kept in the cache), checked
/// against its digest and size.
fn fetch_config(
    source: &Source,
    cache: &BlobCache,
    config: &Descriptor,
    options: &PullOptions,
    report: &dyn Report,
) -> Result<Vec<u8>, PullError> {
    let io = |e| PullError::Io {
        image: source.shown.clone(),
        source: e,
    };
    let digest = config.digest;
    let _lock = cache
        .lock_blob(&digest, &|| waiting_for(source, cache, &digest, report))
        .map_err(io)?;
    match cache.lookup(&digest, config.size).map_err(io)? {
        Lookup::Verified => {
            if let Some(bytes) = cache.read_blob(&digest, config.size).map_err(io)? {
                return Ok(bytes);
            }
        }
        Lookup::Damaged { reason } => report.warn(&format!(
            "{}: the cached config {} was damaged ({reason}); downloading it again",
            source.shown,
            cache.blob_path(&digest).display()
        )),
        Lookup::Missing => {}
    }
    let bytes = source.retrying(options.retry, report, |client| {
        client.read_blob(&digest.to_string(), config.size)
    })?;
    if bytes.len() as u64 != config.size {
        return Err(PullError::Size {
            image: source.shown.clone(),
            what: "config",
            digest,
            expected: config.size,
            actual: bytes.len() as u64,
        });
    }
    cache.write_blob(&digest, &bytes).map_err(io)?;
    Ok(bytes)
}

/// A download failure as a layer error says it: the manifest, not a signature, named the
/// size and digest.
fn download_reason(e: ImageError) -> String {
    match e {
        ImageError::TooLong { url, expected } => {
            format!("{url} sent more than the {expected} bytes the manifest names")
        }
        ImageError::TooShort {
            url,
            expected,
            received,
        } => format!("{url} sent {received} bytes, not the {expected} the manifest names"),
        ImageError::WrongDigest { url, received, .. } => format!(
            "{url} sent content whose SHA-256 is {received}, not the digest the manifest names"
        ),
        other => other.to_string(),
    }
}

/// Makes sure one blob is in the cache, verified: found there, else downloaded. Says
/// whether it was found.
fn obtain(
    source: &Source,
    origin: &dyn Origin,
    cache: &BlobCache,
    job: &Job,
    count: usize,
    options: &PullOptions,
    report: &dyn Report,
) -> Result<bool, PullError> {
    let layer_error = |reason: String| PullError::Layer {
        image: source.shown.clone(),
        number: job.number,
        count,
        digest: job.digest,
        reason,
    };
    let io = |e: IoError| layer_error(e.to_string());
    let _lock = cache
        .lock_blob(&job.digest, &|| {
            waiting_for(source, cache, &job.digest, report)
        })
        .map_err(io)?;
    match cache.lookup(&job.digest, job.size).map_err(io)? {
        Lookup::Verified => {
            if options.progress {
                report.progress(&format!(
                    "{}: layer {} of {count} ({}) is in the cache",
                    source.shown, job.number, job.digest
                ));
            }
            return Ok(true);
        }
        Lookup::Damaged { reason } => report.warn(&format!(
            "{}: the cached layer {} was damaged ({reason}); downloading it again",
            source.shown,
            cache.blob_path(&job.digest).display()
        )),
        Lookup::Missing => {}
    }
    let wanted = Wanted {
        name: format!("layer {} of {count} ({})", job.number, job.digest),
        digest: *job.digest.as_bytes(),
        size: job.size,
    };
    let warn = |message: &str| report.warn(&format!("{}: {message}", source.shown));
    let progress = |message: &str| {
        if options.progress {
            report.progress(&format!("{}: {message}", source.shown));
        }
    };
    let bar =
        |done, total| report.download_bar(&format!("layer {} of {count}", job.number), done, total);
    let say = Say {
        warn: &warn,
        progress: &progress,
        bar: options
            .progress
            .then_some(&bar as &dyn Fn(u64, u64) -> indicatif::ProgressBar),
    };
    match image::download_blob(origin, cache.blobs(), &wanted, options.retry, &say) {
        Ok(Downloaded::Installed) => Ok(false),
        Ok(Downloaded::Withdrawn { url }) => Err(layer_error(format!(
            "the registry answered 410 Gone for {url}"
        ))),
        Err(e) => Err(layer_error(download_reason(e))),
    }
}

/// The distinct blobs of `layers`, in the order of their first use, and for each layer the
/// index of its blob: a layer an image names twice (an empty one, often) is fetched once.
fn plan_jobs(layers: &[Descriptor]) -> (Vec<Job>, Vec<usize>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut job_of: Vec<usize> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        match jobs.iter().position(|job| job.digest == layer.digest) {
            Some(j) => job_of.push(j),
            None => {
                job_of.push(jobs.len());
                jobs.push(Job {
                    digest: layer.digest,
                    size: layer.size,
                    number: i + 1,
                });
            }
        }
    }
    (jobs, job_of)
}

/// Downloads the layers (in parallel) and unpacks them (in order) into a new tree beside
/// DIR; see the module documentation.
#[allow(clippy::too_many_arguments)]
fn build(
    source: &Source,
    cache: &BlobCache,
    target: &ImageDir,
    manifest: &ImageManifest,
    config: &ImageConfig,
    compressions: &[LayerCompression],
    options: &PullOptions,
    report: &dyn Report,
) -> Result<Built, PullError> {
    let count = manifest.layers.len();
    let (jobs, job_of) = plan_jobs(&manifest.layers);
    let staging = target.create_staging()?;
    let tree = Tree::open(&staging).map_err(|source| ImageDirError::Tree {
        path: staging.clone(),
        source,
    })?;
    // A compression bomb must end in an error, not a full disk: no layer unpacks to more
    // bytes than the file system that holds the new tree has free.
    let mut limits = options.limits;
    if let Some(free) = crate::fs::free_space(&staging) {
        limits.uncompressed_bytes = limits.uncompressed_bytes.min(free);
    }
    let mut unpacker = Unpacker::new(
        tree,
        unpack::Options {
            owners: Owners::for_this_process(),
            limits,
        },
    );

    let next = AtomicUsize::new(0);
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Stoppable {
        inner: source.registry(),
        stop: Arc::clone(&stop),
    };
    let workers = options.parallel.clamp(1, MAX_PARALLEL).min(jobs.len());
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<(usize, Result<bool, PullError>)>();
        for _ in 0..workers {
            let sender = sender.clone();
            let (jobs, next, stop, origin) = (&jobs, &next, &stop, &origin);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let result = obtain(source, origin, cache, job, count, options, report);
                    if sender.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let result = unpack_in_order(
            source,
            cache,
            &mut unpacker,
            manifest,
            config,
            compressions,
            &jobs,
            &job_of,
            &receiver,
            report,
            options,
        );
        // No download starts now, and those under way end at their next read, keeping
        // what arrived: after a failure nothing more is needed, and after success there
        // is nothing left.
        stop.store(true, Ordering::SeqCst);
        result
    })
    .and_then(|mut built| {
        let finished = unpacker.finish().map_err(|e| PullError::Unpack {
            image: source.shown.clone(),
            source: Box::new(e),
        })?;
        built.xattrs_unsupported = built
            .xattrs_unsupported
            .saturating_add(finished.xattrs_unsupported);
        Ok(built)
    })
}

/// The main thread's part of [`build`]: waits for each layer's blob in turn and unpacks it.
#[allow(clippy::too_many_arguments)]
fn unpack_in_order(
    source: &Source,
    cache: &BlobCache,
    unpacker: &mut Unpacker,
    manifest: &ImageManifest,
    config: &ImageConfig,
    compressions: &[LayerCompression],
    jobs: &[Job],
    job_of: &[usize],
    receiver: &mpsc::Receiver<(usize, Result<bool, PullError>)>,
    report: &dyn Report,
    options: &PullOptions,
) -> Result<Built, PullError> {
    let count = manifest.layers.len();
    let mut done: Vec<Option<bool>> = vec![None; jobs.len()];
    let mut built = Built::default();
    let layers = manifest
        .layers
        .iter()
        .zip(compressions)
        .zip(&config.rootfs.diff_ids)
        .zip(job_of);
    for (i, (((layer, compression), diff_id), &j)) in layers.enumerate() {
        let number = i + 1;
        let layer_error = |reason: String| PullError::Layer {
            image: source.shown.clone(),
            number,
            count,
            digest: layer.digest,
            reason,
        };
        // What has arrived meanwhile first: a failed download of a later layer ends the
        // pull now rather than after this layer is unpacked for nothing.
        while let Ok((k, result)) = receiver.try_recv() {
            let found = result?;
            if let Some(slot) = done.get_mut(k) {
                *slot = Some(found);
            }
        }
        let from_cache = loop {
            if let Some(Some(found)) = done.get(j) {
                break *found;
            }
            match receiver.recv() {
                Ok((k, Ok(found))) => {
                    if let Some(slot) = done.get_mut(k) {
                        *slot = Some(found);
                    }
                }
                Ok((_, Err(e))) => return Err(e),
                // Every download thread ended without this blob: only after an error,
                // which was received first.
                Err(_) => return Err(layer_error("its download did not finish".to_owned())),
            }
        };
        if options.progress {
            report.progress(&format!(
                "{}: unpacking layer {number} of {count} ({})",
                source.shown, layer.digest
            ));
        }
        let blob = cache
            .open_blob(&layer.digest)
            .map_err(|e| layer_error(e.to_string()))?
            .ok_or_else(|| {
                layer_error(format!(
                    "{} vanished from the cache",
                    cache.blob_path(&layer.digest).display()
                ))
            })?;
        let digest_text = layer.digest.to_string();
        let unpack_layer = unpack::Layer {
            digest: &digest_text,
            compression: compression_of(*compression),
            diff_id: Some(*diff_id.as_bytes()),
        };
        let stats = unpacker
            .apply_layer(&unpack_layer, BufReader::with_capacity(READ_BUFFER, blob))
            .map_err(|e| PullError::Unpack {
                image: source.shown.clone(),
                source: Box::new(e),
            })?;
        built.layers.push(PulledLayer {
            digest: layer.digest,
            size: layer.size,
            from_cache,
        });
        built.unpacked_bytes = built
            .unpacked_bytes
            .saturating_add(stats.uncompressed_bytes);
        built.entries = built.entries.saturating_add(stats.entries);
        built.devices_skipped = built.devices_skipped.saturating_add(stats.devices_skipped);
        built.xattrs_refused = built.xattrs_refused.saturating_add(stats.xattrs_refused);
        built.xattrs_unsupported = built
            .xattrs_unsupported
            .saturating_add(stats.xattrs_unsupported);
    }
    Ok(built)
}

/// How to resolve for `tako image digest`.
#[derive(Debug, Clone)]
pub struct DigestOptions {
    pub platform: WantedPlatform,
    pub auth: Auth,
    pub retry: RetryPolicy,
    /// List the platform of a single-platform image too (fetching its config).
    pub list_platforms: bool,
    /// The signature policy (policy.json) to apply.
    pub policy: PolicyChoice,
}

/// Resolves `image` to the digests `tako image digest` prints, and the policy that
/// accepted it (signatures checked); downloads no layer and writes nothing.
pub fn digest(
    image: &str,
    options: &DigestOptions,
    report: &dyn Report,
) -> Result<(resolve::Described, Option<Applied>), PullError> {
    Reference::parse(image)?;
    let (image, endpoints) = registries::route(image)?;
    let mut applied = policy::check(&options.policy, &image)?;
    let source = Source::connect(
        image,
        endpoints,
        &options.auth,
        TransportConfig::default(),
        None,
    )?;
    let fetch_config = |manifest: &ImageManifest| -> Result<ImageConfig, PullError> {
        let config = &manifest.config;
        let bytes = source.retrying(options.retry, report, |client| {
            client.read_blob(&config.digest.to_string(), config.size)
        })?;
        ImageConfig::parse(&bytes).map_err(|e| PullError::Config {
            image: source.shown.clone(),
            digest: config.digest,
            source: Box::new(e),
        })
    };
    let described = resolve::describe(
        &source,
        &options.platform,
        &fetch_config,
        options.list_platforms,
        options.retry,
        report,
    )?;
    if let Some(applied) = &mut applied {
        let manifest = described.manifest.unwrap_or(described.digest);
        policy::verify(
            applied,
            &source.image,
            &source,
            &candidates(described.index, manifest),
            options.retry,
            report,
        )?;
    }
    Ok((described, applied))
}

/// The digests whose cosign signatures may accept an image: the index it was chosen from,
/// if any, and its manifest.
pub fn candidates(index: Option<Digest>, manifest: Digest) -> Vec<(Digest, bool)> {
    let mut candidates: Vec<(Digest, bool)> = index.map(|d| (d, true)).into_iter().collect();
    if index != Some(manifest) {
        candidates.push((manifest, false));
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: crate::format::oci::media::OCI_LAYER_TAR_GZIP.to_owned(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    #[test]
    fn a_layer_an_image_names_twice_is_fetched_once_and_unpacked_twice() {
        let (empty, base, app) = (layer(b""), layer(b"base"), layer(b"app"));
        let layers = [base.clone(), empty.clone(), app.clone(), empty.clone()];
        let (jobs, job_of) = plan_jobs(&layers);
        let digests: Vec<Digest> = jobs.iter().map(|j| j.digest).collect();
        assert_eq!(digests, [base.digest, empty.digest, app.digest]);
        assert_eq!(job_of, [0, 1, 2, 1]);
        // Messages name the first layer that uses a blob.
        let numbers: Vec<usize> = jobs.iter().map(|j| j.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
    }

    #[test]
    fn every_layer_compression_reads_with_the_matching_decompressor() {
        assert_eq!(compression_of(LayerCompression::None), Compression::None);
        assert_eq!(compression_of(LayerCompression::Gzip), Compression::Gzip);
        assert_eq!(compression_of(LayerCompression::Zstd), Compression::Zstd);
    }

    #[test]
    fn a_bad_download_is_told_against_the_manifest_not_a_signature() {
        let url = "http://r/v2/a/blobs/sha256:00".to_owned();
        for e in [
            ImageError::TooLong {
                url: url.clone(),
                expected: 10,
            },
            ImageError::TooShort {
                url: url.clone(),
                expected: 10,
                received: 3,
            },
            ImageError::WrongDigest {
                url: url.clone(),
                expected: "00".into(),
                received: "11".into(),
            },
        ] {
            let reason = download_reason(e);
            assert!(reason.contains("the manifest names"), "{reason}");
            assert!(!reason.contains("signed"), "{reason}");
            assert!(reason.starts_with(&url), "{reason}");
        }
    }
}
