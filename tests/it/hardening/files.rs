//! Files planted by someone else, locks, housekeeping and repair: `tako fetch` and
//! `tako store` in directories they do not fully control.

use crate::support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

/// The user that owns a destination root fetches into.
const OTHER_USER: u32 = 65534;

fn store_cmd(output: &Path, image: &Path, version: &str) -> Command {
    let mut cmd = tako_cmd();
    cmd.args(["store", "-k", &test_secret(), "-o"])
        .arg(output)
        .arg(image)
        .arg(version);
    cmd
}

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

fn running_as_root() -> bool {
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

/// Gives `path` and everything under it to [`OTHER_USER`], as a service's
/// directory would be, when the tests can (as root).
fn give_away(path: &Path) {
    if !running_as_root() {
        return;
    }
    std::os::unix::fs::lchown(path, Some(OTHER_USER), Some(OTHER_USER)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            give_away(&entry.unwrap().path());
        }
    }
}

/// Everything under `dir`, without following symlinks: kind, mode and bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>)> {
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode();
        let (kind, bytes) = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            ("symlink", target.into_os_string().into_encoded_bytes())
        } else if meta.is_dir() {
            all.extend(snapshot(&path));
            ("dir", Vec::new())
        } else {
            ("file", fs::read(&path).unwrap())
        };
        all.insert(path, (kind.to_string(), mode, bytes));
    }
    all
}

