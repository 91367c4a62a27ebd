//! `Kind=container` against hostile origins beyond those of `container.rs`: a rolled-back
//! signed manifest, a registry that retags the version to another image, and every
//! hostile layer of `tako image pull` (`image/hostile.rs`) behind a validly signed digest.
//! A signed image is trusted for what it is, never for where it writes: nothing is written
//! outside the destination, and a refused version leaves `latest` and its tree as they were.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::container::{host_config, installed_version, latest_target, publish};
use crate::image::{Lab, names};
use crate::support;
use support::images::{
    Compression, Entry as E, Format, Image, Index, Layer, app_index, sha256_digest,
};
use support::registry_proxy::Rule;
use support::rootfs;
use support::tako::*;

type Stamp = BTreeMap<PathBuf, (rootfs::Node, i64, i64, u64)>;

#[test]
fn a_rolled_back_signed_manifest_is_refused_with_the_tree_untouched() {
    let lab = Lab::new();
    let out = lab.out_dir();
    publish(
        &lab,
        out.to_str().unwrap(),
        &app_index(Format::Oci, "1"),
        "1.0",
    );
    // What the origin served before 2.0: signed, but old.
    let old = fs::read(out.join("manifest")).unwrap();
    let hex2 = publish(
        &lab,
        out.to_str().unwrap(),
        &app_index(Format::Oci, "2"),
        "2.0",
    );
    let (config, dest) = host_config(&lab, &format!("file://{}", out.display()));
    assert_exit(&fetch(&[], &[&config]), 0);
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    let tree = dest.join(format!("store/{hex2}"));
    let before = rootfs::stamp(&tree);
    let manifest = fs::read(dest.join("manifest")).unwrap();

    let _ = fs::remove_file(out.join("manifest"));
    fs::write(out.join("manifest"), &old).unwrap();
    for verb in ["fetch", "check"] {
        let o = run_bounded(tako_cmd().arg(verb).arg(&config));
        assert_exit(&o, 1);
        assert!(
            stderr(&o).contains("refusing it as a possible rollback"),
            "{verb}: {}",
            stderr(&o)
        );
    }
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&dest), "2\n");
    assert_eq!(rootfs::stamp(&tree), before);
    assert_eq!(fs::read(dest.join("manifest")).unwrap(), manifest);
}

#[test]
fn a_registry_that_retags_the_version_to_another_image_never_gets_it_installed() {
    let lab = Lab::new();
    let target = lab.registry.origin("published");
    let hex1 = publish(&lab, &target, &app_index(Format::Oci, "1"), "1.0");
    // The host reads the repository through the recording proxy.
    let origin = format!("oci+http://{}/published", lab.proxy.host());
    let (config, dest) = host_config(&lab, &origin);
    assert_exit(&fetch(&[], &[&config]), 0);
    let tree = dest.join(format!("store/{hex1}"));
    let before = rootfs::stamp(&tree);

    let v2 = app_index(Format::Oci, "2");
    let hex2 = publish(&lab, &target, &v2, "2.0");
    // Whoever may push moves the tag 2.0 to another image, and the registry answers for
    // the signed digest with what the tag names now (under the digest asked for).
    let other = app_index(Format::Oci, "evil");
    lab.push_index(&other, "published:2.0");
    for route in ["blobs", "manifests"] {
        lab.proxy.set_rule(
            &format!("/v2/published/{route}/sha256:{hex2}"),
            Rule {
                body: Some(other.bytes()),
                ..Rule::header("Docker-Content-Digest", &format!("sha256:{hex2}"))
            },
        );
    }
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("wrong SHA-256"), "{}", stderr(&o));
    assert_eq!(latest_target(&dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&dest), "1\n");
    assert_eq!(rootfs::stamp(&tree), before);
    assert!(!dest.join(format!("store/{hex2}")).exists());

    // A registry that only moved the tag is not even asked for it: the host takes the
    // image the publisher signed, by its digest.
    lab.proxy.clear_rules();
    lab.proxy.clear_requests();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&dest), "2\n");
    let evil = sha256_digest(&other.images[0].layers[1].blob);
    assert!(lab.proxy.blob_gets(&evil).is_empty());
    assert!(
        !lab.proxy
            .requests()
            .iter()
            .any(|r| r.route().ends_with("/manifests/2.0")),
        "the host asked for the tag"
    );
}

