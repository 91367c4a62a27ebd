//! Fetching an origin's files over `http://`, `https://` and `file://` as streams.
//!
//! Everything about the network that the rest of tako must not care about lives
//! here: TLS roots, proxies, redirects, timeouts, credentials, and turning statuses
//! and socket failures into errors a user can act on. Bodies are handed out as
//! `Read` streams so a 100 MiB image never sits in memory.
//!
//! Redirects and proxy selection are done here rather than by ureq (see `request` and
//! `proxy`): every hop gets its own scheme check, its own proxy decision and its own
//! decision whether the origin's credentials may be sent.
//!
//! The files: this one holds [`Transport`] and how it is set up for an origin;
//! `request` sends a GET and follows redirects, `body` streams the answer under the
//! time and speed limits, `file` serves `file://` URLs, `credentials` and `agent`
//! read what a private origin needs (netrc, `HeaderFile=`, certificates), `proxy`
//! picks a proxy, `error` says what went wrong, `tls` explains TLS failures and
//! `rate` is `--limit-rate`.
//!
//! URLs handed to [`Transport::open`] are the ones tako prints: an origin's password
//! is already replaced by `***` there (see `format::origin_url`). The real credentials
//! travel separately in [`Credentials`], which only the request builder reads, and
//! no URL with a user part ever reaches ureq (it would turn one into an
//! `Authorization` header on its own). Every URL, header value and other text from
//! the network passes through [`crate::format::text::untrusted`] before it is put in a
//! message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{RootCerts, TlsConfig};

use crate::format::config::Access;
use crate::format::origin_url::{BasicCredentials, Scope, scope_of_origin};
use crate::format::transport_config::TransportConfig;

mod absolute_form;
mod agent;
mod body;
mod credentials;
mod error;
mod file;
mod proxy;
mod rate;
mod request;
mod tls;
pub use tls::NOT_TLS;

/// Whether the server at `host_port` (`host[:port]`, 443 by default) answers a TLS
/// handshake, whatever its certificate: how a registry that may be reached insecurely is
/// told apart from a plain-HTTP one, as containers/image tries HTTPS first.
pub fn speaks_tls(host_port: &str, timeout: Duration) -> bool {
    let Ok(url) = url::Url::parse(&format!("https://{host_port}/")) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    tls::speaks_tls(tls::Peer {
        host,
        port,
        timeout,
    })
}
mod wire;

pub use agent::RegistryTls;
use agent::{Agents, PrivateTls};
use body::Deadline;
use credentials::Basic;
use request::Target;

pub use body::Body;
pub use credentials::Credentials;
pub use error::TransportError;
pub use proxy::ProxyConfig;
pub use wire::{Call, Method, Reply};

/// The most redirects followed for one request (SPEC §7); a static file server has no
/// business sending longer chains.
pub const MAX_REDIRECTS: u32 = 10;

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("tako/", env!("CARGO_PKG_VERSION"));

/// What one GET asks for beyond the file itself: a conditional poll or a resumed range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-None-Match`: the entity tag of the copy the client holds.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`: the `Last-Modified` date of the copy the client holds, as the
    /// server wrote it.
    pub if_modified_since: Option<String>,
    /// `Range: bytes=N-`: only the bytes from this offset on.
    pub range_from: Option<u64>,
    /// With `range_from`, `Range: bytes=N-M`: only up to and including byte `M`. The answer
    /// must then be a 206 whose `Content-Range` names exactly `N-M`.
    pub range_to: Option<u64>,
    /// `If-Range`: with `range_from`, the entity tag or date the bytes before the offset
    /// came with; a server whose file changed since answers with all of the new one.
    pub if_range: Option<String>,
    /// Several ranges at once, each `start..end`: `Range: bytes=a-b,c-d,…`. The answer may
    /// be a 206 of `multipart/byteranges` (its boundary is [`Body::multipart_boundary`]), a
    /// 206 of one range or a 200; the caller checks which. Not for `file://` URLs.
    pub ranges: Vec<(u64, u64)>,
}

