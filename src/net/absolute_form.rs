//! Plain `http://` requests through an HTTP proxy, in absolute form (`GET http://host/path`).
//!
//! ureq 3 reaches every target through an HTTP proxy with `CONNECT host:port`, and many
//! proxies allow CONNECT only to port 443. curl (and ureq 2) send a plain HTTP request to
//! the proxy instead, naming the whole target URL in the request line (RFC 9112 §3.2.2).
//! ureq has no option for that, and its request line always holds only the path. So a
//! separate agent is used for these requests: it connects to the proxy as if the proxy
//! were the origin, the request carries the target's `Host` header, and a thin wrapper
//! around the connection rewrites each request line `GET /path HTTP/1.1` into
//! `GET http://<Host>/path HTTP/1.1` on its way out.
//!
//! This builds on ureq's `unversioned` transport API, which may change between ureq
//! releases; Cargo.lock pins the version it was written against.

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, RustlsConnector, TcpConnector, Transport,
};
use ureq::{Agent, Error, config::Config};

/// An agent whose requests go, in absolute form, to the host of the URI they are given
/// (the proxy); each request must set `Host` to the real target's authority.
pub(super) fn agent(config: Config) -> Agent {
    let connector =
        ().chain(TcpConnector::default())
            .chain(RustlsConnector::default())
            .chain(AbsoluteFormConnector);
    Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Wraps every connection in an [`AbsoluteForm`].
#[derive(Debug)]
struct AbsoluteFormConnector;

impl<In: Transport> Connector<In> for AbsoluteFormConnector {
    type Out = AbsoluteForm<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| AbsoluteForm { inner }))
    }
}

/// A connection to a proxy that rewrites outgoing request lines into absolute form.
#[derive(Debug)]
struct AbsoluteForm<T> {
    inner: T,
}

impl<T: Transport> Transport for AbsoluteForm<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let written = self.inner.buffers().output();
        let Some(rewritten) = written.get(..amount).and_then(rewrite_request_head) else {
            return self.inner.transmit_output(amount, timeout);
        };
        // The rewritten head is longer than what ureq wrote; send it through the same
        // output buffer, as many pieces as it takes.
        let mut rest = rewritten.as_slice();
        while !rest.is_empty() {
            let out = self.inner.buffers().output();
            let n = out.len().min(rest.len());
            if n == 0 {
                return Err(Error::Io(std::io::Error::other(
                    "no output buffer for the request to the proxy",
                )));
            }
            out[..n].copy_from_slice(&rest[..n]);
            self.inner.transmit_output(n, timeout)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `METHOD /path VERSION` + headers with `Host: h` becomes `METHOD http://h/path VERSION` +
/// the same headers. `None` for anything that is not a complete request head in origin
/// form with a `Host` header, which is then sent as it is.
fn rewrite_request_head(head: &[u8]) -> Option<Vec<u8>> {
    let head_end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !target.starts_with('/') {
        return None;
    }
    let host = head[line_end + 2..head_end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find_map(|l| {
            let (name, value) = std::str::from_utf8(l).ok()?.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("host")
                .then(|| value.trim())
        })
        .filter(|h| !h.is_empty())?;
    let mut out = format!("{method} http://{host}{target} {version}").into_bytes();
    out.extend_from_slice(&head[line_end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_rewritten_into_absolute_form_using_the_host_header() {
        let head =
            b"GET /o/manifest?x HTTP/1.1\r\nhost: origin.example:8080\r\nuser-agent: t\r\n\r\n";
        let out = rewrite_request_head(head).unwrap();
        assert_eq!(
            out,
            b"GET http://origin.example:8080/o/manifest?x HTTP/1.1\r\nhost: origin.example:8080\r\nuser-agent: t\r\n\r\n"
        );
    }

    #[test]
    fn anything_but_a_complete_origin_form_head_with_a_host_is_left_alone() {
        assert_eq!(
            rewrite_request_head(b"GET /x HTTP/1.1\r\nhost: h\r\n"),
            None
        );
        assert_eq!(
            rewrite_request_head(b"GET /x HTTP/1.1\r\naccept: */*\r\n\r\n"),
            None
        );
        assert_eq!(
            rewrite_request_head(b"GET http://h/x HTTP/1.1\r\nhost: h\r\n\r\n"),
            None
        );
        assert_eq!(rewrite_request_head(b"body bytes"), None);
    }
}
