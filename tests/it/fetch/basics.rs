//! `tako fetch` against a real HTTP server on 127.0.0.1, honest and hostile.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

fn image_path(digest: &str) -> String {
    format!("/store/{digest}")
}

/// A world with versions 1.0 and 1.1 published and served over HTTP.
fn served_world() -> (World, Server, [String; 2]) {
    let w = World::new();
    let d10 = w.publish("1.0");
    let d11 = w.publish("1.1");
    let server = Server::serve_dir(w.origin());
    (w, server, [d10, d11])
}

/// What a destination must satisfy at every instant: every store file is
/// named by its digest, the manifest verifies, `latest` is absent or points
/// at a store file.
#[track_caller]
fn assert_valid_destination(w: &World) {
    for name in w.store_files() {
        let path = w.dest().join("store").join(&name);
        // Temporaries, and the bytes of a download to resume, are not installed images.
        if name.ends_with(".new") || name.contains(".partial") {
            continue;
        }
        assert_eq!(
            sha256_hex(&fs::read(&path).unwrap()),
            name,
            "store file {name}"
        );
    }
    if let Ok(bytes) = fs::read(w.dest().join("manifest")) {
        verified_entries(&bytes, TEST_PUBLIC).expect("the local manifest verifies");
    }
    if let Some(target) = w.latest() {
        let name = target
            .strip_prefix("store")
            .expect("latest points into store/");
        let file = w.dest().join("store").join(name);
        assert_eq!(
            sha256_hex(&fs::read(&file).expect("latest points at a file")),
            name.to_str().unwrap()
        );
    }
}

#[test]
fn fetches_the_vector_origin_highest_overall_and_highest_in_a_pattern() {
    let server = Server::serve_dir(vectors().join("origin"));
    let manifest = String::from_utf8(vector("origin/manifest")).unwrap();
    let digest_of = |v: &str| {
        let line = manifest
            .lines()
            .find(|l| l.starts_with(&format!("{v} ")))
            .unwrap();
        line.rsplit(' ').next().unwrap().to_string()
    };
    for (pattern, version) in [("*", "2.0.0"), ("1.*", "1.1.0")] {
        let w = World::new();
        let config = w.config("v.tako", &server.url(), pattern, "");
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 0);
        assert_eq!(
            stdout(&o),
            format!("{}: updated (none) -> {version}\n", config.display())
        );
        let digest = digest_of(version);
        let content = fs::read(vectors().join("origin/store").join(&digest)).unwrap();
        w.assert_latest(&digest, &content);
        assert_eq!(
            fs::read(w.dest().join("manifest")).unwrap(),
            vector("origin/manifest")
        );
        assert_eq!(mode(&w.dest().join("manifest")), 0o444);
    }
}

#[test]
fn fetches_into_an_empty_destination_and_sends_its_user_agent() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(w.store_files(), std::slice::from_ref(&d11));
    assert_eq!(
        server.requests(),
        ["/manifest".to_string(), image_path(&d11)]
    );
    let agent = format!("tako/{}", env!("CARGO_PKG_VERSION"));
    for request in server.recorded() {
        assert_eq!(request.header("user-agent"), Some(agent.as_str()));
    }
}

#[test]
fn fetches_into_a_destination_that_already_has_the_manifest() {
    let (w, server, [_, d11]) = served_world();
    fs::copy(w.origin().join("manifest"), w.dest().join("manifest")).unwrap();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&d11, &World::content("1.1"));
}

#[test]
fn an_image_already_in_the_store_is_not_downloaded_again() {
    let (w, server, [_, d11]) = served_world();
    fs::create_dir(w.dest().join("store")).unwrap();
    let stored = w.dest().join("store").join(&d11);
    fs::write(&stored, World::content("1.1")).unwrap();
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o444)).unwrap();
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(server.requests(), ["/manifest"]);
}

