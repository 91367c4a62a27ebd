//! The `HeaderFile=` parser never panics, and what it accepts survives being written back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::header_file::parse_headers;

/// The `(name, value)` pairs of a header file, or the line and reason of the first bad line.
fn header_file(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, (usize, String)> {
    let headers = parse_headers(bytes)?;
    Ok(headers.into_iter().map(|h| (h.name, h.value)).collect())
}

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    match header_file(data) {
        // Errors name a line of the file, so that line must exist.
        Err((line, _)) => assert!(line >= 1 && line <= lines, "line {line} of {lines}"),
        Ok(headers) => {
            assert!(headers.len() <= lines);
            let mut written = Vec::new();
            for (name, value) in &headers {
                // What reaches the request: a lower-case token name, a trimmed value
                // without control characters other than tab.
                assert!(!name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()));
                assert!(!value.is_empty() && value.trim_ascii() == value.as_slice());
                assert!(!value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f));
                written.extend_from_slice(name.as_bytes());
                written.extend_from_slice(b": ");
                written.extend_from_slice(value);
                written.push(b'\n');
            }
            // `Name: value` lines are the canonical spelling: reading them back gives
            // the same headers, so no value was cut at a second ':' or similar.
            assert_eq!(header_file(&written), Ok(headers));
        }
    }
});
