//! What registry authentication is made of, read from bytes: the auth files container
//! tools share (`auth.json`, `~/.docker/config.json`), a credential helper's answer, a
//! `WWW-Authenticate` challenge, and a token service's answer.
//!
//! Which files are read, and running the helpers, is the registry client's business
//! (`registry::auth`). Credentials are never shown: Debug hides the password, errors name
//! the registry and never a value.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

/// A user and password (or token) for one registry. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryCredentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// An `auths` entry that is neither base64 of `USER:PASSWORD` nor a user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry;

/// An auth file: `auths` entries by registry (and repository) and the credential helpers
/// it names.
#[derive(Debug, Default, Deserialize)]
pub struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
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

impl AuthFile {
    /// Reads an auth file's JSON. serde_json's messages give a line and column, never the
    /// text around them.
    pub fn parse(bytes: &[u8]) -> Result<AuthFile, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The credentials of the file's `auths` entries for `registry` (`host[:port]`) and
    /// `repository`: the most specific entry first (`registry/team/app`, `registry/team`,
    /// `registry`), its key normalised (`https://host/v2/` is `host`).
    pub fn credentials(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<RegistryCredentials>, BadEntry> {
        let mut scopes = vec![format!("{registry}/{repository}")];
        let mut rest = repository;
        while let Some((parent, _)) = rest.rsplit_once('/') {
            scopes.push(format!("{registry}/{parent}"));
            rest = parent;
        }
        scopes.push(registry.to_string());
        for scope in &scopes {
            let entry = self
                .auths
                .iter()
                .find(|(key, _)| normalise_key(key) == scope.as_str());
            if let Some((_, entry)) = entry
                && let Some(found) = entry.credentials()?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The credential helper to ask for `registry` when no entry answers: its own in
    /// `credHelpers`, else the `credsStore` for every registry.
    pub fn helper(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(registry)
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }
}

impl AuthEntry {
    fn credentials(&self) -> Result<Option<RegistryCredentials>, BadEntry> {
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| BadEntry)?;
            let text = String::from_utf8(decoded).map_err(|_| BadEntry)?;
            let (username, password) = text.split_once(':').ok_or(BadEntry)?;
            return Ok(Some(RegistryCredentials {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Ok(Some(RegistryCredentials {
                username: username.clone(),
                password: password.clone(),
            })),
            _ => Ok(None),
        }
    }
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

/// Whether a helper name can be run as `docker-credential-<name>`: a plain program name,
/// never a path or an option.
pub fn is_plain_helper_name(helper: &str) -> bool {
    !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !helper.starts_with('.')
}

/// A credential helper's answer to `get`: `{"Username": …, "Secret": …}`.
pub fn parse_helper_answer(bytes: &[u8]) -> Option<RegistryCredentials> {
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(bytes).ok()?;
    Some(RegistryCredentials {
        username: answer.username,
        password: answer.secret,
    })
}

/// The token in a token service's answer (`token`, or OAuth's `access_token`), or why
/// there is none. A header value cannot hold control characters; a token that does is
/// refused rather than shown.
pub fn parse_token_answer(bytes: &[u8]) -> Result<String, &'static str> {
    #[derive(Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: Token = serde_json::from_slice(bytes).map_err(|_| "the answer is not a token")?;
    let token = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("the answer holds no token")?;
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token is not printable ASCII");
    }
    Ok(token)
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

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn the_most_specific_auths_entry_answers_under_any_spelling_of_its_key() {
        let file = AuthFile::parse(
            format!(
                r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{}"}},"reg.example:5000/team":{{"auth":"{}"}},"plain.example":{{"username":"u","password":"p"}}}}}}"#,
                enc("all:pw1"),
                enc("team:pw2")
            )
            .as_bytes(),
        )
        .unwrap();
        let found = |registry: &str, repository: &str| {
            file.credentials(registry, repository)
                .unwrap()
                .map(|c| (c.username, c.password))
        };
        assert_eq!(
            found("reg.example:5000", "team/app"),
            Some(("team".into(), "pw2".into()))
        );
        assert_eq!(
            found("reg.example:5000", "other"),
            Some(("all".into(), "pw1".into()))
        );
        assert_eq!(found("plain.example", "x"), Some(("u".into(), "p".into())));
        assert_eq!(found("elsewhere", "x"), None);
    }

    #[test]
    fn an_entry_that_is_no_user_and_password_is_an_error_and_secrets_stay_hidden() {
        for auth in [enc("no-colon"), "***".to_owned(), enc("\u{0}\u{ff}")] {
            let file =
                AuthFile::parse(format!(r#"{{"auths":{{"r":{{"auth":"{auth}"}}}}}}"#).as_bytes())
                    .unwrap();
            assert_eq!(file.credentials("r", "a"), Err(BadEntry), "{auth}");
        }
        let creds = RegistryCredentials {
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{creds:?}").contains("s3cret"));
        assert_eq!(creds.basic(), format!("Basic {}", enc("u:s3cret")));
    }

    #[test]
    fn credential_helpers_are_plain_names_picked_per_registry_then_for_all() {
        let file = AuthFile::parse(
            br#"{"credHelpers":{"a.example":"pass"},"credsStore":"secretservice"}"#,
        )
        .unwrap();
        assert_eq!(file.helper("a.example"), Some("pass"));
        assert_eq!(file.helper("b.example"), Some("secretservice"));
        assert_eq!(AuthFile::default().helper("a.example"), None);
        assert!(is_plain_helper_name("ecr-login"));
        for bad in ["", "../x", "/bin/sh", ".hidden", "a b", "-x;y"] {
            assert!(!is_plain_helper_name(bad), "{bad}");
        }
        assert_eq!(
            parse_helper_answer(br#"{"ServerURL":"r","Username":"u","Secret":"s"}"#),
            Some(RegistryCredentials {
                username: "u".into(),
                password: "s".into()
            })
        );
        assert_eq!(parse_helper_answer(b"credentials not found"), None);
    }

    #[test]
    fn a_token_answer_gives_a_printable_token_or_says_why_not() {
        assert_eq!(parse_token_answer(br#"{"token":"abc"}"#), Ok("abc".into()));
        assert_eq!(
            parse_token_answer(br#"{"access_token":"xyz","expires_in":60}"#),
            Ok("xyz".into())
        );
        assert_eq!(
            parse_token_answer(b"<html>"),
            Err("the answer is not a token")
        );
        assert_eq!(
            parse_token_answer(br#"{"token":""}"#),
            Err("the answer holds no token")
        );
        assert_eq!(
            parse_token_answer(br#"{"token":"a\nb"}"#),
            Err("the token is not printable ASCII")
        );
    }
}
