//! The floors of `src/` and the one direction of their imports (see LAYOUT in docs/).
//!
//! Each folder of `src/` is a floor; a file may name `crate::<floor>` only for the floors
//! the table below lets its own floor use. The test reads every `src/**/*.rs`, so a new
//! arrow fails here before it becomes a tangle, and it also fails on any cycle between
//! floors and on any command module that names another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each floor may import. Root files (`lib.rs`, `main.rs`, `error.rs`) tie the floors
/// together and may name any of them.
const RULE: &[(&str, &[&str])] = &[
    (
        "commands",
        &[
            "api",
            "container",
            "update",
            "origin",
            "destination",
            "systemd",
            "ui",
            "cli",
            "stream",
            "fs",
            "format",
        ],
    ),
    (
        "api",
        &[
            "container",
            "update",
            "origin",
            "destination",
            "stream",
            "fs",
            "format",
        ],
    ),
    (
        "container",
        &[
            "update",
            "registry",
            "origin",
            "destination",
            "stream",
            "fs",
            "format",
        ],
    ),
    (
        "update",
        &["origin", "destination", "stream", "fs", "format"],
    ),
    ("origin", &["net", "registry", "stream", "fs", "format"]),
    ("destination", &["stream", "fs", "format"]),
    ("registry", &["net", "fs", "format"]),
    ("net", &["fs", "format"]),
    ("systemd", &["format"]),
    ("ui", &["format"]),
    ("cli", &["format"]),
    ("stream", &["format"]),
    ("fs", &["format"]),
    ("format", &[]),
];

/// Files at the top of `src/` that are not a floor of their own.
const ROOT_FILES: &[&str] = &["lib", "main", "error"];

/// Crates and std modules that do I/O or belong to the edges; `format/` names none of them.
const IO_IN_FORMAT: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::io::stdin",
    "std::io::stdout",
    "std::io::stderr",
    "std::env",
    "std::thread",
    "ureq::",
    "rustix::",
    "zbus::",
    "indicatif::",
    "clap::",
    "tempfile::",
    "libc::",
    "rustls::",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The floor a file belongs to: its first folder below `src/`, or for a file at the top the
/// file's own name (`systemd.rs` is the floor `systemd`).
fn floor_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let first = first.as_os_str().to_str().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The source with comments removed, so that a doc link naming `crate::x` is not an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string ("http://…") is not a comment: keep lines with a quote
            // before the slashes as they are.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every first path segment after `crate::` in `code`, including those in a grouped
/// `use crate::{a, b::c}`.
fn crate_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `my_crate::…`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

struct Source {
    relative: PathBuf,
    floor: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap().to_path_buf();
            let text = std::fs::read_to_string(&path).unwrap();
            Source {
                floor: floor_of(&relative),
                relative,
                code: code_of(&text),
            }
        })
        .collect()
}

fn allowed(floor: &str) -> Option<&'static [&'static str]> {
    RULE.iter().find(|(f, _)| *f == floor).map(|(_, a)| *a)
}

/// Every `crate::<floor>` a file names that its own floor may not use.
fn forbidden_arrows(sources: &[Source]) -> Vec<String> {
    let floors: BTreeSet<&str> = RULE.iter().map(|(f, _)| *f).collect();
    let mut wrong = Vec::new();
    for source in sources {
        if ROOT_FILES.contains(&source.floor.as_str()) {
            continue;
        }
        let Some(may) = allowed(&source.floor) else {
            wrong.push(format!(
                "{}: {} is not a floor of the layout (add it to RULE or move the file)",
                source.relative.display(),
                source.floor
            ));
            continue;
        };
        for name in crate_names(&source.code) {
            let shown = source.relative.display();
            if name == source.floor {
                continue;
            }
            if ROOT_ITEMS.contains(&name.as_str()) {
                if source.floor != "commands" {
                    wrong.push(format!(
                        "{shown}: names crate::{name}; only commands/ may use the root's items"
                    ));
                }
            } else if !floors.contains(name.as_str()) {
                wrong.push(format!("{shown}: names crate::{name}, which is no floor"));
            } else if !may.contains(&name.as_str()) {
                wrong.push(format!(
                    "{shown}: {} may not import crate::{name}",
                    source.floor
                ));
            }
        }
        if source.code.contains("super::super") {
            wrong.push(format!(
                "{}: super::super reaches past its floor; name the floor with crate::",
                source.relative.display()
            ));
        }
    }
    wrong
}

