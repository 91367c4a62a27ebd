//! The OCI layer rules: whiteouts, opaque directories, links, replacements, compressions.

use super::*;

#[test]
fn whiteouts_remove_lower_entries_only() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("a")
        .file("a/keep", b"kept")
        .file("a/gone", b"")
        .dir("a/gonedir")
        .file("a/gonedir/f", b"")
        .bytes();
    let upper = LayerTar::new()
        .whiteout("a/.wh.gone")
        .whiteout("a/.wh.gonedir")
        .file("a/new", b"made here")
        // Same layer: the whiteout may not remove what this layer made.
        .whiteout("a/.wh.new")
        .whiteout("a/.wh.never-was")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    let names: Vec<String> = scene.tree().into_keys().collect();
    assert_eq!(names, ["a", "a/keep", "a/new"]);
    assert_eq!(stats[1].whiteouts, 4);
}

#[test]
fn a_whiteout_after_this_layer_remade_a_directory_removes_only_the_lower_contents() {
    let lower = LayerTar::new().dir("a").file("a/x", b"").bytes();
    let whiteout_first = LayerTar::new()
        .whiteout(".wh.a")
        .dir("a")
        .file("a/y", b"")
        .bytes();
    let whiteout_last = LayerTar::new()
        .dir("a")
        .file("a/y", b"")
        .whiteout(".wh.a")
        .bytes();
    for upper in [whiteout_first, whiteout_last] {
        let scene = Scene::new();
        unpack_all(
            &scene,
            Owners::Image,
            Resolve::Openat2,
            &[lower.clone(), upper],
        )
        .unwrap();
        assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["a", "a/y"]);
    }
}

#[test]
fn an_opaque_directory_hides_the_lower_contents_wherever_its_marker_comes() {
    let lower = LayerTar::new()
        .dir("a")
        .file("a/old", b"")
        .dir("a/sub")
        .file("a/sub/x", b"")
        .file("outside-a", b"")
        .bytes();
    let marker_first = LayerTar::new()
        .dir("a")
        .whiteout("a/.wh..wh..opq")
        .file("a/new", b"")
        .dir("a/sub")
        .file("a/sub/y", b"")
        .bytes();
    let marker_last = LayerTar::new()
        .dir("a")
        .file("a/new", b"")
        .dir("a/sub")
        .file("a/sub/y", b"")
        .whiteout("a/.wh..wh..opq")
        .bytes();
    for upper in [marker_first, marker_last] {
        for resolve in BOTH {
            let scene = Scene::new();
            unpack_all(
                &scene,
                Owners::Image,
                resolve,
                &[lower.clone(), upper.clone()],
            )
            .unwrap();
            let names: Vec<String> = scene.tree().into_keys().collect();
            assert_eq!(names, ["a", "a/new", "a/sub", "a/sub/y", "outside-a"]);
        }
    }
}

#[test]
fn an_opaque_marker_at_the_root_empties_the_lower_tree() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("etc")
        .file("etc/old", b"")
        .file("top", b"")
        .bytes();
    let upper = LayerTar::new()
        .file("fresh", b"")
        .whiteout(".wh..wh..opq")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["fresh"]);
}

#[test]
fn hard_links_share_the_inode_of_an_entry_already_in_the_tree() {
    for resolve in BOTH {
        let scene = Scene::new();
        let lower = LayerTar::new()
            .dir("bin")
            .file_with(
                "bin/tool",
                b"#!/bin/sh\n",
                Attrs {
                    mode: 0o755,
                    ..DEFAULT
                },
            )
            .bytes();
        let upper = LayerTar::new()
            .hardlink("bin/tool2", "bin/tool")
            .dir("etc")
            .file("etc/conf", b"a=1")
            .hardlink("etc/conf.bak", "./etc/conf")
            .bytes();
        let stats = unpack_all(&scene, Owners::Image, resolve, &[lower, upper]).unwrap();
        assert_eq!(stats[1].hard_links, 2);
        let ino = |p: &str| std::fs::metadata(scene.tree_path.join(p)).unwrap().ino();
        assert_eq!(ino("bin/tool"), ino("bin/tool2"));
        assert_eq!(ino("etc/conf"), ino("etc/conf.bak"));
        assert_eq!(scene.at("bin/tool2").nlink, 2);
        assert_eq!(scene.at("bin/tool2").mode, 0o755);
    }
}

#[test]
fn symlinks_are_kept_as_data_absolute_or_relative() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../../../x")
        .symlink("dot", ".")
        .entry(
            EntryType::Symlink,
            b"owned",
            b"target",
            Attrs {
                uid: 1234,
                gid: 5678,
                mtime: 1_500_000_000,
                ..DEFAULT
            },
            b"",
        )
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(stats[0].symlinks, 4);
    assert_eq!(scene.at("abs").content, b"/etc/passwd");
    assert_eq!(scene.at("rel").content, b"../../../x");
    assert_eq!(scene.at("dot").content, b".");
    let owned = scene.at("owned");
    assert_eq!(
        (owned.kind, owned.uid, owned.gid, owned.mtime.0),
        ("symlink", 1234, 5678, 1_500_000_000)
    );
}

