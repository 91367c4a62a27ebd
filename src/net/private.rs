//! Reaching a private origin: netrc credentials, extra headers from a file, a private CA
//! and a client certificate.
//!
//! Every file here holds a secret or decides whom to trust, so nothing read from one is
//! ever quoted in a message: errors name the file, the line and what is wrong, never the
//! text that was there (a mistyped line may well be a token). The files are read when a
//! config is fetched, not when it is parsed, so a rotated token or certificate is picked up
//! by the next run without touching the config.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::http::{HeaderName, HeaderValue};
use ureq::tls::{Certificate, ClientCert, PrivateKey};

use crate::format::config::Access;
use crate::format::header_file::parse_headers;
use crate::format::netrc::{NetrcLogin, find_login, parse_netrc};
use crate::format::text::untrusted;
use crate::fs::bounded::{ReadError, read_bounded};

/// The largest header file read (`HeaderFile=`): a few tokens, not a document.
pub const MAX_HEADER_FILE: u64 = 64 * 1024;
/// The largest netrc file read.
pub const MAX_NETRC: u64 = 1 << 20;
/// The largest PEM file read (a CA bundle of the whole web is about 200 KiB).
pub const MAX_PEM: u64 = 1 << 20;

/// Why a file for a private origin cannot be used. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file cannot be read: missing, unreadable, not a regular file, or too large.
    #[error(transparent)]
    File(#[from] ReadError),
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

// ---------------------------------------------------------------------------------------
// Header files
// ---------------------------------------------------------------------------------------

/// Reads and checks a header file; the values are marked sensitive.
pub(super) fn read_header_file(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, AccessError> {
    let bytes = read_bounded(path, MAX_HEADER_FILE, HEADER_FILE)?;
    let bad = |line, reason| AccessError::Header {
        path: shown(path),
        line,
        reason,
    };
    let mut headers = Vec::new();
    for (i, line) in parse_headers(&bytes)
        .map_err(|(line, reason)| bad(line, reason))?
        .into_iter()
        .enumerate()
    {
        // The parser lets through only what HTTP allows, so neither can fail; the line
        // given is the header's position should it ever do.
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| bad(i + 1, "the header name is not a valid one".to_owned()))?;
        let mut value = HeaderValue::from_bytes(&line.value).map_err(|_| {
            bad(
                i + 1,
                format!("the value of the {} header is not valid", name.as_str()),
            )
        })?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------
// netrc
// ---------------------------------------------------------------------------------------

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
        let bytes = match read_bounded(path, MAX_NETRC, NETRC) {
            Err(e) if e.is_not_found() && !required => continue,
            read => read?,
        };
        let entries = parse_netrc(&bytes).map_err(|(line, reason)| AccessError::Netrc {
            path: shown(path),
            line,
            reason,
        })?;
        return Ok(find_login(&entries, host));
    }
    Ok(None)
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
    let bytes = read_bounded(path, MAX_PEM, what)?;
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
    let key_bytes = read_bounded(key_path, MAX_PEM, KEY_FILE)?;
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
