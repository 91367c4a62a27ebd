//! Registry references, version tags and OCI image manifests: no panics, and each has a
//! canonical form that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::registry_url::RegistryUrl as Reference;
use tako_fuzz::format::tako_artifact::{ImageManifest, MANIFEST_TAG, version_tag};

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(data) {
        // What tako writes back from a manifest it read is stable after one pass.
        let once = serde_json::to_vec(&manifest).expect("serialises");
        let reread: ImageManifest = serde_json::from_slice(&once).expect("reads back");
        assert_eq!(serde_json::to_vec(&reread).expect("serialises"), once);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Reference::parse(text) {
        Err(e) => drop(e.to_string()),
        Ok(reference) => {
            let shown = reference.to_string();
            assert_eq!(Reference::parse(&shown).ok(), Some(reference));
        }
    }
    let tag = version_tag(text, HEX);
    // Either the version itself, when it is a tag that cannot collide with tako's own,
    // or the digest tag; always a valid OCI tag.
    assert!(tag == text || tag == format!("sha256-{HEX}"));
    if tag == text {
        assert!(text != MANIFEST_TAG && !text.starts_with("sha256-"));
    }
    let b = tag.as_bytes();
    assert!(!b.is_empty() && b.len() <= 128);
    assert!(b[0].is_ascii_alphanumeric() || b[0] == b'_');
    assert!(
        b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    );
});
