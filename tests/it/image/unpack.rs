//! The tree a pull leaves, entry by entry: against `umoci raw unpack` of the same image
//! (Debian's umoci 0.4.7 reads gzip layers only, so the gzip variants are compared), the
//! same tree from zstd and uncompressed layers, and what the layers say, checked directly.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::*;
use support::images::{MTIME, cap_net_raw};
use support::registry;
use support::rootfs::Kind;

fn is_device(_: &Path, node: &rootfs::Node) -> bool {
    matches!(node.kind, Kind::CharDevice(_) | Kind::BlockDevice(_))
}

/// Lines of the output that speak of device nodes.
fn device_lines(o: &Output) -> Vec<String> {
    all_output(o)
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("device"))
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn require_umoci() {
    let found = Command::new("umoci")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "umoci is missing: install it (`apt-get install umoci`), as .ci/run does"
    );
}

/// `umoci raw unpack` of `repository:tag` from the registry, through an OCI layout that
/// skopeo copies it into; returns the tree umoci wrote.
fn umoci_unpack(lab: &Lab, reference: &str) -> Tree {
    let (_, tag) = reference.split_once(':').expect("repository:tag");
    let layout = lab.path("layout");
    let source = format!("docker://{}/{reference}", lab.registry.host());
    let target = format!("oci:{}:{tag}", layout.display());
    run_tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &source,
            &target,
        ],
    );
    let rootfs = lab.path("umoci-rootfs");
    let image = format!("{}:{tag}", layout.display());
    run_tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--image",
            &image,
            rootfs.to_str().expect("a UTF-8 path"),
        ],
    );
    tree(&rootfs)
}

fn compare_with_umoci(format: Format) {
    require_root();
    registry::require_skopeo();
    require_umoci();
    let lab = Lab::new();
    lab.push(&rich_image(format, Compression::Gzip), "app:rich");
    let dir = lab.path("rootfs");
    let o = lab.pull(&[], "app:rich", &dir);
    assert_success(&o);
    let ours = tree(&dir);
    let theirs = umoci_unpack(&lab, "app:rich");

    // The image really holds device nodes (umoci creates them as root)...
    assert_eq!(
        theirs.node("dev/null").kind,
        Kind::CharDevice(libc::makedev(1, 3))
    );
    assert_eq!(
        theirs.node("dev/loop9").kind,
        Kind::BlockDevice(libc::makedev(7, 9))
    );
    // ...which tako skips, saying so once: the runtime populates an image's /dev.
    assert!(
        !ours.nodes.iter().any(|(p, n)| is_device(p, n)),
        "tako created device nodes"
    );
    let lines = device_lines(&o);
    assert_eq!(
        lines.len(),
        1,
        "one summary warning about the skipped device nodes, not {lines:?}"
    );
    rootfs::assert_same("tako", &ours, "umoci", &theirs.without(is_device));
}

#[test]
fn an_oci_image_with_gzip_layers_unpacks_as_umoci_unpacks_it() {
    compare_with_umoci(Format::Oci);
}

#[test]
fn a_docker_schema2_image_unpacks_as_umoci_unpacks_it() {
    compare_with_umoci(Format::Docker);
}

#[test]
fn zstd_and_uncompressed_layers_unpack_to_the_tree_gzip_layers_give() {
    require_root();
    let lab = Lab::new();
    let variants = [
        ("app:oci-gzip", Format::Oci, Compression::Gzip),
        ("app:oci-zstd", Format::Oci, Compression::Zstd),
        ("app:oci-tar", Format::Oci, Compression::None),
        ("app:docker-tar", Format::Docker, Compression::None),
    ];
    let mut trees = Vec::new();
    for (reference, format, compression) in variants {
        let image = rich_image(format, compression);
        lab.push(&image, reference);
        let dir = lab.path(reference.trim_start_matches("app:"));
        let o = lab.pull(&[], reference, &dir);
        assert_success(&o);
        trees.push((reference, tree(&dir)));
    }
    let (gzip_name, gzip) = &trees[0];
    for (name, other) in &trees[1..] {
        rootfs::assert_same(gzip_name, gzip, name, other);
    }
}

