//! The request-head parser of `tako container-image-proxy` never panics, and what it
//! accepts reads back the same from its plain spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;

use tako_fuzz::format::http_request::{self, RequestHead};

fn spelled(head: &RequestHead) -> String {
    let mut text = format!("{} {} HTTP/1.{}\r\n", head.method, head.target, head.minor);
    for (name, value) in &head.fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

fuzz_target!(|data: &[u8]| {
    let _ = http_request::head_end(data);
    match http_request::parse_head(data) {
        // Error messages are shown to users; formatting them must not panic.
        Err(e) => drop(e.to_string()),
        Ok(head) => {
            let _ = head.body_length().map_err(|e| e.to_string());
            let _ = head.keep_alive();
            // Spelled with `: ` a head can grow past the limit the input kept to.
            let plain = spelled(&head);
            if plain.len() <= http_request::MAX_HEAD {
                assert_eq!(http_request::parse_head(plain.as_bytes()), Ok(head));
            }
        }
    }
});
