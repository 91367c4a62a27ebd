//! Reaching a private origin: netrc credentials, extra headers from a file, a private CA
//! and a client certificate.
//!
//! Every file here holds a secret or decides whom to trust, so nothing read from one is
//! ever quoted in a message: errors name the file, the line and what is wrong, never the
//! text that was there (a mistyped line may well be a token). The files are read when a
//! config is fetched, not when it is parsed, so a rotated token or certificate is picked up
//! by the next run without touching the config.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::http::{HeaderName, HeaderValue};
use ureq::tls::{Certificate, ClientCert, PrivateKey};

use crate::format::text::untrusted;

/// The largest header file read (`HeaderFile=`): a few tokens, not a document.
pub const MAX_HEADER_FILE: u64 = 64 * 1024;
/// The largest netrc file read.
pub const MAX_NETRC: u64 = 1 << 20;
/// The largest PEM file read (a CA bundle of the whole web is about 200 KiB).
pub const MAX_PEM: u64 = 1 << 20;

/// The config keys for a private origin, as paths; read by [`super::Transport::for_origin`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// `HeaderFile=`: extra request headers, one `Name: value` per line.
    pub header_file: Option<PathBuf>,
    /// `CACertificate=`: PEM certificates that replace the system's trusted roots.
    pub ca_certificate: Option<PathBuf>,
    /// `ClientCertificate=` and `ClientKey=`: both or neither (the config checks that).
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Why a file for a private origin cannot be used. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("the {what} {path} is not a regular file (it is {kind})")]
    NotAFile {
        what: &'static str,
        path: String,
        kind: &'static str,
    },
    #[error("the {what} {path} is larger than {max} bytes")]
    TooLarge {
        what: &'static str,
        path: String,
        max: u64,
    },
    #[error("the header file {path} (HeaderFile=), line {line}: {reason}")]
    Header {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("the netrc file {path}, line {line}: {reason}")]
    Netrc {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("the {what} {path} {reason}")]
    Pem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "the client key {key} (ClientKey=) does not belong to the client certificate {cert} (ClientCertificate=)"
    )]
    KeyMismatch { cert: String, key: String },
}

const HEADER_FILE: &str = "header file (HeaderFile=)";
const NETRC: &str = "netrc file";
const CA_FILE: &str = "CA certificate file (CACertificate=)";
const CERT_FILE: &str = "client certificate file (ClientCertificate=)";
const KEY_FILE: &str = "client key file (ClientKey=)";

fn shown(path: &Path) -> String {
    untrusted(&path.display().to_string())
}

