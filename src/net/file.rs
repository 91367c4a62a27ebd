//! `file://` origins: a local file opened as a [`Body`], a range served by seeking.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use crate::format::transport_config::TransportConfig;

use super::body::{Body, Deadline, Inner};
use super::error::TransportError;
use super::{Answer, rate as limit};

/// The local path named by a `file:` URL: `file:///path` or `file://localhost/path`,
/// percent-decoded. A `?` or `#` ends the path, as in any URL, so such characters in a file
/// name must be written `%3F` and `%23`.
fn file_url_path(url: &url::Url, shown: &str) -> Result<PathBuf, TransportError> {
    url.to_file_path().map_err(|()| TransportError::InvalidUrl {
        url: shown.to_owned(),
        reason: "a file:// URL must name an absolute local path, not a host".to_owned(),
    })
}

pub(super) fn open_file(
    url: &url::Url,
    shown: String,
    deadline: Option<Deadline>,
    limit: Option<Arc<limit::RateLimit>>,
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
    // The file itself must be a regular file of the origin, not a symlink: a `manifest` or
    // `index/HEX` linked to /etc/shadow must not be read by root's timer. O_NONBLOCK: a
    // FIFO planted there opens at once instead of waiting for a writer, and is refused
    // below (reading it would hang the run past --max-time).
    let opened = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(file_error(io::Error::other(
                "it is a symbolic link, which a file:// origin does not follow",
            )));
        }
        Err(e) => return Err(file_error(e)),
    };
    let meta = file.metadata().map_err(file_error)?;
    if !meta.is_file() {
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(file_error(io::Error::other(format!("it is {what}"))));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
