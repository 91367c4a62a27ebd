//! The multipart/byteranges parser never panics, and what it accepts is exactly the ranges asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::byteranges::{boundary, parts};

fuzz_target!(|data: &[u8]| {
    // The first line is the Content-Type, the rest the body; the ranges asked for are
    // fixed, as a client's are.
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(content_type) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let body = &data[newline + 1..];
    let asked = [(0u64, 1u64), (5, 9), (100, 164)];
    match boundary(content_type) {
        Err(e) => drop(e.to_string()),
        Ok(boundary) => match parts(body, &boundary, &asked) {
            Err(e) => drop(e.to_string()),
            Ok(found) => {
                assert_eq!(found.len(), asked.len());
                for (bytes, (start, end)) in found.iter().zip(asked) {
                    assert_eq!(bytes.len() as u64, end - start);
                }
            }
        },
    }
});