/// The bytes of a regular file of at most `max` bytes (a symlink to one is fine). A FIFO
/// or device is refused before it is read from, so it cannot hang or flood the run.
fn read_limited(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, AccessError> {
    let cannot = |e: io::Error| AccessError::Read {
        what,
        path: shown(path),
        reason: e.to_string(),
    };
    let check = |meta: &Metadata| -> Result<(), AccessError> {
        let kind = meta.file_type();
        let not = |kind| AccessError::NotAFile {
            what,
            path: shown(path),
            kind,
        };
        if kind.is_file() {
            if meta.len() > max {
                return Err(AccessError::TooLarge {
                    what,
                    path: shown(path),
                    max,
                });
            }
            Ok(())
        } else if kind.is_dir() {
            Err(not("a directory"))
        } else if kind.is_fifo() {
            Err(not("a FIFO"))
        } else if kind.is_socket() {
            Err(not("a socket"))
        } else if kind.is_char_device() || kind.is_block_device() {
            Err(not("a device"))
        } else {
            Err(not("not a file"))
        }
    };
    check(&fs::metadata(path).map_err(cannot)?)?;
    // O_NONBLOCK: a FIFO swapped in since the check opens at once and is refused below.
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    check(&file.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(AccessError::TooLarge {
            what,
            path: shown(path),
            max,
        });
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// Header files
// ---------------------------------------------------------------------------------------

/// Headers tako sets itself or that would change how a response is framed or cached;
/// setting one from a file would break downloads or the checks on them.
const RESERVED_HEADERS: &[&str] = &[
    "accept-encoding",
    "connection",
    "content-length",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Reads and checks a header file; the values are marked sensitive.
pub(super) fn read_header_file(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, AccessError> {
    let bytes = read_limited(path, MAX_HEADER_FILE, HEADER_FILE)?;
    parse_headers(&bytes).map_err(|(line, reason)| AccessError::Header {
        path: shown(path),
        line,
        reason,
    })
}

/// One `Name: value` per line; blank lines and lines starting with `#` are skipped.
/// Errors are a line number and a reason that quotes nothing from the line but a valid
/// header name.
pub(crate) fn parse_headers(bytes: &[u8]) -> Result<Vec<(HeaderName, HeaderValue)>, LineError> {
    let mut headers = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err((
                n,
                format!(
                    "expected 'Name: value', found a line without ':' ({} bytes)",
                    line.len()
                ),
            ));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() {
            return Err((n, "the header name before ':' is empty".to_owned()));
        }
        if name.last().is_some_and(u8::is_ascii_whitespace) {
            return Err((
                n,
                "a header name may not end with a space; write 'Name: value'".to_owned(),
            ));
        }
        if !name.iter().all(|&b| is_token_char(b)) {
            return Err((
                n,
                format!(
                    "the header name ({} bytes) holds a character not allowed in one (letters, digits and !#$%&'*+-.^_`|~ are)",
                    name.len()
                ),
            ));
        }
        let name = HeaderName::from_bytes(name)
            .map_err(|_| (n, "the header name is not a valid one".to_owned()))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err((
                n,
                format!(
                    "the {} header cannot be set from a header file (tako sets it itself, or it would change how responses are framed)",
                    name.as_str()
                ),
            ));
        }
        let value = value.trim_ascii();
        if value.is_empty() {
            return Err((
                n,
                format!("the {} header has an empty value", name.as_str()),
            ));
        }
        // Visible ASCII, spaces, tabs and bytes above 127 (RFC 9110 field-value); any other
        // control character could split or garble the request.
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err((
                n,
                format!(
                    "the value of the {} header holds a control character",
                    name.as_str()
                ),
            ));
        }
        let mut value = HeaderValue::from_bytes(value).map_err(|_| {
            (
                n,
                format!("the value of the {} header is not valid", name.as_str()),
            )
        })?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(headers)
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------
// netrc
// ---------------------------------------------------------------------------------------

/// A login and password from netrc for one host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NetrcLogin {
    pub login: Vec<u8>,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for NetrcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetrcLogin")
            .field("login", &String::from_utf8_lossy(&self.login))
            .field("password", &"***")
            .finish()
    }
}

/// The netrc files to look at, in order, each with whether it must exist: `$NETRC` alone
/// if set (the operator named it, so a missing file is an error), else
/// `$CREDENTIALS_DIRECTORY/netrc` (systemd's `LoadCredential=`) and then `~/.netrc`, of
/// which the first that exists is used.
pub(super) fn netrc_candidates(var: impl Fn(&str) -> Option<OsString>) -> Vec<(PathBuf, bool)> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(path) = set("NETRC") {
        return vec![(PathBuf::from(path), true)];
    }
    let mut out = Vec::new();
    if let Some(dir) = set("CREDENTIALS_DIRECTORY") {
        out.push((Path::new(&dir).join("netrc"), false));
    }
    if let Some(home) = set("HOME") {
        out.push((Path::new(&home).join(".netrc"), false));
    }
    out
}

/// The login for `host` from the first netrc file of `candidates` that exists.
pub(super) fn netrc_login(
    host: &str,
    candidates: &[(PathBuf, bool)],
) -> Result<Option<NetrcLogin>, AccessError> {
    for (path, required) in candidates {
        match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => continue,
            _ => {}
        }
        let bytes = read_limited(path, MAX_NETRC, NETRC)?;
        let entries = parse_netrc(&bytes).map_err(|(line, reason)| AccessError::Netrc {
            path: shown(path),
            line,
            reason,
        })?;
        return Ok(find_login(&entries, host));
    }
    Ok(None)
}

