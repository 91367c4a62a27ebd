//! Chunk indexes on the publishing side: `tako store` writes them, `tako index` fills them in.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::tako::*;

struct Publisher {
    dir: tempfile::TempDir,
}

impl Publisher {
    fn new() -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("out")).unwrap();
        Publisher { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn index_path(&self, hex: &str) -> PathBuf {
        self.out().join("index").join(hex)
    }

    fn store(&self, content: &[u8], version: &str, extra: &[&str]) -> Output {
        let image = self.dir.path().join(format!("image-{version}"));
        fs::write(&image, content).unwrap();
        let out = self.out();
        let secret = test_secret();
        let mut args = vec!["store", "-k", &secret, "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(["--", image.to_str().unwrap(), version]);
        tako(&args)
    }

    fn index(&self) -> Output {
        tako(&["index", "-o", self.out().to_str().unwrap()])
    }
}

/// Checks an index file against the image by the documented format
/// (docs/index.md, version 2): the text head, then 18-byte records whose
/// lengths cover the image and whose digests are the first 16 bytes of the
/// BLAKE3 hash of the bytes at their offsets.
fn assert_index_describes(index: &Path, content: &[u8]) {
    let bytes = fs::read(index).unwrap();
    let head = format!(
        "Tako Chunk Index 2\n\n{} {}\n\n",
        content.len(),
        sha256_hex(content)
    );
    assert!(bytes.starts_with(head.as_bytes()), "{index:?}");
    let records = &bytes[head.len()..];
    assert_eq!(records.len() % 18, 0);
    let mut offset = 0usize;
    let mut count = 0;
    for record in records.chunks(18) {
        let length = usize::from(u16::from_be_bytes([record[16], record[17]])) + 1;
        assert!(length <= 32 << 10, "{length}");
        let hash = blake3::hash(&content[offset..offset + length]);
        assert_eq!(&record[..16], &hash.as_bytes()[..16], "chunk {count}");
        offset += length;
        count += 1;
    }
    assert_eq!(offset, content.len());
    if content.len() > 1 << 20 {
        // Content-defined chunks of about 8 KiB, not one per image.
        assert!(count > 8, "{count} chunks");
    }
    assert_eq!(mode(index) & 0o777, 0o444, "{}", index.display());
}

#[test]
fn store_writes_the_chunk_index_beside_the_image() {
    let p = Publisher::new();
    let content = noise(1, (3 << 20) + 17);
    let o = p.store(&content, "1.0", &[]);
    assert_exit(&o, 0);
    let hex = sha256_hex(&content);
    assert_index_describes(&p.index_path(&hex), &content);
    assert_eq!(mode(&p.out().join("index")) & 0o777, 0o755);
    // No temporaries are left.
    let names: Vec<_> = fs::read_dir(p.out().join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [hex]);
}

#[test]
fn store_with_no_index_writes_no_index() {
    let p = Publisher::new();
    let content = noise(2, 100_000);
    assert_exit(&p.store(&content, "1.0", &["--no-index"]), 0);
    assert!(p.out().join("store").join(sha256_hex(&content)).is_file());
    assert!(!p.out().join("index").exists());
}

#[test]
fn store_indexes_an_empty_image() {
    let p = Publisher::new();
    assert_exit(&p.store(b"", "1.0", &[]), 0);
    assert_index_describes(&p.index_path(&sha256_hex(b"")), b"");
}

#[test]
fn index_fills_in_the_indexes_of_images_published_without_them() {
    let p = Publisher::new();
    let a = noise(3, 1 << 20);
    let b = noise(4, (2 << 20) + 5);
    let c = noise(5, 300_000);
    assert_exit(&p.store(&a, "1.0", &["--no-index"]), 0);
    assert_exit(&p.store(&b, "1.1", &["--no-index"]), 0);
    assert_exit(&p.store(&c, "1.2", &[]), 0);
    let kept = fs::read(p.index_path(&sha256_hex(&c))).unwrap();

    let o = p.index();
    assert_exit(&o, 0);
    assert_index_describes(&p.index_path(&sha256_hex(&a)), &a);
    assert_index_describes(&p.index_path(&sha256_hex(&b)), &b);
    assert_eq!(fs::read(p.index_path(&sha256_hex(&c))).unwrap(), kept);
    let out = stdout(&o);
    assert!(out.contains(&sha256_hex(&a)), "{out}");
    assert!(out.contains(&sha256_hex(&b)), "{out}");
    assert!(!out.contains(&sha256_hex(&c)), "{out}");
    assert!(
        out.contains("2 indexes written, 1 already present"),
        "{out}"
    );

    // A second run has nothing to do.
    let o = p.index();
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("0 indexes written, 3 already present"));
}

#[test]
fn index_indexes_a_directory_of_the_original_tako() {
    // The golden origin was written by the original Tako: no index/ at all.
    let p = Publisher::new();
    let origin = vectors().join("origin");
    fs::copy(origin.join("manifest"), p.out().join("manifest")).unwrap();
    fs::create_dir(p.out().join("store")).unwrap();
    let mut images = Vec::new();
    for entry in fs::read_dir(origin.join("store")).unwrap() {
        let entry = entry.unwrap();
        let content = fs::read(entry.path()).unwrap();
        fs::write(p.out().join("store").join(entry.file_name()), &content).unwrap();
        images.push(content);
    }
    assert!(!images.is_empty());
    assert_exit(&p.index(), 0);
    for content in &images {
        assert_index_describes(&p.index_path(&sha256_hex(content)), content);
    }
}