#[test]
fn a_second_run_is_up_to_date_and_downloads_only_the_manifest() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.1)\n", config.display())
    );
    assert_eq!(stderr(&o), "");
    assert_eq!(server.count(&image_path(&d11)), 1);
    assert_eq!(server.count("/manifest"), 2);
}

#[test]
fn a_newer_release_moves_latest_and_keeps_the_old_image() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "1.*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let d12 = w.publish("1.2");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated 1.1 -> 1.2\n", config.display())
    );
    w.assert_latest(&d12, &World::content("1.2"));
    let mut both = vec![d11.clone(), d12.clone()];
    both.sort();
    assert_eq!(w.store_files(), both);
    assert_eq!(
        fs::read(w.dest().join("store").join(&d11)).unwrap(),
        World::content("1.1")
    );
    assert_eq!(
        fs::read(w.dest().join("manifest")).unwrap(),
        fs::read(w.origin().join("manifest")).unwrap()
    );
}

#[test]
fn fetches_from_a_file_origin() {
    let w = World::new();
    w.publish("1.0");
    let d2 = w.publish("2.0");
    for url in [w.file_url(), format!("{}/", w.file_url())] {
        let config = w.config("app.tako", &url, "*", "");
        assert_exit(&fetch(&[], &[&config]), 0);
        w.assert_latest(&d2, &World::content("2.0"));
    }
}

#[test]
fn every_pattern_kind_selects_the_right_version() {
    let w = World::new();
    let versions = ["0.9", "1.0", "1.0.5", "1.1", "2.0-rc1", "2.0", "2.5", "3.0"];
    let digests: Vec<String> = versions.iter().map(|v| w.publish(v)).collect();
    let server = Server::serve_dir(w.origin());
    for (pattern, expected) in [
        ("*", "3.0"),
        ("1.*", "1.1"),
        ("1.0.*", "1.0.5"),
        ("2.*", "2.5"),
        ("1.0.5", "1.0.5"),
        ("1.0.5.0", "1.0.5"),
        ("1.0 <= v < 2.0", "2.0-rc1"),
        ("1.0<=v<1.1", "1.0.5"),
        ("2.0 <= v < 3", "2.5"),
    ] {
        let config = w.config("app.tako", &server.url(), pattern, "");
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 0);
        let i = versions.iter().position(|v| *v == expected).unwrap();
        w.assert_latest(&digests[i], &World::content(expected));
    }
}

#[test]
fn no_matching_version_is_reported_and_is_not_an_error() {
    let (w, server, _) = served_world();
    let config = w.config("app.tako", &server.url(), "3.*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: no version matches 3.* (available: 1.0, 1.1)\n",
            config.display()
        )
    );
    assert_eq!(w.latest(), None);
    assert!(w.store_files().is_empty());
}

/// Runs a fetch that must fail because of the origin, and checks that it
/// left no image, no temp file, and `latest` where it was.
#[track_caller]
fn assert_hostile(w: &World, config: &Path, extra_args: &[&str], message: &str) -> Output {
    let latest_before = w.latest();
    let installed = || -> Vec<String> {
        // Bytes kept to resume a download that failed on the network are no install.
        w.store_files()
            .into_iter()
            .filter(|n| !n.contains(".partial"))
            .collect()
    };
    let store_before = installed();
    // One try: what a single failure does is the point here, not the retries.
    let args: Vec<&str> = ["--retries", "0"]
        .iter()
        .chain(extra_args)
        .copied()
        .collect();
    let o = fetch(&args, &[config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("tako: error: {}: ", config.display())),
        "{err}"
    );
    assert!(err.contains(message), "expected {message:?} in {err}");
    assert_eq!(stdout(&o), "");
    assert_eq!(w.latest(), latest_before, "latest must not move");
    assert_eq!(installed(), store_before, "the store must not change");
    assert_valid_destination(w);
    o
}

#[test]
fn refuses_an_image_longer_than_signed() {
    let (w, server, [_, d11]) = served_world();
    let mut long = World::content("1.1");
    long.extend_from_slice(b"extra");
    server.set_fault(&image_path(&d11), Fault::Body(long));
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], "longer than the 21 bytes signed");
}

