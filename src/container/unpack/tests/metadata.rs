//! Owners, modes, times and xattrs, as root and rootless.

use super::*;

#[test]
fn as_root_owners_modes_times_and_setuid_are_the_images() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .dir("bin")
        .file_with(
            "bin/su",
            b"elf",
            Attrs {
                mode: 0o4755,
                ..DEFAULT
            },
        )
        .file_with(
            "bin/owned",
            b"elf",
            Attrs {
                mode: 0o2751,
                uid: 1234,
                gid: 5678,
                mtime: 1_234_567_890,
            },
        )
        .pax(&[("mtime", b"1600000000.25"), ("atime", b"1600000001")])
        .file("bin/precise", b"")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    // Before anything reads the file, which may move its atime.
    let atime = std::fs::metadata(scene.tree_path.join("bin/precise"))
        .unwrap()
        .atime();
    assert_eq!(atime, 1_600_000_001);
    let su = scene.at("bin/su");
    assert_eq!((su.mode, su.uid, su.gid), (0o4755, 0, 0));
    let owned = scene.at("bin/owned");
    assert_eq!((owned.mode, owned.uid, owned.gid), (0o2751, 1234, 5678));
    assert_eq!(owned.mtime, (1_234_567_890, 0));
    assert_eq!(scene.at("bin/precise").mtime, (1_600_000_000, 250_000_000));
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Whether the file system of the temporary directory takes user xattrs.
fn user_xattrs_work(scene: &Scene) -> bool {
    let probe = scene.tmp.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let ok =
        rustix::fs::setxattr(&probe, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    std::fs::remove_file(probe).unwrap();
    if !ok {
        eprintln!(
            "SKIPPED: the file system of {} refuses user xattrs",
            scene.tmp.path().display()
        );
    }
    ok
}

#[test]
fn allowed_xattrs_are_applied_and_others_refused() {
    let scene = Scene::new();
    if !user_xattrs_work(&scene) {
        return;
    }
    let tar = LayerTar::new()
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND_SERVICE),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:shadow_t:s0",
            ),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .file_with(
            "ping",
            b"elf",
            Attrs {
                mode: 0o755,
                uid: 1234,
                ..DEFAULT
            },
        )
        .pax(&[("SCHILY.xattr.user.dir", b"on a directory")])
        .dir("d")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    let ping = scene.tree_path.join("ping");
    assert_eq!(xattr(&ping, "user.comment").as_deref(), Some(&b"hello"[..]));
    // Set after the chown, which would have cleared it.
    assert_eq!(
        xattr(&ping, "security.capability").as_deref(),
        Some(&CAP_NET_BIND_SERVICE[..])
    );
    assert_ne!(
        xattr(&ping, "security.selinux").as_deref(),
        Some(&b"system_u:object_r:shadow_t:s0"[..])
    );
    assert_eq!(xattr(&ping, "trusted.overlay.opaque"), None);
    assert_eq!(stats[0].xattrs_refused, 2);
    assert_eq!(
        xattr(&scene.tree_path.join("d"), "user.dir").as_deref(),
        Some(&b"on a directory"[..])
    );
}

#[test]
fn not_as_root_files_are_the_callers_without_setuid_and_the_owners_are_recorded() {
    let scene = Scene::new();
    if !user_xattrs_work(&scene) {
        return;
    }
    let me = rustix::process::geteuid().as_raw();
    let tar = LayerTar::new()
        .dir_with(
            "home",
            Attrs {
                mode: 0o2755,
                uid: 1234,
                gid: 5678,
                ..DEFAULT
            },
        )
        .file_with(
            "home/both",
            b"x",
            Attrs {
                mode: 0o4755,
                uid: 1234,
                gid: 5678,
                ..DEFAULT
            },
        )
        .file_with(
            "home/uid-only",
            b"x",
            Attrs {
                mode: 0o444,
                uid: 1234,
                gid: 0,
                ..DEFAULT
            },
        )
        .file_with(
            "home/root",
            b"x",
            Attrs {
                mode: 0o644,
                ..DEFAULT
            },
        )
        // A record in the layer is not trusted: it is replaced.
        .pax(&[("SCHILY.xattr.user.rootlesscontainers", b"\x08\x01\x10\x01")])
        .file_with(
            "home/forged",
            b"x",
            Attrs {
                mode: 0o644,
                ..DEFAULT
            },
        )
        .bytes();
    unpack_all(&scene, Owners::Caller, Resolve::Openat2, &[tar]).unwrap();
    let path = |p: &str| scene.tree_path.join(p);

    let both = scene.at("home/both");
    assert_eq!((both.uid, both.mode), (me, 0o755));
    assert_eq!(
        xattr(&path("home/both"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c][..])
    );
    // Root as group is "unchanged", u32::MAX, as umoci writes it.
    assert_eq!(
        xattr(&path("home/uid-only"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f][..])
    );
    assert_eq!(scene.at("home/uid-only").mode, 0o444);
    assert_eq!(xattr(&path("home/root"), "user.rootlesscontainers"), None);
    assert_eq!(xattr(&path("home/forged"), "user.rootlesscontainers"), None);
    let home = scene.at("home");
    assert_eq!((home.uid, home.mode), (me, 0o755));
    assert_eq!(
        xattr(&path("home"), "user.rootlesscontainers").as_deref(),
        Some(&[0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c][..])
    );
}

