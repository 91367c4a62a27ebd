//! Issue 8, the network side: credentials in origin URLs, bounded transfer time, checked
//! `Origin=` URLs, escaped network text, TLS and compression messages, proxies.
//!
//! Every test runs the real binary against servers it starts on 127.0.0.1.

use crate::support;

use std::fs;
use std::process::Output;
use std::thread;
use std::time::Duration;

use base64::Engine;
use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;
use support::tls_server::{self, TestCa, TlsServer};

/// One try per run: these tests are about what a single request does, not the retries
/// (tests/retries.rs).
fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

// ---------------------------------------------------------------------------------------
// Credentials in the origin URL
// ---------------------------------------------------------------------------------------

const USER: &str = "user";
/// The password as written in the URL; it decodes to `p@ss`.
const PASSWORD_IN_URL: &str = "p%40ss";
const PASSWORD: &str = "p@ss";

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// `http://user:p%40ss@127.0.0.1:PORT` for `server`.
fn with_credentials(url: &str) -> String {
    url.replacen("://", &format!("://{USER}:{PASSWORD_IN_URL}@"), 1)
}

/// Fails if any form of the password shows in what tako printed.
#[track_caller]
fn assert_no_secret(case: &str, o: &Output) {
    let printed = all_output(o);
    for secret in [PASSWORD, PASSWORD_IN_URL, "p%40", &basic(USER, PASSWORD)] {
        assert!(
            !printed.contains(secret),
            "{case}: tako printed the secret {secret:?}:\n{printed}"
        );
    }
}

#[test]
fn credentials_in_the_origin_url_are_sent_as_basic_auth_percent_decoded() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let config = world.config("app.tako", &with_credentials(&server.url()), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let expected = format!("Basic {}", basic(USER, PASSWORD));
    let seen = server.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some(expected.as_str()),
            "{}",
            request.path
        );
        // The user part never appears in the request itself.
        assert!(!request.path.contains('@'), "{}", request.path);
    }
    assert_no_secret("success", &o);
}