#[test]
fn stops_an_endless_image_with_or_without_a_length() {
    for content_length in [true, false] {
        let (w, server, [_, d11]) = served_world();
        server.set_fault(&image_path(&d11), Fault::Endless { content_length });
        let config = w.config("app.tako", &server.url(), "*", "");
        let o = assert_hostile(&w, &config, &[], "longer than the 21 bytes signed");
        assert!(stderr(&o).contains(&server.url_for(&image_path(&d11))));
    }
}

#[test]
fn refuses_an_image_shorter_than_signed() {
    let (w, server, [_, d11]) = served_world();
    server.set_fault(&image_path(&d11), Fault::Body(b"short".to_vec()));
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], "expected 21 bytes, received 5");
}

#[test]
fn refuses_a_connection_cut_before_the_signed_size() {
    let (w, server, [_, d11]) = served_world();
    server.set_fault(&image_path(&d11), Fault::Truncate { after: 4 });
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], &server.url_for(&image_path(&d11)));
}

#[test]
fn refuses_an_image_with_the_wrong_digest() {
    let (w, server, [_, d11]) = served_world();
    let forged = b"image of version 6.6\n".to_vec();
    assert_eq!(forged.len(), World::content("1.1").len());
    server.set_fault(&image_path(&d11), Fault::Body(forged.clone()));
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = assert_hostile(&w, &config, &[], "wrong SHA-256");
    let err = stderr(&o);
    assert!(err.contains(&format!("expected {d11}")), "{err}");
    assert!(
        err.contains(&format!("received {}", sha256_hex(&forged))),
        "{err}"
    );
}

#[test]
fn refuses_a_manifest_signed_by_another_key() {
    let server = Server::serve_dir(vectors().join("origin"));
    server.set_fault("/manifest", Fault::Body(vector("invalid/other-key")));
    let w = World::new();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], "signature does not verify");
    assert!(!w.dest().join("manifest").exists());
    // The only other place a configured key's manifest may be: its
    // manifest.<keyid> (docs/key-rotation.md).
    assert_eq!(
        server.requests(),
        ["/manifest", "/manifest.9ee3a79654281274"]
    );
}

#[test]
fn refuses_a_manifest_edited_after_signing() {
    let (w, server, _) = served_world();
    let edited = String::from_utf8(fs::read(w.origin().join("manifest")).unwrap())
        .unwrap()
        .replace("1.1 ", "9.9 ");
    server.set_fault("/manifest", Fault::Body(edited.into_bytes()));
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], "signature does not verify");
}

#[test]
fn refuses_an_endless_manifest() {
    for content_length in [true, false] {
        let (w, server, _) = served_world();
        server.set_fault("/manifest", Fault::Endless { content_length });
        let config = w.config("app.tako", &server.url(), "*", "");
        assert_hostile(&w, &config, &[], "larger than the limit of 8388608 bytes");
    }
}

#[test]
fn refuses_a_signed_manifest_with_a_version_beyond_u64() {
    let w = World::new();
    let content = World::content("x");
    let line = format!(
        "1.18446744073709551616 {} {}",
        content.len(),
        sha256_hex(&content)
    );
    fs::write(w.origin().join("manifest"), signed_manifest(&[line])).unwrap();
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_hostile(&w, &config, &[], "does not fit in 64 bits");
}