/// A directory beside the destination with files a planted symlink may point at.
fn outside(w: &World) -> PathBuf {
    let out = w.path("outside");
    fs::create_dir_all(out.join("dir")).unwrap();
    fs::write(out.join("file"), b"a file that is not tako's\n").unwrap();
    fs::write(out.join("big"), vec![b'x'; 100_000]).unwrap();
    fs::write(out.join("dir/inner"), b"inner\n").unwrap();
    // An outside copy of the 1.1 image, writable: tako must neither use it
    // nor set it read-only.
    fs::write(out.join("image"), World::content("1.1")).unwrap();
    fs::set_permissions(out.join("image"), fs::Permissions::from_mode(0o644)).unwrap();
    out
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn is_regular_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

#[track_caller]
fn assert_stderr_has(o: &Output, parts: &[&str]) {
    let err = stderr(o);
    for part in parts {
        assert!(err.contains(part), "{part:?} not in stderr:\n{err}");
    }
}

#[test]
fn a_planted_store_symlink_never_makes_root_write_outside_the_destination() {
    let (w, server, _) = served_world();
    let outside = outside(&w);
    let before = snapshot(&outside);
    let config = w.config("app.tako", &server.url(), "*", "");
    symlink(outside.join("dir"), w.dest().join("store")).unwrap();
    give_away(&w.dest());

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    let store = w.dest().join("store");
    assert_stderr_has(
        &o,
        &[
            &format!(
                "{}: it is a symbolic link, not a directory",
                store.display()
            ),
            "refusing",
        ],
    );
    assert_eq!(snapshot(&outside), before, "files outside the destination");
    assert!(w.latest().is_none());
    // The same for an --init that has to fetch.
    assert_exit(&fetch(&["--init"], &[&config]), 1);
    assert_eq!(snapshot(&outside), before, "files outside the destination");
}

#[test]
fn planted_symlinks_at_tako_s_own_names_never_make_root_touch_files_outside() {
    let (w, server, [_, d11]) = served_world();
    let outside = outside(&w);
    let config = w.config("app.tako", &server.url(), "*", "");
    let dest = w.dest();
    let store = dest.join("store");
    fs::create_dir(&store).unwrap();
    symlink(outside.join("file"), dest.join("manifest.new")).unwrap();
    symlink(outside.join("file"), dest.join("latest.new")).unwrap();
    symlink(outside.join("big"), dest.join("latest")).unwrap();
    symlink(outside.join("file"), store.join(format!("{d11}.new"))).unwrap();
    // The right bytes, but outside: tako must install its own copy.
    symlink(outside.join("image"), store.join(&d11)).unwrap();
    give_away(&dest);
    let before = snapshot(&outside);

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(snapshot(&outside), before, "files outside the destination");
    assert!(
        is_regular_file(&store.join(&d11)),
        "store/{d11} is tako's own file"
    );
    assert!(is_regular_file(&dest.join("manifest")));
    w.assert_latest(&d11, &World::content("1.1"));
    assert_eq!(w.store_files(), std::slice::from_ref(&d11));
    assert!(!dest.join("latest.new").exists() && !dest.join("manifest.new").exists());

    // A later run finds a store file swapped for a link to a big file.
    fs::remove_file(store.join(&d11)).unwrap();
    symlink(outside.join("big"), store.join(&d11)).unwrap();
    let before = snapshot(&outside);
    for args in [&["--init"][..], &[]] {
        let o = fetch(args, &[&config]);
        assert_exit(&o, 0);
        assert_eq!(snapshot(&outside), before, "files outside the destination");
        w.assert_latest(&d11, &World::content("1.1"));
    }
}

#[test]
fn a_fifo_or_other_non_file_planted_as_the_local_manifest_is_refused_without_hanging() {
    let (w, server, _) = served_world();
    let outside = outside(&w);
    let config = w.config("app.tako", &server.url(), "*", "");
    let manifest = w.dest().join("manifest");
    let named = format!("{}: it is", manifest.display());

    mkfifo(&manifest);
    for args in [&[][..], &["--init"]] {
        let o = fetch(args, &[&config]);
        assert_exit(&o, 1);
        assert_stderr_has(&o, &[&named, "a FIFO, not a regular file"]);
    }

    // A link to a valid manifest elsewhere is not the destination's manifest.
    fs::remove_file(&manifest).unwrap();
    fs::copy(w.origin().join("manifest"), outside.join("manifest")).unwrap();
    symlink(outside.join("manifest"), &manifest).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(&o, &[&named, "a symbolic link, not a regular file"]);
    assert!(w.latest().is_none());

    fs::remove_file(&manifest).unwrap();
    fs::create_dir(&manifest).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(&o, &[&named, "a directory, not a regular file"]);
}

#[test]
fn a_local_manifest_larger_than_a_remote_one_may_be_is_refused_unread() {
    let (w, server, _) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let manifest = w.dest().join("manifest");
    // Sparse: as large as an attacker likes at no cost.
    File::create(&manifest)
        .unwrap()
        .set_len((8 << 20) + 1)
        .unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(
        &o,
        &[&format!(
            "{}: it is larger than the limit of 8388608 bytes",
            manifest.display()
        )],
    );
    assert_eq!(server.requests(), Vec::<String>::new());
}

#[test]
fn a_directory_planted_at_a_temporary_name_is_refused_naming_it() {
    let (w, server, _) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let temp = w.dest().join("manifest.new");
    fs::create_dir(&temp).unwrap();
    fs::write(temp.join("someone's"), b"data").unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(&o, &[&format!("{}: it is a directory", temp.display())]);
    assert_eq!(fs::read(temp.join("someone's")).unwrap(), b"data");
}

#[test]
fn a_directory_planted_at_an_image_s_name_is_refused_before_downloading() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let planted = w.dest().join("store").join(&d11);
    fs::create_dir_all(&planted).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(
        &o,
        &[&format!(
            "cannot use {}: it is a directory, not a regular file",
            planted.display()
        )],
    );
    assert_eq!(server.count(&image_path(&d11)), 0);
    assert!(w.latest().is_none());
}

