//! Image manifests, indexes and configs as registries serve them: the parsers never panic,
//! a Docker manifest converts to an OCI one that parses again, and platform choice over
//! any index either names an entry of it or lists what it has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::config::ImageConfig;
use tako_fuzz::format::oci::manifest::{self, ParsedManifest};
use tako_fuzz::format::oci::platform::{self, Platform};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the Content-Type the bytes came with.
    let (content_type, bytes) = match data.split_first() {
        Some((0, rest)) => (None, rest),
        Some((1, rest)) => (Some("application/vnd.oci.image.index.v1+json"), rest),
        Some((2, rest)) => (
            Some("application/vnd.docker.distribution.manifest.v2+json"),
            rest,
        ),
        Some((_, rest)) => (Some("application/json"), rest),
        None => return,
    };
    match manifest::parse(bytes, content_type) {
        Ok(ParsedManifest::Image { .. }) => {
            if let Ok(oci) = manifest::to_oci(bytes) {
                manifest::parse(&oci, None).expect("a converted manifest parses");
            }
        }
        Ok(ParsedManifest::Index { index, .. }) => {
            for wanted in [
                "linux/amd64",
                "linux/arm64",
                "linux/arm/v7",
                "windows/amd64",
            ] {
                let wanted = Platform::parse(wanted).expect("a valid platform");
                match platform::choose(&index, &wanted) {
                    Ok(entry) => assert!(index.manifests.iter().any(|e| std::ptr::eq(e, entry))),
                    Err(e) => drop(e.to_string()),
                }
            }
        }
        Err(e) => drop(e.to_string()),
    }
    if let Ok(config) = ImageConfig::parse(bytes) {
        drop(config.platform());
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        drop(Platform::parse(text).map_err(|e| e.to_string()));
    }
});