/// One `machine` (or, with `None`, the `default`) entry.
#[derive(Debug, Default)]
pub(crate) struct NetrcEntry {
    machine: Option<String>,
    login: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
}

/// The entry for `host`, else the `default` one, as curl picks it. An entry with neither a
/// login nor a password gives nothing.
pub(crate) fn find_login(entries: &[NetrcEntry], host: &str) -> Option<NetrcLogin> {
    let host = super::normalize_host(host);
    let entry = entries
        .iter()
        .find(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| super::normalize_host(m) == host)
        })
        .or_else(|| entries.iter().find(|e| e.machine.is_none()))?;
    if entry.login.is_none() && entry.password.is_none() {
        return None;
    }
    Some(NetrcLogin {
        login: entry.login.clone().unwrap_or_default(),
        password: entry.password.clone().unwrap_or_default(),
    })
}

/// A problem in a file, by line number, with a reason that quotes nothing from it.
pub(crate) type LineError = (usize, String);

/// Splits netrc text into words with the line each starts on.
struct Words<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    /// Whether nothing but blanks came before `pos` on its line.
    at_line_start: bool,
}

impl<'a> Words<'a> {
    fn new(bytes: &'a [u8]) -> Words<'a> {
        Words {
            bytes,
            pos: 0,
            line: 1,
            at_line_start: true,
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.at_line_start = true;
                }
                b' ' | b'\t' | b'\r' | b'\x0c' | b'\x0b' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn skip_to_line_end(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// The next word and its line; `#` as the first word of a line starts a comment. A
    /// word in double quotes may hold blanks, and `\"`, `\\`, `\n`, `\r`, `\t` escapes.
    fn next(&mut self) -> Result<Option<(Vec<u8>, usize)>, LineError> {
        loop {
            self.skip_blanks();
            match self.bytes.get(self.pos) {
                None => return Ok(None),
                Some(b'#') if self.at_line_start => self.skip_to_line_end(),
                Some(_) => break,
            }
        }
        self.at_line_start = false;
        let line = self.line;
        let mut word = Vec::new();
        if self.bytes[self.pos] == b'"' {
            self.pos += 1;
            loop {
                match self.bytes.get(self.pos) {
                    None => return Err((line, "a quoted word has no closing '\"'".to_owned())),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(Some((word, line)));
                    }
                    Some(b'\\') => {
                        let escaped = match self.bytes.get(self.pos + 1) {
                            None => {
                                return Err((line, "a quoted word has no closing '\"'".to_owned()));
                            }
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b't') => b'\t',
                            Some(&other) => other,
                        };
                        if escaped == b'\n' && self.bytes.get(self.pos + 1) == Some(&b'\n') {
                            self.line += 1;
                        }
                        word.push(escaped);
                        self.pos += 2;
                    }
                    Some(&b) => {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        word.push(b);
                        self.pos += 1;
                    }
                }
            }
        }
        while let Some(&b) = self.bytes.get(self.pos) {
            if b.is_ascii_whitespace() {
                break;
            }
            word.push(b);
            self.pos += 1;
        }
        Ok(Some((word, line)))
    }

    /// Skips a `macdef` body: everything up to the next empty line.
    fn skip_macro(&mut self) {
        let mut previous_newline = false;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            if b == b'\n' {
                self.line += 1;
                if previous_newline {
                    break;
                }
                previous_newline = true;
            } else if b != b'\r' {
                previous_newline = false;
            }
        }
        self.at_line_start = true;
    }
}

