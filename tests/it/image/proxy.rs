//! `tako experimental-image-proxy` (issue 20) driven by a small client written here, as the
//! `containers-image-proxy` crate drives skopeo: a `SOCK_SEQPACKET` socketpair whose other
//! end is tako's standard input, JSON requests, replies with pipe read ends passed beside
//! them; against the real registry, through the proxy that can damage or stall a blob.

use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketFlags,
    SocketType, recvmsg, send, socketpair,
};
use serde_json::{Value, json};

use super::*;
use support::images::Platform;
use support::tako::{run_bounded, stderr};

/// One reply: its JSON and the file descriptors that came with it.
struct Reply {
    json: Value,
    fds: Vec<OwnedFd>,
}

impl Reply {
    fn ok(&self) -> bool {
        self.json["success"] == json!(true)
    }

    fn error(&self) -> String {
        self.json["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// tako serving on one end of a socketpair, killed after `HANG_GUARD` if it is still
/// running then (so a read from a pipe it never closes cannot hang the test).
struct ProxyClient {
    socket: OwnedFd,
    child: Child,
    done: Arc<AtomicBool>,
}

impl ProxyClient {
    fn start(args: &[&str]) -> ProxyClient {
        ProxyClient::start_on(args, false)
    }

    /// With `on_stdout`, the socket is tako's standard output, named by `--sockfd 1`.
    fn start_on(args: &[&str], on_stdout: bool) -> ProxyClient {
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("a socketpair");
        let mut cmd = tako_cmd();
        cmd.arg("experimental-image-proxy").args(args);
        if on_stdout {
            cmd.args(["--sockfd", "1"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(theirs));
        } else {
            cmd.stdin(Stdio::from(theirs)).stdout(Stdio::null());
        }
        let child = cmd.stderr(Stdio::piped()).spawn().expect("start tako");
        let done = Arc::new(AtomicBool::new(false));
        let (pid, watched) = (child.id(), Arc::clone(&done));
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < HANG_GUARD {
                if watched.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Only our own child, by its pid, which is not reaped before `done` is set.
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        });
        rustix::net::sockopt::set_socket_timeout(
            &ours,
            rustix::net::sockopt::Timeout::Recv,
            Some(HANG_GUARD),
        )
        .expect("a receive timeout");
        ProxyClient {
            socket: ours,
            child,
            done,
        }
    }

    /// Sends `method` with `args` and waits for the reply.
    fn call(&self, method: &str, args: Value) -> Reply {
        let request = serde_json::to_vec(&json!({"method": method, "args": args})).unwrap();
        send(&self.socket, &request, SendFlags::NOSIGNAL).expect("send a request");
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = vec![0u8; 32 * 1024];
        let got = recvmsg(
            &self.socket,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap_or_else(|e| panic!("no reply to {method}: {e}"));
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        let json = serde_json::from_slice(&buf[..got.bytes])
            .unwrap_or_else(|e| panic!("the reply to {method} is not JSON: {e}"));
        Reply { json, fds }
    }

    /// Calls `method`, which must succeed.
    #[track_caller]
    fn ok(&self, method: &str, args: Value) -> Reply {
        let reply = self.call(method, args);
        assert!(reply.ok(), "{method} failed: {}", reply.json);
        reply
    }

    /// Calls a piped `method`: the reply's value, the payload and `FinishPipe`'s reply.
    #[track_caller]
    fn piped(&self, method: &str, args: Value) -> (Value, Vec<u8>, Reply) {
        let mut reply = self.ok(method, args);
        let pipe = reply.json["pipeid"].as_u64().expect("a pipe id");
        assert_ne!(pipe, 0, "{method} names no pipe");
        assert_eq!(reply.fds.len(), 1, "{method} passes one pipe");
        let mut payload = Vec::new();
        std::fs::File::from(reply.fds.remove(0))
            .read_to_end(&mut payload)
            .expect("read the pipe");
        let finished = self.call("FinishPipe", json!([pipe]));
        (reply.json["value"].clone(), payload, finished)
    }

    /// Sends `Shutdown` and waits for tako to end; its exit status and standard error.
    fn shutdown(mut self) -> (std::process::ExitStatus, String) {
        self.ok("Shutdown", json!([]));
        let status = self.child.wait().expect("wait for tako");
        self.done.store(true, Ordering::SeqCst);
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        (status, err)
    }
}

fn docker_ref(lab: &Lab, reference: &str) -> String {
    format!("docker://{}/{reference}", lab.proxy.host())
}

fn start_initialized(args: &[&str]) -> ProxyClient {
    let mut all = vec!["--tls-verify=false"];
    all.extend_from_slice(args);
    let client = ProxyClient::start(&all);
    let version = client.ok("Initialize", json!([]));
    assert_eq!(version.json["value"], json!("0.2.8"));
    client
}

fn layered(format: Format, platform: Platform, name: &str) -> Image {
    Image::new(
        format,
        platform,
        vec![
            Layer::new(
                &[Entry::file("base", format!("{name} base\n"))],
                Compression::Gzip,
            ),
            Layer::new(
                &[Entry::file("app", format!("{name} app\n"))],
                match format {
                    Format::Oci => Compression::Zstd,
                    Format::Docker => Compression::None,
                },
            ),
        ],
    )
}

/// Opens `reference` and checks everything the proxy serves of it against `image`.
fn serves(client: &ProxyClient, reference: &str, image: &Image) {
    let id = client.ok("OpenImage", json!([reference])).json["value"].clone();
    assert!(id.as_u64().is_some_and(|id| id > 0), "image id {id}");

    let (digest, manifest, finished) = client.piped("GetManifest", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    assert_eq!(digest, json!(image.manifest_digest()));
    let manifest: Value = serde_json::from_slice(&manifest).expect("the manifest is JSON");
    assert_eq!(
        manifest["mediaType"],
        json!("application/vnd.oci.image.manifest.v1+json"),
        "converted to OCI"
    );
    assert_eq!(manifest["config"]["digest"], json!(image.config_digest()));
    let layers: Vec<Value> = manifest["layers"].as_array().expect("layers").clone();
    assert_eq!(layers.len(), image.layers.len());

    let (_, config, finished) = client.piped("GetFullConfig", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    assert_eq!(config, image.config);
    let (_, inner, finished) = client.piped("GetConfig", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    let full: Value = serde_json::from_slice(&image.config).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&inner).unwrap(),
        full["config"]
    );

    for (layer, described) in image.layers.iter().zip(&layers) {
        assert_eq!(described["digest"], json!(layer.digest()));
        let (size, bytes, finished) =
            client.piped("GetBlob", json!([id, layer.digest(), layer.blob.len()]));
        assert!(finished.ok(), "{}", finished.json);
        assert_eq!(size, json!(layer.blob.len()));
        assert!(bytes == layer.blob, "GetBlob served other bytes");

        let mut raw = client.ok("GetRawBlob", json!([id, layer.digest()]));
        assert_eq!(
            raw.fds.len(),
            2,
            "GetRawBlob passes a data and an error pipe"
        );
        let (mut data, mut errors) = (Vec::new(), String::new());
        std::fs::File::from(raw.fds.remove(0))
            .read_to_end(&mut data)
            .unwrap();
        std::fs::File::from(raw.fds.remove(0))
            .read_to_string(&mut errors)
            .unwrap();
        assert!(data == layer.blob, "GetRawBlob served other bytes");
        assert_eq!(errors, "", "no error for a good blob");
    }

    let (_, info, finished) = client.piped("GetLayerInfoPiped", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    let info: Vec<Value> = serde_json::from_slice(&info).unwrap();
    let inline = client.ok("GetLayerInfo", json!([id])).json["value"].clone();
    assert_eq!(Value::Array(info.clone()), inline);
    let digests: Vec<Value> = info.iter().map(|l| l["digest"].clone()).collect();
    let expected: Vec<Value> = image.layers.iter().map(|l| json!(l.digest())).collect();
    assert_eq!(digests, expected);
    client.ok("CloseImage", json!([id]));
    let closed = client.call("GetManifest", json!([id]));
    assert!(!closed.ok(), "a closed image is still served");
}

#[test]
fn a_client_gets_manifest_config_and_every_layer_of_single_and_multi_platform_images() {
    let lab = Lab::new();
    let single = layered(Format::Docker, Platform::host(), "single");
    lab.push(&single, "app:single");
    let index = Index::new(
        Format::Oci,
        vec![
            layered(Format::Oci, Platform::foreign(), "foreign"),
            layered(Format::Oci, Platform::host(), "host"),
        ],
    );
    lab.push_index(&index, "app:multi");

    let client = start_initialized(&[]);
    serves(&client, &docker_ref(&lab, "app:single"), &single);
    // The host's entry of the index; the value is that manifest's digest, as skopeo's.
    serves(&client, &docker_ref(&lab, "app:multi"), &index.images[1]);

    let missing = client.ok("OpenImageOptional", json!([docker_ref(&lab, "app:absent")]));
    assert_eq!(missing.json["value"], json!(0));
    let refused = client.call("OpenImage", json!([docker_ref(&lab, "app:absent")]));
    assert!(!refused.ok());
    assert_eq!(refused.json["error_code"], json!("other"));
    let other = client.call("OpenImage", json!(["containers-storage:app"]));
    assert!(!other.ok());
    assert!(
        other.error().contains("containers-storage"),
        "{}",
        other.error()
    );

    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

#[test]
fn a_damaged_blob_fails_finish_pipe_and_the_raw_blobs_error_pipe() {
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "damaged");
    lab.push(&image, "app:damaged");
    let layer = &image.layers[1];
    let mut damaged = layer.blob.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    lab.proxy
        .set_rule(&blob_path("app", &layer.digest()), Rule::body(damaged));

    let client = start_initialized(&[]);
    let id = client
        .ok("OpenImage", json!([docker_ref(&lab, "app:damaged")]))
        .json["value"]
        .clone();
    let (_, _, finished) = client.piped("GetBlob", json!([id, layer.digest(), layer.blob.len()]));
    assert!(!finished.ok(), "FinishPipe accepted a damaged blob");
    assert!(
        finished.error().contains(&layer.digest()),
        "{}",
        finished.error()
    );
    assert_eq!(finished.json["error_code"], json!("other"));

    let mut raw = client.ok("GetRawBlob", json!([id, layer.digest()]));
    let (mut data, mut errors) = (Vec::new(), String::new());
    std::fs::File::from(raw.fds.remove(0))
        .read_to_end(&mut data)
        .unwrap();
    std::fs::File::from(raw.fds.remove(0))
        .read_to_string(&mut errors)
        .unwrap();
    let error: Value = serde_json::from_str(&errors).expect("an error on the error pipe");
    assert_eq!(error["code"], json!("other"));
    assert!(error["message"].as_str().unwrap().contains(&layer.digest()));

    // The good layer is still served.
    let good = &image.layers[0];
    let (_, bytes, finished) = client.piped("GetBlob", json!([id, good.digest(), good.blob.len()]));
    assert!(finished.ok() && bytes == good.blob, "{}", finished.json);
    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

#[test]
fn a_stalled_blob_ends_in_the_idle_timeout_as_retryable() {
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "stalled");
    lab.push(&image, "app:stalled");
    let layer = &image.layers[0];
    lab.proxy
        .set_rule(&blob_path("app", &layer.digest()), Rule::stall_after(10));
    let client = start_initialized(&["--idle-timeout", "2", "--speed-limit", "0"]);
    let id = client
        .ok("OpenImage", json!([docker_ref(&lab, "app:stalled")]))
        .json["value"]
        .clone();
    let (_, bytes, finished) =
        client.piped("GetBlob", json!([id, layer.digest(), layer.blob.len()]));
    assert!(bytes.len() <= 10, "{} bytes", bytes.len());
    assert!(!finished.ok(), "FinishPipe accepted a stalled blob");
    assert_eq!(
        finished.json["error_code"],
        json!("retryable"),
        "{}",
        finished.json
    );
    let (status, _) = client.shutdown();
    assert!(status.success());
}

#[test]
fn a_decryption_key_is_refused_clearly() {
    let mut cmd = tako_cmd();
    cmd.args(["experimental-image-proxy", "--decryption-key", "key.pem"]);
    let o = Bounded::new(&mut cmd).run();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("--decryption-key") && err.contains("encrypted"),
        "{err}"
    );
}

#[test]
fn the_socket_may_be_another_fd_and_must_be_a_seqpacket_socket() {
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "sockfd");
    lab.push(&image, "app:sockfd");
    let client = ProxyClient::start_on(&["--tls-verify=false"], true);
    client.ok("Initialize", json!([]));
    let id = client
        .ok("OpenImage", json!([docker_ref(&lab, "app:sockfd")]))
        .json["value"]
        .clone();
    let (digest, _, finished) = client.piped("GetManifest", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    assert_eq!(digest, json!(image.manifest_digest()));
    let (status, err) = client.shutdown();
    assert!(status.success(), "{err}");

    // Standard input a file, not the socket.
    let mut cmd = tako_cmd();
    cmd.arg("experimental-image-proxy").stdin(Stdio::null());
    let o = Bounded::new(&mut cmd).run();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a SOCK_SEQPACKET socket"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn requests_before_initialize_and_malformed_ones_get_an_error_reply() {
    let client = ProxyClient::start(&[]);
    let early = client.call("OpenImage", json!(["docker://127.0.0.1:1/app:1"]));
    assert!(!early.ok());
    assert!(early.error().contains("Initialize"), "{}", early.error());
    client.ok("Initialize", json!([]));
    let unknown = client.call("GetSignatures", json!([1]));
    assert!(!unknown.ok());
    assert!(
        unknown.error().contains("unknown method"),
        "{}",
        unknown.error()
    );
    let unopened = client.call("GetManifest", json!([7]));
    assert!(!unopened.ok());
    assert!(
        unopened.error().contains("no image 7"),
        "{}",
        unopened.error()
    );
    let unfinished = client.call("FinishPipe", json!([9]));
    assert!(!unfinished.ok());
    let (status, err) = client.shutdown();
    assert!(status.success(), "{err}");
}

#[test]
fn authfile_names_the_credentials_and_no_creds_sends_none() {
    let lab = Lab::with_basic_auth("puller", "s3cret");
    let image = layered(Format::Oci, Platform::host(), "private");
    lab.push(&image, "app:private");
    let auth = lab.path("auth.json");
    fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"username":"puller","password":"s3cret"}}}}}}"#,
            lab.proxy.host()
        ),
    )
    .unwrap();
    let reference = docker_ref(&lab, "app:private");

    let client = start_initialized(&["--authfile", auth.to_str().unwrap()]);
    let id = client.ok("OpenImage", json!([reference])).json["value"].clone();
    let (digest, _, finished) = client.piped("GetManifest", json!([id]));
    assert!(finished.ok(), "{}", finished.json);
    assert_eq!(digest, json!(image.manifest_digest()));
    let (status, err) = client.shutdown();
    assert!(status.success(), "{err}");

    let client = start_initialized(&["--no-creds"]);
    let refused = client.call("OpenImage", json!([reference]));
    assert!(!refused.ok(), "an anonymous client opened a private image");
    assert_eq!(refused.json["error_code"], json!("other"));
    let (status, err) = client.shutdown();
    assert!(status.success(), "{err}");
}

