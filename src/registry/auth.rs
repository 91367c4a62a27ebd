//! Registry credentials and authentication challenges.
//!
//! Credentials come from the files container tools share, in the order podman and skopeo
//! read them: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, then
//! `~/.docker/config.json`. The first file with an answer for the registry wins. A file's
//! `auths` entry gives a user and password; `credHelpers` (per registry) and `credsStore`
//! (any registry) name a `docker-credential-<name>` program asked with `get`.
//! Credentials are never printed: errors name the file or the helper, never its content.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

/// More than any real auth file; a larger one is refused, not read into memory.
const MAX_AUTH_FILE: u64 = 1024 * 1024;

/// A user and password (or token) for one registry. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read registry auth file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry auth file {} is larger than 1 MiB", path.display())]
    TooLarge { path: PathBuf },
    #[error("registry auth file {} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the entry for {registry} in registry auth file {} is not base64 of USER:PASSWORD",
        path.display()
    )]
    BadEntry { path: PathBuf, registry: String },
    #[error(
        "registry auth file {} names the credential helper '{helper}', which is not a plain program name",
        path.display()
    )]
    BadHelperName { path: PathBuf, helper: String },
    #[error("credential helper docker-credential-{helper} for {registry} failed: {reason}")]
    Helper {
        helper: String,
        registry: String,
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The auth files to look in, in order, from the environment.
pub fn auth_files(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(path) = env("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(path));
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        files.push(Path::new(&dir).join("containers/auth.json"));
    }
    if let Some(home) = env("HOME").filter(|p| !p.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// The credentials for `registry` (`host[:port]`) and `repository`, from the first auth
/// file that has an answer; `None` when no file has one (anonymous access).
pub fn lookup(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    for path in files {
        let Some(file) = read_auth_file(path)? else {
            continue;
        };
        if let Some(found) = from_file(path, &file, registry, repository)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, AuthError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_AUTH_FILE {
        return Err(AuthError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    // serde_json's messages give a line and column, never the text around them.
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| AuthError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// The key an `auths` entry is written under, normalised: `https://host/v2/` and
/// `host` name the same registry.
fn normalise_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    key.strip_suffix("/v2")
        .or_else(|| key.strip_suffix("/v1"))
        .unwrap_or(key)
}

fn from_file(
    path: &Path,
    file: &AuthFile,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    if let Some(found) = from_entries(path, file, registry, repository)? {
        return Ok(Some(found));
    }
    let helper = file
        .cred_helpers
        .get(registry)
        .or(file.creds_store.as_ref());
    match helper {
        Some(helper) => from_helper(path, helper, registry),
        None => Ok(None),
    }
}

/// The credentials of the file's `auths` entries alone. Kept apart from the helper lookup
/// so that the fuzz targets reach it without running programs.
pub(crate) fn from_entries(
    path: &Path,
    file: &AuthFile,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, AuthError> {
    // The most specific entry first: `registry/team/app`, `registry/team`, `registry`.
    let mut scopes = vec![format!("{registry}/{repository}")];
    let mut rest = repository;
    while let Some((parent, _)) = rest.rsplit_once('/') {
        scopes.push(format!("{registry}/{parent}"));
        rest = parent;
    }
    scopes.push(registry.to_string());
    for scope in &scopes {
        let entry = file
            .auths
            .iter()
            .find(|(key, _)| normalise_key(key) == scope.as_str());
        if let Some((_, entry)) = entry
            && let Some(found) = from_entry(path, entry, registry)?
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn from_entry(
    path: &Path,
    entry: &AuthEntry,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    let bad = || AuthError::BadEntry {
        path: path.to_path_buf(),
        registry: registry.to_string(),
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) => Ok(Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Asks `docker-credential-<helper> get` for the registry's credentials. A helper that
/// knows none says so and exits non-zero: that is anonymous access, not an error.
fn from_helper(
    path: &Path,
    helper: &str,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    let plain = !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !helper.starts_with('.');
    if !plain {
        return Err(AuthError::BadHelperName {
            path: path.to_path_buf(),
            helper: crate::format::text::untrusted(helper),
        });
    }
    let failed = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // What a helper says on stderr may hold anything; it is not passed on.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(MAX_AUTH_FILE)
            .read_to_end(&mut out)
            .map_err(|e| failed(e.to_string()))?;
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Ok(None);
    }
    let answer: HelperAnswer = serde_json::from_slice(&out)
        .map_err(|_| failed("its answer is not the expected JSON".to_string()))?;
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

/// What a registry's `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key="value", key=value` pairs; quoted values may hold commas and `\"`.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_the_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn looks_up_the_most_specific_entry_and_normalised_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{}"}},"reg.example:5000/team":{{"auth":"{}"}}}}}}"#,
                enc("all:pw1"),
                enc("team:pw2")
            ),
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), path];
        let found = lookup(&files, "reg.example:5000", "team/app")
            .unwrap()
            .unwrap();
        assert_eq!(found.username, "team");
        let found = lookup(&files, "reg.example:5000", "other")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("all", "pw1")
        );
        assert_eq!(lookup(&files, "elsewhere", "x").unwrap(), None);
        assert!(!format!("{found:?}").contains("pw1"));
    }
}
