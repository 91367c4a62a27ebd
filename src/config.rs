//! Client configuration files: the systemd-like `Key=Value` format, or TOML.
//!
//! Parsing is pure (text in, [`Config`] or [`ConfigError`] out); only
//! [`load`] touches the file system, to read the file and to check that the
//! destination exists.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::key::PublicKey;
use crate::transport::{self, Credentials, Origin};
use crate::version::Pattern;

const KEYS: &str = "Origin, PublicKey, Destination, Version, Restart";

/// A validated configuration for one image.
#[derive(Debug, Clone)]
pub struct Config {
    /// Without a trailing slash, and with any password replaced by `***`: this is the form
    /// to print and to hand to the transport.
    pub origin: String,
    /// The user name and password from `Origin=`, which only the transport sees.
    pub credentials: Option<Credentials>,
    pub public_key: PublicKey,
    pub destination: PathBuf,
    pub version: Pattern,
    pub restart: Vec<String>,
    destination_line: Option<usize>,
}

/// A configuration error, located as `FILE:LINE:` where a line is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Reads and validates the config at `path`. A name ending in `.toml` is
/// read as TOML, anything else as `Key=Value` lines.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let err = |message: String| ConfigError {
        file: file.clone(),
        line: None,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read config: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| err("config is not UTF-8 text".into()))?;
    let config = if path.extension().is_some_and(|e| e == "toml") {
        parse_toml(&file, &text)?
    } else {
        parse(&file, &text)?
    };
    if !config.destination.is_dir() {
        return Err(ConfigError {
            file,
            line: config.destination_line,
            message: format!(
                "destination {} does not exist or is not a directory; create it first",
                config.destination.display()
            ),
        });
    }
    Ok(config)
}

/// Values as written, each with the line it came from.
#[derive(Default)]
struct Raw {
    origin: Option<(String, usize)>,
    public_key: Option<(String, usize)>,
    destination: Option<(String, usize)>,
    version: Option<(String, usize)>,
    restart: Vec<String>,
}

/// Parses the `Key=Value` format. `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let at = |line: usize, message: String| ConfigError {
        file: file.to_string(),
        line: Some(line),
        message,
    };
    let mut raw = Raw::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(
                n,
                format!("expected Key=Value, found '{}'", line.escape_debug()),
            ));
        };
        let (key, value) = (key.trim(), value.trim().to_string());
        let slot = match key {
            "Origin" => &mut raw.origin,
            "PublicKey" => &mut raw.public_key,
            "Destination" => &mut raw.destination,
            "Version" => &mut raw.version,
            "Restart" => {
                if value.is_empty() {
                    raw.restart.clear();
                } else {
                    raw.restart
                        .extend(value.split_whitespace().map(str::to_string));
                }
                continue;
            }
            _ => {
                return Err(at(
                    n,
                    format!(
                        "unknown key '{}'; expected one of {KEYS}",
                        key.escape_debug()
                    ),
                ));
            }
        };
        if let Some((_, first)) = slot {
            return Err(at(
                n,
                format!("{key}= is given twice (first on line {first})"),
            ));
        }
        *slot = Some((value, n));
    }
    validate(file, raw)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    origin: toml::Spanned<String>,
    public_key: toml::Spanned<String>,
    destination: toml::Spanned<String>,
    version: toml::Spanned<String>,
    #[serde(default)]
    restart: Option<Restart>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Restart {
    Line(String),
    List(Vec<String>),
}

/// Parses the TOML form, which holds the same settings in snake case.
pub fn parse_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
    let line_of = |offset: usize| {
        let before = &text.as_bytes()[..offset.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let parsed: TomlConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(s.start)),
        message: e.message().trim().to_string(),
    })?;
    let spanned = |s: toml::Spanned<String>| {
        let line = line_of(s.span().start);
        Some((s.into_inner(), line))
    };
    let restart = match parsed.restart {
        None => Vec::new(),
        Some(Restart::Line(line)) => line.split_whitespace().map(str::to_string).collect(),
        Some(Restart::List(units)) => units
            .iter()
            .flat_map(|u| u.split_whitespace())
            .map(str::to_string)
            .collect(),
    };
    let raw = Raw {
        origin: spanned(parsed.origin),
        public_key: spanned(parsed.public_key),
        destination: spanned(parsed.destination),
        version: spanned(parsed.version),
        restart,
    };
    validate(file, raw)
}