/// Writes `blob` into the OCI layout `dir` under its digest; returns the digest.
fn layout_blob(dir: &Path, blob: &[u8]) -> String {
    let digest = support::images::sha256_digest(blob);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), blob).unwrap();
    digest
}

fn layout_image(dir: &Path, image: &Image) -> Value {
    for layer in &image.layers {
        layout_blob(dir, &layer.blob);
    }
    layout_blob(dir, &image.config);
    let manifest = image.manifest();
    json!({
        "mediaType": image.format.manifest_type(),
        "digest": layout_blob(dir, &manifest),
        "size": manifest.len(),
    })
}

/// An OCI image layout at `dir` whose `index.json` lists `entries` under their tags.
fn oci_layout(dir: &Path, entries: Vec<(&str, Value)>) {
    let manifests: Vec<Value> = entries
        .into_iter()
        .map(|(tag, mut descriptor)| {
            descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
            descriptor
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn an_oci_layout_serves_the_image_its_tag_names_and_refuses_damaged_or_symlinked_blobs() {
    let lab = Lab::new();
    let dir = lab.path("layout");
    std::fs::create_dir_all(&dir).unwrap();
    let single = layered(Format::Oci, Platform::host(), "single");
    let index = Index::new(
        Format::Oci,
        vec![
            layered(Format::Oci, Platform::foreign(), "foreign"),
            layered(Format::Oci, Platform::host(), "host"),
        ],
    );
    for image in &index.images {
        layout_image(&dir, image);
    }
    let index_bytes = index.bytes();
    let index_descriptor = json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": layout_blob(&dir, &index_bytes),
        "size": index_bytes.len(),
    });
    oci_layout(
        &dir,
        vec![
            ("single", layout_image(&dir, &single)),
            ("multi", index_descriptor),
        ],
    );
    let shown = dir.display().to_string();

    let client = start_initialized(&[]);
    serves(&client, &format!("oci:{shown}:single"), &single);
    // The host's entry of the index the tag names.
    serves(&client, &format!("oci:{shown}:multi"), &index.images[1]);
    let untagged = client.call("OpenImage", json!([format!("oci:{shown}")]));
    assert!(!untagged.ok());
    assert!(
        untagged.error().contains("2 images"),
        "{}",
        untagged.error()
    );
    let absent = client.call("OpenImage", json!([format!("oci:{shown}:absent")]));
    assert!(absent.error().contains("absent"), "{}", absent.error());

    // A layer whose bytes changed on disk fails FinishPipe.
    let blobs = dir.join("blobs/sha256");
    let layer = &single.layers[1];
    let path = blobs.join(layer.digest().trim_start_matches("sha256:"));
    let mut damaged = layer.blob.clone();
    damaged[0] ^= 0xff;
    std::fs::write(&path, &damaged).unwrap();
    let id = client
        .ok("OpenImage", json!([format!("oci:{shown}:single")]))
        .json["value"]
        .clone();
    let (_, _, finished) = client.piped("GetBlob", json!([id, layer.digest(), layer.blob.len()]));
    assert!(!finished.ok(), "a damaged blob was served as good");
    assert!(
        finished.error().contains(&layer.digest()),
        "{}",
        finished.error()
    );

    // The right bytes, but through a symlink planted in blobs/sha256: not followed.
    let outside = lab.path("outside");
    std::fs::write(&outside, &layer.blob).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let blob = client.call("GetBlob", json!([id, layer.digest(), layer.blob.len()]));
    assert!(!blob.ok(), "a symlinked blob was followed");
    assert!(blob.error().contains("symbolic link"), "{}", blob.error());

    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

/// A `Kind=container` host config fetching from `origin` into `LAB/dest`.
fn container_host(lab: &Lab, origin: &str, kind: &str) -> (PathBuf, PathBuf) {
    let dest = lab.path("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let config = lab.path(&format!("{kind}.conf"));
    std::fs::write(
        &config,
        format!(
            "Origin={origin}\nPublicKey={}\nDestination={}\nVersion=*\nKind={kind}\n",
            support::tako::TEST_PUBLIC,
            dest.display()
        ),
    )
    .unwrap();
    (config, dest)
}

#[test]
fn tako_config_serves_the_installed_signed_version_and_refuses_an_unsigned_one() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = support::http_server::Server::serve_dir(&out);
    let v1 = support::images::app_index(Format::Oci, "1");
    lab.push_index(&v1, "app:1.0");
    let stored =
        support::tako::store_container(out.to_str().unwrap(), &lab.image("app:1.0"), "1.0");
    support::tako::assert_exit(&stored, 0);
    let (config, dest) = container_host(&lab, &server.url(), "container");
    support::tako::assert_exit(&support::tako::fetch(&[], &[&config]), 0);
    drop(server);

    let client = start_initialized(&[]);
    let reference = format!("tako:{}", config.display());
    // The host's image of the signed index, served offline from the destination.
    serves(&client, &reference, &v1.images[0]);

    // A Kind=file config names no container image.
    let (files, _) = container_host(&lab, "http://127.0.0.1:9", "file");
    let file = client.call("OpenImage", json!([format!("tako:{}", files.display())]));
    assert!(!file.ok());
    assert!(file.error().contains("Kind=container"), "{}", file.error());

    // The local manifest no longer verifies with the config's key: refused.
    let manifest = dest.join("manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("1.0", "9.0", 1)).unwrap();
    let tampered = client.call("OpenImage", json!([reference.clone()]));
    assert!(!tampered.ok(), "a tampered manifest was trusted");
    assert_eq!(tampered.json["error_code"], json!("other"));
    assert!(
        tampered.error().contains("manifest"),
        "{}",
        tampered.error()
    );

    // Signed again but the installed tree's bytes replaced: refused.
    std::fs::write(&manifest, &text).unwrap();
    let tree = dest.join("latest/manifest.json");
    std::fs::write(&tree, b"{}").unwrap();
    let damaged = client.call("OpenImage", json!([reference]));
    assert!(!damaged.ok(), "a damaged tree was served");
    assert!(damaged.error().contains("store/"), "{}", damaged.error());

    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

/// A registry serving `lab`'s storage over HTTPS with `leaf`.
fn tls_registry(lab: &Lab, leaf: &support::tls_server::Leaf) -> support::registry::Registry {
    lab.registry.tls_beside(&leaf.cert_pem(), &leaf.key_pem())
}

#[test]
fn tls_verify_false_reaches_a_registry_whose_certificate_is_not_trusted_over_https() {
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "untrusted");
    lab.push(&image, "app:1");
    let https = tls_registry(&lab, &support::tls_server::self_signed(&["127.0.0.1"]));
    let reference = format!("docker://{}/app:1", https.host());

    // Checked, the self-signed certificate is refused, and nothing falls back to HTTP.
    let client = ProxyClient::start(&[]);
    client.ok("Initialize", json!([]));
    let refused = client.call("OpenImage", json!([reference]));
    assert!(!refused.ok());
    assert!(
        refused.error().contains("self-signed"),
        "{}",
        refused.error()
    );
    let (status, _) = client.shutdown();
    assert!(status.success());

    // Unchecked, it is HTTPS all the same (this registry speaks nothing else).
    let client = start_initialized(&[]);
    serves(&client, &reference, &image);
    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

#[test]
fn cert_dir_adds_the_registrys_ca_and_refuses_a_client_certificate_without_its_key() {
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "private ca");
    lab.push(&image, "app:1");
    let ca = support::tls_server::TestCa::new("tako test registry CA");
    let https = tls_registry(&lab, &ca.leaf(&["127.0.0.1"], false));
    let reference = format!("docker://{}/app:1", https.host());
    let certs = lab.path("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(certs.join("README"), "not a certificate").unwrap();

    let certs_arg = format!("--cert-dir={}", certs.display());
    let client = ProxyClient::start(&[&certs_arg]);
    client.ok("Initialize", json!([]));
    serves(&client, &reference, &image);
    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");

    // Without the directory the same registry is not trusted.
    let client = ProxyClient::start(&[]);
    client.ok("Initialize", json!([]));
    let refused = client.call("OpenImage", json!([reference]));
    assert!(!refused.ok());
    assert!(
        refused.error().contains("unknown certificate authority"),
        "{}",
        refused.error()
    );
    drop(client.shutdown());

    // A client certificate whose key is missing stops the proxy before it serves.
    std::fs::write(certs.join("client.cert"), ca.pem()).unwrap();
    let o = run_bounded(
        tako_cmd()
            .args(["experimental-image-proxy", &certs_arg])
            .stdin(Stdio::null()),
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("client.key") && stderr(&o).contains(&certs.display().to_string()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_oci_layout_made_by_skopeo_is_served_as_the_registry_serves_the_image() {
    support::registry::require_skopeo();
    let lab = Lab::new();
    let image = layered(Format::Oci, Platform::host(), "copied");
    lab.push(&image, "app:1");
    let dir = lab.path("skopeo-layout");
    let o = run_bounded(std::process::Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/app:1", lab.registry.host()),
        &format!("oci:{}:v1", dir.display()),
    ]));
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));

    let client = ProxyClient::start(&[]);
    client.ok("Initialize", json!([]));
    serves(&client, &format!("oci:{}:v1", dir.display()), &image);
    let missing = client.call("OpenImage", json!([format!("oci:{}:v2", dir.display())]));
    assert!(!missing.ok());
    let (status, err) = client.shutdown();
    assert!(status.success(), "tako ended with {status}: {err}");
}

/// policy.json (issue 21) in the image proxy: `--policy` requiring a sigstore signature
/// opens the signed `docker://` image and answers OpenImage for the unsigned one with the
/// refusal; an `oci:` layout is scoped by the `oci` transport, whose `reject` refuses it
/// and whose `insecureAcceptAnything` opens it. (The crate's client is in interop/.)
#[test]
fn open_image_applies_the_policy_to_registry_images_and_to_layouts() {
    use support::sigstore::{self, SigningKey};
    let lab = Lab::new();
    let signed = layered(Format::Oci, Platform::host(), "signed");
    let digest = lab.push(&signed, "app:signed");
    lab.push(
        &layered(Format::Oci, Platform::host(), "unsigned"),
        "app:unsigned",
    );
    let key = SigningKey::ed25519();
    let payload = sigstore::payload(&format!("{}/app:signed", lab.proxy.host()), &digest);
    let signature = key.sign(&payload);
    let repository = lab.repository("app");
    let (manifest, blobs) = sigstore::signature_manifest(&[(payload, signature)]);
    for blob in &blobs {
        repository.push_blob(blob);
    }
    repository.put_manifest(&sigstore::signature_tag(&digest), &manifest);
    let key_file = lab.path("cosign.pub");
    std::fs::write(&key_file, key.public_pem()).unwrap();
    let layouts = lab.path("layouts");
    let accepted = layouts.join("accepted");
    let rejected = layouts.join("rejected");
    for dir in [&accepted, &rejected] {
        std::fs::create_dir_all(dir).unwrap();
        oci_layout(dir, vec![("single", layout_image(dir, &signed))]);
    }
    let accepted = std::fs::canonicalize(&accepted).unwrap();
    let policy = lab.path("policy.json");
    std::fs::write(
        &policy,
        serde_json::to_vec(&json!({
            "default": [{ "type": "sigstoreSigned", "keyPath": key_file }],
            "transports": { "oci": {
                accepted.to_str().unwrap(): [{ "type": "insecureAcceptAnything" }],
                "": [{ "type": "reject" }],
            }},
        }))
        .unwrap(),
    )
    .unwrap();

    let client = start_initialized(&["--policy", policy.to_str().unwrap()]);
    serves(&client, &docker_ref(&lab, "app:signed"), &signed);
    let refused = client.call("OpenImage", json!([docker_ref(&lab, "app:unsigned")]));
    assert!(!refused.ok());
    assert!(
        refused.error().contains("no signature was found"),
        "{}",
        refused.error()
    );
    serves(
        &client,
        &format!("oci:{}:single", accepted.display()),
        &signed,
    );
    let refused = client.call(
        "OpenImage",
        json!([format!("oci:{}:single", rejected.display())]),
    );
    assert!(
        refused.error().contains("rejects") && refused.error().contains("scope oci \"\""),
        "{}",
        refused.error()
    );
    let (status, _) = client.shutdown();
    assert!(status.success());

    // --insecure-policy, as the containers-image-proxy crate passes it: no policy.
    let client = start_initialized(&["--insecure-policy"]);
    serves(
        &client,
        &docker_ref(&lab, "app:unsigned"),
        &layered(Format::Oci, Platform::host(), "unsigned"),
    );
    client.shutdown();
}
