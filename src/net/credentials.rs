//! What an origin is sent to let tako in: HTTP Basic credentials (from the origin URL or
//! netrc) and the extra headers of `HeaderFile=`, each only for the origin's own scheme,
//! host and port.
//!
//! Every file here holds a secret, so nothing read from one is ever quoted in a message:
//! errors name the file, the line and what is wrong, never the text that was there (a
//! mistyped line may well be a token). The files are read when a config is fetched, not
//! when it is parsed, so a rotated token is picked up by the next run without touching the
//! config.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::Engine;
use ureq::http::{HeaderName, HeaderValue, header};

use crate::format::header_file::parse_headers;
use crate::format::netrc::{NetrcLogin, find_login, parse_netrc};
use crate::format::origin_url::{BasicCredentials, Scope, normalize_host};
use crate::fs::bounded::read_bounded;
use crate::fs::warnings;

use super::error::{AccessError, shown};
use super::request::Target;

/// The largest header file read (`HeaderFile=`): a few tokens, not a document.
pub const MAX_HEADER_FILE: u64 = 64 * 1024;
/// The largest netrc file read.
const MAX_NETRC: u64 = 1 << 20;

const HEADER_FILE: &str = "header file (HeaderFile=)";
const NETRC: &str = "netrc file";

/// What an origin is sent to let tako in: a user name and password for HTTP Basic
/// authentication (from the origin URL or from netrc) and extra headers (from the config's
/// `HeaderFile=`).
///
/// Only the request builder reads them, and only for requests to the scheme, host and port
/// they came with: a redirect elsewhere (another host, another port, or from `https` to
/// `http`) never receives them. Debug output hides the password and the header values, and
/// there is no Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(super) basic: Option<Basic>,
    /// From `HeaderFile=`, marked sensitive. An `Authorization` line here replaces the
    /// Basic one (see [`Credentials::headers`]).
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) scope: Scope,
    /// Where they came from ("netrc file /root/.netrc"), for the message of a server that
    /// refuses them; `None` for a registry's answer to its own challenge.
    pub(super) from: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub(super) struct Basic {
    pub(super) user: Vec<u8>,
    pub(super) password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field(
                "user",
                &self
                    .basic
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b.user)),
            )
            .field("password", &self.basic.as_ref().map(|_| "***"))
            .field("headers", &names)
            .field("scope", &self.scope)
            .field("from", &self.from)
            .finish()
    }
}

impl Credentials {
    /// A user name and password (from an origin URL or netrc), for their own scope.
    pub(super) fn from_basic(credentials: BasicCredentials) -> Credentials {
        Credentials {
            basic: Some(Basic {
                user: credentials.user,
                password: credentials.password,
            }),
            headers: Vec::new(),
            scope: credentials.scope,
            from: Some("origin URL (Origin=)".to_owned()),
        }
    }

    /// An `Authorization` header value (a registry's Basic or Bearer answer to its own
    /// challenge) for requests to the scheme, host and port of `url` only; `None` when `url`
    /// is not http(s) or the value cannot be a header.
    pub fn authorization(url: &str, value: &str) -> Option<Credentials> {
        let scope = url::Url::parse(url).ok().as_ref().and_then(Scope::of)?;
        let mut value = HeaderValue::from_str(value).ok()?;
        value.set_sensitive(true);
        Some(Credentials {
            basic: None,
            headers: vec![(header::AUTHORIZATION, value)],
            scope,
            from: None,
        })
    }

    /// An `Authorization` value for requests to `target`'s own scheme, host and port;
    /// `None` when the value cannot be a header.
    pub(super) fn for_target(target: &Target, value: &str) -> Option<Credentials> {
        let mut value = HeaderValue::from_str(value).ok()?;
        value.set_sensitive(true);
        Some(Credentials {
            basic: None,
            headers: vec![(header::AUTHORIZATION, value)],
            scope: Scope {
                https: target.https,
                host: normalize_host(&target.host),
                port: target.port,
            },
            from: None,
        })
    }

