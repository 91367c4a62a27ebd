//! Container images the tests build and push to a registry: layers written with the `tar`
//! crate (every entry type an image may hold, and the hostile ones a safe extractor must
//! refuse), compressed as gzip, zstd or not at all; image configs with their `diff_ids`;
//! OCI and Docker schema 2 manifests, OCI indexes and Docker manifest lists; and a push of
//! all of it over the distribution API (`support::distribution`), as `docker push` does.
//!
//! Entry names are written as raw bytes, never through the tar crate's path checks, so a
//! test can write `../x` or `.wh..` exactly as a hostile image would.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::distribution::Repository;

/// The modification time of every entry unless a test sets another: 2023-11-14.
pub const MTIME: u64 = 1_700_000_000;

/// How a layer's tar stream is stored in its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What an entry is, with what it holds.
#[derive(Debug, Clone)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    /// A hard link to the entry named here.
    Hardlink(Vec<u8>),
    Fifo,
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
}

/// One entry of a layer, as its tar headers say it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Extended attributes, written as `SCHILY.xattr.NAME` PAX records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(name: impl AsRef<[u8]>, kind: Kind, mode: u32) -> Entry {
        Entry {
            name: name.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            xattrs: Vec::new(),
        }
    }

    /// A regular file, mode 0644, owned by 0:0.
    pub fn file(name: impl AsRef<[u8]>, content: impl Into<Vec<u8>>) -> Entry {
        Entry::new(name, Kind::File(content.into()), 0o644)
    }

    /// A directory, mode 0755.
    pub fn dir(name: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, Kind::Dir, 0o755)
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, Kind::Symlink(target.as_ref().to_vec()), 0o777)
    }

    pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, Kind::Hardlink(target.as_ref().to_vec()), 0o644)
    }

    pub fn fifo(name: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, Kind::Fifo, 0o600)
    }

    pub fn char_device(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(name, Kind::CharDevice(major, minor), 0o666)
    }

    pub fn block_device(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(name, Kind::BlockDevice(major, minor), 0o660)
    }

    /// A whiteout: `DIR/.wh.NAME` removes `DIR/NAME` of the layers below.
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        Entry::file(format!("{dir}.wh.{name}"), Vec::new())
    }

    /// The opaque marker of `dir`: what the layers below put in it goes.
    pub fn opaque(dir: &str) -> Entry {
        Entry::file(format!("{dir}/.wh..wh..opq"), Vec::new())
    }

    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn xattr(mut self, name: &str, value: impl Into<Vec<u8>>) -> Entry {
        self.xattrs.push((name.to_owned(), value.into()));
        self
    }
}

/// A `security.capability` value (VFS_CAP_REVISION_2) granting CAP_NET_RAW, permitted and
/// effective, as `setcap cap_net_raw+ep` writes it. The kernel checks the format, so it must
/// be a real one.
pub fn cap_net_raw() -> Vec<u8> {
    const REVISION_2: u32 = 0x0200_0000;
    const EFFECTIVE: u32 = 0x1;
    const CAP_NET_RAW: u32 = 13;
    let mut value = Vec::new();
    for word in [REVISION_2 | EFFECTIVE, 1 << CAP_NET_RAW, 0, 0, 0] {
        value.extend_from_slice(&word.to_le_bytes());
    }
    value
}

/// The tar stream of `entries`, in order, with the two zero blocks that end it.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append(&mut builder, entry);
    }
    builder.into_inner().expect("finish a tar stream in memory")
}

fn append<W: Write>(builder: &mut tar::Builder<W>, entry: &Entry) {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    // ustar keeps 100 bytes of name and of link target; longer ones go in PAX records.
    if entry.name.len() > 100 {
        pax.push(("path".into(), entry.name.clone()));
    }
    let link = match &entry.kind {
        Kind::Symlink(target) | Kind::Hardlink(target) => Some(target.as_slice()),
        _ => None,
    };
    if let Some(target) = link.filter(|t| t.len() > 100) {
        pax.push(("linkpath".into(), target.to_vec()));
    }
    for (name, value) in &entry.xattrs {
        pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
    if !pax.is_empty() {
        builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .expect("append PAX records");
    }

    let mut header = tar::Header::new_ustar();
    let name = &entry.name[..entry.name.len().min(100)];
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(target) = link {
        let target = &target[..target.len().min(100)];
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
    }
    header.set_mode(entry.mode);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    header.set_mtime(entry.mtime);
    let (kind, data): (tar::EntryType, &[u8]) = match &entry.kind {
        Kind::File(content) => (tar::EntryType::Regular, content),
        Kind::Dir => (tar::EntryType::Directory, &[]),
        Kind::Symlink(_) => (tar::EntryType::Symlink, &[]),
        Kind::Hardlink(_) => (tar::EntryType::Link, &[]),
        Kind::Fifo => (tar::EntryType::Fifo, &[]),
        Kind::CharDevice(..) => (tar::EntryType::Char, &[]),
        Kind::BlockDevice(..) => (tar::EntryType::Block, &[]),
    };
    header.set_entry_type(kind);
    if let Kind::CharDevice(major, minor) | Kind::BlockDevice(major, minor) = entry.kind {
        header.set_device_major(major).expect("device major");
        header.set_device_minor(minor).expect("device minor");
    }
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).expect("append a tar entry");
}

