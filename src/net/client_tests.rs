//! [`Transport`] against a real local HTTP server: bodies, statuses, limits, timeouts,
//! redirects.
//!
//! The server is the fault-injecting one the integration tests use (std only), compiled in
//! here from `tests/it/support/`; the tests reach the transport directly, which the black-box
//! tests cannot.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{ProxyConfig, Transport, TransportError};
use crate::format::transport_config::TransportConfig;
use test_server::{Fault, Server};

// The server serves many integration tests; these use only part of it.
#[allow(dead_code)]
#[path = "../../tests/it/support/http_server.rs"]
mod test_server;

/// Proxies from the environment would send requests for 127.0.0.1 elsewhere.
fn transport() -> Transport {
    Transport::with_proxies(TransportConfig::default(), ProxyConfig::none())
}

fn impatient_transport() -> Transport {
    let cfg = TransportConfig {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(1),
        ..TransportConfig::default()
    };
    Transport::with_proxies(cfg, ProxyConfig::none())
}

/// Bytes that are not all alike, so a misplaced chunk would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn origin_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn read_all(url: &str) -> Result<Vec<u8>, TransportError> {
    let mut body = transport().open(url)?;
    let mut out = Vec::new();
    body.read_to_end(&mut out)
        .map_err(|e| TransportError::from_read_error(url, e))?;
    Ok(out)
}

#[test]
fn a_200_response_streams_exactly_the_file_bytes() {
    let image = pattern(3 * 1024 * 1024 + 17);
    let dir = origin_with(&[("store/ab12", &image)]);
    let server = Server::serve_dir(dir.path());
    let url = server.url_for("/store/ab12");

    let mut body = transport().open(&url).unwrap();
    assert_eq!(body.content_length(), Some(image.len() as u64));
    let mut got = Vec::new();
    body.read_to_end(&mut got).unwrap();

    assert!(got == image, "body differs from the served file");
    assert_eq!(server.requests(), vec!["/store/ab12"]);
}

