//! `Origin=` repeated: mirrors tried in order, each skipped with a warning naming it when
//! it is down, stale (a rollback) or lying (bytes that fail the digest check).

use crate::support;

use std::fs;
use std::path::PathBuf;

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

/// Runs here retry after 5 ms rather than after the default backoff; they are slow on
/// purpose all the same, hence `fetch_slow` and its longer hang guard.
const QUICK_RETRIES: [&str; 2] = ["--retry-delay-ms", "5"];

fn image_path(digest: &str) -> String {
    format!("/store/{digest}")
}

/// A copy of the publisher's directory as it is now, served on its own.
fn snapshot(w: &World, name: &str) -> PathBuf {
    let dir = w.path(name);
    fs::create_dir_all(dir.join("store")).unwrap();
    fs::copy(w.origin().join("manifest"), dir.join("manifest")).unwrap();
    for file in fs::read_dir(w.origin().join("store")).unwrap() {
        let file = file.unwrap();
        fs::copy(file.path(), dir.join("store").join(file.file_name())).unwrap();
    }
    dir
}

/// A config for `w`'s destination that lists `origins` in order.
fn mirrored_config(w: &World, origins: &[String]) -> PathBuf {
    let extra: String = origins[1..]
        .iter()
        .map(|o| format!("Origin={o}\n"))
        .collect();
    w.config("app.tako", &origins[0], "*", &extra)
}

#[test]
fn a_dead_a_stale_and_a_lying_mirror_before_a_good_one() {
    let w = World::new();
    w.publish("1.0");
    let stale = Server::serve_dir(snapshot(&w, "stale"));
    let d11 = w.publish("1.1");
    let good = Server::serve_dir(w.origin());
    // The host has seen 1.1, so a mirror that still serves only 1.0 is a rollback.
    let first = w.config("first.tako", &good.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&first]), 0);
    let d12 = w.publish("1.2");
    // The lying mirror has the current manifest but other bytes under 1.2's name.
    let lying_dir = snapshot(&w, "lying");
    let forged = b"image of version 6.6\n";
    assert_eq!(forged.len(), World::content("1.2").len());
    fs::write(lying_dir.join("store").join(&d12), forged).unwrap();
    let lying = Server::serve_dir(&lying_dir);
    let dead_url = {
        let dead = Server::serve_dir(w.origin());
        dead.url()
    };
    let before = good.requests().len();
    let config = mirrored_config(
        &w,
        &[dead_url.clone(), stale.url(), lying.url(), good.url()],
    );

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated 1.1 -> 1.2\n", config.display())
    );
    w.assert_latest(&d12, &World::content("1.2"));
    let err = stderr(&o);
    // The manifest: the dead mirror is down, the stale one is a rollback; the lying one
    // serves the current manifest, which verifies.
    assert!(
        err.contains(&format!(
            "skipping origin {dead_url}: cannot download {dead_url}/manifest"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "skipping origin {}: remote manifest {}/manifest lacks published entries",
            stale.url(),
            stale.url()
        )),
        "{err}"
    );
    // The image: the dead mirror is down, the stale one lacks it, the lying one's bytes
    // fail the check, and the good one serves it.
    assert!(
        err.contains(&format!(
            "skipping origin {dead_url}: cannot download {dead_url}/store/{d12}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "skipping origin {}: {}/store/{d12} not found",
            stale.url(),
            stale.url()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "skipping origin {}: image {}/store/{d12} has the wrong SHA-256",
            lying.url(),
            lying.url()
        )),
        "{err}"
    );
    // Each live mirror is also asked for the image's chunk index (for a delta update), which
    // only the good one has; its tiny image shares no chunk with 1.1, so it comes whole.
    let index = format!("/index/{d12}");
    assert_eq!(stale.requests(), ["/manifest", &index, &image_path(&d12)]);
    assert_eq!(lying.requests(), ["/manifest", &index, &image_path(&d12)]);
    assert_eq!(good.requests()[before..], [index.clone(), image_path(&d12)]);
    assert_eq!(w.store_files(), {
        let mut both = vec![d11, d12];
        both.sort();
        both
    });
}

