//! Issue 8: configs, messages and manifests that a hostile or careless hand made, seen from
//! outside the binary: what it prints, its exit status, what it leaves on disk.

use crate::support;

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

/// Every line the run printed, on either stream.
fn everything(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

#[track_caller]
fn assert_no_raw_escapes(o: &Output) {
    for byte in o.stdout.iter().chain(&o.stderr) {
        assert!(
            *byte == b'\n' || !byte.is_ascii_control(),
            "raw control byte {byte:#04x} in output:\n{}",
            everything(o)
        );
    }
}

#[test]
fn a_secret_key_pasted_into_public_key_is_never_printed() {
    let w = World::new();
    w.publish("1.0");
    let secret = test_secret();
    let config = w.path("app.tako");
    let text = fs::read_to_string(w.config("x", &w.file_url(), "*", "")).unwrap();
    fs::write(&config, text.replace(TEST_PUBLIC, &secret)).unwrap();
    // The same mistake twice on one command line, and in TOML.
    let toml = w.path("app.toml");
    fs::write(
        &toml,
        format!(
            "origin = \"{}\"\npublic_key = \"{secret}\"\ndestination = \"{}\"\nversion = \"*\"\n",
            w.file_url(),
            w.dest().display()
        ),
    )
    .unwrap();
    let o = fetch(&[], &[&config, &toml]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "tako: error: {}:2: PublicKey= holds a secret key",
            config.display()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{}:2: ", toml.display())), "{err}");
    // No piece of the key's body, anywhere.
    let body = &secret["SECRET+".len()..];
    let all = everything(&o);
    for piece in body.as_bytes().chunks(8) {
        let piece = std::str::from_utf8(piece).unwrap();
        assert!(
            !all.contains(piece),
            "'{piece}' of the secret printed:\n{all}"
        );
    }
    assert_eq!(w.latest(), None);
}

#[test]
fn a_public_key_that_fails_to_parse_is_not_echoed_at_length() {
    let w = World::new();
    let garbage = format!("{}\u{1b}[2J", "A".repeat(5000));
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, text.replace(TEST_PUBLIC, &garbage)).unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(":2: invalid public key"), "{err}");
    assert!(!err.contains("AAAAAAAA"), "{err}");
    assert_no_raw_escapes(&o);
}

#[test]
fn a_fifo_given_as_config_is_refused_without_hanging() {
    let w = World::new();
    let fifo = w.path("app.tako");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let o = fetch(&[], &[&fifo]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        format!(
            "tako: error: {}: config is not a regular file (it is a FIFO)",
            fifo.display()
        )
    );
}

#[test]
fn a_device_given_as_config_is_refused_without_reading_it() {
    let o = fetch(&[], &[Path::new("/dev/zero")]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        "tako: error: /dev/zero: config is not a regular file (it is a character device)"
    );
}

#[test]
fn a_directory_given_as_config_is_refused_naming_it() {
    let w = World::new();
    let dir = w.path("conf.d");
    fs::create_dir(&dir).unwrap();
    let o = fetch(&[], &[&dir]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        format!(
            "tako: error: {}: config is not a regular file (it is a directory)",
            dir.display()
        )
    );
}

#[test]
fn a_config_larger_than_1_mib_is_refused_and_one_of_exactly_1_mib_is_read() {
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let settings = fs::read_to_string(&config).unwrap();
    // Padded with a comment to exactly 1 MiB: still a config.
    let pad = (1 << 20) - settings.len() - 2;
    let exact = format!("{settings}#{}\n", "x".repeat(pad));
    assert_eq!(exact.len(), 1 << 20);
    fs::write(&config, &exact).unwrap();
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&digest, &World::content("1.0"));

    let big = w.path("big.tako");
    fs::write(&big, format!("#{exact}")).unwrap();
    let o = fetch(&[], &[&big]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with(&format!(
            "tako: error: {}: config is larger than 1 MiB",
            big.display()
        )),
        "{}",
        stderr(&o)
    );
}

