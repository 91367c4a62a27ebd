//! The bytes of an image as an origin serves them: a stream, where they come from, and
//! what the origin said about them.
//!
//! The origin's own type rather than the transport's, so that the engine above the seam
//! reads a web server's, a registry's and a test's images the same way, and a fake origin
//! can serve bytes from memory. A read error is an `io::Error` (that is what `Read`
//! allows); [`super::OriginError::from_read_error`] recovers what failed.

use std::io::{self, Read};

use crate::net;

pub use crate::net::Answer;

/// An image, or a range of it, being streamed from an origin.
pub struct Body {
    url: String,
    answer: Answer,
    etag: Option<String>,
    last_modified: Option<String>,
    reader: Box<dyn Read>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("url", &self.url)
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// `reader`'s bytes, from `url` (fit to print), answered as `answer`, with no validators.
    pub fn new(url: impl Into<String>, answer: Answer, reader: Box<dyn Read>) -> Body {
        Body {
            url: url.into(),
            answer,
            etag: None,
            last_modified: None,
            reader,
        }
    }

    /// The same body, with the entity tag and date the origin sent for its file.
    pub fn with_validators(self, etag: Option<String>, last_modified: Option<String>) -> Body {
        Body {
            etag,
            last_modified,
            ..self
        }
    }

    /// Whether this is the whole file, a range of it, or nothing because nothing changed.
    pub fn answer(&self) -> Answer {
        self.answer
    }

    /// The origin's entity tag for the file, if it sent a usable one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The origin's `Last-Modified` date for the file, as sent, if usable.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }

    /// Where the bytes come from (after any redirects), fit to print.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl From<net::Body> for Body {
    fn from(body: net::Body) -> Body {
        let url = body.url().to_owned();
        let answer = body.answer();
        let etag = body.etag().map(str::to_owned);
        let last_modified = body.last_modified().map(str::to_owned);
        Body::new(url, answer, Box::new(body)).with_validators(etag, last_modified)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}
