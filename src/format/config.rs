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
        assert_eq!(c.public_keys, [PublicKey::parse(KEY).unwrap()]);
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
            "app.tako:3: unknown key 'Orign'; did you mean Origin? expected one of Origin, PublicKey, Destination, Version, Restart, HeaderFile, CACertificate, ClientCertificate, ClientKey, Keep, MirrorStaleAfter, Kind, Platform"
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
        for key in ["Destination", "Version"] {
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

    const KEY2: &str = "CIXmyAykawJ4QprUaE1+bqcHVjQUhW+FwPdmHsYsFK8=";

    #[test]
    fn public_key_may_be_repeated_and_keeps_its_order() {
        let text = good().replace(
            &format!("PublicKey={KEY}\n"),
            &format!("PublicKey={KEY2}\nPublicKey = {KEY}\n"),
        );
        let c = parse("a", &text).unwrap();
        assert_eq!(
            c.public_keys,
            [
                PublicKey::parse(KEY2).unwrap(),
                PublicKey::parse(KEY).unwrap()
            ]
        );
        // Not necessarily adjacent.
        let text = format!("{}PublicKey={KEY2}\n", good());
        let c = parse("a", &text).unwrap();
        assert_eq!(c.public_keys.len(), 2);
        assert_eq!(c.public_keys[0].to_base64(), KEY);
    }

    #[test]
    fn origin_may_be_repeated_and_keeps_its_order() {
        let text = format!(
            "{}Origin=file:///srv/mirror\nOrigin=http://u:pw@m2/a/\n",
            good()
        );
        let c = parse("a", &text).unwrap();
        let urls: Vec<&str> = c.origins.iter().map(|o| o.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://images.example.com/app-foo",
                "file:///srv/mirror",
                "http://***@m2/a"
            ]
        );
        assert_eq!(c.origin, urls[0]);
        assert!(c.origins[0].credentials.is_none() && c.origins[2].credentials.is_some());
    }

    #[test]
    fn rejects_the_same_origin_twice_and_an_empty_one() {
        let e = error(&format!(
            "{}Origin=HTTPS://images.example.com/app-foo\n",
            good()
        ));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("given twice (first on line 1)"), "{e}");
        let e = error(&format!("{}Origin=\n", good()));
        assert_eq!(e.to_string(), "app.tako:5: Origin= is empty");
        let e = error(&format!("{}Origin=ftp://x/\n", good()));
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn toml_origin_is_a_string_or_an_array() {
        let text = good_toml().replace(
            "origin = \"https://x/\"",
            "origin = [\n  \"https://x/\",\n  \"file:///m\",\n]",
        );
        let c = parse_toml("a.toml", &text).unwrap();
        assert_eq!(c.origins.len(), 2);
        assert_eq!(c.origins[1].url, "file:///m");
        let bad = good_toml().replace(
            "origin = \"https://x/\"",
            "origin = [\n  \"https://x/\",\n  \"gopher://m\",\n]",
        );
        let e = parse_toml("a.toml", &bad).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse_toml("a.toml", &good_toml().replace("\"https://x/\"", "[]")).unwrap_err();
        assert!(e.message.contains("empty array"), "{e}");
    }

    #[test]
    fn rejects_the_same_public_key_twice_and_an_empty_one() {
        let e = error(&format!("{}PublicKey= {KEY}\n", good()));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("given twice (first on line 2)"), "{e}");
        let e = error(&format!("{}PublicKey=\n", good()));
        assert_eq!(e.to_string(), "app.tako:5: PublicKey= is empty");
    }

    #[test]
    fn rejects_a_bad_second_key_on_its_line() {
        let e = error(&format!("{}PublicKey=abc\n", good()));
        assert_eq!(e.line, Some(5));
        assert!(
            e.message.contains("invalid public key (3 characters)"),
            "{e}"
        );
    }

    #[test]
    fn a_pasted_secret_key_is_not_repeated_in_the_error() {
        let secret = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";
        let e = error(&good().replace(KEY, secret));
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("secret key"), "{e}");
        assert!(!e.to_string().contains(&secret[7..30]), "{e}");
    }

    #[test]
    fn checks_the_origin_as_a_url_on_its_line() {
        let e = error(&good().replace("app-foo/", "app-foo/?v=1"));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("has a query"), "{e}");
        let c = parse("a", &good().replace("https://", "HTTPS://u:p%40ss@")).unwrap();
        assert_eq!(c.origin, "https://***@images.example.com/app-foo");
        assert!(c.origins[0].credentials.is_some());
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
    fn a_secret_key_in_public_key_is_named_but_never_quoted() {
        let secret = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";
        let e = error(&good().replace(KEY, secret));
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("holds a secret key"), "{e}");
        assert!(!e.to_string().contains(&secret[7..20]), "{e}");
        let garbage = "x".repeat(5000);
        let e = error(&good().replace(KEY, &garbage));
        assert!(e.message.contains("5000 characters"), "{e}");
        assert!(!e.to_string().contains("xxxx"), "{e}");
    }

    #[test]
    fn restart_names_are_completed_and_checked_on_their_lines() {
        let text = format!("{}Restart=app db.socket\nRestart=getty@tty1\n", good());
        assert_eq!(
            parse("a", &text).unwrap().restart,
            ["app.service", "db.socket", "getty@tty1.service"]
        );
        for bad in ["foo@.service", "a/b", "x.service\u{1b}[2J"] {
            let e = error(&format!("{}Restart=ok.service\nRestart=a {bad}\n", good()));
            assert_eq!(e.line, Some(6), "{e}");
            assert!(e.message.contains("invalid unit name"), "{e}");
            assert!(!e.message.contains('\u{1b}'), "{e}");
        }
        let e = parse_toml(
            "a.toml",
            &format!("{}restart = [\n  \"a\",\n  \"b/c\",\n]\n", good_toml()),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("'b/c'"), "{e}");
    }

    #[test]
    fn a_version_with_spaces_that_is_not_a_range_is_an_error_on_its_line() {
        for pattern in [">= 1.0", "1.0 - 2.0", "1.0 || 2.0"] {
            let e = error(&good().replace("1.*", pattern));
            assert_eq!(e.line, Some(4), "{e}");
            assert!(e.message.contains("invalid version pattern"), "{e}");
        }
    }

    #[test]
    fn values_quoted_in_errors_are_escaped_and_cut() {
        let hostile = "\u{1b}[2J".repeat(2000);
        let e = error(&format!("{}{hostile}\n", good()));
        let shown = e.to_string();
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert!(shown.len() < 1000, "{} bytes", shown.len());
        let e = error(&good().replace("1.*", &format!("1.{hostile}*")));
        assert!(!e.to_string().contains('\u{1b}'));
        assert!(e.to_string().len() < 1000);
    }

    #[test]
    fn mirror_stale_after_is_a_day_unless_given_with_a_unit() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse("a", &good()).unwrap().mirror_stale_after, day);
        for (text, secs) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("30m", 1800),
            ("12h", 43_200),
            ("2d", 172_800),
        ] {
            let c = parse("a", &format!("{}MirrorStaleAfter={text}\n", good())).unwrap();
            assert_eq!(c.mirror_stale_after, Duration::from_secs(secs), "{text}");
        }
        for bad in [
            "",
            "d",
            "1w",
            "-1",
            "1.5h",
            "1 d",
            "99999999999999999999",
            "5000d",
        ] {
            let e = error(&format!("{}MirrorStaleAfter={bad}\n", good()));
            assert_eq!(e.line, Some(5), "{bad}");
            assert!(
                e.message.starts_with("MirrorStaleAfter= must be"),
                "{bad}: {e}"
            );
        }
        let c = parse_toml(
            "a.toml",
            &format!("{}mirror_stale_after = \"6h\"\n", good_toml()),
        )
        .unwrap();
        assert_eq!(c.mirror_stale_after, Duration::from_secs(21_600));
        let c = parse_toml(
            "a.toml",
            &format!("{}mirror_stale_after = 60\n", good_toml()),
        )
        .unwrap();
        assert_eq!(c.mirror_stale_after, Duration::from_secs(60));
        let e = parse_toml(
            "a.toml",
            &format!("{}mirror_stale_after = -1\n", good_toml()),
        )
        .unwrap_err();
        assert!(e.message.starts_with("MirrorStaleAfter= must be"), "{e}");
    }

    #[test]
    fn kind_is_file_unless_a_config_says_container() {
        let c = parse("a", &good()).unwrap();
        assert_eq!((c.kind, c.platform), (Kind::File, None));
        let c = parse("a", &format!("{}Kind=container\n", good())).unwrap();
        assert_eq!((c.kind, c.platform), (Kind::Container, None));
        let c = parse("a", &format!("{}Kind=file\n", good())).unwrap();
        assert_eq!(c.kind, Kind::File);
        for bad in ["Container", "oci", "", "files"] {
            let e = error(&format!("{}Kind={bad}\n", good()));
            assert_eq!(e.line, Some(5), "{bad}: {e}");
            assert!(
                e.message.starts_with("Kind= must be file or container"),
                "{bad}: {e}"
            );
        }
        let e = error(&format!("{}Kind=file\nKind=container\n", good()));
        assert_eq!(e.line, Some(6), "{e}");
    }

    #[test]
    fn platform_names_the_container_platform_as_image_pull_reads_it() {
        let c = parse(
            "a",
            &format!("{}Kind=container\nPlatform=linux/aarch64\n", good()),
        )
        .unwrap();
        assert_eq!(c.platform, Some(Platform::new("linux", "arm64", None)));
        let c = parse(
            "a",
            &format!("{}Kind=container\nPlatform=linux/arm/v6\n", good()),
        )
        .unwrap();
        assert_eq!(c.platform, Some(Platform::new("linux", "arm", Some("v6"))));
        let e = error(&format!("{}Kind=container\nPlatform=linux\n", good()));
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("invalid platform 'linux'"), "{e}");
        assert!(e.message.contains("OS/ARCH[/VARIANT]"), "{e}");
    }

    #[test]
    fn platform_without_kind_container_is_refused_with_the_fix() {
        let e = error(&format!("{}Platform=linux/amd64\n", good()));
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("add Kind=container"), "{e}");
    }

    #[test]
    fn toml_names_kind_and_platform_in_snake_case() {
        let c = parse_toml(
            "a.toml",
            &format!(
                "{}kind = \"container\"\nplatform = \"linux/amd64\"\n",
                good_toml()
            ),
        )
        .unwrap();
        assert_eq!(c.kind, Kind::Container);
        assert_eq!(c.platform, Some(Platform::new("linux", "amd64", None)));
        let e = parse_toml("a.toml", &format!("{}kind = 1\n", good_toml())).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.starts_with("kind must be a string"), "{e}");
        let e = parse_toml("a.toml", &format!("{}kind = \"tar\"\n", good_toml())).unwrap_err();
        assert!(
            e.message.starts_with("Kind= must be file or container"),
            "{e}"
        );
    }

    #[test]
    fn keep_is_an_optional_count_of_at_least_one() {
        assert_eq!(parse("a", &good()).unwrap().keep, None);
        let c = parse("a", &format!("{}Keep = 2\n", good())).unwrap();
        assert_eq!(c.keep, Some(2));
        for bad in ["0", "-1", "+2", "two", "", "1.5", "99999999999999999999999"] {
            let e = error(&format!("{}Keep={bad}\n", good()));
            assert_eq!(e.line, Some(5), "{bad}: {e}");
            assert!(e.message.contains("Keep= must be"), "{bad}: {e}");
        }
        let e = error(&format!("{}Keep=1\nKeep=2\n", good()));
        assert!(e.message.contains("twice"), "{e}");
        let c = parse_toml("a.toml", &format!("{}keep = 4\n", good_toml())).unwrap();
        assert_eq!(c.keep, Some(4));
        let e = parse_toml("a.toml", &format!("{}keep = 0\n", good_toml())).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("at least 1"), "{e}");
        let e = parse_toml("a.toml", &format!("{}keep = \"3\"\n", good_toml())).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn a_toml_value_of_the_wrong_type_names_the_key_what_it_holds_and_what_to_write() {
        let e = parse_toml("a.toml", &format!("{}keep = \"3\"\n", good_toml())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.toml:5: keep must be a whole number without quotes, like `keep = 3`; found the string \"3\""
        );
        let e = parse_toml("a.toml", &good_toml().replace("\"1.*\"", "1.0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.toml:4: version must be a string in quotes, like `version = \"1.*\"`; found a decimal number"
        );
        let e = parse_toml(
            "a.toml",
            &format!("{}restart = [\"a.service\", 5]\n", good_toml()),
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("restart must be a string in quotes, or an array of them")
                && e.message.ends_with("found an array holding number 5"),
            "{e}"
        );
        let secret = "x".repeat(40);
        let e = parse_toml("a.toml", &format!("{}keep = \"{secret}\"\n", good_toml())).unwrap_err();
        assert!(!e.message.contains(&secret), "{e}");
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
        assert_eq!(c.restart, ["a.service", "b.service"]);
        assert!(
            parse_toml("a.toml", &good_toml())
                .unwrap()
                .restart
                .is_empty()
        );
    }

    #[test]
    fn toml_public_key_is_a_string_or_an_array() {
        let c = parse_toml("a.toml", &good_toml()).unwrap();
        assert_eq!(c.public_keys, [PublicKey::parse(KEY).unwrap()]);
        let text = good_toml().replace(
            &format!("\"{KEY}\""),
            &format!("[\n  \"{KEY2}\",\n  \"{KEY}\",\n]"),
        );
        let c = parse_toml("a.toml", &text).unwrap();
        assert_eq!(
            c.public_keys,
            [
                PublicKey::parse(KEY2).unwrap(),
                PublicKey::parse(KEY).unwrap()
            ]
        );
    }

    #[test]
    fn toml_key_errors_name_the_line_of_the_key() {
        let text = good_toml().replace(
            &format!("\"{KEY}\""),
            &format!("[\n  \"{KEY}\",\n  \"abc\",\n]"),
        );
        let e = parse_toml("a.toml", &text).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message.contains("invalid public key (3 characters)"),
            "{e}"
        );
        let text = good_toml().replace(&format!("\"{KEY}\""), &format!("[\"{KEY}\", \"{KEY}\"]"));
        let e = parse_toml("a.toml", &text).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = parse_toml("a.toml", &good_toml().replace(KEY, "abc")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e =
            parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "[]")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("empty array"), "{e}");
        let e =
            parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "[1]")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "7")).unwrap_err();
        assert!(e.message.contains("public_key must be"), "{e}");
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

    #[test]
    fn private_origin_files_are_read_in_both_syntaxes() {
        let text = format!(
            "{}HeaderFile=/etc/tako/h\nCACertificate=/etc/tako/ca.pem\nClientCertificate=/c.pem\nClientKey=/k.pem\n",
            good()
        );
        let c = parse("a", &text).unwrap();
        assert_eq!(c.access.header_file, Some(PathBuf::from("/etc/tako/h")));
        assert_eq!(
            c.access.ca_certificate,
            Some(PathBuf::from("/etc/tako/ca.pem"))
        );
        assert_eq!(c.access.client_certificate, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.access.client_key, Some(PathBuf::from("/k.pem")));
        let toml = format!(
            "{}header_file = \"/h\"\nca_certificate = \"/ca\"\nclient_certificate = \"/c\"\nclient_key = \"/k\"\n",
            good_toml()
        );
        let t = parse_toml("a.toml", &toml).unwrap();
        assert_eq!(t.access.header_file, Some(PathBuf::from("/h")));
        assert_eq!(t.access.ca_certificate, Some(PathBuf::from("/ca")));
        assert_eq!(t.access.client_certificate, Some(PathBuf::from("/c")));
        assert_eq!(t.access.client_key, Some(PathBuf::from("/k")));
        assert_eq!(parse("a", &good()).unwrap().access, Access::default());
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_files_may_not_be_empty() {
        let e = error(&format!("{}ClientCertificate=/c.pem\n", good()));
        assert!(e.message.contains("without ClientKey="), "{e}");
        assert_eq!(e.line, Some(5));
        let e = error(&format!("{}ClientKey=/k.pem\n", good()));
        assert!(e.message.contains("without ClientCertificate="), "{e}");
        let e = error(&format!("{}HeaderFile=\n", good()));
        assert!(e.message.contains("HeaderFile= is empty"), "{e}");
        let e = error(&format!("{}CACertificate=/a\nCACertificate=/b\n", good()));
        assert!(e.message.contains("given twice"), "{e}");
        let e = parse_toml("a.toml", &format!("{}client_key = \"/k\"\n", good_toml())).unwrap_err();
        assert!(e.message.contains("without ClientCertificate="), "{e}");
    }
}