/// `tar` stored as `compression` says.
pub fn compress(tar: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).expect("gzip in memory");
            gz.finish().expect("gzip in memory")
        }
        Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd in memory"),
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A layer blob and the digest of its uncompressed stream.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    /// `sha256:…` of the tar stream, as the config's `rootfs.diff_ids` lists it.
    pub diff_id: String,
    pub compression: Compression,
}

impl Layer {
    pub fn new(entries: &[Entry], compression: Compression) -> Layer {
        Layer::from_tar(&tar(entries), compression)
    }

    pub fn from_tar(tar: &[u8], compression: Compression) -> Layer {
        Layer {
            blob: compress(tar, compression),
            diff_id: sha256_digest(tar),
            compression,
        }
    }

    /// `tar` as gzip in two members, cut at byte `cut`: as parallel compressors and
    /// appending writers make them, and as every gzip reader must read to the end.
    pub fn gzip_members(tar: &[u8], cut: usize) -> Layer {
        let (first, second) = tar.split_at(cut);
        let mut blob = compress(first, Compression::Gzip);
        blob.extend_from_slice(&compress(second, Compression::Gzip));
        Layer {
            blob,
            diff_id: sha256_digest(tar),
            compression: Compression::Gzip,
        }
    }

    /// A gzip bomb: one regular file of `mib` MiB of zeros in about a thousandth of that.
    /// The deflate stream of 1 MiB of zeros is made once and repeated as gzip members (a
    /// gzip file is a series of members, and a layer is read to its end), because deflating
    /// hundreds of MiB in an unoptimised test build takes minutes. The `diff_id` is right,
    /// so only a cap on the uncompressed size stops the pull before the disk is full;
    /// `sha256sum` hashes the zeros, for the same reason.
    pub fn gzip_bomb(name: &str, mib: u64) -> Layer {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(mib << 20);
        header.set_cksum();
        let mut blob = compress(header.as_bytes(), Compression::Gzip);
        let zeros = vec![0u8; 1 << 20];
        let member = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&zeros).expect("gzip in memory");
            gz.finish().expect("gzip in memory")
        };
        for _ in 0..mib {
            blob.extend_from_slice(&member);
        }
        // The two zero blocks that end a tar stream.
        blob.extend_from_slice(&compress(&[0u8; 1024], Compression::Gzip));

        let mut sha256sum = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run sha256sum");
        let mut input = sha256sum.stdin.take().expect("sha256sum's input");
        let header = header.as_bytes().to_vec();
        let feeder = std::thread::spawn(move || {
            input.write_all(&header)?;
            for _ in 0..mib {
                input.write_all(&zeros)?;
            }
            input.write_all(&[0u8; 1024])
        });
        let output = sha256sum.wait_with_output().expect("sha256sum's answer");
        feeder
            .join()
            .expect("the feeding thread")
            .expect("feed sha256sum");
        let hex = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .expect("a digest from sha256sum")
            .to_owned();
        Layer {
            blob,
            diff_id: format!("sha256:{hex}"),
            compression: Compression::Gzip,
        }
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.blob)
    }

    fn media_type(&self, format: Format) -> &'static str {
        match (format, self.compression) {
            (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Format::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Format::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (Format::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Format::Docker, Compression::Zstd) => {
                panic!("Docker schema 2 has no zstd layers; build the image as OCI")
            }
        }
    }
}

/// Which manifest and index media types an image is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }

    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.index.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }

    fn config_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
}

/// An OS, architecture and variant, with Go's names as images use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/arm64/v8` and the like.
    pub fn parse(text: &str) -> Platform {
        let mut parts = text.split('/');
        Platform {
            os: parts.next().expect("an os").to_owned(),
            architecture: parts.next().expect("an architecture").to_owned(),
            variant: parts.next().map(str::to_owned),
        }
    }

    /// The platform of the machine running the tests, as tako's default names it.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => panic!("no Go name known for the architecture {other}"),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }

    /// A Linux platform other than the host's.
    pub fn foreign() -> Platform {
        if Platform::host().architecture == "s390x" {
            Platform::parse("linux/ppc64le")
        } else {
            Platform::parse("linux/s390x")
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "os": self.os,
            "architecture": self.architecture,
        });
        if let Some(variant) = &self.variant {
            value["variant"] = variant.as_str().into();
        }
        value
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The image config for `layers` on `platform`, naming each layer's `diff_id`.
pub fn config(platform: &Platform, diff_ids: &[String]) -> Vec<u8> {
    let mut config = platform.json();
    config["created"] = "2023-11-14T22:13:20Z".into();
    config["config"] = serde_json::json!({ "Cmd": ["/bin/sh"] });
    config["rootfs"] = serde_json::json!({ "type": "layers", "diff_ids": diff_ids });
    serde_json::to_vec(&config).expect("config JSON")
}

