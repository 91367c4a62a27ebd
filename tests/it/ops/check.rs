//! `tako check`: is an update waiting? Exit 0, 100 or 1, and nothing on disk changes.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::http_server::{Fault, Server};
use support::origin::World;
use support::snapshot::snapshot;
use support::tako::*;

/// `tako ARGS CONFIGS…` under the hang guard.
fn run(args: &[&str], configs: &[&Path]) -> Output {
    run_bounded(tako_cmd().args(args).args(configs))
}

fn json_records(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// 1.0 published and installed from an HTTP origin.
fn installed() -> (World, Server, PathBuf, String) {
    let w = World::new();
    let d10 = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "1.*", "");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    (w, server, config, d10)
}

#[test]
fn check_exits_0_when_up_to_date_and_changes_nothing() {
    let (w, server, config, d10) = installed();
    let before = snapshot(&w.dest());
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.0)\n", config.display())
    );
    assert_eq!(stderr(&o), "");
    assert_eq!(snapshot(&w.dest()), before, "check changed the destination");

    let o = run(&["check", "--json"], &[&config]);
    assert_exit(&o, 0);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "up-to-date");
    assert_eq!(r["from"], "1.0");
    assert_eq!(r["to"], "1.0");
    assert_eq!(r["digest"], d10.as_str());
    assert_eq!(r["error"], Value::Null);
    assert_eq!(server.count("/manifest"), 3);
}

#[test]
fn check_exits_100_when_an_update_is_available_and_downloads_and_writes_nothing() {
    let (w, server, config, _) = installed();
    let d11 = w.publish("1.1");
    // A newer manifest, and an image tako must not ask for.
    let before = snapshot(&w.dest());
    let requests = server.requests().len();

    let o = run(&["check"], &[&config]);
    assert_exit(&o, 100);
    assert_eq!(
        stdout(&o),
        format!("{}: update available 1.0 -> 1.1\n", config.display())
    );
    assert_eq!(snapshot(&w.dest()), before, "check changed the destination");
    assert_eq!(server.requests()[requests..], ["/manifest".to_string()]);

    let o = run(&["check", "--json"], &[&config]);
    assert_exit(&o, 100);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "update-available");
    assert_eq!(r["from"], "1.0");
    assert_eq!(r["to"], "1.1");
    assert_eq!(r["digest"], d11.as_str());
    assert_eq!(r["size"], World::content("1.1").len());
    assert_eq!(snapshot(&w.dest()), before);

    // The fetch that follows does what check announced.
    let o = run(&["fetch"], &[&config]);
    assert_eq!(
        stdout(&o),
        format!("{}: updated 1.0 -> 1.1\n", config.display())
    );
}

#[test]
fn check_on_an_empty_destination_announces_the_first_install_and_creates_nothing() {
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let before = snapshot(&w.dest());
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 100);
    assert_eq!(
        stdout(&o),
        format!("{}: update available (none) -> 1.0\n", config.display())
    );
    assert_eq!(snapshot(&w.dest()), before);
    assert!(!w.dest().join("manifest").exists());
}

#[test]
fn check_exits_1_when_any_config_fails_even_if_another_has_an_update() {
    let (w, server, config, _) = installed();
    w.publish("1.1");
    let other = World::new();
    other.publish("1.0");
    let other_server = Server::serve_dir(other.origin());
    let failing = other.config("down.tako", &other_server.url(), "*", "");
    other_server.set_fault("/manifest", Fault::Status(500));
    let before = (snapshot(&w.dest()), snapshot(&other.dest()));

    let o = run(&["check"], &[&failing, &config]);
    assert_exit(&o, 1);
    assert_eq!(
        stdout(&o),
        format!("{}: update available 1.0 -> 1.1\n", config.display())
    );
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: {}: HTTP 500 Internal Server Error from {}/manifest",
            failing.display(),
            other_server.url()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("tako: error: 1 of 2 configs failed\n"),
        "{err}"
    );
    assert_eq!((snapshot(&w.dest()), snapshot(&other.dest())), before);

    let o = run(&["check", "--json"], &[&failing, &config]);
    assert_exit(&o, 1);
    let records = json_records(&o);
    assert_eq!(records[0]["outcome"], "failed");
    assert!(
        records[0]["error"].as_str().unwrap().contains("HTTP 500"),
        "{}",
        records[0]
    );
    assert_eq!(records[1]["outcome"], "update-available");
    drop(server);
}