#[test]
fn refuses_a_manifest_that_drops_an_entry_or_changes_a_digest() {
    let (w, server, [d10, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let local = fs::read(w.dest().join("manifest")).unwrap();
    let c10 = World::content("1.0");
    let c11 = World::content("1.1");
    let dropped = signed_manifest(&[format!("1.1 {} {d11}", c11.len())]);
    let changed = signed_manifest(&[
        format!("1.0 {} {d11}", c10.len()),
        format!("1.1 {} {d11}", c11.len()),
    ]);
    let rewritten = signed_manifest(&[
        format!("1.0 {} {d10}", c10.len()),
        format!("1.1 {} {d10}", c11.len()),
        format!("1.2 {} {d11}", c11.len()),
    ]);
    for forged in [dropped, changed, rewritten] {
        server.set_fault("/manifest", Fault::Body(forged));
        assert_hostile(&w, &config, &[], "rollback");
        assert_eq!(fs::read(w.dest().join("manifest")).unwrap(), local);
    }
}

#[test]
fn reports_missing_and_failing_servers_with_status_and_url() {
    for (path_kind, status, message) in [
        ("manifest", 404, "not found (404 Not Found)"),
        ("manifest", 500, "HTTP 500"),
        ("image", 404, "not found (404 Not Found)"),
        ("image", 500, "HTTP 500"),
        ("image", 403, "HTTP 403"),
    ] {
        let (w, server, [_, d11]) = served_world();
        let path = if path_kind == "manifest" {
            "/manifest".to_string()
        } else {
            image_path(&d11)
        };
        server.set_fault(&path, Fault::Status(status));
        let config = w.config("app.tako", &server.url(), "*", "");
        let o = assert_hostile(&w, &config, &[], message);
        assert!(
            stderr(&o).contains(&server.url_for(&path)),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn gives_up_on_a_server_that_never_answers() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    server.set_fault("/manifest", Fault::Hang);
    let o = assert_hostile(&w, &config, &["--idle-timeout", "1"], "timed out");
    assert!(stderr(&o).contains(&server.url_for("/manifest")));
    server.clear_fault("/manifest");
    server.set_fault(&image_path(&d11), Fault::Stall { after: 3 });
    assert_hostile(&w, &config, &["--idle-timeout", "1"], "timed out");
}

#[test]
fn a_withdrawn_version_falls_back_to_the_next_lower_match() {
    let (w, server, [d10, d11]) = served_world();
    server.set_fault(&image_path(&d11), Fault::Status(410));
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated (none) -> 1.0\n", config.display())
    );
    assert!(stderr(&o).contains("410 Gone"), "{}", stderr(&o));
    w.assert_latest(&d10, &World::content("1.0"));
    // With every match withdrawn, nothing can be installed.
    server.set_fault(&image_path(&d10), Fault::Status(410));
    let config = w.config("app.tako", &server.url(), "1.0", "");
    fs::remove_file(w.dest().join("latest")).unwrap();
    fs::remove_file(w.dest().join("store").join(&d10)).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("withdrawn"), "{}", stderr(&o));
}

#[test]
fn init_succeeds_offline_when_a_valid_image_is_installed() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    drop(server);
    for args in [&["--init"][..], &["--init", "--no-verify"]] {
        let o = fetch(args, &[&config]);
        assert_exit(&o, 0);
        assert_eq!(stdout(&o), format!("{}: present (1.1)\n", config.display()));
        w.assert_latest(&d11, &World::content("1.1"));
    }
}

#[test]
fn init_fails_when_no_image_can_be_guaranteed() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    drop(server);
    // Nothing installed and the origin is gone.
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 1);
    assert!(w.latest().is_none());
    // An installed image that is damaged does not count.
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&d11);
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&stored, b"image of version 6.6\n").unwrap();
    let config = w.config("app.tako", "http://127.0.0.1:9", "*", "");
    drop(server);
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 1);
    // No matching version under --init is an error, not a report.
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "7.*", "");
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("no version matches 7.*"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_repairs_by_fetching_when_the_image_is_missing() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    fs::remove_file(w.dest().join("store").join(&d11)).unwrap();
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(server.count(&image_path(&d11)), 2);
}

#[test]
fn a_damaged_store_image_is_replaced_in_the_same_run() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&d11);
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&stored, b"image of version 6.6\n").unwrap();
    // --no-verify checks only the size, which is right.
    let o = fetch(&["--no-verify"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(server.count(&image_path(&d11)), 1);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("damaged"), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.1)\n", config.display())
    );
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(server.count(&image_path(&d11)), 2);
    // A wrong size is caught even with --no-verify.
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&stored, b"short").unwrap();
    assert_exit(&fetch(&["--no-verify"], &[&config]), 0);
    w.assert_latest(&d11, &World::content("1.1"));
}