#[test]
fn fifos_are_created_and_device_nodes_skipped_and_counted() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("dev")
        .file("dev/console", b"a lower file")
        .bytes();
    let upper = LayerTar::new()
        .fifo("run/initctl", 0o600)
        .device(EntryType::Char, "dev/null")
        .device(EntryType::Block, "dev/sda")
        .device(EntryType::Char, "dev/console")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!((stats[1].fifos, stats[1].devices_skipped), (1, 3));
    let fifo = scene.at("run/initctl");
    assert_eq!((fifo.kind, fifo.mode), ("fifo", 0o600));
    assert!(!scene.exists("dev/null") && !scene.exists("dev/sda"));
    // The device replaced the lower file, as the layer says, even unmade.
    assert!(!scene.exists("dev/console"));
    // `run` was implied by the FIFO's name.
    assert_eq!(scene.at("run").mode, 0o755);
}

#[test]
fn a_directory_over_a_directory_keeps_its_contents_and_takes_the_new_metadata() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir_with(
            "d",
            Attrs {
                mode: 0o700,
                ..DEFAULT
            },
        )
        .file("d/f", b"kept")
        .bytes();
    let upper = LayerTar::new()
        .dir_with(
            "d",
            Attrs {
                mode: 0o751,
                uid: 7,
                gid: 8,
                ..DEFAULT
            },
        )
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    let d = scene.at("d");
    assert_eq!((d.mode, d.uid, d.gid), (0o751, 7, 8));
    assert_eq!(scene.at("d/f").content, b"kept");
}

#[test]
fn an_entry_replaces_an_entry_of_another_kind_and_never_writes_into_it() {
    let scene = Scene::new();
    let lower = LayerTar::new()
        .dir("x")
        .file("x/y", b"")
        .file("z", b"old file")
        .file("same", b"old")
        .hardlink("same-link", "same")
        .bytes();
    let upper = LayerTar::new()
        .file("x", b"now a file")
        .dir("z")
        .file("z/w", b"")
        .file("same", b"new")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Openat2, &[lower, upper]).unwrap();
    assert_eq!(scene.at("x").content, b"now a file");
    assert_eq!(scene.at("z").kind, "dir");
    assert!(scene.exists("z/w"));
    // A new inode: the other name of the old one still has the old content.
    assert_eq!(scene.at("same").content, b"new");
    assert_eq!(scene.at("same-link").content, b"old");
    assert_eq!(scene.at("same").nlink, 1);
}

#[test]
fn missing_parents_are_made_and_the_root_takes_its_entrys_mode() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .dir_with(
            "./",
            Attrs {
                mode: 0o750,
                ..DEFAULT
            },
        )
        .file("a/b/c", b"deep")
        .bytes();
    unpack_all(&scene, Owners::Image, Resolve::Walk, &[tar]).unwrap();
    assert_eq!(scene.at("a").mode, 0o755);
    assert_eq!(scene.at("a/b").mode, 0o755);
    assert_eq!(look(&scene.tree_path).mode, 0o750);
}

#[test]
fn long_names_and_large_files_come_through_whole() {
    let scene = Scene::new();
    let long_dir = "directory-with-a-long-name/".repeat(6);
    let long_name = format!("{long_dir}file");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let tar = LayerTar::new()
        .file(&long_name, b"long")
        .symlink("link-to-long", &long_name)
        .file("big", &big)
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(scene.at(&long_name).content, b"long");
    assert_eq!(scene.at("link-to-long").content, long_name.as_bytes());
    assert_eq!(scene.at("big").content, big);
    assert_eq!(stats[0].file_bytes, 4 + big.len() as u64);
}

#[test]
fn gzip_zstd_and_plain_layers_give_the_same_tree_and_diff_id() {
    let tar = LayerTar::new()
        .dir("etc")
        .file("etc/hostname", b"tako\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();

    let mut trees = Vec::new();
    for (compression, blob) in [
        (Compression::None, &tar),
        (Compression::Gzip, &gz),
        (Compression::Zstd, &zst),
    ] {
        let scene = Scene::new();
        let mut unpacker = scene.unpacker(Owners::Image, Resolve::Openat2);
        let digest = "sha256:same";
        let stats = unpacker
            .apply_layer(
                &Layer {
                    digest,
                    compression,
                    diff_id: Some(Sha256::digest(&tar).into()),
                },
                &blob[..],
            )
            .unwrap();
        unpacker.finish().unwrap();
        assert_eq!(stats.uncompressed_bytes, tar.len() as u64);
        trees.push(scene.tree());
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert_eq!(trees[0].len(), 3);
}

#[test]
fn a_global_pax_header_and_aufs_bookkeeping_are_skipped() {
    let scene = Scene::new();
    let tar = LayerTar::new()
        .entry(
            EntryType::XGlobalHeader,
            b"pax_global_header",
            b"",
            DEFAULT,
            b"20 comment=ignored\n",
        )
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/123.456", b"")
        .file("real", b"")
        .bytes();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    assert_eq!(stats[0].other_skipped, 3);
    assert_eq!(scene.tree().into_keys().collect::<Vec<_>>(), ["real"]);
}

// Pieces.
