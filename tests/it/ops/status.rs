//! `tako status`: what a destination holds, offline, as text and as JSON.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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

/// Makes a store file writable and gives it `content`.
fn overwrite(path: &Path, content: &[u8]) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(path, content).unwrap();
}

/// 1.1 (whose bytes were also published as 1.1-b) installed from an HTTP origin that also
/// has 1.0, and 1.2 listed in the local manifest but not installed (its download failed).
fn healthy() -> (World, Server, std::path::PathBuf, [String; 3]) {
    let w = World::new();
    let d10 = w.publish("1.0");
    let d11 = w.publish_bytes("1.1-b", &World::content("1.1"));
    w.publish("1.1");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "1.*", "");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    let d12 = w.publish("1.2");
    server.set_fault(&format!("/store/{d12}"), Fault::Status(500));
    assert_exit(&run(&["fetch", "--retries", "0"], &[&config]), 1);
    (w, server, config, [d10, d11, d12])
}

#[test]
fn status_of_a_healthy_destination_shows_the_installed_image_offline_and_exits_0() {
    let (w, server, config, [_, d11, _]) = healthy();
    fs::write(w.dest().join("restart-pending"), "app.service\n").unwrap();
    let requests = server.requests().len();
    let before = snapshot(&w.dest());

    let o = run(&["status"], &[&config]);
    assert_exit(&o, 0);
    let name = config.display().to_string();
    let size = World::content("1.1").len();
    let expected = [
        format!("{name}: installed 1.1, intact (size checked)"),
        format!("{name}:   origin {}, pattern 1.*", server.url()),
        format!("{name}:   destination {}", w.dest().display()),
        format!("{name}:   image store/{d11}, {size} bytes"),
        format!("{name}:   published as 1.1, 1.1-b"),
        format!("{name}:   newer in the local manifest: 1.2"),
        format!("{name}:   store: 1 image, 1 file, {size} bytes"),
        format!("{name}:     store/{d11} 1.1, 1.1-b, {size} bytes, latest"),
        format!("{name}:   restart pending: app.service"),
    ];
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), expected);
    assert_eq!(stderr(&o), "");
    assert_eq!(server.requests().len(), requests, "status went online");
    assert_eq!(
        snapshot(&w.dest()),
        before,
        "status changed the destination"
    );

    let o = run(&["status", "--json", "--verify"], &[&config]);
    assert_exit(&o, 0);
    let records = json_records(&o);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["config"], name.as_str());
    assert_eq!(r["outcome"], "intact");
    assert_eq!(r["version"], "1.1");
    assert_eq!(r["versions"], serde_json::json!(["1.1", "1.1-b"]));
    assert_eq!(r["digest"], d11.as_str());
    assert_eq!(r["size"], size);
    assert_eq!(r["verified"], true);
    assert_eq!(r["matches_pattern"], true);
    assert_eq!(r["problem"], Value::Null);
    assert_eq!(r["newer"], serde_json::json!(["1.2"]));
    assert_eq!(r["store_bytes"], size);
    assert_eq!(r["store"][0]["file"], d11.as_str());
    assert_eq!(r["store"][0]["latest"], true);
    assert_eq!(r["restart_pending"], serde_json::json!(["app.service"]));
    assert_eq!(r["origin"], server.url().as_str());
    assert_eq!(r["error"], Value::Null);
    assert_eq!(snapshot(&w.dest()), before);
}

#[test]
fn status_reports_an_image_of_the_wrong_size_as_damaged_and_exits_1() {
    let (w, _server, config, [_, d11, _]) = healthy();
    overwrite(&w.dest().join("store").join(&d11), b"short");
    let o = run(&["status"], &[&config]);
    assert_exit(&o, 1);
    let first = stdout(&o).lines().next().unwrap().to_string();
    let expected_size = World::content("1.1").len();
    assert_eq!(
        first,
        format!(
            "{}: installed 1.1, damaged (size 5 bytes, expected {expected_size} bytes)",
            config.display()
        )
    );
    assert_eq!(
        stderr(&o),
        "tako: error: 1 of 1 configs have no intact installed image\n"
    );
    let o = run(&["status", "--json"], &[&config]);
    assert_exit(&o, 1);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "damaged");
    assert_eq!(
        r["problem"],
        format!("size 5 bytes, expected {expected_size} bytes").as_str()
    );
}

