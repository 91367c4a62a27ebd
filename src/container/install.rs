//! `Kind=container` on a host: the signed digest of a version names a container image's
//! manifest or index; this builds its tree as `DEST/store/<hex>/` for `update::fetch`, which
//! chose the version and moves `latest` once the tree is complete.
//!
//! ```text
//! DEST/blobs/sha256/<hex>          every blob downloaded, verified: the signed manifest or
//!                                  index, the platform manifest, the config, the layers
//! DEST/store/<hex>.tako-new/       the tree being built (removed by the next run)
//! DEST/store/<hex>/rootfs/         the unpacked tree
//! DEST/store/<hex>/manifest.json   the signed bytes (their SHA-256 is <hex>)
//! DEST/store/<hex>/config.json     the image's config, checked against its digest
//! DEST/store/<hex>/files           every entry of rootfs/ as unpacked: type, mode, owner,
//!                                  size, SHA-256 (`format::tree_record`)
//! ```
//!
//! Every byte is checked before it is used: the signed manifest or index against the
//! signed size and SHA-256, a platform manifest, the config and each layer against the
//! digest and size of the descriptor naming them, each layer's uncompressed content against
//! the config's `diff_ids`. Blobs are downloaded by the resumable downloader of
//! `update::image` (partials, retries, mirrors), into `DEST/blobs/sha256/`, where a blob
//! already there is hashed and not downloaded again: a layer two versions share travels
//! once. Layers download three at a time, as `tako image pull` does by default. The tree
//! is unpacked with `tako image pull`'s rules (`container::unpack`), built aside and
//! renamed into place whole, so `latest` only ever names a complete tree.

use std::io::BufReader;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use crate::container::unpack::{self, Limits, Owners, Unpacker};
use crate::destination::Destination;
use crate::destination::blob_cache::{BlobCache, Lookup};
use crate::format::config::Config;
use crate::format::manifest::Entry;
use crate::format::oci::config::{ImageConfig, MAX_CONFIG_SIZE};
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{
    self as oci_manifest, Descriptor, MAX_MANIFEST_SIZE, ParsedManifest,
};
use crate::format::oci::media::LayerCompression;
use crate::format::oci::platform::{self, Platform};
use crate::fs::tree::{RelPath, Tree};
use crate::fs::{Dir, IoError};
use crate::origin::{Body, ManifestFile, ManifestName, Origin, OriginError, Resume, Validators};
use crate::stream::decompress::Compression;
use crate::update::fetch::{FetchError, TreeInstalled, TreeTransfer, Trees};
use crate::update::image::{self, Downloaded, Say, Wanted};
use crate::update::retry::RetryPolicy;

/// The signed bytes in a tree's directory.
pub const MANIFEST_FILE: &str = crate::destination::trees::MANIFEST_FILE;
/// The image's config in a tree's directory.
pub const CONFIG_FILE: &str = "config.json";
/// The unpacked tree in a tree's directory.
pub const ROOTFS: &str = "rootfs";
/// The record of every entry of `rootfs/` as unpacked (`format::tree_record`), which
/// `tako status --verify` compares the tree with.
pub const RECORD_FILE: &str = "files";
/// The suffix of a tree being built, beside where it goes.
const BUILDING: &str = ".tako-new";
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = crate::container::resolve::MAX_INDEX_DEPTH;
/// The buffer a layer blob is read through while it is unpacked.
const READ_BUFFER: usize = 256 * 1024;