/// A host with 1.0 installed from a directory, and a sentinel directory beside the
/// destination that hostile layers aim at.
struct Attack {
    lab: Lab,
    out: PathBuf,
    config: PathBuf,
    dest: PathBuf,
    sentinel: PathBuf,
    sentinel_before: Stamp,
    work_before: Vec<String>,
    /// The tree `latest` names, and how it looked.
    latest: String,
    latest_before: Stamp,
    versions: u32,
}

/// What became of a hostile version.
#[derive(Debug, PartialEq)]
enum Fate {
    Refused(String),
    /// Installed, with nothing written outside its tree (what `tako image pull` calls
    /// neutralised).
    Neutralised,
}

impl Attack {
    fn new() -> Attack {
        let lab = Lab::new();
        let out = lab.out_dir();
        let hex1 = publish(
            &lab,
            out.to_str().unwrap(),
            &app_index(Format::Oci, "1"),
            "1.0",
        );
        let (config, dest) = host_config(&lab, &format!("file://{}", out.display()));
        assert_exit(&fetch(&[], &[&config]), 0);
        let sentinel = lab.sentinel();
        let latest = format!("store/{hex1}");
        Attack {
            sentinel_before: rootfs::stamp(&sentinel),
            work_before: names(lab.work.path()),
            latest_before: rootfs::stamp(&dest.join(&latest)),
            latest,
            lab,
            out,
            config,
            dest,
            sentinel,
            versions: 1,
        }
    }

    fn sentinel_abs(&self) -> String {
        self.sentinel.to_str().unwrap().to_owned()
    }

    /// Publishes an image of `layers` as the next version, signed, and fetches it.
    #[track_caller]
    fn fetch(&mut self, layers: Vec<Vec<E>>) -> Fate {
        self.versions += 1;
        let layers = layers
            .iter()
            .map(|l| Layer::new(l, Compression::Gzip))
            .collect();
        let index = Index::new(Format::Oci, vec![Image::host(Format::Oci, layers)]);
        let version = format!("{}.0", self.versions);
        let hex = publish(&self.lab, self.out.to_str().unwrap(), &index, &version);
        let o = fetch(&[], &[&self.config]);
        let context = format!("{version}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(
            rootfs::stamp(&self.sentinel),
            self.sentinel_before,
            "the sentinel changed: {context}"
        );
        assert_eq!(
            fs::metadata(self.sentinel.join("keep")).unwrap().nlink(),
            1,
            "the sentinel was hard-linked: {context}"
        );
        assert_eq!(
            names(self.lab.work.path()),
            self.work_before,
            "something was written beside the destination: {context}"
        );
        let store = names(&self.dest.join("store"));
        assert!(
            !store.iter().any(|n| n.ends_with(".tako-new")),
            "a tree being built was left: {store:?}"
        );
        if o.status.success() {
            self.latest = format!("store/{hex}");
            assert_eq!(latest_target(&self.dest), self.latest, "{context}");
            self.latest_before = rootfs::stamp(&self.dest.join(&self.latest));
            Fate::Neutralised
        } else {
            assert_exit(&o, 1);
            assert_eq!(latest_target(&self.dest), self.latest, "{context}");
            assert_eq!(
                rootfs::stamp(&self.dest.join(&self.latest)),
                self.latest_before,
                "a refused version changed the installed tree: {context}"
            );
            assert!(!store.contains(&hex), "{context}");
            Fate::Refused(stderr(&o))
        }
    }
}

