//! The connection pools (ureq agents) and their TLS setup: the system's roots, or a
//! config's own CA and client certificate (`CACertificate=`, `ClientCertificate=`,
//! `ClientKey=`), read and checked before the first connection.
//!
//! A certificate file decides whom to trust, so nothing read from one is ever quoted in a
//! message. The files are read when a config is fetched, so a renewed certificate is picked
//! up by the next run.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::format::config::Access;
use crate::format::origin_url::Scope;
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::fs::bounded::read_bounded;

use super::error::{AccessError, shown};
use super::{USER_AGENT, absolute_form};

/// The largest request head sent: a token of the largest token answer a registry client
/// reads (1 MiB) and room for the other headers. Allocated only by a connection that sends
/// something, once.
pub(super) const MAX_REQUEST_HEAD: usize = 1024 * 1024 + 64 * 1024;

/// The largest PEM file read (a CA bundle of the whole web is about 200 KiB).
const MAX_PEM: u64 = 1 << 20;

const CA_FILE: &str = "CA certificate file (CACertificate=)";
const CERT_FILE: &str = "client certificate file (ClientCertificate=)";
const KEY_FILE: &str = "client key file (ClientKey=)";

/// The connection pools for one TLS setup.
#[derive(Clone)]
pub(super) struct Agents {
    pub(super) agent: Agent,
    /// For `http://` targets through a proxy; see [`absolute_form`].
    pub(super) forward: Agent,
}

impl Agents {
    pub(super) fn new(cfg: &TransportConfig, tls: TlsConfig) -> Agents {
        // ureq only speaks HTTP/1.1, so there is no version to pin.
        let agent_config = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            // Chosen per request in `proxy_for`; ureq's own pick would read the environment.
            .proxy(None)
            .user_agent(USER_AGENT)
            // Never ask for compression: images are hashed byte for byte as stored.
            .accept_encoding("")
            .timeout_resolve(Some(cfg.connect_timeout))
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_per_read(Some(cfg.read_timeout()))
            .timeout_per_write(Some(cfg.idle_timeout))
            // A request's head must fit the output buffer whole (ureq writes no header in
            // pieces), and a registry's Bearer token can be far larger than ureq's 128 KiB:
            // room for the largest token answer read, plus the other headers.
            .output_buffer_size(MAX_REQUEST_HEAD)
            .build();
        Agents {
            forward: absolute_form::agent(agent_config.clone()),
            agent: Agent::new_with_config(agent_config),
        }
    }
}

/// The TLS setup of a config with `CACertificate=` or `ClientCertificate=`.
///
/// Kept in pools of its own: a connection made with one config's client certificate, or
/// trusted through one config's CA, must never be reused for another config.
pub(super) struct PrivateTls {
    /// With the client certificate: for the origin's own scheme, host and port only.
    pub(super) origin: Agents,
    /// Without it, for wherever a redirect leads; the same roots.
    pub(super) elsewhere: Agents,
    pub(super) scope: Scope,
    /// The `CACertificate=` file as shown in messages, when it replaces the system's roots.
    pub(super) roots: Option<String>,
}

impl PrivateTls {
    pub(super) fn new(
        cfg: &TransportConfig,
        files: TlsFiles,
        scope: Scope,
        access: &Access,
    ) -> Self {
        let roots = match &files.roots {
            Some(certs) => RootCerts::new_with_certs(certs),
            None => RootCerts::PlatformVerifier,
        };
        let plain = TlsConfig::builder().root_certs(roots.clone()).build();
        let elsewhere = Agents::new(cfg, plain);
        let origin = match files.client {
            Some(client) => Agents::new(
                cfg,
                TlsConfig::builder()
                    .root_certs(roots)
                    .client_cert(Some(client))
                    .build(),
            ),
            None => elsewhere.clone(),
        };
        PrivateTls {
            origin,
            elsewhere,
            scope,
            roots: access
                .ca_certificate
                .as_ref()
                .filter(|_| files.roots.is_some())
                .map(|p| untrusted(&p.display().to_string())),
        }
    }
}

/// What a registry connection trusts and presents beyond the defaults: the `--cert-dir`
/// directory of the image proxies, read as containers/image reads one.
#[derive(Clone, Default)]
pub struct RegistryTls {
    /// With CAs beside the system's (the directory's `*.crt` files): the system's roots
    /// and those, read once; empty for the platform verifier alone.
    roots: Vec<Certificate<'static>>,
    /// The client certificate (`NAME.cert`) with its key (`NAME.key`).
    client: Option<ClientCert>,
}

const DIR_CA: &str = "CA certificate file in --cert-dir";
const DIR_CERT: &str = "client certificate file in --cert-dir";
const DIR_KEY: &str = "client key file in --cert-dir";

/// The most entries a certificate directory is looked through for.
const MAX_DIR_ENTRIES: usize = 1000;

