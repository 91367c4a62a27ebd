//! Downloading one image into the store: from the first place of the origin that serves it
//! and whose bytes verify, resuming from `store/<hex>.partial`, retrying transient failures.
//!
//! Per place, a 404, a 410, a network failure or bytes that fail the size or digest check
//! move on to the next place. A network failure keeps the bytes received as the partial,
//! which the next try resumes with `Range` and `If-Range` (see `partial`); a failed check
//! deletes them. When every place has been asked, the places that failed transiently are
//! asked again after a backoff, `retries` times. The image counts as withdrawn only if
//! every place answered 410.

use std::time::Duration;

use super::retry::{RetryPolicy, describe_wait};
use crate::destination::partial::Partial;
use crate::format::manifest::Entry;
use crate::format::text::untrusted;
use crate::fs::{Dir, IoError};
use crate::origin::{Answer, Body, Kind, Origin, OriginError, Resume};
use crate::stream::hashing::{self, CopyError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("image {url} is longer than the {expected} bytes signed; download stopped")]
    TooLong { url: String, expected: u64 },
    #[error("image {url} is shorter than signed: expected {expected} bytes, received {received}")]
    TooShort {
        url: String,
        expected: u64,
        received: u64,
    },
    #[error("image {url} has the wrong SHA-256: expected {expected}, received {received}")]
    WrongDigest {
        url: String,
        expected: String,
        received: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "none of the {count} origins could provide version {version} (each is named in a warning above); the last one: {last}"
    )]
    NoneUsable {
        count: usize,
        version: String,
        last: Box<ImageError>,
    },
}

impl ImageError {
    fn is_transient(&self) -> bool {
        matches!(self, ImageError::Origin(e) if e.is_transient())
    }

    /// A failure of this host rather than of the place asked: no other place can help.
    fn is_local(&self) -> bool {
        matches!(self, ImageError::Io(_) | ImageError::Write { .. })
    }

    /// The URL of a 410 Gone: the publisher withdrew the image there.
    fn gone_url(&self) -> Option<&str> {
        match self {
            ImageError::Origin(e) if e.kind() == Kind::Gone => e.url(),
            _ => None,
        }
    }
}

/// How a download ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Downloaded {
    /// `store/<hex>` is in place and verified.
    Installed,
    /// Every place answered 410 Gone: the publisher withdrew the image.
    Withdrawn { url: String },
}

/// How to report along the way.
pub struct Say<'a> {
    /// Worth a line in the log: a skipped mirror, a retry.
    pub warn: &'a dyn Fn(&str),
    /// For a person watching: a download starts or resumes.
    pub progress: &'a dyn Fn(&str),
    /// A progress bar for the whole image, when a person watches a terminal.
    pub bar: Option<&'a dyn Fn() -> indicatif::ProgressBar>,
}

/// Downloads the image of `entry` into `store`, under the destination's lock.
pub fn download(
    origin: &dyn Origin,
    store: &Dir,
    entry: &Entry,
    retry: RetryPolicy,
    say: &Say<'_>,
) -> Result<Downloaded, ImageError> {
    let places = origin.places();
    let several = places.len() > 1;
    let version = untrusted(entry.version.as_str());
    let mut pending = places.clone();
    let mut gone = 0;
    let mut gone_url = String::new();
    let mut last = None;
    for round in 0..=retry.retries {
        let mut again = Vec::new();
        let mut asked: Option<Duration> = None;
        for place in pending {
            match attempt(place, store, entry, say) {
                Ok(()) => return Ok(Downloaded::Installed),
                Err(e) if several && e.gone_url().is_some() => {
                    let url = e.gone_url().unwrap_or_default();
                    (say.warn)(&format!(
                        "origin {} has withdrawn version {version} (410 Gone from {url}); trying the next origin",
                        place.describe()
                    ));
                    gone += 1;
                    gone_url = url.to_owned();
                    last = Some(e);
                }
                Err(e) if e.is_local() => return Err(e),
                Err(e) => {
                    if let Some(url) = e.gone_url() {
                        gone += 1;
                        gone_url = url.to_owned();
                    }
                    if e.is_transient() {
                        again.push(place);
                        if let ImageError::Origin(o) = &e {
                            asked = asked.max(o.retry_after());
                        }
                    }
                    if several {
                        (say.warn)(&format!("skipping origin {}: {e}", place.describe()));
                    }
                    last = Some(e);
                }
            }
        }
        if gone == places.len() {
            return Ok(Downloaded::Withdrawn { url: gone_url });
        }
        if again.is_empty() || round == retry.retries {
            break;
        }
        let wait = retry.delay(round, asked);
        let what = match (&last, several) {
            (Some(e), false) => e.to_string(),
            _ => format!("{} of the origins failed for now", again.len()),
        };
        (say.warn)(&format!(
            "{what}; retrying in {} (retry {} of {})",
            describe_wait(wait),
            round + 1,
            retry.retries
        ));
        std::thread::sleep(wait);
        pending = again;
    }
    let Some(last) = last else {
        return Err(ImageError::Origin(OriginError::no_place()));
    };
    Err(if several {
        ImageError::NoneUsable {
            count: places.len(),
            version,
            last: Box::new(last),
        }
    } else {
        last
    })
}

