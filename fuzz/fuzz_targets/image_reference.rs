//! Container image references (`docker://`, Docker Hub short names, `oci://`, `oci:PATH`,
//! `tako:CONFIG`) never panic the parsers, and a reference reads back the same from the
//! canonical form it is shown in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::oci::reference::{ImageName, LayoutReference, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = Reference::parse(text) {
        let shown = reference.to_string();
        let again = Reference::parse(&shown).expect("the canonical form parses");
        assert_eq!(again.to_string(), shown);
        drop(reference.familiar());
    } else if let Err(e) = Reference::parse(text) {
        drop(e.to_string());
    }
    drop(LayoutReference::parse(text).map_err(|e| e.to_string()));
    drop(ImageName::parse(text).map_err(|e| e.to_string()));
});
