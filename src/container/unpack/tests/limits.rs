//! Caps: compression bombs, huge and wide layers, oversized headers, truncated and padded archives.

use super::*;

#[test]
fn a_gzip_bomb_stops_at_the_cap_with_an_error_naming_the_layer() {
    // 32 MiB of zeros in one file, about 32 KiB compressed.
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let header = gnu_header("bomb", EntryType::Regular, 0o644, 32 << 20);
    builder
        .append(&header, std::io::repeat(0).take(32 << 20))
        .unwrap();
    let blob = builder.into_inner().unwrap().finish().unwrap();
    assert!(blob.len() < 256 << 10);

    let scene = Scene::new();
    let before = scene.snapshot();
    let mut unpacker = Unpacker::new(
        Tree::open(&scene.tree_path).unwrap(),
        Options {
            owners: Owners::Image,
            limits: Limits {
                uncompressed_bytes: 4 << 20,
                ..Limits::default()
            },
        },
    );
    let gz = Layer {
        digest: "sha256:bomb",
        compression: Compression::Gzip,
        diff_id: None,
    };
    let err = unpacker.apply_layer(&gz, &blob[..]).unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooLarge { source, .. } if source.cap == 4 << 20),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("sha256:bomb") && message.contains("4194304"),
        "{message}"
    );
    assert_eq!(scene.snapshot(), before);
    assert!(
        std::fs::metadata(scene.tree_path.join("bomb"))
            .unwrap()
            .len()
            <= 4 << 20
    );
}

fn wide_layer(entries: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::with_capacity(entries * 1024));
    for d in 0..entries / 1000 {
        let header = gnu_header(&format!("d{d:03}/"), EntryType::Directory, 0o755, 0);
        builder.append(&header, std::io::empty()).unwrap();
        for f in 0..999 {
            let header = gnu_header(&format!("d{d:03}/f{f:03}"), EntryType::Regular, 0o644, 0);
            builder.append(&header, std::io::empty()).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn a_layer_of_100k_entries_is_applied_within_the_default_cap() {
    let tar = wide_layer(100_000);
    let scene = Scene::new();
    let started = Instant::now();
    let stats = unpack_all(&scene, Owners::Image, Resolve::Openat2, &[tar]).unwrap();
    let took = started.elapsed();
    assert_eq!(stats[0].entries, 100_000);
    assert_eq!((stats[0].files, stats[0].directories), (99_900, 100));
    assert_eq!(
        std::fs::read_dir(scene.tree_path.join("d042"))
            .unwrap()
            .count(),
        999
    );
    eprintln!("100k entries applied in {took:?}");
    assert!(took < Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_layer_with_more_entries_than_the_cap_is_refused_early() {
    let tar = wide_layer(100_000);
    let scene = Scene::new();
    let mut unpacker = Unpacker::new(
        Tree::open(&scene.tree_path).unwrap(),
        Options {
            owners: Owners::Image,
            limits: Limits {
                entries: 10_000,
                ..Limits::default()
            },
        },
    );
    let err = unpacker
        .apply_layer(&layer("sha256:wide"), &tar[..])
        .unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { max: 10_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("more than 10000 entries"), "{err}");
}

#[test]
fn headers_larger_than_their_budget_are_refused_before_they_fill_memory() {
    let huge = vec![b'a'; 2 << 20];
    let tar = LayerTar::new()
        .file("before", b"")
        .pax(&[("comment", &huge)])
        .file("after", b"")
        .bytes();
    let err = refused(&[tar]).remove(0);
    assert!(
        matches!(&err, UnpackError::HeadersTooLarge { after, max, .. } if after == "before" && *max == 1 << 20),
        "{err}"
    );
}

#[test]
fn entries_hidden_after_the_end_of_archive_marker_are_refused() {
    let mut tar = LayerTar::new().file("seen", b"x").bytes();
    let mut hidden = LayerTar::new().file("hidden", b"y").bytes();
    tar.append(&mut hidden);
    let err = refused(&[tar]).remove(0);
    assert!(matches!(err, UnpackError::TrailingData { .. }), "{err}");
}

#[test]
fn a_truncated_layer_is_an_error_not_a_short_file() {
    let tar = LayerTar::new().file("f", &[1u8; 4096]).bytes();
    let cut = tar[..512 + 1000].to_vec();
    let err = refused(&[cut]).remove(0);
    assert!(
        err.to_string().contains("the layer ends inside this file"),
        "{err}"
    );
}