/// One platform's image: a config, its layers and the manifest naming them.
#[derive(Debug, Clone)]
pub struct Image {
    pub format: Format,
    pub platform: Platform,
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
}

impl Image {
    pub fn new(format: Format, platform: Platform, layers: Vec<Layer>) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        Image {
            format,
            config: config(&platform, &diff_ids),
            platform,
            layers,
        }
    }

    /// An image of the host's platform.
    pub fn host(format: Format, layers: Vec<Layer>) -> Image {
        Image::new(format, Platform::host(), layers)
    }

    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config)
    }

    /// The manifest, byte for byte as it is pushed.
    pub fn manifest(&self) -> Vec<u8> {
        let descriptor = |media_type: &str, blob: &[u8]| {
            serde_json::json!({
                "mediaType": media_type,
                "digest": sha256_digest(blob),
                "size": blob.len(),
            })
        };
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| descriptor(l.media_type(self.format), &l.blob))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": self.format.manifest_type(),
            "config": descriptor(self.format.config_type(), &self.config),
            "layers": layers,
        });
        serde_json::to_vec_pretty(&manifest).expect("manifest JSON")
    }

    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest())
    }

    /// Every blob of the image by digest: its config and its layers.
    pub fn blob_digests(&self) -> Vec<String> {
        let mut digests = vec![self.config_digest()];
        digests.extend(self.layers.iter().map(Layer::digest));
        digests
    }

    /// Pushes the blobs, then the manifest under `reference` (a tag or a digest); returns
    /// the manifest's digest.
    pub fn push(&self, repository: &Repository, reference: &str) -> String {
        let mut pushed = std::collections::HashSet::new();
        for layer in &self.layers {
            // An image may name one layer many times; it is uploaded once.
            if pushed.insert(layer.digest()) {
                repository.push_blob(&layer.blob);
            }
        }
        repository.push_blob(&self.config);
        repository.put_manifest_as(reference, self.format.manifest_type(), &self.manifest());
        self.manifest_digest()
    }
}

/// A multi-platform image: an OCI index or a Docker manifest list.
#[derive(Debug, Clone)]
pub struct Index {
    pub format: Format,
    pub images: Vec<Image>,
}

impl Index {
    pub fn new(format: Format, images: Vec<Image>) -> Index {
        Index { format, images }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let manifests: Vec<_> = self
            .images
            .iter()
            .map(|image| {
                let manifest = image.manifest();
                serde_json::json!({
                    "mediaType": image.format.manifest_type(),
                    "digest": sha256_digest(&manifest),
                    "size": manifest.len(),
                    "platform": image.platform.json(),
                })
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": self.format.index_type(),
            "manifests": manifests,
        });
        serde_json::to_vec_pretty(&index).expect("index JSON")
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes())
    }

    /// Pushes every image by its digest, then the index under `tag`; returns its digest.
    pub fn push(&self, repository: &Repository, tag: &str) -> String {
        for image in &self.images {
            image.push(repository, &image.manifest_digest());
        }
        repository.put_manifest_as(tag, self.format.index_type(), &self.bytes());
        self.digest()
    }
}

/// The base layer every version (and platform) of the test application shares.
pub fn app_base_layer() -> Layer {
    Layer::new(
        &[
            Entry::dir("usr"),
            Entry::file("usr/base", noise(7, 200_000)),
        ],
        Compression::Gzip,
    )
}

/// The application's own layer: `app/version` holds `version`.
pub fn app_layer(version: &str) -> Layer {
    Layer::new(
        &[
            Entry::dir("app"),
            Entry::file("app/version", format!("{version}\n")),
        ],
        Compression::Gzip,
    )
}

/// The application `version` for this host and a foreign platform, both on the shared
/// base layer.
pub fn app_index(format: Format, version: &str) -> Index {
    Index::new(
        format,
        vec![
            Image::new(
                format,
                Platform::host(),
                vec![app_base_layer(), app_layer(version)],
            ),
            Image::new(
                format,
                Platform::foreign(),
                vec![app_base_layer(), app_layer("foreign")],
            ),
        ],
    )
}

/// Deterministic pseudo-random bytes (xorshift): content-defined chunking cuts them into
/// chunks whose boundaries depend on the content, as on a real image.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
