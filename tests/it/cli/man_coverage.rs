//! Issue 23, new user 5: the man pages had fallen behind the code (no `oci://`, no mirrors,
//! no `Keep=`, half the files of a destination, a third of the environment variables, and
//! synopses without option arguments). These tests take what to look for from the code
//! itself, so that a config key, an environment variable or a destination file added later
//! fails them until the man page describes it.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use support::tako::*;

/// Every page `tako generate man --dir` writes, by file name, as roff source.
fn pages() -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let o = tako(&["generate", "man", "--dir", dir.path().to_str().unwrap()]);
    assert_exit(&o, 0);
    stdout(&o)
        .lines()
        .map(|path| {
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, fs::read_to_string(path).unwrap())
        })
        .collect()
}

fn page(name: &str) -> String {
    pages()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no page {name}"))
        .1
}

/// The text of section `title` of a roff page, with font changes and escapes taken out:
/// what a reader sees, near enough to search.
fn section(page: &str, title: &str) -> String {
    let heading = |line: &str| {
        line.strip_prefix(".SH ")
            .map(|t| t.trim_matches('"').to_owned())
    };
    let mut inside = false;
    let mut text = String::new();
    for line in page.lines() {
        if let Some(t) = heading(line) {
            inside = t == title;
            continue;
        }
        if inside {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(!text.is_empty(), "no section {title} in:\n{page}");
    plain(&text)
}

fn plain(roff: &str) -> String {
    roff.replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
        .replace("\\-", "-")
        .replace("\\~", " ")
        .replace("\\(aq", "'")
        .replace("\\*(Aq", "'")
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

/// Rust source as identifiers, string literals and punctuation, without comments, char
/// literals or lifetimes: enough to find calls and their literal arguments.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                text.push(at(i));
                i += 1;
            }
            i += 1;
            out.push(Token::Str(text));
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(c == 'b')), '"' | '#')
            && !matches!(out.last(), Some(Token::Ident(_)))
        {
            // A raw string: r"…", r#"…"#, br"…".
            i += 1 + usize::from(c == 'b');
            let mut hashes = 0;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            let mut text = String::new();
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            out.push(Token::Str(text));
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{a0}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// The tokens of a file without its `#[cfg(test)]` items: what the program runs.
fn program_tokens(path: &Path) -> Vec<Token> {
    let all = tokens(&fs::read_to_string(path).unwrap());
    let mut out = Vec::new();
    let mut i = 0;
    let is = |t: Option<&Token>, s: &str| match t {
        Some(Token::Ident(x)) => x == s,
        Some(Token::Punct(c)) => s.len() == 1 && s.starts_with(*c),
        _ => false,
    };
    while i < all.len() {
        let cfg_test = is(all.get(i), "#")
            && is(all.get(i + 1), "[")
            && is(all.get(i + 2), "cfg")
            && is(all.get(i + 3), "(")
            && is(all.get(i + 4), "test")
            && is(all.get(i + 5), ")");
        if cfg_test {
            // Skip to the item's body and past its closing brace (or its `;`).
            i += 7;
            while i < all.len() && !is(all.get(i), "{") && !is(all.get(i), ";") {
                i += 1;
            }
            if is(all.get(i), "{") {
                let mut depth = 0;
                while i < all.len() {
                    if is(all.get(i), "{") {
                        depth += 1;
                    } else if is(all.get(i), "}") {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        out.push(all[i].clone());
        i += 1;
    }
    out
}

/// `const NAME: &str = "value";` anywhere in the program.
fn string_constants(files: &[Vec<Token>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in files {
        for w in t.windows(8) {
            if let [
                Token::Ident(kw),
                Token::Ident(name),
                Token::Punct(':'),
                Token::Punct('&'),
                Token::Ident(ty),
                Token::Punct('='),
                Token::Str(value),
                Token::Punct(';'),
            ] = w
                && kw == "const"
                && ty == "str"
            {
                out.push((name.clone(), value.clone()));
            }
        }
    }
    out
}

/// The names the program reads from its environment.
///
/// A read is a call of `var`/`var_os` (`std::env::var(NAME)`), or of a lookup function
/// the code passes around so that tests can stand in for the environment: a parameter
/// declared `NAME: impl Fn(&str) -> Option<…>` or `&dyn Fn(&str) -> Option<…>`, or a
/// closure `let NAME = |…| …` whose body calls one. Each argument of such a call that is
/// a string literal, or a constant holding one, is a variable name.
fn environment_variables() -> BTreeSet<String> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    // The unit tests kept in files of their own are not the program either.
    paths.retain(|p| !p.to_string_lossy().ends_with("_tests.rs"));
    let files: Vec<Vec<Token>> = paths.iter().map(|p| program_tokens(p)).collect();
    let constants = string_constants(&files);
    let mut names = BTreeSet::new();
    for t in &files {
        let mut lookups: BTreeSet<String> = ["var", "var_os"].map(str::to_owned).into();
        let ident = |i: usize| match t.get(i) {
            Some(Token::Ident(s)) => Some(s.as_str()),
            _ => None,
        };
        let punct = |i: usize, c: char| t.get(i) == Some(&Token::Punct(c));
        for i in 0..t.len() {
            // NAME : impl Fn ( & str ) -> Option   /   NAME : & dyn Fn ( & str ) -> Option
            let Some(name) = ident(i) else { continue };
            if !punct(i + 1, ':') {
                continue;
            }
            let j = match (ident(i + 2), punct(i + 2, '&'), ident(i + 3)) {
                (Some("impl"), _, _) => i + 3,
                (_, true, Some("dyn")) => i + 4,
                _ => continue,
            };
            if ident(j) == Some("Fn")
                && punct(j + 1, '(')
                && punct(j + 2, '&')
                && ident(j + 3) == Some("str")
                && punct(j + 4, ')')
                && punct(j + 5, '-')
                && punct(j + 6, '>')
                && ident(j + 7) == Some("Option")
            {
                lookups.insert(name.to_owned());
            }
        }
        // Closures over a lookup, until nothing new turns up.
        loop {
            let before = lookups.len();
            for i in 0..t.len() {
                if ident(i) != Some("let") || !punct(i + 2, '=') || !punct(i + 3, '|') {
                    continue;
                }
                let Some(name) = ident(i + 1) else { continue };
                let mut depth = 0i32;
                let mut k = i + 4;
                let mut calls_lookup = false;
                while k < t.len() {
                    match &t[k] {
                        Token::Punct('(' | '{' | '[') => depth += 1,
                        Token::Punct(')' | '}' | ']') => depth -= 1,
                        Token::Punct(';') if depth <= 0 => break,
                        Token::Ident(id) if lookups.contains(id) && punct(k + 1, '(') => {
                            calls_lookup = true;
                        }
                        _ => {}
                    }
                    k += 1;
                }
                if calls_lookup {
                    lookups.insert(name.to_owned());
                }
            }
            if lookups.len() == before {
                break;
            }
        }
        for i in 0..t.len() {
            let Some(callee) = ident(i) else { continue };
            // `.env("X", …)` on a Command sets a variable for a child; it reads nothing.
            if !lookups.contains(callee) || !punct(i + 1, '(') || punct(i.wrapping_sub(1), '.') {
                continue;
            }
            let mut args = Vec::new();
            let mut k = i + 2;
            let mut only_names = true;
            while k < t.len() && !punct(k, ')') {
                match &t[k] {
                    Token::Str(s) => args.push(s.clone()),
                    Token::Ident(id) => match constants.iter().find(|(n, _)| n == id) {
                        Some((_, value)) => args.push(value.clone()),
                        None => only_names = false,
                    },
                    Token::Punct(',') => {}
                    Token::Punct(_) => only_names = false,
                }
                k += 1;
            }
            if only_names {
                names.extend(args);
            }
        }
    }
    names
}

#[test]
fn every_environment_variable_the_code_reads_is_in_the_environment_section_of_tako_1() {
    let names = environment_variables();
    // The scan must see the reads it was written for, or it proves nothing.
    for known in [
        "TAKO_SECRET_KEY",
        "NETRC",
        "CREDENTIALS_DIRECTORY",
        "HOME",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CACHE_HOME",
        "TAKO_CACHE",
        "https_proxy",
        "NO_PROXY",
        "DBUS_SYSTEM_BUS_ADDRESS",
        "JOURNAL_STREAM",
        "COLUMNS",
    ] {
        assert!(names.contains(known), "the scan missed {known}: {names:?}");
    }
    for name in &names {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "not a variable name: {name:?} ({names:?})"
        );
    }
    let environment = section(&page("tako.1"), "ENVIRONMENT");
    let documented = |name: &str| {
        environment
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == name)
    };
    let missing: Vec<&String> = names.iter().filter(|n| !documented(n)).collect();
    assert!(
        missing.is_empty(),
        "tako(1) ENVIRONMENT lacks {missing:?}:\n{environment}"
    );
    // Read by the TLS library rather than by tako's own code, and asked for by the issue.
    for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        assert!(documented(name), "{name}:\n{environment}");
    }
}

/// The keys `src/format/config.rs` accepts: each `"Key" =>` arm of the `Key=Value`
/// parser's `match key`, and each field of `struct TomlConfig`.
fn config_keys() -> (Vec<String>, Vec<String>) {
    let t = program_tokens(&src().join("format/config.rs"));
    let mut directives = Vec::new();
    for i in 0..t.len() {
        if t[i] == Token::Ident("match".into()) && t.get(i + 1) == Some(&Token::Ident("key".into()))
        {
            let mut depth = 0;
            let mut k = i + 2;
            while k < t.len() {
                match &t[k] {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Str(s)
                        if depth == 1
                            && t.get(k + 1) == Some(&Token::Punct('='))
                            && t.get(k + 2) == Some(&Token::Punct('>')) =>
                    {
                        directives.push(s.clone());
                    }
                    _ => {}
                }
                k += 1;
            }
        }
    }
    let mut toml = Vec::new();
    let start = t
        .windows(2)
        .position(|w| {
            w == [
                Token::Ident("struct".into()),
                Token::Ident("TomlConfig".into()),
            ]
        })
        .expect("struct TomlConfig in src/format/config.rs");
    let mut depth = 0;
    let mut k = start + 2;
    while k < t.len() {
        match &t[k] {
            Token::Punct('{' | '(' | '[' | '<') => depth += 1,
            Token::Punct('}' | ')' | ']' | '>') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            // A field `name: Type`, not a path `toml::Spanned`.
            Token::Ident(name)
                if depth == 1
                    && t.get(k + 1) == Some(&Token::Punct(':'))
                    && t.get(k + 2) != Some(&Token::Punct(':'))
                    && t.get(k - 1) != Some(&Token::Punct(':')) =>
            {
                toml.push(name.clone());
            }
            _ => {}
        }
        k += 1;
    }
    (directives, toml)
}

#[test]
fn every_config_key_in_both_formats_is_in_the_configuration_section_of_tako_fetch_1() {
    let (directives, toml) = config_keys();
    for known in ["Origin", "PublicKey", "Keep", "ClientKey"] {
        assert!(directives.iter().any(|d| d == known), "{directives:?}");
    }
    for known in ["origin", "public_key", "keep", "client_key"] {
        assert!(toml.iter().any(|d| d == known), "{toml:?}");
    }
    assert_eq!(directives.len(), toml.len(), "{directives:?} {toml:?}");
    let configuration = section(&page("tako-fetch.1"), "CONFIGURATION");
    for key in &directives {
        assert!(
            configuration.contains(&format!("{key}=")),
            "tako-fetch(1) lacks {key}=:\n{configuration}"
        );
    }
    for key in &toml {
        assert!(
            configuration.contains(&format!("({key})"))
                || configuration.contains(&format!("({key}),")),
            "tako-fetch(1) lacks the TOML key {key}:\n{configuration}"
        );
    }
    // What the reference says of the keys: registries, mirrors, several keys.
    for words in [
        "oci://",
        "oci+http://",
        "mirrors",
        "key rotation",
        "Repeat it",
    ] {
        assert!(configuration.contains(words), "{words}:\n{configuration}");
    }
}

#[test]
fn every_file_a_destination_holds_is_in_the_files_section_of_tako_fetch_1() {
    // The table at the top of src/destination/mod.rs names every file tako keeps there.
    let module = fs::read_to_string(src().join("destination/mod.rs")).unwrap();
    let files: Vec<String> = module
        .lines()
        .filter_map(|l| l.strip_prefix("//! DEST/"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    for known in [
        "manifest.validators",
        "index/<hex>",
        "restart-pending",
        "store/<hex>.partial",
        "store/<hex>.partial.validator",
    ] {
        assert!(files.iter().any(|f| f == known), "{files:?}");
    }
    let listed = section(&page("tako-fetch.1"), "FILES");
    let words: Vec<&str> = listed.split_whitespace().collect();
    for file in &files {
        assert!(
            words.contains(&file.as_str()),
            "tako-fetch(1) FILES lacks {file}:\n{listed}"
        );
    }
}

#[test]
fn every_synopsis_shows_what_each_option_takes() {
    let mut checked = 0;
    for (name, roff) in pages() {
        let synopsis = section(&roff, "SYNOPSIS");
        let options = match roff.contains(".SH OPTIONS") {
            true => section(&roff, "OPTIONS"),
            false => String::new(),
        };
        // OPTIONS shows an option that takes a value as `--name <VALUE>`; the synopsis must
        // name the same value, right after the option.
        for line in options
            .lines()
            .filter(|l| l.starts_with("--") || l.starts_with('-'))
        {
            let Some((option, value)) = line.split_once(" <") else {
                continue;
            };
            let long = option.rsplit(", ").next().unwrap();
            let value = value.split('>').next().unwrap();
            assert!(
                synopsis.contains(&format!("{long} {value}")),
                "{name}: the synopsis lacks '{long} {value}':\n{synopsis}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} options with a value found");
    let fetch = section(&page("tako-fetch.1"), "SYNOPSIS");
    assert!(fetch.contains("[--max-time SECONDS]"), "{fetch}");
    assert!(fetch.contains("[--limit-rate RATE]"), "{fetch}");
    assert!(fetch.contains("CONFIG..."), "{fetch}");
    let store = section(&page("tako-store.1"), "SYNOPSIS");
    assert!(store.contains("-o|--output DIR"), "{store}");
}

#[test]
fn the_image_commands_have_their_pages() {
    let names: Vec<String> = pages().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "tako-image.1",
        "tako-image-pull.1",
        "tako-image-digest.1",
        "tako-image-purge.1",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    let pull = page("tako-image-pull.1");
    assert!(section(&pull, "SYNOPSIS").contains("IMAGE DIR"), "{pull}");
    assert!(section(&pull, "FILES").contains("TAKO_CACHE"), "{pull}");
}
