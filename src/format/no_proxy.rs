//! The `no_proxy` list: which hosts are reached directly although a proxy is set.
//!
//! Follows curl: comma-separated entries; `*` alone matches every host; `example.com`,
//! `.example.com` and `*.example.com` all match `example.com` and its subdomains; an IP
//! address matches only itself, and `10.0.0.0/8` style entries match addresses in the
//! network. Unlike curl, `host:port` restricts an entry to one port, as Go does.

// `core::net`: the addresses are plain values; nothing here touches a socket.
use core::net::IpAddr;

use super::origin_url::normalize_host;

/// A parsed `no_proxy` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    Domain { name: String, port: Option<u16> },
    Ip { addr: IpAddr, port: Option<u16> },
    Network { addr: IpAddr, prefix: u8 },
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
            } else if let Some(parsed) = NoProxyEntry::parse(entry) {
                no_proxy.entries.push(parsed);
            }
        }
        no_proxy
    }

    /// Whether a request to `host` (as in a URL: `[v6]` brackets are fine) and `port`
    /// goes around the proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = normalize_host(host);
        let ip = host.parse::<IpAddr>().ok();
        self.entries
            .iter()
            .any(|entry| entry.matches(&host, ip, port))
    }
}

impl NoProxyEntry {
    /// `None` for entries that cannot match anything (bad port or prefix): ignoring them is
    /// what curl does, and failing every download over a typo in `no_proxy` would be worse.
    fn parse(entry: &str) -> Option<NoProxyEntry> {
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr = normalize_host(addr).parse::<IpAddr>().ok()?;
            let prefix = prefix.parse::<u8>().ok()?;
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            return (prefix <= bits).then_some(NoProxyEntry::Network { addr, prefix });
        }
        let (host, port) = split_host_port(entry)?;
        let host = normalize_host(host);
        let host = host.strip_prefix("*.").unwrap_or(&host);
        let host = host.strip_prefix('.').unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        Some(match host.parse::<IpAddr>() {
            Ok(addr) => NoProxyEntry::Ip { addr, port },
            Err(_) => NoProxyEntry::Domain {
                name: host.to_owned(),
                port,
            },
        })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none_or(|want| want == port);
        match self {
            NoProxyEntry::Domain { name, port: want } => {
                port_ok(want)
                    && (host == name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            NoProxyEntry::Ip { addr, port: want } => port_ok(want) && ip == Some(*addr),
            NoProxyEntry::Network { addr, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *addr, *prefix))
            }
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]` or a bare host. A bare IPv6 address has several
/// colons and no port. `None` if a port is present but not a number.
fn split_host_port(entry: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, Some(port.parse().ok()?))),
        _ => Some((entry, None)),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_domain_entries_cover_subdomains_but_not_lookalikes() {
        let np = NoProxy::parse("example.com, .internal ,*.corp.net");
        assert!(np.matches("example.com", 80));
        assert!(np.matches("a.b.example.com", 443));
        assert!(np.matches("EXAMPLE.com.", 80));
        assert!(!np.matches("badexample.com", 80));
        assert!(!np.matches("example.com.evil", 80));
        assert!(np.matches("internal", 80));
        assert!(np.matches("x.internal", 80));
        assert!(np.matches("corp.net", 80));
        assert!(np.matches("a.corp.net", 80));
        assert!(!np.matches("other.org", 80));
    }

    #[test]
    fn no_proxy_star_matches_everything() {
        assert!(NoProxy::parse("foo,*").matches("anything.example", 8080));
        assert!(!NoProxy::parse("").matches("anything.example", 8080));
    }

    #[test]
    fn no_proxy_ip_and_network_entries_match_addresses() {
        let np = NoProxy::parse("127.0.0.1,10.0.0.0/8,::1,fd00::/8");
        assert!(np.matches("127.0.0.1", 80));
        assert!(!np.matches("127.0.0.2", 80));
        assert!(np.matches("10.200.3.4", 80));
        assert!(!np.matches("11.0.0.1", 80));
        assert!(np.matches("[::1]", 80));
        assert!(np.matches("[fd12::5]", 80));
        assert!(!np.matches("[fe80::1]", 80));
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8", 53));
    }

    #[test]
    fn no_proxy_entries_with_a_port_apply_only_to_that_port() {
        let np = NoProxy::parse("example.com:8080,[::1]:443");
        assert!(np.matches("example.com", 8080));
        assert!(!np.matches("example.com", 80));
        assert!(np.matches("[::1]", 443));
        assert!(!np.matches("[::1]", 80));
    }

    #[test]
    fn no_proxy_ignores_malformed_entries() {
        let np = NoProxy::parse("example.com:notaport,10.0.0.0/99,,.,[::1,good.org");
        assert_eq!(np.entries.len(), 1);
        assert!(np.matches("good.org", 80));
    }
}