#[test]
fn planted_entries_in_a_server_directory_are_refused_or_replaced() {
    let w = World::new();
    let outside = outside(&w);
    let image = w.path("image");
    fs::write(&image, World::content("2.0")).unwrap();
    let digest = sha256_hex(&World::content("2.0"));
    let before = snapshot(&outside);
    let server_dir = |name: &str| {
        let dir = w.path(name);
        fs::create_dir(&dir).unwrap();
        dir
    };

    // `store` that is a symlink.
    let out = server_dir("srv-store-link");
    symlink(outside.join("dir"), out.join("store")).unwrap();
    let o = run_bounded(&mut store_cmd(&out, &image, "2.0"));
    assert_exit(&o, 1);
    assert_stderr_has(
        &o,
        &[&format!(
            "{}: it is a symbolic link, not a directory",
            out.join("store").display()
        )],
    );
    assert!(!out.join("manifest").exists());

    // `manifest` that is a FIFO, a symlink to a valid manifest, or too large.
    let out = server_dir("srv-manifest");
    let manifest = out.join("manifest");
    mkfifo(&manifest);
    let o = run_bounded(&mut store_cmd(&out, &image, "2.0"));
    assert_exit(&o, 1);
    assert_stderr_has(&o, &[&format!("{}: it is a FIFO", manifest.display())]);
    fs::remove_file(&manifest).unwrap();
    let valid = w.path("valid");
    fs::create_dir(&valid).unwrap();
    assert_exit(&run_bounded(&mut store_cmd(&valid, &image, "2.0")), 0);
    fs::copy(valid.join("manifest"), outside.join("manifest")).unwrap();
    let before_with_manifest = snapshot(&outside);
    symlink(outside.join("manifest"), &manifest).unwrap();
    let o = run_bounded(&mut store_cmd(&out, &image, "2.1"));
    assert_exit(&o, 1);
    assert_stderr_has(
        &o,
        &[&format!("{}: it is a symbolic link", manifest.display())],
    );
    assert_eq!(snapshot(&outside), before_with_manifest);
    fs::remove_file(&manifest).unwrap();
    File::create(&manifest)
        .unwrap()
        .set_len((8 << 20) + 1)
        .unwrap();
    let o = run_bounded(&mut store_cmd(&out, &image, "2.1"));
    assert_exit(&o, 1);
    assert_stderr_has(
        &o,
        &[&format!(
            "{}: it is larger than the limit of 8388608 bytes",
            manifest.display()
        )],
    );
    fs::remove_file(outside.join("manifest")).unwrap();

    // Temporaries and a store file that point outside are replaced.
    let out = server_dir("srv-temporaries");
    fs::create_dir(out.join("store")).unwrap();
    symlink(outside.join("file"), out.join("manifest.new")).unwrap();
    symlink(outside.join("file"), out.join("store/incoming.new")).unwrap();
    symlink(outside.join("big"), out.join("store").join(&digest)).unwrap();
    let o = run_bounded(&mut store_cmd(&out, &image, "2.0"));
    assert_exit(&o, 0);
    let stored = out.join("store").join(&digest);
    assert!(is_regular_file(&stored));
    assert_eq!(fs::read(&stored).unwrap(), World::content("2.0"));
    assert!(is_regular_file(&out.join("manifest")));
    assert_eq!(
        snapshot(&outside),
        before,
        "files outside the server directory"
    );
}

#[test]
fn init_succeeds_while_another_run_holds_the_destination_lock() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    // What a running `tako fetch` holds.
    let lock = File::open(w.dest()).unwrap();
    lock.lock().unwrap();
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}: present (1.1)\n", config.display()));
    w.assert_latest(&d11, &World::content("1.1"));
    drop(lock);
}

#[test]
fn init_succeeds_while_another_fetch_is_stuck_on_a_download() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let d11 = w.publish("1.1");
    server.set_fault(&image_path(&d11), Fault::Hang);
    let stuck = Fetch::new().spawn(&[], &[&config]);
    let start = Instant::now();
    while server.count(&image_path(&d11)) == 0 {
        assert!(
            start.elapsed() < HANG_GUARD,
            "the first fetch never asked for 1.1"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let o = fetch(&["--init"], &[&config]);
    stuck.kill();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}: present (1.0)\n", config.display()));
    w.assert_latest(&d10, &World::content("1.0"));
}

