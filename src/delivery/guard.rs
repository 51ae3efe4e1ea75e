//! The SSRF guard: by default scanhook delivers only to global addresses. The check runs on
//! the addresses a host name resolves to, at connect time (so DNS rebinding cannot slip a
//! private address in), and on IP-literal hosts; an operator allow-list opens CIDRs.
//! "Global" follows the IANA special-purpose address registries, one table for both
//! families; an IPv6 address that stands for an IPv4 one is judged by that address.

use ipnet::{IpNet, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

/// Which non-global networks may be delivered to anyway.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow }
    }

    /// Parses `10.0.0.0/8,127.0.0.0/8`; an empty string allows nothing extra.
    pub fn parse_allow_list(s: &str) -> Result<Vec<IpNet>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse::<IpNet>()
                    .map_err(|e| format!("{c:?} is not a CIDR (e.g. 10.0.0.0/8): {e}"))
            })
            .collect()
    }

    /// Why `ip` may not be delivered to, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        self.why_not(ip).map(|why| {
            format!(
                "refused to deliver to {ip}: not a global address ({why}); allow it with --deliver-allow-cidrs"
            )
        })
    }

    /// For a delivery through a proxy, which resolves `host` itself and may connect to any
    /// of its addresses: why not, unless every address `host` resolves to here passes.
    pub async fn refusal_of_name(&self, host: &str) -> Option<String> {
        match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => self.refusal_of_all(host, addrs.map(|a| a.ip())),
            Err(e) => Some(format!(
                "refused to deliver to {host}: it does not resolve here, so it cannot be vetted: {e}"
            )),
        }
    }

    /// Why not deliver to `host`, unless `ips` (its addresses) are all allowed: one
    /// refused address refuses the name, and so does none at all.
    pub fn refusal_of_all(
        &self,
        host: &str,
        ips: impl IntoIterator<Item = IpAddr>,
    ) -> Option<String> {
        let mut ips = ips.into_iter().peekable();
        if ips.peek().is_none() {
            return Some(format!(
                "refused to deliver to {host}: it resolves to no address"
            ));
        }
        ips.find_map(|ip| {
            self.why_not(ip).map(|why| {
                format!(
                    "refused to deliver to {host}: its address {ip} is not a global address ({why}); allow it with --deliver-allow-cidrs"
                )
            })
        })
    }

    /// The registry entry that keeps `ip` out, unless the allow-list opens it.
    fn why_not(&self, ip: IpAddr) -> Option<String> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        not_global(ip)
    }
}

/// Special-purpose blocks that are not globally reachable, named as in the IANA IPv4 and
/// IPv6 Special-Purpose Address Registries (or the multicast and IPv6 address space
/// registries). A narrower entry comes before the block that holds it, so that a refusal
/// names it. Left out on purpose: entries marked "Globally Reachable: True" that lie
/// outside these blocks (AS112-v4 192.31.196.0/24, AMT 192.52.193.0/24, AS112 192.175.48.0/24,
/// 2620:4f:8000::/48), and the forms judged by the IPv4 address they carry (see
/// [`embedded_ipv4`]): IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 and 6to4 2002::/16.
const NOT_GLOBAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"This network\""),
    ("10.0.0.0/8", "Private-Use"),
    ("100.64.0.0/10", "Shared Address Space"),
    ("127.0.0.0/8", "Loopback"),
    ("169.254.0.0/16", "Link Local"),
    ("172.16.0.0/12", "Private-Use"),
    ("192.0.0.0/24", "IETF Protocol Assignments"),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)"),
    // Deprecated; its one live entry, 6a44-relay anycast 192.88.99.2/32, is not global either.
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)"),
    ("192.168.0.0/16", "Private-Use"),
    ("198.18.0.0/15", "Benchmarking"),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "Multicast"),
    ("255.255.255.255/32", "Limited Broadcast"),
    ("240.0.0.0/4", "Reserved"),
    ("::1/128", "Loopback Address"),
    ("::/128", "Unspecified Address"),
    // Deprecated (RFC 4291) and obsolete (RFC 2765): no route carries these to the IPv4
    // address, but a host's own stack or an old tunnel might.
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    // Local-use (RFC 8215): a translator of this network's own, so never global.
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local-use)"),
    ("100::/64", "Discard-Only Address Block"),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix"),
    // "Globally Reachable: N/A": where a Teredo address leads is up to a relay and the
    // NAT in front of its client (the last 32 bits, inverted); refused whole.
    ("2001::/32", "TEREDO"),
    ("2001:2::/48", "Benchmarking"),
    ("2001:10::/28", "Deprecated (previously ORCHID)"),
    ("2001::/23", "IETF Protocol Assignments"),
    ("2001:db8::/32", "Documentation"),
    ("3fff::/20", "Documentation"),
    ("5f00::/16", "Segment Routing (SRv6) SIDs"),
    ("fc00::/7", "Unique-Local"),
    ("fe80::/10", "Link-Local Unicast"),
    ("fec0::/10", "Site-Local (deprecated)"),
    ("ff00::/8", "Multicast"),
];

