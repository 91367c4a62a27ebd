//! Fetching an origin's files over `http://`, `https://` and `file://` as streams.
//!
//! Everything about the network that the rest of tako must not care about lives
//! here: TLS roots, proxies, redirects, timeouts, credentials, and turning statuses
//! and socket failures into errors a user can act on. Bodies are handed out as
//! `Read` streams so a 100 MiB image never sits in memory.
//!
//! Redirects and proxy selection are done here rather than by ureq:
//! ureq picks one proxy for every request (whatever the target scheme), does
//! not treat a `no_proxy` entry `example.com` as covering its subdomains, and
//! would follow a redirect to any scheme it thinks has a default port
//! (`socks5://` included). Following redirects ourselves lets every hop get
//! its own scheme check, its own proxy decision and its own decision whether the
//! origin's credentials may be sent.
//!
//! URLs handed to [`Transport::open`] are the ones tako prints: an origin's password
//! is already replaced by `***` there (see [`parse_origin`]). The real credentials
//! travel separately in [`Credentials`], which only the request builder reads, and
//! no URL with a user part ever reaches ureq (it would turn one into an
//! `Authorization` header on its own). Every URL, header value and other text from
//! the network passes through [`crate::format::text::untrusted`] before it is put in a
//! message.

use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use ureq::http::uri::{Authority, PathAndQuery, Scheme};
use ureq::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::{Agent, Proxy, ProxyProtocol, Timeout};

use percent_encoding::percent_decode_str;

use crate::format::text::{self, untrusted};

mod absolute_form;
pub(crate) mod private;
mod rate;
mod tls;

pub use private::{Access, AccessError, MAX_HEADER_FILE};
pub use rate::parse_rate;

/// The most redirects followed for one request (SPEC §7); a static file server has no
/// business sending longer chains.
pub const MAX_REDIRECTS: u32 = 10;

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("tako/", env!("CARGO_PKG_VERSION"));

/// Limits for talking to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// Time allowed to resolve the host name and to set up a connection, including any
    /// proxy negotiation and the TLS handshake.
    pub connect_timeout: Duration,
    /// A transfer that delivers no data for this long fails. Not a limit on the total time,
    /// so a slow but steady download of a large image is never cut off.
    pub idle_timeout: Duration,
    /// A transfer slower than this many bytes per second, averaged over `speed_time`,
    /// fails (curl's `--speed-limit`). 0 turns the check off.
    pub speed_limit: u64,
    /// The window over which `speed_limit` is averaged (curl's `--speed-time`).
    pub speed_time: Duration,
    /// The most bytes per second all downloads of the run take together (curl's
    /// `--limit-rate`); `None` for no limit.
    pub limit_rate: Option<u64>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            speed_limit: 1024,
            speed_time: Duration::from_secs(60),
            limit_rate: None,
        }
    }
}

impl TransportConfig {
    /// Whether the low-speed check is on.
    fn speed_checked(&self) -> bool {
        self.speed_limit > 0 && !self.speed_time.is_zero()
    }

    /// How long one read may wait for data. Silence for the whole speed window means a rate
    /// of 0, so with the speed check on, waiting longer than the window is pointless.
    fn read_timeout(&self) -> Duration {
        if self.speed_checked() {
            self.idle_timeout.min(self.speed_time)
        } else {
            self.idle_timeout
        }
    }

    /// Whether a read that timed out was cut off by the speed check rather than by the idle
    /// timeout.
    fn read_timeout_is_speed_check(&self) -> bool {
        self.speed_checked() && self.speed_time < self.idle_timeout
    }
}

/// Why a download could not start or could not finish.
///
/// The Display text is meant for the user as it stands and always names the URL.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("unsupported URL {url}: only http://, https:// and file:// are supported")]
    UnsupportedScheme { url: String },

    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// HTTP 410: the publisher withdrew the file on purpose.
    #[error("HTTP 410 Gone from {url}")]
    Gone { url: String },

    /// HTTP 404, or a `file://` URL naming a file that does not exist.
    #[error("{url} not found (404 Not Found)")]
    NotFound { url: String },

    #[error("HTTP {status}{} from {url}", with_space(.reason))]
    Status {
        url: String,
        status: u16,
        reason: String,
        /// How long the server asked us to wait before trying again (`Retry-After`).
        retry_after: Option<Duration>,
    },

    /// A `206 Partial Content` answer that is not the range asked for, or cannot be read.
    #[error("{url} answered a range request with an unusable partial response: {reason}")]
    BadPartial { url: String, reason: String },

    #[error("cannot download {url}: {source}")]
    Network { url: String, source: NetworkError },

    #[error("{url} is larger than the limit of {max} bytes")]
    TooLarge { url: String, max: u64 },

    #[error(
        "refusing the redirect from {url} to {location}: only http:// and https:// are followed"
    )]
    RedirectRefused { url: String, location: String },

    /// A redirect from `https://` to `http://` would send the rest of the exchange, and
    /// whatever the origin needs to be reached, unencrypted.
    #[error(
        "refusing the redirect from {url} to {location}: it leaves https:// for plain http://, which tako never follows"
    )]
    InsecureRedirect { url: String, location: String },

    #[error("too many redirects (more than {max}) starting at {url}")]
    TooManyRedirects { url: String, max: u32 },

    #[error("bad redirect from {url}: {reason}")]
    BadRedirect { url: String, reason: String },

    /// The proxy environment variable is set to something unusable. The value itself is
    /// left out of the message because it may hold a password.
    #[error("cannot download {url}: the proxy in ${var} is unusable: {reason}")]
    Proxy {
        url: String,
        var: String,
        reason: String,
    },

    #[error("cannot read {url}: {source}")]
    File { url: String, source: io::Error },

    /// The low-speed check (curl's `--speed-limit`) gave up on a trickling transfer.
    #[error(
        "cannot download {url}: too slow: {received} bytes in the last {} ({} bytes/s), below the limit of {limit} bytes/s (see --speed-limit and --speed-time)",
        seconds(*.window),
        rate(*.received, *.window)
    )]
    TooSlow {
        url: String,
        received: u64,
        window: Duration,
        limit: u64,
    },

    /// The time allowed for one config's whole fetch (`--max-time`) ran out.
    #[error(
        "cannot download {url}: gave up after the time limit of {} for this config (--max-time){}",
        seconds(*.limit),
        progress_note(.progress)
    )]
    MaxTime {
        url: String,
        limit: Duration,
        /// Bytes of the body received so far and how long that took, if a body had started.
        progress: Option<(u64, Duration)>,
    },

    /// The server compressed the body although tako asked for it as it is; the bytes would
    /// not match the signed size and digest.
    #[error(
        "{url} was sent compressed (Content-Encoding: {encoding}) although tako asks for files as they are; configure the server not to compress it"
    )]
    Compressed { url: String, encoding: String },

    /// A netrc, header or certificate file for a private origin is unusable.
    #[error(transparent)]
    Access(#[from] AccessError),

    /// A registry origin (`oci://`) failed: its own message names the repository.
    #[error(transparent)]
    Registry(Box<crate::registry::OciError>),
}

/// Bytes per second, rounded down; a window of zero counts as one millisecond.
fn rate(bytes: u64, window: Duration) -> u64 {
    let millis = window.as_millis().max(1);
    u64::try_from(u128::from(bytes) * 1000 / millis).unwrap_or(u64::MAX)
}

fn progress_note(progress: &Option<(u64, Duration)>) -> String {
    match progress {
        Some((received, took)) => format!(
            "; received {received} bytes in {} ({} bytes/s)",
            seconds(*took),
            rate(*received, *took)
        ),
        None => String::new(),
    }
}

fn with_space(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    }
}

impl TransportError {
    /// Whether trying again later may succeed: connection failures, timeouts, a transfer
    /// too slow, and the statuses 408, 429 and 5xx. A status such as 403, 404 or 410, a
    /// bad URL or redirect, or a local file error is an answer, not a hiccup.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Network { source, .. } => source.is_transient(),
            TransportError::TooSlow { .. } => true,
            TransportError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            TransportError::Registry(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The wait the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Recovers the error behind a failed [`Body`] read.
    ///
    /// `Body` reads fail with an `io::Error` (that is what `Read` allows) which carries a
    /// `TransportError` inside; this unpacks it, and wraps any other I/O error so it still
    /// names `url`.
    pub fn from_read_error(url: &str, err: io::Error) -> TransportError {
        match err.downcast::<TransportError>() {
            Ok(transport) => transport,
            Err(err) => TransportError::Network {
                url: show_url(url),
                source: NetworkError::new(err.kind(), describe_io(&err)),
            },
        }
    }
}

/// A connection, TLS, protocol or timeout failure, described for a user.
///
/// Kept as plain text on purpose: ureq's own messages ("io: ...", "timeout: per read")
/// read poorly, and printing them as a cause as well would repeat the reason.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct NetworkError {
    kind: io::ErrorKind,
    reason: String,
}