#[test]
fn directory_modes_wait_until_the_end_so_a_read_only_directory_blocks_nothing() {
    for owners in [Owners::Image, Owners::Caller] {
        let scene = Scene::new();
        let lower = LayerTar::new()
            .dir_with(
                "ro",
                Attrs {
                    mode: 0o555,
                    mtime: 1_000_000_000,
                    ..DEFAULT
                },
            )
            .file_with(
                "ro/a",
                b"lower",
                Attrs {
                    mode: 0o444,
                    ..DEFAULT
                },
            )
            .bytes();
        let upper = LayerTar::new()
            .file_with(
                "ro/a",
                b"upper",
                Attrs {
                    mode: 0o444,
                    ..DEFAULT
                },
            )
            .file("ro/b", b"new")
            .bytes();
        let mut unpacker = scene.unpacker(owners, Resolve::Openat2);
        unpacker
            .apply_layer(&layer("sha256:l0"), &lower[..])
            .unwrap();
        assert_eq!(scene.at("ro").mode, 0o700);
        assert_eq!(look(&scene.tree_path).mode, 0o700);
        unpacker
            .apply_layer(&layer("sha256:l1"), &upper[..])
            .unwrap();
        let finished = unpacker.finish().unwrap();
        assert_eq!(finished.directories, 2);
        let ro = scene.at("ro");
        assert_eq!((ro.mode, ro.mtime), (0o555, (1_000_000_000, 0)));
        assert_eq!(scene.at("ro/a").content, b"upper");
        assert_eq!(scene.at("ro/b").content, b"new");
        // The root had no entry: the usual 0755.
        assert_eq!(look(&scene.tree_path).mode, 0o755);
    }
}

#[test]
fn the_rootless_record_is_the_protobuf_umoci_writes() {
    assert_eq!(rootless_record(0, 0), None);
    assert_eq!(
        rootless_record(1234, 5678).unwrap(),
        [0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c]
    );
    assert_eq!(
        rootless_record(0, 1).unwrap(),
        [0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0x01]
    );
    assert_eq!(
        rootless_record(127, 128).unwrap(),
        [0x08, 0x7f, 0x10, 0x80, 0x01]
    );
}

#[test]
fn pax_times_are_read_with_their_fraction_and_sign() {
    assert_eq!(
        pax_time(b"1600000000"),
        Some(Time {
            secs: 1_600_000_000,
            nanos: 0
        })
    );
    assert_eq!(
        pax_time(b"1.5"),
        Some(Time {
            secs: 1,
            nanos: 500_000_000
        })
    );
    assert_eq!(
        pax_time(b"1.1234567899"),
        Some(Time {
            secs: 1,
            nanos: 123_456_789
        })
    );
    assert_eq!(
        pax_time(b"-1.25"),
        Some(Time {
            secs: -2,
            nanos: 750_000_000
        })
    );
    assert_eq!(pax_time(b"-3"), Some(Time { secs: -3, nanos: 0 }));
    for bad in [
        &b""[..],
        b".5",
        b"1e3",
        b"--1",
        b"1.5.5",
        b"99999999999999999999",
    ] {
        assert_eq!(pax_time(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn only_user_and_capability_xattrs_are_allowed() {
    for (name, image, caller) in [
        ("user.comment", true, true),
        ("security.capability", true, true),
        ("security.selinux", false, false),
        ("trusted.overlay.opaque", false, false),
        ("system.posix_acl_access", false, false),
        ("user.", false, false),
        ("user.rootlesscontainers", true, false),
    ] {
        assert_eq!(
            xattr_allowed(name.as_bytes(), Owners::Image),
            image,
            "{name}"
        );
        assert_eq!(
            xattr_allowed(name.as_bytes(), Owners::Caller),
            caller,
            "{name}"
        );
    }
}