/// Entries marked "Globally Reachable: True" inside blocks of [`NOT_GLOBAL`].
const GLOBAL_INSIDE: &[&str] = &[
    "192.0.0.9/32",    // Port Control Protocol Anycast
    "192.0.0.10/32",   // Traversal Using Relays around NAT Anycast
    "2001:1::1/128",   // Port Control Protocol Anycast
    "2001:1::2/128",   // Traversal Using Relays around NAT Anycast
    "2001:1::3/128",   // DNS-SD Service Registration Protocol Anycast
    "2001:3::/32",     // AMT
    "2001:4:112::/48", // AS112-v6
    "2001:20::/28",    // ORCHIDv2
    "2001:30::/28",    // Drone Remote ID Protocol Entity Tags (DETs) Prefix
];

/// What the IPv6 Address Space registry allocates as Global Unicast. The rest is reserved
/// or special-purpose, and no webhook lives there: refused, whether listed above or not.
const GLOBAL_UNICAST: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

struct Tables {
    not_global: Vec<(IpNet, &'static str)>,
    global_inside: Vec<IpNet>,
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| Tables {
    not_global: NOT_GLOBAL
        .iter()
        .map(|(net, name)| (net.parse().expect("a CIDR"), *name))
        .collect(),
    global_inside: GLOBAL_INSIDE
        .iter()
        .map(|net| net.parse().expect("a CIDR"))
        .collect(),
});

/// True for addresses on the public internet.
pub fn is_global(ip: IpAddr) -> bool {
    not_global(ip).is_none()
}

/// Why `ip` is not a global address (the registry entry it falls in), or `None` if it is.
fn not_global(ip: IpAddr) -> Option<String> {
    if let Some(name) = listed(ip) {
        return Some(name.to_string());
    }
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    if let Some((form, v4)) = embedded_ipv4(v6) {
        return not_global(v4.into()).map(|why| format!("{form} of {v4}, {why}"));
    }
    (!GLOBAL_UNICAST.contains(&v6)).then(|| "outside Global Unicast 2000::/3".to_string())
}

/// The [`NOT_GLOBAL`] entry that holds `ip`, unless a globally reachable one inside it does.
fn listed(ip: IpAddr) -> Option<&'static str> {
    let tables = &*TABLES;
    if tables.global_inside.iter().any(|net| net.contains(&ip)) {
        return None;
    }
    tables
        .not_global
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, name)| *name)
}

/// The IPv4 address that a packet to `ip` really goes to, and the form that says so: the
/// host's own stack (IPv4-mapped), a NAT64 translator (its well-known prefix) or a 6to4
/// relay. The address alone decides whether such an IPv6 address is global. (The other
/// forms that embed one are refused whole in [`NOT_GLOBAL`].)
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(("IPv4-mapped", v4(hi, lo))),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(("NAT64", v4(hi, lo))),
        [0x2002, hi, lo, ..] => Some(("6to4", v4(hi, lo))),
        _ => None,
    }
}

