//! CHECK: the attachment still matches the result the runtime cached.

use std::path::Path;

use super::ipam_step::Ipam;
use super::links::host_veth_name;
use super::{kernel_err, require_version};
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::{code, CniError, CniResult};
use crate::ipnet::IpNet;
use crate::net::netns;
use crate::net::rtnl::{NetError, RouteEntry, Rtnl};
use crate::nft::{self, rules};
use crate::result::{CniOutput, Route};

fn mismatch(msg: String) -> CniError {
    CniError::new(code::CHECK_MISMATCH, msg)
}

pub fn cmd_check(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    require_version(conf, "0.4.0", "CHECK")?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("CHECK of network {:?} needs prevResult", conf.name),
            )
        })
        .and_then(CniOutput::from_value)?;
    Ipam::from_conf(conf)?.check(conf, args, stdin)?;
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    let br = rtnl
        .link_by_name(&conf.bridge)
        .map_err(kernel_err)?
        .ok_or_else(|| mismatch(format!("bridge {} does not exist", conf.bridge)))?;
    let host_name = host_veth_name(&conf.name, &args.container_id, &args.ifname);
    let host = rtnl
        .link_by_name(&host_name)
        .map_err(kernel_err)?
        .ok_or_else(|| {
            mismatch(format!(
                "host veth {host_name} of container {} does not exist",
                args.container_id
            ))
        })?;
    if host.master != Some(br.index) {
        return Err(mismatch(format!(
            "host veth {host_name} is not attached to bridge {}",
            conf.bridge
        )));
    }
    let our_if = prev
        .interfaces
        .iter()
        .position(|i| i.name == args.ifname && i.sandbox.is_some())
        .ok_or_else(|| {
            mismatch(format!(
                "prevResult has no interface {} in a sandbox",
                args.ifname
            ))
        })?;
    let want: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|i| i.interface == Some(our_if))
        .map(|i| i.address)
        .collect();
    check_container(args, &want, &prev.routes)?;
    check_nat(args, conf, &want)
}

/// What CHECK reads inside the container: addresses of the interface and
/// the routing table (both families).
struct ContainerView {
    addrs: Vec<IpNet>,
    routes: Vec<RouteEntry>,
}

fn check_container(args: &CniArgs, want: &[IpNet], routes: &[Route]) -> CniResult<()> {
    let path = Path::new(&args.netns);
    let ns =
        netns::open(path).map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    let ifname = args.ifname.clone();
    let view = netns::run_in(&ns, path, move || {
        let mut rtnl = Rtnl::open()?;
        let Some(link) = rtnl.link_by_name(&ifname)? else {
            return Ok(None);
        };
        let addrs = rtnl.addresses(&link)?;
        let mut routes = rtnl.routes(true)?;
        routes.extend(rtnl.routes(false)?);
        Ok::<_, NetError>(Some(ContainerView { addrs, routes }))
    })
    .map_err(kernel_err)?
    .map_err(kernel_err)?
    .ok_or_else(|| {
        mismatch(format!(
            "interface {} is missing in {}",
            args.ifname, args.netns
        ))
    })?;
    for ip in want {
        if !view.addrs.contains(ip) {
            return Err(mismatch(format!(
                "address {ip} is missing on {} in {}",
                args.ifname, args.netns
            )));
        }
    }
    for r in routes {
        let present = view.routes.iter().any(|have| {
            have.dst.truncated() == r.dst.truncated() && (r.gw.is_none() || have.gw == r.gw)
        });
        if !present {
            return Err(mismatch(format!(
                "route to {} via {:?} is missing in {}",
                r.dst, r.gw, args.netns
            )));
        }
    }
    Ok(())
}

fn check_nat(args: &CniArgs, conf: &NetConf, ips: &[IpNet]) -> CniResult<()> {
    let expected = rules::plan(ips, conf.ip_masq, &conf.runtime_config.port_mappings).len();
    if expected == 0 {
        return Ok(());
    }
    let tag = nft::tag(&conf.name, &args.container_id, &args.ifname);
    let mut fw = nft::NftFirewall::open().map_err(kernel_err)?;
    let have = nft::Firewall::count(&mut fw, &tag).map_err(kernel_err)?;
    if have != expected {
        return Err(mismatch(format!(
            "{have} of {expected} NAT rules of {tag} are installed"
        )));
    }
    Ok(())
}