#[test]
fn the_pulled_tree_has_what_the_layers_say() {
    require_root();
    let lab = Lab::new();
    let image = rich_image(Format::Oci, Compression::Gzip);
    lab.push(&image, "app:rich");
    let dir = lab.path("rootfs");
    assert_success(&lab.pull(&[], "app:rich", &dir));
    let t = tree(&dir);

    // Layer 2 replaced a file, gave a directory new metadata and kept what it held.
    assert_eq!(
        fs::read(dir.join("etc/hello")).unwrap(),
        b"hello, layer 2\n"
    );
    assert_eq!(t.node("etc").mode, 0o750);
    assert_eq!(t.node("etc/attributes").kind, Kind::File);
    // Whiteouts removed a file and a directory with what it held, and left no marker.
    for gone in ["var/whited-out", "var/gone", "var/gone/file"] {
        assert!(t.get(gone).is_none(), "{gone} survived its whiteout");
    }
    assert!(
        !t.nodes.keys().any(|p| p.to_string_lossy().contains(".wh.")),
        "a whiteout marker was unpacked as a file: {:?}",
        t.nodes.keys().collect::<Vec<_>>()
    );
    // The opaque directory holds only what layer 2 put there, whatever the order.
    let opaque: Vec<_> = t
        .nodes
        .keys()
        .filter(|p| p.starts_with("opaque") && p.as_os_str() != "opaque")
        .collect();
    assert_eq!(opaque, [Path::new("opaque/upper")]);
    // Links: targets kept as data, absolute ones too; hard links share one inode, across
    // layers too.
    assert_eq!(
        t.node("etc/absolute").target.as_deref(),
        Some(Path::new("/usr/bin/tool"))
    );
    assert_eq!(
        t.node("etc/relative").target.as_deref(),
        Some(Path::new("../usr/bin/tool"))
    );
    assert_eq!(t.node("lib").kind, Kind::Symlink);
    let tool = fs::metadata(dir.join("usr/bin/tool")).unwrap();
    for link in ["usr/bin/tool-link", "usr/bin/tool-again"] {
        assert_eq!(
            fs::metadata(dir.join(link)).unwrap().ino(),
            tool.ino(),
            "{link}"
        );
    }
    assert_eq!(tool.nlink(), 3);
    // Owners, setuid, setgid, the sticky bit.
    let notes = t.node("home/user/notes");
    assert_eq!((notes.uid, notes.gid, notes.mode), (1234, 5678, 0o640));
    let home = t.node("home/user");
    assert_eq!((home.uid, home.gid, home.mode), (1234, 5678, 0o750));
    assert_eq!(t.node("usr/bin/su").mode, 0o4755);
    let wall = t.node("usr/bin/wall");
    assert_eq!((wall.gid, wall.mode), (5, 0o2755));
    assert_eq!(t.node("tmp").mode, 0o1777);
    // xattrs: user.* and security.capability, byte for byte.
    let attributes = &t.node("etc/attributes").xattrs;
    assert_eq!(
        attributes.get("user.tako.colour").map(Vec::as_slice),
        Some(&b"blue"[..])
    );
    assert_eq!(
        attributes.get("user.tako.binary").map(Vec::as_slice),
        Some(&[0u8, 1, 2, 255][..])
    );
    assert_eq!(
        t.node("usr/bin/ping").xattrs.get("security.capability"),
        Some(&cap_net_raw())
    );
    // A FIFO is created; device nodes are not.
    assert_eq!(t.node("run/pipe").kind, Kind::Fifo);
    assert_eq!(t.node("run/pipe").mode, 0o620);
    assert!(t.get("dev/null").is_none() && t.get("dev/loop9").is_none());
    assert_eq!(t.node("dev").kind, Kind::Dir);
    // A name and a link target longer than ustar holds, from PAX records.
    let long = format!("{}/{}", "d".repeat(60), "n".repeat(80));
    assert_eq!(
        fs::read(dir.join(&long)).unwrap(),
        b"a name longer than ustar holds\n"
    );
    assert_eq!(
        t.node("long-link").target.as_deref(),
        Some(Path::new(&format!("/{long}")))
    );
    // Times from the headers.
    for file in ["usr/bin/tool", "etc/attributes", "home/user/notes"] {
        let mtime = fs::symlink_metadata(dir.join(file)).unwrap().mtime();
        assert_eq!(mtime, MTIME as i64, "mtime of {file}");
    }
    // Contents, byte for byte.
    assert_eq!(
        fs::read(dir.join("usr/lib/big")).unwrap(),
        noise(5, 1 << 20)
    );
    assert_eq!(t.node("usr/lib/empty").size, Some(0));
}

#[test]
fn a_gzip_layer_of_several_members_is_read_to_its_end() {
    let lab = Lab::new();
    let whole = support::images::tar(&[
        Entry::dir("first"),
        Entry::file("first/half", noise(31, 100_000)),
        Entry::dir("second"),
        Entry::file("second/half", noise(32, 100_000)),
    ]);
    // Cut in the middle of the first file's content.
    let layer = Layer::gzip_members(&whole, 50_000);
    lab.push(&Image::host(Format::Oci, vec![layer]), "app:members");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:members", &dir));
    assert_eq!(
        fs::read(dir.join("first/half")).unwrap(),
        noise(31, 100_000)
    );
    assert_eq!(
        fs::read(dir.join("second/half")).unwrap(),
        noise(32, 100_000)
    );
}
