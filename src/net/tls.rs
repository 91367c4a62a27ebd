//! TLS failures in plain words, with a second look at an untrusted certificate.
//!
//! rustls reports certificate problems as enum variants whose Display text is partly Debug
//! output ("invalid peer certificate: UnknownIssuer"). This turns them into sentences. The
//! verifier reports a self-signed certificate and one from an unknown authority alike
//! (neither chains to a trusted root), so for a direct connection the certificate is fetched
//! once more and checked against itself to tell the two apart.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    Error, RootCertStore, SignatureScheme,
};

use crate::format::text::untrusted;

/// A server that was connected to directly (not through a proxy), so it can be asked again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer<'a> {
    pub host: &'a str,
    pub port: u16,
    pub timeout: Duration,
}

/// Which certificate authorities a connection trusted, for messages about an untrusted
/// server.
#[derive(Debug, Clone, Copy)]
pub(super) enum Roots<'a> {
    /// The system's store (or `SSL_CERT_FILE`).
    System,
    /// A config's `CACertificate=` file, as shown in messages.
    File(&'a str),
}

impl Roots<'_> {
    /// Who does not trust a certificate, as the subject of a sentence.
    fn truster(&self) -> String {
        match self {
            Roots::System => "this system".to_owned(),
            Roots::File(path) => format!("the config's CACertificate= file {path}"),
        }
    }
}

/// What a TLS handshake with a server that speaks plain HTTP comes to. A caller that knows
/// a better hint for its own URLs (a registry: `oci+http://`) recognises it by this text.
pub const NOT_TLS: &str = "the server did not answer in TLS (is it an http:// server?)";

/// What went wrong, for a user; never Debug text.
pub(super) fn describe(err: &Error, peer: Option<Peer>, roots: Roots) -> String {
    match err {
        Error::InvalidCertificate(cert) => describe_certificate(cert, peer, roots),
        Error::AlertReceived(alert) => describe_alert(*alert),
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            NOT_TLS.to_owned()
        }
        Error::PeerIncompatible(_) => {
            "the server offers no TLS version or cipher that tako supports (TLS 1.2 or 1.3 is needed)"
                .to_owned()
        }
        Error::NoCertificatesPresented => "the server sent no certificate".to_owned(),
        Error::General(text) if text.contains("No CA certificates") => {
            "no trusted CA certificates were found on this system (install the ca-certificates package, or point SSL_CERT_FILE at a PEM file)"
                .to_owned()
        }
        other => format!("TLS error: {}", untrusted(&other.to_string())),
    }
}

fn describe_certificate(err: &CertificateError, peer: Option<Peer>, roots: Roots) -> String {
    use CertificateError as C;
    const CERT: &str = "the server's certificate";
    match err {
        C::UnknownIssuer => match peer.and_then(probe_self_signed) {
            Some(true) => format!(
                "{CERT} is self-signed, and {} does not trust it",
                roots.truster()
            ),
            Some(false) => match roots {
                Roots::System => format!(
                    "{CERT} was issued by an unknown certificate authority (not one this system trusts)"
                ),
                Roots::File(path) => format!(
                    "{CERT} was issued by an unknown certificate authority (not one in the config's CACertificate= file {path})"
                ),
            },
            None => format!(
                "{CERT} is not trusted: it is self-signed or was issued by an unknown certificate authority"
            ),
        },
        C::Expired => format!("{CERT} has expired"),
        C::ExpiredContext { not_after, .. } => {
            format!("{CERT} expired on {}", utc_date(*not_after))
        }
        C::NotValidYet => format!("{CERT} is not valid yet (is this system's clock right?)"),
        C::NotValidYetContext { not_before, .. } => format!(
            "{CERT} is not valid until {} (is this system's clock right?)",
            utc_date(*not_before)
        ),
        C::NotValidForName => format!("{CERT} is not valid for this host name"),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names = if presented.is_empty() {
                "no host name".to_owned()
            } else {
                presented
                    .iter()
                    .map(|name| presented_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "{CERT} is not valid for the host name {} (it is for {})",
                untrusted(&expected.to_str()),
                untrusted(&names)
            )
        }
        C::Revoked => format!("{CERT} has been revoked"),
        C::BadSignature => format!("{CERT} has an invalid signature"),
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            format!("{CERT} is signed with an algorithm that tako does not support")
        }
        C::BadEncoding => format!("{CERT} is malformed"),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            format!("{CERT} is not meant for a TLS server")
        }
        C::UnhandledCriticalExtension => {
            format!("{CERT} has a critical extension that tako does not understand")
        }
        // webpki's own errors arrive wrapped; their text is a variant name.
        C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            match peer.and_then(probe_self_signed) {
                Some(true) => format!(
                    "{CERT} is self-signed (a CA certificate), and {} does not trust it",
                    roots.truster()
                ),
                _ => format!("{CERT} is a CA certificate, not one for a server"),
            }
        }
        other => format!("{CERT} was rejected ({})", untrusted(&other.to_string())),
    }
}