#[test]
fn check_refuses_a_rollback_exactly_as_fetch_does() {
    let (w, server, config, _) = installed();
    let old_manifest = fs::read(w.origin().join("manifest")).unwrap();
    w.publish("1.1");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    // A stale mirror serves the manifest from before 1.1.
    server.set_fault("/manifest", Fault::Body(old_manifest));
    let before = snapshot(&w.dest());
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("refusing it as a possible rollback"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(snapshot(&w.dest()), before);
}

#[test]
fn check_refuses_a_manifest_signed_by_another_key() {
    let (w, server, config, _) = installed();
    let mut forged = fs::read(w.origin().join("manifest")).unwrap();
    // Flip a byte of the signature line.
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    server.set_fault("/manifest", Fault::Body(forged));
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("is invalid"), "{}", stderr(&o));
    // The manifest.<keyid> fallback is tried, as fetch tries it.
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("/manifest.")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn check_reports_no_match_in_fetchs_words_and_exits_0() {
    let (w, server, _, _) = installed();
    let config = w.config("three.tako", &server.url(), "3.*", "");
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: no version matches 3.* (available: 1.0)\n",
            config.display()
        )
    );
    let o = run(&["check", "--json"], &[&config]);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "no-match");
    assert_eq!(r["pattern"], "3.*");
    assert_eq!(r["published"], serde_json::json!(["1.0"]));
    assert_eq!(r["from"], "1.0");
    assert_eq!(r["to"], Value::Null);

    let empty = World::new();
    let server = Server::serve_dir(empty.origin());
    server.set_fault("/manifest", Fault::Body(signed_manifest(&[])));
    let config = empty.config("empty.tako", &server.url(), "*", "");
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: no version matches * (no versions are published)\n",
            config.display()
        )
    );
}

/// A manifest with these entry lines signed by the key made from `seed`, and that key's
/// public half.
fn signed_by(seed: &[u8; 32], lines: &[&str]) -> (Vec<u8>, String) {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let mut body = String::from("Tako Manifest 1\n\n");
    for line in lines {
        body.push_str(line);
        body.push('\n');
    }
    body.push('\n');
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = b64.encode(key.sign(body.as_bytes()).to_bytes());
    let public = b64.encode(key.verifying_key().to_bytes());
    (format!("{body}{signature}\n").into_bytes(), public)
}

#[test]
fn check_after_the_key_was_removed_warns_once_and_still_refuses_rollbacks() {
    let (w, server, config, d10) = installed();
    let d11 = w.publish("1.1");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    let d12 = w.publish("1.2");
    let line = |v: &str, d: &str| format!("{v} {} {d}", World::content(v).len());
    let seed = b"another-key-for-the-check-tests!";
    // The config now trusts only the new key; the local copy is signed by the old one.
    let (_, public) = signed_by(seed, &[]);
    fs::write(
        &config,
        fs::read_to_string(&config)
            .unwrap()
            .replace(TEST_PUBLIC, &public),
    )
    .unwrap();
    let before = snapshot(&w.dest());
    let warning = "is not signed by any configured key";

    // A validly signed manifest that lacks 1.1, which this host has seen.
    let (old, _) = signed_by(seed, &[&line("1.0", &d10)]);
    server.set_fault("/manifest", Fault::Body(old));
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refusing it as a possible rollback"),
        "{}",
        stderr(&o)
    );

    let (new, _) = signed_by(
        seed,
        &[&line("1.0", &d10), &line("1.1", &d11), &line("1.2", &d12)],
    );
    server.set_fault("/manifest", Fault::Body(new));
    let o = run(&["check"], &[&config]);
    assert_exit(&o, 100);
    assert_eq!(
        stdout(&o),
        format!("{}: update available 1.1 -> 1.2\n", config.display())
    );
    assert_eq!(stderr(&o).matches(warning).count(), 1, "{}", stderr(&o));
    assert_eq!(snapshot(&w.dest()), before, "check changed the destination");
}

/// Issue 23, new user 10: `tako check` had no time bounds, so a stalled origin held it
/// (and a script waiting on it) for as long as the server kept the connection open.
#[test]
fn check_gives_up_on_a_stalled_origin_within_its_time_bounds() {
    let (w, server, config, _) = installed();
    w.publish("1.1");
    server.set_fault("/manifest", Fault::Stall { after: 10 });
    // Each run is under the hang guard: waiting on the stall would fail the test there.
    let o = run(&["check", "--idle-timeout", "2"], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no data"), "{}", stderr(&o));

    let o = run(
        &["check", "--max-time", "2", "--idle-timeout", "60"],
        &[&config],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("--max-time"), "{}", stderr(&o));

    let o = run(
        &["check", "--speed-limit", "100000", "--speed-time", "2"],
        &[&config],
    );
    assert_exit(&o, 1);
}