/// Why a container image could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "version {version}: the signed image is {size} bytes, more than the {max} a container image's manifest or index may be (is this Kind=container config pointed at an origin of files?)"
    )]
    TooLarge {
        version: String,
        size: u64,
        max: u64,
    },
    #[error("version {version}: {what} {digest}: {reason}")]
    Invalid {
        version: String,
        what: &'static str,
        digest: Digest,
        reason: String,
    },
    #[error("version {version}: index {digest}: {source}")]
    Platform {
        version: String,
        digest: Digest,
        #[source]
        source: platform::PlatformError,
    },
    #[error("version {version}: indexes nest more than {MAX_INDEX_DEPTH} deep")]
    TooDeep { version: String },
    #[error("version {version}: {what} {digest}: {source}")]
    Download {
        version: String,
        what: String,
        digest: Digest,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("version {version}: {what} {digest} was withdrawn (410 Gone from {url})")]
    Gone {
        version: String,
        what: String,
        digest: Digest,
        url: String,
    },
    #[error("version {version}: {source}")]
    Unpack {
        version: String,
        #[source]
        source: Box<unpack::UnpackError>,
    },
    #[error("version {version}: the registries.conf mirrors: {source}")]
    Mirrors {
        version: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: {source}", path.display())]
    Tree {
        path: std::path::PathBuf,
        #[source]
        source: crate::fs::tree::TreeError,
    },
}

impl From<TreeError> for FetchError {
    fn from(e: TreeError) -> FetchError {
        FetchError::Container(Box::new(e))
    }
}

/// The container side of `tako fetch`: builds trees for `update::fetch`.
pub struct HostTrees {
    /// The platform of this host, for configs without `Platform=`; `None` if none is known
    /// (an error then names `Platform=`).
    pub host: Result<Platform, platform::PlatformError>,
    /// How the mirrors the host's registries.conf gives a registry origin are reached.
    pub transport: crate::origin::Transport,
}

impl Trees for HostTrees {
    fn intact(&self, store: &Dir, entry: &Entry) -> Result<bool, FetchError> {
        Ok(tree_intact(store, entry)?)
    }

    fn install(
        &self,
        dest: &Destination,
        store: &Dir,
        entry: &Entry,
        config: &Config,
        origin: &dyn Origin,
        retry: RetryPolicy,
        say: &Say<'_>,
    ) -> Result<TreeInstalled, FetchError> {
        let wanted = match &config.platform {
            Some(platform) => platform.clone(),
            None => self.host.clone().map_err(|source| TreeError::Platform {
                version: crate::format::text::untrusted(entry.version.as_str()),
                digest: Digest::from(entry.digest),
                source,
            })?,
        };
        let mirrors = registries_conf_mirrors(config, entry, &self.transport)?;
        let mirrored = Mirrored { mirrors, origin };
        Ok(install(dest, store, entry, &wanted, &mirrored, retry, say)?)
    }
}

/// The mirrors the host's registries.conf (`container::registries`, as `tako image pull`
/// reads it) gives each registry origin of `config`, for the image `entry` pins: a
/// container image is fetched by digest, so every mirror that serves digests applies. The
/// signed manifest itself (a tag) still comes from the origins only. A blocked registry,
/// or a registries.conf that cannot be read, stops the fetch, as it stops a pull.
fn registries_conf_mirrors(
    config: &Config,
    entry: &Entry,
    transport: &crate::origin::Transport,
) -> Result<Vec<Box<dyn Origin>>, TreeError> {
    use crate::format::oci::reference::Reference;
    let version = crate::format::text::untrusted(entry.version.as_str());
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| TreeError::Mirrors {
        version: version.clone(),
        source,
    };
    let mut mirrors: Vec<Box<dyn Origin>> = Vec::new();
    for origin in &config.origins {
        if !Reference::is_registry_url(&origin.url) {
            continue;
        }
        let image = Reference::parse(&origin.url)
            .map_err(|e| failed(Box::new(e)))?
            .with_digest(Digest::from(entry.digest));
        let endpoints =
            crate::container::registries::endpoints(&image).map_err(|e| failed(Box::new(e)))?;
        for endpoint in endpoints.iter().filter(|e| e.mirror.is_some()) {
            let scheme = if endpoint.insecure { "oci+http" } else { "oci" };
            let url = format!(
                "{scheme}://{}/{}",
                endpoint.reference.registry(),
                endpoint.reference.repository()
            );
            let mirror = crate::origin::registry::Registry::new(&url, transport.clone())
                .map_err(|e| failed(Box::new(e)))?;
            mirrors.push(Box::new(mirror));
        }
    }
    Ok(mirrors)
}

/// An origin with the registries.conf mirrors of its registries before it, for what is
/// fetched by digest: blobs and manifests below the signed one.
struct Mirrored<'a> {
    mirrors: Vec<Box<dyn Origin>>,
    origin: &'a dyn Origin,
}

