//! What can go wrong, in words a user can act on: [`TransportError`] for a request or a
//! body, [`AccessError`] for the files of a private origin, and the descriptions of
//! connection, TLS and timeout failures behind them.

use std::io;
use std::path::Path;
use std::time::Duration;

use ureq::Timeout;

use crate::format::http_fields::status_is_transient;
use crate::format::origin_url::show_url;
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::fs::bounded::ReadError;

use super::tls;

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

    /// A redirect loop, or a chain longer than any server has business sending.
    #[error("too many redirects ({max}) starting at {url}; the last Location was {last}")]
    TooManyRedirects {
        url: String,
        max: u32,
        /// Where the last redirect followed would have led next, fit to print.
        last: String,
    },

    #[error("bad redirect from {url}: {reason}")]
    BadRedirect { url: String, reason: String },

    /// The proxy environment variable is set to something unusable. The value itself is
    /// left out of the message because it may hold a password.
    #[error("cannot download {url}: {}", proxy_unusable(.var, .reason))]
    Proxy {
        url: String,
        var: String,
        reason: String,
    },

    #[error("cannot read {url}: {source}")]
    File { url: String, source: io::Error },

    /// The low-speed check (curl's `--speed-limit`) gave up on a trickling transfer.
    #[error("cannot download {url}: {}", too_slow(*.received, *.window, *.limit))]
    TooSlow {
        url: String,
        received: u64,
        window: Duration,
        limit: u64,
    },

    /// The time allowed for one config's whole fetch (`--max-time`) ran out.
    #[error("cannot download {url}: {}", max_time(*.limit, .progress))]
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

    /// A header a caller asked to send (see [`Call`](super::Call)) cannot be one.
    #[error("cannot send a request to {url}: the value of its {name} header is not valid")]
    BadHeader { url: String, name: String },
}

/// Bytes per second, rounded down; a window of zero counts as one millisecond.
pub(super) fn rate(bytes: u64, window: Duration) -> u64 {
    let millis = window.as_millis().max(1);
    u64::try_from(u128::from(bytes) * 1000 / millis).unwrap_or(u64::MAX)
}

fn proxy_unusable(var: &str, reason: &str) -> String {
    format!("the proxy in ${var} is unusable: {reason}")
}

fn too_slow(received: u64, window: Duration, limit: u64) -> String {
    format!(
        "too slow: {received} bytes in the last {} ({} bytes/s), below the limit of {limit} bytes/s (see --speed-limit and --speed-time)",
        seconds(window),
        rate(received, window)
    )
}

fn max_time(limit: Duration, progress: &Option<(u64, Duration)>) -> String {
    format!(
        "gave up after the time limit of {} for this config (--max-time){}",
        seconds(limit),
        progress_note(progress)
    )
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
            TransportError::Status { status, .. } => status_is_transient(*status),
            _ => false,
        }
    }

    /// What went wrong without the URL, for a caller that names the request in its own
    /// words (a registry names the repository and the call): the connection failure, the
    /// low-speed check, the time limit or the unusable proxy as they are said for a web
    /// origin; any other error as its whole message.
    pub fn detail(&self) -> String {
        match self {
            TransportError::Network { source, .. } => source.to_string(),
            TransportError::TooSlow {
                received,
                window,
                limit,
                ..
            } => too_slow(*received, *window, *limit),
            TransportError::MaxTime {
                limit, progress, ..
            } => max_time(*limit, progress),
            TransportError::Proxy { var, reason, .. } => proxy_unusable(var, reason),
            other => other.to_string(),
        }
    }

    /// The wait the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Recovers the error behind a failed [`Body`](super::Body) read.
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
    pub(super) kind: io::ErrorKind,
    pub(super) reason: String,
}

impl NetworkError {
    pub(super) fn new(kind: io::ErrorKind, reason: impl Into<String>) -> NetworkError {
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

/// Why a file for a private origin cannot be used. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file cannot be read: missing, unreadable, not a regular file, or too large.
    #[error(transparent)]
    File(#[from] ReadError),
    #[error("the header file {path} (HeaderFile=), line {line}: {reason}")]
    Header {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("the netrc file {path}, line {line}: {reason}")]
    Netrc {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("the {what} {path} {reason}")]
    Pem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("the certificate directory {path} (--cert-dir) {reason}")]
    CertDir { path: String, reason: String },
    /// `cert` and `key` are the paths with the setting that named them.
    #[error("the client key {key} does not belong to the client certificate {cert}")]
    KeyMismatch { cert: String, key: String },
}

pub(super) fn shown(path: &Path) -> String {
    untrusted(&path.display().to_string())
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
pub(super) fn describe_ureq(
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

pub(super) fn describe_io(err: &io::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rates_in_messages_are_bytes_per_second_rounded_down() {
        assert_eq!(rate(1500, Duration::from_millis(1500)), 1000);
        assert_eq!(rate(1000, Duration::from_millis(1500)), 666);
        assert_eq!(rate(10, Duration::ZERO), 10_000);
    }
}
