//! One GET of an http(s) URL: the request (proxy, credentials, validators, range), the
//! redirects followed by hand, and the answer checked and turned into a [`Body`] or an
//! error.
//!
//! Redirects are followed here rather than by ureq, which would follow one to any scheme it
//! thinks has a default port (`socks5://` included): each hop gets its own scheme check,
//! its own proxy decision and its own decision whether the origin's credentials may be
//! sent.

use std::io::Read;
use std::time::SystemTime;

use ureq::http::uri::{Authority, PathAndQuery, Scheme};
use ureq::http::{HeaderName, HeaderValue, StatusCode, Uri, header};

use crate::format::byteranges;
use crate::format::http_fields::{self, content_range, page_says, retry_after, validator};
use crate::format::origin_url::{Scope, show_url};
use crate::format::text::untrusted;

use super::body::{Body, Inner, read_capped};
use super::error::TransportError;
use super::file::open_file;
use super::wire::Method;
use super::{Answer, Conditions, MAX_REDIRECTS, Transport};

/// An http(s) URL taken apart for a request: the scheme, host and port pick a proxy and
/// decide whether credentials go along; `uri` is what ureq is asked for.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// The URL without any user part, which ureq would otherwise send as credentials.
    pub(super) uri: Uri,
}

impl Target {
    /// Parses `url`; errors name it as `shown`, the form fit for messages.
    pub(super) fn parse_shown(url: &str, shown: &str) -> Result<Target, TransportError> {
        let invalid = |reason: &str| TransportError::InvalidUrl {
            url: shown.to_owned(),
            reason: untrusted(reason),
        };
        let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(TransportError::UnsupportedScheme {
                    url: shown.to_owned(),
                });
            }
        };
        let authority = uri.authority().map_or("", Authority::as_str);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let clean: Authority = host_port.parse().map_err(|_| invalid("no host name"))?;
        let host = clean.host();
        if host.is_empty() {
            return Err(invalid("no host name"));
        }
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(if https { Scheme::HTTPS } else { Scheme::HTTP });
        parts.authority = Some(clean.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        let uri = Uri::from_parts(parts).map_err(|e| invalid(&format!("{e}")))?;
        Ok(Target {
            https,
            host: host.to_owned(),
            port: clean.port_u16().unwrap_or(if https { 443 } else { 80 }),
            uri,
        })
    }

    /// Whether this target is the scheme, host and port of `scope`.
    pub(super) fn is_in(&self, scope: &Scope) -> bool {
        scope.covers(self.https, &self.host, self.port)
    }

    #[cfg(test)]
    pub(super) fn parse(url: &str) -> Result<Target, TransportError> {
        Target::parse_shown(url, &show_url(url))
    }
}

/// Resolves a `Location` header against the absolute http(s) URL it came from, without
/// the fragment (which is never sent to a server).
fn resolve_location(base: &str, location: &str) -> Result<url::Url, url::ParseError> {
    let mut next = url::Url::parse(base)?.join(location.trim())?;
    next.set_fragment(None);
    Ok(next)
}

/// Parses a URL handed to [`Transport::open`]; errors name it as `shown`.
fn parse_url(url: &str, shown: &str) -> Result<url::Url, TransportError> {
    url::Url::parse(url).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => TransportError::UnsupportedScheme {
            url: shown.to_owned(),
        },
        other => TransportError::InvalidUrl {
            url: shown.to_owned(),
            reason: other.to_string(),
        },
    })
}

impl Transport {
    /// Opens `url` for streaming. Only status 200 counts as success.
    ///
    /// Errors name the URL that failed, which after a redirect is the redirect's target, in
    /// the form of [`show_url`].
    #[cfg(test)]
    pub fn open(&self, url: &str) -> Result<Body, TransportError> {
        self.open_with(url, &Conditions::default())
    }