impl NetworkError {
    fn new(kind: io::ErrorKind, reason: impl Into<String>) -> NetworkError {
        NetworkError {
            kind,
            reason: reason.into(),
        }
    }

    /// The closest I/O error kind, e.g. `TimedOut` or `ConnectionRefused`.
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }

    /// Whether the connection broke or timed out, which may go better a little later. A
    /// certificate, protocol or name resolution failure says the same again.
    pub fn is_transient(&self) -> bool {
        use io::ErrorKind as K;
        matches!(
            self.kind,
            K::TimedOut
                | K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::UnexpectedEof
                | K::BrokenPipe
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::NetworkDown
        )
    }
}

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
    basic: Option<Basic>,
    /// From `HeaderFile=`, marked sensitive. An `Authorization` line here replaces the
    /// Basic one (see [`Credentials::headers`]).
    headers: Vec<(HeaderName, HeaderValue)>,
    scope: Scope,
}

#[derive(Clone, PartialEq, Eq)]
struct Basic {
    /// Percent-decoded: `p%40ss` in the URL is the password `p@ss`.
    user: Vec<u8>,
    password: Vec<u8>,
}

/// Where credentials may be sent: one scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    https: bool,
    /// As [`normalize_host`] leaves it.
    host: String,
    port: u16,
}

impl Scope {
    /// The scope of an http(s) URL; `None` for any other scheme or without a host.
    fn of(url: &url::Url) -> Option<Scope> {
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

    fn covers(&self, target: &Target) -> bool {
        self.https == target.https
            && self.host == normalize_host(&target.host)
            && self.port == target.port
    }
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
            .finish()
    }
}

impl Credentials {
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
        })
    }

    /// Whether a request to `target` may carry these credentials.
    fn applies_to(&self, target: &Target) -> bool {
        self.scope.covers(target)
    }

    /// Every header these credentials add to a request: Basic authentication (RFC 7617)
    /// unless a header file sets `Authorization` itself (a bearer token replaces the
    /// password, as curl's `-H` replaces `-u`), then the header file's lines.
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
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
fn basic_auth(user: &[u8], password: &[u8]) -> Option<HeaderValue> {
    let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
    pair.extend_from_slice(user);
    pair.push(b':');
    pair.extend_from_slice(password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// An origin URL checked when the config is loaded.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The URL as tako prints it and hands to [`Transport::open`]: normalised, without a
    /// trailing slash, and with any password replaced by `***`.
    pub url: String,
    /// The user name and password the URL carried, if any.
    pub credentials: Option<Credentials>,
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
    /// An `oci://` or `oci+http://` origin that is no registry repository; the message is
    /// the registry module's.
    #[error("{0}")]
    Registry(String),
    #[error("origin URL '{url}' has a query ('?…'); an origin names a directory, so remove it")]
    Query { url: String },
    #[error("origin URL '{url}' has a fragment ('#…'), which is never sent to a server; remove it")]
    Fragment { url: String },
    #[error("file:// origin '{url}' names a host; use file:///path for a local directory")]
    FileHost { url: String },
    #[error("file:// origin '{url}' cannot carry a user name or password")]
    FileCredentials { url: String },
}

/// Checks an `Origin=` value and splits off its credentials.
///
/// The scheme is case-insensitive (`HTTPS://` is fine); a query or fragment is an error,
/// because tako appends `manifest` and `store/<hex>` to the path. A user name and password
/// (`https://user:p%40ss@host/`) become [`Credentials`], percent-decoded.
pub fn parse_origin(text: &str) -> Result<Origin, OriginError> {
    // A registry repository has its own grammar, and no credentials in the URL (they come
    // from the registry auth files, see `oci::auth`).
    if crate::registry::Reference::is_registry_url(text) {
        let reference = crate::registry::Reference::parse(text)
            .map_err(|e| OriginError::Registry(e.to_string()))?;
        return Ok(Origin {
            url: reference.to_string(),
            credentials: None,
        });
    }
    let shown = || show_url(text);
    let url = url::Url::parse(text).map_err(|e| OriginError::Invalid {
        url: shown(),
        reason: e.to_string(),
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
        (user, password) => Some(Credentials {
            basic: Some(Basic {
                user: percent_decode_str(user).collect(),
                password: percent_decode_str(password.unwrap_or("")).collect(),
            }),
            headers: Vec::new(),
            scope: Scope::of(&url).unwrap_or(Scope {
                https,
                host: String::new(),
                port: 0,
            }),
        }),
    };
    let mut display = url;
    if display.password().is_some() {
        // Only fails for URLs that cannot have a password, which this one just had.
        let _ = display.set_password(Some("***"));
    }
    Ok(Origin {
        url: display.as_str().trim_end_matches('/').to_owned(),
        credentials,
    })
}

/// Splits `scheme://authority/rest` into `scheme://`, the authority and the rest; `None`
/// if `url` has no `://` after a well-formed scheme.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let scheme = scheme_of(url)?;
    let start = scheme.len() + "://".len();
    if url.get(scheme.len()..start) != Some("://") {
        return None;
    }
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    Some((&url[..start], &url[start..end], &url[end..]))
}

/// `url` with the password of its user part replaced by `***`. Works on text, so that a
/// value which is not a valid URL is hidden as well; the last `@` of the authority ends the
/// user part, as in URL parsers.
pub fn redact(url: &str) -> String {
    let Some((prefix, authority, rest)) = split_authority(url) else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{prefix}{user}:***@{host}{rest}"),
        None => url.to_owned(),
    }
}

/// `url` as it may appear in a message: password hidden, control characters escaped, cut
/// at a sane length.
pub fn show_url(url: &str) -> String {
    untrusted(&redact(url))
}

/// Which proxy to use for which URL, from `http_proxy`, `https_proxy` and `no_proxy`.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    http: Option<ProxyVar>,
    https: Option<ProxyVar>,
    no_proxy: NoProxy,
}

#[derive(Debug, Clone)]
struct ProxyVar {
    name: String,
    value: String,
}

impl ProxyConfig {
    /// No proxy at all, whatever the environment says.
    pub fn none() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// Reads the process environment.
    pub fn from_env() -> ProxyConfig {
        ProxyConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the proxy variables through `lookup`, so they can be given without touching
    /// the process environment.
    ///
    /// The lower-case spelling wins over the upper-case one, as in curl; an empty value
    /// counts as unset. `all_proxy` is not read, because the SOCKS proxies it usually
    /// names are not supported.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let var = |lower: &str, upper: &str| {
            [lower, upper].into_iter().find_map(|name| {
                let value = lookup(name)?;
                let value = value.trim();
                (!value.is_empty()).then(|| ProxyVar {
                    name: name.to_owned(),
                    value: value.to_owned(),
                })
            })
        };
        let no_proxy = var("no_proxy", "NO_PROXY")
            .map(|v| NoProxy::parse(&v.value))
            .unwrap_or_default();
        ProxyConfig {
            http: var("http_proxy", "HTTP_PROXY"),
            https: var("https_proxy", "HTTPS_PROXY"),
            no_proxy,
        }
    }

    /// The proxy for a request to `url` and the variable it came from, or `None` to connect
    /// directly.
    fn proxy_for(
        &self,
        url: &str,
        target: &Target,
    ) -> Result<Option<(Proxy, String)>, TransportError> {
        let var = if target.https {
            &self.https
        } else {
            &self.http
        };
        let Some(var) = var else {
            return Ok(None);
        };
        if self.no_proxy.matches(&target.host, target.port) {
            return Ok(None);
        }
        let unusable = |reason: &str| TransportError::Proxy {
            url: url.to_owned(),
            var: var.name.clone(),
            reason: reason.to_owned(),
        };
        let proxy = Proxy::new(&var.value).map_err(|_| unusable("not a valid proxy URL"))?;
        // ureq panics on a hand-made SOCKS proxy when built without its socks feature, so
        // anything but an HTTP(S) CONNECT proxy must be refused here.
        if !matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https) {
            return Err(unusable("only http:// and https:// proxies are supported"));
        }
        Ok(Some((proxy, var.name.clone())))
    }
}

/// A parsed `no_proxy` list.
///
/// Follows curl: comma-separated entries; `*` alone matches every host; `example.com`,
/// `.example.com` and `*.example.com` all match `example.com` and its subdomains; an IP
/// address matches only itself, and `10.0.0.0/8` style entries match addresses in the
/// network. Unlike curl, `host:port` restricts an entry to one port, as Go does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    Domain { name: String, port: Option<u16> },
    Ip { addr: IpAddr, port: Option<u16> },
    Network { addr: IpAddr, prefix: u8 },
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
            } else if let Some(parsed) = NoProxyEntry::parse(entry) {
                no_proxy.entries.push(parsed);
            }
        }
        no_proxy
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = normalize_host(host);
        let ip = host.parse::<IpAddr>().ok();
        self.entries
            .iter()
            .any(|entry| entry.matches(&host, ip, port))
    }
}

