//! CIDR networks (`10.20.0.0/16`, `fd00:1::/64`) for the webhook address
//! allowlist (`--allow-endpoint-cidr`).
//!
//! Host bits are accepted and masked (`10.20.3.4/16` is `10.20.0.0/16`); a
//! bare address is a single host (`/32` or `/128`). IPv4-mapped IPv6
//! addresses (`::ffff:10.20.0.1`) are judged by the IPv4 inside, both as
//! networks and as the addresses tested against them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadCidr {
    #[error("`{0}` is not a CIDR network like 10.20.0.0/16 or fd00:1::/64")]
    Syntax(String),
    #[error("`{0}`: an IPv4 prefix length is 0 to 32")]
    V4Len(String),
    #[error("`{0}`: an IPv6 prefix length is 0 to 128")]
    V6Len(String),
}

fn mask_v4(a: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ipv4Addr::from(u32::from(a) & m)
}

fn mask_v6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & m)
}

impl Cidr {
    /// The network of `addr` with `len` leading bits; `None` when `len` is
    /// too long for the address family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) if len <= 32 => Some(Cidr {
                net: IpAddr::V4(mask_v4(a, len)),
                len,
            }),
            // An IPv4-mapped network is stored as the IPv4 network it covers.
            IpAddr::V6(a) if (96..=128).contains(&len) && a.to_ipv4_mapped().is_some() => {
                Cidr::new(IpAddr::V4(a.to_ipv4_mapped()?), len - 96)
            }
            IpAddr::V6(a) if len <= 128 => Some(Cidr {
                net: IpAddr::V6(mask_v6(a, len)),
                len,
            }),
            _ => None,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.net
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True when `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask_v4(a, self.len) == net,
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(a, self.len) == net,
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let syntax = || BadCidr::Syntax(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                (a, Some(l.parse::<u8>().map_err(|_| syntax())?))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(if addr.is_ipv4() {
                BadCidr::V4Len(s.to_owned())
            } else {
                BadCidr::V6Len(s.to_owned())
            });
        }
        Cidr::new(addr, len).ok_or_else(syntax)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_masks() {
        let cases = [
            ("10.20.0.0/16", "10.20.0.0/16"),
            ("10.20.3.4/16", "10.20.0.0/16"),
            (" 127.0.0.1/32 ", "127.0.0.1/32"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("255.255.255.255/1", "128.0.0.0/1"),
            ("10.0.0.1/008", "10.0.0.0/8"),
            ("fd00:1::/64", "fd00:1::/64"),
            ("fd00:1::abcd/64", "fd00:1::/64"),
            ("fd00:1:2:3:4:5:6:7/127", "fd00:1:2:3:4:5:6:6/127"),
            ("::1", "::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.1.2.3/32"),
        ];
        for (s, want) in cases {
            assert_eq!(
                s.parse::<Cidr>().map(|c| c.to_string()),
                Ok(want.to_owned()),
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_bad_networks() {
        for s in [
            "",
            "/",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/8",
            "example.com/8",
            "10.0.0.0/ 8",
            "10.0.0.0/1000",
            "[::1]/128",
        ] {
            assert!(matches!(s.parse::<Cidr>(), Err(BadCidr::Syntax(_))), "{s}");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(BadCidr::V4Len("10.0.0.0/33".into()))
        );
        assert_eq!(
            "fd00::/129".parse::<Cidr>(),
            Err(BadCidr::V6Len("fd00::/129".into()))
        );
        assert!(
            BadCidr::V4Len("10.0.0.0/33".into())
                .to_string()
                .contains("0 to 32")
        );
    }

    #[test]
    fn containment() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        let cases = [
            ("10.20.0.0/16", "10.20.0.1", true),
            ("10.20.0.0/16", "10.20.255.255", true),
            ("10.20.0.0/16", "10.21.0.1", false),
            ("10.20.0.0/16", "::ffff:10.20.1.1", true),
            ("10.20.0.0/16", "::ffff:10.21.1.1", false),
            ("10.20.0.0/16", "fd00::1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("fd00:1::/64", "fd00:1::5", true),
            ("fd00:1::/64", "fd00:1:0:0:ffff::1", true),
            ("fd00:1::/64", "fd00:1:0:1::1", false),
            ("fd00:1::/64", "10.0.0.1", false),
            ("::/0", "::1", true),
            ("::/0", "10.0.0.1", false),
            ("::/0", "::ffff:10.0.0.1", false),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true),
            ("::1/128", "::1", true),
            ("::1/128", "127.0.0.1", false),
        ];
        for (net, addr, want) in cases {
            assert_eq!(c(net).contains(ip(addr)), want, "{net} ∋ {addr}");
        }
        assert_eq!(Cidr::new(ip("10.0.0.0"), 33), None);
        assert_eq!(c("10.20.3.4/16").network(), ip("10.20.0.0"));
        assert_eq!(c("10.20.3.4/16").prefix_len(), 16);
    }
}
