//! Sigstore inputs never panic tako: PEM public keys, simple-signing payloads and the
//! identities they name; a payload that parses names an identity that reads back the same
//! from how it is shown, and checking a signature layer over any bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::digest::Digest;
use tako_fuzz::format::oci::policy::SignedIdentity;
use tako_fuzz::format::oci::reference::Reference;
use tako_fuzz::format::oci::sigstore::{
    PublicKey, SIMPLE_SIGNING, SignatureLayer, SignedReference, check, identity_matches,
};

fuzz_target!(|data: &[u8]| {
    let key = PublicKey::from_pem(data);
    let _ = PublicKey::from_spki(data);
    if let Ok(payload) = tako_fuzz::format::oci::sigstore::Payload::parse(data) {
        let shown = payload.docker_reference.to_string();
        // Shown escaped: only plain names are compared back.
        if shown.bytes().all(|b| b.is_ascii_graphic()) {
            let again = SignedReference::parse(&shown).expect("a shown identity parses");
            assert_eq!(again, payload.docker_reference);
        }
        let image = Reference::parse("r.example/team/app:1").unwrap();
        for rule in [
            SignedIdentity::MatchExact,
            SignedIdentity::MatchRepoDigestOrExact,
            SignedIdentity::MatchRepository,
            SignedIdentity::RemapIdentity {
                prefix: "r.example".into(),
                signed_prefix: "s.example".into(),
            },
        ] {
            let _ = identity_matches(&rule, &image, &payload.docker_reference);
        }
    }
    // The first line as an identity and a signature, the rest as a payload.
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(text) = std::str::from_utf8(head) {
        let _ = SignedReference::parse(text);
        if let Ok(key) = &key {
            let layer = SignatureLayer {
                media_type: SIMPLE_SIGNING,
                signature: Some(text),
                payload: rest,
            };
            let image = Reference::parse("r.example/team/app:1").unwrap();
            let _ = check(
                &layer,
                std::slice::from_ref(key),
                &Digest::of(rest),
                &image,
                &SignedIdentity::MatchRepoDigestOrExact,
            );
        }
    }
});
