//! policy.json files never panic the parser, and whatever parses gives any image reference
//! (and any image layout directory) a scope and a verdict without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::policy::{Policy, verdict};
use tako_fuzz::format::oci::reference::Reference;

fuzz_target!(|data: &[u8]| {
    // The first line is an image reference; the rest is the file.
    let (image, file) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let policy = match Policy::parse(file) {
        Ok(policy) => policy,
        Err(e) => {
            drop(e.to_string());
            return;
        }
    };
    let Ok(image) = std::str::from_utf8(image) else {
        return;
    };
    // The same line as an image layout's directory, for the `oci` scopes.
    let (scope, requirements) = policy.for_layout(image, image.rsplit_once(':').map(|(_, t)| t));
    drop(scope.to_string());
    let _ = verdict(requirements);
    if let Ok(reference) = Reference::parse(image) {
        let (scope, requirements) = policy.for_image(&reference);
        drop(scope.to_string());
        let _ = verdict(requirements);
    }
});
