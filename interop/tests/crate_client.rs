//! Issue 20's interop test: the real `containers-image-proxy` crate (0.11) as the client of
//! `tako experimental-image-proxy` (named as its `skopeo_cmd`), against the real
//! `docker-registry`: single- and multi-platform images, manifest, config, every layer with
//! `get_blob` and with `get_blob_stream` (GetRawBlob), layer info, the bytes equal to the
//! registry's; a damaged blob fails both ways of reading it; and under a policy.json that
//! requires a sigstore signature, a signed image opens and an unsigned one is the client's
//! error.
#![allow(dead_code)]

mod support;

use std::process::Command;

use containers_image_proxy::oci_spec::image::Digest;
use containers_image_proxy::{ImageProxy, ImageProxyConfig, OpenedImage};
use tokio::io::AsyncReadExt;

use support::distribution::Repository;
use support::images::{Compression, Entry, Format, Image, Index, Layer, Platform};
use support::registry::Registry;
use support::registry_proxy::{RegistryProxy, Rule};
use support::sigstore::{self, SigningKey};

async fn tako_proxy() -> ImageProxy {
    proxy_of(Some(Command::new(env!("CARGO_BIN_EXE_tako-under-test")))).await
}

/// The crate's proxy running `command`, or skopeo itself for `None`.
async fn proxy_of(command: Option<Command>) -> ImageProxy {
    // The config is non-exhaustive: filled in field by field.
    let mut config = ImageProxyConfig::default();
    config.skopeo_cmd = command;
    config.insecure_skip_tls_verification = Some(true);
    config.insecure_policy = Some(true);
    ImageProxy::new_with_config(config)
        .await
        .expect("start the image proxy")
}

fn layered(format: Format, platform: Platform, name: &str) -> Image {
    let second = match format {
        Format::Oci => Compression::Zstd,
        Format::Docker => Compression::None,
    };
    Image::new(
        format,
        platform,
        vec![
            Layer::new(
                &[Entry::file("base", format!("{name} base\n"))],
                Compression::Gzip,
            ),
            Layer::new(&[Entry::file("app", format!("{name} app\n"))], second),
        ],
    )
}

/// `get_blob` with its driver, and `get_blob_stream` with its own: the bytes, or the first
/// error of either way.
async fn both_ways(
    proxy: &ImageProxy,
    image: &OpenedImage,
    digest: &Digest,
    size: u64,
) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
    let blob = async {
        let (mut reader, driver) = proxy
            .get_blob(image, digest, size)
            .await
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        let (read, done) = tokio::join!(reader.read_to_end(&mut bytes), driver);
        read.map_err(|e| e.to_string())?;
        done.map_err(|e| e.to_string())?;
        Ok::<_, String>(bytes)
    }
    .await;
    let stream = async {
        let stream = proxy
            .get_blob_stream(image, digest, size)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, driver) = stream.into_parts();
        let mut bytes = Vec::new();
        let (read, done) = tokio::join!(reader.read_to_end(&mut bytes), driver);
        read.map_err(|e| e.to_string())?;
        done.map_err(|e| e.to_string())?;
        Ok::<_, String>(bytes)
    }
    .await;
    (blob, stream)
}

