//! The JSON Lines records of `--json`: one object per config per line.
//!
//! These field names are an interface that scripts rely on, documented in
//! docs/json.md: fields are only ever added, never renamed or removed. Every
//! record of a type has every field; one that does not apply is `null` (or
//! an empty list). Text in them is what the text output shows (versions and
//! file names escaped as by `text::untrusted`, URLs with passwords hidden).

use serde::Serialize;

use crate::format::retention::{Reason, Removal};

/// A file `gc` (or fetch's `Keep=`) removed, or would remove.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedRecord {
    /// The name in `store/` (in `blobs/sha256/` for `blob`).
    pub file: String,
    /// `old`, `unlisted`, `temporary` or `blob`.
    pub reason: &'static str,
    /// The versions that name the image, highest first; empty unless `old`.
    pub versions: Vec<String>,
    pub size: u64,
}

impl From<&Removal> for RemovedRecord {
    fn from(r: &Removal) -> RemovedRecord {
        let (reason, versions) = match &r.reason {
            Reason::Old(versions) => (
                "old",
                versions
                    .iter()
                    .map(|v| crate::format::text::untrusted(v))
                    .collect(),
            ),
            Reason::Unlisted => ("unlisted", Vec::new()),
            Reason::Temporary => ("temporary", Vec::new()),
            Reason::Blob => ("blob", Vec::new()),
        };
        RemovedRecord {
            file: crate::format::text::untrusted(&r.name),
            reason,
            versions,
            size: r.size,
        }
    }
}

/// The result of `tako fetch` for one config.
#[derive(Debug, Clone, Serialize)]
pub struct FetchRecord {
    pub config: String,
    /// `updated`, `up-to-date`, `present`, `no-match` or `failed`.
    pub outcome: &'static str,
    /// `updated`: what `latest` pointed at before (a version, or the old
    /// link target if the manifest does not list it); `null` on a first
    /// install and for every other outcome.
    pub from: Option<String>,
    /// `updated`: the version `latest` points at now.
    pub to: Option<String>,
    /// The version `latest` points at after the run (`updated`,
    /// `up-to-date`, `present`).
    pub version: Option<String>,
    /// SHA-256 (hex) and signed size of that image.
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// Units restarted in this run.
    pub restarted: Vec<String>,
    /// Whether `restarted` were retried from an earlier run's failure
    /// (DEST/restart-pending) rather than restarted for an update.
    pub restart_retried: bool,
    /// Whether the config failed because a restart is still pending.
    pub restart_pending: bool,
    /// What `Keep=` removed from the store after `latest` moved.
    pub removed: Vec<RemovedRecord>,
    /// `no-match`: the config's pattern and every published version.
    pub pattern: Option<String>,
    pub published: Option<Vec<String>>,
    /// `failed`: the error, as printed after `tako: error: `.
    pub error: Option<String>,
    /// `updated` by a delta: bytes received for the image (its chunk index and the
    /// ranges); `updated` to a container image whose tree this run built: bytes of blobs
    /// downloaded; `null` otherwise.
    pub downloaded_bytes: Option<u64>,
    /// `updated` by a delta: the image's size, which `downloaded_bytes` is a part of.
    pub image_bytes: Option<u64>,
    /// Whether the image was installed as a delta in this run.
    pub delta: bool,
    /// The config's `Kind=`: `file` or `container`; `null` if the config could not be read.
    pub kind: Option<&'static str>,
    /// `Kind=container`: the platform installed (`Platform=`, else this host's), as
    /// `os/arch[/variant]`; `null` otherwise.
    pub platform: Option<String>,
    /// `updated` to a container image whose tree this run built: the layers found in
    /// `blobs/sha256/` rather than downloaded; `null` otherwise.
    pub reused_layers: Option<usize>,
}

/// The result of `tako check` for one config.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    pub config: String,
    /// `update-available`, `up-to-date`, `no-match` or `failed`.
    pub outcome: &'static str,
    /// What `latest` points at now: a version, or the link target if the
    /// manifest does not list it; `null` when nothing is installed.
    pub from: Option<String>,
    /// The version `tako fetch` would install (the highest match).
    pub to: Option<String>,
    /// SHA-256 (hex) and signed size of that image.
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// `no-match`: the config's pattern and every published version.
    pub pattern: Option<String>,
    pub published: Option<Vec<String>>,
    pub error: Option<String>,
}

/// An image in a destination's store, for `tako status`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRecord {
    /// The name in `store/`.
    pub file: String,
    /// `image` (the local manifest lists it), `unlisted` or `temporary`.
    pub kind: &'static str,
    /// The versions that name it, highest first.
    pub versions: Vec<String>,
    /// The size on disk.
    pub size: u64,
    /// Whether `latest` points at it.
    pub latest: bool,
}

