//! Publishing to a real distribution registry (`docker-registry`, through the harness of the
//! integration tests, compiled in here) where the test needs to reach between the steps of
//! a publish, which the black-box tests of `tako store` cannot.

use std::fs;

use sha2::{Digest, Sha256};

use super::Slot;
use super::registry_layout::{self as layout, MANIFEST_TAG};
use crate::format::key::SecretKey;
use crate::format::manifest::{Entry, MAX_MANIFEST_SIZE, Manifest};
use crate::format::version::Version;
use crate::registry::{Client, Reference};
use test_registry::Registry;

// The harness serves the integration tests too; these use only part of it.
#[allow(dead_code)]
#[path = "../../tests/it/support/registry.rs"]
mod test_registry;

fn client(origin: &str) -> Client {
    Client::with_credentials(Reference::parse(origin).unwrap(), None, true)
}

/// The signed manifest the repository's `tako-manifest` tag holds, and the digest of the
/// artifact that holds it.
fn read_manifest(c: &Client) -> (Vec<u8>, String) {
    let fetched = c
        .manifest(MANIFEST_TAG)
        .unwrap()
        .expect("a tako-manifest tag");
    let bytes = layout::signed_manifest_of(c, MANIFEST_TAG, &fetched, MAX_MANIFEST_SIZE).unwrap();
    (bytes, fetched.digest)
}

/// The manifest listing `versions` as `(version, image)`, signed with `key`.
fn signed_manifest(key: &SecretKey, versions: &[(&str, &[u8])]) -> Vec<u8> {
    let mut manifest = Manifest::default();
    for (version, image) in versions {
        let entry = Entry {
            version: Version::parse(version).unwrap(),
            size: image.len() as u64,
            digest: Sha256::digest(image).into(),
        };
        manifest.insert(entry).unwrap();
    }
    manifest.to_signed_bytes(key)
}

/// Pushes `image` as `version` and then `signed` over the `tako-manifest` tag that named
/// the artifact `previous` when read, as `tako store -o oci+http://…` does.
fn publish(
    c: &Client,
    dir: &tempfile::TempDir,
    (version, image): (&str, &[u8]),
    signed: &[u8],
    previous: Option<&str>,
) -> Result<String, super::OriginError> {
    let path = dir.path().join(version);
    fs::write(&path, image).unwrap();
    let image = layout::Image {
        path: &path,
        size: image.len() as u64,
        hex: &hex::encode(Sha256::digest(image)),
        index: None,
    };
    layout::push_image(c, &image, version)?;
    layout::push_manifest(c, &Slot::Primary, signed, previous)
}

#[test]
fn a_publisher_that_lost_the_race_for_the_tako_manifest_tag_is_told_so_and_leaves_it_alone() {
    let r = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let c = client(&r.origin("app"));
    let one: (&str, &[u8]) = ("1.0", b"one\n");
    publish(&c, &dir, one, &signed_manifest(&key, &[one]), None).unwrap();
    let (_, seen) = read_manifest(&c);
    // Another publisher moves the tag after this one read it.
    let two: (&str, &[u8]) = ("1.1", b"two\n");
    let (_, current) = read_manifest(&c);
    let both = signed_manifest(&key, &[one, two]);
    publish(&c, &dir, two, &both, Some(&current)).unwrap();
    let late: (&str, &[u8]) = ("1.2", b"late\n");
    let signed = signed_manifest(&key, &[one, late]);
    let err = publish(&c, &dir, late, &signed, Some(&seen)).expect_err("a lost race is an error");
    assert!(
        err.to_string().contains("another publisher changed it"),
        "{err}"
    );
    assert_eq!(read_manifest(&c).0, both);
}