impl Origin for Mirrored<'_> {
    fn describe(&self) -> String {
        self.origin.describe()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        self.origin.manifest(name, max, known)
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        match self.mirrors.first() {
            Some(mirror) => mirror.open_image(hex, resume),
            None => self.origin.open_image(hex, resume),
        }
    }

    /// The first place that has it; the caller checks the bytes against the digest.
    fn image_manifest(&self, hex: &str, max: u64) -> Result<Vec<u8>, OriginError> {
        let mut failed = None;
        for place in self.mirrors.iter().map(|m| m.as_ref() as &dyn Origin) {
            match place.image_manifest(hex, max) {
                Ok(bytes) => return Ok(bytes),
                Err(e) => failed = Some(e),
            }
        }
        match self.origin.image_manifest(hex, max) {
            Ok(bytes) => Ok(bytes),
            // The origin's own answer is the one to report, unless it had none.
            Err(e) if failed.is_none() || e.kind() != crate::origin::Kind::NotFound => Err(e),
            Err(e) => Err(failed.unwrap_or(e)),
        }
    }

    fn places(&self) -> Vec<&dyn Origin> {
        let mut places: Vec<&dyn Origin> = self.mirrors.iter().flat_map(|m| m.places()).collect();
        places.extend(self.origin.places());
        places
    }
}

/// The platform a config installs, as `os/arch[/variant]`: its `Platform=`, else this
/// host's; `None` for `Kind=file`, and when neither is known.
pub fn platform_of(config: &Config) -> Option<String> {
    if config.kind != crate::format::config::Kind::Container {
        return None;
    }
    match &config.platform {
        Some(platform) => Some(platform.to_string()),
        None => crate::container::resolve::host_platform()
            .ok()
            .map(|p| p.to_string()),
    }
}

/// Whether `store/<hex>` is a directory (not a symlink) holding the signed bytes as
/// `manifest.json` and a `rootfs` directory. It was renamed into place only when complete.
pub fn tree_intact(store: &Dir, entry: &Entry) -> Result<bool, IoError> {
    let Ok(Some(dir)) = store.subdir(&entry.digest_hex()) else {
        return Ok(false);
    };
    let Ok(Some(bytes)) = dir.read_file(MANIFEST_FILE, entry.size, "read") else {
        return Ok(false);
    };
    if bytes.len() as u64 != entry.size || *Digest::of(&bytes).as_bytes() != entry.digest {
        return Ok(false);
    }
    Ok(matches!(dir.subdir(ROOTFS), Ok(Some(_))))
}

/// The download of container blobs: the same places as the origin, each asked for
/// `blobs/sha256/<hex>` (a registry: the blob) instead of `store/<hex>`. With a `stop`
/// flag, once it is set no download starts and running ones end at their next read
/// (keeping their partials), so a failed update does not wait for layers it will not use.
struct BlobPlace<'a>(&'a dyn Origin, Option<Arc<AtomicBool>>);

impl Origin for BlobPlace<'_> {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        self.0.manifest(name, max, known)
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        match &self.1 {
            Some(stop) => crate::container::pull::open_stoppable(self.0, hex, stop, || {
                self.0.open_blob(hex, resume)
            }),
            None => self.0.open_blob(hex, resume),
        }
    }

    fn places(&self) -> Vec<&dyn Origin> {
        vec![self]
    }
}

/// Every place of an origin as a [`BlobPlace`].
struct BlobPlaces<'a>(Vec<BlobPlace<'a>>);

impl<'a> BlobPlaces<'a> {
    fn of(origin: &'a dyn Origin, stop: Option<&Arc<AtomicBool>>) -> BlobPlaces<'a> {
        BlobPlaces(
            origin
                .places()
                .into_iter()
                .map(|place| BlobPlace(place, stop.cloned()))
                .collect(),
        )
    }
}

impl Origin for BlobPlaces<'_> {
    fn describe(&self) -> String {
        self.0.first().map(|p| p.describe()).unwrap_or_default()
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        match self.0.first() {
            Some(place) => place.manifest(name, max, known),
            None => Err(OriginError::no_place()),
        }
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        match self.0.first() {
            Some(place) => place.open_image(hex, resume),
            None => Err(OriginError::no_place()),
        }
    }