#[tokio::test(flavor = "current_thread")]
async fn the_crate_reads_single_and_multi_platform_images_from_tako() {
    let registry = Registry::start();
    let repository = Repository::of(&registry.origin("app"));
    let single = layered(Format::Docker, Platform::host(), "single");
    single.push(&repository, "single");
    let index = Index::new(
        Format::Oci,
        vec![
            layered(Format::Oci, Platform::foreign(), "foreign"),
            layered(Format::Oci, Platform::host(), "host"),
        ],
    );
    index.push(&repository, "multi");

    let proxy = tako_proxy().await;
    assert!(proxy.supports_get_raw_blob(), "tako answers protocol 0.2.8");
    for (tag, image) in [("single", &single), ("multi", &index.images[1])] {
        let reference = format!("docker://{}/app:{tag}", registry.host());
        let opened = proxy.open_image(&reference).await.expect("open the image");
        let (digest, manifest) = proxy.fetch_manifest(&opened).await.expect("the manifest");
        assert_eq!(digest, image.manifest_digest(), "{tag}");
        assert_eq!(
            manifest.config().digest().to_string(),
            image.config_digest()
        );
        let config = proxy.fetch_config_raw(&opened).await.expect("the config");
        assert!(config == image.config, "{tag}: another config");
        assert_eq!(manifest.layers().len(), image.layers.len());
        for (layer, descriptor) in image.layers.iter().zip(manifest.layers()) {
            assert_eq!(descriptor.digest().to_string(), layer.digest());
            let (blob, stream) =
                both_ways(&proxy, &opened, descriptor.digest(), descriptor.size()).await;
            assert!(
                blob.expect("get_blob") == layer.blob,
                "{tag}: get_blob differs"
            );
            assert!(
                stream.expect("get_blob_stream") == layer.blob,
                "{tag}: get_blob_stream differs"
            );
        }
        let info = proxy
            .get_layer_info(&opened)
            .await
            .expect("the layer info")
            .expect("tako serves the layer info");
        let digests: Vec<String> = info.iter().map(|l| l.digest.to_string()).collect();
        let expected: Vec<String> = image.layers.iter().map(Layer::digest).collect();
        assert_eq!(digests, expected);
        proxy.close_image(&opened).await.expect("close the image");
    }
    let absent = format!("docker://{}/app:absent", registry.host());
    assert!(
        proxy
            .open_image_optional(&absent)
            .await
            .expect("ask")
            .is_none()
    );
    proxy.finalize().await.expect("tako shuts down");
}

#[tokio::test(flavor = "current_thread")]
async fn a_damaged_blob_fails_get_blob_and_get_blob_stream() {
    let registry = Registry::start();
    let proxy_server = RegistryProxy::start(&registry.host());
    let repository = Repository::of(&registry.origin("app"));
    let image = layered(Format::Oci, Platform::host(), "damaged");
    image.push(&repository, "damaged");
    let layer = &image.layers[1];
    let mut damaged = layer.blob.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    proxy_server.set_rule(
        &format!("/v2/app/blobs/{}", layer.digest()),
        Rule::body(damaged),
    );

    let proxy = tako_proxy().await;
    let reference = format!("docker://{}/app:damaged", proxy_server.host());
    let opened = proxy.open_image(&reference).await.expect("open the image");
    let digest: Digest = layer.digest().parse().expect("a digest");
    let (blob, stream) = both_ways(&proxy, &opened, &digest, layer.blob.len() as u64).await;
    let blob = blob.expect_err("get_blob accepted a damaged blob");
    assert!(blob.contains(&layer.digest()), "{blob}");
    let stream = stream.expect_err("get_blob_stream accepted a damaged blob");
    assert!(!stream.is_empty());
    proxy.finalize().await.expect("tako shuts down");
}

/// What a client learns of an image: the manifest's digest, its layers' digests and each
/// layer's bytes (read with `get_blob`, which every protocol version has).
async fn seen(proxy: &ImageProxy, reference: &str) -> (String, Vec<String>, Vec<Vec<u8>>) {
    let opened = proxy.open_image(reference).await.expect("open the image");
    let (digest, manifest) = proxy.fetch_manifest(&opened).await.expect("the manifest");
    let mut layers = Vec::new();
    let mut blobs = Vec::new();
    for descriptor in manifest.layers() {
        layers.push(descriptor.digest().to_string());
        let (mut reader, driver) = proxy
            .get_blob(&opened, descriptor.digest(), descriptor.size())
            .await
            .expect("get_blob");
        let mut bytes = Vec::new();
        let (read, done) = tokio::join!(reader.read_to_end(&mut bytes), driver);
        read.expect("read the blob");
        done.expect("the blob is good");
        blobs.push(bytes);
    }
    proxy.close_image(&opened).await.expect("close the image");
    (digest, layers, blobs)
}