impl NoProxyEntry {
    /// `None` for entries that cannot match anything (bad port or prefix): ignoring them is
    /// what curl does, and failing every download over a typo in `no_proxy` would be worse.
    fn parse(entry: &str) -> Option<NoProxyEntry> {
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr = normalize_host(addr).parse::<IpAddr>().ok()?;
            let prefix = prefix.parse::<u8>().ok()?;
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            return (prefix <= bits).then_some(NoProxyEntry::Network { addr, prefix });
        }
        let (host, port) = split_host_port(entry)?;
        let host = normalize_host(host);
        let host = host.strip_prefix("*.").unwrap_or(&host);
        let host = host.strip_prefix('.').unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        Some(match host.parse::<IpAddr>() {
            Ok(addr) => NoProxyEntry::Ip { addr, port },
            Err(_) => NoProxyEntry::Domain {
                name: host.to_owned(),
                port,
            },
        })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none_or(|want| want == port);
        match self {
            NoProxyEntry::Domain { name, port: want } => {
                port_ok(want)
                    && (host == name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            NoProxyEntry::Ip { addr, port: want } => port_ok(want) && ip == Some(*addr),
            NoProxyEntry::Network { addr, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *addr, *prefix))
            }
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]` or a bare host. A bare IPv6 address has several
/// colons and no port. `None` if a port is present but not a number.
fn split_host_port(entry: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, Some(port.parse().ok()?))),
        _ => Some((entry, None)),
    }
}

/// Lower-cases and drops IPv6 brackets and a trailing root dot, so `Example.COM.` and
/// `example.com` compare equal.
fn normalize_host(host: &str) -> String {
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// An http(s) URL taken apart for a request: the scheme, host and port pick a proxy and
/// decide whether credentials go along; `uri` is what ureq is asked for.
#[derive(Debug)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// The URL without any user part, which ureq would otherwise send as credentials.
    uri: Uri,
}

impl Target {
    /// Parses `url`; errors name it as `shown`, the form fit for messages.
    fn parse_shown(url: &str, shown: &str) -> Result<Target, TransportError> {
        let invalid = |reason: &str| TransportError::InvalidUrl {
            url: shown.to_owned(),
            reason: untrusted(reason),
        };
        let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(TransportError::UnsupportedScheme {
                    url: shown.to_owned(),
                });
            }
        };
        let authority = uri.authority().map_or("", Authority::as_str);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let clean: Authority = host_port.parse().map_err(|_| invalid("no host name"))?;
        let host = clean.host();
        if host.is_empty() {
            return Err(invalid("no host name"));
        }
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(if https { Scheme::HTTPS } else { Scheme::HTTP });
        parts.authority = Some(clean.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        let uri = Uri::from_parts(parts).map_err(|e| invalid(&format!("{e}")))?;
        Ok(Target {
            https,
            host: host.to_owned(),
            port: clean.port_u16().unwrap_or(if https { 443 } else { 80 }),
            uri,
        })
    }

    #[cfg(test)]
    fn parse(url: &str) -> Result<Target, TransportError> {
        Target::parse_shown(url, &show_url(url))
    }
}

/// The URL's scheme in lower case, if it has a syntactically valid one (RFC 3986 §3.1).
fn scheme_of(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// Resolves a `Location` header against the absolute http(s) URL it came from, without
/// the fragment (which is never sent to a server).
fn resolve_location(base: &str, location: &str) -> Result<url::Url, url::ParseError> {
    let mut next = url::Url::parse(base)?.join(location.trim())?;
    next.set_fragment(None);
    Ok(next)
}

/// The local path named by a `file:` URL: `file:///path` or `file://localhost/path`,
/// percent-decoded. A `?` or `#` ends the path, as in any URL, so such characters in a file
/// name must be written `%3F` and `%23`.
fn file_url_path(url: &url::Url, shown: &str) -> Result<PathBuf, TransportError> {
    url.to_file_path().map_err(|()| TransportError::InvalidUrl {
        url: shown.to_owned(),
        reason: "a file:// URL must name an absolute local path, not a host".to_owned(),
    })
}

/// Parses a URL handed to [`Transport::open`]; errors name it as `shown`.
fn parse_url(url: &str, shown: &str) -> Result<url::Url, TransportError> {
    url::Url::parse(url).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => TransportError::UnsupportedScheme {
            url: shown.to_owned(),
        },
        other => TransportError::InvalidUrl {
            url: shown.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// What one GET asks for beyond the file itself: a conditional poll or a resumed range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-None-Match`: the entity tag of the copy the client holds.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`: the `Last-Modified` date of the copy the client holds, as the
    /// server wrote it.
    pub if_modified_since: Option<String>,
    /// `Range: bytes=N-`: only the bytes from this offset on.
    pub range_from: Option<u64>,
    /// With `range_from`, `Range: bytes=N-M`: only up to and including byte `M`. The answer
    /// must then be a 206 whose `Content-Range` names exactly `N-M`.
    pub range_to: Option<u64>,
    /// `If-Range`: with `range_from`, the entity tag or date the bytes before the offset
    /// came with; a server whose file changed since answers with all of the new one.
    pub if_range: Option<String>,
}

impl Conditions {
    fn is_conditional(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: the whole file.
    Whole,
    /// 206: the file from byte `start` on.
    Partial { start: u64 },
    /// 304: the client's copy is current; there is no body.
    NotModified,
}

/// A header value fit to keep and send back: visible ASCII and spaces, at most 1 KiB. An
/// entity tag or date is short; anything else is not worth remembering.
fn validator(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?.trim();
    let fits = !text.is_empty()
        && text.len() <= 1024
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    fits.then(|| text.to_owned())
}

/// `Retry-After`: a number of seconds, or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The first and last byte positions of a `Content-Range: bytes FIRST-LAST/LENGTH` header.
pub(crate) fn content_range(value: Option<&HeaderValue>) -> Result<(u64, u64), String> {
    let Some(value) = value else {
        return Err("it has no Content-Range header".to_owned());
    };
    let text = value.to_str().unwrap_or("");
    let positions = text
        .trim()
        .strip_prefix("bytes ")
        .and_then(|rest| rest.trim_start().split_once('-'))
        .and_then(|(first, rest)| {
            let last = rest.split_once('/').map_or(rest, |(last, _)| last);
            Some((
                first.trim().parse::<u64>().ok()?,
                last.trim().parse::<u64>().ok()?,
            ))
        })
        .filter(|(first, last)| first <= last);
    positions.ok_or_else(|| {
        format!(
            "its Content-Range '{}' is not 'bytes FIRST-LAST/LENGTH'",
            untrusted(&String::from_utf8_lossy(value.as_bytes()))
        )
    })
}

/// Downloads from origins; cheap to clone, and clones share connections.
#[derive(Clone)]
pub struct Transport {
    agents: Agents,
    config: TransportConfig,
    proxies: ProxyConfig,
    credentials: Option<Credentials>,
    deadline: Option<Deadline>,
    /// A config's own CA and client certificate, which need connections of their own.
    private_tls: Option<Arc<PrivateTls>>,
    /// `--limit-rate`, shared by every clone so that all downloads of a run share it.
    limit: Option<Arc<rate::RateLimit>>,
}

/// The connection pools for one TLS setup.
#[derive(Clone)]
struct Agents {
    agent: Agent,
    /// For `http://` targets through a proxy; see [`absolute_form`].
    forward: Agent,
}

impl Agents {
    fn new(cfg: &TransportConfig, tls: TlsConfig) -> Agents {
        // ureq only speaks HTTP/1.1, so there is no version to pin.
        let agent_config = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            // Chosen per request in `proxy_for`; ureq's own pick would read the environment.
            .proxy(None)
            .user_agent(USER_AGENT)
            // Never ask for compression: images are hashed byte for byte as stored.
            .accept_encoding("")
            .timeout_resolve(Some(cfg.connect_timeout))
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_per_read(Some(cfg.read_timeout()))
            .timeout_per_write(Some(cfg.idle_timeout))
            .build();
        Agents {
            forward: absolute_form::agent(agent_config.clone()),
            agent: Agent::new_with_config(agent_config),
        }
    }
}

/// The TLS setup of a config with `CACertificate=` or `ClientCertificate=`.
///
/// Kept in pools of its own: a connection made with one config's client certificate, or
/// trusted through one config's CA, must never be reused for another config.
struct PrivateTls {
    /// With the client certificate: for the origin's own scheme, host and port only.
    origin: Agents,
    /// Without it, for wherever a redirect leads; the same roots.
    elsewhere: Agents,
    scope: Scope,
    /// The `CACertificate=` file as shown in messages, when it replaces the system's roots.
    roots: Option<String>,
}

impl PrivateTls {
    fn new(cfg: &TransportConfig, files: private::TlsFiles, scope: Scope, access: &Access) -> Self {
        let roots = match &files.roots {
            Some(certs) => RootCerts::new_with_certs(certs),
            None => RootCerts::PlatformVerifier,
        };
        let plain = TlsConfig::builder().root_certs(roots.clone()).build();
        let elsewhere = Agents::new(cfg, plain);
        let origin = match files.client {
            Some(client) => Agents::new(
                cfg,
                TlsConfig::builder()
                    .root_certs(roots)
                    .client_cert(Some(client))
                    .build(),
            ),
            None => elsewhere.clone(),
        };
        PrivateTls {
            origin,
            elsewhere,
            scope,
            roots: access
                .ca_certificate
                .as_ref()
                .filter(|_| files.roots.is_some())
                .map(|p| untrusted(&p.display().to_string())),
        }
    }
}

/// When the time allowed for one config's fetch runs out, and how long that was.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("config", &self.config)
            .field("proxies", &self.proxies)
            .field("credentials", &self.credentials)
            .field("deadline", &self.deadline)
            .field("private_tls", &self.private_tls.is_some())
            .field("limit_rate", &self.limit.as_ref().map(|l| l.rate()))
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport that takes its proxies from the environment.
    pub fn new(cfg: TransportConfig) -> Transport {
        Transport::with_proxies(cfg, ProxyConfig::from_env())
    }

    /// A transport with explicit proxy settings, e.g. [`ProxyConfig::none`] in tests that
    /// must not be affected by the environment.
    ///
    /// With `limit_rate` below `speed_limit`, every transfer would fail the low-speed check,
    /// so the check then asks for half the limited rate instead.
    pub fn with_proxies(mut cfg: TransportConfig, proxies: ProxyConfig) -> Transport {
        if let Some(rate) = cfg.limit_rate {
            cfg.speed_limit = cfg.speed_limit.min(rate / 2);
        }
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        Transport {
            agents: Agents::new(&cfg, tls),
            config: cfg,
            proxies,
            credentials: None,
            deadline: None,
            private_tls: None,
            limit: cfg
                .limit_rate
                .map(|rate| Arc::new(rate::RateLimit::new(rate))),
        }
    }

    /// This transport set up for one config's origin (`origin` as [`parse_origin`] prints
    /// it): the credentials from the origin URL or, without any, the netrc login for the
    /// origin's host; the headers of `HeaderFile=`; and the config's own CA and client
    /// certificate. The files are read now, on every run, so a rotated token or certificate
    /// needs no change to the config. A `file://` origin uses none of them.
    pub fn for_origin(
        &self,
        origin: &str,
        credentials: Option<Credentials>,
        access: &Access,
    ) -> Result<Transport, TransportError> {
        self.for_origin_in(origin, credentials, access, |name| std::env::var_os(name))
    }

    /// As [`Transport::for_origin`], with the environment (`NETRC`, `CREDENTIALS_DIRECTORY`,
    /// `HOME`) read through `var`.
    pub fn for_origin_in(
        &self,
        origin: &str,
        credentials: Option<Credentials>,
        access: &Access,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Transport, TransportError> {
        let Some(scope) = url::Url::parse(origin).ok().as_ref().and_then(Scope::of) else {
            return Ok(self.with_credentials(credentials));
        };
        let mut credentials =
            match credentials {
                Some(credentials) => Some(credentials),
                None => private::netrc_login(&scope.host, &private::netrc_candidates(var))?.map(
                    |login| Credentials {
                        basic: Some(Basic {
                            user: login.login,
                            password: login.password,
                        }),
                        headers: Vec::new(),
                        scope: scope.clone(),
                    },
                ),
            };
        if let Some(path) = &access.header_file {
            let headers = private::read_header_file(path)?;
            match &mut credentials {
                Some(credentials) => credentials.headers = headers,
                None => {
                    credentials = Some(Credentials {
                        basic: None,
                        headers,
                        scope: scope.clone(),
                    })
                }
            }
        }
        let mut transport = self.with_credentials(credentials);
        if let Some(files) = private::load_tls(access)? {
            transport.private_tls = Some(Arc::new(PrivateTls::new(
                &self.config,
                files,
                scope,
                access,
            )));
        }
        Ok(transport)
    }

    /// The connection pools for a request to `target`.
    fn agents_for(&self, target: &Target) -> &Agents {
        match &self.private_tls {
            Some(tls) if tls.scope.covers(target) => &tls.origin,
            Some(tls) => &tls.elsewhere,
            None => &self.agents,
        }
    }

    /// Whose roots decide which servers are trusted, for messages.
    fn roots(&self) -> tls::Roots<'_> {
        match self.private_tls.as_ref().and_then(|t| t.roots.as_deref()) {
            Some(file) => tls::Roots::File(file),
            None => tls::Roots::System,
        }
    }

    /// This transport (sharing its connections), sending `credentials` as HTTP Basic
    /// authentication with every request to their own scheme, host and port.
    pub fn with_credentials(&self, credentials: Option<Credentials>) -> Transport {
        Transport {
            credentials,
            ..self.clone()
        }
    }

    /// This transport (sharing its connections), failing every request and every read of a
    /// body once `max_time` from now has passed; `None` for no limit.
    pub fn with_max_time(&self, max_time: Option<Duration>) -> Transport {
        let now = Instant::now();
        Transport {
            deadline: max_time.map(|limit| Deadline {
                at: now
                    .checked_add(limit)
                    .unwrap_or(now + Duration::from_secs(86400 * 365)),
                limit,
            }),
            ..self.clone()
        }
    }

    /// Opens `url` for streaming. Only status 200 counts as success.
    ///
    /// Errors name the URL that failed, which after a redirect is the redirect's target, in
    /// the form of [`show_url`].
    pub fn open(&self, url: &str) -> Result<Body, TransportError> {
        self.open_with(url, &Conditions::default())
    }

    /// Opens `url` with `conditions`: besides 200, a 206 that answers `range_from` and a 304
    /// that answers the validators count as success; [`Body::answer`] tells which came.
    ///
    /// A `file://` URL has no validators, so it is never "not modified"; a range is served
    /// by seeking.
    pub fn open_with(&self, url: &str, conditions: &Conditions) -> Result<Body, TransportError> {
        let shown = show_url(url);
        let parsed = parse_url(url, &shown)?;
        match parsed.scheme() {
            "http" | "https" => self.open_http(parsed, shown, conditions),
            "file" => open_file(
                &parsed,
                shown,
                self.deadline,
                self.limit.clone(),
                conditions.range_from,
                conditions.range_to,
            ),
            _ => Err(TransportError::UnsupportedScheme { url: shown }),
        }
    }

    /// Reads all of a small body such as a manifest, failing with `TooLarge` as soon as
    /// more than `max` bytes arrive; at most `max + 1` bytes are ever buffered.
    pub fn get_capped(&self, url: &str, max: u64) -> Result<Vec<u8>, TransportError> {
        Ok(self
            .get_capped_with(url, max, &Conditions::default())?
            .bytes)
    }

    /// As [`Transport::get_capped`], with `conditions`; a 304 comes back with no bytes.
    pub fn get_capped_with(
        &self,
        url: &str,
        max: u64,
        conditions: &Conditions,
    ) -> Result<Small, TransportError> {
        let mut body = self.open_with(url, conditions)?;
        let bytes = if body.answer() == Answer::NotModified {
            Vec::new()
        } else {
            read_capped(&mut body, max)?
        };
        Ok(Small {
            url: body.url.clone(),
            answer: body.answer,
            bytes,
            etag: body.etag.take(),
            last_modified: body.last_modified.take(),
        })
    }
}

/// A small file read whole, with what the server said about it.
#[derive(Debug)]
pub struct Small {
    /// Where it came from after any redirects, fit to print.
    pub url: String,
    pub answer: Answer,
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Reads all of `body`, failing with `TooLarge` as soon as more than `max` bytes arrive.
fn read_capped(body: &mut Body, max: u64) -> Result<Vec<u8>, TransportError> {
    let too_large = |body: &Body| TransportError::TooLarge {
        url: body.url().to_owned(),
        max,
    };
    if body.content_length().is_some_and(|len| len > max) {
        return Err(too_large(body));
    }
    let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    const CHUNK: usize = 64 * 1024;
    let initial = body
        .content_length()
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(CHUNK)
        .min(limit);
    let mut out: Vec<u8> = Vec::with_capacity(initial);
    loop {
        let start = out.len();
        let want = CHUNK.min(limit - start);
        if want == 0 {
            return Err(too_large(body));
        }
        if out.capacity() < start + want {
            // Vec's own growth doubles and could overshoot `limit`.
            let target = out.capacity().saturating_mul(2).clamp(start + want, limit);
            out.reserve_exact(target - start);
        }
        out.resize(start + want, 0);
        match body.read(&mut out[start..]) {
            Ok(0) => {
                out.truncate(start);
                return Ok(out);
            }
            Ok(n) => out.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(start),
            Err(e) => return Err(TransportError::from_read_error(body.url(), e)),
        }
        if out.len() as u64 > max {
            return Err(too_large(body));
        }
    }
}

impl Transport {
    fn open_http(
        &self,
        mut url: url::Url,
        shown: String,
        conditions: &Conditions,
    ) -> Result<Body, TransportError> {
        url.set_fragment(None);
        let mut current = String::from(url);
        let mut current_shown = show_url(&current);
        let mut redirects = 0;
        loop {
            let target = Target::parse_shown(&current, &current_shown)?;
            let response = self.get(&target, &current_shown, conditions)?;
            let status = response.status();
            if !is_followed_redirect(status) {
                return self.finish(current_shown, response, conditions);
            }
            if redirects == MAX_REDIRECTS {
                return Err(TransportError::TooManyRedirects {
                    url: shown,
                    max: MAX_REDIRECTS,
                });
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .ok_or_else(|| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: format!("HTTP {} without a Location header", status.as_u16()),
                })?
                .to_str()
                .map_err(|_| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: "the Location header is not ASCII".to_owned(),
                })?;
            let next =
                resolve_location(&current, location).map_err(|e| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: format!("the Location header is not a usable URL ({e})"),
                })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(TransportError::RedirectRefused {
                    url: current_shown,
                    location: show_url(next.as_str()),
                });
            }
            if target.https && next.scheme() == "http" {
                return Err(TransportError::InsecureRedirect {
                    url: current_shown,
                    location: show_url(next.as_str()),
                });
            }
            current_shown = show_url(next.as_str());
            current = String::from(next);
            redirects += 1;
        }
    }