    /// Opens `url` with `conditions`: besides 200, a 206 that answers `range_from` and a 304
    /// that answers the validators count as success; [`Body::answer`] tells which came.
    ///
    /// A `file://` URL has no validators, so it is never "not modified"; a range is served
    /// by seeking.
    pub fn open_with(&self, url: &str, conditions: &Conditions) -> Result<Body, TransportError> {
        let shown = show_url(url);
        let parsed = parse_url(url, &shown)?;
        match parsed.scheme() {
            "http" | "https" => self.open_http(parsed, shown, conditions),
            "file" => open_file(
                &parsed,
                shown,
                self.deadline,
                self.limit.clone(),
                conditions.range_from,
                conditions.range_to,
            ),
            _ => Err(TransportError::UnsupportedScheme { url: shown }),
        }
    }

    /// Reads all of a small body such as a manifest, failing with `TooLarge` as soon as
    /// more than `max` bytes arrive; at most `max + 1` bytes are ever buffered.
    pub fn get_capped(&self, url: &str, max: u64) -> Result<Vec<u8>, TransportError> {
        Ok(self
            .get_capped_with(url, max, &Conditions::default())?
            .bytes)
    }

    /// As [`Transport::get_capped`], with `conditions`; a 304 comes back with no bytes.
    pub fn get_capped_with(
        &self,
        url: &str,
        max: u64,
        conditions: &Conditions,
    ) -> Result<Small, TransportError> {
        let mut body = self.open_with(url, conditions)?;
        let bytes = if body.answer() == Answer::NotModified {
            Vec::new()
        } else {
            read_capped(&mut body, max)?
        };
        Ok(Small {
            url: body.url.clone(),
            answer: body.answer,
            bytes,
            etag: body.etag.take(),
            last_modified: body.last_modified.take(),
        })
    }
}

/// A small file read whole, with what the server said about it.
#[derive(Debug)]
pub struct Small {
    /// Where it came from after any redirects, fit to print.
    pub url: String,
    pub answer: Answer,
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Transport {
    fn open_http(
        &self,
        mut url: url::Url,
        shown: String,
        conditions: &Conditions,
    ) -> Result<Body, TransportError> {
        url.set_fragment(None);
        let mut current = String::from(url);
        let mut current_shown = show_url(&current);
        let mut redirects = 0;
        loop {
            let target = Target::parse_shown(&current, &current_shown)?;
            let response = self.get(&target, &current_shown, conditions)?;
            let status = response.status();
            if !is_followed_redirect(status) {
                let sent = self
                    .credentials
                    .as_ref()
                    .filter(|c| c.applies_to(&target))
                    .and_then(|c| c.from.as_deref());
                return self.finish(current_shown, response, conditions, sent);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .ok_or_else(|| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: format!("HTTP {} without a Location header", status.as_u16()),
                })?
                .to_str()
                .map_err(|_| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: "the Location header is not ASCII".to_owned(),
                })?;
            let next =
                resolve_location(&current, location).map_err(|e| TransportError::BadRedirect {
                    url: current_shown.clone(),
                    reason: format!("the Location header is not a usable URL ({e})"),
                })?;
            if redirects == MAX_REDIRECTS {
                return Err(TransportError::TooManyRedirects {
                    url: shown,
                    max: MAX_REDIRECTS,
                    last: show_url(next.as_str()),
                });
            }
            if !matches!(next.scheme(), "http" | "https") {
                return Err(TransportError::RedirectRefused {
                    url: current_shown,
                    location: show_url(next.as_str()),
                });
            }
            if target.https && next.scheme() == "http" {
                return Err(TransportError::InsecureRedirect {
                    url: current_shown,
                    location: show_url(next.as_str()),
                });
            }
            current_shown = show_url(next.as_str());
            current = String::from(next);
            redirects += 1;
        }
    }

