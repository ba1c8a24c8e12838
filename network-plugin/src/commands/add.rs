//! ADD: IPAM, bridge, veth, container addresses and routes, NAT rules.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::ipam_step::Ipam;
use super::links::{
    allow_localnet, configure_container, configure_gateway, enable_forwarding, ensure_bridge,
    host_veth_name,
};
use super::{del, kernel_err};
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::{code, CniError, CniResult};
use crate::net::netns;
use crate::net::rtnl::{Link, Rtnl};
use crate::nft::{self, rules, Firewall, NftFirewall};
use crate::result::{CniOutput, Interface, IpConfig, Route};

pub fn cmd_add(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<String> {
    let ipam = Ipam::from_conf(conf)?;
    let prev = conf
        .prev_result
        .as_ref()
        .map(CniOutput::from_value)
        .transpose()?;
    let ns_path = Path::new(&args.netns);
    let ns =
        netns::open(ns_path).map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    let host_name = host_veth_name(&conf.name, &args.container_id, &args.ifname);
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    if let Some(old) = rtnl.link_by_name(&host_name).map_err(kernel_err)? {
        // Detached and down: a DEL of this attachment left it to a child that has not yet
        // deleted it (the container end is in the way of a new veth too).
        if old.is_detached() {
            del::delete_detached(&old)?;
        } else {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "container {} already has {} attached to network {:?} (host veth \
                     {host_name}); DEL it first",
                    args.container_id, args.ifname, conf.name
                ),
            ));
        }
    }
    let ipam_out = ipam.add(conf, args, stdin)?;
    // From here on a failure must leave nothing behind: DEL is complete and
    // idempotent, so it is the rollback.
    let attached = attach(&mut rtnl, args, conf, &ns, &host_name, ipam_out);
    match attached {
        Ok(out) => {
            let out = match prev {
                Some(p) => p.merged_with(out),
                None => out,
            };
            Ok(out.to_json(&conf.cni_version))
        }
        Err(e) => {
            let _ = del::teardown(args, conf, stdin, Some(&ipam));
            Err(e)
        }
    }
}

fn attach(
    rtnl: &mut Rtnl,
    args: &CniArgs,
    conf: &NetConf,
    ns: &File,
    host_name: &str,
    ipam_out: CniOutput,
) -> CniResult<CniOutput> {
    if ipam_out.ips.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("IPAM of network {:?} returned no address", conf.name),
        ));
    }
    let ips: Vec<IpConfig> = ipam_out
        .ips
        .iter()
        .map(|ip| IpConfig {
            interface: Some(2),
            ..ip.clone()
        })
        .collect();
    // Closing the nftables socket waits until the kernel has freed any
    // transaction object that needs an RCU grace period (~5-10 ms). ADD's
    // batch leaves none (only new rules; existing chains are not re-sent),
    // but one from a concurrent DEL may be pending: keeping the socket open
    // while the links are built lets that wait pass meanwhile.
    let _nat = install_nat(conf, args, &ips)?;
    let (br, host) = attach_host_side(rtnl, args, conf, ns, host_name, &ips)?;
    let ns_path = Path::new(&args.netns);
    let container = netns::run_in(ns, ns_path, || {
        configure_container(
            &args.ifname,
            &ips,
            &ipam_out.routes,
            conf.is_default_gateway,
        )
    })
    .map_err(kernel_err)?
    .map_err(kernel_err)?;
    let br_mac = rtnl
        .link_by_name(&conf.bridge)
        .map_err(kernel_err)?
        .map(|l| l.mac)
        .unwrap_or(br.mac);
    let interfaces = vec![
        Interface {
            name: conf.bridge.clone(),
            mac: br_mac,
            mtu: None,
            sandbox: None,
        },
        Interface {
            name: host.name.clone(),
            mac: host.mac.clone(),
            mtu: None,
            sandbox: None,
        },
        Interface {
            name: container.name.clone(),
            mac: container.mac.clone(),
            mtu: Some(container.mtu),
            sandbox: Some(args.netns.clone()),
        },
    ];
    Ok(CniOutput {
        interfaces,
        routes: result_routes(conf, &ips, &ipam_out.routes),
        ips,
        dns: if conf.dns.is_empty() {
            ipam_out.dns
        } else {
            conf.dns.clone()
        },
    })
}

/// Bridge, gateway addresses, forwarding, and the host end of the veth.
fn attach_host_side(
    rtnl: &mut Rtnl,
    args: &CniArgs,
    conf: &NetConf,
    ns: &File,
    host_name: &str,
    ips: &[IpConfig],
) -> CniResult<(Link, Link)> {
    let mappings = &conf.runtime_config.port_mappings;
    let br = ensure_bridge(rtnl, conf).map_err(kernel_err)?;
    if conf.is_gateway {
        configure_gateway(rtnl, &br, ips).map_err(kernel_err)?;
    } else if conf.ip_masq || !mappings.is_empty() {
        enable_forwarding(ips).map_err(kernel_err)?;
    }
    if !mappings.is_empty() && ips.iter().any(|i| i.address.is_ipv4()) {
        allow_localnet(&conf.bridge).map_err(kernel_err)?;
    }
    let alias = nft::tag(&conf.name, &args.container_id, &args.ifname);
    rtnl.create_veth(host_name, &args.ifname, ns.as_raw_fd(), conf.mtu)
        .map_err(|e| {
            let c = if e.errno() == Some(libc::EEXIST) {
                code::INVALID_CONFIG
            } else {
                code::KERNEL_FAILURE
            };
            CniError::new(c, e.to_string())
        })?;
    let host = rtnl
        .link_by_name(host_name)
        .map_err(kernel_err)?
        .ok_or_else(|| kernel_err(format!("host veth {host_name} vanished after creation")))?;
    rtnl.set_link(&host, Some(br.index), None, Some(&alias))
        .map_err(kernel_err)?;
    if conf.hairpin_mode {
        rtnl.set_hairpin(&host, true).map_err(kernel_err)?;
    }
    if let Some(vid) = conf.vlan.filter(|v| *v > 0) {
        rtnl.set_port_vlan(&host, vid).map_err(kernel_err)?;
    }
    Ok((br, host))
}

/// IPAM routes plus the default routes through the gateway.
fn result_routes(conf: &NetConf, ips: &[IpConfig], ipam_routes: &[Route]) -> Vec<Route> {
    let mut routes = ipam_routes.to_vec();
    if conf.is_default_gateway {
        for ip in ips {
            let any = if ip.address.is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            };
            let dst = any.parse().expect("static CIDR");
            if !routes.iter().any(|r| r.dst == dst) {
                routes.push(Route {
                    dst,
                    gw: ip.gateway,
                });
            }
        }
    }
    routes
}

/// Installs the attachment's NAT rules; returns the open firewall handle.
fn install_nat(conf: &NetConf, args: &CniArgs, ips: &[IpConfig]) -> CniResult<Option<NftFirewall>> {
    let addrs: Vec<_> = ips.iter().map(|i| i.address).collect();
    let planned = rules::plan(&addrs, conf.ip_masq, &conf.runtime_config.port_mappings);
    if planned.is_empty() {
        return Ok(None);
    }
    let tag = nft::tag(&conf.name, &args.container_id, &args.ifname);
    let mut fw = NftFirewall::open().map_err(kernel_err)?;
    fw.add(&tag, &planned).map_err(kernel_err)?;
    Ok(Some(fw))
}
