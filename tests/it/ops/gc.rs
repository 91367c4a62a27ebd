//! `tako gc` and `Keep=`: exactly the old images go, never the one `latest` points at.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::origin::World;
use support::snapshot::snapshot;
use support::tako::*;

/// `tako ARGS CONFIGS…` under the hang guard.
fn run(args: &[&str], configs: &[&Path]) -> Output {
    run_bounded(tako_cmd().args(args).args(configs))
}

const VERSIONS: [&str; 4] = ["1.0", "1.1", "1.2", "1.3"];

/// Each version published and fetched in turn, so the store holds four images and `latest`
/// points at 1.3. Returns the config and the digests in version order.
fn four_images(extra: &str) -> (World, PathBuf, Vec<String>) {
    let w = World::new();
    let config = w.config("app.tako", &w.file_url(), "*", extra);
    let mut digests = Vec::new();
    for v in VERSIONS {
        digests.push(w.publish(v));
        assert_exit(&run(&["fetch"], &[&config]), 0);
    }
    (w, config, digests)
}

fn sorted(names: &[&String]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// `NAME: VERB VERSION (SIZE bytes)` for each version, in order.
fn removed_lines(config: &Path, verb: &str, versions: &[&str]) -> String {
    let size = World::content("1.0").len();
    let mut text = String::new();
    for v in versions {
        text.push_str(&format!(
            "{}: {verb} {v} ({size} bytes)\n",
            config.display()
        ));
    }
    text
}

#[test]
fn gc_dry_run_prints_what_would_go_and_removes_nothing() {
    let (w, config, _) = four_images("");
    let before = snapshot(&w.dest());
    let o = run(&["gc", "--dry-run", "--keep", "1"], &[&config]);
    assert_exit(&o, 0);
    let size = World::content("1.0").len();
    assert_eq!(
        stdout(&o),
        format!(
            "{}{}: would free {} bytes\n",
            removed_lines(&config, "would remove", &["1.0", "1.1", "1.2"]),
            config.display(),
            3 * size
        )
    );
    assert_eq!(
        snapshot(&w.dest()),
        before,
        "a dry run changed the destination"
    );
}

#[test]
fn gc_keep_removes_exactly_the_older_images() {
    let (w, config, d) = four_images("");
    let o = run(&["gc", "--keep", "2"], &[&config]);
    assert_exit(&o, 0);
    let size = World::content("1.0").len();
    assert_eq!(
        stdout(&o),
        format!(
            "{}{}: freed {} bytes\n",
            removed_lines(&config, "removed", &["1.0", "1.1"]),
            config.display(),
            2 * size
        )
    );
    assert_eq!(w.store_files(), sorted(&[&d[2], &d[3]]));
    w.assert_latest(&d[3], &World::content("1.3"));
    // Nothing left to do the second time.
    let o = run(&["gc", "--keep", "2"], &[&config]);
    assert_eq!(stdout(&o), format!("{}: freed 0 bytes\n", config.display()));
}

#[test]
fn gc_never_removes_the_image_latest_points_at() {
    let (w, config, d) = four_images("");
    // Pin the host to 1.0: latest moves back to the oldest image.
    let pinned = w.config("app.tako", &w.file_url(), "1.0", "");
    assert_exit(&run(&["fetch"], &[&pinned]), 0);
    let o = run(&["gc", "--keep", "1"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(w.store_files(), sorted(&[&d[0], &d[3]]));
    w.assert_latest(&d[0], &World::content("1.0"));
}

#[test]
fn gc_takes_keep_from_the_config_and_keep_overrides_it() {
    let (w, config, d) = four_images("Keep=3\n");
    // Keep= made each fetch collect already: four images, three kept.
    assert_eq!(w.store_files(), sorted(&[&d[1], &d[2], &d[3]]));
    let o = run(&["gc", "--dry-run"], &[&config]);
    assert_eq!(
        stdout(&o),
        format!("{}: would free 0 bytes\n", config.display())
    );
    fs::write(
        &config,
        fs::read_to_string(&config)
            .unwrap()
            .replace("Keep=3", "Keep=2"),
    )
    .unwrap();
    let o = run(&["gc"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(w.store_files(), sorted(&[&d[2], &d[3]]));
    let o = run(&["gc", "--keep", "1"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(w.store_files(), sorted(&[&d[3]]));
}

#[test]
fn gc_keeps_three_images_by_default() {
    let (w, config, d) = four_images("");
    let o = run(&["gc", "--json"], &[&config]);
    assert_exit(&o, 0);
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["keep"], 3);
    assert_eq!(r["outcome"], "collected");
    assert_eq!(r["dry_run"], false);
    assert_eq!(
        r["removed"],
        serde_json::json!([{
            "file": d[0],
            "reason": "old",
            "versions": ["1.0"],
            "size": World::content("1.0").len(),
        }])
    );
    assert_eq!(r["freed"], World::content("1.0").len());
    assert_eq!(r["error"], Value::Null);
    assert_eq!(w.store_files(), sorted(&[&d[1], &d[2], &d[3]]));
}

#[test]
fn gc_removes_unlisted_files_and_stale_temporaries() {
    let (w, config, d) = four_images("");
    let store = w.dest().join("store");
    fs::write(store.join("left-by-hand"), b"12345").unwrap();
    fs::write(store.join(format!("{}.new", d[0])), b"partial").unwrap();
    let o = run(&["gc", "--keep", "4"], &[&config]);
    assert_exit(&o, 0);
    let name = config.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{name}: removed unlisted store/left-by-hand (5 bytes)\n{name}: removed temporary store/{}.new (7 bytes)\n{name}: freed 12 bytes\n",
            d[0]
        )
    );
    assert_eq!(w.store_files(), sorted(&d.iter().collect::<Vec<_>>()));
}

/// Issue 23, new user 7: tako's own `.partial.validator` was called "unlisted", as if
/// someone had copied it in by hand.
#[test]
fn a_partial_downloads_validator_is_a_temporary_not_an_unlisted_file() {
    let (w, config, d) = four_images("");
    let store = w.dest().join("store");
    fs::write(store.join(format!("{}.partial", d[0])), b"abc").unwrap();
    fs::write(store.join(format!("{}.partial.validator", d[0])), b"\"e1\"").unwrap();
    let o = run(&["status"], &[&config]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("unlisted"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("{}.partial.validator", d[0])) && l.contains("temporary")),
        "{out}"
    );
    let o = run(&["gc", "--keep", "4"], &[&config]);
    assert_exit(&o, 0);
    let name = config.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{name}: removed temporary store/{0}.partial (3 bytes)\n{name}: removed temporary store/{0}.partial.validator (4 bytes)\n{name}: freed 7 bytes\n",
            d[0]
        )
    );
}

#[test]
fn gc_refuses_to_guess_without_a_local_manifest() {
    let (w, config, _) = four_images("");
    fs::remove_file(w.dest().join("manifest")).unwrap();
    let before = snapshot(&w.dest());
    let o = run(&["gc"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("there is no local manifest"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&w.dest()), before);
}

#[test]
fn gc_refuses_keep_zero_on_the_command_line_and_in_the_config() {
    let (w, config, _) = four_images("");
    let o = run(&["gc", "--keep", "0"], &[&config]);
    assert_exit(&o, 2);
    let bad = w.config("bad.tako", &w.file_url(), "*", "Keep=0\n");
    let o = run(&["gc"], &[&bad]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with(&format!(
            "tako: error: {}:5: Keep= must be a whole number of images, at least 1; found '0'",
            bad.display()
        )),
        "{}",
        stderr(&o)
    );
    let toml = w.path("bad.toml");
    fs::write(
        &toml,
        format!(
            "origin = \"{}\"\npublic_key = \"{TEST_PUBLIC}\"\ndestination = \"{}\"\nversion = \"*\"\nkeep = 0\n",
            w.file_url(),
            w.dest().display()
        ),
    )
    .unwrap();
    let o = run(&["gc"], &[&toml]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("{}:5: Keep= must be", toml.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fetch_with_keep_collects_after_it_moved_latest() {
    let w = World::new();
    let config = w.config("app.tako", &w.file_url(), "*", "Keep=1\n");
    w.publish("1.0");
    assert_exit(&run(&["fetch"], &[&config]), 0);
    let d11 = w.publish("1.1");
    let o = run(&["fetch"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: updated 1.0 -> 1.1; removed 1.0 ({} bytes)\n",
            config.display(),
            World::content("1.0").len()
        )
    );
    assert_eq!(w.store_files(), std::slice::from_ref(&d11));
    w.assert_latest(&d11, &World::content("1.1"));

    // Up to date: latest did not move, so nothing is collected.
    fs::write(w.dest().join("store").join("junk"), b"x").unwrap();
    let o = run(&["fetch"], &[&config]);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.1)\n", config.display())
    );
    assert_eq!(w.store_files(), sorted(&[&d11, &"junk".to_string()]));
}

#[test]
fn fetch_without_keep_keeps_every_image() {
    let (w, _, d) = four_images("");
    assert_eq!(w.store_files(), sorted(&d.iter().collect::<Vec<_>>()));
}

#[test]
fn gc_removes_a_planted_symlink_but_never_what_it_points_at() {
    let (w, config, d) = four_images("");
    let victim = w.path("victim");
    fs::write(&victim, b"precious").unwrap();
    let store = w.dest().join("store");
    std::os::unix::fs::symlink(&victim, store.join("link")).unwrap();
    // Named as an old image: still only the link goes.
    fs::remove_file(store.join(&d[0])).unwrap();
    std::os::unix::fs::symlink(&victim, store.join(&d[0])).unwrap();
    let o = run(&["gc", "--keep", "3"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(w.store_files(), sorted(&[&d[1], &d[2], &d[3]]));
}

#[test]
fn gc_refuses_a_store_that_is_a_symlink_and_removes_nothing_through_it() {
    let (w, config, d) = four_images("");
    let store = w.dest().join("store");
    let moved = w.path("moved-store");
    fs::rename(&store, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &store).unwrap();
    let o = run(&["gc", "--keep", "1"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("{}: it is a symbolic link", store.display())),
        "{}",
        stderr(&o)
    );
    let mut left: Vec<String> = fs::read_dir(&moved)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, sorted(&d.iter().collect::<Vec<_>>()));
}
