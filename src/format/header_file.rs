//! Header files (`HeaderFile=`): extra request headers for a private origin, one
//! `Name: value` per line, as curl's `-H @file` reads them.
//!
//! A header file holds tokens, so nothing read from one is ever quoted in a message: errors
//! give the line and what is wrong, quoting at most a header name that is valid.

/// A problem in a file, by line number, with a reason that quotes nothing from it.
pub type LineError = (usize, String);

/// The longest header name the HTTP library takes; a longer one is refused here already.
const MAX_NAME: usize = (1 << 16) - 1;

/// Headers tako sets itself or that would change how a response is framed or cached;
/// setting one from a file would break downloads or the checks on them.
const RESERVED_HEADERS: &[&str] = &[
    "accept-encoding",
    "connection",
    "content-length",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One checked line of a header file. Debug shows the name only: the value is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderLine {
    /// Lower case, RFC 9110 token characters only.
    pub name: String,
    /// Trimmed, never empty; visible ASCII, spaces, tabs and bytes above 127 only, so it is
    /// always a valid header value.
    pub value: Vec<u8>,
}

impl std::fmt::Debug for HeaderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderLine")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One `Name: value` per line; blank lines and lines starting with `#` are skipped.
/// Errors are a line number and a reason that quotes nothing from the line but a valid
/// header name.
pub fn parse_headers(bytes: &[u8]) -> Result<Vec<HeaderLine>, LineError> {
    let mut headers = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err((
                n,
                format!(
                    "expected 'Name: value', found a line without ':' ({} bytes)",
                    line.len()
                ),
            ));
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        if name.is_empty() {
            return Err((n, "the header name before ':' is empty".to_owned()));
        }
        if name.last().is_some_and(u8::is_ascii_whitespace) {
            return Err((
                n,
                "a header name may not end with a space; write 'Name: value'".to_owned(),
            ));
        }
        if !name.iter().all(|&b| is_token_char(b)) {
            return Err((
                n,
                format!(
                    "the header name ({} bytes) holds a character not allowed in one (letters, digits and !#$%&'*+-.^_`|~ are)",
                    name.len()
                ),
            ));
        }
        if name.len() > MAX_NAME {
            return Err((n, "the header name is not a valid one".to_owned()));
        }
        // Token characters are ASCII, so this is the name as written, in lower case.
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err((
                n,
                format!(
                    "the {name} header cannot be set from a header file (tako sets it itself, or it would change how responses are framed)"
                ),
            ));
        }
        let value = value.trim_ascii();
        if value.is_empty() {
            return Err((n, format!("the {name} header has an empty value")));
        }
        // Visible ASCII, spaces, tabs and bytes above 127 (RFC 9110 field-value); any other
        // control character could split or garble the request.
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err((
                n,
                format!("the value of the {name} header holds a control character"),
            ));
        }
        headers.push(HeaderLine {
            name,
            value: value.to_vec(),
        });
    }
    Ok(headers)
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
        parse_headers(text.as_bytes()).map(|h| {
            h.into_iter()
                .map(|l| (l.name, String::from_utf8(l.value).unwrap()))
                .collect()
        })
    }

    #[test]
    fn header_files_hold_one_name_and_value_per_line() {
        let got = headers(
            "# a comment\n\nAuthorization: Bearer abc.def\r\nPRIVATE-TOKEN:xyz  \n  X-A: b: c\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("authorization".to_owned(), "Bearer abc.def".to_owned()),
                ("private-token".to_owned(), "xyz".to_owned()),
                ("x-a".to_owned(), "b: c".to_owned()),
            ]
        );
        let parsed = parse_headers(b"A: s3cret\n").unwrap();
        assert!(!format!("{parsed:?}").contains("s3cret"));
    }

    #[test]
    fn bad_header_lines_are_named_by_line_without_quoting_them() {
        let cases = [
            ("Bearer s3cret-token\n", 1, "without ':'"),
            ("A: b\n: s3cret-token\n", 2, "empty"),
            ("Bad Name: s3cret-token\n", 1, "not allowed"),
            ("Name : s3cret-token\n", 1, "space"),
            ("Host: s3cret-token\n", 1, "host header cannot be set"),
            ("Range: bytes=0-\n", 1, "range header"),
            ("Accept-Encoding: gzip\n", 1, "accept-encoding"),
            ("X-Token:   \n", 1, "empty value"),
            ("X-Token: s3cret\x01token\n", 1, "control character"),
        ];
        for (text, line, why) in cases {
            let (n, reason) = headers(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(reason.contains(why), "{text:?}: {reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
    }
}