#[test]
fn names_that_leave_the_tree_are_refused_behind_a_signed_digest() {
    let mut a = Attack::new();
    let absolute = format!("{}/pwned", a.sentinel_abs());
    let cases: Vec<(&str, Vec<E>)> = vec![
        ("../", vec![E::file("../escaped", "out\n")]),
        (
            "a/../../",
            vec![E::dir("a"), E::file("a/../../../../../escaped", "out\n")],
        ),
        ("an absolute name", vec![E::file(&absolute, "out\n")]),
        (".wh.", vec![E::file(".wh.", "")]),
    ];
    for (what, entries) in cases {
        match a.fetch(vec![entries]) {
            Fate::Refused(said) => assert!(said.contains("version "), "{what}: {said}"),
            Fate::Neutralised => panic!("{what}: installed, not refused"),
        }
    }
    assert!(!a.lab.path("escaped").exists());
    assert_eq!(installed_version(&a.dest), "1\n");
}

#[test]
fn links_whiteouts_and_devices_aimed_outside_write_nothing_outside_the_destination() {
    let mut a = Attack::new();
    let s = a.sentinel_abs();
    // From rootfs/ of a tree in DEST/store/, up to the work directory.
    let up = "../../../../sentinel";
    let cases: Vec<(&str, Vec<Vec<E>>)> = vec![
        (
            "a symlink then a file through it",
            vec![vec![
                E::symlink("evil", &s),
                E::file("evil/pwned", "pwned\n"),
            ]],
        ),
        (
            "a relative symlink then a file through it in the next layer",
            vec![
                vec![E::symlink("evil", up)],
                vec![E::dir("evil/sub"), E::file("evil/sub/pwned", "pwned\n")],
            ],
        ),
        (
            "a whiteout through a symlink",
            vec![vec![E::symlink("evil", &s)], vec![E::whiteout("evil/keep")]],
        ),
        (
            "an opaque marker through a symlink",
            vec![vec![E::symlink("evil", up)], vec![E::opaque("evil")]],
        ),
        (
            "a hard link to outside by its absolute name",
            vec![vec![E::hardlink("stolen", format!("{s}/keep"))]],
        ),
        (
            "a hard link climbing out",
            vec![vec![E::hardlink("stolen", "../../../../sentinel/keep")]],
        ),
        (
            "a hard link through a symlink, then written",
            vec![
                vec![E::symlink("evil", &s)],
                vec![E::hardlink("stolen", "evil/keep")],
                vec![E::file("stolen", "overwritten\n")],
            ],
        ),
        (
            "a directory entry over a symlink",
            vec![vec![
                E::symlink("evil", &s),
                E::dir("evil").mode(0o777).owner(1234, 5678),
            ]],
        ),
        (
            "device nodes",
            vec![vec![
                E::dir("dev"),
                E::char_device("dev/mem", 1, 1),
                E::block_device("dev/sda", 8, 0),
            ]],
        ),
    ];
    // A tar may replace a symlink with a directory, and tako never makes device nodes
    // (it skips them, as `tako image pull` does): those two are installed, harmless;
    // everything aimed through a link or at the outside is refused.
    let installed = ["a directory entry over a symlink", "device nodes"];
    for (what, layers) in cases {
        let fate = a.fetch(layers);
        if !installed.contains(&what) {
            match fate {
                Fate::Refused(said) => assert!(
                    said.contains(&format!("version {}.0: layer sha256:", a.versions)),
                    "{what}: {said}"
                ),
                Fate::Neutralised => panic!("{what}: installed, not refused"),
            }
            continue;
        }
        assert_eq!(fate, Fate::Neutralised, "{what}");
        let rootfs = a.dest.join("latest/rootfs");
        if what == "device nodes" {
            for name in ["dev/mem", "dev/sda"] {
                assert!(fs::symlink_metadata(rootfs.join(name)).is_err(), "{name}");
            }
        } else {
            let meta = fs::symlink_metadata(rootfs.join("evil")).unwrap();
            assert!(meta.is_dir(), "the symlink stayed under the directory");
        }
    }
    assert_eq!(
        fs::read_to_string(a.sentinel.join("keep")).unwrap(),
        "untouched\n"
    );
}