pub(crate) fn parse_netrc(bytes: &[u8]) -> Result<Vec<NetrcEntry>, LineError> {
    let mut words = Words::new(bytes);
    let mut entries: Vec<NetrcEntry> = Vec::new();
    while let Some((word, line)) = words.next()? {
        let mut value = |what: &str| -> Result<Vec<u8>, LineError> {
            match words.next()? {
                Some((value, _)) => Ok(value),
                None => Err((line, format!("'{what}' is not followed by a value"))),
            }
        };
        match word.as_slice() {
            b"machine" => {
                let name = value("machine")?;
                let name = String::from_utf8(name)
                    .map_err(|_| (line, "a machine name is not UTF-8".to_owned()))?;
                entries.push(NetrcEntry {
                    machine: Some(name),
                    ..NetrcEntry::default()
                });
            }
            b"default" => entries.push(NetrcEntry::default()),
            b"login" | b"password" => {
                let key = if word == b"login" {
                    "login"
                } else {
                    "password"
                };
                let v = value(key)?;
                let Some(entry) = entries.last_mut() else {
                    return Err((
                        line,
                        format!("'{key}' comes before any 'machine' or 'default'"),
                    ));
                };
                if key == "login" {
                    entry.login = Some(v);
                } else {
                    entry.password = Some(v);
                }
            }
            b"account" => {
                value("account")?;
            }
            b"macdef" => {
                value("macdef")?;
                words.skip_macro();
            }
            other => {
                // Not quoted: a misplaced word may be a password.
                return Err((
                    line,
                    format!(
                        "unexpected word ({} bytes); expected machine, default, login, password, account or macdef",
                        other.len()
                    ),
                ));
            }
        }
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// The TLS settings of a config, read and checked.
pub(super) struct TlsFiles {
    /// Replaces the system's roots when set.
    pub roots: Option<Vec<Certificate<'static>>>,
    pub client: Option<ClientCert>,
}

/// Reads `CACertificate=`, `ClientCertificate=` and `ClientKey=`; `None` when the config
/// sets none of them. Everything ureq would later reject (or panic over, as it does for a
/// key that does not match its certificate) is refused here with a message.
pub(super) fn load_tls(access: &Access) -> Result<Option<TlsFiles>, AccessError> {
    let roots = access
        .ca_certificate
        .as_deref()
        .map(load_roots)
        .transpose()?;
    let client = match (&access.client_certificate, &access.client_key) {
        (Some(cert), Some(key)) => Some(load_client(cert, key)?),
        _ => None,
    };
    if roots.is_none() && client.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsFiles { roots, client }))
}

