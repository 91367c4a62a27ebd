//! `make install`: every file where docs/install.md says, with its mode; units that name the
//! installed binary and pass `systemd-analyze verify` and `security`.
//!
//! The tests install the binary cargo built for them (`BIN=`), so make never runs cargo here.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::tako::*;
use support::tools;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tako")
}

/// `make TARGET BIN=<the test binary> VARS…` in the repository, under the strict umask 077
/// some administrators use, which must not leave installed files unreadable.
fn make(target: &str, vars: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077 && exec make \"$@\"", "make"]);
    cmd.arg("-C").arg(repo()).arg(target);
    cmd.arg(format!("BIN={}", bin()));
    for (name, value) in vars {
        cmd.arg(format!("{name}={}", value.display()));
    }
    // A developer's environment must not move the files.
    for var in [
        "PREFIX",
        "DESTDIR",
        "BINDIR",
        "DATADIR",
        "MANDIR",
        "DOCDIR",
        "SYSTEMDUNITDIR",
        "MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    run_bounded(&mut cmd)
}

/// Every entry below `root` as path relative to `root` -> mode: (files, directories).
fn tree(root: &Path) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    fn walk(
        root: &Path,
        dir: &Path,
        files: &mut BTreeMap<String, u32>,
        dirs: &mut BTreeMap<String, u32>,
    ) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                dirs.insert(rel, mode);
                walk(root, &path, files, dirs);
            } else {
                files.insert(rel, mode);
            }
        }
    }
    let (mut files, mut dirs) = (BTreeMap::new(), BTreeMap::new());
    walk(root, root, &mut files, &mut dirs);
    (files, dirs)
}

/// Every file below `root`, as path relative to `root` -> mode.
fn files(root: &Path) -> BTreeMap<String, u32> {
    tree(root).0
}

/// The man pages the binary makes, by file name.
fn man_page_names() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let o = tako(&["generate", "man", "--dir", dir.path().to_str().unwrap()]);
    assert_exit(&o, 0);
    stdout(&o)
        .lines()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// The Markdown files in docs/, which install copies.
fn doc_names() -> Vec<String> {
    fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect()
}

/// The files `make install` puts under `prefix` by default, with their modes.
fn expected(prefix: &str) -> BTreeMap<String, u32> {
    let mut want = BTreeMap::new();
    let mut add = |path: String, mode: u32| {
        want.insert(format!("{prefix}/{path}"), mode);
    };
    add("bin/tako".into(), 0o755);
    for page in man_page_names() {
        add(format!("share/man/man1/{page}"), 0o644);
    }
    add("share/bash-completion/completions/tako".into(), 0o644);
    add("share/zsh/site-functions/_tako".into(), 0o644);
    add("share/fish/vendor_completions.d/tako.fish".into(), 0o644);
    add("lib/systemd/system/tako-fetch@.service".into(), 0o644);
    add("lib/systemd/system/tako-fetch@.timer".into(), 0o644);
    for doc in doc_names() {
        add(format!("share/doc/tako/{doc}"), 0o644);
    }
    add("share/doc/tako/README.md".into(), 0o644);
    add("share/doc/tako/LICENSE".into(), 0o644);
    add("share/doc/tako/examples/app.tako".into(), 0o644);
    add("share/doc/tako/examples/example-app.service".into(), 0o644);
    want
}

/// The value of every `KEY=` line in a unit file.
fn unit_values(unit: &Path, key: &str) -> Vec<String> {
    fs::read_to_string(unit)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .collect()
}