#[test]
fn stale_temporaries_in_the_store_are_removed_at_the_start_of_a_fetch() {
    let (w, server, [d10, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let store = w.dest().join("store");
    for name in [format!("{d10}.new"), format!("{d11}.new"), "x.new".into()] {
        fs::write(store.join(name), b"half an image from a crash").unwrap();
    }
    symlink("/nonexistent", store.join("link.new")).unwrap();
    fs::write(store.join("notes"), b"not a temporary").unwrap();
    fs::create_dir(store.join("dir.new")).unwrap();

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.1)\n", config.display())
    );
    assert_eq!(w.store_files(), {
        let mut names = vec![d11.clone(), "dir.new".into(), "notes".into()];
        names.sort();
        names
    });
    assert_eq!(fs::read(store.join("notes")).unwrap(), b"not a temporary");
}

/// Gives `cmd`, which runs tako through another program, the environment
/// `tako_cmd()` gives tako.
fn same_environment_as_tako(cmd: &mut Command) {
    for (name, value) in tako_cmd().get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
}

/// `tako` run through `sh` with umask 077.
fn with_umask_077(args: &[&std::ffi::OsStr]) -> Output {
    let program = tako_cmd().get_program().to_owned();
    let mut sh = Command::new("sh");
    sh.args(["-c", "umask 077; exec \"$0\" \"$@\""])
        .arg(program)
        .args(args);
    same_environment_as_tako(&mut sh);
    run_bounded(&mut sh)
}

#[test]
fn store_directories_are_world_readable_whatever_the_umask() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = with_umask_077(&["fetch".as_ref(), config.as_os_str()]);
    assert_exit(&o, 0);
    assert_eq!(mode(&w.dest().join("store")), 0o755);
    assert_eq!(mode(&w.dest().join("store").join(&d11)), 0o444);
    assert_eq!(mode(&w.dest().join("manifest")), 0o444);

    let out = w.path("srv");
    fs::create_dir(&out).unwrap();
    let image = w.path("image-1.1");
    let secret = test_secret();
    let o = with_umask_077(&[
        "store".as_ref(),
        "-k".as_ref(),
        secret.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        image.as_os_str(),
        "1.1".as_ref(),
    ]);
    assert_exit(&o, 0);
    assert_eq!(mode(&out.join("store")), 0o755);
    assert_eq!(mode(&out.join("store").join(&d11)), 0o444);
    assert_eq!(mode(&out.join("manifest")), 0o444);
}

#[test]
fn an_intact_store_file_made_writable_is_set_back_to_read_only() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&d11);
    for args in [&[][..], &["--no-verify"], &["--init"]] {
        fs::set_permissions(&stored, fs::Permissions::from_mode(0o666)).unwrap();
        let o = fetch(args, &[&config]);
        assert_exit(&o, 0);
        assert_eq!(mode(&stored), 0o444, "after fetch {args:?}");
        assert_stderr_has(&o, &[&format!("{} was writable", stored.display())]);
    }
    assert_eq!(server.count(&image_path(&d11)), 1);
}

#[test]
fn a_writable_store_file_with_another_hard_link_is_not_changed_through_it() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&d11);
    // Someone replaced tako's file by a hard link to a file of theirs with
    // the same bytes; its mode is theirs to choose.
    let theirs = w.path("theirs");
    fs::write(&theirs, World::content("1.1")).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o664)).unwrap();
    fs::remove_file(&stored).unwrap();
    fs::hard_link(&theirs, &stored).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(mode(&theirs), 0o664);
    assert_stderr_has(&o, &[&format!("{} was writable", stored.display()), "link"]);
}