/// Issue 23, new user 3: patterns of other tools were accepted and never matched, so a new
/// host installed nothing and its timer stayed green.
#[test]
fn a_version_pattern_in_another_tools_syntax_is_refused_at_load_with_what_to_write() {
    let w = World::new();
    w.publish("1.2");
    for (pattern, hint) in [
        ("^1.2", "write '1.2 <= v < 2'"),
        ("~1.2", "write '1.2.*'"),
        ("1.x", "write '1.*'"),
        ("v1.*", "without the 'v'"),
        ("latest", "'*' accepts the highest published version"),
    ] {
        let config = w.config("app.tako", &w.file_url(), pattern, "");
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "tako: error: {}:4: invalid version pattern '{pattern}'",
                config.display()
            )),
            "{pattern}: {err}"
        );
        assert!(err.contains(hint), "{pattern}: {err}");
        assert_eq!(w.latest(), None);
    }
}

#[test]
fn a_version_with_spaces_that_is_not_a_range_is_an_error_with_file_and_line() {
    let w = World::new();
    w.publish("1.0");
    w.publish("1.5");
    for pattern in [">= 1.0", "1.0 - 2.0", "1.0 || 2.0"] {
        let config = w.config("app.tako", &w.file_url(), pattern, "");
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "tako: error: {}:4: invalid version pattern '{pattern}'",
                config.display()
            )),
            "{pattern}: {err}"
        );
        assert_eq!(stdout(&o), "");
        assert_eq!(w.latest(), None);
    }
    // A real range still works.
    let config = w.config("app.tako", &w.file_url(), "1.0 <= v < 2.0", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).ends_with("updated (none) -> 1.5\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_unsigned_manifest_header_is_printed_escaped_and_cut() {
    let w = World::new();
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    // 10 kB of terminal escape sequences where the version number belongs.
    let hostile = format!(
        "Tako Manifest {}\n\n\n",
        "\u{1b}[2J\u{1b}]0;owned\u{7}".repeat(1000)
    );
    assert!(hostile.len() > 10_000);
    server.set_fault("/manifest", Fault::Body(hostile.into_bytes()));
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_no_raw_escapes(&o);
    let err = stderr(&o);
    assert!(err.contains("unsupported manifest version"), "{err}");
    // Quoted up to the first character no header holds (issue 23, hostile review B).
    assert!(err.contains("'Tako Manifest …'"), "{err}");
    assert!(err.len() < 1000, "{} bytes:\n{err}", err.len());

    // The same as a whole first line that is not a header at all.
    let hostile = "\u{1b}[2J".repeat(2500);
    server.set_fault("/manifest", Fault::Body(hostile.into_bytes()));
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_no_raw_escapes(&o);
    assert!(stderr(&o).contains("does not start with the header"));
    assert!(stderr(&o).len() < 1000, "{}", stderr(&o));
}

#[test]
fn a_malformed_manifest_entry_is_printed_escaped_and_cut() {
    let w = World::new();
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let line = format!("1.0{} 17 x", "\u{1b}[31m".repeat(2000));
    fs::write(
        w.origin().join("manifest"),
        format!("Tako Manifest 1\n\n{line}\n\n"),
    )
    .unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_no_raw_escapes(&o);
    let err = stderr(&o);
    assert!(err.contains("line 3: malformed entry"), "{err}");
    assert!(err.len() < 1000, "{} bytes:\n{err}", err.len());
}

#[test]
fn a_bad_config_value_is_printed_escaped_and_cut() {
    let w = World::new();
    let escapes = "\u{1b}[2J\u{1b}[1;1H".repeat(1000);
    for extra in [
        format!("{escapes}\n"),
        format!("{escapes}=1\n"),
        format!("Restart=app{escapes}\n"),
    ] {
        let config = w.config("app.tako", &w.file_url(), "*", &extra);
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        assert_no_raw_escapes(&o);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("tako: error: {}:5: ", config.display())),
            "{err}"
        );
        assert!(err.len() < 1000, "{} bytes:\n{err}", err.len());
    }
    let config = w.config("app.tako", &w.file_url(), &format!("1.{escapes}*"), "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert_no_raw_escapes(&o);
    assert!(stderr(&o).contains(":4: invalid version pattern"));
    assert!(stderr(&o).len() < 1000);
}