impl std::fmt::Debug for RegistryTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A client key is never shown, not even in debug output.
        f.debug_struct("RegistryTls")
            .field("roots", &self.roots.len())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl RegistryTls {
    /// Reads `dir`: each `*.crt` holds CAs trusted beside the system's, and `NAME.cert` is a
    /// client certificate whose key is `NAME.key`; other files are ignored. A certificate
    /// without its key, or a key without its certificate, is an error, as in
    /// containers/image; so is a second client certificate (one connection presents one).
    pub fn from_cert_dir(dir: &Path) -> Result<RegistryTls, super::TransportError> {
        Ok(RegistryTls::read_cert_dir(dir)?)
    }

    fn read_cert_dir(dir: &Path) -> Result<RegistryTls, AccessError> {
        let failed = |reason: String| AccessError::CertDir {
            path: shown(dir),
            reason,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| failed(format!("cannot be read: {e}")))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| failed(format!("cannot be read: {e}")))?;
            if names.len() == MAX_DIR_ENTRIES {
                return Err(failed(format!("has more than {MAX_DIR_ENTRIES} entries")));
            }
            names.push(entry.file_name());
        }
        names.sort();
        let has = |name: &std::ffi::OsStr| names.iter().any(|n| n == name);
        let mut tls = RegistryTls::default();
        let mut extra_roots = Vec::new();
        for name in &names {
            let path = dir.join(name);
            let text = name.to_string_lossy();
            if text.ends_with(".crt") {
                extra_roots.extend(load_roots_as(&path, DIR_CA)?);
            } else if let Some(stem) = text.strip_suffix(".cert") {
                let key = format!("{stem}.key");
                if !has(std::ffi::OsStr::new(&key)) {
                    return Err(failed(format!(
                        "holds the client certificate {} without its key {}",
                        untrusted(&text),
                        untrusted(&key)
                    )));
                }
                if tls.client.is_some() {
                    return Err(failed(
                        "holds more than one client certificate (*.cert); tako presents one"
                            .to_owned(),
                    ));
                }
                tls.client = Some(load_client_as(&path, &dir.join(&key), DIR_CERT, DIR_KEY)?);
            } else if let Some(stem) = text.strip_suffix(".key") {
                let cert = format!("{stem}.cert");
                if !has(std::ffi::OsStr::new(&cert)) {
                    return Err(failed(format!(
                        "holds the key {} without its client certificate {}",
                        untrusted(&text),
                        untrusted(&cert)
                    )));
                }
            }
        }
        if !extra_roots.is_empty() {
            // ureq takes either the platform's verifier or a list, so the system's roots
            // are read into the list (as the platform verifier reads them on Linux).
            tls.roots = rustls_native_certs::load_native_certs()
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .chain(extra_roots)
                .collect();
        }
        Ok(tls)
    }

    /// Whether this trusts and presents only what a plain connection does.
    pub(super) fn is_default(&self) -> bool {
        self.roots.is_empty() && self.client.is_none()
    }

    /// The TLS setup: the system's roots and the extra CAs, or no check at all.
    pub(super) fn config(&self, verify: bool) -> TlsConfig {
        let roots = if self.roots.is_empty() {
            RootCerts::PlatformVerifier
        } else {
            RootCerts::new_with_certs(&self.roots)
        };
        TlsConfig::builder()
            .root_certs(roots)
            .client_cert(self.client.clone())
            .disable_verification(!verify)
            .build()
    }
}

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
    load_roots_as(path, CA_FILE)
}

fn load_roots_as(
    path: &Path,
    label: &'static str,
) -> Result<Vec<Certificate<'static>>, AccessError> {
    let certs = certificates(label, path)?;
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|_| {
            pem_error(
                label,
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
    load_client_as(cert_path, key_path, CERT_FILE, KEY_FILE)
}

/// The setting inside a label's parentheses: "ClientKey=" of "client key file (ClientKey=)".
fn label_key(label: &str) -> &str {
    label
        .rsplit_once('(')
        .map_or(label, |(_, rest)| rest.trim_end_matches(')'))
}

/// A client certificate and its key, named in messages as `cert_label` and `key_label`.
fn load_client_as(
    cert_path: &Path,
    key_path: &Path,
    cert_label: &'static str,
    key_label: &'static str,
) -> Result<ClientCert, AccessError> {
    let chain = certificates(cert_label, cert_path)?;
    let key_bytes = read_bounded(key_path, MAX_PEM, key_label)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| {
        pem_error(
            key_label,
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
                key_label,
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
                cert: format!("{} ({})", shown(cert_path), label_key(cert_label)),
                key: format!("{} ({})", shown(key_path), label_key(key_label)),
            });
        }
        Err(_) => {
            return Err(pem_error(
                key_label,
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
        .map_err(|_| pem_error(key_label, key_path, "holds a private key tako cannot use"))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}