/// Items of `lib.rs` that commands may name (the run's outcome and error).
const ROOT_ITEMS: &[&str] = &["Error", "Exit"];

/// The floors each floor really imports, from the sources.
fn floor_graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let floors: BTreeSet<&str> = RULE.iter().map(|(f, _)| *f).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        if ROOT_FILES.contains(&source.floor.as_str()) {
            continue;
        }
        let edges = graph.entry(source.floor.clone()).or_default();
        for name in crate_names(&source.code) {
            if name != source.floor && floors.contains(name.as_str()) {
                edges.insert(name);
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the floors along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn every_import_in_src_points_down_the_floors_of_the_layout() {
    let wrong = forbidden_arrows(&sources());
    assert!(
        wrong.is_empty(),
        "imports the layout forbids:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_floors_of_src_import_each_other_without_a_cycle() {
    let graph = floor_graph(&sources());
    assert_eq!(find_cycle(&graph), None, "floor graph: {graph:?}");
}

#[test]
fn no_command_module_imports_another_command() {
    let mut wrong = Vec::new();
    for source in sources() {
        if source.floor == "commands" && source.code.contains("crate::commands") {
            wrong.push(source.relative.display().to_string());
        }
    }
    assert!(wrong.is_empty(), "commands that import commands: {wrong:?}");
}

#[test]
fn the_pure_formats_use_no_io_crate() {
    let mut wrong = Vec::new();
    for source in sources().iter().filter(|s| s.floor == "format") {
        // Their unit tests too: the vectors are compiled in (`include_bytes!`).
        for needle in IO_IN_FORMAT {
            if source.code.contains(needle) {
                wrong.push(format!("{}: {needle}", source.relative.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "I/O in format/: {wrong:?}");
}

// The checks above must be able to fail: each is run here on sources made for the purpose.

fn made(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(path, text)| {
            let relative = PathBuf::from(path);
            Source {
                floor: floor_of(&relative),
                relative,
                code: code_of(text),
            }
        })
        .collect()
}

#[test]
fn an_import_up_the_floors_is_reported() {
    let wrong = forbidden_arrows(&made(&[(
        "format/version.rs",
        "use crate::fs::Dir;\nuse crate::{net::Transport, format::text};",
    )]));
    assert_eq!(
        wrong,
        vec![
            "format/version.rs: format may not import crate::fs",
            "format/version.rs: format may not import crate::net"
        ]
    );
}

#[test]
fn a_doc_link_to_a_higher_floor_is_not_an_import() {
    let wrong = forbidden_arrows(&made(&[(
        "format/version.rs",
        "/// See [`crate::commands::fetch`].\nfn f() {} // crate::net",
    )]));
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn a_cycle_between_floors_is_found() {
    let graph = floor_graph(&made(&[
        ("net/mod.rs", "use crate::registry::Client;"),
        ("registry/mod.rs", "use crate::net::Transport;"),
    ]));
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"net".to_string()) && cycle.contains(&"registry".to_string()));
}

#[test]
fn a_file_outside_every_floor_is_reported() {
    let wrong = forbidden_arrows(&made(&[("helpers.rs", "fn f() {}")]));
    assert_eq!(
        wrong,
        vec!["helpers.rs: helpers is not a floor of the layout (add it to RULE or move the file)"]
    );
}
