//! A registry origin on the same transport as a web origin (issue 17 item 6, issue 23 item
//! H): its API requests (manifests, tokens, blobs) take the proxy of `http_proxy` (unless
//! `no_proxy` says otherwise), end at `--speed-limit`/`--speed-time` and `--max-time`, and
//! trust a config's `CACertificate=`.
//!
//! Every test runs the real binary against a real `docker-registry` or a loopback server
//! that answers as a registry would, all on 127.0.0.1.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use support::http_server::{Fault, Server};
use support::origin::World;
use support::registry::Registry;
use support::tako::*;
use support::tls_server::{TestCa, TlsServer};

/// Where tako asks a registry for the signed manifest's artifact.
const MANIFEST_PATH: &str = "/v2/app/manifests/tako-manifest";

/// `tako` with no registry credentials of the developer's.
fn tako_cmd_without_auth() -> std::process::Command {
    let mut cmd = tako_cmd();
    cmd.env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

/// Publishes `content` as `version` into the registry repository `origin`, directly.
fn store(world: &World, origin: &str, version: &str, content: &[u8]) -> String {
    let image = world.path(&format!("image-{version}"));
    fs::write(&image, content).unwrap();
    let o = run_bounded(tako_cmd_without_auth().args([
        "store",
        "-k",
        &test_secret(),
        "-o",
        origin,
        image.to_str().unwrap(),
        version,
    ]));
    assert_exit(&o, 0);
    sha256_hex(content)
}

/// One try per run: these tests are about what a single request does.
fn fetch(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tako_cmd_without_auth();
    for (name, value) in env {
        cmd.env(name, value);
    }
    run_bounded(cmd.args(["fetch", "--retries", "0"]).args(args).arg(config))
}

#[test]
fn a_registry_origin_is_fetched_through_the_http_proxy_manifest_and_image_alike() {
    let registry = Registry::start();
    let world = World::new();
    let origin = registry.origin("app");
    let digest = store(&world, &origin, "1.0", b"image through a proxy\n");
    // Like a proxy in its default setup: CONNECT only to port 443, so plain HTTP must come
    // in absolute form.
    let proxy = Server::strict_proxy();
    let config = world.config("app.tako", &origin, "*", "");

    let o = fetch(&config, &[], &[("http_proxy", &proxy.url())]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, b"image through a proxy\n");
    let base = format!("http://{}/v2/app/", registry.host());
    let seen: Vec<(String, String)> = proxy
        .recorded()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert!(
        seen.contains(&("GET".to_owned(), format!("{base}manifests/tako-manifest"))),
        "the manifest did not go through the proxy: {seen:?}"
    );
    assert!(
        seen.contains(&("GET".to_owned(), format!("{base}blobs/sha256:{digest}"))),
        "the image did not go through the proxy: {seen:?}"
    );
    // The signed manifest is a layer of the artifact: a blob read through the proxy too.
    let blobs = seen
        .iter()
        .filter(|(_, path)| path.starts_with(&format!("{base}blobs/")))
        .count();
    assert!(blobs >= 2, "{seen:?}");
    assert!(
        seen.iter().all(|(_, path)| path.starts_with(&base)),
        "{seen:?}"
    );
    for request in proxy.recorded() {
        assert_eq!(request.header("host"), Some(registry.host().as_str()));
    }
}

#[test]
fn no_proxy_sends_a_registry_origin_past_the_proxy() {
    let registry = Registry::start();
    let world = World::new();
    let origin = registry.origin("app");
    let digest = store(&world, &origin, "1.0", b"direct\n");
    let proxy = Server::strict_proxy();
    let config = world.config("app.tako", &origin, "*", "");

    let o = fetch(
        &config,
        &[],
        &[("http_proxy", &proxy.url()), ("no_proxy", "127.0.0.1")],
    );

    assert_exit(&o, 0);
    world.assert_latest(&digest, b"direct\n");
    assert_eq!(proxy.recorded().len(), 0, "{:?}", proxy.requests());
}

#[test]
fn an_unreachable_proxy_is_named_for_a_registry_origin_as_for_a_web_origin() {
    let registry = Registry::start();
    let world = World::new();
    let origin = registry.origin("app");
    store(&world, &origin, "1.0", b"never fetched\n");
    let gone = Server::proxy();
    let proxy_url = gone.url();
    drop(gone);
    let config = world.config("app.tako", &origin, "*", "");

    let o = fetch(&config, &[], &[("http_proxy", &proxy_url)]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("connection refused (through the proxy in $http_proxy)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("at registry {}", registry.host())),
        "{err}"
    );
    assert_eq!(world.latest(), None);
}

/// A loopback server that answers as a registry would for `app`'s `tako-manifest` tag,
/// with an artifact manifest of `len` bytes; its faults make it a slow registry.
fn fake_registry(world: &World, len: usize) -> Server {
    let root = world.path("registry");
    let manifests = root.join("v2/app/manifests");
    fs::create_dir_all(&manifests).unwrap();
    fs::write(manifests.join("tako-manifest"), vec![b' '; len]).unwrap();
    Server::serve_dir(root)
}

fn registry_origin(server: &Server) -> String {
    server.url().replace("http://", "oci+http://") + "/app"
}

#[test]
fn a_registry_that_trickles_is_cut_off_by_the_speed_limit() {
    let world = World::new();
    let server = fake_registry(&world, 4096);
    // One byte every 200 ms: 5 bytes/s, far below the limit of 1000; the whole manifest
    // would take 14 minutes.
    server.set_fault(
        MANIFEST_PATH,
        Fault::Slow {
            chunk: 1,
            delay: Duration::from_millis(200),
        },
    );
    let config = world.config("app.tako", &registry_origin(&server), "*", "");

    let start = Instant::now();
    let o = fetch(
        &config,
        &["--speed-limit", "1000", "--speed-time", "2"],
        &[],
    );
    let took = start.elapsed();

    assert_exit(&o, 1);
    let err = stderr(&o);
    let host = server.url().trim_start_matches("http://").to_owned();
    assert!(
        err.contains(&format!(
            "manifest oci+http://{host}/app:tako-manifest at registry {host}: too slow: "
        )),
        "{err}"
    );
    assert!(
        err.contains("below the limit of 1000 bytes/s (see --speed-limit and --speed-time)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(server.count(MANIFEST_PATH), 1);
    assert_eq!(world.latest(), None);
}

#[test]
fn a_silent_registry_fails_the_speed_check_after_the_speed_time() {
    let world = World::new();
    let server = fake_registry(&world, 100);
    server.set_fault(MANIFEST_PATH, Fault::Hang);
    let config = world.config("app.tako", &registry_origin(&server), "*", "");

    // --idle-timeout stays at its 60 s default; the 1 s speed window must end it sooner.
    let start = Instant::now();
    let o = fetch(&config, &["--speed-time", "1"], &[]);

    assert_exit(&o, 1);
    assert!(start.elapsed() < Duration::from_secs(15));
    let err = stderr(&o);
    assert!(err.contains("too slow: 0 bytes in the last 1 s"), "{err}");
}

#[test]
fn a_registry_that_trickles_is_cut_off_at_max_time() {
    let world = World::new();
    let server = fake_registry(&world, 4096);
    // Fast enough for no speed check to matter (it is off), far too slow to finish.
    server.set_fault(
        MANIFEST_PATH,
        Fault::Slow {
            chunk: 1,
            delay: Duration::from_millis(100),
        },
    );
    let config = world.config("app.tako", &registry_origin(&server), "*", "");

    let start = Instant::now();
    let o = fetch(&config, &["--speed-limit", "0", "--max-time", "2"], &[]);
    let took = start.elapsed();

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("gave up after the time limit of 2 s for this config (--max-time)"),
        "{err}"
    );
    assert!(err.contains("at registry 127.0.0.1:"), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    assert_eq!(world.latest(), None);
}

#[test]
fn a_registry_behind_a_private_ca_is_trusted_through_ca_certificate() {
    let world = World::new();
    let ca = TestCa::new("tako registry test CA");
    let leaf = ca.leaf(&["127.0.0.1"], false);
    // An empty registry: the request for the manifest gets through the handshake and is
    // answered 404.
    let empty = world.path("empty-registry");
    fs::create_dir(&empty).unwrap();
    let server = TlsServer::serve_dir(&empty, &leaf);
    let ca_file: PathBuf = world.path("ca.pem");
    fs::write(&ca_file, ca.pem()).unwrap();
    let origin = format!("oci://127.0.0.1:{}/app", server.port());

    let untrusted = world.config("untrusted.tako", &origin, "*", "");
    let o = fetch(&untrusted, &[], &[]);
    assert_exit(&o, 1);
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    let trusted = world.config(
        "trusted.tako",
        &origin,
        "*",
        &format!("CACertificate={}\n", ca_file.display()),
    );
    let o = fetch(&trusted, &[], &[]);

    assert_exit(&o, 1);
    assert_eq!(server.requests(), [MANIFEST_PATH]);
    let err = stderr(&o);
    assert!(!err.contains("certificate"), "{err}");
}

/// Issue 23, new user 9: an `oci://` origin that is a plain-HTTP registry failed its TLS
/// handshake three times more (TLS failures are never retried), with a hint for web
/// servers; the hint names `oci+http://`.
#[test]
fn an_oci_origin_that_answers_in_plain_http_is_tried_once_and_named_oci_http() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &format!("oci://127.0.0.1:{port}/app"), "*", "");

    let o = run_bounded(
        tako_cmd_without_auth()
            .args(["fetch", "--retries", "3", "--retry-delay-ms", "5"])
            .arg(&config),
    );

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("name it oci+http://127.0.0.1:{port}/app")),
        "{err}"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "a TLS failure was retried"
    );
}
