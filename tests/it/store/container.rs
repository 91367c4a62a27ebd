//! `tako store --container`: a container image from a registry published to a server
//! directory and to another registry repository, checked by the bytes left there, by what
//! a host fetching the version as a file gets, and by what travelled (the recording proxy
//! of `support::registry_proxy` between tako and the source registry).

use std::fs;
use std::path::Path;

use crate::image::{Lab, blob_path, plain_image};
use crate::support;
use support::distribution::Repository;
use support::images::{
    Format, Image, Index, app_base_layer as base_layer, app_index, app_layer, sha256_digest,
};
use support::registry_proxy::Rule;
use support::tako::*;

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// Every digest the index pins below itself: manifests, configs and layers, once each.
fn pinned_by(index: &Index) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    for image in &index.images {
        let mut blobs = vec![image.manifest(), image.config.clone()];
        blobs.extend(image.layers.iter().map(|l| l.blob.clone()));
        for blob in blobs {
            let digest = sha256_digest(&blob);
            if !all.iter().any(|(d, _)| *d == digest) {
                all.push((digest, blob));
            }
        }
    }
    all
}

/// The entries of the signed manifest in `dir`, verified with the test key.
fn signed_entries(dir: &Path) -> Vec<String> {
    verified_entries(&fs::read(dir.join("manifest")).unwrap(), TEST_PUBLIC).unwrap()
}

/// Fetches the newest version from `origin` as today's hosts do (a file), into `dest`;
/// returns what `latest` holds.
fn fetch_as_file(lab: &Lab, origin: &str, dest: &Path) -> Vec<u8> {
    fs::create_dir_all(dest).unwrap();
    let config = lab.path("host.conf");
    fs::write(
        &config,
        format!(
            "Origin={origin}\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion=*\n",
            dest.display()
        ),
    )
    .unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    fs::read(dest.join("latest")).unwrap()
}

#[test]
fn an_index_published_to_a_directory_leaves_every_blob_and_a_host_installs_its_json_as_a_file() {
    let lab = Lab::new();
    let index = app_index(Format::Oci, "host");
    let digest = lab.push_index(&index, "app:1");
    let out = lab.out_dir();

    let o = store_container(out.to_str().unwrap(), &lab.image("app:1"), "1.0");
    assert_exit(&o, 0);
    let printed = stdout(&o);
    assert!(
        printed.contains(&format!("1.0 -> {}", hex(&digest))),
        "{printed}"
    );
    assert!(
        printed.contains(&digest),
        "the tag's digest is printed: {printed}"
    );
    // Two manifests, two configs, the shared base layer once and two app layers.
    assert!(
        printed.contains("2 manifest(s) below it, 5 blob(s): 5 copied"),
        "{printed}"
    );

    let bytes = index.bytes();
    assert_eq!(
        fs::read(out.join("store").join(hex(&digest))).unwrap(),
        bytes
    );
    let blobs = out.join("blobs/sha256");
    for (pinned, content) in pinned_by(&index) {
        let file = blobs.join(hex(&pinned));
        assert_eq!(fs::read(&file).unwrap(), content, "{pinned}");
        assert_eq!(mode(&file), 0o444, "{pinned}");
    }
    assert_eq!(fs::read(blobs.join(hex(&digest))).unwrap(), bytes);
    let names: Vec<String> = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        pinned_by(&index).len() + 1,
        "nothing else: {names:?}"
    );

    assert_eq!(
        signed_entries(&out),
        [format!("1.0 {} {}", bytes.len(), hex(&digest))]
    );
    // A host of today takes the version as a file whose bytes are the index, verified.
    let file_url = format!("file://{}", out.display());
    assert_eq!(fetch_as_file(&lab, &file_url, &lab.path("dest")), bytes);
}

#[test]
fn a_single_docker_image_by_digest_is_published_with_its_config_and_layers() {
    let lab = Lab::new();
    let image = plain_image("single");
    let image = Image::new(Format::Docker, image.platform, image.layers);
    let digest = lab.push(&image, "single:latest");
    let out = lab.out_dir();

    let pinned = lab.image(&format!("single@{digest}"));
    let o = store_container(out.to_str().unwrap(), &pinned, "2");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("0 manifest(s) below it, 2 blob(s): 2 copied"),
        "{}",
        stdout(&o)
    );
    let manifest = image.manifest();
    assert_eq!(
        fs::read(out.join("store").join(hex(&digest))).unwrap(),
        manifest
    );
    for (content, what) in [(&image.config, "config"), (&image.layers[0].blob, "layer")] {
        let file = out.join("blobs/sha256").join(hex(&sha256_digest(content)));
        assert_eq!(&fs::read(file).unwrap(), content, "{what}");
    }
    assert_eq!(
        signed_entries(&out),
        [format!("2 {} {}", manifest.len(), hex(&digest))]
    );
}