#[test]
fn make_install_into_destdir_puts_every_file_where_documented_with_its_mode() {
    if !tools::available("make") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let o = make("install", &[("DESTDIR", dest.path())]);
    assert_exit(&o, 0);

    let root = dest.path().join("usr/local");
    assert_eq!(files(dest.path()), expected("usr/local"));

    // The installed files are what the binary makes and what the repository holds.
    assert_eq!(
        fs::read(root.join("bin/tako")).unwrap(),
        fs::read(bin()).unwrap()
    );
    assert_eq!(
        fs::read(root.join("share/man/man1/tako.1")).unwrap(),
        tako(&["generate", "man"]).stdout
    );
    for (shell, path) in [
        ("bash", "share/bash-completion/completions/tako"),
        ("zsh", "share/zsh/site-functions/_tako"),
        ("fish", "share/fish/vendor_completions.d/tako.fish"),
    ] {
        assert_eq!(
            fs::read(root.join(path)).unwrap(),
            tako(&["generate", "completion", shell]).stdout,
            "{path}"
        );
    }
    assert_eq!(
        fs::read(root.join("share/doc/tako/fetch.md")).unwrap(),
        fs::read(repo().join("docs/fetch.md")).unwrap()
    );
    // Every directory install created can be read by everyone, whatever the umask.
    let (_, dirs) = tree(dest.path());
    assert!(
        dirs.contains_key("usr/local/lib/systemd/system"),
        "{dirs:?}"
    );
    for (dir, mode) in &dirs {
        assert_eq!(*mode, 0o755, "{dir}");
    }
    let timer = root.join("lib/systemd/system/tako-fetch@.timer");
    assert_eq!(
        fs::read(&timer).unwrap(),
        fs::read(repo().join("contrib/systemd/tako-fetch@.timer")).unwrap()
    );
}

#[test]
fn installed_units_run_the_installed_binary_for_the_default_prefix() {
    if !tools::available("make") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    assert_exit(&make("install", &[("DESTDIR", dest.path())]), 0);
    let root = dest.path().join("usr/local");
    let service = root.join("lib/systemd/system/tako-fetch@.service");
    assert_eq!(
        unit_values(&service, "ExecStart"),
        ["/usr/local/bin/tako fetch /etc/tako/%i"]
    );
    assert!(root.join("bin/tako").is_file());

    // The README's Install section installs to the place the units expect.
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let install = readme
        .split("\n## Install\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has an Install section");
    assert!(install.contains("make install"), "{install}");
    assert!(install.contains("/usr/local/bin/tako"), "{install}");
}

#[test]
fn installed_fetch_service_runs_at_low_priority_and_creates_the_destinations_parent() {
    if !tools::available("make") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    assert_exit(&make("install", &[("DESTDIR", dest.path())]), 0);
    let service = dest
        .path()
        .join("usr/local/lib/systemd/system/tako-fetch@.service");
    // systemd creates /var/lib/images before the service starts, instead of the sandbox
    // failing the start when a ReadWritePaths= directory is missing.
    assert_eq!(unit_values(&service, "StateDirectory"), ["images"]);
    assert!(unit_values(&service, "ReadWritePaths").is_empty());
    assert_eq!(unit_values(&service, "Nice"), ["19"]);
    assert_eq!(unit_values(&service, "CPUSchedulingPolicy"), ["batch"]);
    assert_eq!(unit_values(&service, "IOSchedulingClass"), ["idle"]);
    for unit in ["tako-fetch@.service", "tako-fetch@.timer"] {
        let unit = service.with_file_name(unit);
        assert_eq!(
            unit_values(&unit, "Documentation"),
            ["man:tako-fetch(1) man:tako(1)"],
            "{}",
            unit.display()
        );
    }
}

#[test]
fn installed_units_name_the_installed_binary_under_any_prefix() {
    if !tools::available("make") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let prefix = Path::new("/opt/tako");
    let o = make("install", &[("DESTDIR", dest.path()), ("PREFIX", prefix)]);
    assert_exit(&o, 0);

    let root = dest.path().join("opt/tako");
    assert_eq!(files(dest.path()), expected("opt/tako"));
    let units = root.join("lib/systemd/system");
    assert_eq!(
        unit_values(&units.join("tako-fetch@.service"), "ExecStart"),
        ["/opt/tako/bin/tako fetch /etc/tako/%i"]
    );
    let example = root.join("share/doc/tako/examples/example-app.service");
    assert_eq!(
        unit_values(&example, "ExecStartPre"),
        ["/opt/tako/bin/tako fetch --init /etc/tako/app.tako"]
    );
    for file in files(dest.path()).keys() {
        let text = fs::read(dest.path().join(file)).unwrap();
        if file.contains("/systemd/") || file.contains("/examples/") {
            let text = String::from_utf8(text).unwrap();
            assert!(!text.contains("/usr/local/bin/tako"), "{file}:\n{text}");
        }
    }
}

