//! One request on the wire, for every caller: the GETs of web origins (see `request`) and
//! the calls of a protocol spoken over HTTP, such as a registry's API ([`Call`]).
//!
//! Whatever sends it, a request gets the same treatment: the proxy its scheme calls for
//! (absolute form for plain HTTP, `CONNECT` for HTTPS), the config's TLS setup, the
//! transport's credentials only within their scope, the time left of `--max-time`, the
//! read timeout of the speed check, and failures described in plain words. A [`Call`] is
//! sent as it is: no redirect is followed and every status comes back, for the protocol to
//! judge; its body is a [`Body`] under the same limits as a download.

use std::io;

use ureq::http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, Request, Response};
use ureq::{Agent, AsSendBody, Proxy, Timeout};

use crate::format::origin_url::show_url;
use crate::format::text::untrusted;

use super::body::{Body, Inner};
use super::credentials::Credentials;
use super::error::{NetworkError, TransportError, describe_ureq};
use super::proxy::absolute_form;
use super::request::Target;
use super::{Transport, tls};

/// The HTTP methods a protocol call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn http(self) -> HttpMethod {
        match self {
            Method::Get => HttpMethod::GET,
            Method::Head => HttpMethod::HEAD,
            Method::Post => HttpMethod::POST,
            Method::Put => HttpMethod::PUT,
            Method::Patch => HttpMethod::PATCH,
            Method::Delete => HttpMethod::DELETE,
        }
    }
}

/// One request of a protocol spoken over HTTP, sent by [`Transport::send`].
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub method: Method,
    /// An http(s) URL.
    pub url: &'a str,
    /// Extra headers, such as `Accept` or `Content-Type`.
    pub headers: &'a [(&'a str, &'a str)],
    /// An `Authorization` value for this request only, marked sensitive; the transport's
    /// own credentials are then not sent.
    pub authorization: Option<&'a str>,
    /// The request body; `None` sends none at all (what a GET or HEAD wants), `Some` sends
    /// it with its length, even when empty.
    pub body: Option<&'a [u8]>,
}

/// The answer to a [`Call`], whatever its status.
#[derive(Debug)]
pub struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Body,
}

