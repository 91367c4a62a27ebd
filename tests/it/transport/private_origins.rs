//! Issue 10 §5 and §6: private origins (netrc, header files, a private CA, mutual TLS),
//! secrets that never follow a redirect to another host and are never printed, no redirect
//! from https:// to http://, and `--limit-rate`.
//!
//! TLS runs against a real nginx (tests/support/nginx.rs); the rest against the
//! fault-injecting loopback server, which records every header it saw.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use support::http_server::{Fault, Server};
use support::nginx::{self, Nginx};
use support::origin::World;
use support::tako::*;
use support::tls_server::TestCa;

/// `tako fetch` that finds no netrc but where a test puts one: `HOME` is an empty
/// directory of the world, and neither `NETRC` nor `CREDENTIALS_DIRECTORY` is set.
fn fetch_in(world: &World) -> Fetch {
    let home = world.path("home");
    fs::create_dir_all(&home).unwrap();
    Fetch::new()
        .env("HOME", &home)
        .env_remove("NETRC")
        .env_remove("CREDENTIALS_DIRECTORY")
}

fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

const LOGIN: &str = "alice";
const PASSWORD: &str = "netrc-s3cret-pw";
const BEARER: &str = "bearer-s3cret-token";
const PRIVATE_TOKEN: &str = "private-s3cret-token";

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Fails if any secret of these tests, in any form, shows in what tako printed.
#[track_caller]
fn assert_no_secret(case: &str, o: &Output) {
    let printed = all_output(o);
    for secret in [PASSWORD, BEARER, PRIVATE_TOKEN, &basic(LOGIN, PASSWORD)] {
        assert!(
            !printed.contains(secret),
            "{case}: tako printed the secret {secret:?}:\n{printed}"
        );
    }
}

/// A netrc file in the world with `LOGIN` and `PASSWORD` for `host`.
fn netrc_for(world: &World, name: &str, host: &str) -> PathBuf {
    let path = world.path(name);
    fs::write(
        &path,
        format!("# test netrc\nmachine {host}\n  login {LOGIN}\n  password {PASSWORD}\n"),
    )
    .unwrap();
    path
}

/// A header file in the world with a bearer token and a `PRIVATE-TOKEN`.
fn header_file(world: &World) -> PathBuf {
    let path = world.path("headers");
    fs::write(
        &path,
        format!("# tokens\nAuthorization: Bearer {BEARER}\nPRIVATE-TOKEN: {PRIVATE_TOKEN}\n"),
    )
    .unwrap();
    path
}

/// Faults that make a fetch fail at the manifest in different ways; every message they
/// cause must still be free of secrets.
fn failing_manifests() -> Vec<(&'static str, Fault)> {
    vec![
        ("401", Fault::Status(401)),
        ("403", Fault::Status(403)),
        ("404", Fault::Status(404)),
        ("500", Fault::Status(500)),
        (
            "bad signature",
            Fault::Body(b"Tako Manifest 1\n\n\ngarbage\n".to_vec()),
        ),
        (
            "too large",
            Fault::Endless {
                content_length: false,
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// netrc
// ---------------------------------------------------------------------------------------

#[test]
fn netrc_credentials_are_sent_to_the_origin_and_never_printed() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let netrc = netrc_for(&world, "netrc", "127.0.0.1");
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let expected = format!("Basic {}", basic(LOGIN, PASSWORD));
    let seen = server.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some(expected.as_str()),
            "{}",
            request.path
        );
    }
    assert_no_secret("success", &o);

    for (case, fault) in failing_manifests() {
        server.set_fault("/manifest", fault);
        let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("/manifest"), "{case}: {}", stderr(&o));
        assert_no_secret(case, &o);
    }
}

#[test]
fn netrc_is_found_in_the_credentials_directory_and_then_in_home() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let config = world.config("app.tako", &server.url(), "*", "");
    // systemd's LoadCredential=netrc:… puts the file here.
    let credentials = world.path("credentials");
    fs::create_dir(&credentials).unwrap();
    fs::write(
        credentials.join("netrc"),
        "machine 127.0.0.1 login systemd password from-credentials\n",
    )
    .unwrap();
    let home = world.path("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join(".netrc"),
        "machine 127.0.0.1 login home password from-home\n",
    )
    .unwrap();

    let o = fetch_in(&world)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .run(&[], &[&config]);
    assert_exit(&o, 0);
    let from_credentials = format!("Basic {}", basic("systemd", "from-credentials"));
    assert_eq!(
        server.recorded()[0].header("authorization"),
        Some(from_credentials.as_str())
    );

    fs::remove_dir_all(world.dest()).unwrap();
    fs::create_dir(world.dest()).unwrap();
    let before = server.recorded().len();
    let o = fetch_in(&world).run(&[], &[&config]);
    assert_exit(&o, 0);
    let from_home = format!("Basic {}", basic("home", "from-home"));
    assert_eq!(
        server.recorded()[before].header("authorization"),
        Some(from_home.as_str())
    );
}