#[test]
fn one_failing_config_does_not_stop_the_others() {
    let (w, server, [_, d11]) = served_world();
    let good = w.config("good.tako", &server.url(), "*", "");
    let other = World::new();
    let d_other = other.publish("5.0");
    let bad_origin = other.config("bad.tako", "http://127.0.0.1:9/nothing", "*", "");
    let third = other.config("third.tako", &other.file_url(), "*", "");
    let o = fetch(&[], &[&good, &bad_origin, &third]);
    assert_exit(&o, 1);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: updated (none) -> 1.1\n{}: updated (none) -> 5.0\n",
            good.display(),
            third.display()
        )
    );
    let err = stderr(&o);
    assert!(
        err.contains(&format!("tako: error: {}: ", bad_origin.display())),
        "{err}"
    );
    assert!(err.contains("http://127.0.0.1:9/nothing/manifest"), "{err}");
    assert!(
        err.ends_with("tako: error: 1 of 3 configs failed\n"),
        "{err}"
    );
    w.assert_latest(&d11, &World::content("1.1"));
    other.assert_latest(&d_other, &World::content("5.0"));
}

#[test]
fn config_errors_name_the_file_and_line() {
    let w = World::new();
    let cases: [(&str, String, String); 6] = [
        (
            "unknown.tako",
            "Origin=file:///x\nOrign=y\n".into(),
            ":2: unknown key 'Orign'; did you mean Origin? expected one of Origin, PublicKey, Destination, Version, Restart".into(),
        ),
        ("noeq.tako", "# c\n\nOrigin\n".into(), ":3: expected Key=Value".into()),
        (
            "twice.tako",
            "Version=1\nVersion=2\n".into(),
            ":2: Version= is given twice (first on line 1)".into(),
        ),
        (
            "missing.tako",
            format!("Origin=file:///x\nPublicKey={TEST_PUBLIC}\nVersion=*\n"),
            ": missing Destination=".into(),
        ),
        (
            "nodest.tako",
            format!(
                "Origin=file:///x\nPublicKey={TEST_PUBLIC}\nVersion=*\nDestination={}\n",
                w.path("absent").display()
            ),
            ":4: destination".into(),
        ),
        (
            "scheme.tako",
            format!("Origin=ftp://x\nPublicKey={TEST_PUBLIC}\nVersion=*\nDestination=/\n"),
            ":1: unsupported origin".into(),
        ),
    ];
    for (name, text, message) in cases {
        let path = w.path(name);
        fs::write(&path, text).unwrap();
        let o = fetch(&[], &[&path]);
        assert_exit(&o, 1);
        let expected = format!("tako: error: {}{message}", path.display());
        assert!(
            stderr(&o).starts_with(&expected),
            "{}\nexpected {expected}",
            stderr(&o)
        );
    }
    let o = fetch(&[], &[&w.path("no-such.tako")]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("no-such.tako: cannot read config"),
        "{}",
        stderr(&o)
    );
    assert!(w.store_files().is_empty());
}

#[test]
fn reads_toml_configs() {
    let (w, server, [d10, _]) = served_world();
    let path = w.path("app.toml");
    fs::write(
        &path,
        format!(
            "origin = \"{}\"\npublic_key = \"{TEST_PUBLIC}\"\ndestination = \"{}\"\nversion = \"1.0\"\n",
            server.url(),
            w.dest().display()
        ),
    )
    .unwrap();
    assert_exit(&fetch(&[], &[&path]), 0);
    w.assert_latest(&d10, &World::content("1.0"));
}

#[test]
fn refuses_a_damaged_local_manifest_naming_it() {
    let (w, server, _) = served_world();
    fs::write(w.dest().join("manifest"), vector("invalid/trailing-data")).unwrap();
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("local manifest"), "{}", stderr(&o));
    assert!(server.requests().is_empty());
}