#[test]
fn a_help_flag_before_the_command_prints_that_commands_help() {
    for (args, expected) in [
        (["-h", "fetch"], "Usage: tako fetch"),
        (["--help", "fetch"], "--no-verify"),
        (["--help", "store"], "Usage: tako store"),
        (["-h", "store"], "--key-file"),
        (["-h", "gen-key"], "Usage: tako gen-key"),
    ] {
        let o = tako(&args);
        assert_exit(&o, 0);
        assert!(stdout(&o).contains(expected), "{args:?}:\n{}", stdout(&o));
        assert!(
            !stdout(&o).contains("Commands:"),
            "{args:?}:\n{}",
            stdout(&o)
        );
    }
    let o = tako(&["-h"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("Commands:"));
}

#[test]
fn a_manifest_without_entries_says_no_versions_are_published() {
    let w = World::new();
    fs::write(w.origin().join("manifest"), vector("manifest-empty")).unwrap();
    let config = w.config("app.tako", &w.file_url(), "1.*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: no version matches 1.* (no versions are published)\n",
            config.display()
        )
    );
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: {}: no version matches 1.* (no versions are published), and --init needs an image that does: set Version= to a pattern a published version matches, or publish a version that matches 1.*\n",
            config.display()
        )),
        "{err}"
    );
    assert!(!err.contains("available"), "{err}");
}

/// Sets up a destination whose store file is damaged, so the next fetch warns, and a config
/// that fails; returns both configs.
fn a_warning_and_an_error(w: &World) -> (std::path::PathBuf, std::path::PathBuf) {
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let stored = w.dest().join("store").join(&digest);
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&stored, "damaged").unwrap();
    (config, w.path("missing.tako"))
}

fn fetch_with_stderr_in(w: &World, journal_stream: &dyn Fn(&Path) -> String) -> String {
    let (config, missing) = a_warning_and_an_error(w);
    let err_path = w.path("stderr.log");
    let err_file = File::create(&err_path).unwrap();
    let o = Fetch::new()
        .env("JOURNAL_STREAM", journal_stream(&err_path))
        .stderr(err_file)
        .run(&[], &[&config, &missing]);
    assert_exit(&o, 1);
    fs::read_to_string(&err_path).unwrap()
}

#[test]
fn errors_and_warnings_carry_the_syslog_priority_when_stderr_is_the_journal() {
    let w = World::new();
    let err = fetch_with_stderr_in(&w, &|path| {
        let meta = fs::metadata(path).unwrap();
        format!("{}:{}", meta.dev(), meta.ino())
    });
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("<4>tako: warning: "), "{err}");
    assert!(lines[0].contains("is damaged"), "{err}");
    assert!(lines[1].starts_with("<3>tako: error: "), "{err}");
    assert!(lines[1].contains("missing.tako"), "{err}");
    assert_eq!(lines[2], "<3>tako: error: 1 of 2 configs failed");
}

#[test]
fn no_priority_prefix_when_stderr_is_not_the_journal() {
    let w = World::new();
    let err = fetch_with_stderr_in(&w, &|path| {
        // Another file's identity, as when the variable is inherited by a child whose
        // stderr was redirected.
        let meta = fs::metadata(path.parent().unwrap()).unwrap();
        format!("{}:{}", meta.dev(), meta.ino())
    });
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("tako: warning: "), "{err}");
    assert!(lines[1].starts_with("tako: error: "), "{err}");
    assert_eq!(lines[2], "tako: error: 1 of 2 configs failed");
    // Nor with a value that is not DEVICE:INODE.
    let w = World::new();
    let err = fetch_with_stderr_in(&w, &|_| "garbage".to_string());
    assert!(err.starts_with("tako: warning: "), "{err}");
}

/// An origin as the original Tako could leave it: a version of separators only, next to `1.0`.
fn original_tako_origin(w: &World) -> (String, String) {
    let store = w.origin().join("store");
    fs::create_dir_all(&store).unwrap();
    let empty = World::content("...");
    let one = World::content("1.0");
    let (d_empty, d_one) = (sha256_hex(&empty), sha256_hex(&one));
    fs::write(store.join(&d_empty), &empty).unwrap();
    fs::write(store.join(&d_one), &one).unwrap();
    let manifest = signed_manifest(&[
        format!("... {} {d_empty}", empty.len()),
        format!("1.0 {} {d_one}", one.len()),
    ]);
    fs::write(w.origin().join("manifest"), manifest).unwrap();
    (d_empty, d_one)
}

