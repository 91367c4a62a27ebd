//! Making untrusted text safe to print: control characters escaped, length bounded.
//!
//! Anything that came from the network or from a file someone else may have
//! written (headers, URLs, an unsigned manifest's header, version strings,
//! config values) goes through [`untrusted`] before it reaches a message, so a
//! hostile origin cannot move the cursor, forge log lines or flood the journal.

/// The most characters of one untrusted value shown in a message.
pub const MAX_SHOWN: usize = 200;

/// The most a parse error quotes of a line that should have been a header.
pub const MAX_HEADER_SHOWN: usize = 40;

/// What an error may quote of the first line of a file that does not start with the
/// header it should: at most [`MAX_HEADER_SHOWN`] characters, and only up to the first
/// character no header could hold (letters, digits, spaces and `.-_<>!/` can be; an HTML
/// error page still shows as `<!DOCTYPE html>`). A file that is no manifest at all, such
/// as a secret linked in its place, is never echoed into a log beyond a word.
pub fn header_prefix(line: &[u8]) -> String {
    let fits = |b: &u8| b.is_ascii_alphanumeric() || b" .-_<>!/".contains(b);
    let kept: Vec<u8> = line
        .iter()
        .take_while(|b| fits(b))
        .take(MAX_HEADER_SHOWN)
        .copied()
        .collect();
    let mut shown = String::from_utf8_lossy(&kept).into_owned();
    if kept.len() < line.len() {
        shown.push('…');
    }
    shown
}

/// `text` with control characters (and other non-printing ones) escaped as
/// Rust does (`\n`, `\u{1b}`), cut after [`MAX_SHOWN`] characters with `…`.
pub fn untrusted(text: &str) -> String {
    untrusted_max(text, MAX_SHOWN)
}

/// As [`untrusted`], for bytes that may not be UTF-8: invalid sequences are
/// shown as `\xNN`.
pub fn untrusted_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == MAX_SHOWN {
                out.push('…');
                return out;
            }
            push_char(&mut out, c);
            shown += 1;
        }
        for b in chunk.invalid() {
            if shown == MAX_SHOWN {
                out.push('…');
                return out;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
    }
    out
}

/// As [`untrusted`] with a limit of `max` characters.
pub fn untrusted_max(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for (shown, c) in text.chars().enumerate() {
        if shown == max {
            out.push('…');
            break;
        }
        push_char(&mut out, c);
    }
    out
}

fn push_char(out: &mut String, c: char) {
    if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}') {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_shown_as_it_is() {
        assert_eq!(untrusted("1.0.0-beta"), "1.0.0-beta");
        assert_eq!(untrusted("é/ü"), "é/ü");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(untrusted("a\nb\r\x1b[2J"), "a\\nb\\r\\u{1b}[2J");
        assert_eq!(untrusted("\u{202e}evil"), "\\u{202e}evil");
    }

    #[test]
    fn long_values_are_cut() {
        let shown = untrusted(&"x".repeat(10_000));
        assert_eq!(shown.chars().count(), MAX_SHOWN + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(untrusted_max("abcdef", 3), "abc…");
        assert_eq!(untrusted_max("abc", 3), "abc");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex_escapes() {
        assert_eq!(untrusted_bytes(b"ok\xff\n"), "ok\\xff\\n");
        assert_eq!(untrusted_bytes(&[b'a'; 500]).chars().count(), MAX_SHOWN + 1);
    }
}