#[test]
fn credentials_in_the_origin_url_are_never_printed() {
    let world = World::new();
    let digest = world.publish("1.0");
    let store_path = format!("/store/{digest}");
    let image_len = World::content("1.0").len();
    let other = Server::serve_dir(world.path("nowhere"));

    // Each case: a name, the fault on the origin, extra fetch flags.
    let cases: Vec<(&str, &str, Fault, Vec<&str>)> = vec![
        ("404", "/manifest", Fault::Status(404), vec![]),
        ("500", "/manifest", Fault::Status(500), vec![]),
        (
            "bad signature",
            "/manifest",
            Fault::Body(signed_manifest(&[]).into_iter().rev().collect()),
            vec![],
        ),
        (
            "too large",
            "/manifest",
            Fault::Endless {
                content_length: false,
            },
            vec![],
        ),
        (
            "redirect to file",
            "/manifest",
            Fault::Redirect("file:///etc/passwd".into()),
            vec![],
        ),
        (
            "redirect elsewhere",
            "/manifest",
            Fault::Redirect(other.url_for("/manifest")),
            vec![],
        ),
        (
            "wrong digest",
            &store_path,
            Fault::Body(vec![b'x'; image_len]),
            vec![],
        ),
        (
            "truncated",
            &store_path,
            Fault::Truncate { after: 3 },
            vec![],
        ),
        ("withdrawn", &store_path, Fault::Status(410), vec![]),
        (
            "too slow",
            &store_path,
            Fault::Slow {
                chunk: 1,
                delay: Duration::from_millis(200),
            },
            vec!["--speed-limit", "1000", "--speed-time", "1"],
        ),
        (
            "max time",
            "/manifest",
            Fault::Hang,
            vec!["--max-time", "1"],
        ),
    ];
    for (case, path, fault, flags) in cases {
        // Each case starts afresh: the "withdrawn" one leaves its image remembered as
        // withdrawn (DEST/withdrawn), which later runs would not ask for again.
        let _ = std::fs::remove_file(world.dest().join("withdrawn"));
        let server = Server::serve_dir(world.origin());
        server.set_fault(path, fault);
        let config = world.config("app.tako", &with_credentials(&server.url()), "*", "");
        let mut args = vec!["--retries", "0"];
        args.extend(flags);

        let o = fetch(&args, &[&config]);

        assert_exit(&o, 1);
        assert_no_secret(case, &o);
        // After a redirect to another server the message names that server's URL.
        let shown = if case == "redirect elsewhere" {
            other.url_for("/manifest")
        } else {
            "***@127.0.0.1".to_string()
        };
        assert!(
            stderr(&o).contains(&shown),
            "{case}: the URL should be shown with its password hidden:\n{}",
            stderr(&o)
        );
    }

    // Connection refused: nothing listens on the origin's port any more.
    let server = Server::serve_dir(world.origin());
    let url = with_credentials(&server.url());
    drop(server);
    let config = world.config("app.tako", &url, "*", "");
    let o = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    assert_no_secret("connection refused", &o);
    assert!(stderr(&o).contains("***@127.0.0.1"), "{}", stderr(&o));

    // Origins the config check refuses still hide the password.
    for origin in [
        "ftp://user:p%40ss@127.0.0.1/x",
        "https://user:p%40ss@exa mple.com/x",
        "https://user:p%40ss@127.0.0.1/x?q",
        "file://user:p%40ss@localhost/srv",
    ] {
        let config = world.config("app.tako", origin, "*", "");
        let o = fetch(&["--retries", "0"], &[&config]);
        assert_exit(&o, 1);
        assert_no_secret(origin, &o);
        assert!(
            stderr(&o).contains("app.tako:1:"),
            "{origin}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn credentials_are_not_sent_after_a_redirect_to_another_host() {
    let world = World::new();
    let digest = world.publish("1.0");
    let elsewhere = Server::serve_dir(world.origin());
    let server = Server::serve_dir(world.origin());
    // Same origin: keeps the credentials. Another port: a different origin.
    server.set_fault("/manifest", Fault::Redirect("/moved/manifest".into()));
    server.set_fault(
        "/moved/manifest",
        Fault::Redirect(elsewhere.url_for("/manifest")),
    );
    let config = world.config("app.tako", &with_credentials(&server.url()), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let expected = format!("Basic {}", basic(USER, PASSWORD));
    for request in server.recorded() {
        assert_eq!(
            request.header("authorization"),
            Some(expected.as_str()),
            "{}",
            request.path
        );
    }
    let foreign = elsewhere.recorded();
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(foreign[0].path, "/manifest");
    assert_eq!(foreign[0].header("authorization"), None);
}

// ---------------------------------------------------------------------------------------
// Bounded time
// ---------------------------------------------------------------------------------------

#[test]
fn a_server_that_trickles_bytes_is_cut_off_by_the_speed_limit() {
    let world = World::new();
    let content = vec![b'a'; 20_000];
    let digest = world.publish_bytes("1.0", &content);
    let server = Server::serve_dir(world.origin());
    let store_path = format!("/store/{digest}");
    // 10 bytes every 100 ms: about 100 bytes/s, far below the limit of 1000.
    server.set_fault(
        &store_path,
        Fault::Slow {
            chunk: 10,
            delay: Duration::from_millis(100),
        },
    );
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(
        &[
            "--retries",
            "0",
            "--speed-limit",
            "1000",
            "--speed-time",
            "1",
        ],
        &[&config],
    );

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&server.url_for(&store_path)), "{err}");
    assert!(err.contains("too slow"), "{err}");
    assert!(err.contains("bytes/s"), "{err}");
    assert!(err.contains("below the limit of 1000 bytes/s"), "{err}");
    assert_eq!(world.latest(), None);
    // Only the bytes received, kept to resume from (see tests/resume.rs).
    let partial = format!("{digest}.partial");
    assert!(
        world.store_files().iter().all(|n| n.starts_with(&partial)),
        "{:?}",
        world.store_files()
    );
}

#[test]
fn a_silent_server_fails_the_speed_check_after_the_speed_time() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    server.set_fault("/manifest", Fault::Hang);
    let config = world.config("app.tako", &server.url(), "*", "");

    // --idle-timeout stays at its 60 s default; the 1 s speed window must end it sooner.
    let o = fetch(&["--retries", "0", "--speed-time", "1"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&server.url_for("/manifest")), "{err}");
    assert!(err.contains("too slow: 0 bytes"), "{err}");
}

