//! `Origin=` URLs: checking them, splitting off their credentials, and showing them with the
//! password hidden.
//!
//! An origin URL is the one tako prints everywhere (messages, `--json`, `tako status`), so
//! the password of its user part is replaced by `***` as soon as it is parsed; the real
//! user name and password travel on as [`BasicCredentials`], which say where they may be
//! sent (one scheme, host and port) and which only the transport turns into a header.

use percent_encoding::percent_decode_str;

use super::registry_url::{RegistryUrl, RegistryUrlError};
use super::text::untrusted;

/// An origin URL checked when the config is loaded.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The URL as tako prints it and hands to the transport: normalised, without a trailing
    /// slash, and with any password replaced by `***`.
    pub url: String,
    /// The user name and password the URL carried, if any.
    pub credentials: Option<BasicCredentials>,
}

/// Why an `Origin=` value is not usable. The URL in the message has its password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("invalid origin URL '{url}': {reason}")]
    Invalid { url: String, reason: String },
    #[error(
        "unsupported origin '{url}': use an https://, http:// or file:// URL, or a registry repository oci://REGISTRY/REPOSITORY"
    )]
    UnsupportedScheme { url: String },
    /// An `oci://` or `oci+http://` origin that is no registry repository.
    #[error(transparent)]
    Registry(#[from] RegistryUrlError),
    #[error("origin URL '{url}' has a query ('?…'); an origin names a directory, so remove it")]
    Query { url: String },
    #[error("origin URL '{url}' has a fragment ('#…'), which is never sent to a server; remove it")]
    Fragment { url: String },
    #[error("file:// origin '{url}' names a host; use file:///path for a local directory")]
    FileHost { url: String },
    #[error("file:// origin '{url}' cannot carry a user name or password")]
    FileCredentials { url: String },
}

/// A user name and password for HTTP Basic authentication (RFC 7617), from an origin URL or
/// a netrc file, and the one scheme, host and port they may be sent to.
///
/// Debug output hides the password, and there is no Display.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// Percent-decoded: `p%40ss` in the URL is the password `p@ss`.
    pub user: Vec<u8>,
    pub password: Vec<u8>,
    pub scope: Scope,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"***")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Where credentials may be sent: one scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub https: bool,
    /// As [`normalize_host`] leaves it.
    pub host: String,
    pub port: u16,
}

impl Scope {
    /// The scope of an http(s) URL; `None` for any other scheme or without a host.
    pub fn of(url: &url::Url) -> Option<Scope> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = url.host_str().filter(|h| !h.is_empty())?;
        Some(Scope {
            https,
            host: normalize_host(host),
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// Whether a request to `host` and `port`, over https or not, is inside this scope.
    pub fn covers(&self, https: bool, host: &str, port: u16) -> bool {
        self.https == https && self.host == normalize_host(host) && self.port == port
    }
}

/// Lower-cases and drops IPv6 brackets and a trailing root dot, so `Example.COM.` and
/// `example.com` compare equal.
pub fn normalize_host(host: &str) -> String {
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The scheme, host and port an origin's requests go to: an http(s) URL's own, and for a
/// registry repository its registry's (https for `oci://`, http for `oci+http://`); `None`
/// for `file://` and for anything that is no usable origin.
pub fn scope_of_origin(origin: &str) -> Option<Scope> {
    if RegistryUrl::is_registry_url(origin) {
        let reference = RegistryUrl::parse(origin).ok()?;
        let scheme = if reference.https { "https" } else { "http" };
        let api = url::Url::parse(&format!("{scheme}://{}/", reference.registry)).ok()?;
        return Scope::of(&api);
    }
    Scope::of(&url::Url::parse(origin).ok()?)
}

/// Checks an `Origin=` value and splits off its credentials.
///
/// The scheme is case-insensitive (`HTTPS://` is fine); a query or fragment is an error,
/// because tako appends `manifest` and `store/<hex>` to the path. A user name and password
/// (`https://user:p%40ss@host/`) become [`BasicCredentials`], percent-decoded.
pub fn parse_origin(text: &str) -> Result<Origin, OriginError> {
    // A registry repository has its own grammar, and no credentials in the URL (they come
    // from the registry auth files).
    if RegistryUrl::is_registry_url(text) {
        let reference = RegistryUrl::parse(text)?;
        return Ok(Origin {
            url: reference.to_string(),
            credentials: None,
        });
    }
    let shown = || show_url(text);
    // `http:///o` parses as the host `o` (the URL standard forgives the empty authority of
    // special schemes); a typo like that must not quietly name another host.
    if let Some((prefix, authority, _)) = split_authority(text)
        && authority.is_empty()
        && !prefix.eq_ignore_ascii_case("file://")
    {
        return Err(OriginError::Invalid {
            url: shown(),
            reason: "it names no host (three slashes after the scheme are for file:// only)"
                .to_owned(),
        });
    }
    let url = url::Url::parse(text).map_err(|e| OriginError::Invalid {
        url: shown(),
        reason: match e {
            // `images.example.com/app` or `/srv/images/app`: the scheme is missing.
            url::ParseError::RelativeUrlWithoutBase => {
                "it has no scheme; write https://HOST/PATH, http://HOST/PATH, file:///PATH or oci://REGISTRY/REPOSITORY".to_owned()
            }
            url::ParseError::InvalidPort => {
                "the port is not a number (a password with '/', '?', '#' or '@' must be percent-encoded, as %2F, %3F, %23 and %40)".to_owned()
            }
            e => e.to_string(),
        },
    })?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(OriginError::FileHost { url: shown() });
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(OriginError::FileCredentials { url: shown() });
            }
            false
        }
        _ => return Err(OriginError::UnsupportedScheme { url: shown() }),
    };
    if url.query().is_some() {
        return Err(OriginError::Query { url: shown() });
    }
    if url.fragment().is_some() {
        return Err(OriginError::Fragment { url: shown() });
    }
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some(BasicCredentials {
            user: percent_decode_str(user).collect(),
            password: percent_decode_str(password.unwrap_or("")).collect(),
            scope: Scope::of(&url).unwrap_or(Scope {
                https,
                host: String::new(),
                port: 0,
            }),
        }),
    };
    let mut display = url;
    // Shown as `***@host`: a user name may be a token as secret as any password. (Only
    // fails for URLs that cannot have a user part, which this one just had.)
    if !display.username().is_empty() || display.password().is_some() {
        let _ = display.set_password(None);
        let _ = display.set_username("***");
    }
    Ok(Origin {
        url: display.as_str().trim_end_matches('/').to_owned(),
        credentials,
    })
}