/// Debian's skopeo (1.9, protocol 0.2.4) as the reference: the same manifest digests,
/// layers and bytes as tako, for a Docker image and for the host's entry of an OCI index.
#[tokio::test(flavor = "current_thread")]
async fn tako_serves_what_skopeo_serves() {
    support::registry::require_skopeo();
    let registry = Registry::start();
    let repository = Repository::of(&registry.origin("app"));
    layered(Format::Docker, Platform::host(), "single").push(&repository, "single");
    Index::new(
        Format::Oci,
        vec![
            layered(Format::Oci, Platform::foreign(), "foreign"),
            layered(Format::Oci, Platform::host(), "host"),
        ],
    )
    .push(&repository, "multi");

    let tako = tako_proxy().await;
    let skopeo = proxy_of(None).await;
    for tag in ["single", "multi"] {
        let reference = format!("docker://{}/app:{tag}", registry.host());
        let ours = seen(&tako, &reference).await;
        let theirs = seen(&skopeo, &reference).await;
        assert_eq!(ours.0, theirs.0, "{tag}: the manifest digests differ");
        assert_eq!(ours.1, theirs.1, "{tag}: the layers differ");
        assert!(ours.2 == theirs.2, "{tag}: the layers' bytes differ");
    }
    tako.finalize().await.expect("tako shuts down");
    skopeo.finalize().await.expect("skopeo shuts down");
}

/// Under a host policy.json (`$XDG_CONFIG_HOME/containers/policy.json`) requiring a sigstore
/// signature by a key, and without `--insecure-policy`: the crate's client opens the
/// signed image and reads it, and opening the unsigned one is an error naming the refusal.
#[tokio::test(flavor = "current_thread")]
async fn a_policy_requiring_a_signature_opens_the_signed_image_and_refuses_the_unsigned() {
    let registry = Registry::start();
    let repository = Repository::of(&registry.origin("app"));
    let signed = layered(Format::Oci, Platform::host(), "signed");
    let digest = signed.push(&repository, "signed");
    layered(Format::Oci, Platform::host(), "unsigned").push(&repository, "unsigned");
    let key = SigningKey::p256();
    let payload = sigstore::payload(&format!("{}/app:signed", registry.host()), &digest);
    let signature = key.sign(&payload);
    let (manifest, blobs) = sigstore::signature_manifest(&[(payload, signature)]);
    for blob in &blobs {
        repository.push_blob(blob);
    }
    repository.put_manifest(&sigstore::signature_tag(&digest), &manifest);

    let home = tempfile::tempdir().expect("a config home");
    let containers = home.path().join("containers");
    std::fs::create_dir_all(&containers).unwrap();
    let key_file = home.path().join("cosign.pub");
    std::fs::write(&key_file, key.public_pem()).unwrap();
    let policy = serde_json::json!({
        "default": [{ "type": "sigstoreSigned", "keyPath": key_file }],
    });
    std::fs::write(
        containers.join("policy.json"),
        serde_json::to_vec(&policy).unwrap(),
    )
    .unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_tako-under-test"));
    command.env("XDG_CONFIG_HOME", home.path());
    let mut config = ImageProxyConfig::default();
    config.skopeo_cmd = Some(command);
    config.insecure_skip_tls_verification = Some(true);
    let proxy = ImageProxy::new_with_config(config)
        .await
        .expect("start the image proxy");

    let reference = format!("docker://{}/app:signed", registry.host());
    let opened = proxy
        .open_image(&reference)
        .await
        .expect("open the signed image");
    let (served, _) = proxy.fetch_manifest(&opened).await.expect("the manifest");
    assert_eq!(served, digest);
    proxy.close_image(&opened).await.expect("close the image");

    let unsigned = format!("docker://{}/app:unsigned", registry.host());
    let error = proxy
        .open_image(&unsigned)
        .await
        .expect_err("an unsigned image opened")
        .to_string();
    assert!(
        error.contains("no signature was found") && error.contains("policy.json"),
        "{error}"
    );
    proxy.finalize().await.expect("tako shuts down");
}