#[test]
fn status_404_410_and_500_map_to_their_own_errors_naming_the_url_and_status() {
    let dir = origin_with(&[("manifest", b"m")]);
    let server = Server::serve_dir(dir.path());
    server.set_fault("/store/gone", Fault::Status(410));
    server.set_fault("/store/nf", Fault::Status(404));
    server.set_fault("/manifest", Fault::Status(500));

    let url = server.url_for("/store/gone");
    let err = transport().open(&url).unwrap_err();
    assert!(
        matches!(&err, TransportError::Gone { url: u } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url) && err.to_string().contains("410"));

    let url = server.url_for("/store/nf");
    let err = transport().open(&url).unwrap_err();
    assert!(
        matches!(&err, TransportError::NotFound { url: u } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url) && err.to_string().contains("404"));

    let url = server.url_for("/manifest");
    let err = transport().open(&url).unwrap_err();
    assert!(
        matches!(&err, TransportError::Status { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("HTTP 500 Internal Server Error from {url}")
    );
}

#[test]
fn a_file_missing_on_the_server_is_not_found() {
    let dir = origin_with(&[]);
    let server = Server::serve_dir(dir.path());
    let url = server.url_for("/store/0000");
    let err = transport().open(&url).unwrap_err();
    assert!(matches!(err, TransportError::NotFound { .. }), "{err:?}");
}

#[test]
fn get_capped_returns_a_body_of_exactly_the_limit_and_rejects_one_byte_more() {
    let dir = origin_with(&[("manifest", &pattern(1000))]);
    let server = Server::serve_dir(dir.path());
    let url = server.url_for("/manifest");

    assert_eq!(transport().get_capped(&url, 1000).unwrap(), pattern(1000));
    let err = transport().get_capped(&url, 999).unwrap_err();
    assert!(
        matches!(&err, TransportError::TooLarge { max: 999, url: u } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url));
}

#[test]
fn get_capped_stops_an_endless_body_with_or_without_content_length() {
    for content_length in [true, false] {
        let server = Server::serve_dir(origin_with(&[]).path());
        server.set_fault("/manifest", Fault::Endless { content_length });
        let url = server.url_for("/manifest");

        let err = transport().get_capped(&url, 8 << 20).unwrap_err();

        assert!(matches!(err, TransportError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
    }
}

#[test]
fn a_server_that_never_answers_fails_after_the_idle_timeout_naming_the_url() {
    let server = Server::serve_dir(origin_with(&[]).path());
    server.set_fault("/manifest", Fault::Hang);
    let url = server.url_for("/manifest");

    let started = Instant::now();
    let err = impatient_transport().get_capped(&url, 1024).unwrap_err();
    let waited = started.elapsed();

    assert!(matches!(err, TransportError::Network { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains("1 s with no data"),
        "{msg}"
    );
    // Not before the configured second of silence.
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

#[test]
fn a_body_that_stalls_midway_fails_the_read_with_an_error_naming_the_url() {
    let dir = origin_with(&[("store/ab12", &pattern(200_000))]);
    let server = Server::serve_dir(dir.path());
    server.set_fault("/store/ab12", Fault::Stall { after: 100_000 });
    let url = server.url_for("/store/ab12");

    let mut body = impatient_transport().open(&url).unwrap();
    let mut got = Vec::new();
    let err = body.read_to_end(&mut got).unwrap_err();

    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(got.len(), 100_000);
    let err = TransportError::from_read_error(&url, err);
    assert!(matches!(err, TransportError::Network { .. }), "{err:?}");
}

#[test]
fn a_body_cut_short_of_its_content_length_fails_the_read() {
    let dir = origin_with(&[("store/ab12", &pattern(200_000))]);
    let server = Server::serve_dir(dir.path());
    server.set_fault("/store/ab12", Fault::Truncate { after: 50_000 });
    let url = server.url_for("/store/ab12");

    let err = read_all(&url).unwrap_err();

    assert!(matches!(err, TransportError::Network { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn a_slow_but_steady_body_is_not_cut_off_by_the_idle_timeout() {
    let dir = origin_with(&[("store/ab12", &pattern(10_000))]);
    let server = Server::serve_dir(dir.path());
    let delay = Duration::from_millis(300);
    server.set_fault(
        "/store/ab12",
        Fault::Slow {
            chunk: 2_000,
            delay,
        },
    );
    let url = server.url_for("/store/ab12");

    let mut body = impatient_transport().open(&url).unwrap();
    let mut got = Vec::new();
    body.read_to_end(&mut got).unwrap();

    assert!(got == pattern(10_000));
}

#[test]
fn a_refused_connection_names_the_url_and_the_reason() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/manifest");

    let err = transport().open(&url).unwrap_err();

    assert!(matches!(err, TransportError::Network { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot download {url}: connection refused")
    );
}

fn with_proxy(proxy: &Server, no_proxy: &str) -> Transport {
    let vars = [
        ("http_proxy", proxy.url()),
        ("no_proxy", no_proxy.to_owned()),
    ];
    let proxies = ProxyConfig::from_lookup(|name| {
        vars.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value.clone())
    });
    Transport::with_proxies(TransportConfig::default(), proxies)
}

#[test]
fn http_proxy_is_used_for_http_urls() {
    let dir = origin_with(&[("manifest", b"via proxy")]);
    let server = Server::serve_dir(dir.path());
    let proxy = Server::proxy();

    let got = with_proxy(&proxy, "")
        .get_capped(&server.url_for("/manifest"), 100)
        .unwrap();

    assert_eq!(got, b"via proxy");
    // Plain HTTP goes to the proxy in absolute form, as curl sends it (issue 8).
    let forwarded = proxy.recorded();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].method, "GET");
    assert_eq!(forwarded[0].path, server.url_for("/manifest"));
    assert_eq!(server.requests(), vec!["/manifest"]);
}

#[test]
fn hosts_in_no_proxy_bypass_the_proxy() {
    let dir = origin_with(&[("manifest", b"direct")]);
    let server = Server::serve_dir(dir.path());
    let proxy = Server::connect_proxy();

    let got = with_proxy(&proxy, "example.org, 127.0.0.1")
        .get_capped(&server.url_for("/manifest"), 100)
        .unwrap();

    assert_eq!(got, b"direct");
    assert!(proxy.recorded().is_empty());
}

#[test]
fn an_unreachable_proxy_is_named_in_the_error() {
    let dir = origin_with(&[("manifest", b"m")]);
    let server = Server::serve_dir(dir.path());
    let proxy = Server::connect_proxy();
    let transport = with_proxy(&proxy, "");
    drop(proxy);

    let url = server.url_for("/manifest");
    let err = transport.open(&url).unwrap_err();

    assert_eq!(
        err.to_string(),
        format!("cannot download {url}: connection refused (through the proxy in $http_proxy)")
    );
}

#[test]
fn redirects_are_followed_relative_and_absolute() {
    let dir = origin_with(&[("manifest", b"the manifest")]);
    let server = Server::serve_dir(dir.path());
    server.set_fault("/a", Fault::Redirect("b".into()));
    server.set_fault("/b", Fault::Redirect(server.url_for("/c")));
    server.set_fault("/c", Fault::Redirect("/manifest".into()));

    let got = transport().get_capped(&server.url_for("/a"), 1024).unwrap();

    assert_eq!(got, b"the manifest");
    assert_eq!(server.requests(), vec!["/a", "/b", "/c", "/manifest"]);
}

#[test]
fn ten_redirects_are_followed_but_an_eleventh_is_an_error() {
    let dir = origin_with(&[("manifest", b"m")]);
    let server = Server::serve_dir(dir.path());
    for i in 0..10 {
        server.set_fault(&format!("/r{i}"), Fault::Redirect(format!("/r{}", i + 1)));
    }
    server.set_fault("/r10", Fault::Redirect("/manifest".into()));

    assert_eq!(
        transport().get_capped(&server.url_for("/r1"), 10).unwrap(),
        b"m"
    );
    let url = server.url_for("/r0");
    let err = transport().get_capped(&url, 10).unwrap_err();
    assert!(
        matches!(&err, TransportError::TooManyRedirects { url: u, .. } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url));
}

#[test]
fn a_redirect_to_a_file_url_is_refused() {
    let dir = origin_with(&[("manifest", b"secret")]);
    let server = Server::serve_dir(dir.path());
    let target = format!("file://{}", dir.path().join("manifest").display());
    server.set_fault("/manifest", Fault::Redirect(target.clone()));
    let url = server.url_for("/manifest");

    let err = transport().open(&url).unwrap_err();

    assert!(
        matches!(&err, TransportError::RedirectRefused { location, .. } if *location == target),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url) && err.to_string().contains(&target));
}

#[test]
fn requests_carry_the_tako_user_agent_and_ask_for_no_compression() {
    let dir = origin_with(&[("manifest", b"m")]);
    let server = Server::serve_dir(dir.path());

    transport()
        .get_capped(&server.url_for("/manifest"), 10)
        .unwrap();

    let requests = server.recorded();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    let expected = format!("tako/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(requests[0].header("user-agent"), Some(expected.as_str()));
    assert_eq!(requests[0].header("accept-encoding"), None);
}

#[test]
fn file_urls_read_local_files_and_a_missing_one_is_not_found() {
    let dir = origin_with(&[("manifest", b"local manifest")]);
    let origin = format!("file://{}", dir.path().display());

    let url = format!("{origin}/manifest");
    let body = transport().open(&url).unwrap();
    assert_eq!(body.content_length(), Some(14));
    assert_eq!(read_all(&url).unwrap(), b"local manifest");
    assert_eq!(transport().get_capped(&url, 13).unwrap_err().to_string(), {
        format!("{url} is larger than the limit of 13 bytes")
    });

    let missing = format!("{origin}/store/00");
    let err = transport().open(&missing).unwrap_err();
    assert!(matches!(err, TransportError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing));
}

#[test]
fn a_file_url_naming_a_directory_is_an_error_naming_the_url() {
    let dir = origin_with(&[]);
    let url = format!("file://{}", dir.path().join("store").display());
    let err = transport().open(&url).unwrap_err();
    assert!(matches!(err, TransportError::File { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn dropping_the_server_returns_promptly_while_a_client_is_hung() {
    let server = Server::serve_dir(origin_with(&[]).path());
    server.set_fault("/manifest", Fault::Hang);
    let url = server.url_for("/manifest");
    let client = std::thread::spawn(move || impatient_transport().open(&url).map(|_| ()));
    // Wait until the server has the request, so it really is hanging on it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.requests().len(), 1);

    // Dropping must end the hung connection rather than wait for it forever.
    drop(server);
    assert!(client.join().unwrap().is_err());
}

#[test]
fn a_large_image_streams_from_disk() {
    let dir = origin_with(&[]);
    let path = dir.path().join("store/big");
    write_pattern_file(&path, 100 << 20);
    let server = Server::serve_dir(dir.path());

    let mut body = transport().open(&server.url_for("/store/big")).unwrap();
    assert_eq!(body.content_length(), Some(100 << 20));
    let n = std::io::copy(&mut body, &mut std::io::sink()).unwrap();

    assert_eq!(n, 100 << 20);
}

/// A file of `len` bytes written in 1 MiB pieces, so the test never holds it in memory.
fn write_pattern_file(path: &Path, len: usize) {
    use std::io::Write;
    let piece = pattern(1 << 20);
    let mut file = std::fs::File::create(path).unwrap();
    for _ in 0..len / piece.len() {
        file.write_all(&piece).unwrap();
    }
}