    /// Whether a request to `target` may carry these credentials.
    pub(super) fn applies_to(&self, target: &Target) -> bool {
        target.is_in(&self.scope)
    }

    /// Every header these credentials add to a request: Basic authentication (RFC 7617)
    /// unless a header file sets `Authorization` itself (a bearer token replaces the
    /// password, as curl's `-H` replaces `-u`), then the header file's lines.
    pub(super) fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.headers.len() + 1);
        let own_authorization = self
            .headers
            .iter()
            .any(|(name, _)| name == header::AUTHORIZATION);
        if let Some(basic) = &self.basic
            && !own_authorization
            && let Some(value) = basic_auth(&basic.user, &basic.password)
        {
            out.push((header::AUTHORIZATION, value));
        }
        out.extend(self.headers.iter().cloned());
        out
    }
}

/// `Basic base64(user:password)`, marked sensitive so nothing in ureq logs it.
pub(super) fn basic_auth(user: &[u8], password: &[u8]) -> Option<HeaderValue> {
    let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
    pair.extend_from_slice(user);
    pair.push(b':');
    pair.extend_from_slice(password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Reads and checks a header file; the values are marked sensitive.
pub(super) fn read_header_file(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, AccessError> {
    let bytes = read_bounded(path, MAX_HEADER_FILE, HEADER_FILE)?;
    let bad = |line, reason| AccessError::Header {
        path: shown(path),
        line,
        reason,
    };
    let mut headers = Vec::new();
    for (i, line) in parse_headers(&bytes)
        .map_err(|(line, reason)| bad(line, reason))?
        .into_iter()
        .enumerate()
    {
        // The parser lets through only what HTTP allows, so neither can fail; the line
        // given is the header's position should it ever do.
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| bad(i + 1, "the header name is not a valid one".to_owned()))?;
        let mut value = HeaderValue::from_bytes(&line.value).map_err(|_| {
            bad(
                i + 1,
                format!("the value of the {} header is not valid", name.as_str()),
            )
        })?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(headers)
}

/// The netrc files to look at, in order, each with whether it must exist: `$NETRC` alone
/// if set (the operator named it, so a missing file is an error), else
/// `$CREDENTIALS_DIRECTORY/netrc` (systemd's `LoadCredential=`) and then `~/.netrc`, of
/// which the first that exists is used.
pub(super) fn netrc_candidates(var: impl Fn(&str) -> Option<OsString>) -> Vec<(PathBuf, bool)> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(path) = set("NETRC") {
        return vec![(PathBuf::from(path), true)];
    }
    let mut out = Vec::new();
    if let Some(dir) = set("CREDENTIALS_DIRECTORY") {
        out.push((Path::new(&dir).join("netrc"), false));
    }
    if let Some(home) = set("HOME") {
        out.push((Path::new(&home).join(".netrc"), false));
    }
    out
}

/// The login for `host` from the first netrc file of `candidates` that exists, with the
/// file it came from.
///
/// A file the operator named (`$NETRC`) must be readable. One looked for on the off chance
/// (`~/.netrc`) that cannot be read, say in a home directory the user may not enter, is
/// skipped with a warning (once per run): most origins need no netrc at all, and failing
/// every config over a file that is likely not even there would help nobody.
pub(super) fn netrc_login(
    host: &str,
    candidates: &[(PathBuf, bool)],
) -> Result<Option<(NetrcLogin, PathBuf)>, AccessError> {
    for (path, required) in candidates {
        let bytes = match read_bounded(path, MAX_NETRC, NETRC) {
            Err(e) if e.is_not_found() && !required => continue,
            Err(e) if !required => {
                warnings::once(
                    path,
                    format!("{e}; going on without it (set NETRC to name the netrc file to use)"),
                );
                continue;
            }
            read => read?,
        };
        let entries = parse_netrc(&bytes).map_err(|(line, reason)| AccessError::Netrc {
            path: shown(path),
            line,
            reason,
        })?;
        return Ok(find_login(&entries, host).map(|login| (login, path.clone())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::origin_url::parse_origin;

    #[test]
    fn a_registry_authorization_goes_to_the_registrys_own_scheme_host_and_port_only() {
        let creds =
            Credentials::authorization("http://127.0.0.1:5000/v2/app/blobs/x", "Bearer t").unwrap();
        let target = |url: &str| Target::parse_shown(url, url).unwrap();
        assert!(creds.applies_to(&target("http://127.0.0.1:5000/v2/app/blobs/y")));
        assert!(!creds.applies_to(&target("http://127.0.0.1:5001/blob")));
        assert!(!creds.applies_to(&target("https://127.0.0.1:5000/blob")));
        assert!(!creds.applies_to(&target("http://storage.example/blob")));
        let headers = creds.headers();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0, header::AUTHORIZATION);
        assert!(headers[0].1.is_sensitive());
        assert!(!format!("{creds:?}").contains("Bearer t"));
        assert!(Credentials::authorization("oci://h/app", "Bearer t").is_none());
        assert!(Credentials::authorization("http://h/", "Bearer \n").is_none());
    }

    #[test]
    fn credentials_apply_only_to_their_own_scheme_host_and_port() {
        let creds = parse_origin("https://u:p@Host.example/o")
            .unwrap()
            .credentials
            .map(Credentials::from_basic)
            .unwrap();
        let applies = |url: &str| creds.applies_to(&Target::parse(url).unwrap());
        assert!(applies("https://host.example/o/manifest"));
        assert!(applies("https://HOST.example:443/other"));
        assert!(applies("https://***@host.example/o/manifest"));
        assert!(!applies("http://host.example/o/manifest"));
        assert!(!applies("https://host.example:8443/o/manifest"));
        assert!(!applies("https://other.example/o/manifest"));
        assert!(!applies("https://host.example.evil/o/manifest"));
    }

    #[test]
    fn a_header_file_authorization_replaces_basic_credentials() {
        let mut creds = parse_origin("https://u:p@h/o")
            .unwrap()
            .credentials
            .map(Credentials::from_basic)
            .unwrap();
        let names = |c: &Credentials| -> Vec<String> {
            c.headers()
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                .collect()
        };
        assert_eq!(names(&creds), ["authorization: Basic dTpw"]);
        let mut token = HeaderValue::from_static("Bearer t");
        token.set_sensitive(true);
        creds.headers = vec![
            (header::AUTHORIZATION, token),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("b"),
            ),
        ];
        assert_eq!(names(&creds), ["authorization: Bearer t", "x-a: b"]);
        let debug = format!("{creds:?}");
        assert!(
            !debug.contains("Bearer") && debug.contains("x-a"),
            "{debug}"
        );
    }

    #[test]
    fn netrc_is_taken_from_netrc_then_the_credentials_directory_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            netrc_candidates(env(&[("NETRC", "/n"), ("HOME", "/h")])),
            [(PathBuf::from("/n"), true)]
        );
        assert_eq!(
            netrc_candidates(env(&[("CREDENTIALS_DIRECTORY", "/c"), ("HOME", "/h")])),
            [
                (PathBuf::from("/c/netrc"), false),
                (PathBuf::from("/h/.netrc"), false)
            ]
        );
        assert_eq!(
            netrc_candidates(env(&[("NETRC", ""), ("HOME", "/h")])),
            [(PathBuf::from("/h/.netrc"), false)]
        );
        assert!(netrc_candidates(env(&[])).is_empty());
    }

    #[test]
    fn an_optional_netrc_that_cannot_be_read_is_skipped_but_a_named_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A home that is a file: its .netrc cannot even be looked for (ENOTDIR).
        let home = dir.path().join("home");
        std::fs::write(&home, "").unwrap();
        let netrc = home.join(".netrc");
        assert_eq!(netrc_login("h", &[(netrc.clone(), false)]).unwrap(), None);
        let err = netrc_login("h", &[(netrc.clone(), true)]).unwrap_err();
        assert!(
            err.to_string().contains(&netrc.display().to_string()),
            "{err}"
        );
    }
}
