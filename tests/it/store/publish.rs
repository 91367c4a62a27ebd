//! `tako store`: the publishing side, checked by the bytes it leaves on disk.

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

    fn manifest(&self) -> Vec<u8> {
        fs::read(self.out().join("manifest")).unwrap()
    }

    fn image(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, content).unwrap();
        path
    }

    fn store(&self, image: &Path, version: &str) -> Output {
        self.store_with(&["-k", &test_secret()], image, version)
    }

    fn store_with(&self, key_args: &[&str], image: &Path, version: &str) -> Output {
        let out = self.out();
        let mut args: Vec<&str> = vec!["store"];
        args.extend_from_slice(key_args);
        args.extend([
            "-o",
            out.to_str().unwrap(),
            "--",
            image.to_str().unwrap(),
            version,
        ]);
        tako(&args)
    }
}

fn entry(version: &str, content: &[u8]) -> String {
    format!("{version} {} {}", content.len(), sha256_hex(content))
}

#[test]
fn storing_the_vector_images_reproduces_the_vector_origin_manifest() {
    let p = Publisher::new();
    let expected = vector_origin_entries();
    // Store in an order other than ascending: the manifest must sort them.
    for (version, hex) in [&expected[2], &expected[0], &expected[1]] {
        let image = vectors().join("origin/store").join(hex);
        let o = p.store(&image, version);
        assert_exit(&o, 0);
        assert_eq!(stdout(&o), format!("{version} -> {hex}\n"));
        let stored = p.out().join("store").join(hex);
        assert_eq!(fs::read(&stored).unwrap(), fs::read(&image).unwrap());
        assert_eq!(mode(&stored), 0o444);
    }
    assert_eq!(p.manifest(), vector("origin/manifest"));
    assert_eq!(mode(&p.out().join("manifest")), 0o444);
    let leftovers: Vec<_> = fs::read_dir(p.out().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// (version, digest) pairs of the vector origin, ascending.
fn vector_origin_entries() -> Vec<(String, String)> {
    String::from_utf8(vector("origin/manifest"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() == 3 && f[2].len() == 64)
        .map(|f| (f[0].to_string(), f[2].to_string()))
        .collect()
}

#[test]
fn several_versions_in_random_order_give_the_manifest_an_independent_signer_writes() {
    let p = Publisher::new();
    let versions = [
        "1.10",
        "0.9-beta",
        "1.2",
        "2.0.0-rc1",
        "1.0",
        "2.0.0",
        "0.9",
    ];
    let mut lines = Vec::new();
    for v in versions {
        let content = format!("image {v}\n").into_bytes();
        assert_exit(&p.store(&p.image(v, &content), v), 0);
        lines.push((v, entry(v, &content)));
    }
    let ascending = [
        "0.9-beta",
        "0.9",
        "1.0",
        "1.2",
        "1.10",
        "2.0.0-rc1",
        "2.0.0",
    ];
    let expected: Vec<String> = ascending
        .iter()
        .map(|v| lines.iter().find(|(x, _)| x == v).unwrap().1.clone())
        .collect();
    assert_eq!(p.manifest(), signed_manifest(&expected));
}

#[test]
fn stores_an_empty_image() {
    let p = Publisher::new();
    let o = p.store(&p.image("empty", b""), "0.1");
    assert_exit(&o, 0);
    let hex = sha256_hex(b"");
    assert_eq!(fs::read(p.out().join("store").join(&hex)).unwrap(), b"");
    assert_eq!(p.manifest(), signed_manifest(&[entry("0.1", b"")]));
}

#[test]
fn takes_the_key_from_a_key_file_with_a_trailing_newline() {
    let p = Publisher::new();
    let key_file = p.image("key", format!("{}\n", test_secret()).as_bytes());
    let o = p.store_with(
        &["-f", key_file.to_str().unwrap()],
        &p.image("a", b"a"),
        "1",
    );
    assert_exit(&o, 0);
    assert_eq!(p.manifest(), signed_manifest(&[entry("1", b"a")]));
}

/// Issue 23, hostile review N: `-f /dev/zero` grew to 10 GB; a pipe (process
/// substitution) must still work.
#[test]
fn a_key_file_is_read_with_a_bound_and_may_be_a_pipe() {
    let p = Publisher::new();
    let o = p.store_with(&["-f", "/dev/zero"], &p.image("a", b"a"), "1");
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o),
        "tako: error: key file /dev/zero is larger than a key file can be (4096 bytes); give the file that 'tako gen-key' output was saved to\n"
    );
    assert!(!p.out().join("manifest").exists());

    // `-f <(cat key)`: the shell hands tako a pipe.
    let key_file = p.image("key", format!("{}\n", test_secret()).as_bytes());
    let out = p.out();
    let image = p.image("b", b"b");
    let script = format!(
        "exec \"$0\" store -f <(cat '{}') -o '{}' '{}' 1",
        key_file.display(),
        out.display(),
        image.display()
    );
    let o = run_bounded(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_tako")),
    );
    assert_exit(&o, 0);
    assert_eq!(p.manifest(), signed_manifest(&[entry("1", b"b")]));
}

#[test]
fn takes_the_key_from_the_environment() {
    let p = Publisher::new();
    let out = p.out();
    let image = p.image("a", b"a");
    let o = run_bounded(tako_cmd().env("TAKO_SECRET_KEY", test_secret()).args([
        "store",
        "-o",
        out.to_str().unwrap(),
        image.to_str().unwrap(),
        "1",
    ]));
    assert_exit(&o, 0);
    assert_eq!(p.manifest(), signed_manifest(&[entry("1", b"a")]));
}

#[test]
fn command_line_keys_take_precedence_over_the_environment() {
    let p = Publisher::new();
    let out = p.out();
    let image = p.image("a", b"a");
    let key_file = p.image("key", test_secret().as_bytes());
    for key_args in [
        vec!["-k".to_string(), test_secret()],
        vec![
            "--key-file".to_string(),
            key_file.to_str().unwrap().to_string(),
        ],
    ] {
        let o = run_bounded(
            tako_cmd()
                .env("TAKO_SECRET_KEY", "SECRET+not-a-key")
                .arg("store")
                .args(&key_args)
                .args(["-o", out.to_str().unwrap(), image.to_str().unwrap(), "1"]),
        );
        assert_exit(&o, 0);
    }
    assert_eq!(p.manifest(), signed_manifest(&[entry("1", b"a")]));
}

#[test]
fn refuses_both_key_and_key_file_as_a_usage_error() {
    let p = Publisher::new();
    let o = p.store_with(
        &["-k", &test_secret(), "-f", "/dev/null"],
        &p.image("a", b"a"),
        "1",
    );
    assert_exit(&o, 2);
    assert!(!p.out().join("manifest").exists());
}

#[test]
fn without_a_key_names_the_three_ways_to_give_one() {
    let p = Publisher::new();
    let o = p.store_with(&[], &p.image("a", b"a"), "1");
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.starts_with("tako: error: "), "{err}");
    for way in ["--key", "--key-file", "TAKO_SECRET_KEY"] {
        assert!(err.contains(way), "{err}");
    }
    assert!(!p.out().join("manifest").exists());
}