#[test]
fn a_netrc_named_by_netrc_that_is_missing_fails_naming_it() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let config = world.config("app.tako", &server.url(), "*", "");
    let missing = world.path("no-such-netrc");

    let o = fetch_in(&world).env("NETRC", &missing).run(&[], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("netrc file"), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(
        server.recorded().is_empty(),
        "nothing is requested without it"
    );
}

#[test]
fn a_broken_netrc_is_reported_by_line_without_quoting_it() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let config = world.config("app.tako", &server.url(), "*", "");
    let netrc = world.path("netrc");
    // "passwd" is no netrc keyword: the secret after it is a stray word.
    fs::write(
        &netrc,
        format!("machine 127.0.0.1\nlogin {LOGIN}\npasswd {PASSWORD}\n"),
    )
    .unwrap();

    let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("netrc file {}, line 3", netrc.display())),
        "{err}"
    );
    assert_no_secret("broken netrc", &o);
}

#[test]
fn credentials_in_the_origin_url_win_over_netrc_and_other_hosts_get_nothing_from_it() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let netrc = netrc_for(&world, "netrc", "127.0.0.1");
    let in_url = server.url().replacen("://", "://url-user:url-pw@", 1);
    let config = world.config("app.tako", &in_url, "*", "");

    let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);

    assert_exit(&o, 0);
    let expected = format!("Basic {}", basic("url-user", "url-pw"));
    for request in server.recorded() {
        assert_eq!(request.header("authorization"), Some(expected.as_str()));
    }

    // A netrc that only knows another machine gives this origin nothing.
    let elsewhere = netrc_for(&world, "netrc-other", "images.example.com");
    let config = world.config("plain.tako", &server.url(), "*", "");
    fs::remove_dir_all(world.dest()).unwrap();
    fs::create_dir(world.dest()).unwrap();
    let before = server.recorded().len();
    let o = fetch_in(&world)
        .env("NETRC", &elsewhere)
        .run(&[], &[&config]);
    assert_exit(&o, 0);
    for request in &server.recorded()[before..] {
        assert_eq!(request.header("authorization"), None, "{}", request.path);
    }
}

// ---------------------------------------------------------------------------------------
// Header files
// ---------------------------------------------------------------------------------------

#[test]
fn header_file_headers_are_sent_and_never_printed() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let headers = header_file(&world);
    // netrc has a login too: the header file's Authorization replaces it.
    let netrc = netrc_for(&world, "netrc", "127.0.0.1");
    let config = world.config(
        "app.tako",
        &server.url(),
        "*",
        &format!("HeaderFile={}\n", headers.display()),
    );

    let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let bearer = format!("Bearer {BEARER}");
    let seen = server.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        let authorizations: Vec<&str> = request
            .headers
            .iter()
            .filter(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(authorizations, [bearer.as_str()], "{}", request.path);
        assert_eq!(request.header("private-token"), Some(PRIVATE_TOKEN));
    }
    assert_no_secret("success", &o);

    for (case, fault) in failing_manifests() {
        server.set_fault("/manifest", fault);
        let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);
        assert_exit(&o, 1);
        assert_no_secret(case, &o);
    }
}

#[test]
fn the_header_file_is_read_on_every_run() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let headers = world.path("headers");
    fs::write(&headers, "X-Token: first\n").unwrap();
    let config = world.config(
        "app.tako",
        &server.url(),
        "*",
        &format!("HeaderFile={}\n", headers.display()),
    );
    assert_exit(&fetch_in(&world).run(&[], &[&config]), 0);

    // A rotated token is used by the next run, without touching the config.
    fs::write(&headers, "X-Token: second\n").unwrap();
    let before = server.recorded().len();
    assert_exit(&fetch_in(&world).run(&[], &[&config]), 0);

    let seen = server.recorded();
    assert_eq!(seen[0].header("x-token"), Some("first"));
    assert!(seen.len() > before);
    for request in &seen[before..] {
        assert_eq!(request.header("x-token"), Some("second"));
    }
}

