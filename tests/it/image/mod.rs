//! Container images into directory trees (issue 18): `tako image pull`, `digest` and
//! `purge`, against a real `docker-registry` the tests start and fill with images they
//! build (`support::images`), seen through a recording proxy (`support::registry_proxy`)
//! that counts what tako downloads and can make the registry lie or stall.
//!
//! - `unpack`: the pulled tree, entry by entry, against `umoci raw unpack` of the same
//!   image, and the same tree from gzip, zstd and uncompressed layers.
//! - `hostile`: images that try to write outside the tree or to smuggle in bad bytes.
//! - `interrupted`: pulls killed at byte counts the proxy chooses and at random moments.
//! - `platforms`: which manifest of an index a pull takes, and `tako image digest`.
//! - `cache`: the blob cache shared by pulls, and `tako image purge`.
//! - `rootless`: a pull by an unprivileged user.
//! - `references`: what a pull prints, pinned digests, `--force`.
//! - `repull`: a pull into a directory that holds a pulled tree, mounts in an old tree, a
//!   failed pull's other downloads.
//! - `registries_conf`: the host's registries.conf: mirrors, blocks, aliases, drop-ins.

mod cache;
mod hostile;
mod http_proxy;
mod interrupted;
mod platforms;
mod policy;
mod proxy;
mod references;
mod registries_conf;
mod repull;
mod rootless;
mod signatures;
mod unpack;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support;
use support::distribution::Repository;
use support::images::{Compression, Entry, Format, Image, Index, Layer, cap_net_raw};
use support::registry::Registry;
use support::registry_proxy::{RegistryProxy, Rule};
use support::rootfs::{self, Tree};
use support::tako::{Bounded, HANG_GUARD, Running, SLOW_GUARD, noise, tako_cmd};

