//! `Manifest::parse` must never panic, and whatever it accepts must be the
//! canonical form: re-signing the parsed manifest with the test secret key
//! reproduces the input byte for byte (Ed25519 signatures are deterministic).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::key::{PublicKey, SecretKey};
use tako_fuzz::format::manifest::Manifest;

/// The test key pair of SPEC §11 (shared/vectors/test-key.{public,secret}).
const TEST_PUBLIC: &str = "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=";
const TEST_SECRET: &str = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";

static PUBLIC: LazyLock<PublicKey> =
    LazyLock::new(|| PublicKey::parse(TEST_PUBLIC).expect("test public key"));
static SECRET: LazyLock<SecretKey> =
    LazyLock::new(|| SecretKey::parse(TEST_SECRET).expect("test secret key"));

fuzz_target!(|data: &[u8]| {
    match Manifest::parse(data, &PUBLIC) {
        Ok(manifest) => {
            let again = manifest.to_signed_bytes(&SECRET);
            assert!(
                again == data,
                "accepted manifest is not canonical:\n input: {:?}\nresigned: {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&again),
            );
        }
        // The message is shown to users; formatting it must not panic either.
        Err(e) => drop(e.to_string()),
    }
});
