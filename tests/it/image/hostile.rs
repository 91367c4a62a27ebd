//! Hostile images, pulled with `--force` over a good tree with a sentinel directory beside
//! it: each one is refused (an error, the good tree unchanged, down to inodes and times) or
//! neutralised (the pull succeeds and nothing outside the tree changed). Where the issue
//! says "refused" (bad names, bad bytes), only a refusal passes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

use super::*;
use support::images::{Entry as E, Platform, sha256_digest};
use support::registry_proxy::Rule;
use support::rootfs::{Kind, Node};
use support::tako::SLOW_GUARD;

type Stamp = BTreeMap<PathBuf, (Node, i64, i64, u64)>;

/// A good tree in `root`, the sentinel beside it, and how both looked before the attack.
struct Attack {
    lab: Lab,
    /// Where the trees are pulled: the working directory or a small filesystem in it.
    place: PathBuf,
    dir: PathBuf,
    sentinel: PathBuf,
    dir_before: Stamp,
    sentinel_before: Stamp,
    names_before: Vec<String>,
    tags: usize,
}

enum Outcome {
    Refused(Output),
    Neutralised(Output, Tree),
}

impl Attack {
    fn new() -> Attack {
        Attack::with_lab(Lab::new(), None)
    }

    /// An attack whose trees and cache live in `place` (a small filesystem, say).
    fn with_lab(lab: Lab, place: Option<PathBuf>) -> Attack {
        let place = place.unwrap_or_else(|| lab.work.path().to_path_buf());
        lab.push(&plain_image("good"), "app:good");
        let dir = place.join("root");
        assert_success(&lab.pull(&[], "app:good", &dir));
        let sentinel = lab.sentinel();
        Attack {
            dir_before: rootfs::stamp(&dir),
            sentinel_before: rootfs::stamp(&sentinel),
            names_before: names(&place),
            lab,
            place,
            dir,
            sentinel,
            tags: 0,
        }
    }

    /// The sentinel's absolute path, as bytes for a tar header.
    fn sentinel_abs(&self) -> String {
        self.sentinel.to_str().expect("a UTF-8 path").to_owned()
    }

    /// Pushes `image` under a new tag and pulls it over the good tree; checks that nothing
    /// outside the tree changed and, on failure, that the tree did not either.
    #[track_caller]
    fn pull(&mut self, image: &Image) -> Outcome {
        self.tags += 1;
        let reference = format!("app:hostile-{}", self.tags);
        self.lab.push(image, &reference);
        self.pull_pushed(&reference, SLOW_GUARD)
    }

    #[track_caller]
    fn pull_pushed(&mut self, reference: &str, guard: Duration) -> Outcome {
        let o = self
            .lab
            .pull_within(guard, &["--force"], reference, &self.dir);
        self.assert_outside_unchanged(&o);
        if o.status.success() {
            let tree = tree(&self.dir);
            self.dir_before = rootfs::stamp(&self.dir);
            Outcome::Neutralised(o, tree)
        } else {
            assert_failure(&o);
            assert_eq!(
                rootfs::stamp(&self.dir),
                self.dir_before,
                "a failed pull changed the tree\nstderr:\n{}",
                err(&o)
            );
            Outcome::Refused(o)
        }
    }

    #[track_caller]
    fn assert_outside_unchanged(&self, o: &Output) {
        let context = format!("\nstdout:\n{}\nstderr:\n{}", out(o), err(o));
        assert_eq!(
            rootfs::stamp(&self.sentinel),
            self.sentinel_before,
            "the pull changed the sentinel beside the tree{context}"
        );
        let keep = fs::metadata(self.sentinel.join("keep")).expect("the sentinel file");
        assert_eq!(
            keep.nlink(),
            1,
            "the pull hard-linked the sentinel file{context}"
        );
        assert_eq!(
            names(&self.place),
            self.names_before,
            "the pull left something beside the tree{context}"
        );
        self.lab.assert_cache_verified();
    }