/// Publishes 1.0.0 and returns the manifest bytes, for refusal tests.
fn published(p: &Publisher) -> Vec<u8> {
    assert_exit(&p.store(&p.image("v1", b"version one"), "1.0.0"), 0);
    p.manifest()
}

#[track_caller]
fn assert_refused(p: &Publisher, before: &[u8], o: &Output, message: &str) {
    assert_exit(o, 1);
    let err = stderr(o);
    assert!(err.starts_with("tako: error: "), "{err}");
    assert!(err.contains(message), "expected {message:?} in {err}");
    assert_eq!(
        p.manifest(),
        before,
        "the manifest must stay byte-identical"
    );
}

#[test]
fn refuses_invalid_version_strings() {
    let p = Publisher::new();
    let before = published(&p);
    let image = p.image("x", b"x");
    for (version, message) in [
        ("", "invalid version"),
        ("1.0 beta", "invalid version"),
        ("2.*", "invalid version"),
        ("-._", "no parts"),
        ("1.99999999999999999999", "64 bits"),
    ] {
        let o = p.store(&image, version);
        assert_refused(&p, &before, &o, message);
    }
    let long = "1".repeat(129);
    assert_refused(&p, &before, &p.store(&image, &long), "128");
}

#[test]
fn refuses_to_change_the_digest_of_a_published_version() {
    let p = Publisher::new();
    let before = published(&p);
    let o = p.store(&p.image("other", b"different bytes"), "1.0.0");
    assert_refused(&p, &before, &o, "1.0.0 11 ");
    assert!(stderr(&o).contains("conflicts"));
    // The refused image did not enter the store.
    let hex = sha256_hex(b"different bytes");
    assert!(!p.out().join("store").join(hex).exists());
}

#[test]
fn refuses_a_separator_only_twin_of_a_published_version() {
    let p = Publisher::new();
    let before = published(&p);
    let o = p.store(&p.image("v1", b"version one"), "1.0-0");
    assert_refused(&p, &before, &o, "'1.0.0 ");
}

