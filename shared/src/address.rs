//! The source allowlist: Persona's published addresses and configured CIDRs, and how
//! the client address is found in a request.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

/// Persona's webhook source addresses in the United States (docs page "security").
pub const PERSONA_US: [Ipv4Addr; 12] = [
    Ipv4Addr::new(35, 232, 44, 140),
    Ipv4Addr::new(34, 69, 131, 123),
    Ipv4Addr::new(34, 67, 4, 225),
    Ipv4Addr::new(34, 66, 30, 174),
    Ipv4Addr::new(34, 123, 74, 158),
    Ipv4Addr::new(34, 41, 116, 165),
    Ipv4Addr::new(34, 145, 62, 98),
    Ipv4Addr::new(34, 105, 116, 226),
    Ipv4Addr::new(34, 168, 249, 74),
    Ipv4Addr::new(35, 199, 156, 187),
    Ipv4Addr::new(34, 105, 58, 25),
    Ipv4Addr::new(35, 230, 80, 200),
];

/// Persona's webhook source addresses in Germany.
pub const PERSONA_DE: [Ipv4Addr; 6] = [
    Ipv4Addr::new(35, 246, 155, 45),
    Ipv4Addr::new(34, 89, 193, 61),
    Ipv4Addr::new(34, 89, 158, 43),
    Ipv4Addr::new(35, 198, 149, 197),
    Ipv4Addr::new(34, 159, 83, 62),
    Ipv4Addr::new(34, 159, 68, 157),
];

/// Persona's webhook source addresses in India.
pub const PERSONA_IN: [Ipv4Addr; 4] = [
    Ipv4Addr::new(34, 93, 21, 229),
    Ipv4Addr::new(35, 244, 13, 71),
    Ipv4Addr::new(34, 93, 90, 104),
    Ipv4Addr::new(34, 93, 222, 99),
];

/// The named sets an allowlist entry may use instead of a CIDR.
pub(crate) fn named_set(name: &str) -> Option<Vec<Ipv4Addr>> {
    let set: Vec<Ipv4Addr> = match name {
        "persona" => PERSONA_US
            .iter()
            .chain(PERSONA_DE.iter())
            .chain(PERSONA_IN.iter())
            .copied()
            .collect(),
        "persona-us" => PERSONA_US.to_vec(),
        "persona-de" => PERSONA_DE.to_vec(),
        "persona-in" => PERSONA_IN.to_vec(),
        _ => return None,
    };
    Some(set)
}

/// Parses one allowlist entry that is not a named set: a CIDR or a single address.
/// `10.0.0.1/8` is almost always a typo for `10.0.0.0/8`, so host bits are refused.
/// The address is read by `core::net` as client addresses are, not by
/// `IpNet::from_str`, which also takes IPv4 octets with leading zeros (`010.0.0.0/8`,
/// octal to some tools).
pub(crate) fn parse_net(entry: &str) -> Option<IpNet> {
    let Some((addr, len)) = entry.split_once('/') else {
        return entry.parse::<IpAddr>().ok().map(IpNet::from);
    };
    // Digits only: `u8::from_str` would also take a sign.
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let net = IpNet::new(addr.parse().ok()?, len.parse().ok()?).ok()?;
    (net.trunc() == net).then_some(net)
}

/// Where the client address of a delivery comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAddress {
    /// The address of the peer that opened the connection.
    Peer,
    /// `X-Forwarded-For`, skipping the entries appended by `trusted_hops` trusted proxies:
    /// the client is the `trusted_hops`-th entry counted from the right.
    ForwardedFor { trusted_hops: u32 },
    /// A header set by a trusted edge, such as `CF-Connecting-IP`.
    Header { name: String },
}