#[test]
fn an_unusable_header_file_fails_the_config_without_quoting_it() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let dir = world.path("a-directory");
    fs::create_dir(&dir).unwrap();
    let fifo = world.path("a-fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let write = |name: &str, text: &[u8]| {
        let path = world.path(name);
        fs::write(&path, text).unwrap();
        path
    };
    let huge = write(
        "huge",
        format!("X-Big: {}\n", "a".repeat(64 * 1024)).as_bytes(),
    );
    let no_colon = write("no-colon", format!("# ok\nBearer {BEARER}\n").as_bytes());
    let reserved = write("reserved", format!("Host: {PRIVATE_TOKEN}\n").as_bytes());
    let control = write("control", format!("X-A: {BEARER}\u{1b}[2J\n").as_bytes());
    let cases: Vec<(PathBuf, &str)> = vec![
        (world.path("missing"), "cannot read the header file"),
        (dir, "is not a regular file (it is a directory)"),
        (fifo, "is not a regular file (it is a FIFO)"),
        (huge, "is larger than 65536 bytes"),
        (no_colon, "line 2: expected 'Name: value'"),
        (reserved, "line 1: the host header cannot be set"),
        (
            control,
            "line 1: the value of the x-a header holds a control character",
        ),
    ];
    for (path, message) in cases {
        let config = world.config(
            "app.tako",
            &server.url(),
            "*",
            &format!("HeaderFile={}\n", path.display()),
        );
        let o = fetch_in(&world).run(&[], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(message), "{}: {err}", path.display());
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert_no_secret(message, &o);
    }
    assert!(
        server.recorded().is_empty(),
        "no request goes out without the headers: {:?}",
        server.requests()
    );
}

// ---------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------

#[test]
fn credentials_and_headers_never_follow_a_redirect_to_another_host() {
    let world = World::new();
    let digest = world.publish("1.0");
    let image = format!("/store/{digest}");
    // The same files again under /moved/, for the redirect that stays on this server.
    fs::create_dir_all(world.origin().join("moved/store")).unwrap();
    fs::copy(
        world.origin().join("store").join(&digest),
        world.origin().join("moved/store").join(&digest),
    )
    .unwrap();
    let server = Server::serve_dir(world.origin());
    let other_port = Server::serve_dir(world.origin());
    // Another port is another origin; so is another host name on the same port.
    server.set_fault(
        "/manifest",
        Fault::Redirect(other_port.url_for("/manifest")),
    );
    let localhost = format!(
        "http://localhost:{}/moved{image}",
        server.url().rsplit(':').next().unwrap()
    );
    server.set_fault(&image, Fault::Redirect(localhost));
    let netrc = netrc_for(&world, "netrc", "127.0.0.1");
    let headers = header_file(&world);
    let config = world.config(
        "app.tako",
        &server.url(),
        "*",
        &format!("HeaderFile={}\n", headers.display()),
    );

    let o = fetch_in(&world).env("NETRC", &netrc).run(&[], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let bearer = format!("Bearer {BEARER}");
    let seen = server.recorded();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/manifest", image.as_str(), &format!("/moved{image}")]
    );
    for request in &seen {
        let to_origin = request
            .header("host")
            .is_some_and(|h| h.starts_with("127.0.0.1:"));
        if to_origin {
            assert_eq!(request.header("authorization"), Some(bearer.as_str()));
            assert_eq!(request.header("private-token"), Some(PRIVATE_TOKEN));
        } else {
            assert!(request.header("host").unwrap().starts_with("localhost:"));
            assert_eq!(request.header("authorization"), None, "{}", request.path);
            assert_eq!(request.header("private-token"), None, "{}", request.path);
        }
    }
    assert_eq!(seen[2].header("authorization"), None);
    let foreign = other_port.recorded();
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(foreign[0].header("authorization"), None);
    assert_eq!(foreign[0].header("private-token"), None);
    assert_no_secret("redirects", &o);
}