#[test]
fn when_every_mirror_fails_the_error_says_so_and_nothing_changes() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let a = Server::serve_dir(w.origin());
    let b = Server::serve_dir(w.origin());
    let first = w.config("first.tako", &a.url(), "*", "");
    assert_exit(&fetch_slow(&QUICK_RETRIES, &[&first]), 0);
    w.publish("1.1");
    a.set_fault("/manifest", Fault::Status(403));
    b.set_fault("/manifest", Fault::Status(404));
    let config = mirrored_config(&w, &[a.url(), b.url()]);

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("none of the 2 origins served a usable manifest"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}/manifest not found", b.url())),
        "{err}"
    );
    assert!(
        err.contains(&format!("skipping origin {}: HTTP 403", a.url())),
        "{err}"
    );
    w.assert_latest(&d10, &World::content("1.0"));
    // Answers, not hiccups: each mirror was asked once.
    assert_eq!(a.count("/manifest"), 2);
    assert_eq!(b.count("/manifest"), 1);
}

#[test]
fn an_image_counts_as_withdrawn_only_if_every_origin_says_so() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let d11 = w.publish("1.1");
    let a = Server::serve_dir(w.origin());
    let b = Server::serve_dir(w.origin());
    a.set_fault(&image_path(&d11), Fault::Status(410));
    let config = mirrored_config(&w, &[a.url(), b.url()]);

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(b.count(&image_path(&d11)), 1);

    // Now both withdraw it: the next lower version is taken.
    fs::remove_file(w.dest().join("store").join(&d11)).unwrap();
    b.set_fault(&image_path(&d11), Fault::Status(410));
    let o = fetch_slow(&QUICK_RETRIES, &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d10, &World::content("1.0"));
    let err = stderr(&o);
    assert!(
        err.contains("version 1.1 was withdrawn by the publisher"),
        "{err}"
    );
}

#[test]
fn mirrors_may_be_listed_as_a_toml_array() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let good = Server::serve_dir(w.origin());
    // A mirror whose manifest is missing (404) but which has the image.
    let down = Server::serve_dir(w.origin());
    down.set_fault("/manifest", Fault::Status(404));
    let config = w.path("app.toml");
    fs::write(
        &config,
        format!(
            "origin = [\"{}\", \"{}\"]\npublic_key = \"{TEST_PUBLIC}\"\ndestination = \"{}\"\nversion = \"*\"\n",
            down.url(),
            good.url(),
            w.dest().display()
        ),
    )
    .unwrap();
    let o = fetch_slow(&QUICK_RETRIES, &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d10, &World::content("1.0"));
    // The manifest from the second, the image from the first that serves it.
    assert_eq!(down.requests(), ["/manifest", &image_path(&d10)]);
    assert_eq!(good.requests(), ["/manifest"]);
}

/// The publisher's directory served again, with other bytes of the same length under the
/// name of the image `digest`.
fn forging_mirror(w: &World, digest: &str, forged: &[u8]) -> Server {
    let dir = snapshot(w, "forging");
    let path = dir.join("store").join(digest);
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, forged).unwrap();
    Server::serve_dir(&dir)
}

/// Issue 23, hostile review C: a first mirror that sent garbage and hung up left a partial
/// that the honest mirror was then asked only the tail of; the result failed its check, on
/// every run, so the image never installed. Bytes another mirror sent are kept only as far
/// as the honest mirror's chunk index confirms them (here: not at all).
#[test]
fn garbage_a_mirror_sent_before_hanging_up_is_not_finished_by_the_next_mirror() {
    let w = World::new();
    let image = noise(23, 300_000);
    let digest = w.publish_bytes("1.0", &image);
    let hostile = forging_mirror(&w, &digest, &noise(66, image.len()));
    hostile.set_fault(&image_path(&digest), Fault::Truncate { after: 150_000 });
    // An honest mirror that serves ranges, as a tail of the garbage would be asked of it.
    let honest = Server::serve_dir(w.origin());
    honest.enable_http_features();
    let config = mirrored_config(&w, &[hostile.url(), honest.url()]);

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let ranges: Vec<Option<String>> = honest
        .recorded()
        .into_iter()
        .filter(|r| r.path == image_path(&digest))
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [None], "the honest mirror sent all of the image");
    assert_eq!(honest.body_bytes_sent(&image_path(&digest)), 300_000);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{digest}.partial came from {}; {} confirms 0 of them",
            hostile.url(),
            honest.url()
        )),
        "{err}"
    );
    assert_eq!(w.store_files(), [digest]);
}

