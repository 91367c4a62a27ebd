//! The HTTP response fields tako reads: `Content-Range`, `Retry-After`, the validators
//! (`ETag`, `Last-Modified`), the gist of an error page, and which statuses are worth
//! another try.
//!
//! Every function takes the raw bytes of one field value (whatever a server sent) and
//! never quotes more of them than [`super::text::untrusted`] lets through.

use std::time::{Duration, SystemTime};

use super::text::{untrusted, untrusted_max};

/// The value as text, if it is visible ASCII, spaces and tabs only: what HTTP libraries
/// hand out as a header's text. Anything else counts as no usable value.
fn field_text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// A header value fit to keep and send back: visible ASCII and spaces, at most 1 KiB. An
/// entity tag or date is short; anything else is not worth remembering.
pub fn validator(value: Option<&[u8]>) -> Option<String> {
    let text = field_text(value?)?.trim();
    let fits = !text.is_empty()
        && text.len() <= 1024
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    fits.then(|| text.to_owned())
}

/// Whether a `Last-Modified` date may serve as a validator for the next poll: only when the
/// response's `Date` is at least one second later (RFC 9110 §8.8.2.2). Dates have
/// one-second resolution: a file published twice within the second it was served in would
/// otherwise look unchanged to every later `If-Modified-Since`, and a host would miss the
/// second release for good. Without a `Date`, nothing shows the date is safe.
pub fn last_modified_is_strong(last_modified: &str, date: Option<&[u8]>) -> bool {
    let Ok(modified) = httpdate::parse_http_date(last_modified) else {
        return false;
    };
    let Some(date) = date
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return false;
    };
    date.duration_since(modified)
        .is_ok_and(|d| d >= Duration::from_secs(1))
}

/// `Retry-After`: a number of seconds, or an HTTP date (RFC 9110 §10.2.3), as a wait from
/// `now`; a date in the past is no wait.
pub fn retry_after(value: Option<&[u8]>, now: SystemTime) -> Option<Duration> {
    let text = field_text(value?)?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The first and last byte positions of a `Content-Range: bytes FIRST-LAST/LENGTH` header,
/// or what is wrong with it.
pub fn content_range(value: Option<&[u8]>) -> Result<(u64, u64), String> {
    let Some(value) = value else {
        return Err("it has no Content-Range header".to_owned());
    };
    let text = field_text(value).unwrap_or("");
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
            untrusted(&String::from_utf8_lossy(value))
        )
    })
}

/// Whether a status says "not now" rather than "no": 408, 429 and 5xx.
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

/// What the start of an error page (`head`) says beyond `canonical`, the status's own
/// reason: the page's title, or the first line of a plain-text page; escaped and cut, as
/// any text from the network. `None` when it says nothing more.
pub fn page_says(head: &[u8], canonical: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let lower = text.to_ascii_lowercase();
    let said = match lower.find("<title>") {
        Some(start) => {
            let start = start + "<title>".len();
            let end = lower
                .get(start..)
                .and_then(|rest| rest.find("</title>"))
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
    Some(untrusted_max(said, 120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_modified_date_is_a_validator_only_a_second_before_the_response() {
        let at = |s: &str| format!("Tue, 24 Nov 2026 10:00:{s} GMT");
        assert!(last_modified_is_strong(
            &at("00"),
            Some(at("01").as_bytes())
        ));
        assert!(last_modified_is_strong(
            &at("00"),
            Some(at("59").as_bytes())
        ));
        assert!(!last_modified_is_strong(
            &at("00"),
            Some(at("00").as_bytes())
        ));
        assert!(!last_modified_is_strong(
            &at("05"),
            Some(at("00").as_bytes())
        ));
        assert!(!last_modified_is_strong(&at("00"), None));
        assert!(!last_modified_is_strong(
            "yesterday",
            Some(at("01").as_bytes())
        ));
    }

    #[test]
    fn a_content_range_gives_its_first_and_last_byte_or_says_what_is_wrong() {
        let parse = |text: &str| content_range(Some(text.as_bytes()));
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
        let hostile = content_range(Some(b"bytes 0-1\x1b[2J\xff")).unwrap_err();
        assert!(hostile.contains("\\u{1b}[2J\u{fffd}"), "{hostile}");
        assert_eq!(
            content_range(None),
            Err("it has no Content-Range header".to_owned())
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_counted_from_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let wait = |text: &str| retry_after(Some(text.as_bytes()), now);
        assert_eq!(wait(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            wait("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(wait("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("soon"), None);
        assert_eq!(wait("-5"), None);
        assert_eq!(retry_after(Some(b"12\x00"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn only_short_printable_validators_are_kept() {
        assert_eq!(validator(Some(b" \"abc\" ")).as_deref(), Some("\"abc\""));
        assert_eq!(
            validator(Some(b"Sun, 06 Nov 1994 08:49:37 GMT")).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(validator(Some(b"W/\"a\tb\"")), None);
        assert_eq!(validator(Some("\"é\"".as_bytes())), None);
        assert_eq!(validator(Some(&[b'a'; 1025])), None);
        assert_eq!(validator(Some(b"   ")), None);
        assert_eq!(validator(None), None);
    }

    #[test]
    fn throttling_timeouts_and_server_errors_are_transient_and_refusals_are_not() {
        for status in [408, 429, 500, 503, 599] {
            assert!(status_is_transient(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 416, 304, 600] {
            assert!(!status_is_transient(status), "{status}");
        }
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
}