#[test]
fn storing_the_same_entry_again_is_a_no_op() {
    let p = Publisher::new();
    let before = published(&p);
    let o = p.store(&p.image("v1", b"version one"), "1.0.0");
    assert_exit(&o, 0);
    assert_eq!(p.manifest(), before);
}

#[test]
fn refuses_a_manifest_signed_by_another_key() {
    let p = Publisher::new();
    fs::write(p.out().join("manifest"), vector("invalid/other-key")).unwrap();
    let before = p.manifest();
    let o = p.store(&p.image("x", b"x"), "3.0");
    assert_refused(&p, &before, &o, "signed by another key");
}

#[test]
fn refuses_a_secret_key_signing_an_existing_manifest_it_does_not_own() {
    let p = Publisher::new();
    let before = published(&p);
    let (other, _) = gen_key();
    let o = p.store_with(&["-k", &other], &p.image("x", b"x"), "3.0");
    assert_refused(&p, &before, &o, "another key");
}

#[test]
fn refuses_a_corrupted_secret_key() {
    let p = Publisher::new();
    let before = published(&p);
    let secret = test_secret();
    // Change one character of the embedded public key.
    let mut corrupted = secret.clone().into_bytes();
    let i = corrupted.len() - 3;
    corrupted[i] = if corrupted[i] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(corrupted).unwrap();
    let o = p.store_with(&["-k", &corrupted], &p.image("x", b"x"), "3.0");
    assert_refused(&p, &before, &o, "corrupted");
    let o = p.store_with(&["-k", &secret[7..]], &p.image("x", b"x"), "3.0");
    assert_refused(&p, &before, &o, "SECRET+");
}

#[test]
fn refuses_a_damaged_existing_manifest() {
    let p = Publisher::new();
    let mut damaged = published(&p);
    damaged.push(b'\n');
    fs::remove_file(p.out().join("manifest")).unwrap();
    fs::write(p.out().join("manifest"), &damaged).unwrap();
    let o = p.store(&p.image("x", b"x"), "3.0");
    assert_refused(&p, &damaged, &o, "trailing data");
}

#[test]
fn replaces_a_damaged_store_file() {
    let p = Publisher::new();
    let before = published(&p);
    let stored = p.out().join("store").join(sha256_hex(b"version one"));
    fs::remove_file(&stored).unwrap();
    fs::write(&stored, b"bit rot").unwrap();
    let o = p.store(&p.image("v1", b"version one"), "1.0.0");
    assert_exit(&o, 0);
    assert_eq!(fs::read(&stored).unwrap(), b"version one");
    assert_eq!(mode(&stored), 0o444);
    assert_eq!(p.manifest(), before);
}

#[test]
fn names_a_missing_output_directory_and_image() {
    let p = Publisher::new();
    let image = p.image("a", b"a");
    let o = tako(&[
        "store",
        "-k",
        &test_secret(),
        "-o",
        "/nonexistent/tako-out",
        image.to_str().unwrap(),
        "1",
    ]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("/nonexistent/tako-out"),
        "{}",
        stderr(&o)
    );
    let o = p.store(Path::new("/nonexistent/image"), "1");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("/nonexistent/image"), "{}", stderr(&o));
    assert!(!p.out().join("manifest").exists());
}

#[test]
fn concurrent_stores_of_different_versions_all_end_in_the_manifest() {
    let p = Publisher::new();
    let images: Vec<(String, Vec<u8>, PathBuf)> = (0..8)
        .map(|i| {
            let v = format!("1.{i}");
            let content = format!("image number {i}").repeat(1000).into_bytes();
            let path = p.image(&v, &content);
            (v, content, path)
        })
        .collect();
    let out = p.out();
    let children: Vec<_> = images
        .iter()
        .map(|(v, _, path)| {
            Bounded::new(
                tako_cmd()
                    .args(["store", "-k", &test_secret(), "-o", out.to_str().unwrap()])
                    .args([path.to_str().unwrap(), v]),
            )
            .spawn()
        })
        .collect();
    for child in children {
        assert_exit(&child.finish(), 0);
    }
    let expected: Vec<String> = images.iter().map(|(v, c, _)| entry(v, c)).collect();
    assert_eq!(p.manifest(), signed_manifest(&expected));
}

#[test]
fn usage_errors_exit_with_status_two() {
    assert_exit(&tako(&["store"]), 2);
    assert_exit(&tako(&["store", "-o", "x", "img"]), 2);
    assert_exit(&tako(&["frobnicate"]), 2);
    assert_exit(&tako(&[]), 2);
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["store", "--help"],
        &["fetch", "--help"],
        &["gen-key", "--help"],
    ] {
        assert_exit(&tako(args), 0);
    }
    let o = tako(&["--version"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("tako {}\n", env!("CARGO_PKG_VERSION")));
}
