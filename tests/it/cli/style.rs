//! Issue 23 item 16: one style across the command line. Every command's `--help` has the
//! same shape, a usage error looks like every other error, and sizes are written one way
//! in every human output.

use crate::support;

use support::origin::World;
use support::tako::*;

/// The subcommands a `--help` text lists under `Commands:`, without clap's `help`.
fn commands_listed(help: &str) -> Vec<String> {
    let Some((_, rest)) = help.split_once("\nCommands:\n") else {
        return Vec::new();
    };
    rest.lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// `tako PATH… --help`, checked for the shape every command's help has: a summary line
/// ending in a full stop, a blank line, a paragraph, a blank line, the usage of that very
/// command, and every option described on a line of its own.
#[track_caller]
fn help_of(path: &[String]) -> String {
    let o = tako(
        &path
            .iter()
            .map(String::as_str)
            .chain(["--help"])
            .collect::<Vec<_>>(),
    );
    assert_exit(&o, 0);
    let help = stdout(&o);
    let shown = format!("tako {}", path.join(" "));
    let mut lines = help.lines();
    let summary = lines.next().unwrap_or_default();
    assert!(
        summary.ends_with('.') && !summary.is_empty(),
        "{shown}: the summary line is missing or has no full stop:\n{help}"
    );
    assert_eq!(lines.next(), Some(""), "{shown}: no blank line:\n{help}");
    let paragraph = lines.next().unwrap_or_default();
    assert!(
        !paragraph.is_empty() && !paragraph.starts_with("Usage:"),
        "{shown}: no paragraph under the summary:\n{help}"
    );
    let usage = format!("\n\nUsage: {}", shown.trim_end());
    assert!(help.contains(&usage), "{shown}: no '{usage}':\n{help}");
    // The long form: each option's description on its own line under it.
    assert!(
        help.contains("  -h, --help\n          Print help"),
        "{shown}: options are not in the long form:\n{help}"
    );
    help
}

#[test]
fn every_commands_help_has_the_same_shape() {
    let top = help_of(&[]);
    let mut pending: Vec<Vec<String>> =
        commands_listed(&top).into_iter().map(|c| vec![c]).collect();
    assert!(pending.len() >= 10, "{top}");
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let help = help_of(&path);
        seen += 1;
        for sub in commands_listed(&help) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
    }
    // fetch … generate, and the subcommands of image and generate.
    assert!(seen >= 15, "only {seen} commands");
}

#[test]
fn a_usage_error_says_tako_error_and_exits_2() {
    for args in [
        &["fetch", "--bogus", "a.tako"][..],
        &["fetch"],
        &["frobnicate"],
        &["image", "pull"],
    ] {
        let o = tako(args);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.starts_with("tako: error: "), "{args:?}: {err}");
        assert!(err.contains("Usage: tako"), "{args:?}: {err}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
}

/// Every size in `text`, as a number and what follows it: `1.5 MiB`, `12 bytes`.
fn sizes_in(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split([' ', '(', ')', ',', '\n', ';']).collect();
    words
        .windows(2)
        .filter(|w| {
            ["bytes", "byte", "B", "KiB", "MiB", "GiB"].contains(&w[1])
                && w[0].chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect()
}

/// Whether `size` is written in tako's one style: a whole count of bytes below 1 KiB, else
/// one decimal and a binary unit.
fn in_the_one_style(size: &str) -> bool {
    let Some((number, unit)) = size.split_once(' ') else {
        return false;
    };
    match unit {
        "bytes" | "byte" => number.parse::<u64>().is_ok_and(|n| n < 1024),
        "KiB" | "MiB" | "GiB" => number
            .split_once('.')
            .is_some_and(|(whole, tenth)| whole.parse::<u64>().is_ok() && tenth.len() == 1),
        _ => false,
    }
}

#[test]
fn status_gc_fetch_and_image_purge_write_sizes_in_one_style() {
    let world = World::new();
    let big = noise(1, 1_572_864);
    world.publish_bytes("1.0", &big);
    let config = world.config("app.tako", &world.file_url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let mut newer = big.clone();
    newer[100] ^= 1;
    world.publish_bytes("1.1", &newer);
    std::fs::write(world.dest().join("store/left-by-hand"), b"12345").unwrap();

    let fetched = fetch(&[], &[&config]);
    let status = tako(&["status", config.to_str().unwrap()]);
    let gc = tako(&["gc", "--keep", "1", config.to_str().unwrap()]);
    let cache = world.path("cache");
    std::fs::create_dir(&cache).unwrap();
    let purge = tako(&["image", "purge", "--cache", cache.to_str().unwrap()]);

    let mut all = Vec::new();
    for (what, o) in [
        ("fetch", &fetched),
        ("status", &status),
        ("gc", &gc),
        ("image purge", &purge),
    ] {
        assert_exit(o, 0);
        let sizes = sizes_in(&stdout(o));
        assert!(!sizes.is_empty(), "{what} printed no size: {}", stdout(o));
        for size in &sizes {
            assert!(
                in_the_one_style(size),
                "{what} wrote '{size}':\n{}",
                stdout(o)
            );
        }
        all.extend(sizes);
    }
    // Representative ones, as a person reads them.
    assert!(all.contains(&"1.5 MiB".to_owned()), "{all:?}");
    assert!(all.contains(&"5 bytes".to_owned()), "{all:?}");
    assert!(
        stdout(&gc).contains("removed 1.0 (1.5 MiB)"),
        "{}",
        stdout(&gc)
    );
}
