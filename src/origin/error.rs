//! What can go wrong at an origin, and what kind of thing it is.
//!
//! The engine above the seam (`update/`) decides what to do next from the [`Kind`] alone:
//! try the next mirror, try again later, take a missing `manifest.<keyid>` as absent, call
//! an image withdrawn. It never learns whether a web server, a `file://` directory or a
//! registry failed, so the transport's and the registry client's errors stay below the
//! seam, wrapped whole: the message a user reads is theirs, word for word.

use std::time::Duration;

use crate::fs::IoError;
use crate::net::TransportError;
use crate::registry::OciError;
use crate::stream::hashing::CopyError;

/// What kind of failure an [`OriginError`] is: all the engine needs to choose what next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The file, blob or tag is not there (404, a missing file, a missing tag).
    NotFound,
    /// Taken away on purpose (410 Gone, the tag of a retired key).
    Gone,
    /// May go better a little later: a connection that failed or timed out, a transfer
    /// too slow, 408, 429 and the 5xx statuses, a registry that could not be reached.
    Transient,
    /// The origin said no for good: 401, 403 and the other 4xx statuses, credentials
    /// missing or refused, a redirect tako does not follow, a certificate or name that
    /// fails the same way again.
    Refused,
    /// It answered something unusable: a malformed artifact, a range that is not the one
    /// asked for, a blob that does not match its digest, a compressed body.
    Invalid,
    /// Larger than the most tako reads of it.
    TooLarge,
    /// 416 Range Not Satisfiable: the origin has fewer bytes than a resume asked from.
    Unsatisfiable,
    /// A failure on this side: a setting of this host (a URL, the proxy variable, an auth
    /// or access file, `--max-time`), or the local files of a publisher.
    Local,
}

/// A failure of an origin, in either direction (reading for `fetch`, writing for `store`).
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// A web server or `file://` directory, or the download of a registry blob, failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A registry call failed: its own message names the repository.
    #[error(transparent)]
    Registry(#[from] OciError),
    /// A tag a registry does not have: said as a web origin's 404 is.
    #[error("{url} not found (404 Not Found)")]
    NotFound { url: String },
    /// A registry's `tako-manifest.<keyid>` of a key its publisher retired (the registry
    /// would not delete the tag, so it now holds a marker; see docs/registries.md).
    #[error("{url} is gone: its key was retired by the publisher")]
    Retired { url: String },
    /// A download its caller stopped, as another part of the same run failed: what
    /// arrived is kept, and no other place is asked.
    #[error("the download of {url} was stopped before its end")]
    Stopped { url: String },
    /// A registry tag `tako store` writes was moved by someone else between this run's
    /// reads of it: a registry has no lock and no conditional tag update.
    #[error("{location}: another publisher changed it during this run")]
    Changed { location: String },
    /// The local server directory `tako store` writes.
    #[error(transparent)]
    Local(#[from] IoError),
    #[error("output directory {} does not exist or is not a directory", .0.display())]
    NoDirectory(std::path::PathBuf),
    /// Copying an image into a local server directory failed.
    #[error("cannot copy {} to {}: {source}", image.display(), target.display())]
    Copy {
        image: std::path::PathBuf,
        target: std::path::PathBuf,
        source: CopyError,
    },
    /// Writing a container image's blob into a local server directory failed.
    #[error("cannot write blob {digest} to {}: {source}", target.display())]
    BlobCopy {
        digest: String,
        target: std::path::PathBuf,
        source: CopyError,
    },
    /// The bytes given for a blob are not that blob: nothing was kept.
    #[error(
        "refusing to write {}: the {size} bytes given for blob {digest} have the digest sha256:{actual}",
        target.display()
    )]
    BlobMismatch {
        digest: String,
        target: std::path::PathBuf,
        size: u64,
        actual: String,
    },
}