    fn places(&self) -> Vec<&dyn Origin> {
        self.0.iter().map(|p| p as &dyn Origin).collect()
    }
}

/// Layers downloaded at once, as `tako image pull` does by default.
const PARALLEL: usize = crate::container::pull::DEFAULT_PARALLEL;

/// What a layer download thread hands the thread that reports.
enum Message {
    Warn(String),
    Progress(String),
    /// A progress bar is wanted (`Say::bar`); it is sent back.
    Bar(u64, u64, mpsc::Sender<indicatif::ProgressBar>),
    /// The download of `missing[i]` ended.
    Done(usize, Result<Downloaded, image::ImageError>),
}

/// One run's view of the blobs: what it downloaded and reused.
struct Blobs<'a> {
    cache: BlobCache,
    origin: &'a dyn Origin,
    retry: RetryPolicy,
    say: &'a Say<'a>,
    version: String,
    downloaded: u64,
    /// Layers found in `blobs/sha256/`, not downloaded.
    reused_layers: usize,
}

impl Blobs<'_> {
    /// Makes sure the blob `digest` of `size` bytes is in `blobs/sha256/`, verified:
    /// found there (hashed), else downloaded from the origin's places.
    fn obtain(&mut self, what: &str, digest: Digest, size: u64) -> Result<(), TreeError> {
        if self.lookup(digest, size)? {
            return Ok(());
        }
        self.download(what, digest, size)
    }

    /// Whether the blob is in `blobs/sha256/`, verified (hashed); a damaged one is said.
    fn lookup(&self, digest: Digest, size: u64) -> Result<bool, TreeError> {
        match self.cache.lookup(&digest, size)? {
            Lookup::Verified => return Ok(true),
            Lookup::Damaged { reason } => (self.say.warn)(&format!(
                "{} was damaged ({reason}); downloading it again",
                self.cache.blob_path(&digest).display()
            )),
            Lookup::Missing => {}
        }
        Ok(false)
    }

    /// Downloads the blob into `blobs/sha256/`, verified.
    fn download(&mut self, what: &str, digest: Digest, size: u64) -> Result<(), TreeError> {
        let wanted = Wanted {
            name: format!("{} {what} {digest}", self.version),
            digest: *digest.as_bytes(),
            size,
        };
        let places = BlobPlaces::of(self.origin, None);
        let result =
            image::download_blob(&places, self.cache.blobs(), &wanted, self.retry, self.say);
        self.settle(what, digest, size, result)
    }

    /// Counts a finished download, or turns its failure into the update's error.
    fn settle(
        &mut self,
        what: &str,
        digest: Digest,
        size: u64,
        result: Result<Downloaded, image::ImageError>,
    ) -> Result<(), TreeError> {
        match result {
            Ok(Downloaded::Installed) => {
                self.downloaded = self.downloaded.saturating_add(size);
                Ok(())
            }
            Ok(Downloaded::Withdrawn { url }) => Err(TreeError::Gone {
                version: self.version.clone(),
                what: what.to_owned(),
                digest,
                url,
            }),
            Err(e) => Err(TreeError::Download {
                version: self.version.clone(),
                what: what.to_owned(),
                digest,
                source: Box::new(e),
            }),
        }
    }

    /// Makes sure every layer is in `blobs/sha256/`, verified: those already there are
    /// hashed, the others downloaded [`PARALLEL`] at a time (as `tako image pull` does),
    /// each as [`Blobs::download`] downloads one. Messages and progress bars of the download
    /// threads are given on this thread, which waits for them all.
    fn obtain_layers(&mut self, layers: &[Descriptor]) -> Result<(), TreeError> {
        let count = layers.len();
        let mut missing: Vec<(String, Digest, u64)> = Vec::new();
        let mut seen: Vec<Digest> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            // A layer two places of the manifest name is hashed or downloaded once.
            if seen.contains(&layer.digest) {
                continue;
            }
            seen.push(layer.digest);
            let what = format!("layer {} of {count}", i + 1);
            if self.lookup(layer.digest, layer.size)? {
                self.reused_layers += 1;
            } else {
                missing.push((what, layer.digest, layer.size));
            }
        }
        if missing.len() < 2 {
            for (what, digest, size) in missing {
                self.download(&what, digest, size)?;
            }
            return Ok(());
        }

        let next = AtomicUsize::new(0);
        let stop = Arc::new(AtomicBool::new(false));
        let first_failure = AtomicUsize::new(usize::MAX);
        let workers = PARALLEL.min(missing.len());
        let (cache, origin, retry) = (&self.cache, self.origin, self.retry);
        let bars = self.say.bar.is_some();
        let results = std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel::<Message>();
            for _ in 0..workers {
                let sender = sender.clone();
                let (missing, next, stop, first_failure) = (&missing, &next, &stop, &first_failure);
                let version = self.version.clone();
                scope.spawn(move || {
                    let warn = |m: &str| {
                        let _ = sender.send(Message::Warn(m.to_owned()));
                    };
                    let progress = |m: &str| {
                        let _ = sender.send(Message::Progress(m.to_owned()));
                    };
                    // The bar is made on the thread that owns the terminal's reporter.
                    let bar = |done: u64, total: u64| {
                        let (reply, answer) = mpsc::channel();
                        let _ = sender.send(Message::Bar(done, total, reply));
                        answer
                            .recv()
                            .unwrap_or_else(|_| indicatif::ProgressBar::hidden())
                    };
                    let say = Say {
                        warn: &warn,
                        progress: &progress,
                        bar: bars.then_some(&bar as &dyn Fn(u64, u64) -> _),
                    };
                    let places = BlobPlaces::of(origin, Some(stop));
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((what, digest, size)) = missing.get(i) else {
                            break;
                        };
                        let wanted = Wanted {
                            name: format!("{version} {what} {digest}"),
                            digest: *digest.as_bytes(),
                            size: *size,
                        };
                        let result =
                            image::download_blob(&places, cache.blobs(), &wanted, retry, &say);
                        // The download that stops the others is the failure to report:
                        // theirs are only the stop.
                        if result.is_err()
                            && stop
                                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                        {
                            first_failure.store(i, Ordering::SeqCst);
                        }
                        if sender.send(Message::Done(i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut results = Vec::new();
            // Until every thread has ended (and so dropped its sender).
            for message in receiver {
                match message {
                    Message::Warn(m) => (self.say.warn)(&m),
                    Message::Progress(m) => (self.say.progress)(&m),
                    Message::Bar(done, total, reply) => {
                        let bar = match self.say.bar {
                            Some(bar) => bar(done, total),
                            None => indicatif::ProgressBar::hidden(),
                        };
                        let _ = reply.send(bar);
                    }
                    Message::Done(i, result) => results.push((i, result)),
                }
            }
            results
        });
        // The failure that stopped the others is the one reported, then any other in the
        // manifest's order.
        let mut results = results;
        let first = first_failure.load(Ordering::SeqCst);
        results.sort_by_key(|(i, _)| (*i != first, *i));
        for (i, result) in results {
            if let Some((what, digest, size)) = missing.get(i) {
                self.settle(what, *digest, *size, result)?;
            }
        }
        Ok(())
    }

    /// A manifest below an index, from `blobs/sha256/` or the origin, checked against
    /// the descriptor's digest and size, and kept in `blobs/sha256/`.
    fn manifest(&mut self, digest: Digest, size: u64) -> Result<Vec<u8>, TreeError> {
        let invalid = |reason: String| TreeError::Invalid {
            version: self.version.clone(),
            what: "manifest",
            digest,
            reason,
        };
        if size > MAX_MANIFEST_SIZE {
            return Err(invalid(format!(
                "its descriptor says {size} bytes, more than the {MAX_MANIFEST_SIZE} a manifest may be"
            )));
        }
        if matches!(self.cache.lookup(&digest, size)?, Lookup::Verified)
            && let Some(bytes) = self.cache.read_blob(&digest, size)?
        {
            return Ok(bytes);
        }
        let bytes = self
            .origin
            .image_manifest(&digest.hex(), size)
            .map_err(|e| TreeError::Download {
                version: self.version.clone(),
                what: "manifest".to_owned(),
                digest,
                source: Box::new(e),
            })?;
        let got = Digest::of(&bytes);
        if got != digest || bytes.len() as u64 != size {
            return Err(invalid(format!(
                "the origin sent {} bytes whose digest is {got}, not the {size} bytes the index names",
                bytes.len()
            )));
        }
        self.downloaded = self.downloaded.saturating_add(size);
        self.cache.write_blob(&digest, &bytes)?;
        Ok(bytes)
    }
}

fn compression_of(layer: LayerCompression) -> Compression {
    match layer {
        LayerCompression::None => Compression::None,
        LayerCompression::Gzip => Compression::Gzip,
        LayerCompression::Zstd => Compression::Zstd,
    }
}

/// Builds the tree of `entry` for `wanted` as `store/<hex>/`; see the module documentation.
pub fn install(
    dest: &Destination,
    store: &Dir,
    entry: &Entry,
    wanted: &Platform,
    origin: &dyn Origin,
    retry: RetryPolicy,
    say: &Say<'_>,
) -> Result<TreeInstalled, TreeError> {
    let version = crate::format::text::untrusted(entry.version.as_str());
    let top = Digest::from(entry.digest);
    if entry.size > MAX_MANIFEST_SIZE {
        return Err(TreeError::TooLarge {
            version,
            size: entry.size,
            max: MAX_MANIFEST_SIZE,
        });
    }
    let cache = BlobCache::open(dest.path())?;
    let mut downloaded = 0u64;
    // The signed bytes: through the downloader of files, so that they come from where a
    // file image does (`store/<hex>`, a registry's blob), with its checks and its 410.
    match cache.lookup(&top, entry.size)? {
        Lookup::Verified => {}
        Lookup::Damaged { .. } | Lookup::Missing => {
            match image::download(origin, cache.blobs(), entry, retry, say).map_err(|e| {
                TreeError::Download {
                    version: version.clone(),
                    what: "image".to_owned(),
                    digest: top,
                    source: Box::new(e),
                }
            })? {
                Downloaded::Installed => downloaded = entry.size,
                Downloaded::Withdrawn { url } => return Ok(TreeInstalled::Withdrawn(url)),
            }
        }
    }
    let invalid = |what: &'static str, digest: Digest, reason: String| TreeError::Invalid {
        version: version.clone(),
        what,
        digest,
        reason,
    };
    let signed = cache
        .read_blob(&top, entry.size)?
        .filter(|bytes| Digest::of(bytes) == top)
        .ok_or_else(|| invalid("image", top, "it vanished from blobs/sha256/".to_owned()))?;
    let mut blobs = Blobs {
        cache,
        origin,
        retry,
        say,
        version: version.clone(),
        downloaded,
        reused_layers: 0,
    };

    // Down the indexes to the image manifest for the platform.
    let mut digest = top;
    let mut parsed = oci_manifest::parse(&signed, None)
        .map_err(|e| invalid("manifest or index", top, e.to_string()))?;
    let mut depth = 0;
    let manifest = loop {
        match parsed {
            ParsedManifest::Image { manifest, .. } => break manifest,
            ParsedManifest::Index { index, .. } => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(TreeError::TooDeep { version });
                }
                let chosen =
                    platform::choose(&index, wanted).map_err(|source| TreeError::Platform {
                        version: version.clone(),
                        digest,
                        source,
                    })?;
                let (next, size) = (chosen.digest, chosen.size);
                let bytes = blobs.manifest(next, size)?;
                parsed = oci_manifest::parse(&bytes, None)
                    .map_err(|e| invalid("manifest", next, e.to_string()))?;
                digest = next;
            }
        }
    };
    let compressions = manifest
        .layer_compressions()
        .map_err(|e| invalid("manifest", digest, e.to_string()))?;

    // The config: checked, and checked against the platform wanted.
    let config_digest = manifest.config.digest;
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(invalid(
            "config",
            config_digest,
            format!("it is larger than {MAX_CONFIG_SIZE} bytes"),
        ));
    }
    blobs.obtain("config", config_digest, manifest.config.size)?;
    let config_bytes = blobs
        .cache
        .read_blob(&config_digest, manifest.config.size)?
        .ok_or_else(|| invalid("config", config_digest, "it vanished".to_owned()))?;
    let config = ImageConfig::parse(&config_bytes)
        .map_err(|e| invalid("config", config_digest, e.to_string()))?;
    config
        .check_layers(&manifest)
        .map_err(|e| invalid("config", config_digest, e.to_string()))?;
    platform::check_image_platform(config.platform().as_ref(), wanted).map_err(|source| {
        TreeError::Platform {
            version: version.clone(),
            digest,
            source,
        }
    })?;

    // Every layer the destination lacks, several at once; one two layers (or two
    // versions) share, once.
    blobs.obtain_layers(&manifest.layers)?;

    // The tree, built aside.
    let hex = entry.digest_hex();
    let building = format!("{hex}{BUILDING}");
    let store_tree = Tree::open(store.path()).map_err(|source| TreeError::Tree {
        path: store.path().to_path_buf(),
        source,
    })?;
    let tree_error = |source| TreeError::Tree {
        path: store.path().join(&building),
        source,
    };
    let slot_of = |name: &str| -> Result<crate::fs::tree::Slot, TreeError> {
        let rel = RelPath::parse(name.as_bytes()).map_err(|e| {
            IoError::new(
                "use",
                &store.path().join(name),
                std::io::Error::other(format!("{e:?}")),
            )
        })?;
        store_tree
            .make_slot(&rel, &mut |_| {})
            .map_err(|source| TreeError::Tree {
                path: store.path().join(name),
                source,
            })
    };
    let staging = slot_of(&building)?;
    staging.remove().map_err(tree_error)?;
    staging.make_dir().map_err(tree_error)?;
    let built = build(
        store,
        &building,
        &blobs.cache,
        &manifest,
        &config,
        &compressions,
        &signed,
        &config_bytes,
        &version,
    );
    if let Err(e) = built {
        let _ = staging.remove();
        return Err(e);
    }
    // Every file on disk before the tree gets its name.
    let staged = store.path().join(&building);
    let file =
        std::fs::File::open(&staged).map_err(|e| IoError::new("open directory", &staged, e))?;
    rustix::fs::syncfs(&file)
        .map_err(|e| IoError::new("sync the file system of", &staged, e.into()))?;
    drop(file);
    let target = slot_of(&hex)?;
    match target.kind().map_err(tree_error)? {
        None => staging.move_to(&target).map_err(tree_error)?,
        // A damaged tree (or something planted) under the name: swapped out whole, then
        // removed through directory handles.
        Some(_) => {
            staging.exchange(&target).map_err(tree_error)?;
            store.sync()?;
            if let Err(e) = staging.remove() {
                (say.warn)(&format!(
                    "the tree replaced at {} could not be removed entirely ({e}); the next run removes it",
                    store.path().join(&hex).display()
                ));
            }
        }
    }
    store.sync()?;
    Ok(TreeInstalled::Built(TreeTransfer {
        downloaded: blobs.downloaded,
        reused_layers: blobs.reused_layers,
    }))
}

