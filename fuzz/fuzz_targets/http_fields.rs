//! The parsers of `Content-Range`, `Retry-After` and `--limit-rate` never panic, and their
//! results read back the same from their plain spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

use tako_fuzz::format::http_fields;

/// Whether `bytes` can be a header value at all (what an HTTP library hands on).
fn is_header_value(bytes: &[u8]) -> bool {
    !bytes.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fn content_range(value: &[u8]) -> Option<Result<(u64, u64), String>> {
    is_header_value(value).then(|| http_fields::content_range(Some(value)))
}

fn retry_after(value: &[u8]) -> Option<Duration> {
    if !is_header_value(value) {
        return None;
    }
    http_fields::retry_after(Some(value), SystemTime::now())
}
use tako_fuzz::format::rate::parse_rate;

fuzz_target!(|data: &[u8]| {
    if let Some(range) = content_range(data) {
        match range {
            Err(e) => drop(e),
            Ok((first, last)) => {
                assert!(first <= last);
                let plain = format!("bytes {first}-{last}/*");
                assert_eq!(content_range(plain.as_bytes()), Some(Ok((first, last))));
            }
        }
    }
    let wait = retry_after(data);
    // A number of seconds is taken as it is; dates in the past give no wait.
    if let Some(seconds) = std::str::from_utf8(data)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        // Header values read as text are visible ASCII, spaces and tabs only.
        && data.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        assert_eq!(wait, Some(std::time::Duration::from_secs(seconds)));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rate) = parse_rate(text) {
        assert!(rate >= 1);
        assert_eq!(parse_rate(&rate.to_string()), Ok(rate));
        if rate % 1024 == 0 {
            assert_eq!(parse_rate(&format!("{}k", rate / 1024)), Ok(rate));
        }
    }
});
