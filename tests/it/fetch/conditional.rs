//! Conditional polls: the validators of the last manifest received are kept in
//! `DEST/manifest.validators` and sent with the next poll, and a 304 transfers no manifest.
//! Against a real nginx, and against the fault-injecting server for the rest.

use crate::support;

use std::fs;

use support::http_server::{Fault, Server};
use support::nginx::Nginx;
use support::origin::World;
use support::tako::*;

/// Runs here retry after 5 ms rather than after the default backoff; they are slow on
/// purpose all the same, hence `fetch_slow` and its longer hang guard.
const QUICK_RETRIES: [&str; 2] = ["--retry-delay-ms", "5"];

/// Sets a file's mtime an hour back, as for a file published earlier.
fn backdate(path: &std::path::Path) {
    let o = run_bounded(
        std::process::Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(path),
    );
    assert_exit(&o, 0);
}

#[test]
fn a_poll_when_nothing_changed_transfers_no_manifest_body() {
    let w = World::new();
    let d10 = w.publish("1.0");
    // Published a while ago: a Last-Modified in the second of the response is no
    // validator (see the same-second test below).
    backdate(&w.origin().join("manifest"));
    let nginx = Nginx::serve_dir(&w.origin());
    let config = w.config("app.tako", &nginx.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    let manifest = fs::read(w.dest().join("manifest")).unwrap();
    let validators = fs::read_to_string(w.dest().join("manifest.validators")).unwrap();
    assert!(
        validators.contains(&format!("url {}/manifest\n", nginx.url())),
        "{validators}"
    );
    assert_eq!(mode(&w.dest().join("manifest.validators")), 0o444);

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.0)\n", config.display())
    );
    let records = nginx.wait_records(3);
    let polls: Vec<_> = records.iter().filter(|r| r.uri == "/manifest").collect();
    assert_eq!(polls.len(), 2);
    assert_eq!(polls[0].if_none_match, None);
    assert_eq!(
        (polls[0].status, polls[0].body_bytes_sent),
        (200, manifest.len() as u64)
    );
    // nginx's log escapes the quotes of the entity tag.
    let etag = polls[1]
        .if_none_match
        .as_deref()
        .expect("If-None-Match sent")
        .replace("\\x22", "\"");
    assert!(
        validators.contains(&format!("etag {etag}\n")),
        "{etag} {validators}"
    );
    assert!(polls[1].if_modified_since.is_some());
    assert_eq!(polls[1].status, 304);
    assert_eq!(polls[1].body_bytes_sent, 0);
    assert_eq!(fs::read(w.dest().join("manifest")).unwrap(), manifest);
    w.assert_latest(&d10, &World::content("1.0"));
}

#[test]
fn a_changed_manifest_is_downloaded_whole_and_its_new_validators_kept() {
    let w = World::new();
    w.publish("1.0");
    let nginx = Nginx::serve_dir(&w.origin());
    let config = w.config("app.tako", &nginx.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    let before = fs::read_to_string(w.dest().join("manifest.validators")).unwrap();
    let d11 = w.publish("1.1");

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(
        fs::read(w.dest().join("manifest")).unwrap(),
        fs::read(w.origin().join("manifest")).unwrap()
    );
    let records = nginx.wait_records(4);
    let poll = records.iter().rfind(|r| r.uri == "/manifest").unwrap();
    assert!(poll.if_none_match.is_some());
    assert_eq!(poll.status, 200);
    let after = fs::read_to_string(w.dest().join("manifest.validators")).unwrap();
    assert_ne!(
        after, before,
        "the validators of the new manifest replace the old"
    );
}

#[test]
fn a_server_without_validators_is_polled_as_before() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    let polls: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/manifest")
        .collect();
    assert_eq!(polls.len(), 2);
    for poll in polls {
        assert_eq!(poll.header("if-none-match"), None);
        assert_eq!(poll.header("if-modified-since"), None);
    }
    assert!(!w.dest().join("manifest.validators").exists());
}

#[test]
fn validators_are_sent_only_to_the_mirror_that_served_the_manifest() {
    let w = World::new();
    w.publish("1.0");
    let first = Server::serve_dir(w.origin());
    let second = Server::serve_dir(w.origin());
    first.enable_http_features();
    second.enable_http_features();
    first.set_fault_sequence("/manifest", vec![Fault::Status(503)]);
    let config = w.config(
        "app.tako",
        &first.url(),
        "*",
        &format!("Origin={}\n", second.url()),
    );
    // The first mirror fails this once, so the second serves the manifest.
    assert_exit(&fetch_slow(&["--retries", "0"], &[&config]), 0);
    let validators = fs::read_to_string(w.dest().join("manifest.validators")).unwrap();
    assert!(validators.contains(&second.url()), "{validators}");

    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);

    // The first mirror knows nothing of the second's validators: an ordinary GET, which
    // it now answers, and whose validators are kept from then on.
    let asked = first
        .recorded()
        .into_iter()
        .rfind(|r| r.path == "/manifest")
        .unwrap();
    assert_eq!(asked.header("if-none-match"), None);
    assert_eq!(second.count("/manifest"), 1);
    let validators = fs::read_to_string(w.dest().join("manifest.validators")).unwrap();
    assert!(validators.contains(&first.url()), "{validators}");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    let asked = first
        .recorded()
        .into_iter()
        .rfind(|r| r.path == "/manifest")
        .unwrap();
    assert!(asked.header("if-none-match").is_some());
    assert_eq!(
        first.body_bytes_sent("/manifest"),
        fs::read(w.dest().join("manifest")).unwrap().len() as u64
    );
}

#[test]
fn validators_of_another_manifest_are_not_sent() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    // The host's copy is replaced behind tako's back (by an older tako, a restore): the
    // kept validators no longer describe it, and a 304 must not vouch for it.
    let other = World::new();
    other.publish("0.9");
    fs::remove_file(w.dest().join("manifest")).unwrap();
    fs::copy(other.origin().join("manifest"), w.dest().join("manifest")).unwrap();

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 1);
    assert!(stderr(&o).contains("rollback"), "{}", stderr(&o));
    let last = server
        .recorded()
        .into_iter()
        .rfind(|r| r.path == "/manifest")
        .unwrap();
    assert_eq!(last.header("if-none-match"), None);
}

/// Issue 23, side by side 18: with a server that sends only `Last-Modified` (one-second
/// dates, as `python3 -m http.server`), two publishes in the same second with a poll in
/// between made every later poll a 304: the host missed the second release for good. A
/// date in the second of the response is not kept as a validator.
#[test]
fn a_last_modified_in_the_second_of_the_response_is_no_validator() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.serve_same_second_dates();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&config]), 0);
    assert!(!w.dest().join("manifest.validators").exists());

    // The second publish lands in the same second: the manifest's mtime does not change.
    let manifest = w.origin().join("manifest");
    let mtime = fs::metadata(&manifest).unwrap().modified().unwrap();
    let d11 = w.publish("1.1");
    fs::File::options()
        .write(true)
        .open(&manifest)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    let polls: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/manifest")
        .collect();
    assert!(
        polls
            .iter()
            .all(|p| p.header("if-modified-since").is_none())
    );
}
