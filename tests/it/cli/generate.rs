//! `tako generate`: the man pages render without warnings and the completion scripts load in
//! the shells they are for.

use crate::support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::tako::*;
use support::tools;

/// Runs `tako generate man --dir` into a new directory; returns it and the files written.
fn man_pages() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let o = tako(&["generate", "man", "--dir", dir.path().to_str().unwrap()]);
    assert_exit(&o, 0);
    let printed: Vec<PathBuf> = stdout(&o).lines().map(PathBuf::from).collect();
    (dir, printed)
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Every page as printed to stdout and as written by `--dir`.
fn all_page_files() -> (tempfile::TempDir, Vec<PathBuf>) {
    let (dir, mut pages) = man_pages();
    let o = tako(&["generate", "man"]);
    assert_exit(&o, 0);
    let stdout_page = dir.path().join("stdout.1");
    fs::write(&stdout_page, &o.stdout).unwrap();
    pages.push(stdout_page);
    (dir, pages)
}

fn run(cmd: &mut Command) -> Output {
    run_bounded(cmd)
}

#[test]
fn generate_man_prints_the_tako_page_listing_every_command() {
    let o = tako(&["generate", "man"]);
    assert_exit(&o, 0);
    let page = stdout(&o);
    assert!(page.contains(".TH TAKO 1 "), "{page}");
    assert_eq!(page.matches("\n.TH ").count(), 1, "one document: {page}");
    // The apostrophe string is defined once, before the title, not before every section.
    assert!(page.starts_with(".ie \\n(.g .ds Aq \\(aq\n"), "{page}");
    assert_eq!(page.matches(".ds Aq").count(), 2, "{page}");
    for command in [
        "tako\\-fetch",
        "tako\\-store",
        "tako\\-gen\\-key",
        "tako\\-generate",
    ] {
        assert!(
            page.contains(&format!("\n{command}(1)\n")),
            "{command}: {page}"
        );
    }
    assert!(page.contains(".SH \"EXIT STATUS\""), "{page}");
    assert!(page.contains(".SH \"SEE ALSO\""), "{page}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn man_dir_writes_one_page_per_command_and_prints_each_path() {
    let (dir, printed) = man_pages();
    let names = file_names(&printed);
    for expected in [
        "tako.1",
        "tako-fetch.1",
        "tako-store.1",
        "tako-gen-key.1",
        "tako-generate.1",
        "tako-generate-man.1",
        "tako-generate-completion.1",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    assert_eq!(names[0], "tako.1", "the top page comes first");
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

    let mut on_disk: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(on_disk, sorted, "exactly the printed files, no temporaries");

    // The stdout page and the written tako.1 are the same document.
    let o = tako(&["generate", "man"]);
    assert_eq!(fs::read(dir.path().join("tako.1")).unwrap(), o.stdout);

    let fetch = fs::read_to_string(dir.path().join("tako-fetch.1")).unwrap();
    assert!(fetch.contains(".TH TAKO-FETCH 1 "), "{fetch}");
    assert!(fetch.contains("\\fBtako fetch\\fR"), "synopsis: {fetch}");
    assert!(fetch.contains("\\-\\-no\\-verify"), "options: {fetch}");
    assert!(fetch.contains(".SH CONFIGURATION"), "{fetch}");
}

#[test]
fn every_man_page_passes_groff_without_warnings() {
    if !tools::available("groff") {
        return;
    }
    let (_dir, pages) = all_page_files();
    for page in &pages {
        let o = run(Command::new("groff").args(["-z", "-man", "-ww"]).arg(page));
        assert_exit(&o, 0);
        assert!(
            o.stderr.is_empty(),
            "groff warns about {}:\n{}",
            page.display(),
            stderr(&o)
        );
    }
}

#[test]
fn every_man_page_passes_man_warnings() {
    if !tools::available("man") {
        return;
    }
    let (_dir, pages) = all_page_files();
    for page in &pages {
        let o = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"));
        assert_exit(&o, 0);
        assert!(
            o.stderr.is_empty(),
            "man warns about {}:\n{}",
            page.display(),
            stderr(&o)
        );
        assert!(
            stdout(&o).contains("SEE ALSO"),
            "rendered {}:\n{}",
            page.display(),
            stdout(&o)
        );
    }
}

/// groff reads Latin-1 unless a preprocessor converts the input, so a raw UTF-8 `…` from a
/// help text printed as garbage on a plain `groff -man` and drew a warning.
#[test]
fn man_pages_contain_only_ascii_with_other_characters_escaped() {
    let (_dir, pages) = all_page_files();
    for page in &pages {
        let bytes = fs::read(page).unwrap();
        assert!(
            bytes.is_ascii(),
            "{} has raw non-ASCII bytes",
            page.display()
        );
    }
    // The store page's `SECRET+…` keeps its ellipsis as an escape.
    let store = pages.iter().find(|p| p.ends_with("tako-store.1")).unwrap();
    let text = fs::read_to_string(store).unwrap();
    assert!(text.contains("SECRET+\\[u2026]"), "{text}");
}

/// clap_mangen writes an empty date as nothing, so `man` showed "tako 0.1.0" as the date
/// and no source in the footer.
#[test]
fn man_page_title_line_keeps_every_field_in_its_place() {
    let o = tako(&["generate", "man"]);
    let page = stdout(&o);
    let expected = format!(
        ".TH TAKO 1 \"\" \"tako {}\" \"Tako Manual\"\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(page.contains(&expected), "{page}");
}

#[test]
fn man_dir_that_does_not_exist_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let o = tako(&["generate", "man", "--dir", missing.to_str().unwrap()]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: cannot write man pages into {}: ",
            missing.display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn man_dir_that_is_a_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"keep me").unwrap();
    let o = tako(&["generate", "man", "--dir", file.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o),
        format!(
            "tako: error: cannot write man pages into {}: not a directory\n",
            file.display()
        )
    );
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn man_dir_replaces_a_planted_symlink_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    fs::create_dir(&pages).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"not a man page").unwrap();
    symlink(&victim, pages.join("tako.1")).unwrap();
    symlink(&victim, pages.join("tako-fetch.1.new")).unwrap();

    let o = tako(&["generate", "man", "--dir", pages.to_str().unwrap()]);
    assert_exit(&o, 0);

    assert_eq!(fs::read(&victim).unwrap(), b"not a man page");
    for name in ["tako.1", "tako-fetch.1"] {
        let meta = fs::symlink_metadata(pages.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is a regular file now");
    }
    assert!(!pages.join("tako-fetch.1.new").exists());
}

#[test]
fn generate_to_a_full_stdout_fails_with_a_message_not_a_panic() {
    let full = fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        eprintln!("*** SKIPPED: no /dev/full ***");
        return;
    };
    for args in [
        &["generate", "man"][..],
        &["generate", "completion", "bash"][..],
    ] {
        let o = Bounded::new(tako_cmd().args(args))
            .stdout(full.try_clone().unwrap())
            .run();
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with("tako: error: cannot write to standard output: "),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

fn completion(shell: &str) -> (tempfile::TempDir, PathBuf) {
    let o = tako(&["generate", "completion", shell]);
    assert_exit(&o, 0);
    assert!(!o.stdout.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let name = match shell {
        "zsh" => "_tako".to_owned(),
        _ => format!("tako.{shell}"),
    };
    let path = dir.path().join(name);
    fs::write(&path, &o.stdout).unwrap();
    (dir, path)
}

fn bash(script: &Path, code: &str) -> Output {
    run(Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(format!("source '{}' && {code}", script.display())))
}

#[test]
fn bash_completion_parses_and_registers_a_completion_for_tako() {
    if !tools::available("bash") {
        return;
    }
    let (_dir, script) = completion("bash");
    let o = run(Command::new("bash").arg("-n").arg(&script));
    assert_exit(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    let o = bash(&script, "complete -p tako");
    assert_exit(&o, 0);
    let line = stdout(&o);
    assert!(line.starts_with("complete "), "{line}");
    assert!(line.contains(" -F _tako "), "{line}");
    assert!(line.trim_end().ends_with(" tako"), "{line}");
}

#[test]
fn bash_completion_offers_commands_options_and_shells() {
    if !tools::available("bash") {
        return;
    }
    let (_dir, script) = completion("bash");
    // What bash sets before it calls a completion function, then the reply.
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let code = format!(
            "COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
             _tako tako '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words.len() - 1,
            words.join(" "),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let o = bash(&script, &code);
        assert_exit(&o, 0);
        stdout(&o).lines().map(str::to_owned).collect()
    };
    assert_eq!(complete(&["tako", "fe"]), ["fetch"]);
    let generate = complete(&["tako", "gen"]);
    assert!(generate.contains(&"gen-key".to_owned()), "{generate:?}");
    assert!(generate.contains(&"generate".to_owned()), "{generate:?}");
    let shells = complete(&["tako", "generate", "completion", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell.to_owned()), "{shells:?}");
    }
    let options = complete(&["tako", "fetch", "--no-"]);
    assert!(options.contains(&"--no-verify".to_owned()), "{options:?}");
    assert!(options.contains(&"--no-restart".to_owned()), "{options:?}");
}

#[test]
fn zsh_completion_parses_and_defines_the_tako_function() {
    if !tools::available("zsh") {
        return;
    }
    let (dir, script) = completion("zsh");
    let o = run(Command::new("zsh").arg("-n").arg(&script));
    assert_exit(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert!(
        fs::read_to_string(&script)
            .unwrap()
            .starts_with("#compdef tako\n")
    );
    // Loaded from fpath the way compinit finds it, the file defines _tako.
    let o = run(Command::new("zsh").arg("-fc").arg(format!(
        "fpath=('{}' $fpath); autoload -U _tako; whence -w _tako",
        dir.path().display()
    )));
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "_tako: function\n");
}

#[test]
fn fish_completion_parses_and_completes_commands() {
    if !tools::available("fish") {
        return;
    }
    let (_dir, script) = completion("fish");
    let o = run(Command::new("fish").arg("-n").arg(&script));
    assert_exit(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let o = run(Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!(
            "source '{}'; complete -C 'tako fe'",
            script.display()
        )));
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("fetch\t"), "{}", stdout(&o));
}

#[test]
fn completion_for_an_unknown_shell_is_a_usage_error() {
    let o = tako(&["generate", "completion", "tcsh"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&o)
    );
}

/// Issue 23, new user 12: completions offered the hidden, test-only `--retry-delay-ms`.
#[test]
fn completions_and_man_pages_offer_no_hidden_option() {
    for shell in ["bash", "zsh", "fish"] {
        let o = tako(&["generate", "completion", shell]);
        assert_exit(&o, 0);
        let script = stdout(&o);
        assert!(
            !script.contains("retry-delay"),
            "{shell} offers a hidden option"
        );
        assert!(
            script.contains("limit-rate"),
            "{shell} lost a visible option"
        );
    }
    let (_dir, pages) = all_page_files();
    for page in pages {
        let text = fs::read_to_string(&page).unwrap();
        assert!(
            !text.contains("retry\\-delay") && !text.contains("retry-delay"),
            "{}",
            page.display()
        );
    }
}