#[test]
fn a_manifest_from_the_original_tako_with_a_separator_only_version_is_fetched() {
    let w = World::new();
    let (d_empty, d_one) = original_tako_origin(&w);
    // `...` orders as the empty version, equal to 0.
    let config = w.config("app.tako", &w.file_url(), "0", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated (none) -> ...\n", config.display())
    );
    w.assert_latest(&d_empty, &World::content("..."));
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated ... -> 1.0\n", config.display())
    );
    w.assert_latest(&d_one, &World::content("1.0"));
}

#[test]
fn store_adds_to_a_manifest_with_a_separator_only_version_but_never_publishes_one() {
    let w = World::new();
    original_tako_origin(&w);
    let before = fs::read_to_string(w.origin().join("manifest")).unwrap();
    w.publish("2.0");
    let after = fs::read_to_string(w.origin().join("manifest")).unwrap();
    let versions: Vec<&str> = after
        .lines()
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(versions, ["...", "1.0", "2.0"]);

    let image = w.path("image");
    fs::write(&image, "new").unwrap();
    let origin = w.origin();
    for (version, message) in [("..", "invalid version"), ("0", "conflicts with")] {
        let o = tako(&[
            "store",
            "-k",
            &test_secret(),
            "-o",
            origin.to_str().unwrap(),
            image.to_str().unwrap(),
            version,
        ]);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains(message), "{version}: {}", stderr(&o));
    }
    assert_ne!(before, after);
    assert_eq!(
        fs::read_to_string(w.origin().join("manifest")).unwrap(),
        after
    );
}

#[test]
fn a_manifest_with_both_a_separator_only_version_and_zero_is_a_duplicate() {
    let w = World::new();
    let d = sha256_hex(b"x");
    fs::write(
        w.origin().join("manifest"),
        signed_manifest(&[format!("... 1 {d}"), format!("0 1 {d}")]),
    )
    .unwrap();
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("line 4: duplicate version: '0' is equal to '...'"),
        "{}",
        stderr(&o)
    );
}

/// Issue 23, new user 15: messages that say what is wrong and what to write instead.
#[test]
fn config_mistakes_get_messages_that_say_what_to_write_instead() {
    let w = World::new();
    w.publish("1.0");
    let cases: Vec<(String, &str)> = vec![
        (
            "[Tako]\nOrigin=file:///x\n".to_string(),
            ":1: a tako config has no sections; remove the line '[Tako]'",
        ),
        (
            "Orign=file:///x\n".to_string(),
            ":1: unknown key 'Orign'; did you mean Origin? expected one of",
        ),
        (
            "origin=file:///x\n".to_string(),
            ":1: unknown key 'origin'; did you mean Origin?",
        ),
        (
            format!(
                "Origin=images.example.com/app\nPublicKey={}\nDestination={}\nVersion=*\n",
                TEST_PUBLIC,
                w.dest().display()
            ),
            ":1: invalid origin URL 'images.example.com/app': it has no scheme; write https://",
        ),
    ];
    for (text, expected) in cases {
        let config = w.path("bad.tako");
        fs::write(&config, &text).unwrap();
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("tako: error: {}{expected}", config.display())),
            "{text:?}: {err}"
        );
    }

    // A file where the destination directory should be.
    let file = w.path("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let config = w.path("file-dest.tako");
    fs::write(
        &config,
        format!(
            "Origin={}\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion=*\n",
            w.file_url(),
            file.display()
        ),
    )
    .unwrap();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(":3: destination") && stderr(&o).contains("is a file, not a directory"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("create it first"), "{}", stderr(&o));
}

/// Issue 23, hostile review Q: `http:///o` silently became the host `o`, and `oci://:80/a`
/// passed the config check. Both are refused at load, naming the line.
#[test]
fn an_origin_with_no_host_is_refused_at_load_naming_its_line() {
    let w = World::new();
    w.publish("1.0");
    for origin in [
        "http:///o",
        "https:///images/app",
        "oci://:80/a",
        "oci+http://:5000/app",
    ] {
        let config = w.config("app.tako", origin, "*", "");
        let o = run_bounded(tako_cmd().arg("status").arg(&config));
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("tako: error: {}:1: ", config.display())),
            "{origin}: {err}"
        );
        assert!(err.contains(origin), "{origin}: {err}");
    }
}