#[test]
fn a_steady_transfer_above_the_speed_limit_is_not_cut_off() {
    let world = World::new();
    let content = vec![b'b'; 3_000];
    let digest = world.publish_bytes("1.0", &content);
    let server = Server::serve_dir(world.origin());
    // 1000 bytes every 100 ms: about 10 kB/s, well above the limit of 100.
    server.set_fault(
        &format!("/store/{digest}"),
        Fault::Slow {
            chunk: 1000,
            delay: Duration::from_millis(100),
        },
    );
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(
        &[
            "--retries",
            "0",
            "--speed-limit",
            "100",
            "--speed-time",
            "1",
        ],
        &[&config],
    );

    assert_exit(&o, 0);
    world.assert_latest(&digest, &content);
}

#[test]
fn max_time_bounds_one_configs_whole_fetch() {
    let world = World::new();
    let content = vec![b'c'; 1 << 20];
    let digest = world.publish_bytes("1.0", &content);
    let server = Server::serve_dir(world.origin());
    let store_path = format!("/store/{digest}");
    // 4000 bytes every 100 ms passes the default speed limit, but 1 MiB takes 26 s.
    server.set_fault(
        &store_path,
        Fault::Slow {
            chunk: 4000,
            delay: Duration::from_millis(100),
        },
    );
    let slow = world.config("slow.tako", &server.url(), "*", "");
    // A second config (its own destination) must still get its full time and succeed.
    let other_dest = world.path("other-dest");
    fs::create_dir(&other_dest).unwrap();
    let other = world.path("other.tako");
    fs::write(
        &other,
        format!(
            "Origin={}\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion=*\n",
            world.file_url(),
            other_dest.display()
        ),
    )
    .unwrap();

    let o = fetch(&["--retries", "0", "--max-time", "2"], &[&slow, &other]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&server.url_for(&store_path)), "{err}");
    assert!(err.contains("--max-time"), "{err}");
    assert!(err.contains("bytes/s"), "{err}");
    assert_eq!(world.latest(), None);
    assert!(
        stdout(&o).contains("other.tako: updated (none) -> 1.0"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        fs::read(other_dest.join("latest")).unwrap(),
        content,
        "the second config's image"
    );
}

#[test]
fn max_time_covers_a_server_that_never_answers() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    server.set_fault("/manifest", Fault::Hang);
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(&["--retries", "0", "--max-time", "1"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot download {}: gave up after the time limit of 1 s for this config (--max-time)",
            server.url_for("/manifest")
        )),
        "{err}"
    );
}

#[test]
fn the_new_time_flags_reject_nonsense_values() {
    for args in [
        &["--speed-limit", "-1"][..],
        &["--speed-time", "0"],
        &["--max-time", "0"],
        &["--max-time", "soon"],
    ] {
        let mut all = vec!["--retries", "0"];
        all.extend(args);
        let o = fetch(&all, &[std::path::Path::new("app.tako")]);
        assert_exit(&o, 2);
    }
}

// ---------------------------------------------------------------------------------------
// Origin= is a URL, checked when the config loads
// ---------------------------------------------------------------------------------------

