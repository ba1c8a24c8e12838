//! What rules an attachment needs (pure planning) and their nf_tables
//! expression encoding.

use std::net::IpAddr;

use super::wire::Attrs;
use crate::config::PortMapping;
use crate::ipnet::{ip_bytes, IpNet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    /// NFPROTO_IPV4 / NFPROTO_IPV6.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
    fn saddr(self) -> (u32, u32) {
        match self {
            Family::V4 => (12, 4),
            Family::V6 => (8, 16),
        }
    }
    fn daddr(self) -> (u32, u32) {
        match self {
            Family::V4 => (16, 4),
            Family::V6 => (24, 16),
        }
    }
}

/// Base chains of our table, all of type nat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    Prerouting,
    Output,
    Postrouting,
}

impl Chain {
    pub const ALL: [Chain; 3] = [Chain::Prerouting, Chain::Output, Chain::Postrouting];
    pub fn name(self) -> &'static str {
        match self {
            Chain::Prerouting => "prerouting",
            Chain::Output => "output",
            Chain::Postrouting => "postrouting",
        }
    }
    /// (hook number, priority): dstnat -100, srcnat 100.
    pub fn hook(self) -> (u32, i32) {
        match self {
            Chain::Prerouting => (0, -100),
            Chain::Output => (3, -100),
            Chain::Postrouting => (4, 100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    SaddrIn(IpNet),
    DaddrNotIn(IpNet),
    DaddrIs(IpAddr),
    /// Destination is an address of this host (`fib daddr type local`).
    DaddrLocal,
    L4Proto(u8),
    Dport(u16),
    /// The connection was destination-NATed (`ct status dnat`).
    CtDnat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Masquerade,
    Dnat { addr: IpAddr, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub family: Family,
    pub chain: Chain,
    pub matches: Vec<Match>,
    pub action: Action,
}

/// What one attachment needs: masquerade for its outbound traffic, DNAT for
/// each port mapping (from outside and from the host itself), and SNAT of
/// DNATed traffic that comes from the bridge (hairpin) or from localhost.
pub fn plan(container_ips: &[IpNet], ip_masq: bool, mappings: &[PortMapping]) -> Vec<RuleSpec> {
    let mut rules = Vec::new();
    for cip in container_ips {
        let fam = Family::of(cip.addr);
        let host = IpNet {
            addr: cip.addr,
            prefix: crate::ipnet::max_prefix(cip.addr),
        };
        if ip_masq {
            let multicast: IpNet = match fam {
                Family::V4 => "224.0.0.0/4".parse().expect("static CIDR"),
                Family::V6 => "ff00::/8".parse().expect("static CIDR"),
            };
            rules.push(RuleSpec {
                family: fam,
                chain: Chain::Postrouting,
                matches: vec![
                    Match::SaddrIn(host),
                    Match::DaddrNotIn(cip.truncated()),
                    Match::DaddrNotIn(multicast),
                ],
                action: Action::Masquerade,
            });
        }
        let mine: Vec<&PortMapping> = mappings
            .iter()
            .filter(|m| mapping_applies(m, fam))
            .collect();
        for m in &mine {
            for chain in [Chain::Prerouting, Chain::Output] {
                let mut matches = vec![Match::DaddrLocal];
                if let Some(ip) = host_ip(m) {
                    matches.push(Match::DaddrIs(ip));
                }
                matches.push(Match::L4Proto(proto_number(&m.protocol)));
                matches.push(Match::Dport(m.host_port));
                rules.push(RuleSpec {
                    family: fam,
                    chain,
                    matches,
                    action: Action::Dnat {
                        addr: cip.addr,
                        port: m.container_port,
                    },
                });
            }
        }
        if !mine.is_empty() {
            let mut sources = vec![cip.truncated()];
            if fam == Family::V4 {
                sources.push("127.0.0.0/8".parse().expect("static CIDR"));
            }
            for src in sources {
                rules.push(RuleSpec {
                    family: fam,
                    chain: Chain::Postrouting,
                    matches: vec![Match::CtDnat, Match::DaddrIs(cip.addr), Match::SaddrIn(src)],
                    action: Action::Masquerade,
                });
            }
        }
    }
    rules
}

fn host_ip(m: &PortMapping) -> Option<IpAddr> {
    m.host_ip
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| !ip.is_unspecified())
}

fn mapping_applies(m: &PortMapping, fam: Family) -> bool {
    match m.host_ip.parse::<IpAddr>() {
        Ok(ip) => Family::of(ip) == fam,
        Err(_) => true,
    }
}

pub fn proto_number(p: &str) -> u8 {
    if p.eq_ignore_ascii_case("udp") {
        17
    } else {
        6
    }
}

// Expression attribute numbers (linux/netfilter/nf_tables.h).
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const REG1: u32 = 1;
const REG2: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const META_L4PROTO: u32 = 16;
const CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NAT_DNAT: u32 = 1;

fn expr(list: &mut Attrs, name: &str, data: impl FnOnce(&mut Attrs)) {
    list.nest(NFTA_LIST_ELEM, |e| {
        e.put_str(NFTA_EXPR_NAME, name);
        e.nest(NFTA_EXPR_DATA, data);
    });
}

fn value(a: &mut Attrs, ty: u16, bytes: &[u8]) {
    a.nest(ty, |d| {
        d.put(NFTA_DATA_VALUE, bytes);
    });
}

fn load_payload(list: &mut Attrs, base: u32, offset: u32, len: u32) {
    expr(list, "payload", |a| {
        a.put_be32(1, REG1)
            .put_be32(2, base)
            .put_be32(3, offset)
            .put_be32(4, len);
    });
}

fn cmp(list: &mut Attrs, op: u32, bytes: &[u8]) {
    expr(list, "cmp", |a| {
        a.put_be32(1, REG1).put_be32(2, op);
        value(a, 3, bytes);
    });
}

fn mask(list: &mut Attrs, mask: &[u8]) {
    expr(list, "bitwise", |a| {
        a.put_be32(1, REG1)
            .put_be32(2, REG1)
            .put_be32(3, mask.len() as u32);
        value(a, 4, mask);
        value(a, 5, &vec![0u8; mask.len()]);
    });
}

fn match_net(list: &mut Attrs, (off, len): (u32, u32), net: &IpNet, op: u32) {
    load_payload(list, PAYLOAD_NETWORK, off, len);
    if net.prefix < crate::ipnet::max_prefix(net.addr) {
        mask(list, &net.mask_bytes());
    }
    cmp(list, op, &ip_bytes(net.network()));
}

/// Encodes a rule's match and action expressions (`NFTA_RULE_EXPRESSIONS` content).
pub fn encode(rule: &RuleSpec) -> Attrs {
    let mut list = Attrs::default();
    let fam = rule.family;
    for m in &rule.matches {
        match m {
            Match::SaddrIn(net) => match_net(&mut list, fam.saddr(), net, CMP_EQ),
            Match::DaddrNotIn(net) => match_net(&mut list, fam.daddr(), net, CMP_NEQ),
            Match::DaddrIs(ip) => {
                let (off, len) = fam.daddr();
                load_payload(&mut list, PAYLOAD_NETWORK, off, len);
                cmp(&mut list, CMP_EQ, &ip_bytes(*ip));
            }
            Match::DaddrLocal => {
                expr(&mut list, "fib", |a| {
                    a.put_be32(1, REG1)
                        .put_be32(2, FIB_RESULT_ADDRTYPE)
                        .put_be32(3, FIB_F_DADDR);
                });
                cmp(&mut list, CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
            Match::L4Proto(p) => {
                expr(&mut list, "meta", |a| {
                    a.put_be32(1, REG1).put_be32(2, META_L4PROTO);
                });
                cmp(&mut list, CMP_EQ, &[*p]);
            }
            Match::Dport(port) => {
                load_payload(&mut list, PAYLOAD_TRANSPORT, 2, 2);
                cmp(&mut list, CMP_EQ, &port.to_be_bytes());
            }
            Match::CtDnat => {
                expr(&mut list, "ct", |a| {
                    a.put_be32(1, REG1).put_be32(2, CT_STATUS);
                });
                mask(&mut list, &IPS_DST_NAT.to_ne_bytes());
                cmp(&mut list, CMP_NEQ, &0u32.to_ne_bytes());
            }
        }
    }
    match &rule.action {
        Action::Masquerade => {
            list.nest(NFTA_LIST_ELEM, |e| {
                e.put_str(NFTA_EXPR_NAME, "masq");
            });
        }
        Action::Dnat { addr, port } => {
            expr(&mut list, "immediate", |a| {
                a.put_be32(1, REG1);
                value(a, 2, &ip_bytes(*addr));
            });
            expr(&mut list, "immediate", |a| {
                a.put_be32(1, REG2);
                value(a, 2, &port.to_be_bytes());
            });
            expr(&mut list, "nat", |a| {
                a.put_be32(1, NAT_DNAT)
                    .put_be32(2, fam.nfproto() as u32)
                    .put_be32(3, REG1)
                    .put_be32(5, REG2);
            });
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::wire::parse_attrs;

    fn pm(host: u16, cont: u16, proto: &str, ip: &str) -> PortMapping {
        PortMapping {
            host_port: host,
            container_port: cont,
            protocol: proto.into(),
            host_ip: ip.into(),
        }
    }

    #[test]
    fn masquerade_only_when_asked() {
        let ips = ["10.1.0.5/24".parse().unwrap()];
        assert!(plan(&ips, false, &[]).is_empty());
        let r = plan(&ips, true, &[]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].chain, Chain::Postrouting);
        assert_eq!(
            r[0].matches[0],
            Match::SaddrIn("10.1.0.5/32".parse().unwrap())
        );
        assert_eq!(
            r[0].matches[1],
            Match::DaddrNotIn("10.1.0.0/24".parse().unwrap())
        );
    }

    #[test]
    fn port_mapping_rules_follow_host_ip_family() {
        let ips = [
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let maps = [pm(8080, 80, "tcp", ""), pm(5353, 53, "udp", "10.99.0.1")];
        let r = plan(&ips, false, &maps);
        let v4_dnat: Vec<_> = r
            .iter()
            .filter(|r| r.family == Family::V4 && matches!(r.action, Action::Dnat { .. }))
            .collect();
        let v6_dnat: Vec<_> = r
            .iter()
            .filter(|r| r.family == Family::V6 && matches!(r.action, Action::Dnat { .. }))
            .collect();
        // Two mappings x (prerouting, output) for IPv4; only the unbound one for IPv6.
        assert_eq!(v4_dnat.len(), 4);
        assert_eq!(v6_dnat.len(), 2);
        assert!(v4_dnat.iter().any(|r| r
            .matches
            .contains(&Match::DaddrIs("10.99.0.1".parse().unwrap()))
            && r.matches.contains(&Match::L4Proto(17))));
        // Hairpin + localhost SNAT for IPv4, hairpin only for IPv6.
        let snat = r
            .iter()
            .filter(|r| r.matches.contains(&Match::CtDnat))
            .count();
        assert_eq!(snat, 3);
    }

    #[test]
    fn dnat_encoding_names_expressions_in_order() {
        let rule = RuleSpec {
            family: Family::V4,
            chain: Chain::Prerouting,
            matches: vec![Match::DaddrLocal, Match::L4Proto(6), Match::Dport(8080)],
            action: Action::Dnat {
                addr: "10.1.0.5".parse().unwrap(),
                port: 80,
            },
        };
        let enc = encode(&rule);
        let names: Vec<String> = parse_attrs(&enc.0)
            .iter()
            .map(|(_, e)| {
                let name = parse_attrs(e)[0].1;
                String::from_utf8_lossy(&name[..name.len() - 1]).into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "fib",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate",
                "immediate",
                "nat"
            ]
        );
    }
}