#[test]
fn a_damaged_store_file_is_kept_until_a_verified_copy_replaces_it() {
    let (w, server, [_, d11]) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&d11);
    let damaged = b"image of version 6.6\n";
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&stored, damaged).unwrap();

    for fault in [Fault::Status(500), Fault::Truncate { after: 3 }] {
        server.set_fault(&image_path(&d11), fault);
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        assert_stderr_has(&o, &["damaged"]);
        assert_eq!(w.latest(), Some(Path::new("store").join(&d11)));
        // latest still points at a file: the damaged one, until a good copy is verified.
        assert_eq!(fs::read(w.dest().join("latest")).unwrap(), damaged);
        assert!(!w.store_files().iter().any(|n| n.ends_with(".new")));
    }
    server.clear_fault(&image_path(&d11));
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&d11, &World::content("1.1"));
}

#[test]
fn the_rollback_check_against_an_8_mib_manifest_finishes() {
    let w = World::new();
    let image = World::content("big");
    let digest = sha256_hex(&image);
    let filler = "0".repeat(64);
    // Lines of `1.N 1 <64 digits>`, as many as fit in 8 MiB with the last one
    // naming a real image.
    let mut lines = Vec::new();
    let mut size = 200;
    while size < (8 << 20) - 200 {
        let line = format!("1.{} 1 {filler}", lines.len());
        size += line.len() + 1;
        lines.push(line);
    }
    let last = format!("2.0 {} {digest}", image.len());
    let local = signed_manifest(&lines);
    lines.push(last);
    let remote = signed_manifest(&lines);
    assert!(remote.len() <= 8 << 20, "{}", remote.len());
    fs::create_dir(w.origin().join("store")).unwrap();
    fs::write(w.origin().join("manifest"), &remote).unwrap();
    fs::write(w.origin().join("store").join(&digest), &image).unwrap();
    fs::write(w.dest().join("manifest"), &local).unwrap();
    let config = w.config("app.tako", &w.file_url(), "2.*", "");

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated (none) -> 2.0\n", config.display())
    );
    assert_eq!(fs::read(w.dest().join("manifest")).unwrap(), remote);
    // Dropping one old entry is still caught.
    lines.remove(lines.len() / 2);
    fs::write(w.origin().join("manifest"), signed_manifest(&lines)).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_stderr_has(&o, &["rollback"]);
}

