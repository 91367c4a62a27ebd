//! Response bodies as `Read` streams: the `--max-time` deadline, the low-speed check
//! (`--speed-limit`/`--speed-time`) and `--limit-rate` are enforced on every read, and a
//! failed read carries a [`TransportError`] naming the URL.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Timeout;

use crate::format::transport_config::TransportConfig;

use super::error::{NetworkError, TransportError, describe_io, describe_ureq, rate};
use super::{Answer, rate as limit, tls};

/// When the time allowed for one config's fetch runs out, and how long that was.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    pub(super) at: Instant,
    pub(super) limit: Duration,
}

impl Deadline {
    pub(super) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Reads all of `body`, failing with `TooLarge` as soon as more than `max` bytes arrive.
pub(super) fn read_capped(body: &mut Body, max: u64) -> Result<Vec<u8>, TransportError> {
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

/// A response body being streamed. Read errors are `io::Error`s whose message names the URL;
/// [`TransportError::from_read_error`] recovers the structured error.
pub struct Body {
    pub(super) url: String,
    pub(super) content_length: Option<u64>,
    pub(super) inner: Inner,
    pub(super) config: TransportConfig,
    pub(super) deadline: Option<Deadline>,
    pub(super) started: Instant,
    pub(super) received: u64,
    /// The current window of the low-speed check: when it began and what arrived since.
    window_start: Instant,
    window_bytes: u64,
    pub(super) answer: Answer,
    pub(super) etag: Option<String>,
    pub(super) last_modified: Option<String>,
    /// The boundary of a `multipart/byteranges` answer to several ranges.
    pub(super) boundary: Option<String>,
    /// `--limit-rate`, shared with every other body of the run.
    pub(super) limit: Option<Arc<limit::RateLimit>>,
}

pub(super) enum Inner {
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
    pub(super) fn new(
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
            boundary: None,
            limit: None,
        }
    }

    pub(super) fn limited(self, limit: Option<Arc<limit::RateLimit>>) -> Body {
        Body { limit, ..self }
    }

    /// The boundary of a 206 `multipart/byteranges` body, which answers several ranges
    /// asked for at once (`Conditions::ranges`); `None` for any other body.
    pub fn multipart_boundary(&self) -> Option<&str> {
        self.boundary.as_deref()
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

    /// Reads all of a small body such as a manifest, failing with `TooLarge` as soon as
    /// more than `max` bytes arrive; at most `max + 1` bytes are ever buffered.
    pub fn read_capped(&mut self, max: u64) -> Result<Vec<u8>, TransportError> {
        read_capped(self, max)
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
        // ureq enforces the deadline when it waits for the network, but not on bytes it or
        // the kernel already holds: every read checks it, for a local file as for HTTP.
        if let Some(deadline) = self.deadline
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
                self.received = self.received.saturating_add(n as u64);
                if let Some(limit) = &self.limit
                    && !limit.spend(n, self.deadline.map(|d| d.at))
                    && let Some(deadline) = self.deadline
                {
                    return Err(wrap(self.max_time_error(deadline)));
                }
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