/// A resolver that drops addresses the guard refuses; fails when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match guard.refusal(a.ip()) {
                    None => true,
                    Some(r) => {
                        refusals.push(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusals
                    .pop()
                    .unwrap_or_else(|| format!("{host} resolved to no address"));
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries, the
    /// multicast blocks, the IPv6 forms that embed an IPv4 address, and global addresses
    /// that must stay deliverable: (address, global?, the registry entry it is in).
    /// "(reported)" marks the addresses of the bypass report.
    #[test]
    fn special_purpose_addresses_follow_the_iana_registries() {
        #[rustfmt::skip]
        let table: &[(&str, bool, &str)] = &[
            // IPv4 Special-Purpose Address Registry.
            ("0.0.0.0",            false, "0.0.0.0/32 This host on this network"),
            ("0.1.2.3",            false, "0.0.0.0/8 This network"),
            ("10.1.2.3",           false, "10.0.0.0/8 Private-Use"),
            ("100.64.0.1",         false, "100.64.0.0/10 Shared Address Space"),
            ("100.127.255.254",    false, "100.64.0.0/10 Shared Address Space"),
            ("100.128.0.1",        true,  "just past 100.64.0.0/10"),
            ("127.0.0.1",          false, "127.0.0.0/8 Loopback"),
            ("127.255.255.254",    false, "127.0.0.0/8 Loopback"),
            ("169.254.169.254",    false, "169.254.0.0/16 Link Local"),
            ("172.16.0.1",         false, "172.16.0.0/12 Private-Use"),
            ("172.31.255.254",     false, "172.16.0.0/12 Private-Use"),
            ("172.32.0.1",         true,  "just past 172.16.0.0/12"),
            ("192.0.0.1",          false, "192.0.0.0/29 IPv4 Service Continuity Prefix"),
            ("192.0.0.8",          false, "192.0.0.8/32 IPv4 dummy address"),
            ("192.0.0.9",          true,  "192.0.0.9/32 Port Control Protocol Anycast"),
            ("192.0.0.10",         true,  "192.0.0.10/32 TURN Anycast"),
            ("192.0.0.170",        false, "192.0.0.170/32 NAT64/DNS64 Discovery"),
            ("192.0.0.255",        false, "192.0.0.0/24 IETF Protocol Assignments"),
            ("192.0.2.1",          false, "192.0.2.0/24 Documentation (TEST-NET-1)"),
            ("192.31.196.1",       true,  "192.31.196.0/24 AS112-v4"),
            ("192.52.193.1",       true,  "192.52.193.0/24 AMT"),
            ("192.88.99.1",        false, "192.88.99.0/24 Deprecated (6to4 Relay Anycast)"),
            ("192.88.99.2",        false, "192.88.99.2/32 6a44-relay anycast address"),
            ("192.168.1.1",        false, "192.168.0.0/16 Private-Use"),
            ("192.175.48.1",       true,  "192.175.48.0/24 Direct Delegation AS112 Service"),
            ("198.18.0.1",         false, "198.18.0.0/15 Benchmarking"),
            ("198.19.255.254",     false, "198.18.0.0/15 Benchmarking"),
            ("198.51.100.1",       false, "198.51.100.0/24 Documentation (TEST-NET-2)"),
            ("203.0.113.1",        false, "203.0.113.0/24 Documentation (TEST-NET-3)"),
            ("240.0.0.1",          false, "240.0.0.0/4 Reserved"),
            ("255.255.255.255",    false, "255.255.255.255/32 Limited Broadcast"),
            // IPv4 Multicast Address Space Registry.
            ("224.0.0.1",          false, "224.0.0.0/24 Local Network Control Block"),
            ("239.255.255.250",    false, "239.0.0.0/8 Administratively Scoped Block"),
            // Global IPv4.
            ("8.8.8.8",            true,  "global"),
            ("1.1.1.1",            true,  "global"),
            ("93.184.216.34",      true,  "global"),
            // IPv6 Special-Purpose Address Registry.
            ("::1",                false, "::1/128 Loopback Address"),
            ("::",                 false, "::/128 Unspecified Address"),
            ("::ffff:127.0.0.1",   false, "::ffff:0:0/96 IPv4-mapped, of Loopback"),
            ("::ffff:10.0.0.1",    false, "::ffff:0:0/96 IPv4-mapped, of Private-Use"),
            ("::ffff:8.8.8.8",     true,  "::ffff:0:0/96 IPv4-mapped, of a global address"),
            ("64:ff9b::7f00:1",    false, "64:ff9b::/96 IPv4-IPv6 Translat., of Loopback"),
            ("64:ff9b::a00:1",     false, "64:ff9b::/96 IPv4-IPv6 Translat., of Private-Use"),
            ("64:ff9b::808:808",   true,  "64:ff9b::/96 IPv4-IPv6 Translat., of 8.8.8.8"),
            ("64:ff9b:1::7f00:1",  false, "64:ff9b:1::/48 local-use (reported)"),
            ("64:ff9b:1::808:808", false, "64:ff9b:1::/48 local-use, whatever it embeds"),
            ("100::1",             false, "100::/64 Discard-Only Address Block"),
            ("100:0:0:1::1",       false, "100:0:0:1::/64 Dummy IPv6 Prefix"),
            ("2001::1",            false, "2001::/32 TEREDO"),
            // TEREDO is "Globally Reachable: N/A": refused whatever its client address
            // (the last 32 bits, inverted) is, here 127.0.0.1 and 8.8.8.8.
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", false, "2001::/32 TEREDO"),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false, "2001::/32 TEREDO"),
            ("2001:1::1",          true,  "2001:1::1/128 Port Control Protocol Anycast"),
            ("2001:1::2",          true,  "2001:1::2/128 TURN Anycast"),
            ("2001:1::3",          true,  "2001:1::3/128 DNS-SD SRP Anycast"),
            ("2001:1::4",          false, "2001::/23 IETF Protocol Assignments"),
            ("2001:2::1",          false, "2001:2::/48 Benchmarking"),
            ("2001:3::1",          true,  "2001:3::/32 AMT"),
            ("2001:4:112::1",      true,  "2001:4:112::/48 AS112-v6"),
            ("2001:4:113::1",      false, "2001::/23 IETF Protocol Assignments"),
            ("2001:10::1",         false, "2001:10::/28 Deprecated (previously ORCHID)"),
            ("2001:20::1",         true,  "2001:20::/28 ORCHIDv2"),
            ("2001:30::1",         true,  "2001:30::/28 Drone Remote ID (DETs) Prefix"),
            ("2001:1ff:ffff::1",   false, "2001::/23 IETF Protocol Assignments"),
            ("2001:200::1",        true,  "just past 2001::/23"),
            ("2001:db8::1",        false, "2001:db8::/32 Documentation"),
            ("2002:7f00:1::",      false, "2002::/16 6to4, of Loopback (reported)"),
            ("2002:a00:1::1",      false, "2002::/16 6to4, of Private-Use"),
            ("2002:808:808::",     true,  "2002::/16 6to4, of 8.8.8.8"),
            ("2620:4f:8000::1",    true,  "2620:4f:8000::/48 Direct Delegation AS112 Service"),
            ("3fff::1",            false, "3fff::/20 Documentation"),
            ("3fff:fff::1",        false, "3fff::/20 Documentation"),
            ("5f00::1",            false, "5f00::/16 Segment Routing (SRv6) SIDs"),
            ("fc00::1",            false, "fc00::/7 Unique-Local"),
            ("fd12:3456::1",       false, "fc00::/7 Unique-Local"),
            ("fe80::1",            false, "fe80::/10 Link-Local Unicast"),
            // IPv6 Address Space Registry: what lies outside 2000::/3, Global Unicast.
            ("::7f00:1",           false, "::/96 IPv4-compatible, of Loopback (reported)"),
            ("::808:808",          false, "::/96 IPv4-compatible (deprecated), of 8.8.8.8"),
            ("::ffff:0:7f00:1",    false, "::ffff:0:0:0/96 IPv4-translated (reported)"),
            ("::ffff:0:808:808",   false, "::ffff:0:0:0/96 IPv4-translated (obsolete)"),
            ("fec0::1",            false, "fec0::/10 Site-local (deprecated)"),
            ("ff02::1",            false, "ff00::/8 Multicast, link scope"),
            ("ff0e::1",            false, "ff00::/8 Multicast, global scope"),
            ("4000::1",            false, "4000::/3 Reserved by IETF"),
            // Global IPv6.
            ("2606:4700::1111",    true,  "global"),
            ("2a00:1450:4001::1",  true,  "global"),
        ];
        let wrong: Vec<String> = table
            .iter()
            .filter(|(addr, global, _)| is_global(ip(addr)) != *global)
            .map(|(addr, global, entry)| {
                let should = if *global { "allowed" } else { "refused" };
                format!("{addr} ({entry}) should be {should}")
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn a_refusal_names_the_registry_entry() {
        let g = Guard::default();
        let why = |a: &str| g.refusal(ip(a)).unwrap();
        assert!(
            why("10.1.2.3").contains("(Private-Use)"),
            "{}",
            why("10.1.2.3")
        );
        assert!(
            why("2002:7f00:1::").contains("(6to4 of 127.0.0.1, Loopback)"),
            "{}",
            why("2002:7f00:1::")
        );
        assert!(why("4000::1").contains("outside Global Unicast 2000::/3"));
    }

    /// Through a proxy, a name is refused if any of its addresses is: the proxy may pick any.
    #[test]
    fn through_a_proxy_every_address_of_a_name_must_pass() {
        let g = Guard::default();
        let addrs = |list: &[&str]| list.iter().map(|a| ip(a)).collect::<Vec<_>>();
        assert_eq!(
            g.refusal_of_all("hooks.example.com", addrs(&["8.8.8.8", "2606:4700::1111"])),
            None
        );
        let why = g
            .refusal_of_all("rebind.example.com", addrs(&["8.8.8.8", "10.0.0.1"]))
            .unwrap();
        assert!(
            why.starts_with("refused to deliver to rebind.example.com: its address 10.0.0.1")
                && why.contains("not a global address (Private-Use)"),
            "{why}"
        );
        let why = g.refusal_of_all("empty.example.com", []).unwrap();
        assert!(why.contains("no address"), "{why}");
        let open = Guard::new(Guard::parse_allow_list("10.0.0.0/8").unwrap());
        assert_eq!(
            open.refusal_of_all("internal.example.com", addrs(&["10.0.0.1", "8.8.8.8"])),
            None
        );
    }

    #[tokio::test]
    async fn through_a_proxy_names_are_resolved_here_first() {
        let why = Guard::default().refusal_of_name("localhost").await.unwrap();
        assert!(
            why.contains("localhost") && why.contains("(Loopback)"),
            "{why}"
        );
        let open = Guard::new(Guard::parse_allow_list("127.0.0.0/8,::1/128").unwrap());
        assert_eq!(open.refusal_of_name("localhost").await, None);
    }

    #[test]
    fn the_allow_list_opens_cidrs() {
        let g = Guard::new(Guard::parse_allow_list("127.0.0.0/8, 10.0.0.0/8").unwrap());
        assert!(g.refusal(ip("127.0.0.1")).is_none());
        assert!(g.refusal(ip("10.9.9.9")).is_none());
        assert!(g.refusal(ip("192.168.0.1")).is_some());
        assert!(Guard::parse_allow_list("nonsense").is_err());
        assert!(Guard::parse_allow_list("").unwrap().is_empty());
    }
}