#[test]
fn concurrent_fetches_on_one_destination_all_succeed() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let children: Vec<_> = (0..6)
        .map(|_| Fetch::new().spawn(&[], &[&config]))
        .collect();
    let mut updated = 0;
    for child in children {
        let o = child.finish();
        assert_exit(&o, 0);
        if stdout(&o).contains("updated") {
            updated += 1;
        }
    }
    assert_eq!(
        updated, 1,
        "exactly one run installs, the others find it done"
    );
    assert_eq!(server.count(&image_path(&d11)), 1);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_valid_destination(&w);
}

/// A large image, a fetch killed with SIGKILL at many points: after each kill the
/// destination is valid, and the next run completes it.
///
/// The server decides where each kill lands: it sends a given number of bytes of the
/// manifest or the image, goes silent and says so, and the run is killed then, when it has
/// asked for that file and cannot have finished. So every kill lands where it is meant to,
/// however fast or loaded the machine.
#[test]
fn a_killed_fetch_always_leaves_a_valid_destination() {
    let w = World::new();
    let small = w.publish("1.0");
    let big: Vec<u8> = (0..(24u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big_digest = w.publish_bytes("2.0", &big);
    let server = Server::serve_dir(w.origin());
    let first = w.config("first.tako", &server.url(), "1.*", "");
    assert_exit(&fetch(&[], &[&first]), 0);
    w.assert_latest(&small, &World::content("1.0"));

    let manifest = "/manifest".to_owned();
    let image = image_path(&big_digest);
    let manifest_len = fs::metadata(w.origin().join("manifest")).unwrap().len();
    // Into the manifest, then ever further into the image, up to all but its last byte.
    let kill_points = [
        (&manifest, 0),
        (&manifest, manifest_len / 2),
        (&image, 0),
        (&image, 1),
        (&image, (64 << 10) + 1),
        (&image, 1 << 20),
        (&image, 12 << 20),
        (&image, (24 << 20) - 1),
    ];
    let config = w.config("app.tako", &server.url(), "*", "");
    let mut killed_mid_download = 0;
    for (step, &(path, after)) in kill_points.iter().enumerate() {
        server.set_fault(path, Fault::Stall { after });
        let child = Fetch::new().spawn(&[], &[&config]);
        let stalls = kill_points[..=step].iter().filter(|p| p.0 == path).count();
        assert!(
            server.wait_for_stalls(path, stalls, HANG_GUARD),
            "{path} never stalled after {after} bytes"
        );
        child.kill();
        server.clear_fault(path);
        if w.store_files()
            .iter()
            .any(|n| n.ends_with(".new") || n.ends_with(".partial"))
        {
            killed_mid_download += 1;
        }
        assert_valid_destination(&w);
        let latest = w.latest().unwrap();
        assert!(
            latest == Path::new("store").join(&small)
                || latest == Path::new("store").join(&big_digest),
            "{latest:?}"
        );
    }
    assert!(
        killed_mid_download > 0,
        "no kill landed during the download"
    );
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    let stored = w.dest().join("store").join(&big_digest);
    assert_eq!(sha256_hex(&fs::read(&stored).unwrap()), big_digest);
    assert_eq!(w.latest(), Some(PathBuf::from("store").join(&big_digest)));
    assert!(!w.store_files().iter().any(|n| n.ends_with(".new")));
}

/// Regression: with one image published as 1.2.0 and 2.0.0, `--init` looked
/// only at 1.2.0, found it outside `2.*`, and went online.
#[test]
fn init_accepts_an_image_shared_by_several_versions() {
    let w = World::new();
    let content = b"the same bytes twice\n";
    let digest = w.publish_bytes("1.2.0", content);
    w.publish_bytes("2.0.0", content);
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "2.*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    drop(server);
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: present (2.0.0)\n", config.display())
    );
    w.assert_latest(&digest, content);
}