#[test]
fn origin_urls_are_checked_when_the_config_loads() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let cases = [
        (format!("{}/?x=1", server.url()), "has a query"),
        (format!("{}/?", server.url()), "has a query"),
        (format!("{}/#top", server.url()), "has a fragment"),
        ("https://exa mple.com/".to_owned(), "invalid origin URL"),
        ("https://".to_owned(), "invalid origin URL"),
        ("not a url".to_owned(), "invalid origin URL"),
        ("gopher://h/x".to_owned(), "unsupported origin"),
        ("file://elsewhere/srv".to_owned(), "names a host"),
    ];
    for (origin, expected) in cases {
        let config = world.config("app.tako", &origin, "*", "");
        let o = fetch(&["--retries", "0"], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        let prefix = format!("tako: error: {}:1: ", config.display());
        assert!(err.starts_with(&prefix), "{origin}: {err}");
        assert!(err.contains(expected), "{origin}: {err}");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn origin_schemes_are_case_insensitive() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let upper_http = server.url().replace("http://", "HTTP://");
    let upper_file = world.file_url().replace("file://", "FILE://");

    for origin in [upper_http, upper_file] {
        let config = world.config("app.tako", &origin, "*", "");
        let o = fetch(&["--retries", "0"], &[&config]);
        assert_exit(&o, 0);
        world.assert_latest(&digest, &World::content("1.0"));
        fs::remove_file(world.dest().join("latest")).unwrap();
    }
    assert_eq!(server.count("/manifest"), 1);
}

// ---------------------------------------------------------------------------------------
// Nothing raw from the network in messages
// ---------------------------------------------------------------------------------------

#[test]
fn bytes_from_the_network_are_escaped_and_cut_in_messages() {
    let world = World::new();
    world.publish("1.0");
    let faults = [
        Fault::Redirect(format!("file:///{}", "a".repeat(10_000))),
        Fault::Redirect(format!("/{}", "b".repeat(10_000))),
        Fault::Encoded {
            encoding: format!("gzip{}", "z".repeat(5000)),
            body: b"whatever".to_vec(),
        },
    ];
    for fault in faults {
        let server = Server::serve_dir(world.origin());
        server.set_fault("/manifest", fault.clone());
        let config = world.config("app.tako", &server.url(), "*", "");

        let o = fetch(&["--retries", "0"], &[&config]);

        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(!err.is_empty());
        for line in err.lines() {
            assert!(
                line.chars().count() < 1000,
                "{fault:?}: line not cut: {line}"
            );
        }
    }
}

#[test]
fn control_characters_in_a_redirect_target_are_escaped() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    // A tab is allowed in a header value; ureq passes it on in the Location.
    server.set_fault(
        "/manifest",
        Fault::Redirect("file:///etc/\tpasswd".to_owned()),
    );
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    // The URL parser drops tabs and newlines from a URL, as browsers do, so the
    // location is named without it; escaping would have shown it as `\t`.
    assert!(err.contains("to file:///etc/passwd"), "{err:?}");
    assert!(!err.contains('\t'), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Compression the server chose on its own
// ---------------------------------------------------------------------------------------

#[test]
fn a_body_the_server_compressed_on_its_own_is_reported_as_compressed() {
    let world = World::new();
    let digest = world.publish("1.0");
    let manifest = fs::read(world.origin().join("manifest")).unwrap();
    // What a compressing server sends is shorter than the file, and not the signed bytes.
    let gzip_like: Vec<u8> = [&[0x1f, 0x8b, 8, 0][..], &manifest[..20]].concat();

    for (path, body) in [
        ("/manifest".to_owned(), gzip_like.clone()),
        (format!("/store/{digest}"), gzip_like[..10].to_vec()),
    ] {
        let server = Server::serve_dir(world.origin());
        server.set_fault(
            &path,
            Fault::Encoded {
                encoding: "gzip".into(),
                body,
            },
        );
        let config = world.config("app.tako", &server.url(), "*", "");
        let o = fetch(&["--retries", "0"], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "{} was sent compressed (Content-Encoding: gzip)",
                server.url_for(&path)
            )),
            "{path}: {err}"
        );
        assert!(
            !err.contains("carriage return") && !err.contains("shorter"),
            "{err}"
        );
    }
    assert_eq!(world.latest(), None);
}

#[test]
fn content_encoding_identity_is_accepted() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    server.set_fault(
        &format!("/store/{digest}"),
        Fault::Encoded {
            encoding: "identity".into(),
            body: World::content("1.0"),
        },
    );
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
}

// ---------------------------------------------------------------------------------------
// TLS failures in plain words
// ---------------------------------------------------------------------------------------

/// A world published behind an HTTPS server presenting `leaf`, and a CA file naming the
/// test CA as the only trusted one.
struct TlsWorld {
    world: World,
    server: TlsServer,
    ca_file: std::path::PathBuf,
    digest: String,
}

impl TlsWorld {
    fn new(ca: &TestCa, leaf: &tls_server::Leaf) -> TlsWorld {
        let world = World::new();
        let digest = world.publish("1.0");
        let server = TlsServer::serve_dir(world.origin(), leaf);
        let ca_file = world.path("ca.pem");
        fs::write(&ca_file, ca.pem()).unwrap();
        TlsWorld {
            world,
            server,
            ca_file,
            digest,
        }
    }

