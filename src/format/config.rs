//! Client configuration files: the systemd-like `Key=Value` format, or TOML.
//!
//! Parsing is pure (text in, [`Config`] or [`ConfigError`] out); reading the file and
//! checking that the destination exists is `fs::config::load`. Values quoted in messages
//! go through `text::untrusted`: a config may hold anything, including escape sequences.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::key::{KeyError, PublicKey};
use super::oci::platform::Platform;
use super::origin_url::{self, Origin};
use super::text::untrusted;
use super::unit_name::normalize_unit_name;
use super::version::Pattern;

const KEYS: &str = "Origin, PublicKey, Destination, Version, Restart, HeaderFile, CACertificate, ClientCertificate, ClientKey, Keep, MirrorStaleAfter, Kind, Platform";

/// A validated configuration for one image.
#[derive(Debug, Clone)]
pub struct Config {
    /// The first origin: without a trailing slash, and with any password replaced by
    /// `***`: this is the form to print and to hand to the transport.
    pub origin: String,
    /// Every `Origin=`, in order of preference (mirrors); the first is `origin`. Each
    /// carries its own credentials.
    pub origins: Vec<Origin>,
    /// Every key whose signature is trusted, never empty, no two equal; the
    /// first is preferred (see `update::keyring`).
    pub public_keys: Vec<PublicKey>,
    pub destination: PathBuf,
    pub version: Pattern,
    pub restart: Vec<String>,
    /// `HeaderFile=`, `CACertificate=`, `ClientCertificate=`, `ClientKey=`: files the
    /// transport reads when the config is fetched.
    pub access: Access,
    /// `Keep=`: how many images `tako gc` keeps, and, when given, makes
    /// `tako fetch` collect after it moved `latest` (see `retention`).
    pub keep: Option<usize>,
    /// `MirrorStaleAfter=`: how long the mirror a manifest comes from may serve the same
    /// one before the next mirror is asked as well (see `update::select`).
    pub mirror_stale_after: Duration,
    /// `Kind=`: what the signed digests name, a file (the default) or a container image.
    pub kind: Kind,
    /// `Platform=`: the platform of a container image to install; `None`: the host's
    /// (the caller knows it, as `tako image pull` does).
    pub platform: Option<Platform>,
    destination_line: Option<usize>,
}

/// What a config's images are (`Kind=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Each version's digest names a file, installed as `store/<hex>`.
    #[default]
    File,
    /// Each version's digest names a container image's manifest or index, unpacked into
    /// `store/<hex>/rootfs/`.
    Container,
}

impl Kind {
    /// As written after `Kind=`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Container => "container",
        }
    }
}

/// `MirrorStaleAfter=` when not given: a day.
pub const DEFAULT_MIRROR_STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

impl Config {
    /// The line of `Destination=`, for an error about the directory it names.
    pub fn destination_line(&self) -> Option<usize> {
        self.destination_line
    }
}

/// The config keys for a private origin, as paths; the transport reads the files when the
/// config is fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// `HeaderFile=`: extra request headers, one `Name: value` per line.
    pub header_file: Option<PathBuf>,
    /// `CACertificate=`: PEM certificates that replace the system's trusted roots.
    pub ca_certificate: Option<PathBuf>,
    /// `ClientCertificate=` and `ClientKey=`: both or neither (the config checks that).
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
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

/// Values as written, each with the line it came from.
#[derive(Default)]
struct Raw {
    /// `Origin=` may be repeated: the origins are mirrors, in order of preference.
    origins: Vec<(String, usize)>,
    /// `PublicKey=` may be repeated: several keys are trusted during a key
    /// rotation.
    public_keys: Vec<(String, usize)>,
    destination: Option<(String, usize)>,
    version: Option<(String, usize)>,
    /// Unit names as written, each with its line.
    restart: Vec<(String, usize)>,
    header_file: Option<(String, usize)>,
    ca_certificate: Option<(String, usize)>,
    client_certificate: Option<(String, usize)>,
    client_key: Option<(String, usize)>,
    keep: Option<(String, usize)>,
    mirror_stale_after: Option<(String, usize)>,
    kind: Option<(String, usize)>,
    platform: Option<(String, usize)>,
}