impl Conditions {
    fn is_conditional(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: the whole file.
    Whole,
    /// 206: the file from byte `start` on.
    Partial { start: u64 },
    /// 304: the client's copy is current; there is no body.
    NotModified,
}

/// Downloads from origins; cheap to clone, and clones share connections.
#[derive(Clone)]
pub struct Transport {
    agents: Agents,
    config: TransportConfig,
    proxies: ProxyConfig,
    credentials: Option<Credentials>,
    deadline: Option<Deadline>,
    /// A config's own CA and client certificate, which need connections of their own.
    private_tls: Option<Arc<PrivateTls>>,
    /// `--limit-rate`, shared by every clone so that all downloads of a run share it.
    limit: Option<Arc<rate::RateLimit>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("config", &self.config)
            .field("proxies", &self.proxies)
            .field("credentials", &self.credentials)
            .field("deadline", &self.deadline)
            .field("private_tls", &self.private_tls.is_some())
            .field("limit_rate", &self.limit.as_ref().map(|l| l.rate()))
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport that takes its proxies from the environment.
    pub fn new(cfg: TransportConfig) -> Transport {
        Transport::with_proxies(cfg, ProxyConfig::from_env())
    }

    /// A transport with explicit proxy settings, e.g. [`ProxyConfig::none`] in tests that
    /// must not be affected by the environment.
    ///
    /// With `limit_rate` below `speed_limit`, every transfer would fail the low-speed check,
    /// so the check then asks for half the limited rate instead.
    pub fn with_proxies(mut cfg: TransportConfig, proxies: ProxyConfig) -> Transport {
        if let Some(rate) = cfg.limit_rate {
            cfg.speed_limit = cfg.speed_limit.min(rate / 2);
        }
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        Transport {
            agents: Agents::new(&cfg, tls),
            config: cfg,
            proxies,
            credentials: None,
            deadline: None,
            private_tls: None,
            limit: cfg
                .limit_rate
                .map(|rate| Arc::new(rate::RateLimit::new(rate))),
        }
    }

    /// This transport for a registry's connections: trusting and presenting what `tls`
    /// adds, and checking no certificate at all when `verify` is false (`--tls-verify=false`,
    /// registries.conf's `insecure = true`). It applies wherever the registry's redirects
    /// lead, as containers/image's does.
    pub fn for_registry(&self, tls: &RegistryTls, verify: bool) -> Transport {
        if verify && tls.is_default() {
            return self.clone();
        }
        let mut transport = self.clone();
        transport.agents = Agents::new(&self.config, tls.config(verify));
        transport
    }

    /// This transport set up for one config's origin (`origin` as `format::origin_url::parse_origin` prints
    /// it): the credentials from the origin URL or, without any, the netrc login for the
    /// origin's host; the headers of `HeaderFile=`; and the config's own CA and client
    /// certificate. The files are read now, on every run, so a rotated token or certificate
    /// needs no change to the config. A `file://` origin uses none of them.
    pub fn for_origin(
        &self,
        origin: &str,
        credentials: Option<BasicCredentials>,
        access: &Access,
    ) -> Result<Transport, TransportError> {
        self.for_origin_in(origin, credentials, access, |name| std::env::var_os(name))
    }