#[test]
fn status_verify_finds_wrong_bytes_of_the_right_size() {
    let (w, _server, config, [_, d11, _]) = healthy();
    let mut forged = World::content("1.1");
    forged[0] ^= 1;
    overwrite(&w.dest().join("store").join(&d11), &forged);

    // The size is right: only --verify can tell.
    assert_exit(&run(&["status"], &[&config]), 0);
    let o = run(&["status", "--verify"], &[&config]);
    assert_exit(&o, 1);
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!(
            "{}: installed 1.1, damaged (SHA-256 {}, expected {d11})",
            config.display(),
            sha256_hex(&forged)
        )),
        "{first}"
    );
}

#[test]
fn status_says_when_the_image_latest_points_at_is_missing() {
    let (w, _server, config, [_, d11, _]) = healthy();
    fs::remove_file(w.dest().join("store").join(&d11)).unwrap();
    let o = run(&["status", "--json"], &[&config]);
    assert_exit(&o, 1);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "missing");
    assert_eq!(r["version"], "1.1");
}

#[test]
fn status_of_an_empty_destination_says_nothing_is_installed_and_exits_1() {
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let before = snapshot(&w.dest());
    let o = run(&["status"], &[&config]);
    assert_exit(&o, 1);
    let name = config.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{name}: nothing installed (no latest)\n{name}:   origin {}, pattern *\n{name}:   destination {}\n{name}:   store: 0 images, 0 files, 0 bytes\n",
            w.file_url(),
            w.dest().display()
        )
    );
    let o = run(&["status", "--json"], &[&config]);
    assert_exit(&o, 1);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "not-installed");
    assert_eq!(r["version"], Value::Null);
    assert_eq!(r["store"], serde_json::json!([]));
    assert_eq!(
        snapshot(&w.dest()),
        before,
        "status wrote to the destination"
    );
}

#[test]
fn status_describes_every_config_and_fails_if_any_is_not_intact() {
    let (w, _server, good, _) = healthy();
    let empty = World::new();
    let bare = empty.config("bare.tako", &empty.file_url(), "*", "");
    let broken = w.config("broken.tako", &w.file_url(), "*", "Keep=0\n");

    let o = run(&["status", "--json"], &[&good, &bare, &broken]);
    assert_exit(&o, 1);
    let records = json_records(&o);
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["intact", "not-installed", "failed"]);
    let error = format!("{}:5: Keep= must be a whole number", broken.display());
    assert!(
        records[2]["error"].as_str().unwrap().starts_with(&error),
        "{}",
        records[2]
    );
    // Errors go to standard error as text too.
    assert!(
        stderr(&o).contains(&format!("tako: error: {error}")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).ends_with("tako: error: 2 of 3 configs have no intact installed image\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn status_never_follows_a_symlink_or_opens_a_fifo_planted_as_the_installed_image() {
    let (w, _server, config, [_, d11, _]) = healthy();
    let stored = w.dest().join("store").join(&d11);
    // A link to a file with the right bytes is still not an image tako wrote.
    let elsewhere = w.path("elsewhere");
    fs::write(&elsewhere, World::content("1.1")).unwrap();
    fs::remove_file(&stored).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &stored).unwrap();
    let o = run(&["status", "--json", "--verify"], &[&config]);
    assert_exit(&o, 1);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "damaged");
    assert_eq!(r["problem"], "it is a symbolic link");

    fs::remove_file(&stored).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&stored)
        .status()
        .unwrap();
    assert!(made.success());
    let o = run(&["status", "--json", "--verify"], &[&config]);
    assert_exit(&o, 1);
    assert_eq!(json_records(&o)[0]["problem"], "it is a FIFO");
}