    /// One GET of `target`, directly or through the proxy its scheme calls for.
    fn get(
        &self,
        target: &Target,
        shown: &str,
        conditions: &Conditions,
    ) -> Result<ureq::http::Response<ureq::Body>, TransportError> {
        let proxy = self.proxies.proxy_for(shown, target)?;
        let mut request = match &proxy {
            // Plain HTTP goes to the proxy in absolute form (`GET http://host/path`), as
            // curl sends it: many proxies allow CONNECT only to port 443.
            Some((proxy, _)) if !target.https => {
                absolute_form_request(&self.agents_for(target).forward, target, proxy).map_err(
                    |reason| TransportError::InvalidUrl {
                        url: shown.to_owned(),
                        reason,
                    },
                )?
            }
            _ => self.agents_for(target).agent.get(target.uri.clone()),
        };
        let credentials = self.credentials.as_ref().filter(|c| c.applies_to(target));
        for (name, value) in credentials.map(Credentials::headers).unwrap_or_default() {
            request = request.header(name, value);
        }
        if let Some(etag) = &conditions.if_none_match {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = &conditions.if_modified_since {
            request = request.header(header::IF_MODIFIED_SINCE, date);
        }
        if let Some(from) = conditions.range_from {
            let to = conditions
                .range_to
                .map(|to| to.to_string())
                .unwrap_or_default();
            request = request.header(header::RANGE, format!("bytes={from}-{to}"));
            if let Some(validator) = &conditions.if_range {
                request = request.header(header::IF_RANGE, validator);
            }
        }
        let mut config = request.config();
        if let Some((proxy, _)) = &proxy
            && target.https
        {
            config = config.proxy(Some(proxy.clone()));
        }
        if let Some(deadline) = &self.deadline {
            config = config.timeout_global(Some(deadline.remaining()));
        }
        let peer = proxy.is_none().then_some(tls::Peer {
            host: &target.host,
            port: target.port,
            timeout: self.config.connect_timeout,
        });
        config
            .build()
            .call()
            .map_err(|err| match self.classify(shown, err, peer) {
                // "connection refused" alone would send the user looking at the origin.
                TransportError::Network { url, mut source } => {
                    if let Some((_, var)) = &proxy {
                        source.reason = format!("{} (through the proxy in ${var})", source.reason);
                    }
                    TransportError::Network { url, source }
                }
                other => other,
            })
    }

    fn finish(
        &self,
        url: String,
        response: ureq::http::Response<ureq::Body>,
        conditions: &Conditions,
    ) -> Result<Body, TransportError> {
        let status = response.status();
        let headers = response.headers();
        let answer = match status {
            StatusCode::OK => Answer::Whole,
            StatusCode::PARTIAL_CONTENT if conditions.range_from.is_some() => {
                let (start, last) =
                    content_range(headers.get(header::CONTENT_RANGE)).map_err(|reason| {
                        TransportError::BadPartial {
                            url: url.clone(),
                            reason,
                        }
                    })?;
                // A bounded range must come back exactly as asked: a delta places the bytes
                // by position, and a server that sends others would corrupt the image.
                if let (Some(from), Some(to)) = (conditions.range_from, conditions.range_to)
                    && (start, last) != (from, to)
                {
                    return Err(TransportError::BadPartial {
                        url,
                        reason: format!("it sent bytes {start}-{last} for bytes {from}-{to}"),
                    });
                }
                Answer::Partial { start }
            }
            StatusCode::NOT_MODIFIED if conditions.is_conditional() => Answer::NotModified,
            StatusCode::NOT_FOUND => return Err(TransportError::NotFound { url }),
            StatusCode::GONE => return Err(TransportError::Gone { url }),
            _ => {
                let canonical = status.canonical_reason().unwrap_or("");
                let retry_after = retry_after(headers.get(header::RETRY_AFTER));
                // A refusal of the client (no or a wrong client certificate, missing
                // credentials) is often explained only in the page: nginx answers both
                // certificate problems with a plain 400 whose title says which.
                let says = matches!(status.as_u16(), 400 | 401 | 403)
                    .then(|| server_says(response, canonical))
                    .flatten();
                let reason = match says {
                    Some(says) => format!("{canonical} (the server says: {says})"),
                    None => canonical.to_owned(),
                };
                return Err(TransportError::Status {
                    url,
                    status: status.as_u16(),
                    reason,
                    retry_after,
                });
            }
        };
        if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
            let encoding = String::from_utf8_lossy(encoding.as_bytes());
            let encoding = encoding.trim();
            if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
                return Err(TransportError::Compressed {
                    url,
                    encoding: untrusted(encoding),
                });
            }
        }
        let etag = validator(headers.get(header::ETAG));
        let last_modified = validator(headers.get(header::LAST_MODIFIED));
        let body = response.into_body();
        let content_length = match answer {
            Answer::NotModified => Some(0),
            _ => body.content_length(),
        };
        let mut body = Body::new(
            url,
            content_length,
            Inner::Http(body.into_reader()),
            self.config,
            self.deadline,
        )
        .limited(self.limit.clone());
        body.answer = answer;
        body.etag = etag;
        body.last_modified = last_modified;
        Ok(body)
    }

    /// Turns a failed request into an error naming `url` (already fit to print).
    fn classify(&self, url: &str, err: ureq::Error, peer: Option<tls::Peer>) -> TransportError {
        let url = url.to_owned();
        match err {
            ureq::Error::BadUri(reason) => TransportError::InvalidUrl {
                url,
                reason: untrusted(&reason),
            },
            ureq::Error::Http(e) => TransportError::InvalidUrl {
                url,
                reason: untrusted(&e.to_string()),
            },
            ureq::Error::Timeout(Timeout::Global) => match self.deadline {
                Some(deadline) => TransportError::MaxTime {
                    url,
                    limit: deadline.limit,
                    progress: None,
                },
                None => TransportError::Network {
                    url,
                    source: NetworkError::new(io::ErrorKind::TimedOut, "timed out"),
                },
            },
            // No answer within the speed window: the rate over it is 0.
            ureq::Error::Timeout(Timeout::PerRead) if self.config.read_timeout_is_speed_check() => {
                TransportError::TooSlow {
                    url,
                    received: 0,
                    window: self.config.speed_time,
                    limit: self.config.speed_limit,
                }
            }
            other => TransportError::Network {
                url,
                source: describe_ureq(other, &self.config, peer, self.roots()),
            },
        }
    }
}

