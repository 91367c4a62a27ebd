//! Which proxy a request goes through, from `http_proxy`, `https_proxy` and `no_proxy`,
//! and plain `http://` requests sent to a proxy in absolute form.
//!
//! The choice is made per request rather than by ureq, which picks one proxy for every
//! request (whatever the target scheme) and does not treat a `no_proxy` entry
//! `example.com` as covering its subdomains; the list itself is read by
//! `format::no_proxy`.

use ureq::http::uri::{Authority, Scheme};
use ureq::http::{HeaderName, HeaderValue, Uri, header};
use ureq::{Proxy, ProxyProtocol};

use crate::format::no_proxy::NoProxy;
use crate::format::text::untrusted;

use super::credentials::basic_auth;
use super::error::TransportError;
use super::request::Target;

/// Which proxy to use for which URL, from `http_proxy`, `https_proxy` and `no_proxy`.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    http: Option<ProxyVar>,
    https: Option<ProxyVar>,
    no_proxy: NoProxy,
}

#[derive(Debug, Clone)]
struct ProxyVar {
    pub(super) name: String,
    pub(super) value: String,
}

impl ProxyConfig {
    /// No proxy at all, whatever the environment says.
    #[cfg(test)]
    pub fn none() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// Reads the process environment.
    pub fn from_env() -> ProxyConfig {
        ProxyConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the proxy variables through `lookup`, so they can be given without touching
    /// the process environment.
    ///
    /// The lower-case spelling wins over the upper-case one, as in curl; an empty value
    /// counts as unset. `all_proxy` is not read, because the SOCKS proxies it usually
    /// names are not supported.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let var = |lower: &str, upper: &str| {
            [lower, upper].into_iter().find_map(|name| {
                let value = lookup(name)?;
                let value = value.trim();
                (!value.is_empty()).then(|| ProxyVar {
                    name: name.to_owned(),
                    value: value.to_owned(),
                })
            })
        };
        let no_proxy = var("no_proxy", "NO_PROXY")
            .map(|v| NoProxy::parse(&v.value))
            .unwrap_or_default();
        ProxyConfig {
            http: var("http_proxy", "HTTP_PROXY"),
            https: var("https_proxy", "HTTPS_PROXY"),
            no_proxy,
        }
    }

    /// The proxy for a request to `url` and the variable it came from, or `None` to connect
    /// directly.
    pub(super) fn proxy_for(
        &self,
        url: &str,
        target: &Target,
    ) -> Result<Option<(Proxy, String)>, TransportError> {
        let var = if target.https {
            &self.https
        } else {
            &self.http
        };
        let Some(var) = var else {
            return Ok(None);
        };
        if self.no_proxy.matches(&target.host, target.port) {
            return Ok(None);
        }
        let unusable = |reason: &str| TransportError::Proxy {
            url: url.to_owned(),
            var: var.name.clone(),
            reason: reason.to_owned(),
        };
        let proxy = Proxy::new(&var.value).map_err(|_| unusable("not a valid proxy URL"))?;
        // ureq panics on a hand-made SOCKS proxy when built without its socks feature, so
        // anything but an HTTP(S) CONNECT proxy must be refused here.
        if !matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https) {
            return Err(unusable("only http:// and https:// proxies are supported"));
        }
        Ok(Some((proxy, var.name.clone())))
    }
}

/// A request for an `http://` target sent to `proxy` in absolute form: the URI to give the
/// forwarding agent (see [`absolute_form`](super::absolute_form)), which connects to the
/// proxy as if it were the origin, and the headers that go with it: `Host` names the
/// target, from which the request line is rewritten, and `Proxy-Authorization` carries the
/// proxy URL's credentials.
pub(super) fn absolute_form(
    target: &Target,
    proxy: &Proxy,
) -> Result<(Uri, Vec<(HeaderName, HeaderValue)>), String> {
    let scheme = match proxy.protocol() {
        ProxyProtocol::Https => Scheme::HTTPS,
        _ => Scheme::HTTP,
    };
    let host = proxy.host();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let authority: Authority = format!("{host}:{}", proxy.port())
        .parse()
        .map_err(|_| "the proxy's host is not usable".to_owned())?;
    let mut parts = target.uri.clone().into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    let uri = Uri::from_parts(parts).map_err(|e| untrusted(&e.to_string()))?;
    let target_authority = target.uri.authority().map_or("", Authority::as_str);
    let host = HeaderValue::from_str(target_authority)
        .map_err(|_| "the target's host is not usable".to_owned())?;
    let mut headers = vec![(header::HOST, host)];
    if let Some(user) = proxy.username() {
        let password = proxy.password().unwrap_or("");
        if let Some(value) = basic_auth(user.as_bytes(), password.as_bytes()) {
            headers.push((header::PROXY_AUTHORIZATION, value));
        }
    }
    Ok((uri, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> ProxyConfig {
        ProxyConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn proxy_host(cfg: &ProxyConfig, url: &str) -> Option<String> {
        let target = Target::parse(url).unwrap();
        cfg.proxy_for(url, &target)
            .unwrap()
            .map(|(p, _)| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn proxy_is_chosen_by_the_target_scheme() {
        let cfg = lookup(&[
            ("http_proxy", "http://plain:3128"),
            ("HTTPS_PROXY", "secure:3129"),
        ]);
        assert_eq!(
            proxy_host(&cfg, "http://a.example/manifest").as_deref(),
            Some("plain:3128")
        );
        assert_eq!(
            proxy_host(&cfg, "https://a.example/manifest").as_deref(),
            Some("secure:3129")
        );
    }

    #[test]
    fn lower_case_proxy_variables_win_and_empty_ones_count_as_unset() {
        let cfg = lookup(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
            ("https_proxy", ""),
            ("HTTPS_PROXY", "http://upper:3"),
        ]);
        assert_eq!(proxy_host(&cfg, "http://h/").as_deref(), Some("lower:1"));
        assert_eq!(proxy_host(&cfg, "https://h/").as_deref(), Some("upper:3"));
    }

    #[test]
    fn no_proxy_hosts_connect_directly() {
        let cfg = lookup(&[
            ("http_proxy", "http://p:3128"),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ]);
        assert_eq!(proxy_host(&cfg, "http://127.0.0.1:8000/x"), None);
        assert_eq!(proxy_host(&cfg, "http://LocalHost/x"), None);
        assert!(proxy_host(&cfg, "http://remote.example/x").is_some());
    }

    #[test]
    fn socks_and_garbage_proxies_are_errors_naming_the_variable_and_url() {
        let url = "https://h.example/manifest";
        let target = Target::parse(url).unwrap();
        for cfg in [
            lookup(&[("https_proxy", "socks5://p:1080")]),
            lookup(&[("https_proxy", "ftp://p:21")]),
        ] {
            let err = cfg.proxy_for(url, &target).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("$https_proxy") && msg.contains(url), "{msg}");
            assert!(!msg.contains("p:1080") && !msg.contains("p:21"), "{msg}");
        }
    }
}
