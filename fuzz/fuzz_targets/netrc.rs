//! The netrc parser never panics, and the login it finds survives being written back quoted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::netrc::{find_login, parse_netrc};

/// The login and password for `host`, or the line and reason of the first error.
fn netrc(bytes: &[u8], host: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>, (usize, String)> {
    let entries = parse_netrc(bytes)?;
    Ok(find_login(&entries, host).map(|l| (l.login, l.password)))
}

/// `word` as a netrc quoted word: only `"` and `\` need escaping, newlines may stay raw.
fn quoted(word: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in word {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

fuzz_target!(|data: &[u8]| {
    // The first line is the host to look up, the rest the file.
    let (host, file) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"example.com"[..], data),
    };
    let Ok(host) = std::str::from_utf8(host) else {
        return;
    };
    let lines = file.split(|&b| b == b'\n').count();
    match netrc(file, host) {
        Err((line, _)) => assert!(line >= 1 && line <= lines, "line {line} of {lines}"),
        Ok(None) => {}
        Ok(Some((login, password))) => {
            let mut written = b"machine ".to_vec();
            written.extend(quoted(host.as_bytes()));
            written.extend_from_slice(b" login ");
            written.extend(quoted(&login));
            written.extend_from_slice(b"\npassword ");
            written.extend(quoted(&password));
            written.push(b'\n');
            assert_eq!(netrc(&written, host), Ok(Some((login, password))));
        }
    }
});