/// The `If-Range` value for bytes of this response: a strong entity tag, else the date.
/// A weak tag (`W/"…"`) may not be used in `If-Range` (RFC 9110 §13.1.5).
fn if_range_of(body: &Body) -> Option<&str> {
    body.etag()
        .filter(|tag| !tag.starts_with("W/"))
        .or(body.last_modified())
}

/// One try at one place.
fn attempt(
    place: &dyn Origin,
    store: &Dir,
    entry: &Entry,
    say: &Say<'_>,
) -> Result<(), ImageError> {
    let mut partial = Partial::open(store, &entry.digest_hex())?;
    let result = attempt_into(place, &mut partial, entry, say);
    if result.is_err() {
        partial.remove_if_empty()?;
    }
    result
}

fn attempt_into(
    place: &dyn Origin,
    partial: &mut Partial<'_>,
    entry: &Entry,
    say: &Say<'_>,
) -> Result<(), ImageError> {
    let hex = entry.digest_hex();
    if partial.len() >= entry.size && !partial.is_empty() {
        // All there (a run stopped between the last byte and the rename), or too long.
        let prefix = partial.prefix()?;
        if partial.len() == entry.size && check(&prefix.finish(), entry, "").is_ok() {
            partial.commit()?;
            return Ok(());
        }
        partial.restart(None)?;
    }
    let resume = (!partial.is_empty()).then(|| Resume {
        offset: partial.len(),
        if_range: partial.validator().map(str::to_owned),
    });
    let mut body = match place.open_image(&hex, resume.as_ref()) {
        Err(e) if e.kind() == Kind::Unsatisfiable && resume.is_some() => {
            // The server has fewer bytes than we kept: they are not of its file.
            partial.restart(None)?;
            place.open_image(&hex, None)?
        }
        other => other?,
    };
    let mut url = body.url().to_owned();
    match body.answer() {
        Answer::Partial { start } if Some(start) == resume.as_ref().map(|r| r.offset) => {
            (say.progress)(&format!(
                "resuming {} at byte {start} of {} from {url}",
                untrusted(entry.version.as_str()),
                entry.size
            ));
        }
        Answer::Partial { start } => {
            // Only a range that starts where the kept bytes end fits; anything else is
            // dropped, and the whole file asked for again.
            (say.warn)(&format!(
                "{url} sent bytes from {start} on instead of from {}; downloading all of it",
                resume.as_ref().map_or(0, |r| r.offset)
            ));
            partial.restart(None)?;
            body = place.open_image(&hex, None)?;
            url = body.url().to_owned();
            partial.restart(if_range_of(&body))?;
            announce(say, entry, &url);
        }
        Answer::Whole | Answer::NotModified => {
            // A 200 to a range request: the file changed (If-Range) or the server does not
            // do ranges. Either way the kept bytes go, and these are the whole file.
            partial.restart(if_range_of(&body))?;
            announce(say, entry, &url);
        }
    }
    let prefix = partial.prefix()?;
    let limit = Some(entry.size);
    let copied = match say.bar {
        Some(bar) => {
            let bar = bar();
            bar.set_position(prefix.size());
            let mut watched = bar.wrap_read(&mut body);
            hashing::append_and_hash_to_file(prefix, &mut watched, partial.file(), limit)
        }
        None => hashing::append_and_hash_to_file(prefix, &mut body, partial.file(), limit),
    };
    let summary = match copied {
        Ok(summary) => summary,
        Err(CopyError::Read(e)) => {
            // A network failure: keep what arrived for the next try.
            let error = OriginError::from_read_error(&url, e);
            partial.keep()?;
            return Err(error.into());
        }
        Err(CopyError::TooLong { limit }) => {
            partial.discard()?;
            return Err(ImageError::TooLong {
                url,
                expected: limit,
            });
        }
        Err(CopyError::Write(source)) => {
            return Err(ImageError::Write {
                path: partial.path().to_path_buf(),
                source,
            });
        }
    };
    if let Err(e) = check(&summary, entry, &url) {
        partial.discard()?;
        return Err(e);
    }
    partial.commit()?;
    Ok(())
}

fn announce(say: &Say<'_>, entry: &Entry, url: &str) {
    (say.progress)(&format!(
        "downloading {} ({} bytes) from {url}",
        untrusted(entry.version.as_str()),
        entry.size
    ));
}

/// The size and digest check of a complete download.
fn check(summary: &hashing::Summary, entry: &Entry, url: &str) -> Result<(), ImageError> {
    if summary.size != entry.size {
        return Err(ImageError::TooShort {
            url: url.to_owned(),
            expected: entry.size,
            received: summary.size,
        });
    }
    if summary.digest != entry.digest {
        return Err(ImageError::WrongDigest {
            url: url.to_owned(),
            expected: entry.digest_hex(),
            received: hex::encode(summary.digest),
        });
    }
    Ok(())
}
