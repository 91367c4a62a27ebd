//! Several byte ranges in one request: the `Range: bytes=a-b,c-d,…` value, and the
//! `multipart/byteranges` body of the 206 that answers it (RFC 9110 §14.6, RFC 2046 §5.1).
//!
//! A delta asks for many ranges at once, so that its bytes track the changed chunks
//! without a request per range. The body is parsed strictly and in bounded steps: each
//! part's head (delimiter and header lines) is at most [`MAX_HEAD`] bytes and is parsed
//! by [`parse_head`] from the bytes at hand; its body is exactly as long as its
//! `Content-Range` says, which must name the range asked for, in the order asked. A part
//! body is never scanned for the boundary, so image bytes that happen to contain it
//! cannot cut a part short. Anything else is an error, and the delta falls back.

use super::http_fields::content_range;
use super::text::untrusted;

/// The most bytes of a part's head: its delimiter line and header lines. nginx and
/// Apache send about 100.
pub const MAX_HEAD: usize = 4096;

/// The most bytes after the closing delimiter (the epilogue) that are read and ignored.
pub const MAX_EPILOGUE: usize = 4096;

/// The most ranges asked for in one request: Apache's default `MaxRanges`, beyond which
/// it sends the whole file.
pub const MAX_RANGES_PER_REQUEST: usize = 200;

/// The longest `Range` value sent: header lines of 8 KiB are the common server limit
/// (nginx's `large_client_header_buffers`, Apache's `LimitRequestFieldSize`).
pub const MAX_RANGE_VALUE: usize = 4000;

/// Why a multi-range answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByterangesError {
    #[error("its Content-Type '{0}' is not multipart/byteranges with a boundary")]
    NotMultipart(String),
    #[error("its multipart boundary '{0}' is not 1 to 70 of the characters RFC 2046 allows")]
    BadBoundary(String),
    #[error("part {part} of the multipart body does not begin with its boundary")]
    NoDelimiter { part: usize },
    #[error("part {part} of the multipart body has a header line that is not 'Name: value'")]
    BadHeaderLine { part: usize },
    #[error("part {part} of the multipart body has a head longer than {MAX_HEAD} bytes")]
    HeadTooLong { part: usize },
    #[error("part {part} of the multipart body has {count} Content-Range headers instead of one")]
    ContentRangeCount { part: usize, count: usize },
    #[error("part {part} of the multipart body: {reason}")]
    BadContentRange { part: usize, reason: String },
    #[error("part {part} of the multipart body is bytes {first}-{last}, {asked}")]
    WrongRange {
        part: usize,
        first: u64,
        last: u64,
        asked: String,
    },
    #[error("the multipart body ends after {got} of the {asked} ranges asked for")]
    TooFewParts { got: usize, asked: usize },
    #[error("the multipart body is cut short in part {part}")]
    CutShort { part: usize },
    #[error("the multipart body goes on for more than {MAX_EPILOGUE} bytes after its end")]
    TrailingBytes,
}

/// The `Range` value asking for `ranges` (each `start..end`, end exclusive, not empty).
pub fn range_value(ranges: &[(u64, u64)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(start, end)| format!("{start}-{}", end.saturating_sub(1)))
        .collect();
    format!("bytes={}", parts.join(","))
}

/// How many of the leading `ranges` one request asks for: at most
/// [`MAX_RANGES_PER_REQUEST`], in a value of at most [`MAX_RANGE_VALUE`] bytes; at least
/// one if there is one.
pub fn per_request(ranges: &[(u64, u64)]) -> usize {
    let mut length = "bytes=".len();
    let mut count = 0;
    for &(start, end) in ranges.iter().take(MAX_RANGES_PER_REQUEST) {
        let one = format!("{start}-{},", end.saturating_sub(1)).len();
        if count > 0 && length + one > MAX_RANGE_VALUE {
            break;
        }
        length += one;
        count += 1;
    }
    count
}