/// Unpacks the layers into `store/<building>/rootfs` and writes the verified manifest and
/// config beside it.
#[allow(clippy::too_many_arguments)]
fn build(
    store: &Dir,
    building: &str,
    cache: &BlobCache,
    manifest: &oci_manifest::ImageManifest,
    config: &ImageConfig,
    compressions: &[LayerCompression],
    signed: &[u8],
    config_bytes: &[u8],
    version: &str,
) -> Result<(), TreeError> {
    let dir = store.subdir(building)?.ok_or_else(|| {
        IoError::new(
            "open directory",
            &store.path().join(building),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let rootfs = dir.ensure_subdir(ROOTFS)?;
    let tree = Tree::open(rootfs.path()).map_err(|source| TreeError::Tree {
        path: rootfs.path().to_path_buf(),
        source,
    })?;
    let mut limits = Limits::default();
    if let Some(free) = crate::fs::free_space(rootfs.path()) {
        limits.uncompressed_bytes = limits.uncompressed_bytes.min(free);
    }
    let mut unpacker = Unpacker::new(
        tree,
        unpack::Options {
            owners: Owners::for_this_process(),
            limits,
        },
    );
    let unpack_error = |e| TreeError::Unpack {
        version: version.to_owned(),
        source: Box::new(e),
    };
    let layers = manifest
        .layers
        .iter()
        .zip(compressions)
        .zip(&config.rootfs.diff_ids);
    for ((layer, compression), diff_id) in layers {
        let blob = cache.open_blob(&layer.digest)?.ok_or_else(|| {
            IoError::new(
                "open",
                &cache.blob_path(&layer.digest),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
        let digest_text = layer.digest.to_string();
        let unpack_layer = unpack::Layer {
            digest: &digest_text,
            compression: compression_of(*compression),
            diff_id: Some(*diff_id.as_bytes()),
        };
        unpacker
            .apply_layer(&unpack_layer, BufReader::with_capacity(READ_BUFFER, blob))
            .map_err(unpack_error)?;
    }
    unpacker.finish().map_err(unpack_error)?;
    // Read back from the disk rather than gathered while unpacking: what is recorded is what
    // a later walk will see (modes applied, owners mapped, hard links resolved).
    let record = crate::fs::tree_record::walk(&dir, ROOTFS).map_err(|source| TreeError::Tree {
        path: rootfs.path().to_path_buf(),
        source,
    })?;
    dir.write_file(RECORD_FILE, record.record.render().as_bytes())?;
    dir.write_file(MANIFEST_FILE, signed)?;
    dir.write_file(CONFIG_FILE, config_bytes)?;
    Ok(())
}

/// The largest record of files read: a million entries with long paths.
const MAX_RECORD_SIZE: u64 = 512 << 20;

/// What `tako status --verify` found comparing an installed tree with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeCheck {
    /// The tree has no `files` (an older tako unpacked it): only its presence was checked.
    NoRecord,
    /// The record could not be read as one: the record itself is damaged.
    BadRecord(String),
    /// Every difference by path (escaped), and the directories not entered, with why.
    Checked {
        changes: Vec<String>,
        unlisted: Vec<String>,
    },
}

/// Compares `store/<hex>/rootfs` with `store/<hex>/files`; writes nothing.
pub fn verify_tree(store: &Dir, entry: &Entry) -> Result<TreeCheck, TreeError> {
    use crate::format::tree_record::{self, TreeRecord};
    let hex = entry.digest_hex();
    let Some(dir) = store.subdir(&hex)? else {
        return Ok(TreeCheck::NoRecord);
    };
    let Some(bytes) = dir.read_file(RECORD_FILE, MAX_RECORD_SIZE, "read")? else {
        return Ok(TreeCheck::NoRecord);
    };
    let mut recorded = match TreeRecord::parse(&bytes) {
        Ok(record) => record,
        Err(e) => {
            return Ok(TreeCheck::BadRecord(format!(
                "{}: {e}",
                dir.path().join(RECORD_FILE).display()
            )));
        }
    };
    let walked = crate::fs::tree_record::walk(&dir, ROOTFS).map_err(|source| TreeError::Tree {
        path: dir.path().join(ROOTFS),
        source,
    })?;
    // What lies below a directory not entered is not compared: it was not read.
    for (path, _) in &walked.unlisted {
        let mut below = path.clone();
        below.push(b'/');
        recorded
            .entries
            .retain(|p, _| !(p.starts_with(&below) && p.len() > below.len()));
    }
    let changes = tree_record::compare(&recorded, &walked.record)
        .into_iter()
        .map(|(path, change)| format!("{}: {change}", tree_record::escape(&path)))
        .collect();
    let unlisted = walked
        .unlisted
        .iter()
        .map(|(path, why)| format!("{}: not checked, {why}", tree_record::escape(path)))
        .collect();
    Ok(TreeCheck::Checked { changes, unlisted })
}
