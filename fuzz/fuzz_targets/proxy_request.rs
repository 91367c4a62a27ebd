//! Requests of skopeo's image-proxy protocol never panic the parser, and its error names
//! what is wrong without quoting more than a short escaped prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::proxy::Request;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(request) => drop(format!("{request:?}")),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.len() < 2048,
                "an error quoted too much: {} bytes",
                message.len()
            );
        }
    }
});