/// Parses the `Key=Value` format. `file` is only used in messages.
/// The known key a mistyped one most likely meant: the same letters in another case, or at
/// most two edits away (`Orign`, `origin`, `PublicKy`); `None` when no key is that close.
fn closest_key(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    KEYS.split(", ")
        .map(|known| {
            let distance = edit_distance(&lower, &known.to_ascii_lowercase());
            (distance, known)
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance, over bytes: keys are ASCII, and anything else is far from all.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

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
        if line.starts_with('[') && line.ends_with(']') {
            // `[Tako]` or a systemd-style `[Section]`: tako's configs have none.
            return Err(at(
                n,
                format!(
                    "a tako config has no sections; remove the line '{}' and keep its Key=Value lines",
                    untrusted(line)
                ),
            ));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(
                n,
                // The line is not echoed: a mistyped `Origin https://user:pass@…`
                // or a pasted key would land in the log.
                format!(
                    "expected Key=Value, found a line without '=' ({} characters)",
                    line.chars().count()
                ),
            ));
        };
        let (key, value) = (key.trim(), value.trim().to_string());
        let slot = match key {
            "Origin" => {
                raw.origins.push((value, n));
                continue;
            }
            "PublicKey" => {
                raw.public_keys.push((value, n));
                continue;
            }
            "Destination" => &mut raw.destination,
            "Version" => &mut raw.version,
            "HeaderFile" => &mut raw.header_file,
            "CACertificate" => &mut raw.ca_certificate,
            "ClientCertificate" => &mut raw.client_certificate,
            "ClientKey" => &mut raw.client_key,
            "Keep" => &mut raw.keep,
            "MirrorStaleAfter" => &mut raw.mirror_stale_after,
            "Kind" => &mut raw.kind,
            "Platform" => &mut raw.platform,
            "Restart" => {
                if value.is_empty() {
                    raw.restart.clear();
                } else {
                    raw.restart
                        .extend(value.split_whitespace().map(|u| (u.to_string(), n)));
                }
                continue;
            }
            _ => {
                let hint = match closest_key(key) {
                    Some(known) => format!("did you mean {known}? "),
                    None => String::new(),
                };
                return Err(at(
                    n,
                    format!(
                        "unknown key '{}'; {hint}expected one of {KEYS}",
                        untrusted(key)
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
    origin: toml::Spanned<TomlOrigins>,
    public_key: toml::Spanned<TomlKeys>,
    destination: toml::Spanned<String>,
    version: toml::Spanned<String>,
    #[serde(default)]
    restart: Option<toml::Spanned<Restart>>,
    #[serde(default)]
    header_file: Option<toml::Spanned<String>>,
    #[serde(default)]
    ca_certificate: Option<toml::Spanned<String>>,
    #[serde(default)]
    client_certificate: Option<toml::Spanned<String>>,
    #[serde(default)]
    client_key: Option<toml::Spanned<String>>,
    keep: Option<toml::Spanned<i64>>,
    #[serde(default)]
    mirror_stale_after: Option<toml::Spanned<TomlDuration>>,
    #[serde(default)]
    kind: Option<toml::Spanned<String>>,
    #[serde(default)]
    platform: Option<toml::Spanned<String>>,
}

/// A duration in TOML: `"1d"` as in the Key=Value form, or a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum TomlDuration {
    Seconds(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Restart {
    Line(String),
    List(Vec<String>),
}

/// A string or an array of strings, each with where it was written. A hand-written
/// visitor, because serde's untagged enums lose the positions that `Spanned` records. An
/// array element carries its own offset; a lone string takes the position of the whole
/// setting.
fn string_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    expecting: &'static str,
) -> Result<Vec<(String, Option<usize>)>, D::Error> {
    struct Visitor(&'static str);
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<(String, Option<usize>)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![(value.to_string(), None)])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<toml::Spanned<String>>()? {
                let start = item.span().start;
                items.push((item.into_inner(), Some(start)));
            }
            Ok(items)
        }
    }
    deserializer.deserialize_any(Visitor(expecting))
}

/// `public_key = "…"` or `public_key = ["…", "…"]`.
struct TomlKeys(Vec<(String, Option<usize>)>);

impl<'de> Deserialize<'de> for TomlKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TomlKeys, D::Error> {
        string_or_list(deserializer, "a public key or an array of public keys").map(TomlKeys)
    }
}

/// `origin = "…"` or `origin = ["…", "…"]` (mirrors, in order of preference).
struct TomlOrigins(Vec<(String, Option<usize>)>);

impl<'de> Deserialize<'de> for TomlOrigins {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TomlOrigins, D::Error> {
        string_or_list(deserializer, "an origin URL or an array of origin URLs").map(TomlOrigins)
    }
}

/// Every setting of the TOML form as written, whatever its type: read first, so that a
/// value of the wrong type is reported with its key and an example, rather than in
/// serde's words ("invalid type: string \"3\", expected i64").
#[derive(Deserialize)]
struct TomlValues {
    origin: Option<toml::Spanned<toml::Value>>,
    public_key: Option<toml::Spanned<toml::Value>>,
    destination: Option<toml::Spanned<toml::Value>>,
    version: Option<toml::Spanned<toml::Value>>,
    restart: Option<toml::Spanned<toml::Value>>,
    header_file: Option<toml::Spanned<toml::Value>>,
    ca_certificate: Option<toml::Spanned<toml::Value>>,
    client_certificate: Option<toml::Spanned<toml::Value>>,
    client_key: Option<toml::Spanned<toml::Value>>,
    keep: Option<toml::Spanned<toml::Value>>,
    kind: Option<toml::Spanned<toml::Value>>,
    platform: Option<toml::Spanned<toml::Value>>,
}

/// What a TOML setting may hold, with an example of it to show.
#[derive(Clone, Copy)]
enum TomlType {
    Text(&'static str),
    TextOrList(&'static str),
    Count(&'static str),
}

/// What a TOML value is, in words: "the string \"3\"", "an array holding a number". A
/// string is quoted only when short (it may be a secret pasted into the wrong key).
fn toml_value_words(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) if s.chars().count() <= 20 => {
            format!("the string \"{}\"", untrusted(s))
        }
        toml::Value::String(_) => "a string".to_owned(),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(_) => "a decimal number".to_owned(),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(_) => "a date".to_owned(),
        toml::Value::Array(items) => match items.iter().find(|v| !v.is_str()) {
            Some(other) => format!(
                "an array holding {}",
                toml_value_words(other).replacen("the ", "", 1)
            ),
            None => "an array".to_owned(),
        },
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// Checks the type of every TOML setting, naming the key, what it holds and what to write.
fn check_toml_types(
    values: TomlValues,
    line_of: impl Fn(usize) -> usize,
) -> Result<(), (usize, String)> {
    use TomlType::*;
    let settings = [
        (
            "origin",
            values.origin,
            TextOrList("origin = \"https://images.example.com/app\""),
        ),
        (
            "public_key",
            values.public_key,
            TextOrList("public_key = \"<the public key tako gen-key printed>\""),
        ),
        (
            "destination",
            values.destination,
            Text("destination = \"/var/lib/app\""),
        ),
        ("version", values.version, Text("version = \"1.*\"")),
        (
            "restart",
            values.restart,
            TextOrList("restart = \"app.service\""),
        ),
        (
            "header_file",
            values.header_file,
            Text("header_file = \"/etc/tako/app.headers\""),
        ),
        (
            "ca_certificate",
            values.ca_certificate,
            Text("ca_certificate = \"/etc/tako/ca.pem\""),
        ),
        (
            "client_certificate",
            values.client_certificate,
            Text("client_certificate = \"/etc/tako/client.pem\""),
        ),
        (
            "client_key",
            values.client_key,
            Text("client_key = \"/etc/tako/client.key\""),
        ),
        ("keep", values.keep, Count("keep = 3")),
        ("kind", values.kind, Text("kind = \"container\"")),
        (
            "platform",
            values.platform,
            Text("platform = \"linux/arm64\""),
        ),
    ];
    for (key, value, wanted) in settings {
        let Some(value) = value else { continue };
        let line = line_of(value.span().start);
        let value = value.get_ref();
        let fits = match wanted {
            Text(_) => value.is_str(),
            TextOrList(_) => {
                value.is_str()
                    || value
                        .as_array()
                        .is_some_and(|items| items.iter().all(toml::Value::is_str))
            }
            Count(_) => value.is_integer(),
        };
        if fits {
            continue;
        }
        let (what, example) = match wanted {
            Text(example) => ("a string in quotes", example),
            TextOrList(example) => ("a string in quotes, or an array of them", example),
            Count(example) => ("a whole number without quotes", example),
        };
        return Err((
            line,
            format!(
                "{key} must be {what}, like `{example}`; found {}",
                toml_value_words(value)
            ),
        ));
    }
    Ok(())
}

/// Parses the TOML form, which holds the same settings in snake case.
pub fn parse_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
    let line_of = |offset: usize| {
        let before = &text.as_bytes()[..offset.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    // A file that does not even parse as TOML is left to the full parse below to report.
    if let Ok(values) = toml::from_str::<TomlValues>(text) {
        check_toml_types(values, line_of).map_err(|(line, message)| ConfigError {
            file: file.to_string(),
            line: Some(line),
            message,
        })?;
    }
    let parsed: TomlConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(s.start)),
        // toml quotes the offending key or value in its message, escaped here. The cap is
        // above the usual one so that an unknown key's message lists every key there is.
        message: crate::format::text::untrusted_max(e.message().trim(), 600),
    })?;
    let spanned = |s: toml::Spanned<String>| {
        let line = line_of(s.span().start);
        Some((s.into_inner(), line))
    };
    let restart = match parsed.restart {
        None => Vec::new(),
        Some(spanned) => {
            // Every name is reported on the line where the setting starts.
            let n = line_of(spanned.span().start);
            let names: Vec<String> = match spanned.into_inner() {
                Restart::Line(line) => vec![line],
                Restart::List(units) => units,
            };
            names
                .iter()
                .flat_map(|u| u.split_whitespace())
                .map(|u| (u.to_string(), n))
                .collect()
        }
    };
    let keys_line = line_of(parsed.public_key.span().start);
    if parsed.public_key.get_ref().0.is_empty() {
        return Err(ConfigError {
            file: file.to_string(),
            line: Some(keys_line),
            message: "public_key is an empty array; list at least one key".into(),
        });
    }
    let public_keys = parsed
        .public_key
        .into_inner()
        .0
        .into_iter()
        .map(|(key, start)| (key, start.map_or(keys_line, line_of)))
        .collect();
    let origins_line = line_of(parsed.origin.span().start);
    if parsed.origin.get_ref().0.is_empty() {
        return Err(ConfigError {
            file: file.to_string(),
            line: Some(origins_line),
            message: "origin is an empty array; list at least one origin".into(),
        });
    }
    let origins = parsed
        .origin
        .into_inner()
        .0
        .into_iter()
        .map(|(url, start)| (url, start.map_or(origins_line, line_of)))
        .collect();
    let raw = Raw {
        origins,
        public_keys,
        destination: spanned(parsed.destination),
        version: spanned(parsed.version),
        restart,
        header_file: parsed.header_file.and_then(spanned),
        ca_certificate: parsed.ca_certificate.and_then(spanned),
        client_certificate: parsed.client_certificate.and_then(spanned),
        client_key: parsed.client_key.and_then(spanned),
        // Checked with the Key=Value form's rules; a TOML string is refused
        // by the parser already.
        keep: parsed.keep.map(|k| {
            let line = line_of(k.span().start);
            (k.into_inner().to_string(), line)
        }),
        mirror_stale_after: parsed.mirror_stale_after.map(|d| {
            let line = line_of(d.span().start);
            let text = match d.into_inner() {
                TomlDuration::Seconds(n) => n.to_string(),
                TomlDuration::Text(text) => text,
            };
            (text, line)
        }),
        kind: parsed.kind.and_then(spanned),
        platform: parsed.platform.and_then(spanned),
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
    let origins = origins(file, raw.origins)?;
    let public_keys = public_keys(file, raw.public_keys)?;
    let (destination, destination_line) = required(raw.destination, "Destination")?;
    let (version, version_line) = required(raw.version, "Version")?;

    let version = Pattern::parse(&version).map_err(|e| err(Some(version_line), e.to_string()))?;
    let restart = raw
        .restart
        .iter()
        .map(|(name, line)| normalize_unit_name(name).map_err(|e| err(Some(*line), e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let access = access(
        file,
        raw.header_file,
        raw.ca_certificate,
        raw.client_certificate,
        raw.client_key,
    )?;
    let keep = match raw.keep {
        None => None,
        Some((value, line)) => Some(parse_keep(&value).map_err(|e| err(Some(line), e))?),
    };
    let mirror_stale_after = match raw.mirror_stale_after {
        None => DEFAULT_MIRROR_STALE_AFTER,
        Some((value, line)) => parse_duration(&value).map_err(|e| err(Some(line), e))?,
    };
    let kind = match raw.kind {
        None => Kind::File,
        Some((value, line)) => parse_kind(&value).map_err(|e| err(Some(line), e))?,
    };
    let platform = match raw.platform {
        None => None,
        Some((_, line)) if kind != Kind::Container => {
            return Err(err(
                Some(line),
                "Platform= only applies to container images: add Kind=container, or remove Platform=".to_owned(),
            ));
        }
        Some((value, line)) => {
            Some(Platform::parse(&value).map_err(|e| err(Some(line), e.to_string()))?)
        }
    };
    Ok(Config {
        origin: origins[0].url.clone(),
        origins,
        public_keys,
        destination: PathBuf::from(destination),
        version,
        restart,
        access,
        keep,
        mirror_stale_after,
        kind,
        platform,
        destination_line: Some(destination_line),
    })
}

/// The optional file settings for a private origin. Only their presence is checked here;
/// the files are read when the config is fetched.
fn access(
    file: &str,
    header_file: Option<(String, usize)>,
    ca_certificate: Option<(String, usize)>,
    client_certificate: Option<(String, usize)>,
    client_key: Option<(String, usize)>,
) -> Result<Access, ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: file.to_string(),
        line: Some(line),
        message,
    };
    let path = |value: Option<(String, usize)>, key: &str| match value {
        Some((value, line)) if value.is_empty() => Err(err(
            line,
            format!("{key}= is empty; remove the line or name a file"),
        )),
        Some((value, line)) => Ok(Some((PathBuf::from(value), line))),
        None => Ok(None),
    };
    let header_file = path(header_file, "HeaderFile")?;
    let ca_certificate = path(ca_certificate, "CACertificate")?;
    let client_certificate = path(client_certificate, "ClientCertificate")?;
    let client_key = path(client_key, "ClientKey")?;
    // Mutual TLS needs both halves; one alone is a slip that would fail every handshake.
    match (&client_certificate, &client_key) {
        (Some((_, line)), None) => {
            return Err(err(
                *line,
                "ClientCertificate= is given without ClientKey=; mutual TLS needs both".into(),
            ));
        }
        (None, Some((_, line))) => {
            return Err(err(
                *line,
                "ClientKey= is given without ClientCertificate=; mutual TLS needs both".into(),
            ));
        }
        _ => {}
    }
    Ok(Access {
        header_file: header_file.map(|(p, _)| p),
        ca_certificate: ca_certificate.map(|(p, _)| p),
        client_certificate: client_certificate.map(|(p, _)| p),
        client_key: client_key.map(|(p, _)| p),
    })
}

/// The `PublicKey=` value as a key. A value that is not one is never quoted
/// back: what lands here by mistake is most often the secret key.
fn parse_public_key(value: &str) -> Result<PublicKey, String> {
    let value = value.trim();
    if value.starts_with("SECRET+") {
        return Err(
            "PublicKey= holds a secret key (it starts with SECRET+); use the public key that \
             'tako gen-key' printed under 'Public key:', and keep the secret key out of \
             config files"
                .to_string(),
        );
    }
    PublicKey::parse(value).map_err(|e| match e {
        KeyError::PublicInvalidPoint(_) => {
            "invalid public key: it is not a usable Ed25519 key (a weak or invalid point)"
                .to_string()
        }
        _ => format!(
            "invalid public key ({} characters): it is not base64 of 32 bytes; use the \
             44-character public key printed by 'tako gen-key'",
            value.chars().count()
        ),
    })
}

/// Parses every `PublicKey=` value. At least one is required; an empty
/// value or the same key twice is an error, as a slip that would otherwise
/// hide a missing key.
fn public_keys(file: &str, raw: Vec<(String, usize)>) -> Result<Vec<PublicKey>, ConfigError> {
    let err = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        message,
    };
    if raw.is_empty() {
        return Err(err(None, "missing PublicKey=".into()));
    }
    let mut keys: Vec<(PublicKey, usize)> = Vec::with_capacity(raw.len());
    for (text, line) in raw {
        if text.is_empty() {
            return Err(err(Some(line), "PublicKey= is empty".into()));
        }
        let key = parse_public_key(&text).map_err(|e| err(Some(line), e))?;
        if let Some((_, first)) = keys.iter().find(|(k, _)| *k == key) {
            return Err(err(
                Some(line),
                format!("public key {key} is given twice (first on line {first})"),
            ));
        }
        keys.push((key, line));
    }
    Ok(keys.into_iter().map(|(key, _)| key).collect())
}

/// Checks every `Origin=`. At least one is required; an empty value or the same URL twice
/// is an error.
fn origins(file: &str, raw: Vec<(String, usize)>) -> Result<Vec<Origin>, ConfigError> {
    let err = |line: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line,
        message,
    };
    if raw.is_empty() {
        return Err(err(None, "missing Origin=".into()));
    }
    let mut origins: Vec<(Origin, usize)> = Vec::with_capacity(raw.len());
    for (text, line) in raw {
        if text.is_empty() {
            return Err(err(Some(line), "Origin= is empty".into()));
        }
        let origin = check_origin(file, line, &text)?;
        if let Some((_, first)) = origins.iter().find(|(o, _)| o.url == origin.url) {
            return Err(err(
                Some(line),
                format!(
                    "origin {} is given twice (first on line {first})",
                    untrusted(&origin.url)
                ),
            ));
        }
        origins.push((origin, line));
    }
    Ok(origins.into_iter().map(|(origin, _)| origin).collect())
}

/// The value of `Keep=`: a whole number of images, at least 1 (the image
/// `latest` points at is kept anyway, so 0 would only mislead).
fn parse_keep(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "Keep= must be a whole number of images, at least 1; found '{}'",
            untrusted(value)
        )),
    }
}

/// The value of `Kind=`: `file` or `container`.
fn parse_kind(value: &str) -> Result<Kind, String> {
    match value {
        "file" => Ok(Kind::File),
        "container" => Ok(Kind::Container),
        _ => Err(format!(
            "Kind= must be file or container; found '{}'",
            untrusted(value)
        )),
    }
}

/// The value of `MirrorStaleAfter=`: a whole number with a unit, `s`, `m`, `h` or `d`
/// (seconds without one), at most ten years; `0` asks the next mirror on every run.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "MirrorStaleAfter= must be a whole number of seconds, or of minutes, hours or days with m, h or d after it (12h, 1d); found '{}'",
            untrusted(value)
        )
    };
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    const TEN_YEARS: u64 = 10 * 366 * 24 * 60 * 60;
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&secs| secs <= TEN_YEARS)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Checks `Origin=` as a URL (see [`origin_url::parse_origin`]), naming the file and line.
fn check_origin(file: &str, line: usize, origin: &str) -> Result<Origin, ConfigError> {
    origin_url::parse_origin(origin).map_err(|e| ConfigError {
        file: file.to_string(),
        line: Some(line),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