/// The boundary of a `Content-Type: multipart/byteranges; boundary=…` value.
pub fn boundary(content_type: &str) -> Result<String, ByterangesError> {
    let not_multipart = || ByterangesError::NotMultipart(untrusted(content_type));
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/byteranges") {
        return Err(not_multipart());
    }
    let mut found = None;
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("boundary") {
            continue;
        }
        if found.is_some() {
            return Err(not_multipart());
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"').ok_or_else(not_multipart)?,
            None => value,
        };
        found = Some(value);
    }
    let value = found.ok_or_else(not_multipart)?;
    // RFC 2046 §5.1.1: 1 to 70 characters, a space never last.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b);
    if value.is_empty() || value.len() > 70 || value.ends_with(' ') || !value.bytes().all(allowed) {
        return Err(ByterangesError::BadBoundary(untrusted(value)));
    }
    Ok(value.to_owned())
}

/// What a part's head announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A part with bytes `first..=last` of the file, which follow the head.
    Part { first: u64, last: u64 },
    /// The closing delimiter: no part follows.
    End,
}

/// Parses the head of part `part` (counted from 0) at the start of `buf`: the delimiter
/// (for part 0 with an optional CRLF before it; after a part's body, the CRLF that ends
/// the body belongs to it) and, for a part, its header lines up to the empty line.
/// `Ok(None)`: `buf` holds a correct beginning, more bytes are needed. `Ok(Some((n,
/// head)))`: the head is the first `n` bytes.
pub fn parse_head(
    buf: &[u8],
    boundary: &str,
    part: usize,
) -> Result<Option<(usize, Head)>, ByterangesError> {
    let crlf_first = part > 0 || buf.first() == Some(&b'\r');
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    if crlf_first {
        delimiter.extend_from_slice(b"\r\n");
    }
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let seen = buf.len().min(delimiter.len());
    if buf.get(..seen) != delimiter.get(..seen) {
        return Err(ByterangesError::NoDelimiter { part });
    }
    let mut at = delimiter.len();
    let Some(next) = buf.get(at..at + 2) else {
        return Ok(None);
    };
    if next == b"--" {
        return Ok(Some((at + 2, Head::End)));
    }
    // Transport padding, then the end of the delimiter line.
    while let Some(b' ' | b'\t') = buf.get(at) {
        at += 1;
        if at > MAX_HEAD {
            return Err(ByterangesError::HeadTooLong { part });
        }
    }
    match buf.get(at..at + 2) {
        None => return incomplete(buf, part),
        Some(b"\r\n") => at += 2,
        Some(_) => return Err(ByterangesError::NoDelimiter { part }),
    }
    let mut range = None;
    let mut count = 0;
    loop {
        let rest = buf.get(at..).unwrap_or(&[]);
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return incomplete(buf, part);
        };
        let line = &rest[..eol];
        at += eol + 2;
        if at > MAX_HEAD {
            return Err(ByterangesError::HeadTooLong { part });
        }
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(ByterangesError::BadHeaderLine { part });
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        let text = |b: &u8| *b == b'\t' || (0x20..0x7f).contains(b);
        if name.is_empty() || !name.iter().all(token) || !value.iter().all(text) {
            return Err(ByterangesError::BadHeaderLine { part });
        }
        if name.eq_ignore_ascii_case(b"content-range") {
            count += 1;
            range = Some(value);
        }
    }
    if count != 1 {
        return Err(ByterangesError::ContentRangeCount { part, count });
    }
    let (first, last) =
        content_range(range).map_err(|reason| ByterangesError::BadContentRange { part, reason })?;
    Ok(Some((at, Head::Part { first, last })))
}

/// More bytes are needed, unless `buf` already holds as much as a head may have.
fn incomplete(buf: &[u8], part: usize) -> Result<Option<(usize, Head)>, ByterangesError> {
    if buf.len() >= MAX_HEAD {
        Err(ByterangesError::HeadTooLong { part })
    } else {
        Ok(None)
    }
}

