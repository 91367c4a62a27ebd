//! Transient failures are retried within a run, with backoff and Retry-After; answers
//! (403, 404, 410) are not; a download cut by the network resumes from its partial.
//!
//! Runs use `--retry-delay-ms` so the backoff costs milliseconds, except where the
//! server's `Retry-After: 1` is what is tested.

use crate::support;

use std::fs;

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

fn image_path(digest: &str) -> String {
    format!("/store/{digest}")
}

fn retry_after(seconds: u32) -> Fault {
    Fault::StatusWith {
        status: 503,
        headers: vec![format!("Retry-After: {seconds}")],
    }
}

/// Bytes that are not all alike, so that a spliced or shifted copy cannot pass.
fn image_bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

#[test]
fn a_503_with_retry_after_is_retried_until_the_server_serves() {
    let w = World::new();
    let digest = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.set_fault_sequence("/manifest", vec![retry_after(1), retry_after(1)]);
    server.set_fault_sequence(&image_path(&digest), vec![retry_after(0)]);
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch_slow(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &World::content("1.0"));
    assert_eq!(server.count("/manifest"), 3, "two 503s, then the manifest");
    assert_eq!(server.count(&image_path(&digest)), 2);
    let err = stderr(&o);
    // The wait the server asked for, not the backoff's 1, 2, 4 s.
    assert!(err.contains("retrying in 1.0 s (retry 1 of 3)"), "{err}");
    assert!(err.contains("retrying in 1.0 s (retry 2 of 3)"), "{err}");
    assert!(err.contains("retrying in 0.0 s (retry 1 of 3)"), "{err}");
    assert!(err.contains(&server.url_for("/manifest")), "{err}");
}

#[test]
fn only_transient_failures_are_retried_and_at_most_retries_times() {
    for (status, transient) in [
        (500, true),
        (502, true),
        (503, true),
        (408, true),
        (429, true),
        (403, false),
        (404, false),
        (410, false),
    ] {
        for target in ["manifest", "image"] {
            let w = World::new();
            let digest = w.publish("1.0");
            let server = Server::serve_dir(w.origin());
            let path = if target == "manifest" {
                "/manifest".to_owned()
            } else {
                image_path(&digest)
            };
            server.set_fault(&path, Fault::Status(status));
            let config = w.config("app.tako", &server.url(), "*", "");

            let o = fetch_slow(&["--retries", "2", "--retry-delay-ms", "5"], &[&config]);

            let tries = if transient { 3 } else { 1 };
            assert_eq!(
                server.count(&path),
                tries,
                "{status} on the {target}: {}",
                stderr(&o)
            );
            // A 410 for the only image means withdrawn, which is its own failure.
            assert_exit(&o, 1);
            assert_eq!(w.latest(), None);
            // No bytes arrived, so no partial is kept.
            assert_eq!(w.store_files(), Vec::<String>::new());
        }
    }
}

#[test]
fn retries_zero_tries_once() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.set_fault("/manifest", Fault::Status(503));
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch_slow(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    assert_eq!(server.count("/manifest"), 1);
    assert!(!stderr(&o).contains("retrying"), "{}", stderr(&o));
}

#[test]
fn a_connection_refused_is_retried_and_named() {
    let w = World::new();
    w.publish("1.0");
    // A port nothing listens on any more.
    let dead = Server::serve_dir(w.origin());
    let url = dead.url();
    drop(dead);
    let config = w.config("app.tako", &url, "*", "");
    let o = fetch_slow(&["--retries", "2", "--retry-delay-ms", "5"], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.matches("retrying in").count(), 2, "{err}");
    assert!(err.contains(&format!("{url}/manifest")), "{err}");
}

#[test]
fn a_download_cut_by_the_network_resumes_with_a_range_request() {
    let w = World::new();
    let image = image_bytes(300_000, 1);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let path = image_path(&digest);
    server.set_fault_sequence(&path, vec![Fault::Truncate { after: 100_000 }]);
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch_slow(&["--retry-delay-ms", "5"], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let requests: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[1].header("range"), Some("bytes=100000-"));
    assert!(
        requests[1]
            .header("if-range")
            .is_some_and(|v| v.starts_with('"')),
        "the ETag of the first response: {:?}",
        requests[1].header("if-range")
    );
    // Every byte crossed the network once.
    assert_eq!(server.body_bytes_sent(&path), image.len() as u64);
    assert_eq!(w.store_files(), [digest], "no partial left behind");
}