impl Reply {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header `name`, if it is text (visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of the header `name` that is text, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The body, to read from.
    pub fn body(&mut self) -> &mut Body {
        &mut self.body
    }

    pub fn into_body(self) -> Body {
        self.body
    }
}

impl Transport {
    /// Sends `call` and returns the answer, whatever its status; a redirect is handed back
    /// as it is. Fails only when there is no answer: a bad URL or header, the proxy, the
    /// connection, TLS, or a time limit.
    pub fn send(&self, call: &Call) -> Result<Reply, TransportError> {
        let shown = show_url(call.url);
        let target = Target::parse_shown(call.url, &shown)?;
        let mut headers = Vec::with_capacity(call.headers.len() + 1);
        for (name, value) in call.headers {
            let bad = || TransportError::BadHeader {
                url: shown.clone(),
                name: untrusted(name),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.push((name, value));
        }
        let own;
        let credentials = match call.authorization {
            Some(value) => {
                own = Credentials::for_target(&target, value).ok_or_else(|| {
                    TransportError::BadHeader {
                        url: shown.clone(),
                        name: "Authorization".to_owned(),
                    }
                })?;
                Some(&own)
            }
            None => self.credentials.as_ref(),
        };
        let response = self.exchange(
            call.method,
            &target,
            &shown,
            credentials,
            headers,
            call.body,
        )?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let content_length = body.content_length();
        let body = Body::new(
            shown,
            content_length,
            Inner::Http(body.into_reader()),
            self.config,
            self.deadline,
        )
        .limited(self.limit.clone());
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// One request to `target` (named `shown` in errors), directly or through the proxy its
    /// scheme calls for, with `credentials` if their scope covers it and `headers`.
    pub(super) fn exchange(
        &self,
        method: Method,
        target: &Target,
        shown: &str,
        credentials: Option<&Credentials>,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Option<&[u8]>,
    ) -> Result<Response<ureq::Body>, TransportError> {
        let proxy = self.proxies.proxy_for(shown, target)?;
        let agents = self.agents_for(target);
        let mut request = Request::builder().method(method.http());
        let agent = match &proxy {
            // Plain HTTP goes to the proxy in absolute form (`GET http://host/path`), as
            // curl sends it: many proxies allow CONNECT only to port 443.
            Some((proxy, _)) if !target.https => {
                let (uri, proxy_headers) =
                    absolute_form(target, proxy).map_err(|reason| TransportError::InvalidUrl {
                        url: shown.to_owned(),
                        reason,
                    })?;
                request = request.uri(uri);
                for (name, value) in proxy_headers {
                    request = request.header(name, value);
                }
                &agents.forward
            }
            _ => {
                request = request.uri(target.uri.clone());
                &agents.agent
            }
        };
        let credentials = credentials.filter(|c| c.applies_to(target));
        for (name, value) in credentials.map(Credentials::headers).unwrap_or_default() {
            request = request.header(name, value);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let route = Route {
            agent,
            // A CONNECT tunnel is ureq's own proxy support; absolute form needs none.
            tunnel: proxy
                .as_ref()
                .filter(|_| target.https)
                .map(|(proxy, _)| proxy),
            proxy_var: proxy.as_ref().map(|(_, var)| var.as_str()),
            // Only a server connected to directly can be asked again about its certificate.
            peer: proxy.is_none().then_some(tls::Peer {
                host: &target.host,
                port: target.port,
                timeout: self.config.connect_timeout,
            }),
        };
        match body {
            None => self.run(&route, request.body(()), shown),
            Some(bytes) => self.run(&route, request.body(bytes), shown),
        }
    }

    /// Runs `request` along `route` with what is left of the deadline, and describes a
    /// failure.
    fn run<S: AsSendBody>(
        &self,
        route: &Route,
        request: Result<Request<S>, ureq::http::Error>,
        shown: &str,
    ) -> Result<Response<ureq::Body>, TransportError> {
        let request = request.map_err(|e| TransportError::InvalidUrl {
            url: shown.to_owned(),
            reason: untrusted(&e.to_string()),
        })?;
        let mut config = route.agent.configure_request(request);
        if let Some(tunnel) = route.tunnel {
            config = config.proxy(Some(tunnel.clone()));
        }
        if let Some(deadline) = &self.deadline {
            config = config.timeout_global(Some(deadline.remaining()));
        }
        route
            .agent
            .run(config.build())
            .map_err(|err| match self.classify(shown, err, route.peer) {
                // "connection refused" alone would send the user looking at the origin.
                TransportError::Network { url, mut source } => {
                    if let Some(var) = route.proxy_var {
                        source.reason = format!("{} (through the proxy in ${var})", source.reason);
                    }
                    TransportError::Network { url, source }
                }
                other => other,
            })
    }

    /// Turns a failed request into an error naming `url` (already fit to print).
    fn classify(&self, url: &str, err: ureq::Error, peer: Option<tls::Peer>) -> TransportError {
        let url = url.to_owned();
        match err {
            ureq::Error::BadUri(reason) => TransportError::InvalidUrl {
                url,
                reason: untrusted(&reason),
            },
            ureq::Error::Http(e) => TransportError::InvalidUrl {
                url,
                reason: untrusted(&e.to_string()),
            },
            ureq::Error::Timeout(Timeout::Global) => match self.deadline {
                Some(deadline) => TransportError::MaxTime {
                    url,
                    limit: deadline.limit,
                    progress: None,
                },
                None => TransportError::Network {
                    url,
                    source: NetworkError::new(io::ErrorKind::TimedOut, "timed out"),
                },
            },
            // No answer within the speed window: the rate over it is 0.
            ureq::Error::Timeout(Timeout::PerRead) if self.config.read_timeout_is_speed_check() => {
                TransportError::TooSlow {
                    url,
                    received: 0,
                    window: self.config.speed_time,
                    limit: self.config.speed_limit,
                }
            }
            other => TransportError::Network {
                url,
                source: describe_ureq(other, &self.config, peer, self.roots()),
            },
        }
    }
}

/// Where a request goes: the agent (direct, or the forwarding one for absolute form), the
/// proxy to tunnel through, and what messages say about it.
struct Route<'a> {
    agent: &'a Agent,
    tunnel: Option<&'a Proxy>,
    /// The variable the proxy came from, for messages.
    proxy_var: Option<&'a str>,
    peer: Option<tls::Peer<'a>>,
}