#[test]
fn index_refuses_a_store_file_whose_bytes_do_not_match_its_name() {
    let p = Publisher::new();
    let good = noise(6, 200_000);
    let bad = noise(7, 200_000);
    assert_exit(&p.store(&good, "1.0", &["--no-index"]), 0);
    assert_exit(&p.store(&bad, "1.1", &["--no-index"]), 0);
    let bad_hex = sha256_hex(&bad);
    let bad_path = p.out().join("store").join(&bad_hex);
    fs::set_permissions(
        &bad_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    fs::write(&bad_path, b"tampered").unwrap();

    let o = p.index();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&bad_path.display().to_string()), "{err}");
    assert!(err.contains("does not match its name"), "{err}");
    assert!(err.contains(&sha256_hex(b"tampered")), "{err}");
    assert!(
        err.contains("tako: error: 1 of 2 images could not be indexed"),
        "{err}"
    );
    assert!(!p.index_path(&bad_hex).exists());
    // The good image is indexed all the same.
    assert_index_describes(&p.index_path(&sha256_hex(&good)), &good);
}

#[test]
fn index_replaces_an_index_of_another_image_or_an_invalid_one() {
    let p = Publisher::new();
    let a = noise(8, 500_000);
    let b = noise(9, 500_000);
    assert_exit(&p.store(&a, "1.0", &[]), 0);
    assert_exit(&p.store(&b, "1.1", &[]), 0);
    let (ha, hb) = (sha256_hex(&a), sha256_hex(&b));
    // a's index now holds b's; b's is garbage.
    let b_index = fs::read(p.index_path(&hb)).unwrap();
    fs::remove_file(p.index_path(&ha)).unwrap();
    fs::write(p.index_path(&ha), &b_index).unwrap();
    fs::remove_file(p.index_path(&hb)).unwrap();
    fs::write(p.index_path(&hb), b"Tako Chunk Index 2\n\nnonsense\n").unwrap();

    let o = p.index();
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("is the index of another image"), "{err}");
    assert!(err.contains("is invalid"), "{err}");
    assert_index_describes(&p.index_path(&ha), &a);
    assert_index_describes(&p.index_path(&hb), &b);
}

#[test]
fn index_replaces_a_version_1_index_left_by_an_older_tako() {
    let p = Publisher::new();
    let a = noise(11, 300_000);
    assert_exit(&p.store(&a, "1.0", &[]), 0);
    let hex = sha256_hex(&a);
    // What an older tako wrote: text lines of a SHA-256 and a length.
    let v1 = format!(
        "Tako Chunk Index 1\n\n{} {hex}\n\n{hex} {}\n",
        a.len(),
        a.len()
    );
    fs::remove_file(p.index_path(&hex)).unwrap();
    fs::write(p.index_path(&hex), v1).unwrap();

    let o = p.index();
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("is a version-1 index"), "{err}");
    assert!(err.contains("replacing it"), "{err}");
    // Not the hint a host gets: this is the command it names.
    assert!(!err.contains("run 'tako index'"), "{err}");
    assert!(stdout(&o).contains("1 indexes written"), "{}", stdout(&o));
    assert_index_describes(&p.index_path(&hex), &a);
}

#[test]
fn index_never_writes_through_a_symlink_planted_as_an_index() {
    let p = Publisher::new();
    let a = noise(10, 100_000);
    assert_exit(&p.store(&a, "1.0", &["--no-index"]), 0);
    let victim = p.dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::create_dir(p.out().join("index")).unwrap();
    let hex = sha256_hex(&a);
    std::os::unix::fs::symlink(&victim, p.index_path(&hex)).unwrap();

    assert_exit(&p.index(), 0);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(
        !fs::symlink_metadata(p.index_path(&hex))
            .unwrap()
            .is_symlink()
    );
    assert_index_describes(&p.index_path(&hex), &a);
}

#[test]
fn index_of_a_directory_without_a_store_says_so() {
    let p = Publisher::new();
    let o = p.index();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.starts_with("tako: error: "), "{err}");
    assert!(err.contains(&p.out().display().to_string()), "{err}");
    assert!(err.contains("no store/"), "{err}");
}

#[test]
fn store_refuses_a_symlink_planted_as_the_index_directory_before_writing_anything() {
    let p = Publisher::new();
    let elsewhere = p.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, p.out().join("index")).unwrap();
    let content = noise(11, 100_000);
    let o = p.store(&content, "1.0", &[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&p.out().join("index").display().to_string()),
        "{err}"
    );
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!p.out().join("manifest").exists());
    assert!(!p.out().join("store").join(sha256_hex(&content)).exists());
    // With --no-index the index directory is not touched.
    assert_exit(&p.store(&content, "1.0", &["--no-index"]), 0);
}

/// Issue 23, new user 11: `tako index -o oci+http://…` said "output directory … does not
/// exist"; for a registry the index is written by `tako store`.
#[test]
fn index_for_a_registry_repository_says_that_tako_store_writes_those() {
    for origin in ["oci+http://127.0.0.1:1/app", "oci://registry.example/app"] {
        let o = run_bounded(tako_cmd().args(["index", "-o", origin]));
        assert_exit(&o, 1);
        assert_eq!(
            stderr(&o),
            format!(
                "tako: error: {origin} is a registry repository; tako index writes indexes into server directories only, and for registries the index is written by tako store (publish the version again to add one)\n"
            )
        );
    }
}
