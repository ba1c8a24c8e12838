//! A small CIDR type and the integer arithmetic IPAM needs (both families as u128).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address with a prefix length, e.g. `10.88.0.5/16` (host bits kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn host_bits(&self) -> u32 {
        u32::from(max_prefix(self.addr) - self.prefix)
    }

    fn mask(&self) -> u128 {
        let bits = self.host_bits();
        let all = if self.is_ipv4() {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        if bits >= 128 {
            0
        } else {
            all & !((1u128 << bits) - 1)
        }
    }

    /// The first address of the subnet.
    pub fn network(&self) -> IpAddr {
        from_u128(to_u128(self.addr) & self.mask(), self.is_ipv4())
    }

    /// The last address of the subnet (the IPv4 broadcast).
    pub fn last(&self) -> IpAddr {
        let all = if self.is_ipv4() {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        from_u128(
            (to_u128(self.addr) & self.mask()) | (all & !self.mask()),
            self.is_ipv4(),
        )
    }

    /// This subnet with host bits cleared.
    pub fn truncated(&self) -> IpNet {
        IpNet {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && (to_u128(ip) & self.mask()) == to_u128(self.network())
    }

    /// Network-order mask bytes (4 or 16), as nftables compares them.
    pub fn mask_bytes(&self) -> Vec<u8> {
        let m = self.mask();
        if self.is_ipv4() {
            (m as u32).to_be_bytes().to_vec()
        } else {
            m.to_be_bytes().to_vec()
        }
    }
}

pub fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Network-order bytes of an address (4 or 16).
pub fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR (address/prefix)")]
pub struct ParseIpNetError(pub String);

impl FromStr for IpNet {
    type Err = ParseIpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIpNetError(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = a.parse().map_err(|_| err())?;
        let prefix: u8 = p.parse().map_err(|_| err())?;
        IpNet::new(addr, prefix).ok_or_else(err)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_network_and_broadcast() {
        let n: IpNet = "10.88.3.7/16".parse().unwrap();
        assert_eq!(n.network().to_string(), "10.88.0.0");
        assert_eq!(n.last().to_string(), "10.88.255.255");
        assert!(n.contains("10.88.200.1".parse().unwrap()));
        assert!(!n.contains("10.89.0.1".parse().unwrap()));
        assert_eq!(n.mask_bytes(), vec![255, 255, 0, 0]);
    }

    #[test]
    fn v6_and_edge_prefixes() {
        let n: IpNet = "fd00:1::5/64".parse().unwrap();
        assert_eq!(n.network().to_string(), "fd00:1::");
        assert_eq!(n.last().to_string(), "fd00:1::ffff:ffff:ffff:ffff");
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("10.0.0.0".parse::<IpNet>().is_err());
    }
}
