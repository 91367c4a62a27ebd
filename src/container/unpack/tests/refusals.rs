//! Hostile names and links: what a layer may not do, and that nothing outside the tree changes.

use super::*;

#[test]
fn a_symlink_to_outside_then_a_file_through_it_in_the_same_layer_writes_nothing_outside() {
    let scene_for_path = Scene::new();
    for target in [
        scene_for_path.outside_str(),
        "../outside".into(),
        "../../../../..".into(),
    ] {
        let tar = LayerTar::new()
            .symlink("evil", &target)
            .file("evil/pwned", b"written through a link")
            .bytes();
        for err in refused(&[tar]) {
            assert_eq!(symlink_at(&err), Some(("evil/pwned", "evil")), "{err}");
            let message = err.to_string();
            assert!(
                message.contains("sha256:layer0") && message.contains("evil/pwned"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_symlink_planted_by_a_lower_layer_never_redirects_a_write() {
    let paths = Scene::new();
    let lower = LayerTar::new()
        .dir("usr")
        .symlink("usr/lib", &paths.outside_str())
        .bytes();
    for upper in [
        LayerTar::new().file("usr/lib/pwned", b"x").bytes(),
        LayerTar::new().dir("usr/lib/sub/").bytes(),
        LayerTar::new()
            .file("usr/lib/sub/deeper", b"overwritten")
            .bytes(),
        LayerTar::new().fifo("usr/lib/fifo", 0o644).bytes(),
    ] {
        for err in refused(&[lower.clone(), upper]) {
            let (_, at) = symlink_at(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(at, "usr/lib");
            assert!(err.to_string().contains("sha256:layer1"), "{err}");
        }
    }
}

#[test]
fn dot_dot_names_are_refused() {
    for name in ["../escape", "a/../../escape", "a/../b", ".."] {
        let tar = LayerTar::new().file(name, b"x").bytes();
        for err in refused(&[tar]) {
            let (path, why) = refusal(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!((path, why), (name, &Refusal::Name(PathProblem::DotDot)));
        }
    }
}

#[test]
fn absolute_names_are_refused() {
    let scene = Scene::new();
    let secret = format!("{}/secret", scene.outside_str());
    for name in [secret.as_str(), "/etc/tako-test"] {
        let tar = LayerTar::new().file(name, b"x").bytes();
        for err in refused(&[tar]) {
            let (_, why) = refusal(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(why, &Refusal::Name(PathProblem::Absolute));
        }
    }
}

#[test]
fn empty_names_are_refused() {
    let tar = LayerTar::new().file("", b"x").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::Name(PathProblem::Empty)),
            "{err}"
        );
    }
}

#[test]
fn a_whiteout_through_a_symlink_removes_nothing_outside() {
    let paths = Scene::new();
    let lower = LayerTar::new()
        .symlink("evil", &paths.outside_str())
        .bytes();
    for upper in [
        LayerTar::new().whiteout("evil/.wh.secret").bytes(),
        LayerTar::new().whiteout("evil/.wh.sub").bytes(),
        LayerTar::new().whiteout("evil/.wh..wh..opq").bytes(),
        LayerTar::new().whiteout("evil/sub/.wh..wh..opq").bytes(),
    ] {
        for err in refused(&[lower.clone(), upper]) {
            let (_, at) = symlink_at(&err).unwrap_or_else(|| panic!("{err}"));
            assert_eq!(at, "evil");
        }
    }
}

#[test]
fn a_whiteout_of_a_symlink_removes_the_link_only() {
    for resolve in BOTH {
        let scene = Scene::new();
        let before = scene.snapshot();
        let lower = LayerTar::new()
            .symlink("evil", &scene.outside_str())
            .bytes();
        let upper = LayerTar::new().whiteout(".wh.evil").bytes();
        unpack_all(&scene, Owners::Image, resolve, &[lower, upper]).unwrap();
        assert!(!scene.exists("evil"));
        assert_eq!(scene.snapshot(), before);
    }
}

#[test]
fn invalid_whiteout_names_are_refused() {
    for name in [".wh.", "a/.wh..", ".wh...", "a/.wh."] {
        let tar = LayerTar::new().dir("a").whiteout(name).bytes();
        for err in refused(&[tar]) {
            assert_eq!(refusal(&err), Some((name, &Refusal::BadWhiteout)), "{err}");
        }
    }
    let tar = LayerTar::new().file(".wh.dir/file", b"").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::WhiteoutAsDirectory),
            "{err}"
        );
    }
}

#[test]
fn a_hard_link_to_outside_is_refused() {
    let scene = Scene::new();
    let absolute = format!("{}/secret", scene.outside_str());
    for (target, problem) in [
        ("../outside/secret", PathProblem::DotDot),
        ("a/../../outside/secret", PathProblem::DotDot),
        (absolute.as_str(), PathProblem::Absolute),
    ] {
        let tar = LayerTar::new().dir("a").hardlink("stolen", target).bytes();
        for err in refused(&[tar]) {
            match refusal(&err) {
                Some((path, Refusal::HardLinkTarget { problem: p, .. })) => {
                    assert_eq!((path, p), ("stolen", &problem));
                }
                _ => panic!("{target}: {err}"),
            }
        }
    }
    let tar = LayerTar::new().hardlink("stolen", "").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err),
            Some(("stolen", &Refusal::NoLinkTarget)),
            "{err}"
        );
    }
    // Through a symlink to outside, in this layer or a lower one.
    let lower = LayerTar::new()
        .symlink("evil", &scene.outside_str())
        .bytes();
    let upper = LayerTar::new().hardlink("stolen", "evil/secret").bytes();
    for err in refused(&[lower, upper]) {
        assert_eq!(symlink_at(&err), Some(("stolen", "evil")), "{err}");
    }
}

