//! Host- and container-side link work shared by ADD, CHECK, DEL and GC.

use std::net::IpAddr;

use crate::config::NetConf;
use crate::ipnet::IpNet;
use crate::net::netns::{write_if_sysctl, write_sysctl};
use crate::net::rtnl::{Link, NetError, Rtnl};
use crate::result::{IpConfig, Route};

/// The host-side veth name of an attachment. Derived from (network,
/// container, ifname) so DEL finds it without a cached result.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    // FNV-1a: stable across builds and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in network
        .bytes()
        .chain([0])
        .chain(container_id.bytes())
        .chain([0])
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("veth{:010x}", h & 0xff_ffff_ffff)
}

/// Whether `name` has the shape of our host-side veth names.
pub fn is_our_veth_name(name: &str) -> bool {
    name.len() == 14 && name.starts_with("veth") && name[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Finds or creates the bridge, up, with the configured MTU/promisc mode.
pub fn ensure_bridge(rtnl: &mut Rtnl, conf: &NetConf) -> Result<Link, NetError> {
    if rtnl.link_by_name(&conf.bridge)?.is_none() {
        match rtnl.create_bridge(&conf.bridge, conf.mtu, conf.vlan.is_some_and(|v| v > 0)) {
            Ok(()) => {}
            // Another ADD created it between our lookup and create.
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    let br = rtnl
        .link_by_name(&conf.bridge)?
        .ok_or_else(|| NetError::Kernel {
            op: format!("find bridge {}", conf.bridge),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
    if br.kind.as_deref() != Some("bridge") {
        return Err(NetError::Kernel {
            op: format!("use {} as bridge (it is a {:?} link)", conf.bridge, br.kind),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    if !br.up || conf.promisc_mode {
        rtnl.set_link(&br, None, conf.promisc_mode.then_some(true), None)?;
    }
    Ok(br)
}

/// Gives the bridge the gateway addresses and turns on forwarding.
pub fn configure_gateway(rtnl: &mut Rtnl, br: &Link, ips: &[IpConfig]) -> Result<(), NetError> {
    let existing = rtnl.addresses(br)?;
    for ip in ips {
        let Some(gw) = ip.gateway else { continue };
        let net = IpNet {
            addr: gw,
            prefix: ip.address.prefix,
        };
        if existing.contains(&net) {
            continue;
        }
        match rtnl.add_address(br, net) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    enable_forwarding(ips)
}

pub fn enable_forwarding(ips: &[IpConfig]) -> Result<(), NetError> {
    let sysctl = |k: &str| {
        write_sysctl(k, "1").map_err(|source| NetError::Kernel {
            op: format!("set sysctl {k}"),
            source,
        })
    };
    if ips.iter().any(|i| i.address.is_ipv4()) {
        sysctl("net.ipv4.ip_forward")?;
    }
    if ips.iter().any(|i| !i.address.is_ipv4()) {
        sysctl("net.ipv6.conf.all.forwarding")?;
    }
    Ok(())
}

/// Lets DNAT from 127.0.0.1 leave through the bridge (host port mappings
/// reached from localhost).
pub fn allow_localnet(bridge: &str) -> Result<(), NetError> {
    write_if_sysctl("ipv4", bridge, "route_localnet", "1").map_err(|source| NetError::Kernel {
        op: format!("set route_localnet on {bridge}"),
        source,
    })
}

/// The container side, run inside its namespace: addresses, up, routes.
pub fn configure_container(
    ifname: &str,
    ips: &[IpConfig],
    routes: &[Route],
    default_gw: bool,
) -> Result<Link, NetError> {
    let mut rtnl = Rtnl::open()?;
    let link = rtnl.link_by_name(ifname)?.ok_or_else(|| NetError::Kernel {
        op: format!("find {ifname} in the container"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    for ip in ips {
        rtnl.add_address(&link, ip.address)?;
    }
    rtnl.set_link(&link, None, None, None)?;
    let mut wanted: Vec<(IpNet, Option<IpAddr>)> = Vec::new();
    if default_gw {
        for ip in ips {
            if let Some(gw) = ip.gateway {
                let any = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
                wanted.push((any.parse().expect("static CIDR"), Some(gw)));
            }
        }
    }
    for r in routes {
        let gw = r.gw.or_else(|| {
            ips.iter()
                .find(|i| i.address.is_ipv4() == r.dst.is_ipv4())
                .and_then(|i| i.gateway)
        });
        if !wanted.iter().any(|(d, _)| *d == r.dst) {
            wanted.push((r.dst, gw));
        }
    }
    for (dst, gw) in wanted {
        match rtnl.add_route(&link, dst, gw) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_short_and_distinct() {
        let a = host_veth_name("net", "c1", "eth0");
        assert_eq!(a, host_veth_name("net", "c1", "eth0"));
        assert_ne!(a, host_veth_name("net", "c1", "eth1"));
        assert_ne!(a, host_veth_name("net2", "c1", "eth0"));
        assert!(a.len() <= 15);
        assert!(is_our_veth_name(&a));
        assert!(!is_our_veth_name("eth0"));
    }
}
