//! Entry points for the fuzz targets in `fuzz/` into parsers that are not public API.
//!
//! Each function calls the parser tako uses, unchanged, with plain bytes and strings in
//! and out, so the targets need neither tako's private types nor its dependencies. Not
//! for other uses: nothing here is stable.

use std::path::Path;
use std::time::Duration;

use ureq::http::HeaderValue;

/// A line number (from 1) and a reason that quotes nothing from the file.
pub type LineError = (usize, String);
/// A header name and value.
pub type Header = (String, Vec<u8>);
/// A netrc login and its password.
pub type Login = (Vec<u8>, Vec<u8>);

/// A header file (`HeaderFile=`): the `(name, value)` pairs, or the line and reason of
/// the first bad line.
pub fn header_file(bytes: &[u8]) -> Result<Vec<Header>, LineError> {
    let headers = crate::net::private::parse_headers(bytes)?;
    Ok(headers
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect())
}

/// The netrc login and password for `host`, or the line and reason of the first error.
pub fn netrc(bytes: &[u8], host: &str) -> Result<Option<Login>, LineError> {
    use crate::net::private::{find_login, parse_netrc};
    let entries = parse_netrc(bytes)?;
    Ok(find_login(&entries, host).map(|l| (l.login, l.password)))
}

/// A `Content-Range` header value: `None` if it cannot be a header value at all.
pub fn content_range(value: &[u8]) -> Option<Result<(u64, u64), String>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    Some(crate::net::content_range(Some(&value)))
}

/// A `Retry-After` header value, as a wait from now.
pub fn retry_after(value: &[u8]) -> Option<Duration> {
    let value = HeaderValue::from_bytes(value).ok()?;
    crate::net::retry_after(Some(&value))
}

/// The `auths` entries of a registry auth file for `registry` and `repository`; never
/// runs a credential helper. The error is the message a user would see.
pub fn auth_file(
    bytes: &[u8],
    registry: &str,
    repository: &str,
) -> Result<Option<(String, String)>, String> {
    let file: crate::registry::auth::AuthFile =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let found =
        crate::registry::auth::from_entries(Path::new("auth.json"), &file, registry, repository)
            .map_err(|e| e.to_string())?;
    Ok(found.map(|c| (c.username, c.password)))
}