/// A name the certificate holds, without the `DnsName("…")` or `IpAddress(…)` wrapper that
/// webpki's Debug output puts around it.
fn presented_name(name: &str) -> &str {
    [
        ("DnsName(\"", "\")"),
        ("UniformResourceIdentifier(\"", "\")"),
        ("IpAddress(", ")"),
    ]
    .iter()
    .find_map(|(open, close)| name.strip_prefix(open)?.strip_suffix(close))
    .unwrap_or(name)
}

fn describe_alert(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let why = match alert {
        A::HandshakeFailure | A::InsufficientSecurity => "no TLS settings in common",
        A::ProtocolVersion => "no TLS version in common",
        A::UnrecognisedName => "it does not serve this host name",
        A::CertificateRequired => "it requires a client certificate",
        A::AccessDenied => "access denied",
        A::InternalError => "an error on the server",
        _ => return "the server ended the TLS handshake".to_owned(),
    };
    format!("the server ended the TLS handshake: {why}")
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_date(time: UnixTime) -> String {
    let secs = time.as_secs();
    let (days, rest) = (secs / 86400, secs % 86400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counting in 400-year eras of
/// 146097 days that start on March 1st, so the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// Whether the server's certificate is signed by its own key: it verifies with itself as the
/// only trusted root (a wrong host name still counts). `None` if that cannot be found out.
fn probe_self_signed(peer: Peer) -> Option<bool> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = peer_certificate(&peer, &provider)?;
    let name = server_name(peer.host)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).ok()?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .ok()?;
    Some(
        match verifier.verify_server_cert(&cert, &[], &name, &[], UnixTime::now()) {
            Ok(_) => true,
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => true,
            Err(_) => false,
        },
    )
}

/// Whether `peer` answers a TLS handshake, whatever its certificate; nothing is sent but
/// the handshake, which is broken off at the certificate.
pub(super) fn speaks_tls(peer: Peer) -> bool {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    peer_certificate(&peer, &provider).is_some()
}

/// The certificate `peer` presents, from a handshake that is broken off as soon as it is
/// seen: nothing is ever sent over a connection that was not verified.
fn peer_certificate(
    peer: &Peer,
    provider: &Arc<CryptoProvider>,
) -> Option<CertificateDer<'static>> {
    let capture = Arc::new(Capture {
        provider: Arc::clone(provider),
        cert: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let mut conn = ClientConnection::new(Arc::new(config), server_name(peer.host)?).ok()?;
    let host = peer.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, peer.port).to_socket_addrs().ok()?.next()?;
    let mut socket = TcpStream::connect_timeout(&addr, peer.timeout).ok()?;
    socket.set_read_timeout(Some(peer.timeout)).ok()?;
    socket.set_write_timeout(Some(peer.timeout)).ok()?;
    // A handshake takes a few round trips; the bound only guards against a server that
    // keeps it going without ever sending a certificate.
    for _ in 0..16 {
        if !conn.is_handshaking() || conn.complete_io(&mut socket).is_err() {
            break;
        }
    }
    capture.cert.lock().ok()?.take()
}

/// A verifier that keeps the server's certificate and then fails the handshake.
#[derive(Debug)]
struct Capture {
    provider: Arc<CryptoProvider>,
    cert: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Ok(mut slot) = self.cert.lock() {
            *slot = Some(end_entity.clone().into_owned());
        }
        Err(Error::General("certificate only looked at".to_owned()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_shown_in_utc() {
        assert_eq!(
            utc_date(UnixTime::since_unix_epoch(Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        // 2000-02-29 12:34:56 UTC, a leap day in a year divisible by 400.
        assert_eq!(
            utc_date(UnixTime::since_unix_epoch(Duration::from_secs(951_827_696))),
            "2000-02-29 12:34:56 UTC"
        );
        assert_eq!(
            utc_date(UnixTime::since_unix_epoch(Duration::from_secs(
                4_102_444_799
            ))),
            "2099-12-31 23:59:59 UTC"
        );
    }

    #[test]
    fn certificate_errors_read_as_sentences_without_debug_names() {
        let text = describe(
            &Error::InvalidCertificate(CertificateError::Expired),
            None,
            Roots::System,
        );
        assert_eq!(text, "the server's certificate has expired");
        let text = describe(
            &Error::InvalidCertificate(CertificateError::UnknownIssuer),
            None,
            Roots::System,
        );
        assert!(
            text.contains("self-signed or was issued by an unknown"),
            "{text}"
        );
        let text = describe(
            &Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"example.invalid\n\")".to_owned()],
            }),
            None,
            Roots::System,
        );
        assert!(
            text.starts_with("the server's certificate is not valid for the host name 127.0.0.1"),
            "{text}"
        );
        assert!(text.ends_with("(it is for example.invalid\\n)"), "{text}");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    }
}