/// The length of part `part` announced as `head`, which must be the range `asked` (its
/// `start..end`); `None` asked means no more parts were asked for.
pub fn expect(
    head: Head,
    part: usize,
    asked: Option<(u64, u64)>,
    asked_count: usize,
) -> Result<Option<u64>, ByterangesError> {
    match (head, asked) {
        (Head::End, None) => Ok(None),
        (Head::End, Some(_)) => Err(ByterangesError::TooFewParts {
            got: part,
            asked: asked_count,
        }),
        (Head::Part { first, last }, asked) => {
            let wanted =
                asked.filter(|&(start, end)| first == start && last.checked_add(1) == Some(end));
            match wanted {
                Some((start, end)) => Ok(Some(end - start)),
                None => Err(ByterangesError::WrongRange {
                    part,
                    first,
                    last,
                    asked: match asked {
                        Some((start, end)) => {
                            format!("not bytes {start}-{} as asked", end.saturating_sub(1))
                        }
                        None => format!("beyond the {asked_count} ranges asked for"),
                    },
                }),
            }
        }
    }
}

/// The bytes of each range `asked` in a whole multipart `body` with `boundary`: what a
/// streaming reader yields, for tests and fuzzing.
#[allow(dead_code)] // The fuzz target and the tests read whole bodies; tako streams them.
pub fn parts<'a>(
    body: &'a [u8],
    boundary: &str,
    asked: &[(u64, u64)],
) -> Result<Vec<&'a [u8]>, ByterangesError> {
    let mut found = Vec::new();
    let mut rest = body;
    for part in 0.. {
        let window = &rest[..rest.len().min(MAX_HEAD)];
        let Some((used, head)) = parse_head(window, boundary, part)? else {
            return Err(ByterangesError::CutShort { part });
        };
        rest = &rest[used..];
        let Some(length) = expect(head, part, asked.get(part).copied(), asked.len())? else {
            break;
        };
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if rest.len() < length {
            return Err(ByterangesError::CutShort { part });
        }
        let (bytes, after) = rest.split_at(length);
        found.push(bytes);
        rest = after;
    }
    if rest.len() > MAX_EPILOGUE {
        return Err(ByterangesError::TrailingBytes);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as nginx writes it, for `ranges` of `file`.
    fn nginx_body(file: &[u8], boundary: &str, ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut body = Vec::new();
        for &(start, end) in ranges {
            body.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
                    end - 1,
                    file.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(&file[start as usize..end as usize]);
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    }

    fn file() -> Vec<u8> {
        // Holds the boundary itself, which must not end a part early.
        let mut file: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        file[100..126].copy_from_slice(b"\r\n--00000000000000000001--");
        file
    }

    const B: &str = "00000000000000000001";

    #[test]
    fn the_parts_of_an_nginx_answer_are_the_ranges_asked_for_even_when_they_hold_the_boundary() {
        let file = file();
        let asked = [(0, 10), (90, 130), (999, 1000)];
        let body = nginx_body(&file, B, &asked);
        let got = parts(&body, B, &asked).unwrap();
        assert_eq!(got, [&file[0..10], &file[90..130], &file[999..1000]]);
    }

    #[test]
    fn a_body_without_the_crlf_before_the_first_delimiter_is_read_as_well() {
        let file = file();
        let asked = [(5, 6), (7, 9)];
        let body = nginx_body(&file, B, &asked);
        assert_eq!(
            parts(&body[2..], B, &asked).unwrap(),
            [&file[5..6], &file[7..9]]
        );
    }

    #[test]
    fn a_part_other_than_the_one_asked_for_is_refused() {
        let file = file();
        let body = nginx_body(&file, B, &[(0, 10), (20, 30)]);
        let err = parts(&body, B, &[(0, 10), (20, 31)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "part 1 of the multipart body is bytes 20-29, not bytes 20-30 as asked"
        );
        let err = parts(&body, B, &[(0, 10)]).unwrap_err();
        assert!(err.to_string().contains("beyond the 1 ranges"), "{err}");
        let err = parts(&body, B, &[(0, 10), (20, 30), (40, 50)]).unwrap_err();
        assert_eq!(err, ByterangesError::TooFewParts { got: 2, asked: 3 });
    }

    #[test]
    fn a_cut_or_garbled_body_is_refused() {
        let file = file();
        let asked = [(0, 10), (20, 30)];
        let body = nginx_body(&file, B, &asked);
        for cut in [0, 5, 30, 80, body.len() - 30, body.len() - 5] {
            assert!(parts(&body[..cut], B, &asked).is_err(), "cut at {cut}");
        }
        let garbled = String::from_utf8_lossy(&body).replace("Content-Range", "Content-Rang");
        assert_eq!(
            parts(garbled.as_bytes(), B, &asked).unwrap_err(),
            ByterangesError::ContentRangeCount { part: 0, count: 0 }
        );
        let mut other = body.clone();
        other[5] = b'9';
        assert_eq!(
            parts(&other, B, &asked).unwrap_err(),
            ByterangesError::NoDelimiter { part: 0 }
        );
        let lf_only =
            String::from_utf8_lossy(&body).replacen("\r\nContent-Type", "\nContent-Type", 1);
        assert!(parts(lf_only.as_bytes(), B, &asked).is_err());
    }

    #[test]
    fn a_head_longer_than_the_bound_is_refused_without_waiting_for_its_end() {
        let mut body = format!("--{B}\r\nX-Padding: ").into_bytes();
        body.resize(MAX_HEAD + 10, b'a');
        assert_eq!(
            parse_head(&body, B, 0).unwrap_err(),
            ByterangesError::HeadTooLong { part: 0 }
        );
        assert_eq!(parse_head(&body[..100], B, 0).unwrap(), None);
    }

    #[test]
    fn more_than_a_short_epilogue_is_refused() {
        let file = file();
        let asked = [(0, 10), (20, 30)];
        let mut body = nginx_body(&file, B, &asked);
        body.extend_from_slice(&[b'x'; MAX_EPILOGUE]);
        assert_eq!(
            parts(&body, B, &asked).unwrap_err(),
            ByterangesError::TrailingBytes
        );
    }

    #[test]
    fn the_boundary_comes_from_the_content_type_token_or_quoted() {
        assert_eq!(
            boundary("multipart/byteranges; boundary=00000000000000000001").unwrap(),
            B
        );
        assert_eq!(
            boundary("Multipart/ByteRanges;boundary=\"a b:c\"").unwrap(),
            "a b:c"
        );
        for bad in [
            "application/octet-stream",
            "multipart/byteranges",
            "multipart/byteranges; boundary=",
            "multipart/byteranges; boundary=\"abc",
            "multipart/byteranges; boundary=a; boundary=b",
            "multipart/mixed; boundary=abc",
        ] {
            assert!(boundary(bad).is_err(), "{bad}");
        }
        assert!(
            boundary(&format!(
                "multipart/byteranges; boundary={}",
                "a".repeat(71)
            ))
            .is_err()
        );
        assert!(boundary("multipart/byteranges; boundary=a\u{1b}b").is_err());
    }

    #[test]
    fn a_request_asks_for_as_many_ranges_as_fit_in_one_range_value() {
        assert_eq!(range_value(&[(0, 10), (20, 21)]), "bytes=0-9,20-20");
        let small: Vec<(u64, u64)> = (0..500).map(|i| (i * 10, i * 10 + 5)).collect();
        assert_eq!(per_request(&small), MAX_RANGES_PER_REQUEST);
        let large: Vec<(u64, u64)> = (0..500u64)
            .map(|i| (u64::MAX / 2 + i * 10, u64::MAX / 2 + i * 10 + 5))
            .collect();
        let n = per_request(&large);
        assert!(n < MAX_RANGES_PER_REQUEST && range_value(&large[..n]).len() <= MAX_RANGE_VALUE);
        assert!(range_value(&large[..n + 1]).len() > MAX_RANGE_VALUE);
        assert_eq!(per_request(&[]), 0);
    }
}