fn pem_error(what: &'static str, path: &Path, reason: impl Into<String>) -> AccessError {
    AccessError::Pem {
        what,
        path: shown(path),
        reason: reason.into(),
    }
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, AccessError> {
    let bytes = read_limited(path, MAX_PEM, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| pem_error(what, path, "is not valid PEM"))?;
    if certs.is_empty() {
        return Err(pem_error(
            what,
            path,
            "holds no certificate (expected PEM blocks starting with -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<Vec<Certificate<'static>>, AccessError> {
    let certs = certificates(CA_FILE, path)?;
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|_| {
            pem_error(
                CA_FILE,
                path,
                format!(
                    "holds a certificate that cannot be used as a trusted root (number {} in the file): it is malformed or of an unsupported kind",
                    i + 1
                ),
            )
        })?;
    }
    Ok(certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect())
}

fn load_client(cert_path: &Path, key_path: &Path) -> Result<ClientCert, AccessError> {
    let chain = certificates(CERT_FILE, cert_path)?;
    let key_bytes = read_limited(key_path, MAX_PEM, KEY_FILE)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| {
        pem_error(
            KEY_FILE,
            key_path,
            "holds no unencrypted private key in PEM (expected -----BEGIN PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)",
        )
    })?;
    // The same check ureq makes when it first connects, where a failure would panic.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let checked = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| {
            pem_error(
                KEY_FILE,
                key_path,
                "cannot be used: no TLS version is available",
            )
        })?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain.clone(), key.clone_key());
    match checked {
        Ok(_) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(AccessError::KeyMismatch {
                cert: shown(cert_path),
                key: shown(key_path),
            });
        }
        Err(_) => {
            return Err(pem_error(
                KEY_FILE,
                key_path,
                "holds a private key tako cannot use (RSA, ECDSA P-256 or P-384, or Ed25519 are supported)",
            ));
        }
    }
    let chain: Vec<Certificate<'static>> = chain
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    // ureq picks the first key of the file as rustls did above.
    let key = PrivateKey::from_pem(&key_bytes)
        .map_err(|_| pem_error(KEY_FILE, key_path, "holds a private key tako cannot use"))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
        parse_headers(text.as_bytes()).map(|h| {
            h.into_iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect()
        })
    }

    #[test]
    fn header_files_hold_one_name_and_value_per_line() {
        let got = headers(
            "# a comment\n\nAuthorization: Bearer abc.def\r\nPRIVATE-TOKEN:xyz  \n  X-A: b: c\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("authorization".to_owned(), "Bearer abc.def".to_owned()),
                ("private-token".to_owned(), "xyz".to_owned()),
                ("x-a".to_owned(), "b: c".to_owned()),
            ]
        );
        let parsed = parse_headers(b"A: b\n").unwrap();
        assert!(parsed[0].1.is_sensitive());
    }

    #[test]
    fn bad_header_lines_are_named_by_line_without_quoting_them() {
        let cases = [
            ("Bearer s3cret-token\n", 1, "without ':'"),
            ("A: b\n: s3cret-token\n", 2, "empty"),
            ("Bad Name: s3cret-token\n", 1, "not allowed"),
            ("Name : s3cret-token\n", 1, "space"),
            ("Host: s3cret-token\n", 1, "host header cannot be set"),
            ("Range: bytes=0-\n", 1, "range header"),
            ("Accept-Encoding: gzip\n", 1, "accept-encoding"),
            ("X-Token:   \n", 1, "empty value"),
            ("X-Token: s3cret\x01token\n", 1, "control character"),
        ];
        for (text, line, why) in cases {
            let (n, reason) = headers(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(reason.contains(why), "{text:?}: {reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
    }

    fn netrc(text: &str, host: &str) -> Option<(String, String)> {
        let entries = parse_netrc(text.as_bytes()).unwrap();
        find_login(&entries, host).map(|l| {
            (
                String::from_utf8(l.login).unwrap(),
                String::from_utf8(l.password).unwrap(),
            )
        })
    }

    #[test]
    fn netrc_picks_the_machine_then_the_default() {
        let text = "machine a.example login alice password pa\n\
                    # comment line\n\
                    machine b.example\n  login bob\n  password \"p b\\\"q\"\n\
                    macdef init\ncd /x\nmachine evil password no\n\n\
                    default login anon password guest\n";
        assert_eq!(
            netrc(text, "a.example"),
            Some(("alice".into(), "pa".into()))
        );
        assert_eq!(
            netrc(text, "B.Example."),
            Some(("bob".into(), "p b\"q".into()))
        );
        assert_eq!(netrc(text, "evil"), Some(("anon".into(), "guest".into())));
        assert_eq!(netrc("machine a password x", "b"), None);
        assert_eq!(netrc("machine a account z", "a"), None);
        assert_eq!(
            netrc("machine ::1 login v6 password p", "[::1]"),
            Some(("v6".into(), "p".into()))
        );
    }

    #[test]
    fn netrc_errors_give_the_line_and_never_the_words() {
        for (text, line) in [
            ("machine a\nlogin u\npasswd s3cret\n", 3),
            ("login u password s3cret\n", 1),
            ("machine a password \"s3cret\n", 1),
            ("machine a\n\npassword", 3),
        ] {
            let (n, reason) = match parse_netrc(text.as_bytes()) {
                Err(e) => e,
                Ok(_) => panic!("{text:?} parsed"),
            };
            assert_eq!(n, line, "{text:?}: {reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
    }

    #[test]
    fn netrc_is_taken_from_netrc_then_the_credentials_directory_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            netrc_candidates(env(&[("NETRC", "/n"), ("HOME", "/h")])),
            [(PathBuf::from("/n"), true)]
        );
        assert_eq!(
            netrc_candidates(env(&[("CREDENTIALS_DIRECTORY", "/c"), ("HOME", "/h")])),
            [
                (PathBuf::from("/c/netrc"), false),
                (PathBuf::from("/h/.netrc"), false)
            ]
        );
        assert_eq!(
            netrc_candidates(env(&[("NETRC", ""), ("HOME", "/h")])),
            [(PathBuf::from("/h/.netrc"), false)]
        );
        assert!(netrc_candidates(env(&[])).is_empty());
    }
}