/// The state of one config's destination, for `tako status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRecord {
    pub config: String,
    /// `intact`, `damaged`, `missing`, `unknown`, `not-installed` or `failed`.
    pub outcome: &'static str,
    /// The config's first origin (password hidden), pattern and destination.
    pub origin: Option<String>,
    /// Every origin, the first one first (the others are its mirrors); empty when `failed`.
    pub origins: Vec<String>,
    pub pattern: Option<String>,
    pub destination: Option<String>,
    /// The installed image: the highest version that names it, every
    /// version that does (highest first), its SHA-256 and signed size.
    pub version: Option<String>,
    pub versions: Vec<String>,
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// Whether that version matches the config's pattern.
    pub matches_pattern: Option<bool>,
    /// Whether the SHA-256 was checked (`--verify`), not only the size.
    pub verified: bool,
    /// What is wrong, for `damaged`, `missing` and `unknown`.
    pub problem: Option<String>,
    /// Matching versions above the installed one that the local manifest
    /// lists, highest first: what the next fetch would look at.
    pub newer: Vec<String>,
    pub store: Vec<StoreRecord>,
    /// The size of every file in `store/`.
    pub store_bytes: u64,
    /// Units whose restart is pending (DEST/restart-pending).
    pub restart_pending: Vec<String>,
    pub error: Option<String>,
    /// The config's `Kind=`: `file` or `container`; `null` when `failed`.
    pub kind: Option<&'static str>,
    /// `Kind=container`: the platform it installs (`Platform=`, else this host's); `null`
    /// otherwise.
    pub platform: Option<String>,
}

/// The result of `tako gc` for one config.
#[derive(Debug, Clone, Serialize)]
pub struct GcRecord {
    pub config: String,
    /// `collected` or `failed` (what was removed before a failure is still listed).
    pub outcome: &'static str,
    /// Whether this was `--dry-run`: nothing was removed.
    pub dry_run: bool,
    /// How many of the newest images were kept (besides `latest`'s).
    pub keep: Option<usize>,
    /// What was removed (or would be, with `--dry-run`).
    pub removed: Vec<RemovedRecord>,
    /// The sum of their sizes.
    pub freed: u64,
    pub error: Option<String>,
}

/// One layer of a `tako image pull`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageLayerRecord {
    pub digest: String,
    /// Compressed, as the manifest names it.
    pub size: u64,
    /// Found (and verified) in the blob cache rather than downloaded.
    pub cached: bool,
}

/// The result of `tako image pull`.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePullRecord {
    /// The image as given, canonical once it parsed.
    pub image: String,
    pub dir: String,
    /// `pulled` or `failed`.
    pub outcome: &'static str,
    /// The index the reference named, if it named one; the image manifest pulled; its
    /// config.
    pub index_digest: Option<String>,
    pub manifest_digest: Option<String>,
    pub config_digest: Option<String>,
    /// The platform the config names, and the platforms the index offers.
    pub platform: Option<String>,
    pub platforms: Vec<String>,
    pub layers: Vec<ImageLayerRecord>,
    /// Bytes of distinct layer blobs downloaded, and found in the cache.
    pub downloaded_bytes: u64,
    pub cached_bytes: u64,
    /// Bytes of the uncompressed layers, and the tar entries read.
    pub unpacked_bytes: u64,
    pub entries: u64,
    /// Whether DIR held a tree that was replaced (`--force`).
    pub replaced: bool,
    /// Whether IMAGE pinned a digest; if not, nothing but the registry vouches for what the
    /// tag named (registries sign nothing tako checks).
    pub pinned: bool,
    pub error: Option<String>,
    /// The registries.conf mirror the image came from; `None` for the registry itself.
    pub mirror: Option<String>,
    /// The policy.json that accepted the image; `None` when none applied.
    pub policy: Option<PolicyRecord>,
}

/// Which policy.json scope accepted a pulled image.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRecord {
    pub file: String,
    pub scope: String,
    /// The scope's requirement types, comma-separated (`insecureAcceptAnything`).
    pub accepted_by: String,
    /// The signatures that satisfied its `sigstoreSigned` requirements, one per
    /// requirement: "key /etc/containers/k.pub signed the manifest sha256:…".
    pub signatures: Vec<String>,
}

/// The result of `tako image digest`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDigestRecord {
    pub image: String,
    /// What the text output prints.
    pub digest: String,
    /// The index's digest, if the reference names an index.
    pub index_digest: Option<String>,
    /// The image manifest's digest for the platform (`--platform`, else this host's), if
    /// the image has one for it.
    pub manifest_digest: Option<String>,
    pub platforms: Vec<String>,
    /// The registries.conf mirror that answered; `None` for the registry itself.
    pub mirror: Option<String>,
}