#[test]
fn a_hard_link_to_a_directory_or_to_nothing_is_refused() {
    let tar = LayerTar::new().dir("d").hardlink("x", "d").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(&err, UnpackError::Tree { source: TreeError::HardLinkToDirectory { path }, .. } if path == "d"),
            "{err}"
        );
    }
    let tar = LayerTar::new().hardlink("x", "./").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(
                &err,
                UnpackError::Tree {
                    source: TreeError::HardLinkToDirectory { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
    let tar = LayerTar::new().dir("d").hardlink("x", "d/missing").bytes();
    for err in refused(&[tar]) {
        assert!(
            matches!(
                &err,
                UnpackError::Tree {
                    source: TreeError::Missing { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
    let tar = LayerTar::new().file("f", b"x").hardlink("f", "f").bytes();
    for err in refused(&[tar]) {
        assert_eq!(
            refusal(&err).map(|r| r.1),
            Some(&Refusal::HardLinkToItself),
            "{err}"
        );
    }
}

#[test]
fn a_directory_entry_after_a_same_named_symlink_replaces_the_link_and_chmods_nothing_outside() {
    for resolve in BOTH {
        for across_layers in [false, true] {
            let scene = Scene::new();
            let before = scene.snapshot();
            let link = LayerTar::new().symlink("d", &scene.outside_str());
            let wide = Attrs {
                mode: 0o777,
                uid: 4321,
                gid: 4321,
                ..DEFAULT
            };
            let layers = if across_layers {
                vec![link.bytes(), LayerTar::new().dir_with("d", wide).bytes()]
            } else {
                vec![link.dir_with("d", wide).bytes()]
            };
            unpack_all(&scene, Owners::Image, resolve, &layers).unwrap();
            assert_eq!(scene.snapshot(), before, "{resolve:?}");
            let d = scene.at("d");
            assert_eq!((d.kind, d.mode, d.uid), ("dir", 0o777, 4321));
        }
    }
}

#[test]
fn a_layer_whose_diff_id_does_not_match_the_config_fails() {
    let tar = LayerTar::new().file("f", b"content").bytes();
    let scene = Scene::new();
    let mut unpacker = scene.unpacker(Owners::Image, Resolve::Openat2);
    let wrong = Layer {
        diff_id: Some([0xab; 32]),
        ..layer("sha256:liar")
    };
    let err = unpacker.apply_layer(&wrong, &tar[..]).unwrap_err();
    let expected_actual = hex::encode(Sha256::digest(&tar));
    assert!(
        matches!(&err, UnpackError::DiffIdMismatch { actual, .. } if *actual == expected_actual),
        "{err}"
    );
    assert!(err.to_string().contains(&"ab".repeat(32)), "{err}");

    let right = Layer {
        diff_id: Some(Sha256::digest(&tar).into()),
        ..layer("sha256:honest")
    };
    let stats = unpacker.apply_layer(&right, &tar[..]).unwrap();
    assert_eq!(stats.diff_id, <[u8; 32]>::from(Sha256::digest(&tar)));
    assert_eq!(stats.uncompressed_bytes, tar.len() as u64);
}

#[test]
fn unknown_entry_types_and_out_of_range_owners_are_refused() {
    let tar = LayerTar::new()
        .entry(EntryType::new(b'V'), b"volume", b"", DEFAULT, b"")
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::UnsupportedType('V')),
        "{err}"
    );

    let tar = LayerTar::new()
        .file_with(
            "f",
            b"",
            Attrs {
                uid: u64::from(u32::MAX),
                ..DEFAULT
            },
        )
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert!(
        matches!(refusal(&err), Some((_, Refusal::IdOutOfRange(_)))),
        "{err}"
    );
}

#[test]
fn the_root_can_only_be_described_as_a_directory() {
    let tar = LayerTar::new().file("./", b"").bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::RootNotDirectory),
        "{err}"
    );
}

#[test]
fn names_past_the_limits_are_refused() {
    let long = "d/".repeat(300) + "f";
    let tar = LayerTar::new().file(&long, b"").bytes();
    let err = refused(&[tar]).remove(0);
    assert_eq!(
        refusal(&err).map(|r| r.1),
        Some(&Refusal::TooDeep { max: 256 }),
        "{err}"
    );
}

// Layers as images have them.