/// An nginx over TLS with a certificate from `ca` for 127.0.0.1 and localhost, serving
/// `root`, with `extra` directives; the PEM files go to `dir`.
fn tls_nginx(
    dir: &Path,
    ca: &TestCa,
    root: &Path,
    client_ca: Option<PathBuf>,
    extra: Vec<String>,
) -> Nginx {
    static SERVERS: AtomicUsize = AtomicUsize::new(0);
    let n = SERVERS.fetch_add(1, Ordering::SeqCst);
    let leaf = ca.leaf(&["127.0.0.1", "localhost"], false);
    let cert = dir.join(format!("server-{n}.pem"));
    let key = dir.join(format!("server-{n}.key"));
    fs::write(&cert, leaf.cert_pem()).unwrap();
    fs::write(&key, leaf.key_pem()).unwrap();
    Nginx::start(
        root,
        nginx::Options {
            tls: Some(nginx::Tls {
                cert,
                key,
                client_ca,
            }),
            locations: extra,
            ..nginx::Options::default()
        },
    )
}

/// Writes `text` to `name` in the world and returns the path.
fn put(world: &World, name: &str, text: &str) -> PathBuf {
    let path = world.path(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let world = World::new();
    world.publish("1.0");
    let plain = Server::serve_dir(world.origin());
    let ca = TestCa::new("tako redirect CA");
    let ca_file = put(&world, "ca.pem", &ca.pem());
    let https = tls_nginx(
        &world.path(""),
        &ca,
        &world.origin(),
        None,
        vec![format!(
            "location = /manifest {{ return 302 {}; }}",
            plain.url_for("/manifest")
        )],
    );
    let config = world.config(
        "app.tako",
        &https.url(),
        "*",
        &format!("CACertificate={}\n", ca_file.display()),
    );

    let o = fetch_in(&world).run(&[], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "refusing the redirect from {}/manifest to {}/manifest: it leaves https:// for plain http://",
            https.url(),
            plain.url()
        )),
        "{err}"
    );
    assert!(plain.recorded().is_empty(), "{:?}", plain.requests());
    assert_eq!(world.latest(), None);
}

// ---------------------------------------------------------------------------------------
// A private CA and mutual TLS, against nginx
// ---------------------------------------------------------------------------------------

/// A world published behind an nginx that demands a client certificate from `client_ca`.
struct MutualTls {
    world: World,
    digest: String,
    ca: TestCa,
    client_ca: TestCa,
    nginx: Nginx,
}

impl MutualTls {
    fn new() -> MutualTls {
        let world = World::new();
        let digest = world.publish("1.0");
        let ca = TestCa::new("tako server CA");
        let client_ca = TestCa::new("tako client CA");
        let client_ca_file = put(&world, "client-ca.pem", &client_ca.pem());
        let nginx = tls_nginx(
            &world.path(""),
            &ca,
            &world.origin(),
            Some(client_ca_file),
            vec![],
        );
        MutualTls {
            world,
            digest,
            ca,
            client_ca,
            nginx,
        }
    }

    /// Fetches with the server's CA in `CACertificate=` and `extra` config lines.
    fn fetch(&self, extra: &str) -> Output {
        let ca_file = put(&self.world, "ca.pem", &self.ca.pem());
        let config = self.world.config(
            "app.tako",
            &self.nginx.url(),
            "*",
            &format!("CACertificate={}\n{extra}", ca_file.display()),
        );
        fetch_in(&self.world).run(&[], &[&config])
    }

    /// A client certificate and key from `ca`, as config lines.
    fn client_lines(&self, ca: &TestCa, name: &str) -> String {
        let leaf = ca.leaf(&["tako-client.example"], false);
        let cert = put(&self.world, &format!("{name}.pem"), &leaf.cert_pem());
        let key = put(&self.world, &format!("{name}.key"), &leaf.key_pem());
        format!(
            "ClientCertificate={}\nClientKey={}\n",
            cert.display(),
            key.display()
        )
    }
}

#[test]
fn mutual_tls_with_the_right_client_certificate_works() {
    let m = MutualTls::new();
    let lines = m.client_lines(&m.client_ca, "client");

    let o = m.fetch(&lines);

    assert_exit(&o, 0);
    m.world.assert_latest(&m.digest, &World::content("1.0"));
    let records = m.nginx.wait_records(2);
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.status, 200, "{record:?}");
        assert_eq!(
            record.ssl_client_verify.as_deref(),
            Some("SUCCESS"),
            "{record:?}"
        );
    }
}