    /// Pulls `image`, which must be refused; returns the error output.
    #[track_caller]
    fn refused(&mut self, image: &Image) -> String {
        match self.pull(image) {
            Outcome::Refused(o) => err(&o),
            Outcome::Neutralised(o, tree) => panic!(
                "the hostile image was pulled, not refused\nstdout:\n{}\nstderr:\n{}\ntree: {:#?}",
                out(&o),
                err(&o),
                tree.nodes.keys().collect::<Vec<_>>()
            ),
        }
    }
}

fn layer(entries: &[E]) -> Layer {
    Layer::new(entries, Compression::Gzip)
}

fn image(layers: Vec<Vec<E>>) -> Image {
    Image::host(Format::Oci, layers.iter().map(|l| layer(l)).collect())
}

#[test]
fn a_symlink_to_outside_then_a_file_through_it_in_one_layer_writes_nothing_outside() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    a.pull(&image(vec![vec![
        E::symlink("evil", &s),
        E::file("evil/pwned", "pwned\n"),
    ]]));
    a.pull(&image(vec![vec![
        E::dir("a"),
        E::symlink("a/evil", "../../sentinel"),
        E::file("a/evil/pwned", "pwned\n"),
    ]]));
}

#[test]
fn a_symlink_to_outside_then_a_file_through_it_in_the_next_layer_writes_nothing_outside() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    a.pull(&image(vec![
        vec![E::symlink("evil", &s)],
        vec![E::file("evil/pwned", "pwned\n")],
    ]));
    a.pull(&image(vec![
        vec![E::symlink("evil", "../sentinel")],
        vec![E::dir("evil/sub"), E::file("evil/sub/pwned", "pwned\n")],
    ]));
}

#[test]
fn a_whiteout_or_an_opaque_marker_through_a_symlink_removes_nothing_outside() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    a.pull(&image(vec![
        vec![E::symlink("evil", &s)],
        vec![E::whiteout("evil/keep")],
    ]));
    a.pull(&image(vec![
        vec![E::symlink("evil", "../sentinel")],
        vec![E::opaque("evil")],
    ]));
}

#[test]
fn names_that_leave_the_tree_or_are_not_whiteouts_are_refused() {
    let mut a = Attack::new();
    let absolute = format!("{}/pwned", a.sentinel_abs());
    let cases: Vec<(&str, Vec<E>)> = vec![
        ("../", vec![E::file("../escaped", "out\n")]),
        (
            "a/../../",
            vec![E::dir("a"), E::file("a/../../escaped", "out\n")],
        ),
        ("an absolute name", vec![E::file(&absolute, "out\n")]),
        ("an empty name", vec![E::file("", "nameless\n")]),
        (".wh.", vec![E::file(".wh.", "")]),
        (".wh..", vec![E::dir("d"), E::file("d/.wh..", "")]),
        (".wh...", vec![E::file(".wh...", "")]),
    ];
    for (what, entries) in cases {
        let message = a.refused(&image(vec![entries]));
        assert!(!message.is_empty(), "{what}: refused without a word");
    }
    assert!(!a.lab.path("escaped").exists());
}

#[test]
fn hard_links_to_outside_or_to_a_directory_link_nothing_outside() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    // A link to the sentinel by its absolute name, which inside the tree names nothing.
    a.pull(&image(vec![vec![E::hardlink(
        "stolen",
        format!("{s}/keep"),
    )]]));
    // By a name that climbs out of the tree.
    a.pull(&image(vec![vec![E::hardlink(
        "stolen",
        "../sentinel/keep",
    )]]));
    // Through a symlink a lower layer planted, then a file written over the link.
    a.pull(&image(vec![
        vec![E::symlink("evil", &s)],
        vec![E::hardlink("stolen", "evil/keep")],
        vec![E::file("stolen", "overwritten\n")],
    ]));
    // To a directory.
    let outcome = a.pull(&image(vec![vec![
        E::dir("d"),
        E::file("d/inside", "x\n"),
        E::hardlink("dlink", "d"),
    ]]));
    if let Outcome::Neutralised(_, tree) = outcome {
        assert_ne!(
            tree.get("dlink").map(|n| &n.kind),
            Some(&Kind::Dir),
            "a hard link to a directory became one"
        );
    }
}