/// The title of an error page (or the first line of a plain-text one), if it says more than
/// the status's own reason; escaped and cut, as any text from the network. At most 4 KiB of
/// the body are read.
fn server_says(response: ureq::http::Response<ureq::Body>, canonical: &str) -> Option<String> {
    let mut head = Vec::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(4096)
        .read_to_end(&mut head);
    page_says(&head, canonical)
}

/// What the start of an error page says beyond `canonical`; see [`server_says`].
fn page_says(head: &[u8], canonical: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let lower = text.to_ascii_lowercase();
    let said = match lower.find("<title>") {
        Some(start) => {
            let start = start + "<title>".len();
            let end = lower[start..]
                .find("</title>")
                .map_or(text.len(), |e| start + e);
            text.get(start..end).unwrap_or("")
        }
        None if lower.contains('<') => return None,
        None => text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""),
    };
    // nginx titles start with the status code: "400 No required SSL certificate was sent".
    let said = said.trim();
    let said = said
        .split_once(' ')
        .filter(|(code, _)| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .map_or(said, |(_, rest)| rest)
        .trim();
    if said.is_empty() || said.eq_ignore_ascii_case(canonical) {
        return None;
    }
    Some(text::untrusted_max(said, 120))
}

/// A GET for an `http://` target sent to `proxy` in absolute form: `agent` (see
/// [`absolute_form`]) connects to the proxy as if it were the origin, and the request's
/// `Host` names the target, from which the request line is rewritten.
fn absolute_form_request(
    agent: &Agent,
    target: &Target,
    proxy: &Proxy,
) -> Result<ureq::RequestBuilder<ureq::typestate::WithoutBody>, String> {
    let scheme = match proxy.protocol() {
        ProxyProtocol::Https => Scheme::HTTPS,
        _ => Scheme::HTTP,
    };
    let host = proxy.host();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let authority: Authority = format!("{host}:{}", proxy.port())
        .parse()
        .map_err(|_| "the proxy's host is not usable".to_owned())?;
    let mut parts = target.uri.clone().into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    let uri = Uri::from_parts(parts).map_err(|e| untrusted(&e.to_string()))?;
    let target_authority = target.uri.authority().map_or("", Authority::as_str);
    let mut request = agent.get(uri).header(header::HOST, target_authority);
    if let Some(user) = proxy.username() {
        let password = proxy.password().unwrap_or("");
        if let Some(value) = basic_auth(user.as_bytes(), password.as_bytes()) {
            request = request.header(header::PROXY_AUTHORIZATION, value);
        }
    }
    Ok(request)
}

