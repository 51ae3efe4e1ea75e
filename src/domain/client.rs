//! Who a client is, for the limits kept per client (sign-in failures, connections): the
//! key an address is counted under, and the address behind a reverse proxy that the
//! operator trusts to say it (`X-Forwarded-For`).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The key an address is counted under: an IPv4 address as it is, an IPv6 address by its
/// /64 — one subscriber's network, in which a host picks new addresses at will, so keyed
/// by address it would have 2^64 tries — and an IPv4-mapped IPv6 address as its IPv4.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// `::ffff:a.b.c.d` (what a dual-stack listener sees of an IPv4 client) as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`trusted_proxies`). Empty by
/// default: then the peer of the connection is the client, whatever headers it sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses (`10.0.0.5`, `::1`) and networks (`10.0.0.0/8`).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "{s:?} is not an IP address or a CIDR (e.g. 10.0.0.5 or 10.0.0.0/8)"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address. The peer, unless it is a trusted proxy; then the rightmost
    /// address of `X-Forwarded-For` (its values in order, each a comma-separated list) that
    /// is not a trusted proxy: every entry left of the nearest untrusted hop was written by
    /// that hop, the client itself, and may be forged. If every entry is a trusted proxy,
    /// the leftmost; at an entry that is not an address, the last trusted hop before it.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|v| v.split(','))
            .filter(|h| !h.trim().is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, and the forms with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`) or brackets some proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:1:2:3")),
        );
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(limit_key(ip("192.0.2.7")), limit_key(ip("192.0.2.8")));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_networks() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.1,::1 ,").unwrap();
        assert!(t.contains(ip("10.9.8.7")));
        assert!(t.contains(ip("192.0.2.1")));
        assert!(!t.contains(ip("192.0.2.2")));
        assert!(t.contains(ip("::1")));
        assert!(
            t.contains(ip("::ffff:10.1.1.1")),
            "mapped IPv4 counts as IPv4"
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let e = TrustedProxies::parse("10.0.0.0/8,proxy.internal").unwrap_err();
        assert!(e.contains("proxy.internal"), "{e}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let client = |peer: &str, xff: &[&str]| t.client(ip(peer), xff.iter().copied());
        // Not from a trusted proxy: the header is the client's own word, ignored.
        assert_eq!(client("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        // From the proxy: the address it saw.
        assert_eq!(client("10.0.0.2", &["198.51.100.1"]), ip("198.51.100.1"));
        // A forged entry left of the real one changes nothing.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 198.51.100.1"]),
            ip("198.51.100.1")
        );
        // Through two trusted proxies, and over several header lines.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 198.51.100.1", "10.0.0.3"]),
            ip("198.51.100.1")
        );
        // Ports, brackets and mapped addresses.
        assert_eq!(
            client("10.0.0.2", &["[2001:db8::5]:443"]),
            ip("2001:db8::5")
        );
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1:5000"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("::ffff:10.0.0.2", &["::ffff:198.51.100.1"]),
            ip("198.51.100.1")
        );
        // No header, all trusted, garbage: never an address the client chose.
        assert_eq!(client("10.0.0.2", &[]), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["10.0.0.7, 10.0.0.3"]), ip("10.0.0.7"));
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, unknown, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        // Without trusted proxies, the header is never read.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.2"), ["198.51.100.1"].into_iter()),
            ip("10.0.0.2")
        );
    }
}
