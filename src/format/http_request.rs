//! The head of an HTTP/1.1 request (RFC 9112): the request line and the header fields, as
//! `tako container-image-proxy` reads them from its client.
//!
//! The server reads bytes up to the blank line that ends the head ([`head_end`], at most
//! [`MAX_HEAD`] bytes) and hands them to [`parse_head`]. What the server does not support
//! is refused here rather than guessed at: a folded field line, a `Transfer-Encoding`
//! (only a `Content-Length` body is read), differing `Content-Length`s, an HTTP version
//! other than 1.0 and 1.1. Messages quote the client's bytes through [`untrusted`].

use super::text::untrusted;

/// The longest request head read: the API's requests are a line and a few fields.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields one request may carry.
pub const MAX_FIELDS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("the request line is malformed: {0}")]
    RequestLine(String),
    #[error("HTTP version {0} is not supported (only HTTP/1.0 and HTTP/1.1)")]
    Version(String),
    #[error("a header field is malformed: {0}")]
    Field(String),
    #[error("the request has more than {MAX_FIELDS} header fields")]
    TooManyFields,
    #[error("the request's Content-Length is not one decimal number: {0}")]
    ContentLength(String),
    #[error("the request has a Transfer-Encoding, which this server does not read")]
    TransferEncoding,
}

/// A request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, case-sensitive as HTTP says (`GET`, `POST`).
    pub method: String,
    /// The request target as sent (`/blobs/sha256:…`).
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The fields in order: the name as sent, the value without surrounding whitespace.
    pub fields: Vec<(String, String)>,
}

/// Where the head in `buf` ends: the index just past its blank line (`CRLF CRLF`), if the
/// buffer holds a whole head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|at| at.checked_add(4))
}

/// A token (RFC 9110 §5.6.2): what a method and a field name are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn quoted(bytes: &[u8]) -> String {
    untrusted(&String::from_utf8_lossy(bytes))
}

/// Parses a request head: the bytes up to and including its blank line (or without it).
pub fn parse_head(head: &[u8]) -> Result<RequestHead, RequestError> {
    if head.len() > MAX_HEAD {
        return Err(RequestError::TooLong);
    }
    let head = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    // Every line but the last (whose CR LF went with the blank line) ends with CR.
    let count = head.split(|&b| b == b'\n').count();
    let mut lines = head.split(|&b| b == b'\n').enumerate().map(|(i, line)| {
        if i + 1 == count {
            return Ok(line);
        }
        line.strip_suffix(b"\r")
            .ok_or_else(|| RequestError::Field(format!("a line ends without CR: {}", quoted(line))))
    });
    // A server should ignore an empty line before the request line (RFC 9112 §2.2).
    let mut request_line = lines.next().unwrap_or(Ok(b""))?;
    if request_line.is_empty() {
        request_line = lines.next().unwrap_or(Ok(b""))?;
    }
    let (method, target, minor) = parse_request_line(request_line)?;
    let mut fields = Vec::new();
    for line in lines {
        let line = line?;
        if fields.len() >= MAX_FIELDS {
            return Err(RequestError::TooManyFields);
        }
        fields.push(parse_field(line)?);
    }
    Ok(RequestHead {
        method,
        target,
        minor,
        fields,
    })
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, u8), RequestError> {
    let bad = || RequestError::RequestLine(quoted(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !is_token(method) {
        return Err(bad());
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        other if other.starts_with("HTTP/") => return Err(RequestError::Version(untrusted(other))),
        _ => return Err(bad()),
    };
    Ok((method.to_owned(), target.to_owned(), minor))
}

fn parse_field(line: &[u8]) -> Result<(String, String), RequestError> {
    let bad = || RequestError::Field(quoted(line));
    // A line that starts with whitespace continues the previous field (obsolete folding):
    // refused, as RFC 9112 §5.2 allows.
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err(bad());
    }
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let name = std::str::from_utf8(name).map_err(|_| bad())?;
    if !is_token(name) {
        return Err(bad());
    }
    // Visible ASCII, spaces and tabs: nothing this API reads needs more.
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(bad());
    }
    let value = std::str::from_utf8(value).map_err(|_| bad())?;
    Ok((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()))
}

