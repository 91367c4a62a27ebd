//! registries.conf files never panic the parser, and whatever parses resolves any image
//! reference to endpoints (or an error) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::registries_conf::RegistriesConf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is an image reference; the rest is the file.
    let (image, file) = text.split_once('\n').unwrap_or((text, ""));
    let mut conf = RegistriesConf::default();
    if let Err(e) = conf.merge("fuzz.conf", file) {
        drop(e.to_string());
        return;
    }
    match conf.reference(image) {
        Ok(reference) => match conf.endpoints(&reference) {
            Ok(endpoints) => assert!(!endpoints.is_empty()),
            Err(e) => drop(e.to_string()),
        },
        Err(e) => drop(e.to_string()),
    }
});