impl OriginError {
    /// What kind of failure this is.
    pub fn kind(&self) -> Kind {
        match self {
            OriginError::Transport(e) => transport_kind(e),
            OriginError::Registry(e) => registry_kind(e),
            OriginError::NotFound { .. } => Kind::NotFound,
            OriginError::Retired { .. } => Kind::Gone,
            // Reading the tag again and writing anew may well succeed.
            OriginError::Changed { .. } => Kind::Transient,
            OriginError::Local(_)
            | OriginError::NoDirectory(_)
            | OriginError::Copy { .. }
            | OriginError::BlobCopy { .. }
            | OriginError::Stopped { .. } => Kind::Local,
            OriginError::BlobMismatch { .. } => Kind::Invalid,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind() == Kind::Transient
    }

    /// The wait the origin asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OriginError::Transport(TransportError::Status { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// The URL that failed, where the failure names one as such (for "410 Gone from URL").
    pub fn url(&self) -> Option<&str> {
        match self {
            OriginError::Transport(
                TransportError::Gone { url }
                | TransportError::NotFound { url }
                | TransportError::Status { url, .. },
            )
            | OriginError::NotFound { url }
            | OriginError::Retired { url } => Some(url),
            _ => None,
        }
    }

    /// Whether this is a `206 Partial Content` that cannot be used as the range asked for
    /// (several ranges, no or another `Content-Range`).
    pub fn is_bad_partial(&self) -> bool {
        matches!(
            self,
            OriginError::Transport(TransportError::BadPartial { .. })
        )
    }

    /// Recovers the failure behind an error that reading a [`super::Body`] of `url` gave.
    pub fn from_read_error(url: &str, err: std::io::Error) -> OriginError {
        match err.downcast::<OriginError>() {
            Ok(origin) => origin,
            Err(err) => OriginError::Transport(TransportError::from_read_error(url, err)),
        }
    }

    /// A range request to an origin that serves no ranges, named by `what` (the origin).
    pub fn no_ranges(what: &str) -> OriginError {
        OriginError::Transport(TransportError::BadPartial {
            url: what.to_owned(),
            reason: "this origin does not serve byte ranges".to_owned(),
        })
    }

    /// What an origin that stands for no place at all answers (a list of no mirrors).
    pub fn no_place() -> OriginError {
        OriginError::Transport(TransportError::InvalidUrl {
            url: String::new(),
            reason: "no origin is configured".to_owned(),
        })
    }

    /// A 206 from `url` that cannot be used, for `reason`: for the fakes of unit tests.
    #[cfg(test)]
    pub(crate) fn bad_partial(url: &str, reason: &str) -> Self {
        OriginError::Transport(TransportError::BadPartial {
            url: url.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// An HTTP status from `url`, as a web origin reports it: for the fakes of unit tests.
    #[cfg(test)]
    pub(crate) fn http_status(url: &str, status: u16, retry_after: Option<Duration>) -> Self {
        OriginError::Transport(match status {
            404 => TransportError::NotFound {
                url: url.to_owned(),
            },
            410 => TransportError::Gone {
                url: url.to_owned(),
            },
            _ => TransportError::Status {
                url: url.to_owned(),
                status,
                reason: String::new(),
                retry_after,
            },
        })
    }
}

/// The kind of an HTTP status that is not a success, from a web server or a registry.
fn status_kind(status: u16) -> Kind {
    match status {
        404 => Kind::NotFound,
        410 => Kind::Gone,
        416 => Kind::Unsatisfiable,
        408 | 429 | 500..=599 => Kind::Transient,
        400..=499 => Kind::Refused,
        _ => Kind::Invalid,
    }
}

fn transport_kind(e: &TransportError) -> Kind {
    use TransportError as T;
    match e {
        T::NotFound { .. } => Kind::NotFound,
        T::Gone { .. } => Kind::Gone,
        T::Status { status, .. } => status_kind(*status),
        T::Network { source, .. } if source.is_transient() => Kind::Transient,
        T::Network { .. } => Kind::Refused,
        T::TooSlow { .. } => Kind::Transient,
        T::TooLarge { .. } => Kind::TooLarge,
        T::BadPartial { .. } | T::BadRedirect { .. } | T::Compressed { .. } => Kind::Invalid,
        T::RedirectRefused { .. } | T::InsecureRedirect { .. } | T::TooManyRedirects { .. } => {
            Kind::Refused
        }
        // A `file://` origin that cannot be read is the origin's failure, not this host's
        // settings: as a 403 is.
        T::File { .. } => Kind::Refused,
        T::UnsupportedScheme { .. }
        | T::InvalidUrl { .. }
        | T::Proxy { .. }
        | T::MaxTime { .. }
        | T::Access(_)
        | T::BadHeader { .. } => Kind::Local,
    }
}

fn registry_kind(e: &OciError) -> Kind {
    match e {
        OciError::Transport { source, .. } => transport_kind(source),
        OciError::Network { .. } => Kind::Transient,
        OciError::Status { status, .. } => status_kind(*status),
        OciError::NoCredentials { .. }
        | OciError::Refused { .. }
        | OciError::Token { .. }
        | OciError::NotTls { .. } => Kind::Refused,
        OciError::TooLarge { .. } => Kind::TooLarge,
        OciError::DigestMismatch { .. } | OciError::Invalid { .. } => Kind::Invalid,
        OciError::BadReference(_) | OciError::Auth(_) | OciError::ReadImage { .. } => Kind::Local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> OriginError {
        OriginError::http_status("http://h/manifest", status, None)
    }

    #[test]
    fn statuses_are_kinds_the_same_way_from_a_web_server_and_a_registry() {
        for (code, kind) in [
            (404, Kind::NotFound),
            (410, Kind::Gone),
            (416, Kind::Unsatisfiable),
            (408, Kind::Transient),
            (429, Kind::Transient),
            (500, Kind::Transient),
            (503, Kind::Transient),
            (401, Kind::Refused),
            (403, Kind::Refused),
            (400, Kind::Refused),
        ] {
            assert_eq!(status(code).kind(), kind, "{code}");
            let registry = OriginError::Registry(OciError::Status {
                what: "manifest".into(),
                registry: "r".into(),
                status: code,
                detail: String::new(),
            });
            assert_eq!(registry.kind(), kind, "registry {code}");
        }
    }

    #[test]
    fn only_transient_failures_are_worth_a_retry_and_a_server_may_say_when() {
        let busy = OriginError::http_status("http://h/x", 503, Some(Duration::from_secs(7)));
        assert!(busy.is_transient());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(7)));
        assert!(!status(404).is_transient());
        assert!(!status(403).is_transient());
        let unreachable = OriginError::Registry(OciError::Network {
            what: "manifest".into(),
            registry: "r".into(),
            reason: "connection refused".into(),
        });
        assert!(unreachable.is_transient());
        assert_eq!(unreachable.retry_after(), None);
    }

    #[test]
    fn the_message_is_the_wrapped_failure_word_for_word() {
        let e = status(410);
        assert_eq!(e.to_string(), "HTTP 410 Gone from http://h/manifest");
        assert_eq!(e.url(), Some("http://h/manifest"));
        let missing = OriginError::NotFound {
            url: "oci://r/app:tako-manifest.0123456789abcdef".into(),
        };
        assert_eq!(
            missing.to_string(),
            "oci://r/app:tako-manifest.0123456789abcdef not found (404 Not Found)"
        );
        assert_eq!(missing.kind(), Kind::NotFound);
        assert_eq!(
            OriginError::no_ranges("oci://r/app").to_string(),
            "oci://r/app answered a range request with an unusable partial response: this origin does not serve byte ranges"
        );
    }

    #[test]
    fn a_failure_read_back_from_a_body_keeps_its_kind() {
        let inner = std::io::Error::other(status(503));
        let back = OriginError::from_read_error("http://h/x", inner);
        assert_eq!(back.kind(), Kind::Transient);
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let back = OriginError::from_read_error("http://h/x", plain);
        assert_eq!(back.kind(), Kind::Transient);
        assert!(back.to_string().contains("http://h/x"), "{back}");
    }
}