impl RequestHead {
    /// The values of the field `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The length of the request's body: its `Content-Length` (every one the same number),
    /// 0 without one. A `Transfer-Encoding` is refused.
    pub fn body_length(&self) -> Result<u64, RequestError> {
        if self.values("Transfer-Encoding").next().is_some() {
            return Err(RequestError::TransferEncoding);
        }
        let mut length = None;
        for value in self.values("Content-Length") {
            // A list of the same number is allowed (RFC 9110 §8.6); anything else is not.
            for item in value.split(',').map(str::trim) {
                let n = (!item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| item.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| RequestError::ContentLength(untrusted(value)))?;
                if length.is_some_and(|l| l != n) {
                    return Err(RequestError::ContentLength(untrusted(value)));
                }
                length = Some(n);
            }
        }
        Ok(length.unwrap_or(0))
    }

    /// Whether the connection stays open after the response: HTTP/1.1 unless the client
    /// says `Connection: close`, HTTP/1.0 only if it says `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |option: &str| {
            self.values("Connection")
                .flat_map(|v| v.split(','))
                .any(|o| o.trim().eq_ignore_ascii_case(option))
        };
        if self.minor == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RequestHead, RequestError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn a_request_line_and_its_fields_are_read_as_sent() {
        let head =
            parse("GET /blobs/sha256:ab HTTP/1.1\r\nHost: x\r\nX-Any:  v a l \t\r\n\r\n").unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/blobs/sha256:ab");
        assert_eq!(head.minor, 1);
        assert_eq!(
            head.fields,
            [
                ("Host".to_owned(), "x".to_owned()),
                ("X-Any".to_owned(), "v a l".to_owned())
            ]
        );
        assert_eq!(head.values("x-any").collect::<Vec<_>>(), ["v a l"]);
        // One empty line before the request line is ignored.
        assert_eq!(parse("\r\nPOST /quit HTTP/1.0\r\n\r\n").unwrap().minor, 0);
    }

    #[test]
    fn the_end_of_a_head_is_found_only_once_it_is_all_there() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn malformed_request_lines_are_refused_and_quoted_safely() {
        for bad in [
            "GET /x\r\n\r\n",
            "GET  /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1 more\r\n\r\n",
            "G(T /x HTTP/1.1\r\n\r\n",
            "GET /x\x01 HTTP/1.1\r\n\r\n",
            "GET /x FTP/1.1\r\n\r\n",
            "",
        ] {
            assert!(
                matches!(parse(bad), Err(RequestError::RequestLine(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse("GET / HTTP/2.0\r\n\r\n"),
            Err(RequestError::Version(_))
        ));
        let e = parse("GET /\x1b[31m HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(!e.to_string().contains('\x1b'), "{e}");
    }

    #[test]
    fn folded_nameless_or_binary_fields_and_bare_line_feeds_are_refused() {
        for bad in [
            "GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
            "GET / HTTP/1.1\nA: b\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n"),
            Err(RequestError::Field(_))
        ));
    }

    #[test]
    fn a_head_too_long_or_with_too_many_fields_is_refused() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&long), Err(RequestError::TooLong));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_FIELDS + 1)
        );
        assert_eq!(parse(&many), Err(RequestError::TooManyFields));
    }

    #[test]
    fn the_body_length_is_the_one_content_length_and_never_a_transfer_encoding() {
        let length = |fields: &str| parse(&format!("POST /quit HTTP/1.1\r\n{fields}\r\n"));
        assert_eq!(length("").unwrap().body_length(), Ok(0));
        assert_eq!(
            length("Content-Length: 12\r\n").unwrap().body_length(),
            Ok(12)
        );
        assert_eq!(
            length("Content-Length: 5, 5\r\ncontent-length: 5\r\n")
                .unwrap()
                .body_length(),
            Ok(5)
        );
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +1\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: \r\n",
        ] {
            assert!(
                matches!(
                    length(bad).unwrap().body_length(),
                    Err(RequestError::ContentLength(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            length("Transfer-Encoding: chunked\r\n")
                .unwrap()
                .body_length(),
            Err(RequestError::TransferEncoding)
        );
    }

    #[test]
    fn http_1_1_keeps_the_connection_unless_told_and_http_1_0_only_when_told() {
        let head = |text: &str| parse(text).unwrap();
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    }
}