/// A test's world: a working directory, a registry and the proxy tako pulls through.
pub struct Lab {
    pub work: tempfile::TempDir,
    pub registry: Registry,
    pub proxy: RegistryProxy,
    /// The user and password the registry wants, if it wants any.
    credentials: Option<(String, String)>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with(Registry::start(), None)
    }

    /// A lab whose registry wants Basic auth with this user and password.
    pub fn with_basic_auth(user: &str, password: &str) -> Lab {
        Lab::with(
            Registry::with_basic_auth(user, password),
            Some((user.to_owned(), password.to_owned())),
        )
    }

    fn with(registry: Registry, credentials: Option<(String, String)>) -> Lab {
        let proxy = RegistryProxy::start(&registry.host());
        Lab {
            work: tempfile::tempdir().expect("a working directory"),
            registry,
            proxy,
            credentials,
        }
    }

    fn repository(&self, name: &str) -> Repository {
        let repository = Repository::of(&self.registry.origin(name));
        match &self.credentials {
            Some((user, password)) => repository.with_basic_auth(user, password),
            None => repository,
        }
    }

    /// `name` inside the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A server directory to publish into (`out` in the working directory), created if missing.
    pub fn out_dir(&self) -> PathBuf {
        let out = self.path("out");
        std::fs::create_dir_all(&out).expect("the lab's out directory");
        out
    }

    /// The blob cache every pull of the test shares.
    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// Pushes `image` straight to the registry (not through the proxy, so pushes are never
    /// counted as pulls) as `repository:tag`; returns the manifest digest.
    pub fn push(&self, image: &Image, reference: &str) -> String {
        let (repository, tag) = split(reference);
        image.push(&self.repository(repository), tag)
    }

    /// Pushes `index` and its images as `repository:tag`; returns the index digest.
    pub fn push_index(&self, index: &Index, reference: &str) -> String {
        let (repository, tag) = split(reference);
        index.push(&self.repository(repository), tag)
    }

    /// The image `repository:tag` (or `repository@digest`) through the proxy, as tako
    /// takes it.
    pub fn image(&self, reference: &str) -> String {
        self.proxy.image(reference)
    }

    /// `tako image pull --cache CACHE ARGS… IMAGE DIR`, the image through the proxy.
    #[track_caller]
    pub fn pull(&self, args: &[&str], reference: &str, dir: &Path) -> Output {
        self.pull_within(HANG_GUARD, args, reference, dir)
    }

    #[track_caller]
    pub fn pull_within(
        &self,
        guard: Duration,
        args: &[&str],
        reference: &str,
        dir: &Path,
    ) -> Output {
        self.spawn_pull(guard, args, reference, dir).finish()
    }

    /// Starts a pull as [`Lab::pull`] does, to be waited for or killed.
    #[track_caller]
    pub fn spawn_pull(
        &self,
        guard: Duration,
        args: &[&str],
        reference: &str,
        dir: &Path,
    ) -> Running {
        let mut cmd = tako_cmd();
        cmd.args(["image", "pull", "--cache"])
            .arg(self.cache())
            .args(args)
            .arg(self.image(reference))
            .arg(dir);
        Bounded::new(&mut cmd).within(guard).spawn()
    }

    /// `tako image ARGS…` with this test's cache, for `digest` and `purge`.
    #[track_caller]
    pub fn image_command(&self, args: &[&str]) -> Output {
        let mut cmd = tako_cmd();
        cmd.arg("image").args(args);
        Bounded::new(&mut cmd).run()
    }

    /// `tako image purge --cache CACHE ARGS…`.
    #[track_caller]
    pub fn purge(&self, args: &[&str]) -> Output {
        let cache = self.cache();
        let mut all = vec!["purge", "--cache", cache.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        self.image_command(&all)
    }

    /// Starts a pull, lets the proxy stall the blob at `path` at byte `offset` (the
    /// `stalls`-th stall there), waits for tako to hold those bytes in a partial download
    /// in the cache, and kills the pull with SIGKILL.
    pub fn kill_at(
        &self,
        args: &[&str],
        reference: &str,
        dir: &Path,
        path: &str,
        offset: u64,
        stalls: usize,
    ) {
        self.proxy.rule_once(path, Rule::stall_after(offset));
        let run = self.spawn_pull(SLOW_GUARD, args, reference, dir);
        assert!(
            self.proxy.wait_for_stalls(path, stalls, HANG_GUARD),
            "the pull never downloaded {path} up to byte {offset}"
        );
        // The bytes are on their way; a partial that holds them shows they arrived.
        wait_until(Duration::from_secs(5), || {
            self.partials().iter().any(|(_, size)| *size >= offset)
        });
        run.kill();
    }

    /// A directory beside the trees that no pull may touch, holding a file `keep`: what a
    /// hostile image aims its symlinks and hard links at.
    pub fn sentinel(&self) -> PathBuf {
        let sentinel = self.path("sentinel");
        fs::create_dir(&sentinel).expect("create the sentinel");
        fs::write(sentinel.join("keep"), "untouched\n").expect("write the sentinel file");
        sentinel
    }

    /// The files of the blob cache, `blobs/sha256/<hex>`, as `sha256:<hex>` digests.
    pub fn cached_blobs(&self) -> Vec<String> {
        let dir = self.cache().join("blobs/sha256");
        let mut out: Vec<String> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.expect("a cache entry").file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|n| format!("sha256:{n}"))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Fails the test if a blob file in the cache does not hash to its name: nothing
    /// unverified is ever kept under a digest.
    #[track_caller]
    pub fn assert_cache_verified(&self) {
        for digest in self.cached_blobs() {
            let hex = digest.trim_start_matches("sha256:");
            let bytes = fs::read(self.cache().join("blobs/sha256").join(hex)).expect("read a blob");
            assert_eq!(
                support::images::sha256_digest(&bytes),
                digest,
                "the cache keeps bytes under a digest they do not have"
            );
        }
    }

    /// Files under the cache whose name says they are partial downloads, with their sizes.
    pub fn partials(&self) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut dirs = vec![self.cache()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().contains(".partial") {
                    out.push((path, meta.len()));
                }
            }
        }
        out
    }
}

/// Waits until `done` holds, for at most `within`; whether it did.
pub fn wait_until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

fn split(reference: &str) -> (&str, &str) {
    reference
        .split_once(':')
        .or_else(|| reference.split_once('@'))
        .expect("repository:tag")
}

/// The path a registry serves blob `digest` of `repository` under.
pub fn blob_path(repository: &str, digest: &str) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

pub fn manifest_path(repository: &str, reference: &str) -> String {
    format!("/v2/{repository}/manifests/{reference}")
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Both streams, for looking for a message wherever tako chose to print it.
pub fn all_output(o: &Output) -> String {
    format!("{}{}", out(o), err(o))
}

#[track_caller]
pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "the command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        out(o),
        err(o)
    );
}

#[track_caller]
pub fn assert_failure(o: &Output) {
    assert!(
        !o.status.success() && o.status.code().is_some(),
        "the command should have failed with an error, not {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        out(o),
        err(o)
    );
    assert!(
        !err(o).trim().is_empty(),
        "the command failed without saying why on stderr"
    );
}

/// Whether the tests run as root; the tests that compare with umoci or create owners need
/// it. `.ci/run` runs as root, where a test that needs root must not pass by skipping.
pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[track_caller]
pub fn require_root() {
    assert!(
        is_root(),
        "this test compares owners and device nodes and must run as root (as .ci/run does)"
    );
}

/// Makes `path` readable and searchable by every user (a temporary directory is 0700).
pub fn open_to_all(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
}