    /// One GET of `target` with `conditions`, directly or through the proxy its scheme
    /// calls for, with the origin's credentials where they apply.
    fn get(
        &self,
        target: &Target,
        shown: &str,
        conditions: &Conditions,
    ) -> Result<ureq::http::Response<ureq::Body>, TransportError> {
        let mut headers = Vec::new();
        let mut add = |name: HeaderName, value: &str| {
            let value = HeaderValue::from_str(value).map_err(|_| TransportError::BadHeader {
                url: shown.to_owned(),
                name: name.to_string(),
            })?;
            headers.push((name, value));
            Ok::<(), TransportError>(())
        };
        if let Some(etag) = &conditions.if_none_match {
            add(header::IF_NONE_MATCH, etag)?;
        }
        if let Some(date) = &conditions.if_modified_since {
            add(header::IF_MODIFIED_SINCE, date)?;
        }
        if let Some(from) = conditions.range_from {
            let to = conditions
                .range_to
                .map(|to| to.to_string())
                .unwrap_or_default();
            add(header::RANGE, &format!("bytes={from}-{to}"))?;
            if let Some(validator) = &conditions.if_range {
                add(header::IF_RANGE, validator)?;
            }
        } else if !conditions.ranges.is_empty() {
            add(header::RANGE, &byteranges::range_value(&conditions.ranges))?;
        }
        self.exchange(
            Method::Get,
            target,
            shown,
            self.credentials.as_ref(),
            headers,
            None,
        )
    }

    /// Turns the answer into a [`Body`] or an error; `sent` names where the credentials sent
    /// with the request came from, for the message of a server that refuses them.
    fn finish(
        &self,
        url: String,
        response: ureq::http::Response<ureq::Body>,
        conditions: &Conditions,
        sent: Option<&str>,
    ) -> Result<Body, TransportError> {
        let status = response.status();
        let headers = response.headers();
        let mut boundary = None;
        let answer = match status {
            StatusCode::OK => Answer::Whole,
            StatusCode::PARTIAL_CONTENT
                if conditions.range_from.is_some() || !conditions.ranges.is_empty() =>
            {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let multipart = content_type
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/byteranges");
                if multipart && conditions.ranges.len() > 1 {
                    // Several ranges in one body (RFC 9110 §14.6), as asked: the caller
                    // reads the parts with the boundary.
                    let found = byteranges::boundary(content_type).map_err(|e| {
                        TransportError::BadPartial {
                            url: url.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    boundary = Some(found);
                    Answer::Partial {
                        start: conditions.ranges.first().map_or(0, |r| r.0),
                    }
                } else {
                    // Several ranges for one range asked: the parts' headers would be taken
                    // for the file's bytes.
                    if multipart {
                        return Err(TransportError::BadPartial {
                            url,
                            reason: "it sent several ranges (multipart/byteranges) for one"
                                .to_owned(),
                        });
                    }
                    let (start, last) = content_range(
                        headers
                            .get(header::CONTENT_RANGE)
                            .map(HeaderValue::as_bytes),
                    )
                    .map_err(|reason| TransportError::BadPartial {
                        url: url.clone(),
                        reason,
                    })?;
                    // A bounded range must come back exactly as asked: a delta places the
                    // bytes by position, and a server that sends others would corrupt the
                    // image.
                    if let (Some(from), Some(to)) = (conditions.range_from, conditions.range_to)
                        && (start, last) != (from, to)
                    {
                        return Err(TransportError::BadPartial {
                            url,
                            reason: format!("it sent bytes {start}-{last} for bytes {from}-{to}"),
                        });
                    }
                    Answer::Partial { start }
                }
            }
            StatusCode::NOT_MODIFIED if conditions.is_conditional() => Answer::NotModified,
            StatusCode::NOT_FOUND => return Err(TransportError::NotFound { url }),
            StatusCode::GONE => return Err(TransportError::Gone { url }),
            _ => {
                let canonical = status.canonical_reason().unwrap_or("");
                let retry_after = retry_after(
                    headers.get(header::RETRY_AFTER).map(HeaderValue::as_bytes),
                    SystemTime::now(),
                );
                // A refusal of the client (no or a wrong client certificate, missing
                // credentials) is often explained only in the page: nginx answers both
                // certificate problems with a plain 400 whose title says which.
                let says = matches!(status.as_u16(), 400 | 401 | 403)
                    .then(|| server_says(response, canonical))
                    .flatten();
                let mut reason = match says {
                    Some(says) => format!("{canonical} (the server says: {says})"),
                    None => canonical.to_owned(),
                };
                // Wrong credentials are fixed where they are kept: say which file that is.
                if let Some(from) = sent.filter(|_| matches!(status.as_u16(), 401 | 403)) {
                    reason.push_str(&format!(" (the credentials sent came from the {from})"));
                }
                return Err(TransportError::Status {
                    url,
                    status: status.as_u16(),
                    reason,
                    retry_after,
                });
            }
        };
        if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
            let encoding = String::from_utf8_lossy(encoding.as_bytes());
            let encoding = encoding.trim();
            if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
                return Err(TransportError::Compressed {
                    url,
                    encoding: untrusted(encoding),
                });
            }
        }
        let etag = validator(headers.get(header::ETAG).map(HeaderValue::as_bytes));
        let date = headers.get(header::DATE).map(HeaderValue::as_bytes);
        let last_modified = validator(
            headers
                .get(header::LAST_MODIFIED)
                .map(HeaderValue::as_bytes),
        )
        .filter(|modified| http_fields::last_modified_is_strong(modified, date));
        let body = response.into_body();
        let content_length = match answer {
            Answer::NotModified => Some(0),
            _ => body.content_length(),
        };
        let mut body = Body::new(
            url,
            content_length,
            Inner::Http(body.into_reader()),
            self.config,
            self.deadline,
        )
        .limited(self.limit.clone());
        body.answer = answer;
        body.etag = etag;
        body.last_modified = last_modified;
        body.boundary = boundary;
        Ok(body)
    }
}

/// The title of an error page (or the first line of a plain-text one), if it says more than
/// the status's own reason; escaped and cut, as any text from the network. At most 4 KiB of
/// the body are read.
fn server_says(response: ureq::http::Response<ureq::Body>, canonical: &str) -> Option<String> {
    let mut head = Vec::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(4096)
        .read_to_end(&mut head);
    page_says(&head, canonical)
}

/// Statuses whose `Location` we follow. 300 and 304 are not redirects a GET can follow,
/// and 305 (use proxy) is deprecated for security reasons.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::transport_config::TransportConfig;
    use crate::net::ProxyConfig;