    /// As [`Transport::for_origin`], with the environment (`NETRC`, `CREDENTIALS_DIRECTORY`,
    /// `HOME`) read through `var`.
    pub fn for_origin_in(
        &self,
        origin: &str,
        credentials: Option<BasicCredentials>,
        access: &Access,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Transport, TransportError> {
        let Some(scope) = url::Url::parse(origin).ok().as_ref().and_then(Scope::of) else {
            return Ok(self.with_credentials(credentials.map(Credentials::from_basic)));
        };
        let mut credentials = match credentials {
            Some(credentials) => Some(Credentials::from_basic(credentials)),
            None => credentials::netrc_login(&scope.host, &credentials::netrc_candidates(var))?
                .map(|(login, path)| Credentials {
                    basic: Some(Basic {
                        user: login.login,
                        password: login.password,
                    }),
                    headers: Vec::new(),
                    scope: scope.clone(),
                    from: Some(format!("netrc file {}", error::shown(&path))),
                }),
        };
        if let Some(path) = &access.header_file {
            let headers = credentials::read_header_file(path)?;
            let file = format!("header file {} (HeaderFile=)", error::shown(path));
            match &mut credentials {
                Some(credentials) => {
                    credentials.headers = headers;
                    credentials.from = Some(match credentials.from.take() {
                        Some(basic) => format!("{basic} and {file}"),
                        None => file,
                    });
                }
                None => {
                    credentials = Some(Credentials {
                        basic: None,
                        headers,
                        scope: scope.clone(),
                        from: Some(file),
                    })
                }
            }
        }
        let mut transport = self.with_credentials(credentials);
        if let Some(files) = agent::load_tls(access)? {
            transport.private_tls = Some(Arc::new(PrivateTls::new(
                &self.config,
                files,
                scope,
                access,
            )));
        }
        Ok(transport)
    }

    /// This transport (sharing its connections, without credentials) with the config's own
    /// CA and client certificate for the scheme, host and port of `origin`: for an origin
    /// that brings its own credentials, such as a registry repository (`oci://`), whose
    /// auth files take the place of netrc and `HeaderFile=`. The files are read now.
    pub fn with_tls_for(&self, origin: &str, access: &Access) -> Result<Transport, TransportError> {
        let mut transport = self.with_credentials(None);
        if let Some(scope) = scope_of_origin(origin)
            && let Some(files) = agent::load_tls(access)?
        {
            transport.private_tls = Some(Arc::new(PrivateTls::new(
                &self.config,
                files,
                scope,
                access,
            )));
        }
        Ok(transport)
    }

    /// The connection pools for a request to `target`.
    fn agents_for(&self, target: &Target) -> &Agents {
        match &self.private_tls {
            Some(tls) if target.is_in(&tls.scope) => &tls.origin,
            Some(tls) => &tls.elsewhere,
            None => &self.agents,
        }
    }

    /// Whose roots decide which servers are trusted, for messages.
    fn roots(&self) -> tls::Roots<'_> {
        match self.private_tls.as_ref().and_then(|t| t.roots.as_deref()) {
            Some(file) => tls::Roots::File(file),
            None => tls::Roots::System,
        }
    }

    /// This transport (sharing its connections), sending `credentials` as HTTP Basic
    /// authentication with every request to their own scheme, host and port.
    pub fn with_credentials(&self, credentials: Option<Credentials>) -> Transport {
        Transport {
            credentials,
            ..self.clone()
        }
    }

    /// How much of `--max-time` is left, if it was given: what a step outside the
    /// transport (a credential helper) may take at most.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.at.saturating_duration_since(Instant::now()))
    }

    /// This transport (sharing its connections), failing every request and every read of a
    /// body once `max_time` from now has passed; `None` for no limit.
    pub fn with_max_time(&self, max_time: Option<Duration>) -> Transport {
        let now = Instant::now();
        Transport {
            deadline: max_time.map(|limit| Deadline {
                at: now
                    .checked_add(limit)
                    .unwrap_or(now + Duration::from_secs(86400 * 365)),
                limit,
            }),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod client_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::bounded::ReadError;
    use error::AccessError;

    #[test]
    fn for_origin_reads_netrc_for_the_origins_host_and_ignores_everything_for_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(
            &netrc,
            "machine other login o password x\nmachine h.example login u password p\n",
        )
        .unwrap();
        let env = |name: &str| (name == "NETRC").then(|| netrc.clone().into_os_string());
        let base = Transport::with_proxies(TransportConfig::default(), ProxyConfig::none());
        let t = base
            .for_origin_in("https://H.example/o", None, &Access::default(), env)
            .unwrap();
        let creds = t.credentials.unwrap();
        assert_eq!(creds.basic.as_ref().unwrap().user, b"u");
        assert!(creds.applies_to(&Target::parse("https://h.example/o/manifest").unwrap()));
        assert!(!creds.applies_to(&Target::parse("https://other/o/manifest").unwrap()));

        let missing = Access {
            header_file: Some(dir.path().join("missing")),
            ca_certificate: Some(dir.path().join("missing-ca")),
            ..Access::default()
        };
        let t = base
            .for_origin_in("file:///srv/o", None, &missing, env)
            .unwrap();
        assert!(t.credentials.is_none() && t.private_tls.is_none());
        let err = base
            .for_origin_in("https://h.example/o", None, &missing, env)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Access(AccessError::File(ReadError::Io { .. }))
            ),
            "{err}"
        );
    }

    #[test]
    fn bodies_and_transports_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Body>();
        is_send::<Transport>();
        is_send::<TransportError>();
    }
}