#[test]
fn status_refuses_a_store_that_is_a_symlink() {
    let (w, _server, config, _) = healthy();
    let store = w.dest().join("store");
    let moved = w.path("moved-store");
    fs::rename(&store, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &store).unwrap();
    let o = run(&["status"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("{}: it is a symbolic link", store.display())),
        "{}",
        stderr(&o)
    );
}

/// Issue 23, new user 6: status showed only the first `Origin=`, and JSON had one string.
#[test]
fn status_shows_every_origin_and_json_lists_them_in_order() {
    let w = World::new();
    w.publish("1.0");
    let first = Server::serve_dir(w.origin());
    let config = w.config(
        "app.tako",
        &first.url(),
        "*",
        "Origin=http://user:secret@127.0.0.1:9/mirror\nOrigin=file:///srv/mirror\n",
    );
    assert_exit(&run(&["fetch"], &[&config]), 0);

    let o = run(&["status"], &[&config]);
    assert_exit(&o, 0);
    let name = config.display().to_string();
    assert!(
        stdout(&o).lines().any(|l| l
            == format!(
                "{name}:   origin {} (mirrors: http://***@127.0.0.1:9/mirror, file:///srv/mirror), pattern *",
                first.url()
            )),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("secret"));

    let o = run(&["status", "--json"], &[&config]);
    assert_exit(&o, 0);
    let r = &json_records(&o)[0];
    assert_eq!(r["origin"], first.url().as_str());
    assert_eq!(
        r["origins"],
        serde_json::json!([
            first.url(),
            "http://***@127.0.0.1:9/mirror",
            "file:///srv/mirror"
        ])
    );
}

/// Whether some process waits for a lock on the file whose inode is `ino` (`/proc/locks`
/// lists each waiter as `N: -> FLOCK ADVISORY READ PID MAJ:MIN:INODE …`).
fn someone_waits_for_the_lock_of(ino: u64) -> bool {
    let locks = fs::read_to_string("/proc/locks").unwrap();
    locks.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some("->")
            && fields
                .nth(4)
                .is_some_and(|id| id.rsplit(':').next() == Some(&ino.to_string()))
    })
}

/// Issue 23, hostile review M: `tako status` said "missing" and exited 1 while a fetch
/// with `Keep=` (or a gc) moved `latest` and removed the old image between its reads. A
/// destination that does not look intact is looked at again once the run that holds the
/// lock is done. The race is made certain here: the test holds the lock, as a fetch does,
/// while `latest` points at an image it has removed, and finishes the move only once
/// status waits.
#[test]
fn status_waits_for_a_run_that_holds_the_lock_rather_than_report_an_image_it_removes_as_missing() {
    use std::os::unix::fs::MetadataExt;

    let w = World::new();
    let d10 = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    let d11 = w.publish("1.1");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    w.assert_latest(&d11, &World::content("1.1"));

    // What a `tako fetch` holds; in the middle of its work, `latest` names an image that
    // is gone.
    let lock = fs::File::open(w.dest()).unwrap();
    lock.lock().unwrap();
    let latest = w.dest().join("latest");
    fs::remove_file(w.dest().join("store").join(&d10)).unwrap();
    fs::remove_file(&latest).unwrap();
    std::os::unix::fs::symlink(format!("store/{d10}"), &latest).unwrap();

    let mut status = Bounded::new(tako_cmd().arg("status").arg(&config)).spawn();
    let ino = fs::metadata(w.dest()).unwrap().ino();
    let started = std::time::Instant::now();
    while status.is_running() && !someone_waits_for_the_lock_of(ino) {
        assert!(
            started.elapsed() < HANG_GUARD,
            "status neither ended nor waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The run ends: `latest` is where it belongs, and the lock is let go.
    fs::remove_file(&latest).unwrap();
    std::os::unix::fs::symlink(format!("store/{d11}"), &latest).unwrap();
    drop(lock);

    let o = status.finish();
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "{}: installed 1.1, intact (size checked)\n",
            config.display()
        )),
        "{out}"
    );
    assert_eq!(stderr(&o), "");
}
