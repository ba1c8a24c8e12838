//! DEL: remove the NAT rules, the host veth (which takes the container end
//! with it) and the address allocation. Each step tolerates "already gone",
//! so DEL twice, DEL without a cached result and DEL after the namespace
//! vanished all succeed.

use super::ipam_step::Ipam;
use super::kernel_err;
use super::links::host_veth_name;
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::CniResult;
use crate::net::rtnl::Rtnl;
use crate::nft::{self, Firewall, NftFirewall};

pub fn cmd_del(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    let ipam = Ipam::from_conf(conf)?;
    teardown(args, conf, stdin, &ipam)
}

pub fn teardown(args: &CniArgs, conf: &NetConf, stdin: &[u8], ipam: &Ipam) -> CniResult<()> {
    let tag = nft::tag(&conf.name, &args.container_id, &args.ifname);
    let mut fw = NftFirewall::open().map_err(kernel_err)?;
    fw.remove(&|t| t == tag).map_err(kernel_err)?;
    let host_name = host_veth_name(&conf.name, &args.container_id, &args.ifname);
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    if let Some(link) = rtnl.link_by_name(&host_name).map_err(kernel_err)? {
        match rtnl.delete_link(&link) {
            Ok(()) => {}
            // A concurrent DEL, or the namespace going away, removed it.
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            Err(e) => return Err(kernel_err(e)),
        }
    }
    ipam.del(conf, args, stdin)
}
