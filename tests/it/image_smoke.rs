//! Smoke tests of `tako image pull|digest|purge` against a real `docker-registry`, with a tiny
//! image each test builds (tar layers, an OCI manifest, an index) and pushes itself. The
//! thorough black-box tests of the image commands live with their own helpers; these only
//! show that the pieces fit: a pull, a re-pull from the cache, a digest, a purge.

use crate::support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use sha2::Digest as _;
use support::registry::Registry;
use support::tako::{assert_exit, stderr, stdout, tako};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A tar stream of `entries`: (path, Some(content)) for a file, (path, None) for a directory,
/// and a symlink when the content starts with `->`.
fn tar(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match content {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Some(target) if target.starts_with("->") => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target.trim_start_matches("->"))
                    .unwrap();
            }
            Some(text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                builder
                    .append_data(&mut header, path, text.as_bytes())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Sends one request to the registry and returns the status and `Location`.
fn request(method: &str, url: &str, content_type: &str, body: &[u8]) -> (u16, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", content_type)
        .body(body.to_vec())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut drained = Vec::new();
    let _ = response.body_mut().as_reader().read_to_end(&mut drained);
    (response.status().as_u16(), location)
}

/// Pushes a blob in one upload and returns its descriptor's digest.
fn push_blob(registry: &Registry, repository: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let base = format!("http://{}", registry.host());
    let (status, location) = request(
        "POST",
        &format!("{base}/v2/{repository}/blobs/uploads/"),
        "application/octet-stream",
        b"",
    );
    assert_eq!(status, 202);
    let location = location.unwrap();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let (status, _) = request(
        "PUT",
        &format!("{url}{separator}digest={digest}"),
        "application/octet-stream",
        bytes,
    );
    assert_eq!(status, 201, "upload of {digest}");
    digest
}

fn put_manifest(
    registry: &Registry,
    repository: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
    let url = format!(
        "http://{}/v2/{repository}/manifests/{reference}",
        registry.host()
    );
    let (status, _) = request("PUT", &url, media_type, bytes);
    assert_eq!(status, 201, "manifest {reference}");
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How a layer is pushed.
#[derive(Clone, Copy)]
enum Packed {
    Gzip,
    Zstd,
    Plain,
}

/// An image of `layers` (each a tar stream, pushed gzipped) for `arch`, pushed under `tag`
/// if one is given; returns the manifest's bytes.
fn push_image(
    registry: &Registry,
    repository: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[Vec<u8>],
) -> Vec<u8> {
    let gzipped: Vec<(Vec<u8>, Packed)> =
        layers.iter().map(|l| (l.clone(), Packed::Gzip)).collect();
    push_packed(registry, repository, tag, arch, &gzipped)
}

/// As [`push_image`], each layer packed as it says.
fn push_packed(
    registry: &Registry,
    repository: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[(Vec<u8>, Packed)],
) -> Vec<u8> {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (layer, packed) in layers {
        let (blob, media_type) = match packed {
            Packed::Gzip => (gzip(layer), "application/vnd.oci.image.layer.v1.tar+gzip"),
            Packed::Zstd => (
                zstd::encode_all(&layer[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
            Packed::Plain => (layer.clone(), "application/vnd.oci.image.layer.v1.tar"),
        };
        let digest = push_blob(registry, repository, &blob);
        descriptors.push(format!(
            r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{}}}"#,
            blob.len()
        ));
        diff_ids.push(format!("\"{}\"", sha256(layer)));
    }
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = push_blob(registry, repository, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descriptors.join(",")
    );
    let reference = match tag {
        Some(tag) => tag.to_owned(),
        None => sha256(manifest.as_bytes()),
    };
    put_manifest(
        registry,
        repository,
        &reference,
        OCI_MANIFEST,
        manifest.as_bytes(),
    );
    manifest.into_bytes()
}

fn base_layer() -> Vec<u8> {
    tar(&[
        ("etc", None),
        ("etc/os-release", Some("ID=smoke\n")),
        ("etc/hostname", Some("old\n")),
        ("bin", None),
        ("bin/sh", Some("#!/not/really\n")),
        ("usr", None),
        ("usr/bin", Some("->../bin")),
    ])
}

fn top_layer() -> Vec<u8> {
    tar(&[
        ("etc", None),
        ("etc/.wh.hostname", Some("")),
        ("etc/motd", Some("hello from the top layer\n")),
    ])
}

fn pull(args: &[&str]) -> Output {
    let mut line = vec!["image", "pull"];
    line.extend_from_slice(args);
    tako(&line)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_image_is_pulled_into_a_tree_and_a_second_pull_takes_its_layers_from_the_cache() {
    let registry = Registry::start();
    push_image(
        &registry,
        "smoke",
        Some("1"),
        "amd64",
        &[base_layer(), top_layer()],
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let image = format!("oci+http://{}/smoke:1", registry.host());
    let first = work.path().join("first");

    let o = pull(&[
        "--platform",
        "linux/amd64",
        "--cache",
        path(&cache),
        &image,
        path(&first),
    ]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("2 layers: 2 downloaded"), "{out}");
    assert!(out.contains("not signature-checked"), "{out}");
    assert_eq!(
        fs::read_to_string(first.join("etc/os-release")).unwrap(),
        "ID=smoke\n"
    );
    assert_eq!(
        fs::read_to_string(first.join("etc/motd")).unwrap(),
        "hello from the top layer\n"
    );
    assert!(!first.join("etc/hostname").exists(), "whited out");
    assert_eq!(
        fs::read_link(first.join("usr/bin")).unwrap(),
        Path::new("../bin")
    );
    assert_eq!(
        fs::metadata(first.join("etc")).unwrap().mode() & 0o7777,
        0o755
    );
    // Nothing of the pull is left beside the tree.
    let beside: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tako-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let second = work.path().join("second");
    let o = pull(&[
        "--platform",
        "linux/amd64",
        "--cache",
        path(&cache),
        &image,
        path(&second),
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("2 layers: 0 downloaded (0 bytes), 2 from the cache"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        fs::read_to_string(second.join("etc/motd")).unwrap(),
        "hello from the top layer\n"
    );

    // A tree that holds the image already is up to date; --rebuild replaces it whole.
    let o = pull(&[
        "--platform",
        "linux/amd64",
        "--cache",
        path(&cache),
        &image,
        path(&first),
    ]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("up to date"), "{}", stdout(&o));
    fs::write(first.join("stray"), b"from the old tree").unwrap();
    let o = pull(&[
        "--rebuild",
        "--platform",
        "linux/amd64",
        "--cache",
        path(&cache),
        &image,
        path(&first),
    ]);
    assert_exit(&o, 0);
    assert!(!first.join("stray").exists());
    assert!(first.join("etc/motd").exists());
}

#[test]
fn digest_prints_the_index_digest_or_with_a_platform_that_platforms_manifest() {
    let registry = Registry::start();
    let amd64 = push_image(&registry, "multi", None, "amd64", &[base_layer()]);
    let arm64 = push_image(&registry, "multi", None, "arm64", &[top_layer()]);
    let entry = |manifest: &[u8], arch: &str| {
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            sha256(manifest),
            manifest.len()
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        entry(&amd64, "amd64"),
        entry(&arm64, "arm64")
    );
    put_manifest(&registry, "multi", "latest", OCI_INDEX, index.as_bytes());
    let image = format!("oci+http://{}/multi", registry.host());

    let o = tako(&["image", "digest", &image]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", sha256(index.as_bytes())));
    let o = tako(&["image", "digest", "--platform", "linux/arm64", &image]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", sha256(&arm64)));
    let o = tako(&[
        "image",
        "digest",
        "--json",
        "--platform",
        "linux/amd64",
        &image,
    ]);
    assert_exit(&o, 0);
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["index_digest"], sha256(index.as_bytes()));
    assert_eq!(record["manifest_digest"], sha256(&amd64));
    assert_eq!(
        record["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    let o = tako(&["image", "digest", "--platform", "linux/s390x", &image]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("linux/amd64, linux/arm64"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn purge_frees_the_blobs_of_a_tree_that_is_gone_and_keeps_those_still_used() {
    let registry = Registry::start();
    push_image(&registry, "smoke", Some("base"), "amd64", &[base_layer()]);
    push_image(
        &registry,
        "smoke",
        Some("full"),
        "amd64",
        &[base_layer(), top_layer()],
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let base = work.path().join("base");
    let full = work.path().join("full");
    for (tag, dir) in [("base", &base), ("full", &full)] {
        let o = pull(&[
            "--platform",
            "linux/amd64",
            "--cache",
            path(&cache),
            &format!("oci+http://{}/smoke:{tag}", registry.host()),
            path(dir),
        ]);
        assert_exit(&o, 0);
    }
    let blobs = || fs::read_dir(cache.join("blobs/sha256")).unwrap().count();
    // Two configs and two layers, the base layer shared.
    assert_eq!(blobs(), 4);
    let o = tako(&["image", "purge", "--cache", path(&cache)]);
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("freed 0 bytes"), "{}", stdout(&o));
    assert_eq!(blobs(), 4);

    fs::remove_dir_all(&full).unwrap();
    let o = tako(&["image", "purge", "--dry-run", "--cache", path(&cache)]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("would remove blob"), "{}", stdout(&o));
    assert_eq!(blobs(), 4);
    let o = tako(&["image", "purge", "--cache", path(&cache)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("released the blobs of {}", full.display())),
        "{out}"
    );
    assert_eq!(out.matches("removed blob").count(), 2, "{out}");
    assert_eq!(blobs(), 2);
    // What is left serves the tree that stays.
    let again = work.path().join("again");
    let o = pull(&[
        "--platform",
        "linux/amd64",
        "--cache",
        path(&cache),
        &format!("oci+http://{}/smoke:base", registry.host()),
        path(&again),
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("1 layer: 0 downloaded (0 bytes), 1 from the cache"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn zstd_and_uncompressed_layers_are_unpacked_as_gzip_ones_are() {
    let registry = Registry::start();
    let extra = tar(&[("opt", None), ("opt/plain", Some("not compressed\n"))]);
    push_packed(
        &registry,
        "packed",
        Some("1"),
        "amd64",
        &[
            (base_layer(), Packed::Zstd),
            (top_layer(), Packed::Gzip),
            (extra, Packed::Plain),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("tree");
    let o = pull(&[
        "--platform",
        "linux/amd64",
        "--no-cache",
        &format!("oci+http://{}/packed:1", registry.host()),
        path(&dir),
    ]);
    assert_exit(&o, 0);
    assert_eq!(
        fs::read_to_string(dir.join("etc/os-release")).unwrap(),
        "ID=smoke\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("opt/plain")).unwrap(),
        "not compressed\n"
    );
    assert!(!dir.join("etc/hostname").exists());
    // Without the cache, nothing of the blobs stays beside the tree.
    let beside: Vec<_> = fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
}