/// The URL's scheme in lower case, if it has a syntactically valid one (RFC 3986 §3.1).
fn scheme_of(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// Splits `scheme://authority/rest` into `scheme://`, the authority and the rest; `None`
/// if `url` has no `://` after a well-formed scheme.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let scheme = scheme_of(url)?;
    let start = scheme.len() + "://".len();
    if url.get(scheme.len()..start) != Some("://") {
        return None;
    }
    let rest = url.get(start..)?;
    let end = rest.find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    Some((url.get(..start)?, url.get(start..end)?, url.get(end..)?))
}

/// `url` with its whole user part (user name and password) replaced by `***`. Works on
/// text, so that a value which is not a valid URL is hidden as well: the user part ends at
/// the last `@` after `scheme://`, even when a password holds an unencoded `/`, `?` or `#`
/// (which would end the authority of a valid URL), and a user name may itself be a token.
pub fn redact(url: &str) -> String {
    let Some((prefix, _, _)) = split_authority(url) else {
        return url.to_owned();
    };
    let rest = &url[prefix.len()..];
    match rest.rfind('@') {
        Some(at) => format!("{prefix}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `url` as it may appear in a message: password hidden, control characters escaped, cut
/// at a sane length.
pub fn show_url(url: &str) -> String {
    untrusted(&redact(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_with_credentials_are_shown_with_the_password_hidden() {
        let origin = parse_origin("HTTPS://user:p%40ss@Images.Example.com:8443/app/").unwrap();
        assert_eq!(origin.url, "https://***@images.example.com:8443/app");
        let creds = origin.credentials.unwrap();
        assert_eq!(creds.user, b"user");
        assert_eq!(creds.password, b"p@ss");
        assert_eq!(
            creds.scope,
            Scope {
                https: true,
                host: "images.example.com".to_owned(),
                port: 8443
            }
        );
        let debug = format!("{creds:?}");
        assert!(!debug.contains("p@ss") && debug.contains("***"), "{debug}");
        let plain = parse_origin("http://h/x").unwrap();
        assert_eq!(plain.url, "http://h/x");
        assert!(plain.credentials.is_none());
        let user_only = parse_origin("http://me@h/").unwrap();
        // A user name alone may be a token: hidden too.
        assert_eq!(user_only.url, "http://***@h");
        assert_eq!(user_only.credentials.unwrap().password, b"");
    }

    #[test]
    fn origins_with_a_query_fragment_odd_host_or_scheme_are_refused() {
        let err = |text: &str| parse_origin(text).unwrap_err();
        assert!(matches!(err("https://h/x?a=1"), OriginError::Query { .. }));
        assert!(matches!(err("https://h/x?"), OriginError::Query { .. }));
        assert!(matches!(err("https://h/x#f"), OriginError::Fragment { .. }));
        assert!(matches!(
            err("ftp://h/x"),
            OriginError::UnsupportedScheme { .. }
        ));
        assert!(matches!(err("file://host/x"), OriginError::FileHost { .. }));
        assert!(matches!(err("https://"), OriginError::Invalid { .. }));
        assert!(matches!(err("/just/a/path"), OriginError::Invalid { .. }));
        assert!(err("http:///o").to_string().contains("names no host"));
        assert!(err("HTTPS:///o").to_string().contains("names no host"));
        assert!(parse_origin("file:///srv/o").is_ok());
        assert!(parse_origin("oci://:80/a").is_err());
        assert!(
            err("images.example.com/app")
                .to_string()
                .contains("it has no scheme; write https://")
        );
        assert!(
            err("https://u:pa/ss@h/app")
                .to_string()
                .contains("must be percent-encoded")
        );
        let msg = err("https://u:secret@bad host/").to_string();
        assert!(
            !msg.contains("secret") && msg.contains("***@bad host"),
            "{msg}"
        );
        assert_eq!(
            parse_origin("file://localhost/srv/o").unwrap().url,
            "file:///srv/o"
        );
    }

    #[test]
    fn registry_origins_are_checked_by_the_repository_grammar_and_carry_no_credentials() {
        let origin = parse_origin("oci://ghcr.io/acme/app/").unwrap();
        assert_eq!(origin.url, "oci://ghcr.io/acme/app");
        assert!(origin.credentials.is_none());
        let local = parse_origin("oci+http://127.0.0.1:5000/app").unwrap();
        assert_eq!(local.url, "oci+http://127.0.0.1:5000/app");
        for bad in ["oci://ghcr.io", "oci://ghcr.io/App", "oci+http://h:x/app"] {
            assert!(
                matches!(parse_origin(bad), Err(OriginError::Registry(_))),
                "{bad}"
            );
        }
        let msg = parse_origin("oci://u:secret@ghcr.io/app")
            .unwrap_err()
            .to_string();
        assert!(
            !msg.contains("secret") && msg.contains("***@ghcr.io"),
            "{msg}"
        );
    }

    #[test]
    fn redaction_hides_the_password_even_in_text_that_is_no_url() {
        assert_eq!(redact("http://u:p@h/x"), "http://***@h/x");
        // The user part ends at the last `@`: a password may hold `@`, `/`, `?` or `#`
        // unencoded, and a user name may be a token. An `@` later in the text makes the
        // message show less, never a secret.
        assert_eq!(redact("http://u:p@q@h:1/x"), "http://***@h:1/x");
        assert_eq!(redact("http://u:pa/ss@h/x"), "http://***@h/x");
        assert_eq!(redact("http://u:p?s#s@h/x"), "http://***@h/x");
        assert_eq!(redact("http://ghp_token@h/"), "http://***@h/");
        assert_eq!(redact("http://h/a:b@c"), "http://***@c");
        assert_eq!(redact("not a url u:p@h"), "not a url u:p@h");
        assert_eq!(redact("é://u:p@h"), "é://u:p@h");
        assert_eq!(show_url("http://h/\u{1b}[2J"), "http://h/\\u{1b}[2J");
    }

    #[test]
    fn a_scope_covers_one_scheme_host_and_port_whatever_the_spelling_of_the_host() {
        let scope = Scope::of(&url::Url::parse("https://Host.example./o").unwrap()).unwrap();
        assert!(scope.covers(true, "host.example", 443));
        assert!(scope.covers(true, "HOST.example.", 443));
        assert!(!scope.covers(false, "host.example", 443));
        assert!(!scope.covers(true, "host.example", 8443));
        assert!(!scope.covers(true, "host.example.evil", 443));
        assert!(Scope::of(&url::Url::parse("file:///srv").unwrap()).is_none());
        assert_eq!(normalize_host("[::1]"), "::1");
    }

    #[test]
    fn an_origin_is_reached_at_its_own_scope_and_a_registry_origin_at_its_registry() {
        let scope = |url: &str| scope_of_origin(url).map(|s| (s.https, s.host, s.port));
        assert_eq!(
            scope("oci://Registry.example/team/app"),
            Some((true, "registry.example".to_owned(), 443))
        );
        assert_eq!(
            scope("oci+http://127.0.0.1:5000/app"),
            Some((false, "127.0.0.1".to_owned(), 5000))
        );
        assert_eq!(
            scope("https://h.example:8443/o"),
            Some((true, "h.example".to_owned(), 8443))
        );
        assert_eq!(scope("file:///srv/o"), None);
        assert_eq!(scope("oci://ghcr.io"), None);
    }
}
