//! `tako fetch --json` and `--quiet`, and progress output only on a terminal.

use crate::support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;
use support::tools;

fn json_records(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const FIELDS: [&str; 20] = [
    "config",
    "outcome",
    "from",
    "to",
    "version",
    "digest",
    "size",
    "restarted",
    "restart_retried",
    "restart_pending",
    "removed",
    "pattern",
    "published",
    "error",
    "downloaded_bytes",
    "image_bytes",
    "delta",
    "kind",
    "platform",
    "reused_layers",
];

#[test]
fn fetch_json_prints_one_record_per_config_with_every_field() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let app = w.config("app.tako", &server.url(), "*", "");
    let none = w.config("none.tako", &server.url(), "3.*", "");
    let broken = w.config("broken.tako", &server.url(), "*", "Keep=none\n");

    let o = fetch(&["--json"], &[&app, &none, &broken]);
    assert_exit(&o, 1);
    let records = json_records(&o);
    assert_eq!(records.len(), 3, "{}", stdout(&o));
    for r in &records {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = FIELDS.to_vec();
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected, "{r}");
    }
    let r = &records[0];
    assert_eq!(r["config"], app.display().to_string().as_str());
    assert_eq!(r["outcome"], "updated");
    assert_eq!(r["from"], Value::Null);
    assert_eq!(r["to"], "1.0");
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["digest"], d10.as_str());
    assert_eq!(r["size"], World::content("1.0").len());
    assert_eq!(r["restarted"], serde_json::json!([]));
    assert_eq!(r["restart_retried"], false);
    assert_eq!(r["error"], Value::Null);
    // A first install downloads the whole image: no delta to report.
    assert_eq!(r["delta"], false);
    assert_eq!(r["downloaded_bytes"], Value::Null);
    assert_eq!(r["image_bytes"], Value::Null);
    assert_eq!(r["kind"], "file");
    assert_eq!(r["platform"], Value::Null);
    assert_eq!(r["reused_layers"], Value::Null);

    let r = &records[1];
    assert_eq!(r["outcome"], "no-match");
    assert_eq!(r["pattern"], "3.*");
    assert_eq!(r["published"], serde_json::json!(["1.0"]));
    assert_eq!(r["version"], Value::Null);

    let r = &records[2];
    assert_eq!(r["outcome"], "failed");
    let error = format!(
        "{}:5: Keep= must be a whole number of images, at least 1; found 'none'",
        broken.display()
    );
    assert_eq!(r["error"], error.as_str());
    // A config that does not parse has no kind to report.
    assert_eq!(r["kind"], Value::Null);
    // The error is on standard error as text too, with the summary.
    assert_eq!(
        stderr(&o),
        format!("tako: error: {error}\ntako: error: 1 of 3 configs failed\n")
    );

    w.publish("1.1");
    let o = fetch(&["--json"], &[&app]);
    assert_exit(&o, 0);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "updated");
    assert_eq!(r["from"], "1.0");
    assert_eq!(r["to"], "1.1");

    let o = fetch(&["--json"], &[&app]);
    let r = &json_records(&o)[0];
    assert_eq!(r["outcome"], "up-to-date");
    assert_eq!(r["from"], Value::Null);
    assert_eq!(r["to"], Value::Null);
    assert_eq!(r["version"], "1.1");

    let o = fetch(&["--json", "--init"], &[&app]);
    assert_eq!(json_records(&o)[0]["outcome"], "present");
}

#[test]
fn fetch_json_lists_what_keep_removed() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Keep=1\n");
    assert_exit(&fetch(&[], &[&config]), 0);
    w.publish("1.1");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    let r = &json_records(&o)[0];
    assert_eq!(
        r["removed"],
        serde_json::json!([{
            "file": d10,
            "reason": "old",
            "versions": ["1.0"],
            "size": World::content("1.0").len(),
        }])
    );
}

#[test]
fn fetch_json_never_shows_the_origin_password() {
    let w = World::new();
    w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    server.set_fault("/manifest", Fault::Status(500));
    let url = server
        .url()
        .replace("http://", "http://operator:hunter2secret@");
    let config = w.config("app.tako", &url, "*", "");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 1);
    let record = &json_records(&o)[0];
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("***@"), "{error}");
    assert!(!stdout(&o).contains("hunter2secret"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("hunter2secret"), "{}", stderr(&o));
}

