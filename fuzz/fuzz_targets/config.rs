//! Both config parsers must never panic on any UTF-8 text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Error messages are shown to users; formatting them must not panic.
    if let Err(e) = tako_fuzz::format::config::parse("fuzz.tako", text) {
        drop(e.to_string());
    }
    if let Err(e) = tako_fuzz::format::config::parse_toml("fuzz.toml", text) {
        drop(e.to_string());
    }
});