#[test]
fn uninstall_removes_every_file_install_added() {
    if !tools::available("make") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    // Something of another package's in a shared directory, which must stay.
    let other = dest.path().join("usr/local/share/man/man1/other.1");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::write(&other, b".TH OTHER 1\n").unwrap();

    assert_exit(&make("install", &[("DESTDIR", dest.path())]), 0);
    assert!(files(dest.path()).len() > 10);
    assert_exit(&make("uninstall", &[("DESTDIR", dest.path())]), 0);

    let left: Vec<String> = files(dest.path()).into_keys().collect();
    assert_eq!(left, ["usr/local/share/man/man1/other.1"]);
    assert!(!dest.path().join("usr/local/share/doc/tako").exists());
}

/// Installs into a real prefix (no DESTDIR), so that the units' ExecStart= names a binary
/// that exists, as `systemd-analyze verify` requires.
fn install_into_prefix() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let o = make("install", &[("PREFIX", &prefix)]);
    assert_exit(&o, 0);
    (dir, prefix)
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    if !tools::available("make") || !tools::available("systemd-analyze") {
        return;
    }
    let (_dir, prefix) = install_into_prefix();
    let units = prefix.join("lib/systemd/system");
    // verify also runs `man` for each Documentation=man:… reference, so the installed
    // pages must be found.
    let o = run_bounded(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.join("tako-fetch@.service"))
            .arg(units.join("tako-fetch@.timer"))
            .env("MANPATH", prefix.join("share/man"))
            .env("SYSTEMD_LOG_COLOR", "0"),
    );
    assert_exit(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert!(
        unit_values(&units.join("tako-fetch@.service"), "Documentation")
            .iter()
            .any(|d| d.contains("man:tako-fetch(1)"))
    );
}

#[test]
fn installed_fetch_service_passes_systemd_analyze_security() {
    if !tools::available("make") || !tools::available("systemd-analyze") {
        return;
    }
    let (_dir, prefix) = install_into_prefix();
    let service = prefix.join("lib/systemd/system/tako-fetch@.service");
    // Exposure is reported as 0.0 (best) to 10.0; --threshold takes tenths. The unit scores
    // 1.6 ("OK"): it runs as root to restart units over D-Bus and needs the network.
    let o = run_bounded(
        Command::new("systemd-analyze")
            .args([
                "security",
                "--offline=true",
                "--threshold=20",
                "--json=short",
            ])
            .arg(&service),
    );
    assert_exit(&o, 0);
    // JSON rather than the table, whose check marks depend on the locale.
    let report = stdout(&o);
    for kept in [
        "ProtectSystem=",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "NoNewPrivileges=",
        "SystemCallFilter=~@privileged",
        "ProcSubset=",
    ] {
        let set = format!("\"set\":true,\"name\":\"{kept}\"");
        assert!(report.contains(&set), "{kept} is not set:\n{report}");
    }
}

/// Issue 23, new user 13: the example config sent readers to a `ReadWritePaths=` that the
/// unit does not have. Every directive it says the unit has, the unit has.
#[test]
fn the_example_config_names_only_directives_that_the_unit_sets() {
    let example = fs::read_to_string(repo().join("contrib/systemd/app.tako")).unwrap();
    let unit = repo().join("contrib/systemd/tako-fetch@.service");
    let text = example.replace('\n', " ").replace("# ", "");
    let mut named = Vec::new();
    for marker in ["= of tako-fetch@.service", "= that tako-fetch@.service"] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find(marker) {
            let word: String = rest[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            named.push(word);
            rest = &rest[i + marker.len()..];
        }
    }
    assert!(
        !named.is_empty(),
        "the example no longer points at the unit"
    );
    for directive in named {
        assert!(
            !unit_values(&unit, &directive).is_empty(),
            "app.tako names {directive}= of tako-fetch@.service, which the unit does not set"
        );
    }
}

/// Issue 23, new user 14: the quick start built for minutes with no output at all.
#[test]
fn the_quick_start_says_it_builds_before_it_does_and_shows_cargos_progress() {
    let script = fs::read_to_string(repo().join("quickstart.sh")).unwrap();
    let build = script
        .lines()
        .position(|l| l.trim_start().starts_with("cargo build"))
        .expect("quickstart.sh builds tako");
    let lines: Vec<&str> = script.lines().collect();
    assert!(
        !lines[build].contains("--quiet") && !lines[build].contains(" -q"),
        "cargo's progress is hidden: {}",
        lines[build]
    );
    assert!(
        lines[..build]
            .iter()
            .any(|l| l.contains("echo") && l.contains("minutes")),
        "nothing says the build takes a while before it starts"
    );
}