    #[test]
    fn open_refuses_schemes_other_than_http_https_and_file() {
        let transport = Transport::with_proxies(TransportConfig::default(), ProxyConfig::none());
        for url in ["ftp://h/manifest", "manifest", "socks5://h/x", ""] {
            let err = transport.open(url).unwrap_err();
            assert!(
                matches!(err, TransportError::UnsupportedScheme { .. }),
                "{url}: {err:?}"
            );
            assert!(err.to_string().contains(url));
        }
    }

    #[test]
    fn redirect_locations_resolve_against_the_current_url() {
        let base = "http://h:8/a/b/c?q=1";
        let resolve = |location: &str| String::from(resolve_location(base, location).unwrap());
        assert_eq!(resolve("https://o/x"), "https://o/x");
        assert_eq!(resolve("//o/x"), "http://o/x");
        assert_eq!(resolve("/x/y"), "http://h:8/x/y");
        assert_eq!(resolve("d"), "http://h:8/a/b/d");
        assert_eq!(resolve("../d?z"), "http://h:8/a/d?z");
        assert_eq!(resolve("./"), "http://h:8/a/b/");
        assert_eq!(resolve("?r"), "http://h:8/a/b/c?r");
        assert_eq!(resolve("/x#frag"), "http://h:8/x");
        assert_eq!(resolve("../../../../x"), "http://h:8/x");
        assert_eq!(resolve("file:///etc/passwd"), "file:///etc/passwd");
        assert_eq!(
            String::from(resolve_location("http://h", "x").unwrap()),
            "http://h/x"
        );
    }

    #[test]
    fn requests_never_carry_the_user_part_of_a_url() {
        let target = Target::parse("http://u:p@h:81/x?y").unwrap();
        assert_eq!(target.uri.to_string(), "http://h:81/x?y");
        assert_eq!(target.host, "h");
        assert_eq!(target.port, 81);
    }
}