#[test]
fn a_partial_kept_by_an_earlier_run_is_resumed_by_the_next() {
    let w = World::new();
    let image = image_bytes(200_000, 2);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let path = image_path(&digest);
    server.set_fault_sequence(&path, vec![Fault::Truncate { after: 50_000 }]);
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch_slow(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    let partial = w.dest().join("store").join(format!("{digest}.partial"));
    let kept = fs::read(&partial).unwrap();
    assert!(kept == image[..50_000], "kept {} bytes", kept.len());
    assert_eq!(w.latest(), None);

    let o = fetch_slow(&["--retries", "0"], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let last = server
        .recorded()
        .into_iter()
        .rfind(|r| r.path == path)
        .unwrap();
    assert_eq!(last.header("range"), Some("bytes=50000-"));
    assert_eq!(server.body_bytes_sent(&path), image.len() as u64);
    assert!(!partial.exists());
}

/// A download of `image` that the server cuts off after 50,000 bytes, and then answers the
/// resume with `answer`: what one run with one retry makes of it.
fn resume_answered_with(
    image: &[u8],
    answer: Fault,
) -> (World, Server, String, std::process::Output) {
    let w = World::new();
    let digest = w.publish_bytes("1.0", image);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let path = image_path(&digest);
    server.set_fault_sequence(&path, vec![Fault::Truncate { after: 50_000 }, answer]);
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch_slow(&["--retries", "1", "--retry-delay-ms", "5"], &[&config]);
    (w, server, digest, o)
}

/// Issue 23, hostile review K: a resume answered with several ranges
/// (`multipart/byteranges`) kept the partial, and every run failed the same way. The kept
/// bytes go, and the image is downloaded whole at once.
#[test]
fn a_resume_answered_with_several_ranges_downloads_the_image_whole() {
    let image = image_bytes(200_000, 11);
    let mut body = b"--SEP\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 50000-50009/200000\r\n\r\n".to_vec();
    body.extend_from_slice(&image[50_000..50_010]);
    body.extend_from_slice(b"\r\n--SEP--\r\n");
    let multipart = Fault::Response {
        status: 206,
        headers: vec!["Content-Type: multipart/byteranges; boundary=SEP".to_owned()],
        body,
    };
    let (w, server, digest, o) = resume_answered_with(&image, multipart);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let err = stderr(&o);
    assert!(
        err.contains("answered a range request with an unusable partial response: it sent several ranges (multipart/byteranges) for one; downloading all of it"),
        "{err}"
    );
    let ranges: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == image_path(&digest))
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [None, Some("bytes=50000-".to_owned()), None]);
    assert_eq!(w.store_files(), [digest], "no partial left behind");
}

/// Review K, the other answer: a 206 without `Content-Range` cannot be appended either.
#[test]
fn a_resume_answered_with_a_206_without_content_range_downloads_the_image_whole() {
    let image = image_bytes(200_000, 12);
    let tail = Fault::Response {
        status: 206,
        headers: Vec::new(),
        body: image[50_000..].to_vec(),
    };
    let (w, server, digest, o) = resume_answered_with(&image, tail);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let err = stderr(&o);
    assert!(
        err.contains("it has no Content-Range header; downloading all of it"),
        "{err}"
    );
    assert_eq!(server.count(&image_path(&digest)), 3);
    assert_eq!(w.store_files(), [digest], "no partial left behind");
}

#[test]
fn a_file_changed_under_its_name_since_the_partial_is_downloaded_whole_not_spliced() {
    let w = World::new();
    let image = image_bytes(200_000, 3);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let path = image_path(&digest);
    let served = w.origin().join("store").join(&digest);
    // The server first has a damaged copy of the same length…
    let good = fs::read(&served).unwrap();
    let mut damaged = good.clone();
    damaged[10] ^= 0xff;
    fs::set_permissions(&served, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&served, &damaged).unwrap();
    server.set_fault_sequence(&path, vec![Fault::Truncate { after: 60_000 }]);
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch_slow(&["--retries", "0"], &[&config]), 1);

    // …which the publisher then repairs: a new ETag, so If-Range sends all of it.
    fs::write(&served, &good).unwrap();
    let o = fetch_slow(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let last = server
        .recorded()
        .into_iter()
        .rfind(|r| r.path == path)
        .unwrap();
    assert_eq!(last.header("range"), Some("bytes=60000-"));
    assert!(last.header("if-range").is_some());
    assert_eq!(
        server.body_bytes_sent(&path),
        60_000 + image.len() as u64,
        "the whole new file came after the cut"
    );
}