/// The other side of review C: bytes an honest mirror sent before the connection broke
/// are confirmed by the next mirror's chunk index, chunk by chunk, and only the rest is
/// asked of it.
#[test]
fn bytes_a_mirror_sent_before_hanging_up_are_resumed_from_the_next_as_far_as_its_index_confirms() {
    let w = World::new();
    let image = noise(24, 300_000);
    let digest = w.publish_bytes("1.0", &image);
    let first = Server::serve_dir(w.origin());
    first.set_fault(&image_path(&digest), Fault::Truncate { after: 150_000 });
    let second = Server::serve_dir(w.origin());
    second.enable_http_features();
    let config = mirrored_config(&w, &[first.url(), second.url()]);

    let o = fetch_slow(&QUICK_RETRIES, &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let asked: Vec<_> = second
        .recorded()
        .into_iter()
        .filter(|r| r.path == image_path(&digest))
        .collect();
    assert_eq!(asked.len(), 1);
    let from: u64 = asked[0]
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a resume: {:?}", asked[0]));
    // Up to the last whole chunk of the kept bytes: at most one chunk (64 KiB) less.
    assert!(from <= 150_000 && from > 150_000 - 65_536, "{from}");
    assert_eq!(second.body_bytes_sent(&image_path(&digest)), 300_000 - from);
    assert_eq!(second.count(&format!("/index/{digest}")), 1);
}

/// Moves the clock of `DEST/manifest.seen` back by `seconds`, as if that long had passed.
fn age_seen_record(w: &World, seconds: u64) {
    let path = w.dest().join("manifest.seen");
    let text = fs::read_to_string(&path).unwrap();
    let aged: String = text
        .lines()
        .map(|line| match line.strip_prefix("since ") {
            Some(since) => format!("since {}\n", since.parse::<u64>().unwrap() - seconds),
            None => format!("{line}\n"),
        })
        .collect();
    fs::remove_file(&path).unwrap();
    fs::write(&path, aged).unwrap();
}

/// Issue 23, hostile review D: a stale (or hostile) first mirror that keeps serving an old,
/// valid manifest froze hosts on it without a word, and `check` said "up to date" while
/// the next mirror had a newer release. Once the first mirror's manifest has not changed
/// for `MirrorStaleAfter=`, the next one is asked too, a newer manifest there is taken, and
/// the disagreement is warned about, naming both mirrors and what each serves.
#[test]
fn a_first_mirror_frozen_on_an_old_manifest_is_found_out_once_it_is_unchanged_for_mirror_stale_after()
 {
    let w = World::new();
    let d10 = w.publish("1.0");
    let stale = Server::serve_dir(snapshot(&w, "stale"));
    let d11 = w.publish("1.1");
    let good = Server::serve_dir(w.origin());
    let config = w.config(
        "app.tako",
        &stale.url(),
        "*",
        &format!("Origin={}\nMirrorStaleAfter=1d\n", good.url()),
    );
    let name = config.display();
    let check = || run_bounded(tako_cmd().arg("check").arg(&config));

    // Within the bound, the first mirror's word stands and the second is not asked.
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    w.assert_latest(&d10, &World::content("1.0"));
    assert_eq!(good.count("/manifest"), 0);
    let o = check();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{name}: up to date (1.0)\n"));

    // Two days later, with the first mirror still serving the same manifest.
    age_seen_record(&w, 2 * 24 * 60 * 60);
    let says = |o: &std::process::Output| {
        let err = stderr(o);
        let want = format!(
            "tako: warning: {name}: origins disagree: {} has served the same manifest for 2 days (1 version, the highest 1.0",
            stale.url()
        );
        assert!(err.starts_with(&want), "{err}");
        let want = format!(
            "but {} serves a newer one (2 versions, the highest 1.1",
            good.url()
        );
        assert!(err.contains(&want), "{err}");
        assert_eq!(err.matches("origins disagree").count(), 1, "{err}");
    };
    let o = check();
    assert_exit(&o, 100);
    assert_eq!(stdout(&o), format!("{name}: update available 1.0 -> 1.1\n"));
    says(&o);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{name}: updated 1.0 -> 1.1\n"));
    says(&o);
    w.assert_latest(&d11, &World::content("1.1"));

    // From now on the first mirror's manifest is a rollback to this host, and says so.
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{name}: up to date (1.1)\n"));
    assert!(
        stderr(&o).contains(&format!("skipping origin {}: remote manifest", stale.url())),
        "{}",
        stderr(&o)
    );
}