/// `GET /v2/<repository>/manifests/<reference>` with every manifest type accepted: the
/// bytes and the digest the registry names them by.
fn registry_manifest(lab: &Lab, repository: &str, reference: &str) -> (u16, Vec<u8>) {
    let url = format!(
        "http://{}/v2/{repository}/manifests/{reference}",
        lab.registry.host()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .build()
        .into();
    let accept = [
        Format::Oci.manifest_type(),
        Format::Oci.index_type(),
        Format::Docker.manifest_type(),
        Format::Docker.index_type(),
    ]
    .join(", ");
    let mut response = agent.get(&url).header("Accept", accept).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

#[test]
fn an_index_published_to_another_repository_is_there_whole_and_tagged_with_the_version() {
    let lab = Lab::new();
    let index = app_index(Format::Docker, "host");
    let digest = lab.push_index(&index, "source:v1");
    let target = lab.registry.origin("published");

    // Through the proxy the source is another registry to tako: every blob is copied.
    let o = store_container(&target, &lab.image("source:v1"), "1.0.0");
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("5 copied"), "{}", stdout(&o));
    let published = Repository::of(&target);
    for (pinned, content) in pinned_by(&index) {
        if index.images.iter().any(|i| i.manifest_digest() == pinned) {
            let (status, bytes) = registry_manifest(&lab, "published", &pinned);
            assert_eq!((status, bytes), (200, content), "{pinned}");
        } else {
            assert_eq!(published.blob(&pinned), content, "{pinned}");
        }
    }
    let (status, tagged) = registry_manifest(&lab, "published", "1.0.0");
    assert_eq!(status, 200);
    assert_eq!(
        sha256_digest(&tagged),
        digest,
        "the version's tag names the index"
    );
    // A host of today reads the version as the blob of the same bytes.
    assert_eq!(published.blob(&digest), index.bytes());
    let entries = verified_entries(&published.signed_manifest(), TEST_PUBLIC).unwrap();
    assert_eq!(
        entries,
        [format!("1.0.0 {} {}", index.bytes().len(), hex(&digest))]
    );
    assert_eq!(
        fetch_as_file(&lab, &target, &lab.path("dest")),
        index.bytes()
    );

    // From the same registry, the blobs are mounted: none travels.
    let direct = format!("{}:v1", lab.registry.origin("source"));
    let o = store_container(&lab.registry.origin("mirror"), &direct, "1.0.0");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("0 copied (0 bytes), 5 mounted"),
        "{}",
        stdout(&o)
    );
    let mirror = Repository::of(&lab.registry.origin("mirror"));
    for (pinned, content) in pinned_by(&index) {
        if !index.images.iter().any(|i| i.manifest_digest() == pinned) {
            assert_eq!(mirror.blob(&pinned), content, "{pinned}");
        }
    }
}

#[test]
fn a_version_that_shares_a_base_layer_copies_only_its_new_blobs() {
    let lab = Lab::new();
    let first = Image::host(Format::Oci, vec![base_layer(), app_layer("1")]);
    let second = Image::host(Format::Oci, vec![base_layer(), app_layer("2")]);
    lab.push(&first, "app:1");
    lab.push(&second, "app:2");
    let out = lab.out_dir();
    let registry_target = lab.registry.origin("published");

    for target in [out.to_str().unwrap(), registry_target.as_str()] {
        lab.proxy.clear_requests();
        assert_exit(&store_container(target, &lab.image("app:1"), "1"), 0);
        lab.proxy.clear_requests();
        let o = store_container(target, &lab.image("app:2"), "2");
        assert_exit(&o, 0);
        assert!(
            stdout(&o).contains("2 copied") && stdout(&o).contains("1 already there"),
            "{target}: {}",
            stdout(&o)
        );
        let mut fetched = lab.proxy.blobs_fetched();
        fetched.sort();
        let mut new = vec![second.config_digest(), second.layers[1].digest()];
        new.sort();
        assert_eq!(
            fetched, new,
            "{target}: only the new config and layer travel"
        );
    }
    assert_eq!(signed_entries(&out).len(), 2);
}

#[test]
fn a_source_registry_serving_a_wrong_layer_fails_the_store_with_nothing_signed() {
    let lab = Lab::new();
    let image = Image::host(Format::Oci, vec![base_layer(), app_layer("lie")]);
    lab.push(&image, "app:1");
    let layer = &image.layers[1];
    let mut lie = layer.blob.clone();
    let last = lie.len() - 1;
    lie[last] ^= 0xff;
    lab.proxy
        .set_rule(&blob_path("app", &layer.digest()), Rule::body(lie));
    let out = lab.out_dir();
    let registry_target = lab.registry.origin("published");

    for target in [out.to_str().unwrap(), registry_target.as_str()] {
        let o = store_container(target, &lab.image("app:1"), "1");
        assert_exit(&o, 1);
        let said = stderr(&o);
        assert!(said.contains(&layer.digest()), "{target}: {said}");
        assert!(said.contains("nothing was signed"), "{target}: {said}");
    }
    assert!(
        !out.join("manifest").exists(),
        "nothing signed in the directory"
    );
    assert!(!out.join("store").exists(), "no image under store/");
    assert!(
        !out.join("blobs/sha256").join(hex(&layer.digest())).exists(),
        "the wrong bytes are not kept"
    );
    let leftovers: Vec<_> = fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let published = Repository::of(&registry_target);
    assert!(
        published.manifest("tako-manifest").is_none(),
        "nothing signed in the registry"
    );
    let (status, _) = registry_manifest(&lab, "published", "1");
    assert_eq!(status, 404, "no version tag");
}