#[test]
fn a_resumed_download_that_fails_the_digest_check_deletes_its_partial() {
    let w = World::new();
    let image = image_bytes(100_000, 4);
    let digest = w.publish_bytes("1.0", &image);
    // A plain server: no validators, so the partial is resumed with a bare Range request,
    // which it ignores (200). Its bytes are damaged, and the check catches it.
    let server = Server::serve_dir(w.origin());
    let path = image_path(&digest);
    let mut damaged = image.clone();
    damaged[99_999] ^= 1;
    server.set_fault(&path, Fault::Body(damaged));
    let config = w.config("app.tako", &server.url(), "*", "");
    let store = w.dest().join("store");
    fs::create_dir(&store).unwrap();
    fs::write(store.join(format!("{digest}.partial")), &image[..30_000]).unwrap();
    // Kept from this very server, as its record says: resumed as it is.
    fs::write(
        store.join(format!("{digest}.partial.validator")),
        format!("\norigin {}\n", server.url()),
    )
    .unwrap();

    let o = fetch_slow(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("wrong SHA-256"), "{err}");
    assert_eq!(w.store_files(), Vec::<String>::new(), "the partial is gone");
    // The server ignored the range and sent all of its (damaged) file: the kept bytes had
    // no part in it, so it is not asked again.
    let ranges: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [Some("bytes=30000-".to_owned())]);
}

#[test]
fn partials_of_images_no_matching_entry_names_are_removed() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    let store = w.dest().join("store");
    fs::create_dir(&store).unwrap();
    let stale = "0".repeat(64);
    for name in [
        format!("{stale}.partial"),
        format!("{stale}.partial.validator"),
    ] {
        fs::write(store.join(name), b"old").unwrap();
    }

    let o = fetch_slow(&[], &[&config]);

    assert_exit(&o, 0);
    assert_eq!(w.store_files(), [d10]);
}

#[test]
fn a_symlink_planted_as_a_partial_is_never_written_through() {
    let w = World::new();
    let image = image_bytes(50_000, 5);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    let store = w.dest().join("store");
    fs::create_dir(&store).unwrap();
    let victim = w.path("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, store.join(format!("{digest}.partial"))).unwrap();

    let o = fetch_slow(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

/// Issue 23, hostile review A: a hard link planted at `store/HEX.partial` was written
/// through (appended to, truncated, made read-only). A partial with another name, or
/// another owner, is removed and replaced, never written through.
#[test]
fn a_hard_link_or_a_foreign_file_planted_as_a_partial_is_never_written_through() {
    let w = World::new();
    let image = image_bytes(50_000, 7);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    let store = w.dest().join("store");
    fs::create_dir(&store).unwrap();
    // Another user's file, and a file linked in beside it: neither may change.
    let victim = w.path("victim");
    fs::write(&victim, b"precious, and longer than nothing").unwrap();
    fs::hard_link(&victim, store.join(format!("{digest}.partial"))).unwrap();
    let secret = w.path("secret");
    fs::write(&secret, b"\"sent-as-if-range\"").unwrap();
    fs::hard_link(&secret, store.join(format!("{digest}.partial.validator"))).unwrap();
    let before = fs::metadata(&victim).unwrap();

    let o = fetch_slow(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious, and longer than nothing"
    );
    let after = fs::metadata(&victim).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(after.mode(), before.mode(), "the victim's mode changed");
    assert_eq!(after.nlink(), 1, "the planted link was not removed");
    // Nothing of the linked validator went to the server.
    assert!(
        server
            .recorded()
            .iter()
            .all(|r| r.header("if-range").is_none() && r.header("range").is_none()),
        "a planted partial was resumed"
    );
}

/// Issue 23, side by side 19 and hostile review P: a partial whose image is complete in
/// the store, and the partial of a lower matching version, are removed by the next fetch
/// that installs, not left for gc.
#[test]
fn partials_of_a_complete_image_and_of_lower_matches_are_removed_once_an_image_installs() {
    let w = World::new();
    let low = w.publish("1.0");
    let high = w.publish("1.1");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch_slow(&[], &[&config]);
    assert_exit(&o, 0);
    let store = w.dest().join("store");
    for hex in [&low, &high] {
        fs::write(store.join(format!("{hex}.partial")), b"abc").unwrap();
        fs::write(store.join(format!("{hex}.partial.validator")), b"\"v\"").unwrap();
    }

    let o = fetch_slow(&[], &[&config]);

    assert_exit(&o, 0);
    assert_eq!(w.store_files(), [high]);
}

/// Issue 23, hostile review O: when every version answers 410, one image shared by many
/// versions was asked for once per version and each was logged, with an error line naming
/// them all. A withdrawn image is asked for once and the log is summed up.
#[test]
fn withdrawn_versions_are_asked_for_once_per_image_and_summed_up() {
    let w = World::new();
    let image = image_bytes(1000, 9);
    let mut digest = String::new();
    for minor in 0..12 {
        digest = w.publish_bytes(&format!("1.{minor}"), &image);
    }
    let server = Server::serve_dir(w.origin());
    server.set_fault(&image_path(&digest), Fault::Status(410));
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch_slow(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let asked = server
        .requests()
        .iter()
        .filter(|p| **p == image_path(&digest))
        .count();
    assert_eq!(asked, 1, "the withdrawn image was asked for again");
    let name = config.display();
    assert_eq!(
        stderr(&o),
        format!(
            "tako: warning: {name}: version 1.11 was withdrawn by the publisher (410 Gone from {}{}); trying the next lower match\n\
             tako: warning: {name}: 11 more matching versions were withdrawn by the publisher (410 Gone) and passed over\n\
             tako: error: {name}: every version matching * was withdrawn by the publisher (410 Gone): 1.11, 1.10, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2 and 2 more\n\
             tako: error: 1 of 1 configs failed\n",
            server.url(),
            image_path(&digest)
        )
    );
}

/// Issue 23, hostile review L: a `Retry-After` wait was slept in full past `--max-time`
/// (a 5 s limit held the run for a minute). A wait that would pass the limit is not waited.
#[test]
fn a_retry_after_that_would_pass_max_time_is_not_waited() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.set_fault("/manifest", retry_after(60));
    let config = w.config("app.tako", &server.url(), "*", "");

    // Under the ordinary hang guard: a run that waited the 60 s fails the test there.
    let o = fetch(&["--max-time", "3", "--retries", "3"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("not retrying: the wait of 60.0 s would pass --max-time"),
        "{err}"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|p| *p == "/manifest")
            .count(),
        1
    );
}

/// Issue 23, hostile review L, the other half: under `--limit-rate`, the bytes a fast server
/// had already pushed into the socket's buffers were drained at the limited rate long past
/// `--max-time` (a 5 s limit, a 96 s run). The limiter never sleeps past the limit.
#[test]
fn limit_rate_does_not_hold_a_download_past_max_time() {
    let w = World::new();
    let image = image_bytes(4 << 20, 13);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");

    // Under the ordinary hang guard: draining what the transport buffered (a good hundred
    // KiB) at 1 KiB/s takes minutes.
    let o = fetch(
        &["--limit-rate", "1K", "--max-time", "2", "--retries", "0"],
        &[&config],
    );

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot download {}: gave up after the time limit of 2 s for this config (--max-time)",
            server.url_for(&image_path(&digest))
        )),
        "{err}"
    );
    assert_eq!(w.latest(), None);
}

