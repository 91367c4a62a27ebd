//! The documentation says what the program does: checks that catch docs drifting away from
//! the code (issue 23, new user 17).

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};

use support::tako::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(repo().join("README.md"));
    files.sort();
    files
}

#[test]
fn the_toml_example_sets_every_key_a_toml_config_accepts() {
    // The keys as tako itself lists them for an unknown one.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    fs::write(&config, "orign = \"x\"\n").unwrap();
    let o = run_bounded(tako_cmd().arg("fetch").arg(&config));
    assert_exit(&o, 1);
    let err = stderr(&o);
    let listed = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    let keys: Vec<&str> = listed
        .lines()
        .next()
        .unwrap()
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .collect();
    assert!(keys.contains(&"origin"), "{keys:?}");
    let text = fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let example = text
        .split("```toml")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("configuration.md has a TOML example");
    for key in keys {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{key} ="))),
            "the TOML example in docs/configuration.md does not set {key}"
        );
    }
}

#[test]
fn no_document_mentions_an_internal_issue_number() {
    for doc in docs() {
        let text = fs::read_to_string(&doc).unwrap().to_lowercase();
        for (i, _) in text.match_indices("issue ") {
            let next = text[i + "issue ".len()..].chars().next();
            assert!(
                !next.is_some_and(|c| c.is_ascii_digit()),
                "{} names an issue number: {}",
                doc.display(),
                &text[i..(i + 12).min(text.len())]
            );
        }
    }
}

/// In a drawn tree, `└──` ends a directory's list: nothing at the same depth follows it.
#[test]
fn every_drawn_directory_tree_is_well_formed() {
    for doc in docs() {
        let text = fs::read_to_string(&doc).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, pair) in lines.windows(2).enumerate() {
            let Some(end) = pair[0].find("└── ") else {
                continue;
            };
            let prefix = &pair[0][..end];
            let next = pair[1];
            let same_depth = next.starts_with(prefix)
                && (next[prefix.len()..].starts_with("├── ")
                    || next[prefix.len()..].starts_with("└── "));
            assert!(
                !same_depth,
                "{}:{}: an entry follows the last one of its directory",
                doc.display(),
                n + 2
            );
        }
    }
}

/// The commands `tako --help` lists, without `help`.
fn commands() -> Vec<String> {
    let o = run_bounded(tako_cmd().arg("--help"));
    assert_exit(&o, 0);
    let text = stdout(&o);
    let listed = text
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("--help lists the commands");
    listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// Issue 23, new user 11: registries.md named `tako reindex`, and the README's table
/// lacked `tako index`.
#[test]
fn the_docs_name_only_commands_that_exist_and_the_readme_lists_them_all() {
    let commands = commands();
    assert!(commands.contains(&"fetch".to_string()), "{commands:?}");
    for doc in docs() {
        let text = fs::read_to_string(&doc).unwrap();
        for (i, _) in text.match_indices("`tako ") {
            let word: String = text[i + "`tako ".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if word.is_empty() || word.starts_with('-') {
                continue; // `tako --help`, `tako -h`, `tako CONFIG`
            }
            assert!(
                commands.contains(&word),
                "{} names `tako {word}`, which is no command",
                doc.display()
            );
        }
    }
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    for command in commands {
        assert!(
            readme.contains(&format!("| `tako {command}")),
            "README's command table lacks tako {command}"
        );
    }
}