/// Statuses whose `Location` we follow. 300 and 304 are not redirects a GET can follow,
/// and 305 (use proxy) is deprecated for security reasons.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Describes a failed request; `peer` is the server when connected to directly, which lets a
/// certificate failure be looked at more closely.
fn describe_ureq(
    err: ureq::Error,
    cfg: &TransportConfig,
    peer: Option<tls::Peer>,
    roots: tls::Roots,
) -> NetworkError {
    use io::ErrorKind::{Other, TimedOut};
    let (kind, reason) = match err {
        ureq::Error::Timeout(Timeout::PerRead) => (
            TimedOut,
            format!(
                "timed out after {} with no data",
                seconds(cfg.read_timeout())
            ),
        ),
        ureq::Error::Timeout(Timeout::PerWrite) => (
            TimedOut,
            format!(
                "timed out after {} unable to send the request",
                seconds(cfg.idle_timeout)
            ),
        ),
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => (
            TimedOut,
            format!("could not connect within {}", seconds(cfg.connect_timeout)),
        ),
        ureq::Error::Timeout(other) => (TimedOut, format!("timed out ({other})")),
        ureq::Error::Io(e) => match tls_error_of(&e) {
            Some(tls) => (Other, tls::describe(tls, peer, roots)),
            None => (e.kind(), describe_io(&e)),
        },
        ureq::Error::HostNotFound => (Other, "host name not found".to_owned()),
        ureq::Error::Tls(e) => (Other, format!("TLS error: {}", untrusted(e))),
        ureq::Error::Rustls(e) => (Other, tls::describe(&e, peer, roots)),
        ureq::Error::Pem(_) => (Other, "TLS error: unreadable PEM data".to_owned()),
        ureq::Error::Protocol(e) => (
            Other,
            format!("invalid HTTP response: {}", untrusted(&e.to_string())),
        ),
        ureq::Error::LargeResponseHeader(..) => {
            (Other, "the response headers are too large".to_owned())
        }
        ureq::Error::ConnectProxyFailed(e) => {
            (Other, format!("the proxy refused: {}", untrusted(&e)))
        }
        ureq::Error::InvalidProxyUrl => (Other, "invalid proxy URL".to_owned()),
        ureq::Error::ConnectionFailed => {
            (io::ErrorKind::NotConnected, "connection failed".to_owned())
        }
        other => (Other, untrusted(&other.to_string())),
    };
    NetworkError::new(kind, reason)
}

/// The rustls error inside an I/O error, as rustls streams report handshake failures.
fn tls_error_of(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A failed request or read in plain words, for the callers that run their own requests on
/// ureq (the registry client): the same wording as for web origins, where it can be told.
pub(crate) fn describe_failure(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(e) = err.downcast_ref::<ureq::Error>() {
        return match e {
            ureq::Error::Io(io) => describe_io(io),
            ureq::Error::Timeout(_) => "timed out".to_owned(),
            ureq::Error::HostNotFound => "host name not found".to_owned(),
            ureq::Error::ConnectionFailed => "connection failed".to_owned(),
            ureq::Error::Rustls(tls) => tls::describe(tls, None, tls::Roots::System),
            ureq::Error::Protocol(p) => {
                format!("invalid HTTP response: {}", untrusted(&p.to_string()))
            }
            ureq::Error::LargeResponseHeader(..) => "the response headers are too large".to_owned(),
            other => untrusted(&other.to_string()),
        };
    }
    if let Some(io) = err.downcast_ref::<io::Error>() {
        // ureq reports a failed body read as an I/O error around its own error.
        if let Some(inner) = io.get_ref()
            && inner.is::<ureq::Error>()
        {
            return describe_failure(inner);
        }
        return describe_io(io);
    }
    untrusted(&err.to_string())
}

fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind as K;
    if let Some(tls) = tls_error_of(err) {
        return tls::describe(tls, None, tls::Roots::System);
    }
    match err.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset by the server".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::UnexpectedEof => "connection closed before the transfer was complete".to_owned(),
        K::TimedOut => "timed out".to_owned(),
        K::HostUnreachable => "host unreachable".to_owned(),
        K::NetworkUnreachable => "network unreachable".to_owned(),
        _ => untrusted(&err.to_string()),
    }
}

fn open_file(
    url: &url::Url,
    shown: String,
    deadline: Option<Deadline>,
    limit: Option<Arc<rate::RateLimit>>,
    range_from: Option<u64>,
    range_to: Option<u64>,
) -> Result<Body, TransportError> {
    let path = file_url_path(url, &shown)?;
    let file_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            TransportError::NotFound { url: shown.clone() }
        } else {
            TransportError::File {
                url: shown.clone(),
                source,
            }
        }
    };
    let file = File::open(&path).map_err(file_error)?;
    let meta = file.metadata().map_err(file_error)?;
    // Opening a directory succeeds on Unix; reading it would fail later and less clearly.
    if meta.is_dir() {
        return Err(file_error(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory",
        )));
    }
    let mut file = file;
    let mut answer = Answer::Whole;
    let mut length = meta.is_file().then_some(meta.len());
    let bounded = range_to.is_some() && range_from.is_some();
    if let Some(from) = range_from.filter(|&from| (from > 0 || bounded) && meta.is_file()) {
        if from >= meta.len() || range_to.is_some_and(|to| to < from || to >= meta.len()) {
            return Err(TransportError::Status {
                url: shown,
                status: 416,
                reason: "Range Not Satisfiable".to_owned(),
                retry_after: None,
            });
        }
        io::Seek::seek(&mut file, io::SeekFrom::Start(from)).map_err(file_error)?;
        answer = Answer::Partial { start: from };
        length = Some(range_to.map_or(meta.len(), |to| to + 1) - from);
    }
    let mut body = Body::new(
        shown,
        length,
        Inner::File(file.take(length.filter(|_| bounded).unwrap_or(u64::MAX))),
        TransportConfig::default(),
        deadline,
    )
    .limited(limit);
    body.answer = answer;
    Ok(body)
}

/// A response body being streamed. Read errors are `io::Error`s whose message names the URL;
/// [`TransportError::from_read_error`] recovers the structured error.
pub struct Body {
    url: String,
    content_length: Option<u64>,
    inner: Inner,
    config: TransportConfig,
    deadline: Option<Deadline>,
    started: Instant,
    received: u64,
    /// The current window of the low-speed check: when it began and what arrived since.
    window_start: Instant,
    window_bytes: u64,
    answer: Answer,
    etag: Option<String>,
    last_modified: Option<String>,
    /// `--limit-rate`, shared with every other body of the run.
    limit: Option<Arc<rate::RateLimit>>,
}