#[test]
fn fetch_quiet_prints_nothing_on_stdout_and_only_errors_on_stderr() {
    let w = World::new();
    let d10 = w.publish("1.0");
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&["--quiet"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "");
    w.assert_latest(&d10, &World::content("1.0"));

    // A warning still shows: the installed image is damaged and is downloaded again.
    let d11 = w.publish("1.1");
    let stored = w.dest().join("store").join(&d11);
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, b"bad").unwrap();
    let o = fetch(&["-q"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with("tako: warning: ") && stderr(&o).contains("is damaged"),
        "{}",
        stderr(&o)
    );

    server.set_fault("/manifest", Fault::Status(404));
    let o = fetch(&["--quiet"], &[&config]);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with(&format!("tako: error: {}: ", config.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_and_quiet_together_are_a_usage_error() {
    let w = World::new();
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let o = fetch(&["--json", "--quiet"], &[&config]);
    assert_exit(&o, 2);
    assert_eq!(stdout(&o), "");
}

#[test]
fn no_progress_output_when_stderr_is_not_a_terminal() {
    let w = World::new();
    // Large enough that a bar would be drawn several times.
    let big = vec![7u8; 8 << 20];
    w.publish_bytes("1.0", &big);
    let server = Server::serve_dir(w.origin());
    let config = w.config("app.tako", &server.url(), "*", "");
    // A captured run has stderr on a pipe.
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    // And to a file.
    let log = w.path("stderr.log");
    let status = Bounded::new(tako_cmd().arg("fetch").arg(&config))
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .run()
        .status;
    assert!(status.success());
    assert_eq!(std::fs::read(&log).unwrap(), b"");
}

/// Runs `tako fetch ARGS CONFIG` under `script`, which gives it a terminal, and returns
/// everything it wrote there.
fn on_a_terminal(args: &str, config: &Path) -> String {
    on_a_terminal_of(120, args, config)
}

/// [`on_a_terminal`] with `COLUMNS` set to `columns`.
fn on_a_terminal_of(columns: usize, args: &str, config: &Path) -> String {
    let command = format!(
        "{} fetch {args} {}",
        env!("CARGO_BIN_EXE_tako"),
        config.display()
    );
    let o = run_bounded(
        std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .env("COLUMNS", columns.to_string()),
    );
    assert!(o.status.success(), "{}", stdout(&o));
    stdout(&o)
}

/// What a terminal shows of `screen` line by line: each redraw (after a carriage return)
/// apart, without the escape sequences that move the cursor and clear lines.
fn drawn_lines(screen: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = screen.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The rates (bytes per second) a progress line shows: `256.0 KiB/s`, `900 bytes/s`.
fn rates_shown(line: &str) -> Vec<f64> {
    let words: Vec<&str> = line.split(' ').collect();
    words
        .windows(2)
        .filter_map(|pair| {
            let number: f64 = pair[0].parse().ok()?;
            let unit = match pair[1] {
                "bytes/s" => 1.0,
                "KiB/s" => 1024.0,
                "MiB/s" => 1024.0 * 1024.0,
                "GiB/s" => 1024.0 * 1024.0 * 1024.0,
                "TiB/s" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            Some(number * unit)
        })
        .collect()
}

/// Issue 23, new user 8: a resumed download showed "509 GiB/s" (the bytes already on disk
/// counted as speed) and `--limit-rate 4M` showed 443 MiB/s; and a long line wrapped.
#[test]
fn a_resumed_download_under_limit_rate_shows_the_network_rate_on_lines_that_fit_the_terminal() {
    if !tools::available("script") {
        return;
    }
    let w = World::new();
    let image = noise(23, 3 << 20);
    let digest = w.publish_bytes("1.0", &image);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    // A long config name, which must not push the line past the terminal's width.
    let name = format!("{}.tako", "a-config-with-a-rather-long-name".repeat(2));
    let config = w.config(&name, &server.url(), "*", "");

    // A first run is cut off part of the way, leaving a partial to resume.
    let o = fetch_slow(
        &["--retries", "0", "--limit-rate", "1M", "--max-time", "2"],
        &[&config],
    );
    assert_exit(&o, 1);
    let partial = w.dest().join("store").join(format!("{digest}.partial"));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 512 << 10, "{kept} bytes kept");

    const LIMIT: f64 = 256.0 * 1024.0;
    let screen = on_a_terminal_of(72, "--retries 0 --limit-rate 256K", &config);
    assert!(screen.contains("updated (none) -> 1.0"), "{screen}");
    w.assert_latest(&digest, &image);
    // The progress lines; the messages before and after them are ordinary lines, which a
    // terminal may wrap.
    let lines: Vec<String> = drawn_lines(&screen)
        .into_iter()
        .filter(|l| l.contains('%'))
        .collect();
    for line in &lines {
        assert!(
            line.chars().count() <= 72,
            "a line wider than COLUMNS=72 ({}): {line:?}",
            line.chars().count()
        );
    }
    let rates: Vec<f64> = lines.iter().flat_map(|l| rates_shown(l)).collect();
    assert!(!rates.is_empty(), "no rate shown:\n{}", lines.join("\n"));
    for rate in &rates {
        assert!(
            *rate <= 3.0 * LIMIT,
            "a rate of {rate} bytes/s under --limit-rate 256K:\n{}",
            lines.join("\n")
        );
    }
    assert!(
        rates.iter().any(|r| *r >= LIMIT / 3.0),
        "the rate never came near the limit: {rates:?}"
    );
}

#[test]
fn a_progress_bar_is_drawn_when_stderr_is_a_terminal() {
    if !tools::available("script") {
        return;
    }
    let w = World::new();
    let big = vec![7u8; 8 << 20];
    let digest = w.publish_bytes("1.0", &big);
    let server = Server::serve_dir(w.origin());
    // Slow enough that the bar is drawn at least once.
    server.set_fault(
        &format!("/store/{digest}"),
        Fault::Slow {
            chunk: 1 << 20,
            delay: std::time::Duration::from_millis(100),
        },
    );
    let config = w.config("app.tako", &server.url(), "*", "");
    let screen = on_a_terminal("", &config);
    assert!(screen.contains("downloading 1.0 (8.0 MiB)"), "{screen}");
    assert!(screen.contains("/8.0 MiB"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(screen.contains("%"), "{screen}");
    assert!(screen.contains("updated (none) -> 1.0"), "{screen}");

    // --quiet draws nothing, even on a terminal.
    let other = World::new();
    let config = other.config("app.tako", &server.url(), "*", "");
    let screen = on_a_terminal("--quiet", &config);
    assert_eq!(screen, "");
}