/// Runs `script` with `sh` in a private mount namespace (`unshare -m`), where
/// it may mount file systems that nobody else sees. `None`, with a note,
/// where that is impossible (not root, or a container without the right).
/// `src/fsutil.rs` pins the wording of these errors in unit tests as well.
fn in_mount_namespace(script: &str, args: &[&std::ffi::OsStr]) -> Option<Output> {
    let possible = running_as_root()
        && Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !possible {
        eprintln!("skipped: cannot mount in a private mount namespace (needs root)");
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .args(args)
        .env("TAKO", tako_cmd().get_program());
    same_environment_as_tako(&mut cmd);
    Some(run_bounded(&mut cmd))
}

/// The lines of `o`'s standard error that name `path`, each checked to
/// name it once only.
#[track_caller]
fn lines_naming(o: &Output, path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    let err = stderr(o);
    let lines: Vec<String> = err
        .lines()
        .filter(|l| l.contains(&path))
        .map(str::to_string)
        .collect();
    for line in &lines {
        assert_eq!(line.matches(&path).count(), 1, "path printed twice: {line}");
    }
    lines
}

#[test]
fn a_read_only_file_system_names_the_file_that_could_not_be_written() {
    let (w, server, _) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let dest = w.dest();
    let script =
        r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$TAKO" fetch "$2""#;
    let Some(o) = in_mount_namespace(script, &[dest.as_os_str(), config.as_os_str()]) else {
        return;
    };
    assert_exit(&o, 1);
    let temp = dest.join("manifest.new");
    assert_eq!(
        lines_naming(&o, &temp),
        [format!(
            "tako: error: {}: cannot create {}: Read-only file system (os error 30)",
            config.display(),
            temp.display()
        )]
    );

    let out = w.origin();
    let image = w.path("image-1.1");
    let secret = test_secret();
    let script = r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$TAKO" store -k "$3" -o "$1" "$2" 2.0"#;
    let o = in_mount_namespace(
        script,
        &[out.as_os_str(), image.as_os_str(), secret.as_ref()],
    )
    .unwrap();
    assert_exit(&o, 1);
    let temp = out.join("store/incoming.new");
    assert_eq!(
        lines_naming(&o, &temp),
        [format!(
            "tako: error: cannot create {}: Read-only file system (os error 30)",
            temp.display()
        )]
    );
}

#[test]
fn a_destination_out_of_inodes_names_the_file_once() {
    let (w, server, _) = served_world();
    let config = w.config("app.tako", &server.url(), "*", "");
    let dest = w.dest();
    // A tmpfs with room for a handful of files, all used up.
    let script = r#"mount -t tmpfs -o nr_inodes=8 tmpfs "$1" &&
        i=0; while (: >"$1/f$i") 2>/dev/null; do i=$((i+1)); done;
        exec "$TAKO" fetch "$2""#;
    let Some(o) = in_mount_namespace(script, &[dest.as_os_str(), config.as_os_str()]) else {
        return;
    };
    assert_exit(&o, 1);
    let temp = dest.join("manifest.new");
    assert_eq!(
        lines_naming(&o, &temp),
        [format!(
            "tako: error: {}: cannot create {}: No space left on device (os error 28)",
            config.display(),
            temp.display()
        )]
    );
}

/// Issue 23, hostile review B: a `file://` origin's `manifest` linked to a secret file was
/// followed, and the header error put the secret's first line into the journal.
#[test]
fn a_file_origins_manifest_linked_to_a_secret_is_not_followed_nor_quoted() {
    let w = World::new();
    w.publish("1.0");
    let secret = w.path("shadow");
    fs::write(&secret, "root:$6$s3cr3tsalt$h4sh:19000:0:99999:7:::\n").unwrap();
    let manifest = w.origin().join("manifest");
    fs::remove_file(&manifest).unwrap();
    symlink(&secret, &manifest).unwrap();
    let config = w.config("app.tako", &w.file_url(), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("h4sh"), "{err}");

    // The same bytes as a regular file are no manifest: the error quotes a word at most.
    fs::remove_file(&manifest).unwrap();
    fs::copy(&secret, &manifest).unwrap();
    let o = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("its first line is 'root…'"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("h4sh"), "{err}");
}

/// Issue 23, hostile review J: a FIFO at `manifest` or `store/HEX` of a `file://` origin
/// hung the run (past --max-time, never trying the next mirror).
#[test]
fn a_fifo_in_a_file_origin_fails_at_once_and_the_next_mirror_serves() {
    let w = World::new();
    let digest = w.publish("1.0");
    let good = World::new();
    good.publish("1.0");
    mkfifo(&w.origin().join("manifest.fifo"));
    fs::remove_file(w.origin().join("manifest")).unwrap();
    fs::rename(
        w.origin().join("manifest.fifo"),
        w.origin().join("manifest"),
    )
    .unwrap();
    let config = w.config(
        "app.tako",
        &w.file_url(),
        "*",
        &format!("Origin={}\n", good.file_url()),
    );

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    assert!(stderr(&o).contains("it is a FIFO"), "{}", stderr(&o));
    w.assert_latest(&digest, &World::content("1.0"));

    // A FIFO as the image of the one origin: an error, not a hang.
    let lone = World::new();
    let digest = lone.publish("1.0");
    let image = lone.origin().join("store").join(&digest);
    fs::remove_file(&image).unwrap();
    mkfifo(&image);
    let config = lone.config("app.tako", &lone.file_url(), "*", "");
    let o = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("it is a FIFO"), "{}", stderr(&o));
}