enum Inner {
    Http(ureq::BodyReader<'static>),
    /// A `file://` file, cut at the end of a bounded range.
    File(io::Take<File>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("url", &self.url)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Body {
    fn new(
        url: String,
        content_length: Option<u64>,
        inner: Inner,
        config: TransportConfig,
        deadline: Option<Deadline>,
    ) -> Body {
        let now = Instant::now();
        Body {
            url,
            content_length,
            inner,
            config,
            deadline,
            started: now,
            received: 0,
            window_start: now,
            window_bytes: 0,
            answer: Answer::Whole,
            etag: None,
            last_modified: None,
            limit: None,
        }
    }

    fn limited(self, limit: Option<Arc<rate::RateLimit>>) -> Body {
        Body { limit, ..self }
    }

    /// Whether this is the whole file, a range of it, or no body because nothing changed.
    pub fn answer(&self) -> Answer {
        self.answer
    }

    /// The server's `ETag` for the file, if it sent a usable one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The server's `Last-Modified` date for the file, as sent, if usable.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }

    /// The size the server announced, or the file's size; `None` if unknown.
    /// Only a claim: the stream may still end early or run long.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The URL the body comes from (after any redirects), fit to print.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn max_time_error(&self, deadline: Deadline) -> TransportError {
        TransportError::MaxTime {
            url: self.url.clone(),
            limit: deadline.limit,
            progress: Some((self.received, self.started.elapsed())),
        }
    }

    fn too_slow(&self) -> TransportError {
        TransportError::TooSlow {
            url: self.url.clone(),
            received: self.window_bytes,
            window: self.window_start.elapsed(),
            limit: self.config.speed_limit,
        }
    }

    /// Counts `n` new bytes for the low-speed check: once a window of `speed_time` is over,
    /// its average must reach `speed_limit`, and the next window starts.
    fn check_speed(&mut self, n: usize) -> Result<(), TransportError> {
        if !self.config.speed_checked() || !matches!(self.inner, Inner::Http(_)) {
            return Ok(());
        }
        self.window_bytes = self.window_bytes.saturating_add(n as u64);
        let elapsed = self.window_start.elapsed();
        if elapsed < self.config.speed_time {
            return Ok(());
        }
        if rate(self.window_bytes, elapsed) < self.config.speed_limit {
            return Err(self.too_slow());
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }

    /// The structured error behind a failed read.
    fn read_error(&self, err: io::Error) -> TransportError {
        match &self.inner {
            // Unwraps the ureq::Error that ureq hides inside io::Error::other.
            Inner::Http(_) => match ureq::Error::from(err) {
                ureq::Error::Timeout(Timeout::Global) => match self.deadline {
                    Some(deadline) => self.max_time_error(deadline),
                    None => TransportError::Network {
                        url: self.url.clone(),
                        source: NetworkError::new(io::ErrorKind::TimedOut, "timed out"),
                    },
                },
                ureq::Error::Timeout(Timeout::PerRead)
                    if self.config.read_timeout_is_speed_check() =>
                {
                    self.too_slow()
                }
                ureq::Error::Io(e) => TransportError::Network {
                    url: self.url.clone(),
                    source: NetworkError::new(e.kind(), describe_io(&e)),
                },
                other => TransportError::Network {
                    url: self.url.clone(),
                    source: describe_ureq(other, &self.config, None, tls::Roots::System),
                },
            },
            Inner::File(_) => TransportError::File {
                url: self.url.clone(),
                source: err,
            },
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wrap = |transport: TransportError| {
            let kind = match &transport {
                TransportError::Network { source, .. } => source.kind(),
                TransportError::File { source, .. } => source.kind(),
                _ => io::ErrorKind::TimedOut,
            };
            io::Error::new(kind, transport)
        };
        // ureq enforces the deadline on HTTP bodies itself; a local file is checked here.
        if let (Inner::File(_), Some(deadline)) = (&self.inner, self.deadline)
            && deadline.remaining().is_zero()
        {
            return Err(wrap(self.max_time_error(deadline)));
        }
        // Under --limit-rate, reads are cut to the bucket's burst so that the rate stays even.
        let want = self
            .limit
            .as_ref()
            .map_or(buf.len(), |l| l.chunk(buf.len()));
        let buf = &mut buf[..want];
        let result = match &mut self.inner {
            Inner::Http(reader) => reader.read(buf),
            Inner::File(file) => file.read(buf),
        };
        match result {
            Ok(n) => {
                if let Some(limit) = &self.limit {
                    limit.spend(n);
                }
                self.received = self.received.saturating_add(n as u64);
                if n > 0 {
                    self.check_speed(n).map_err(wrap)?;
                }
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => Err(wrap(self.read_error(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_range_gives_its_first_and_last_byte_or_says_what_is_wrong() {
        let parse = |text: &str| content_range(Some(&HeaderValue::from_str(text).unwrap()));
        assert_eq!(parse("bytes 0-99/1000"), Ok((0, 99)));
        assert_eq!(parse("bytes 100-199/*"), Ok((100, 199)));
        assert_eq!(parse("bytes 5-5"), Ok((5, 5)));
        for bad in [
            "bytes 9-1/10",
            "bytes x-1/10",
            "items 0-1/2",
            "bytes */10",
            "",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.contains("is not 'bytes FIRST-LAST/LENGTH'"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            content_range(None),
            Err("it has no Content-Range header".to_owned())
        );
    }

    #[test]
    fn open_refuses_schemes_other_than_http_https_and_file() {
        let transport = Transport::with_proxies(TransportConfig::default(), ProxyConfig::none());
        for url in ["ftp://h/manifest", "manifest", "socks5://h/x", ""] {
            let err = transport.open(url).unwrap_err();
            assert!(
                matches!(err, TransportError::UnsupportedScheme { .. }),
                "{url}: {err:?}"
            );
            assert!(err.to_string().contains(url));
        }
    }

    #[test]
    fn file_urls_map_to_local_absolute_paths() {
        let path = |u: &str| {
            let url = url::Url::parse(u).unwrap();
            file_url_path(&url, u).map(|p| p.to_string_lossy().into_owned())
        };
        assert_eq!(path("file:///srv/o/manifest").unwrap(), "/srv/o/manifest");
        assert_eq!(path("file://localhost/srv/o").unwrap(), "/srv/o");
        assert_eq!(path("file:/srv/o").unwrap(), "/srv/o");
        assert_eq!(path("file:///a%20b/c%2").unwrap(), "/a b/c%2");
        assert_eq!(path("file:///a?q#f").unwrap(), "/a");
        assert!(path("file://elsewhere/srv").is_err());
    }

    #[test]
    fn no_proxy_domain_entries_cover_subdomains_but_not_lookalikes() {
        let np = NoProxy::parse("example.com, .internal ,*.corp.net");
        assert!(np.matches("example.com", 80));
        assert!(np.matches("a.b.example.com", 443));
        assert!(np.matches("EXAMPLE.com.", 80));
        assert!(!np.matches("badexample.com", 80));
        assert!(!np.matches("example.com.evil", 80));
        assert!(np.matches("internal", 80));
        assert!(np.matches("x.internal", 80));
        assert!(np.matches("corp.net", 80));
        assert!(np.matches("a.corp.net", 80));
        assert!(!np.matches("other.org", 80));
    }

    #[test]
    fn no_proxy_star_matches_everything() {
        assert!(NoProxy::parse("foo,*").matches("anything.example", 8080));
        assert!(!NoProxy::parse("").matches("anything.example", 8080));
    }

    #[test]
    fn no_proxy_ip_and_network_entries_match_addresses() {
        let np = NoProxy::parse("127.0.0.1,10.0.0.0/8,::1,fd00::/8");
        assert!(np.matches("127.0.0.1", 80));
        assert!(!np.matches("127.0.0.2", 80));
        assert!(np.matches("10.200.3.4", 80));
        assert!(!np.matches("11.0.0.1", 80));
        assert!(np.matches("[::1]", 80));
        assert!(np.matches("[fd12::5]", 80));
        assert!(!np.matches("[fe80::1]", 80));
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8", 53));
    }

    #[test]
    fn no_proxy_entries_with_a_port_apply_only_to_that_port() {
        let np = NoProxy::parse("example.com:8080,[::1]:443");
        assert!(np.matches("example.com", 8080));
        assert!(!np.matches("example.com", 80));
        assert!(np.matches("[::1]", 443));
        assert!(!np.matches("[::1]", 80));
    }

    #[test]
    fn no_proxy_ignores_malformed_entries() {
        let np = NoProxy::parse("example.com:notaport,10.0.0.0/99,,.,[::1,good.org");
        assert_eq!(np.entries.len(), 1);
        assert!(np.matches("good.org", 80));
    }

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> ProxyConfig {
        ProxyConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn proxy_host(cfg: &ProxyConfig, url: &str) -> Option<String> {
        let target = Target::parse(url).unwrap();
        cfg.proxy_for(url, &target)
            .unwrap()
            .map(|(p, _)| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn proxy_is_chosen_by_the_target_scheme() {
        let cfg = lookup(&[
            ("http_proxy", "http://plain:3128"),
            ("HTTPS_PROXY", "secure:3129"),
        ]);
        assert_eq!(
            proxy_host(&cfg, "http://a.example/manifest").as_deref(),
            Some("plain:3128")
        );
        assert_eq!(
            proxy_host(&cfg, "https://a.example/manifest").as_deref(),
            Some("secure:3129")
        );
    }

    #[test]
    fn lower_case_proxy_variables_win_and_empty_ones_count_as_unset() {
        let cfg = lookup(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
            ("https_proxy", ""),
            ("HTTPS_PROXY", "http://upper:3"),
        ]);
        assert_eq!(proxy_host(&cfg, "http://h/").as_deref(), Some("lower:1"));
        assert_eq!(proxy_host(&cfg, "https://h/").as_deref(), Some("upper:3"));
    }

    #[test]
    fn no_proxy_hosts_connect_directly() {
        let cfg = lookup(&[
            ("http_proxy", "http://p:3128"),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ]);
        assert_eq!(proxy_host(&cfg, "http://127.0.0.1:8000/x"), None);
        assert_eq!(proxy_host(&cfg, "http://LocalHost/x"), None);
        assert!(proxy_host(&cfg, "http://remote.example/x").is_some());
    }

    #[test]
    fn socks_and_garbage_proxies_are_errors_naming_the_variable_and_url() {
        let url = "https://h.example/manifest";
        let target = Target::parse(url).unwrap();
        for cfg in [
            lookup(&[("https_proxy", "socks5://p:1080")]),
            lookup(&[("https_proxy", "ftp://p:21")]),
        ] {
            let err = cfg.proxy_for(url, &target).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("$https_proxy") && msg.contains(url), "{msg}");
            assert!(!msg.contains("p:1080") && !msg.contains("p:21"), "{msg}");
        }
    }

    #[test]
    fn redirect_locations_resolve_against_the_current_url() {
        let base = "http://h:8/a/b/c?q=1";
        let resolve = |location: &str| String::from(resolve_location(base, location).unwrap());
        assert_eq!(resolve("https://o/x"), "https://o/x");
        assert_eq!(resolve("//o/x"), "http://o/x");
        assert_eq!(resolve("/x/y"), "http://h:8/x/y");
        assert_eq!(resolve("d"), "http://h:8/a/b/d");
        assert_eq!(resolve("../d?z"), "http://h:8/a/d?z");
        assert_eq!(resolve("./"), "http://h:8/a/b/");
        assert_eq!(resolve("?r"), "http://h:8/a/b/c?r");
        assert_eq!(resolve("/x#frag"), "http://h:8/x");
        assert_eq!(resolve("../../../../x"), "http://h:8/x");
        assert_eq!(resolve("file:///etc/passwd"), "file:///etc/passwd");
        assert_eq!(
            String::from(resolve_location("http://h", "x").unwrap()),
            "http://h/x"
        );
    }

    #[test]
    fn status_messages_name_the_status_reason_and_url() {
        let err = TransportError::Status {
            url: "http://h/manifest".to_owned(),
            status: 500,
            reason: "Internal Server Error".to_owned(),
            retry_after: None,
        };
        assert_eq!(
            err.to_string(),
            "HTTP 500 Internal Server Error from http://h/manifest"
        );
        let err = TransportError::Status {
            url: "http://h/manifest".to_owned(),
            status: 599,
            reason: String::new(),
            retry_after: None,
        };
        assert_eq!(err.to_string(), "HTTP 599 from http://h/manifest");
    }

    #[test]
    fn durations_read_naturally_in_messages() {
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn origins_with_credentials_are_shown_with_the_password_hidden() {
        let origin = parse_origin("HTTPS://user:p%40ss@Images.Example.com:8443/app/").unwrap();
        assert_eq!(origin.url, "https://user:***@images.example.com:8443/app");
        let creds = origin.credentials.unwrap();
        let basic = creds.basic.as_ref().unwrap();
        assert_eq!(basic.user, b"user");
        assert_eq!(basic.password, b"p@ss");
        let debug = format!("{creds:?}");
        assert!(!debug.contains("p@ss") && debug.contains("***"), "{debug}");
        let plain = parse_origin("http://h/x").unwrap();
        assert_eq!(plain.url, "http://h/x");
        assert!(plain.credentials.is_none());
        let user_only = parse_origin("http://me@h/").unwrap();
        assert_eq!(user_only.url, "http://me@h");
        assert_eq!(user_only.credentials.unwrap().basic.unwrap().password, b"");
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
        let msg = err("https://u:secret@bad host/").to_string();
        assert!(
            !msg.contains("secret") && msg.contains("u:***@bad host"),
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
            !msg.contains("secret") && msg.contains("u:***@ghcr.io"),
            "{msg}"
        );
    }

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
    fn redaction_hides_the_password_even_in_text_that_is_no_url() {
        assert_eq!(redact("http://u:p@h/x"), "http://u:***@h/x");
        assert_eq!(redact("http://u:p@q@h:1/x?y@z"), "http://u:***@h:1/x?y@z");
        assert_eq!(redact("http://u@h/"), "http://u@h/");
        assert_eq!(redact("http://h/a:b@c"), "http://h/a:b@c");
        assert_eq!(redact("not a url u:p@h"), "not a url u:p@h");
        assert_eq!(show_url("http://h/\u{1b}[2J"), "http://h/\\u{1b}[2J");
    }

    #[test]
    fn credentials_apply_only_to_their_own_scheme_host_and_port() {
        let creds = parse_origin("https://u:p@Host.example/o")
            .unwrap()
            .credentials
            .unwrap();
        let applies = |url: &str| creds.applies_to(&Target::parse(url).unwrap());
        assert!(applies("https://host.example/o/manifest"));
        assert!(applies("https://HOST.example:443/other"));
        assert!(applies("https://x:***@host.example/o/manifest"));
        assert!(!applies("http://host.example/o/manifest"));
        assert!(!applies("https://host.example:8443/o/manifest"));
        assert!(!applies("https://other.example/o/manifest"));
        assert!(!applies("https://host.example.evil/o/manifest"));
    }

    #[test]
    fn requests_never_carry_the_user_part_of_a_url() {
        let target = Target::parse("http://u:p@h:81/x?y").unwrap();
        assert_eq!(target.uri.to_string(), "http://h:81/x?y");
        assert_eq!(target.host, "h");
        assert_eq!(target.port, 81);
    }

    #[test]
    fn the_speed_check_shortens_the_read_timeout_only_when_it_is_on() {
        let cfg = TransportConfig {
            idle_timeout: Duration::from_secs(60),
            speed_time: Duration::from_secs(5),
            ..TransportConfig::default()
        };
        assert_eq!(cfg.read_timeout(), Duration::from_secs(5));
        assert!(cfg.read_timeout_is_speed_check());
        let off = TransportConfig {
            speed_limit: 0,
            ..cfg
        };
        assert_eq!(off.read_timeout(), Duration::from_secs(60));
        assert!(!off.read_timeout_is_speed_check());
        assert!(!TransportConfig::default().read_timeout_is_speed_check());
        assert_eq!(rate(1500, Duration::from_millis(1500)), 1000);
        assert_eq!(rate(10, Duration::ZERO), 10_000);
    }

    #[test]
    fn error_pages_are_summed_up_by_their_title_when_it_says_more_than_the_status() {
        let nginx = b"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>";
        assert_eq!(
            page_says(nginx, "Bad Request").as_deref(),
            Some("No required SSL certificate was sent")
        );
        assert_eq!(
            page_says(b"<html><head><title>403 Forbidden</title>", "Forbidden"),
            None
        );
        assert_eq!(page_says(b"Forbidden\n", "Forbidden"), None);
        assert_eq!(
            page_says(b"\ntoken expired\nmore", "Unauthorized").as_deref(),
            Some("token expired")
        );
        assert_eq!(page_says(b"<p>no title</p>", "Bad Request"), None);
        assert_eq!(page_says(b"", "Bad Request"), None);
        let hostile = page_says(b"<TITLE>\x1b[2Jgone\xff</TITLE>", "Bad Request").unwrap();
        assert_eq!(hostile, "\\u{1b}[2Jgone\u{fffd}");
        let long = page_says("x".repeat(3000).as_bytes(), "Bad Request").unwrap();
        assert!(long.chars().count() <= 121, "{long}");
    }

    #[test]
    fn a_header_file_authorization_replaces_basic_credentials() {
        let mut creds = parse_origin("https://u:p@h/o")
            .unwrap()
            .credentials
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
    fn for_origin_reads_netrc_for_the_origins_host_and_ignores_everything_for_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(
            &netrc,
            "machine other login o password x\nmachine h.example login u password p\n",
        )
        .unwrap();
        let env = |name: &str| (name == "NETRC").then(|| netrc.clone().into_os_string());
        let base = Transport::with_proxies(TransportConfig::default(), ProxyConfig::none());
        let t = base
            .for_origin_in("https://H.example/o", None, &Access::default(), env)
            .unwrap();
        let creds = t.credentials.unwrap();
        assert_eq!(creds.basic.as_ref().unwrap().user, b"u");
        assert!(creds.applies_to(&Target::parse("https://h.example/o/manifest").unwrap()));
        assert!(!creds.applies_to(&Target::parse("https://other/o/manifest").unwrap()));

        let missing = Access {
            header_file: Some(dir.path().join("missing")),
            ca_certificate: Some(dir.path().join("missing-ca")),
            ..Access::default()
        };
        let t = base
            .for_origin_in("file:///srv/o", None, &missing, env)
            .unwrap();
        assert!(t.credentials.is_none() && t.private_tls.is_none());
        let err = base
            .for_origin_in("https://h.example/o", None, &missing, env)
            .unwrap_err();
        assert!(
            matches!(err, TransportError::Access(AccessError::Read { .. })),
            "{err}"
        );
    }

    #[test]
    fn bodies_and_transports_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Body>();
        is_send::<Transport>();
        is_send::<TransportError>();
    }
}