    fn fetch(&self, origin: &str, env: &[(&str, String)]) -> Output {
        let config = self.world.config("app.tako", origin, "*", "");
        let mut run = Fetch::new()
            .env("SSL_CERT_FILE", &self.ca_file)
            .env_remove("SSL_CERT_DIR");
        for (name, value) in env {
            run = run.env(name, value);
        }
        run.run(&[], &[&config])
    }
}

/// Words that only Debug output of rustls errors would contain.
#[track_caller]
fn assert_plain_words(o: &Output) {
    let err = stderr(o);
    for debug in [
        "UnknownIssuer",
        "InvalidCertificate",
        "NotValidForName",
        "Expired",
        "Context",
        "{",
        "invalid peer certificate",
    ] {
        assert!(!err.contains(debug), "Debug text {debug:?} in:\n{err}");
    }
}

#[test]
fn a_certificate_from_a_trusted_authority_is_accepted() {
    let ca = TestCa::new("tako test CA");
    let tls = TlsWorld::new(&ca, &ca.leaf(&["127.0.0.1"], false));

    let o = tls.fetch(&tls.server.url(), &[]);

    assert_exit(&o, 0);
    tls.world.assert_latest(&tls.digest, &World::content("1.0"));
    assert_eq!(tls.server.requests().len(), 2);
}

#[test]
fn a_self_signed_certificate_is_named_as_such() {
    let ca = TestCa::new("tako test CA");
    let tls = TlsWorld::new(&ca, &tls_server::self_signed(&["127.0.0.1"]));

    let o = tls.fetch(&tls.server.url(), &[]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot download {}/manifest: the server's certificate is self-signed",
            tls.server.url()
        )),
        "{err}"
    );
    assert_plain_words(&o);
    assert!(tls.server.requests().is_empty());
}

#[test]
fn a_certificate_from_an_unknown_authority_is_named_as_such() {
    let trusted = TestCa::new("tako test CA");
    let unknown = TestCa::new("someone else's CA");
    let tls = TlsWorld::new(&trusted, &unknown.leaf(&["127.0.0.1"], false));

    let o = tls.fetch(&tls.server.url(), &[]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("the server's certificate was issued by an unknown certificate authority"),
        "{err}"
    );
    assert!(!err.contains("self-signed"), "{err}");
    assert_plain_words(&o);
}

#[test]
fn an_expired_certificate_is_named_as_such() {
    let ca = TestCa::new("tako test CA");
    let tls = TlsWorld::new(&ca, &ca.leaf(&["127.0.0.1"], true));

    let o = tls.fetch(&tls.server.url(), &[]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("the server's certificate expired on 2001-01-01 00:00:00 UTC"),
        "{err}"
    );
    assert_plain_words(&o);
}

#[test]
fn a_certificate_for_another_host_name_is_named_as_such() {
    let ca = TestCa::new("tako test CA");
    let tls = TlsWorld::new(&ca, &ca.leaf(&["example.invalid"], false));

    let o = tls.fetch(&tls.server.url(), &[]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(
            "the server's certificate is not valid for the host name 127.0.0.1 (it is for example.invalid)"
        ),
        "{err}"
    );
    assert_plain_words(&o);
}

#[test]
fn an_http_server_behind_an_https_url_is_named_as_such() {
    let world = World::new();
    world.publish("1.0");
    // Answers whatever arrives with a plain HTTP 400, as web servers do when they receive
    // a TLS handshake on a plain HTTP port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("https://{}", listener.local_addr().unwrap());
    let answerer = thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut hello = [0u8; 512];
        let _ = stream.read(&mut hello);
        let _ = stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    });
    let config = world.config("app.tako", &origin, "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);
    answerer.join().unwrap();

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("the server did not answer in TLS"), "{err}");
    assert_plain_words(&o);
}

// ---------------------------------------------------------------------------------------
// Proxies
// ---------------------------------------------------------------------------------------