#[test]
fn mutual_tls_without_a_client_certificate_fails_clearly() {
    let m = MutualTls::new();

    let o = m.fetch("");

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "HTTP 400 Bad Request (the server says: No required SSL certificate was sent) from {}/manifest",
            m.nginx.url()
        )),
        "{err}"
    );
    assert_eq!(m.world.latest(), None);
}

#[test]
fn mutual_tls_with_a_client_certificate_from_another_authority_fails_clearly() {
    let m = MutualTls::new();
    let stranger = TestCa::new("some other CA");
    let lines = m.client_lines(&stranger, "stranger");

    let o = m.fetch(&lines);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("HTTP 400 Bad Request (the server says: The SSL certificate error)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}/manifest", m.nginx.url())),
        "{err}"
    );
    assert_eq!(m.world.latest(), None);
}

#[test]
fn a_client_key_that_does_not_belong_to_the_certificate_is_refused_before_connecting() {
    let m = MutualTls::new();
    let leaf = m.client_ca.leaf(&["tako-client.example"], false);
    let other = m.client_ca.leaf(&["tako-client.example"], false);
    let cert = put(&m.world, "client.pem", &leaf.cert_pem());
    let key = put(&m.world, "other.key", &other.key_pem());

    let o = m.fetch(&format!(
        "ClientCertificate={}\nClientKey={}\n",
        cert.display(),
        key.display()
    ));

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "the client key {} (ClientKey=) does not belong to the client certificate {} (ClientCertificate=)",
            key.display(),
            cert.display()
        )),
        "{err}"
    );
    // Neither the key nor any part of it is printed.
    let key_body: String = other.key_pem().lines().nth(1).unwrap().to_owned();
    assert!(!all_output(&o).contains(&key_body), "{err}");
    assert!(m.nginx.records().is_empty());
}

#[test]
fn the_client_certificate_is_not_presented_after_a_redirect_to_another_host() {
    let m = MutualTls::new();
    let lines = m.client_lines(&m.client_ca, "client");
    // A second server that asks for a client certificate but does not insist, and logs
    // whether it got one; the origin sends the manifest request there, under another name.
    let client_ca_file = m.world.path("client-ca.pem");
    let other = tls_nginx(
        &m.world.path(""),
        &m.ca,
        &m.world.origin(),
        None,
        vec![
            format!("ssl_client_certificate {};", client_ca_file.display()),
            "ssl_verify_client optional;".to_owned(),
        ],
    );
    let origin = {
        let ca_file = put(&m.world, "ca.pem", &m.ca.pem());
        let redirecting = tls_nginx(
            &m.world.path(""),
            &m.ca,
            &m.world.origin(),
            Some(client_ca_file.clone()),
            vec![format!(
                "location = /manifest {{ return 302 {}/manifest; }}",
                other.url_localhost()
            )],
        );
        let config = m.world.config(
            "app.tako",
            &redirecting.url(),
            "*",
            &format!("CACertificate={}\n{lines}", ca_file.display()),
        );
        let o = fetch_in(&m.world).run(&[], &[&config]);
        assert_exit(&o, 0);
        redirecting.wait_records(2)
    };
    for record in &origin {
        assert_eq!(
            record.ssl_client_verify.as_deref(),
            Some("SUCCESS"),
            "{record:?}"
        );
    }
    let elsewhere = other.wait_records(1);
    assert_eq!(elsewhere.len(), 1, "{elsewhere:#?}");
    assert_eq!(elsewhere[0].uri, "/manifest");
    assert_eq!(elsewhere[0].ssl_client_verify.as_deref(), Some("NONE"));
}