/// `old` with 8 KiB rewritten in the middle: an image a delta can be made for.
fn changed(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    let at = old.len() / 2;
    new[at..at + 8192].copy_from_slice(&noise(seed, 8192));
    new
}

/// Issue 23, new user 2: a version withdrawn as docs/distributing.md said (410 for the
/// image only) cost every host a doomed delta and two warnings per version on every run,
/// forever, even with `--quiet`, and `check` kept offering it. The first run says once
/// that it was withdrawn; later runs skip it without a request or a word, and `check`
/// does not offer it.
#[test]
fn a_withdrawn_version_is_said_once_then_skipped_quietly_and_never_offered_by_check() {
    let w = World::new();
    let old = noise(1, 2 << 20);
    let d10 = w.publish_bytes("1.0", &old);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let d11 = w.publish_bytes("1.1", &changed(&old, 11));
    let d12 = w.publish_bytes("1.2", &changed(&old, 12));
    for digest in [&d11, &d12] {
        server.set_fault(&image_path(digest), Fault::Status(410));
    }
    let name = config.display();

    let o = fetch(&["--quiet"], &[&config]);

    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "tako: warning: {name}: version 1.2 was withdrawn by the publisher (410 Gone from {url}{p12}); trying the next lower match\n\
             tako: warning: {name}: version 1.1 was withdrawn by the publisher (410 Gone from {url}{p11}); trying the next lower match\n",
            url = server.url(),
            p12 = image_path(&d12),
            p11 = image_path(&d11),
        )
    );
    w.assert_latest(&d10, &old);
    // The delta was tried, and its first 410 ended it without a word.
    assert!(
        server
            .recorded()
            .iter()
            .any(|r| r.path == image_path(&d12) && r.header("range").is_some()),
        "no delta was tried"
    );

    let before = server.requests().len();
    let o = fetch(&["--quiet"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o), "");
    let asked: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(asked, ["/manifest"], "only the manifest is asked for");

    let o = run_bounded(tako_cmd().arg("check").arg(&config));
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{name}: up to date (1.0)\n"));
    assert_eq!(stderr(&o), "");

    // The record is tako's own, not a file status or gc calls unlisted.
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("unlisted"), "{}", stdout(&o));
}