#[test]
fn an_http_origin_through_http_proxy_is_requested_in_absolute_form() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    // Like a proxy in its default setup: CONNECT only to port 443.
    let proxy = Server::strict_proxy();
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = Fetch::new()
        .env("http_proxy", proxy.url())
        .run(&[], &[&config]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let seen: Vec<(String, String)> = proxy
        .recorded()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("GET".to_owned(), server.url_for("/manifest")),
            (
                "GET".to_owned(),
                server.url_for(&format!("/store/{digest}"))
            ),
        ]
    );
    let host = server.url().trim_start_matches("http://").to_owned();
    for request in proxy.recorded() {
        assert_eq!(request.header("host"), Some(host.as_str()));
    }
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn proxy_credentials_go_to_the_proxy_with_absolute_form_requests() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let proxy = Server::proxy();
    let proxy_url = proxy.url().replace("http://", "http://pu:pp%21@");
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = Fetch::new()
        .env("http_proxy", &proxy_url)
        .run(&[], &[&config]);

    assert_exit(&o, 0);
    let expected = format!("Basic {}", basic("pu", "pp!"));
    let seen = proxy.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in seen {
        assert_eq!(request.method, "GET");
        assert!(request.path.starts_with(&server.url()), "{}", request.path);
        assert_eq!(
            request.header("proxy-authorization"),
            Some(expected.as_str())
        );
    }
    for request in server.recorded() {
        assert_eq!(request.header("proxy-authorization"), None);
    }
}

#[test]
fn an_https_origin_through_https_proxy_keeps_connect() {
    let ca = TestCa::new("tako test CA");
    let tls = TlsWorld::new(&ca, &ca.leaf(&["127.0.0.1"], false));
    let proxy = Server::proxy();

    let o = tls.fetch(&tls.server.url(), &[("https_proxy", proxy.url())]);

    assert_exit(&o, 0);
    tls.world.assert_latest(&tls.digest, &World::content("1.0"));
    let seen = proxy.recorded();
    assert!(!seen.is_empty());
    for request in seen {
        assert_eq!(request.method, "CONNECT");
        assert_eq!(request.path, format!("127.0.0.1:{}", tls.server.port()));
    }
}

#[test]
fn a_refusing_proxy_is_named_in_the_error() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    let proxy = Server::proxy();
    let proxy_url = proxy.url();
    drop(proxy);
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = Fetch::new()
        .env("http_proxy", &proxy_url)
        .run(&[], &[&config]);

    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("connection refused (through the proxy in $http_proxy)"),
        "{}",
        stderr(&o)
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_config_line_without_equals_sign_is_not_echoed_with_its_password() {
    let w = World::new();
    let config = w.path("typo.tako");
    fs::write(
        &config,
        format!(
            "Origin https://{USER}:s3cr3t-pw@127.0.0.1:1/app\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion=*\n",
            w.dest().display()
        ),
    )
    .unwrap();
    let o = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    let all = all_output(&o);
    assert!(all.contains("typo.tako:1: expected Key=Value"), "{all}");
    assert!(!all.contains("s3cr3t-pw"), "{all}");
}

/// Issue 23, hostile review E: a password with an unencoded `/`, `?` or `#` was printed
/// whole in config errors and in `--json`, and a token used as the user name in every
/// message. The whole user part is hidden.
#[test]
fn the_whole_user_part_of_an_origin_is_hidden_even_when_it_is_no_valid_url() {
    let world = World::new();
    world.publish("1.0");
    for (origin, secrets) in [
        ("https://user:pa/ss@127.0.0.1:1/app", vec!["pa/ss", "user:"]),
        ("https://user:pa?ss@127.0.0.1:1/app", vec!["pa?ss", "user:"]),
        ("https://user:pa#ss@127.0.0.1:1/app", vec!["pa#ss", "user:"]),
        (
            "http://ghp_t0ken5ecret@127.0.0.1:1/app",
            vec!["ghp_t0ken5ecret"],
        ),
    ] {
        let config = world.config("app.tako", origin, "*", "");
        for json in [false, true] {
            let mut args = vec!["--retries", "0"];
            if json {
                args.push("--json");
            }
            let o = fetch(&args, &[&config]);
            assert_exit(&o, 1);
            let printed = all_output(&o);
            for secret in &secrets {
                assert!(
                    !printed.contains(secret),
                    "{origin} (json: {json}): printed {secret:?}:\n{printed}"
                );
            }
            assert!(printed.contains("***@"), "{origin}: {printed}");
        }
    }
}
