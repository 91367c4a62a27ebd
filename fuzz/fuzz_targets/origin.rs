//! Origin URL checking never panics and is idempotent; hiding passwords is idempotent too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::origin_url::{parse_origin, redact, show_url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = redact(text);
    assert_eq!(redact(&redacted), redacted);
    drop(show_url(text));
    match parse_origin(text) {
        // Error messages are shown to users; formatting them must not panic.
        Err(e) => drop(e.to_string()),
        Ok(origin) => {
            // The URL tako prints is itself a valid origin, the same one: a config copied
            // from `tako status` output means what the original did.
            let again = parse_origin(&origin.url)
                .unwrap_or_else(|e| panic!("{:?} -> {:?}: {e}", text, origin.url));
            assert_eq!(again.url, origin.url);
        }
    }
});