#[test]
fn a_directory_entry_after_a_same_named_symlink_changes_nothing_outside() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    // The directory's mode and owner must not be applied through the symlink.
    let dir = || E::dir("evil").mode(0o777).owner(1234, 5678);
    for outcome in [
        a.pull(&image(vec![vec![E::symlink("evil", &s), dir()]])),
        a.pull(&image(vec![vec![E::symlink("evil", &s)], vec![dir()]])),
        a.pull(&image(vec![vec![
            E::symlink("evil", "../sentinel"),
            dir(),
            E::file("evil/inside", "in the tree\n"),
        ]])),
    ] {
        if let Outcome::Neutralised(_, tree) = outcome {
            // A directory entry replaces what is there: the symlink goes.
            assert_eq!(tree.node("evil").kind, Kind::Dir);
        }
    }
}

/// `bytes` with one bit flipped in the middle.
fn damaged(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let middle = out.len() / 2;
    out[middle] ^= 0x20;
    out
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_not_cached() {
    let mut a = Attack::new();
    let image = plain_image("damaged");
    a.lab.push(&image, "app:damaged");
    let layer = &image.layers[0];
    a.lab.proxy.set_rule(
        &blob_path("app", &layer.digest()),
        Rule::body(damaged(&layer.blob)),
    );
    let outcome = a.pull_pushed("app:damaged", HANG_GUARD);
    assert!(
        matches!(outcome, Outcome::Refused(_)),
        "a damaged layer was unpacked"
    );
    assert!(!a.lab.cached_blobs().contains(&layer.digest()));

    let image = plain_image("damaged config");
    a.lab.push(&image, "app:damaged-config");
    a.lab.proxy.set_rule(
        &blob_path("app", &image.config_digest()),
        Rule::body(damaged(&image.config)),
    );
    let outcome = a.pull_pushed("app:damaged-config", HANG_GUARD);
    assert!(
        matches!(outcome, Outcome::Refused(_)),
        "a damaged config was used"
    );
    assert!(!a.lab.cached_blobs().contains(&image.config_digest()));
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let mut a = Attack::new();
    let good = layer(&[E::file("file", "what the layer holds\n")]);
    let other = sha256_digest(b"what the config claims\n");
    let mut image = Image::host(Format::Oci, vec![good.clone()]);
    image.config = support::images::config(&Platform::host(), &[other]);
    let message = a.refused(&image);
    assert!(
        message.contains(&good.diff_id) || message.contains("diff"),
        "the error should say the diff_id did not match: {message}"
    );
    // A config naming fewer layers than the manifest.
    let mut image = Image::host(Format::Oci, vec![good.clone(), good.clone()]);
    image.config = support::images::config(&Platform::host(), std::slice::from_ref(&good.diff_id));
    a.refused(&image);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&path).expect("a mount point");
        run_tool(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                path.to_str().expect("a UTF-8 path"),
            ],
        );
        Tmpfs { path }
    }

    /// Bytes in use on it.
    fn used(&self) -> u64 {
        let o = run_tool(
            "df",
            &[
                "--output=used",
                "-B1",
                self.path.to_str().expect("a UTF-8 path"),
            ],
        );
        out(&o)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's figure")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_gzip_bomb_ends_with_an_error_not_a_full_disk() {
    require_root();
    let lab = Lab::new();
    // The trees on a 16 MiB filesystem; the bomb holds 512 MiB of zeros in about 512 KiB.
    let small = Tmpfs::mount(lab.path("small"), "16m");
    let mut a = Attack::with_lab(lab, Some(small.path.clone()));
    // The same construction, small enough to fit, is a good layer: what stops the bomb is
    // its size, not its making.
    let outcome = a.pull(&Image::host(
        Format::Oci,
        vec![Layer::gzip_bomb("zeros", 1)],
    ));
    assert!(
        matches!(outcome, Outcome::Neutralised(..)),
        "a layer of 1 MiB of zeros was refused"
    );
    assert_eq!(fs::metadata(a.dir.join("zeros")).unwrap().len(), 1 << 20);
    let bomb = Layer::gzip_bomb("zeros", 512);
    assert!(
        bomb.blob.len() < 1 << 20,
        "the bomb is {} bytes",
        bomb.blob.len()
    );
    let used = small.used();
    let message = a.refused(&Image::host(Format::Oci, vec![bomb]));
    assert!(
        !message.contains("No space left") && !message.contains("os error 28"),
        "the pull stopped only because the filesystem was full: {message}"
    );
    // What the pull wrote there is gone again.
    let after = small.used();
    assert!(
        after <= used + (64 << 10),
        "the failed pull left {} bytes behind",
        after - used
    );
}