#[test]
fn a_private_ca_in_ca_certificate_is_trusted_in_place_of_the_system_roots() {
    let world = World::new();
    let digest = world.publish("1.0");
    let ca = TestCa::new("tako private CA");
    let nginx = tls_nginx(&world.path(""), &ca, &world.origin(), None, vec![]);
    let ca_file = put(&world, "private-ca.pem", &ca.pem());
    // What the system trusts: some other authority only.
    let system = put(&world, "system.pem", &TestCa::new("system CA").pem());
    let config = world.config(
        "app.tako",
        &nginx.url(),
        "*",
        &format!("CACertificate={}\n", ca_file.display()),
    );

    let o = fetch_in(&world)
        .env("SSL_CERT_FILE", &system)
        .env_remove("SSL_CERT_DIR")
        .run(&[], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
}

#[test]
fn a_wrong_ca_certificate_fails_with_a_plain_words_tls_message() {
    let world = World::new();
    world.publish("1.0");
    let ca = TestCa::new("tako private CA");
    let nginx = tls_nginx(&world.path(""), &ca, &world.origin(), None, vec![]);
    // The system would trust the server; CACertificate= replaces the system's roots.
    let system = put(&world, "system.pem", &ca.pem());
    let wrong = put(&world, "wrong-ca.pem", &TestCa::new("wrong CA").pem());
    let config = world.config(
        "app.tako",
        &nginx.url(),
        "*",
        &format!("CACertificate={}\n", wrong.display()),
    );

    let o = fetch_in(&world)
        .env("SSL_CERT_FILE", &system)
        .env_remove("SSL_CERT_DIR")
        .run(&[], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "the server's certificate was issued by an unknown certificate authority (not one in the config's CACertificate= file {})",
            wrong.display()
        )),
        "{err}"
    );
    for debug in [
        "UnknownIssuer",
        "InvalidCertificate",
        "invalid peer certificate",
        "{",
    ] {
        assert!(!err.contains(debug), "Debug text {debug:?} in:\n{err}");
    }
    assert!(nginx.records().is_empty(), "no request got through");
}

#[test]
fn an_unusable_ca_certificate_file_is_named_with_what_is_wrong() {
    let world = World::new();
    world.publish("1.0");
    let ca = TestCa::new("tako private CA");
    let nginx = tls_nginx(&world.path(""), &ca, &world.origin(), None, vec![]);
    let cases = [
        ("empty.pem", "", "holds no certificate"),
        (
            "key-only.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "holds no certificate",
        ),
        (
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            "is not valid PEM",
        ),
        (
            "bad-der.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "holds a certificate that cannot be used as a trusted root",
        ),
    ];
    for (name, text, message) in cases {
        let path = put(&world, name, text);
        let config = world.config(
            "app.tako",
            &nginx.url(),
            "*",
            &format!("CACertificate={}\n", path.display()),
        );
        let o = fetch_in(&world).run(&[], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "the CA certificate file (CACertificate=) {} {message}",
                path.display()
            )),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// --limit-rate
// ---------------------------------------------------------------------------------------

#[test]
fn limit_rate_slows_the_download_as_nginx_measures_it() {
    let world = World::new();
    // Bytes that are not all alike, so a misplaced chunk would show.
    let content: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let digest = world.publish_bytes("1.0", &content);
    // A small send buffer: nginx finishes only when the client has read nearly everything.
    let nginx = Nginx::start(
        &world.origin(),
        nginx::Options {
            send_buffer: Some("16k".to_owned()),
            ..nginx::Options::default()
        },
    );
    let config = world.config("app.tako", &nginx.url(), "*", "");

    let o = fetch_in(&world).run(&["--limit-rate", "512K"], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &content);
    let records = nginx.wait_records(2);
    let image = records
        .iter()
        .find(|r| r.uri == format!("/store/{digest}"))
        .unwrap_or_else(|| panic!("no image request in {records:#?}"));
    assert_eq!(image.body_bytes_sent, content.len() as u64);
    // 4 MiB at 512 KiB/s takes 8 s to read; nginx is done once all but what the socket
    // buffers hold was read. Those held about 400 KiB in most runs and up to 900 KiB on a
    // loaded machine, so 3 s leaves room for 2.5 MiB of buffers. Without the limit the
    // transfer takes milliseconds.
    assert!(
        image.request_time >= 3.0,
        "nginx sent 4 MiB in {} s, faster than --limit-rate 512K allows",
        image.request_time
    );
}

#[test]
fn limit_rate_takes_curls_syntax_and_rejects_values_that_are_not_rates() {
    let world = World::new();
    let missing = world.path("missing.tako");
    for good in ["1", "500K", "500k", "10M", "1G"] {
        // Accepted: the run gets as far as the (missing) config.
        let o = fetch_in(&world).run(&["--limit-rate", good], &[&missing]);
        assert_exit(&o, 1);
        assert!(
            stderr(&o).contains("missing.tako"),
            "{good}: {}",
            stderr(&o)
        );
    }
    for bad in ["0", "1.5M", "10X", "fast"] {
        let o = tako(&["fetch", "--limit-rate", bad, "x.tako"]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("invalid value '{bad}' for '--limit-rate <RATE>'")),
            "{bad}: {err}"
        );
    }
}