/// A small image to start from: what a tree holds before a test pulls another over it.
pub fn plain_image(marker: &str) -> Image {
    Image::host(
        Format::Oci,
        vec![Layer::new(
            &[
                Entry::dir("etc"),
                Entry::file("etc/marker", format!("{marker}\n")),
                Entry::dir("usr"),
                Entry::file("usr/payload", noise(marker.len() as u64, 4096)),
            ],
            Compression::Gzip,
        )],
    )
}

/// The base layer of [`rich_image`]: every entry type the issue lists.
pub fn rich_base() -> Vec<Entry> {
    let long_dir = "d".repeat(60);
    let long_name = format!("{long_dir}/{}", "n".repeat(80));
    vec![
        Entry::dir("etc"),
        Entry::file("etc/hello", "hello, layer 1\n"),
        Entry::symlink("etc/absolute", "/usr/bin/tool"),
        Entry::symlink("etc/relative", "../usr/bin/tool"),
        Entry::symlink("etc/dangling", "no/such/file"),
        Entry::file("etc/attributes", "with xattrs\n")
            .xattr("user.tako.colour", "blue")
            .xattr("user.tako.binary", vec![0u8, 1, 2, 255]),
        Entry::dir("usr"),
        Entry::dir("usr/bin"),
        Entry::file("usr/bin/tool", noise(1, 64 << 10)).mode(0o755),
        Entry::hardlink("usr/bin/tool-link", "usr/bin/tool"),
        Entry::file("usr/bin/su", noise(2, 1000)).mode(0o4755),
        Entry::file("usr/bin/wall", noise(3, 1000))
            .mode(0o2755)
            .owner(0, 5),
        Entry::file("usr/bin/ping", noise(4, 1000))
            .mode(0o755)
            .xattr("security.capability", cap_net_raw()),
        Entry::dir("usr/lib"),
        Entry::file("usr/lib/big", noise(5, 1 << 20)),
        Entry::file("usr/lib/empty", Vec::new()),
        Entry::symlink("lib", "usr/lib"),
        Entry::dir("home"),
        Entry::dir("home/user").mode(0o750).owner(1234, 5678),
        Entry::file("home/user/notes", "mine\n")
            .mode(0o640)
            .owner(1234, 5678),
        Entry::hardlink("home/user/notes-again", "home/user/notes")
            .mode(0o640)
            .owner(1234, 5678),
        Entry::dir("tmp").mode(0o1777),
        Entry::dir("run"),
        Entry::fifo("run/pipe").mode(0o620),
        Entry::dir("dev"),
        Entry::char_device("dev/null", 1, 3),
        Entry::block_device("dev/loop9", 7, 9),
        Entry::dir("var"),
        Entry::file("var/whited-out", "gone in layer 2\n"),
        Entry::dir("var/gone"),
        Entry::file("var/gone/file", "gone with its directory\n"),
        Entry::dir("opaque"),
        Entry::file("opaque/lower", "hidden by the opaque marker\n"),
        Entry::dir("opaque/sub"),
        Entry::file("opaque/sub/deeper", "hidden too\n"),
        Entry::dir(&long_dir),
        Entry::file(&long_name, "a name longer than ustar holds\n"),
        Entry::symlink("long-link", format!("/{long_name}")),
    ]
}

/// The second layer of [`rich_image`]: whiteouts, an opaque directory, a replaced file, a
/// directory's new metadata and a hard link to a lower layer's file.
pub fn rich_top() -> Vec<Entry> {
    vec![
        Entry::dir("etc").mode(0o750),
        Entry::file("etc/hello", "hello, layer 2\n"),
        Entry::dir("var"),
        Entry::whiteout("var/whited-out"),
        Entry::whiteout("var/gone"),
        Entry::dir("opaque"),
        // Before its marker on purpose: the marker hides only what lower layers put there.
        Entry::file("opaque/upper", "from layer 2\n"),
        Entry::opaque("opaque"),
        Entry::hardlink("usr/bin/tool-again", "usr/bin/tool").mode(0o755),
    ]
}

/// The image every unpacking test pulls: two layers with every entry type, in `format`
/// with its layers stored as `compression`.
pub fn rich_image(format: Format, compression: Compression) -> Image {
    Image::host(
        format,
        vec![
            Layer::new(&rich_base(), compression),
            Layer::new(&rich_top(), compression),
        ],
    )
}

/// The tree of `dir` (which must exist).
pub fn tree(dir: &Path) -> Tree {
    assert!(dir.is_dir(), "{} is not a directory", dir.display());
    rootfs::read(dir)
}

/// Names in `dir`, sorted: to show that nothing was created beside a tree.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list a directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Runs `program ARGS…` under the hang guard, failing the test if it fails.
#[track_caller]
pub fn run_tool(program: &str, args: &[&str]) -> Output {
    let o = Bounded::new(Command::new(program).args(args)).run();
    assert!(
        o.status.success(),
        "{program} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        out(&o),
        err(&o)
    );
    o
}