#[test]
fn a_layer_of_100k_entries_is_unpacked_whole_or_refused() {
    let mut a = Attack::new();
    let mut entries = Vec::with_capacity(100_100);
    for d in 0..100 {
        entries.push(E::dir(format!("d{d:03}")));
        for f in 0..1000 {
            entries.push(E::file(format!("d{d:03}/f{f:04}"), Vec::new()));
        }
    }
    // Uncompressed: deflating 50 MB in an unoptimised test build takes long.
    let layer = Layer::new(&entries, Compression::None);
    if let Outcome::Neutralised(_, tree) = a.pull(&Image::host(Format::Oci, vec![layer])) {
        // The 100 100 entries and the root.
        assert_eq!(tree.nodes.len(), 100_101);
    }
}

#[test]
fn a_manifest_naming_10k_layers_is_unpacked_or_refused_without_hanging() {
    let mut a = Attack::new();
    let one = layer(&[E::file("file", "the same layer, again\n")]);
    let image = Image::host(Format::Oci, vec![one; 10_000]);
    assert!(image.manifest().len() < 4 << 20, "the registry takes it");
    if let Outcome::Neutralised(_, tree) = a.pull(&image) {
        assert_eq!(
            fs::read(a.dir.join("file")).unwrap(),
            b"the same layer, again\n"
        );
        assert_eq!(tree.nodes.len(), 2);
    }
}

#[test]
fn a_manifest_served_under_a_digest_it_does_not_have_is_refused() {
    let mut a = Attack::new();
    let pinned = plain_image("pinned");
    let pinned_digest = a.lab.push(&pinned, "app:pinned");
    let evil = plain_image("evil");
    let evil_digest = a.lab.push(&evil, "app:evil");
    // Asked for the pinned digest, the registry answers with the evil manifest and swears
    // it is the pinned one.
    a.lab.proxy.set_rule(
        &manifest_path("app", &pinned_digest),
        Rule::substitute(&manifest_path("app", &evil_digest), &pinned_digest),
    );
    let outcome = a.pull_pushed(&format!("app@{pinned_digest}"), HANG_GUARD);
    assert!(
        matches!(outcome, Outcome::Refused(_)),
        "a manifest that does not hash to the pinned digest was used"
    );
}

#[test]
fn a_lying_docker_content_digest_never_becomes_the_digest_tako_reports() {
    let mut a = Attack::new();
    let real = plain_image("real");
    let real_digest = a.lab.push(&real, "app:real");
    let lie = plain_image("lie").manifest_digest();
    a.lab.proxy.set_rule(
        &manifest_path("app", "real"),
        Rule::header("Docker-Content-Digest", &lie),
    );
    // Refusing is right (an error may quote the claim); answering is right only with the
    // digest of the bytes served.
    let digest = a.lab.image_command(&["digest", &a.lab.image("app:real")]);
    if digest.status.success() {
        assert_eq!(
            out(&digest).trim(),
            real_digest,
            "digest printed another digest"
        );
    } else {
        assert_failure(&digest);
    }
    match a.pull_pushed("app:real", HANG_GUARD) {
        Outcome::Neutralised(o, _) => {
            assert!(!all_output(&o).contains(&lie), "the pull reported the lie");
            assert!(all_output(&o).contains(&real_digest));
            assert_eq!(fs::read(a.dir.join("etc/marker")).unwrap(), b"real\n");
        }
        Outcome::Refused(o) => assert!(!err(&o).is_empty()),
    }
}