impl ClientAddress {
    /// The `sources.client_address` object that selects this source.
    pub fn to_config(&self) -> String {
        match self {
            ClientAddress::Peer => String::from(r#"{"from": "peer"}"#),
            ClientAddress::ForwardedFor { trusted_hops } => {
                alloc::format!(r#"{{"from": "x-forwarded-for", "trusted_hops": {trusted_hops}}}"#)
            }
            ClientAddress::Header { name } => alloc::format!(
                r#"{{"from": "header", "name": {}}}"#,
                crate::json::Quoted(name)
            ),
        }
    }
}

/// The compiled allowlist: per family, each block as its network's bits and mask,
/// as ipnet computes them, so that a check is one masked compare per block, with no
/// allocation. (Kept as `Ipv4Net`s, `contains` derives both from the prefix length on
/// every call: the check over the 22 Persona addresses measured three times slower.)
#[derive(Clone, Debug, Default)]
pub(crate) struct Allowlist {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Allowlist {
    pub(crate) fn push(&mut self, net: IpNet) {
        match net {
            IpNet::V4(net) => {
                let block = (net.network().to_bits(), net.netmask().to_bits());
                if !self.v4.contains(&block) {
                    self.v4.push(block);
                }
            }
            IpNet::V6(net) => {
                let block = (net.network().to_bits(), net.netmask().to_bits());
                if !self.v6.contains(&block) {
                    self.v6.push(block);
                }
            }
        }
    }

    /// Whether the address is allowed. IPv4-mapped IPv6 addresses match their IPv4 form.
    pub(crate) fn allows(&self, addr: IpAddr) -> bool {
        match canonical(addr) {
            IpAddr::V4(a) => {
                let a = a.to_bits();
                self.v4.iter().any(|&(network, mask)| a & mask == network)
            }
            IpAddr::V6(a) => {
                let a = a.to_bits();
                self.v6.iter().any(|&(network, mask)| a & mask == network)
            }
        }
    }
}

/// `::ffff:a.b.c.d` is the IPv4 client `a.b.c.d` on a dual-stack socket.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an address as hosts give it: `ip`, `ip:port` or `[ipv6]:port`, with
/// surrounding spaces. Anything else (zone ids, host names, garbage) is `None`: an
/// address that cannot be parsed is never allowed. A zone id (`fe80::1%eth0`,
/// `[fe80::1%1]:80`) names a link of the host, not a client: refused, although
/// `SocketAddr` would take a numeric one and drop it.
pub fn parse_client_address(text: &str) -> Option<IpAddr> {
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if text.contains('%') {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    text.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The client address as this source defines it, or `None` when it is absent or
/// cannot be trusted. `headers` are all request headers; `peer` is the connection's
/// remote address as the host gives it.
pub(crate) fn find_client_address(
    source: &ClientAddress,
    headers: &[(&str, &str)],
    peer: Option<&str>,
) -> Result<IpAddr, &'static str> {
    match source {
        ClientAddress::Peer => {
            let peer = peer.ok_or("the host gave no peer address")?;
            parse_client_address(peer).ok_or("the peer address cannot be parsed")
        }
        ClientAddress::ForwardedFor { trusted_hops } => {
            // Every X-Forwarded-For header, in order, is one comma-separated list.
            let mut entries: Vec<&str> = Vec::new();
            for (name, value) in headers {
                if name.eq_ignore_ascii_case("x-forwarded-for") {
                    entries.extend(value.split(','));
                }
            }
            let hops = usize::try_from(*trusted_hops).unwrap_or(usize::MAX);
            if entries.len() < hops || hops == 0 {
                return Err("X-Forwarded-For has fewer entries than the trusted hops");
            }
            let client = entries
                .get(entries.len() - hops)
                .ok_or("X-Forwarded-For has fewer entries than the trusted hops")?;
            parse_client_address(client).ok_or("the X-Forwarded-For client entry cannot be parsed")
        }
        ClientAddress::Header { name } => {
            let mut values = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v);
            let value = values
                .next()
                .ok_or("the client address header is missing")?;
            if values.next().is_some() {
                return Err("the client address header appears more than once");
            }
            parse_client_address(value).ok_or("the client address header cannot be parsed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persona() -> Allowlist {
        let mut list = Allowlist::default();
        for a in named_set("persona").unwrap() {
            list.push(IpNet::from(IpAddr::V4(a)));
        }
        list
    }

    #[test]
    fn named_sets_have_the_published_sizes() {
        assert_eq!(named_set("persona").unwrap().len(), 22);
        assert_eq!(named_set("persona-us").unwrap().len(), 12);
        assert_eq!(named_set("persona-de").unwrap().len(), 6);
        assert_eq!(named_set("persona-in").unwrap().len(), 4);
        assert!(named_set("persona-eu").is_none());
    }

    #[test]
    fn allows_persona_and_mapped_forms_only() {
        let list = persona();
        assert!(list.allows("35.232.44.140".parse().unwrap()));
        assert!(list.allows("::ffff:35.232.44.140".parse().unwrap()));
        assert!(!list.allows("35.232.44.141".parse().unwrap()));
        assert!(!list.allows("::1".parse().unwrap()));
        assert!(!list.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn parses_host_address_forms() {
        assert_eq!(
            parse_client_address("1.2.3.4:5678"),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            parse_client_address("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_client_address(" 2001:db8::1 "),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_client_address("fe80::1%eth0"), None);
        for zoned in [
            "fe80::1%1",
            "[fe80::1%1]:80",
            "[fe80::1%eth0]:80",
            "[::ffff:35.232.44.140%1]:1",
        ] {
            assert_eq!(parse_client_address(zoned), None, "{zoned}");
        }
        assert_eq!(parse_client_address("example.com"), None);
        assert_eq!(parse_client_address(""), None);
        assert_eq!(parse_client_address("1.2.3.4.5"), None);
    }

    #[test]
    fn cidrs_with_host_bits_are_refused() {
        assert!(parse_net("10.0.0.0/8").is_some());
        assert!(parse_net("10.0.0.1/8").is_none());
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("2001:db8::/32").is_some());
        assert!(parse_net("203.0.113.7").is_some());
        assert!(parse_net("0.0.0.0/0").is_some());
        assert!(parse_net("::/0").is_some());
        assert!(parse_net("2001:db8::1/128").is_some());
        assert!(parse_net("2001:db8::1/127").is_none());
        assert!(parse_net("2001:db8::/129").is_none());
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "/8",
            "x/8",
            "10.0.0.0/0008",
            "010.0.0.0/8",
            "10.0.0.010",
            "fe80::1%eth0",
            "fe80::%1/64",
        ] {
            assert!(parse_net(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cidrs_allow_exactly_their_addresses() {
        let mut list = Allowlist::default();
        list.push(parse_net("10.1.0.0/16").unwrap());
        list.push(parse_net("2001:db8::/32").unwrap());
        list.push(parse_net("203.0.113.7").unwrap());
        for (addr, allowed) in [
            ("10.1.0.0", true),
            ("10.1.255.255", true),
            ("::ffff:10.1.2.3", true),
            ("10.2.0.0", false),
            ("10.0.255.255", false),
            ("203.0.113.7", true),
            ("203.0.113.6", false),
            ("2001:db8:ffff::1", true),
            ("2001:db9::", false),
            ("::a01:203", false),
        ] {
            assert_eq!(list.allows(addr.parse().unwrap()), allowed, "{addr}");
        }
        let mut everything = Allowlist::default();
        everything.push(parse_net("0.0.0.0/0").unwrap());
        assert!(everything.allows("255.255.255.255".parse().unwrap()));
        assert!(!everything.allows("::1".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_counts_trusted_hops_from_the_right() {
        let source = ClientAddress::ForwardedFor { trusted_hops: 2 };
        let headers = [("X-Forwarded-For", "6.6.6.6, 35.232.44.140, 10.0.0.1")];
        assert_eq!(
            find_client_address(&source, &headers, None),
            Ok("35.232.44.140".parse().unwrap())
        );
        let short = [("x-forwarded-for", "10.0.0.1")];
        assert!(find_client_address(&source, &short, None).is_err());
        // Two headers form one list, in order.
        let split = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "35.232.44.140, 10.0.0.1"),
        ];
        assert_eq!(
            find_client_address(&source, &split, None),
            Ok("35.232.44.140".parse().unwrap())
        );
    }

    #[test]
    fn header_source_refuses_missing_and_repeated_values() {
        let source = ClientAddress::Header {
            name: "CF-Connecting-IP".into(),
        };
        assert!(find_client_address(&source, &[], None).is_err());
        let twice = [
            ("cf-connecting-ip", "1.2.3.4"),
            ("CF-Connecting-IP", "35.232.44.140"),
        ];
        assert!(find_client_address(&source, &twice, None).is_err());
        let once = [("cf-connecting-ip", "35.232.44.140")];
        assert_eq!(
            find_client_address(&source, &once, Some("9.9.9.9")),
            Ok("35.232.44.140".parse().unwrap())
        );
    }
}