fn validate(file: &str, raw: Raw) -> Result<Config, ConfigError> {
    let err = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        message,
    };
    let required = |value: Option<(String, usize)>, key: &str| {
        let (value, line) = value.ok_or_else(|| err(None, format!("missing {key}=")))?;
        if value.is_empty() {
            return Err(err(Some(line), format!("{key}= is empty")));
        }
        Ok((value, line))
    };
    let (origin, origin_line) = required(raw.origin, "Origin")?;
    let (public_key, key_line) = required(raw.public_key, "PublicKey")?;
    let (destination, destination_line) = required(raw.destination, "Destination")?;
    let (version, version_line) = required(raw.version, "Version")?;

    let origin = check_origin(file, origin_line, &origin)?;
    let public_key =
        PublicKey::parse(&public_key).map_err(|e| err(Some(key_line), e.to_string()))?;
    let version = Pattern::parse(&version).map_err(|e| err(Some(version_line), e.to_string()))?;
    Ok(Config {
        origin: origin.url,
        credentials: origin.credentials,
        public_key,
        destination: PathBuf::from(destination),
        version,
        restart: raw.restart,
        destination_line: Some(destination_line),
    })
}

/// Checks `Origin=` as a URL (see [`transport::parse_origin`]), naming the file and line.
fn check_origin(file: &str, line: usize, origin: &str) -> Result<Origin, ConfigError> {
    transport::parse_origin(origin).map_err(|e| ConfigError {
        file: file.to_string(),
        line: Some(line),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=";

    fn good() -> String {
        format!(
            "Origin=https://images.example.com/app-foo/\nPublicKey={KEY}\nDestination=/var/lib/images/app-foo\nVersion=1.*\n"
        )
    }

    fn error(text: &str) -> ConfigError {
        parse("app.tako", text).unwrap_err()
    }

    #[test]
    fn parses_the_documented_example() {
        let text = format!(
            "{}\n# Restart app-foo after a new image has been fetched.\nRestart=app-foo.service\n",
            good()
        );
        let c = parse("app.tako", &text).unwrap();
        assert_eq!(c.origin, "https://images.example.com/app-foo");
        assert_eq!(c.public_key.to_base64(), KEY);
        assert_eq!(c.destination, PathBuf::from("/var/lib/images/app-foo"));
        assert_eq!(c.version.as_str(), "1.*");
        assert_eq!(c.restart, ["app-foo.service"]);
    }

    #[test]
    fn ignores_whitespace_comments_and_blank_lines() {
        let text = format!(
            "  ; a comment\n\n\t# another\n  Origin  =  file:///srv/x  \n PublicKey= {KEY}\nDestination =/d\nVersion= 2.3 <= v < 3.0 \n"
        );
        let c = parse("a", &text).unwrap();
        assert_eq!(c.origin, "file:///srv/x");
        assert_eq!(c.version.as_str(), "2.3 <= v < 3.0");
    }

    #[test]
    fn restart_lines_accumulate_and_an_empty_one_clears_them() {
        let text = format!("{}Restart=a.service b.service\nRestart=c.service\n", good());
        assert_eq!(
            parse("a", &text).unwrap().restart,
            ["a.service", "b.service", "c.service"]
        );
        let text = format!("{}Restart=a.service\nRestart=\nRestart=d.service\n", good());
        assert_eq!(parse("a", &text).unwrap().restart, ["d.service"]);
        let text = format!("{}Restart=a.service\nRestart=  \n", good());
        assert!(parse("a", &text).unwrap().restart.is_empty());
    }

    #[test]
    fn rejects_an_unknown_key_naming_file_line_and_the_known_keys() {
        let text = "Origin=https://x\n\nOrign=https://y\n";
        assert_eq!(
            error(text).to_string(),
            "app.tako:3: unknown key 'Orign'; expected one of Origin, PublicKey, Destination, Version, Restart"
        );
    }

    #[test]
    fn rejects_a_line_without_equals() {
        let e = error(&format!("{}Restart\n", good()));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("Key=Value"), "{e}");
    }

    #[test]
    fn rejects_a_repeated_single_valued_key() {
        for key in ["Origin", "PublicKey", "Destination", "Version"] {
            let text = format!("{}{key}=again\n", good());
            let e = error(&text);
            assert_eq!(e.line, Some(5), "{e}");
            assert!(e.message.contains("twice"), "{e}");
        }
    }

    #[test]
    fn rejects_missing_required_keys() {
        for key in ["Origin", "PublicKey", "Destination", "Version"] {
            let text: String = good()
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(
                error(&text).to_string(),
                format!("app.tako: missing {key}=")
            );
        }
    }

    #[test]
    fn rejects_empty_required_values() {
        let text = good().replace("Version=1.*", "Version=");
        assert_eq!(error(&text).to_string(), "app.tako:4: Version= is empty");
    }

    #[test]
    fn rejects_other_url_schemes() {
        let e = error(&good().replace("https://images", "ftp://images"));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("unsupported origin"), "{e}");
    }

    #[test]
    fn checks_the_origin_as_a_url_on_its_line() {
        let e = error(&good().replace("app-foo/", "app-foo/?v=1"));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("has a query"), "{e}");
        let c = parse("a", &good().replace("https://", "HTTPS://u:p%40ss@")).unwrap();
        assert_eq!(c.origin, "https://u:***@images.example.com/app-foo");
        assert!(c.credentials.is_some());
    }

    #[test]
    fn rejects_bad_keys_and_patterns_on_their_lines() {
        let e = error(&good().replace(KEY, "abc"));
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("invalid public key"), "{e}");
        let e = error(&good().replace("1.*", "1.*.2"));
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("invalid version pattern"), "{e}");
    }

    #[test]
    fn keys_are_case_sensitive() {
        let e = error(&good().replace("Origin=", "origin="));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("unknown key 'origin'"));
    }

    fn good_toml() -> String {
        format!(
            "origin = \"https://x/\"\npublic_key = \"{KEY}\"\ndestination = \"/d\"\nversion = \"1.*\"\n"
        )
    }

    #[test]
    fn parses_toml_with_the_same_settings() {
        let c = parse_toml(
            "a.toml",
            &format!("{}restart = \"a.service b.service\"\n", good_toml()),
        )
        .unwrap();
        assert_eq!(c.origin, "https://x");
        assert_eq!(c.restart, ["a.service", "b.service"]);
        let c = parse_toml(
            "a.toml",
            &format!("{}restart = [\"a.service\", \"b\"]\n", good_toml()),
        )
        .unwrap();
        assert_eq!(c.restart, ["a.service", "b"]);
        assert!(
            parse_toml("a.toml", &good_toml())
                .unwrap()
                .restart
                .is_empty()
        );
    }

    #[test]
    fn validates_toml_values_with_their_lines() {
        let e = parse_toml("a.toml", &good_toml().replace("1.*", "*.1")).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = parse_toml("a.toml", &good_toml().replace("https", "gopher")).unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn rejects_unknown_or_missing_toml_settings() {
        let e = parse_toml("a.toml", &format!("{}orign = \"x\"\n", good_toml())).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("orign"), "{e}");
        let e = parse_toml("a.toml", "origin = \"https://x\"\n").unwrap_err();
        assert!(e.message.contains("public_key"), "{e}");
        let e = parse_toml("a.toml", "origin = \n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }
}
