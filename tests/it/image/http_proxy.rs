//! `tako container-image-proxy` (issue 20) driven by a small HTTP/1.1 client over a
//! socketpair whose other end is tako's standard input and output: the manifest as OCI
//! with the registry's digest, every blob as the registry stores it, a damaged blob cut
//! short, and `POST /quit` ending the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};

use super::*;
use support::images::{Platform, sha256_digest};

/// tako serving `reference` (through the proxy) on one end of a socketpair.
struct Proxy {
    child: Child,
    client: BufReader<UnixStream>,
}

/// A response: status, header fields (names lower-cased), and the body bytes received
/// (fewer than Content-Length when the server cut the connection).
struct Response {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    length: usize,
}

impl Response {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Proxy {
    fn start(lab: &Lab, args: &[&str], reference: &str) -> Proxy {
        let (ours, theirs) = UnixStream::pair().expect("a socketpair");
        ours.set_read_timeout(Some(HANG_GUARD)).expect("a timeout");
        let theirs_too = theirs.try_clone().expect("a second handle");
        let child = tako_cmd()
            .arg("container-image-proxy")
            .args(["--retries", "0"])
            .args(args)
            .arg(lab.image(reference))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_too)))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tako starts");
        Proxy {
            child,
            client: BufReader::new(ours),
        }
    }

    fn request(&mut self, method: &str, path: &str) -> Response {
        let stream = self.client.get_mut();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: tako\r\n\r\n").expect("a request sent");
        let mut line = String::new();
        self.client.read_line(&mut line).expect("a status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line, not {line:?}"));
        let mut fields = Vec::new();
        loop {
            let mut line = String::new();
            self.client.read_line(&mut line).expect("a header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a field");
            fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = fields
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a Content-Length");
        let mut body = Vec::new();
        // Up to the length announced, or to the end of the connection if it comes first.
        (&mut self.client)
            .take(length as u64)
            .read_to_end(&mut body)
            .expect("the body");
        Response {
            status,
            fields,
            body,
            length,
        }
    }

    /// Waits for tako to end (within the hang guard) and gives its exit status.
    fn wait(mut self) -> std::process::ExitStatus {
        let child = std::sync::Mutex::new(&mut self.child);
        let ended = wait_until(HANG_GUARD, || {
            matches!(child.lock().expect("the child").try_wait(), Ok(Some(_)))
        });
        if !ended {
            let _ = self.child.kill();
            panic!("tako container-image-proxy did not end");
        }
        self.child.wait().expect("an exit status")
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[test]
fn a_docker_image_is_served_as_oci_with_its_original_digest_and_every_blob_as_stored() {
    let lab = Lab::new();
    let image = rich_image(Format::Docker, Compression::Gzip);
    let digest = lab.push(&image, "app:docker");
    let mut proxy = Proxy::start(&lab, &[], "app:docker");

    let manifest = proxy.request("GET", "/manifest");
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.field("manifest-digest"), Some(digest.as_str()));
    let oci = json(&manifest.body);
    assert_eq!(
        oci["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(oci["config"]["digest"], image.config_digest());
    let layers = oci["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), image.layers.len());
    for layer in layers {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }

    let config = proxy.request("GET", &format!("/blobs/{}", image.config_digest()));
    assert_eq!(config.status, 200);
    assert_eq!(config.body, image.config);
    for layer in &image.layers {
        let blob = proxy.request("GET", &format!("/blobs/{}", layer.digest()));
        assert_eq!(blob.status, 200);
        assert_eq!(blob.body, layer.blob, "layer {}", layer.digest());
        assert_eq!(sha256_digest(&blob.body), layer.digest());
    }

    let unknown = proxy.request("GET", &format!("/blobs/{}", sha256_digest(b"none")));
    assert_eq!(unknown.status, 404);
    assert_eq!(proxy.request("GET", "/other").status, 404);
    let wrong = proxy.request("GET", "/quit");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.field("allow"), Some("POST"));

    assert_eq!(proxy.request("POST", "/quit").status, 200);
    assert!(proxy.wait().success());
}

#[test]
fn a_multi_platform_image_is_served_as_the_hosts_manifest() {
    let lab = Lab::new();
    let foreign = Image::new(
        Format::Oci,
        Platform::foreign(),
        vec![plain_image("foreign").layers[0].clone()],
    );
    let host = plain_image("host");
    let index = Index::new(Format::Oci, vec![foreign, host.clone()]);
    lab.push_index(&index, "app:multi");
    let mut proxy = Proxy::start(&lab, &[], "app:multi");

    let manifest = proxy.request("GET", "/manifest");
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.body, host.manifest());
    assert_eq!(
        manifest.field("manifest-digest"),
        Some(sha256_digest(&host.manifest()).as_str())
    );
    let layer = &host.layers[0];
    assert_eq!(
        proxy
            .request("GET", &format!("/blobs/{}", layer.digest()))
            .body,
        layer.blob
    );
    assert_eq!(proxy.request("POST", "/quit").status, 200);
    assert!(proxy.wait().success());
}

#[test]
fn a_damaged_blob_is_cut_before_its_last_byte_and_the_proxy_fails() {
    let lab = Lab::new();
    let image = plain_image("damaged");
    lab.push(&image, "app:damaged");
    let layer = &image.layers[0];
    let mut damaged = layer.blob.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    lab.proxy
        .set_rule(&blob_path("app", &layer.digest()), Rule::body(damaged));
    let mut proxy = Proxy::start(&lab, &[], "app:damaged");

    let blob = proxy.request("GET", &format!("/blobs/{}", layer.digest()));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.length, layer.blob.len());
    assert!(
        blob.body.len() < layer.blob.len(),
        "the whole damaged blob was sent ({} bytes)",
        blob.body.len()
    );
    assert!(!proxy.wait().success());
}
