//! DEL: remove the NAT rules, the host veth (which takes the container end
//! with it) and the address allocation. Each step tolerates "already gone",
//! so DEL twice, DEL without a cached result and DEL after the namespace
//! vanished all succeed. Each finds what to remove from the plugin's own
//! records (rule tags, the veth name and alias, the IPAM store), not from the
//! port mappings of the configuration, so a configuration ADD would refuse
//! still deletes (see `NetConf::parse_for_del`).

use super::ipam_step::Ipam;
use super::kernel_err;
use super::links::host_veth_name;
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::{CniError, CniResult};
use crate::net::rtnl::Rtnl;
use crate::nft::{self, Firewall, NftFirewall};

pub fn cmd_del(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    match Ipam::for_del(conf) {
        Ok(ipam) => teardown(args, conf, stdin, Some(&ipam)),
        // Where the addresses are is unknown, but the veth and the rules
        // can still go; the error keeps the runtime retrying for the rest.
        Err(e) => teardown(args, conf, stdin, None).and(Err(e)),
    }
}

/// Removes everything of one attachment (its addresses only with `ipam`);
/// every step runs even when another failed, and the first error is returned.
pub fn teardown(
    args: &CniArgs,
    conf: &NetConf,
    stdin: &[u8],
    ipam: Option<&Ipam>,
) -> CniResult<()> {
    let host_name = host_veth_name(&conf.name, &args.container_id, &args.ifname);
    std::thread::scope(|s| {
        // Unregistering a veth waits out an RCU grace period in the kernel
        // (10-20 ms); the NAT and IPAM cleanup run meanwhile.
        let link = s.spawn(|| delete_host_veth(&host_name));
        let (fw, nat) = remove_nat(conf, args);
        let addrs = ipam.map_or(Ok(()), |ipam| ipam.del(conf, args, stdin));
        let link = link
            .join()
            .unwrap_or_else(|_| Err(kernel_err(format!("deleting {host_name} panicked"))));
        // Closing the nftables socket waits until the kernel has freed the
        // transaction (also a grace period), and meanwhile holds the lock the
        // veth unregistration needs: close it only after the veth is gone.
        drop(fw);
        nat.and(link).and(addrs)
    })
}

fn remove_nat(conf: &NetConf, args: &CniArgs) -> (Option<NftFirewall>, CniResult<()>) {
    let tag = nft::tag(&conf.name, &args.container_id, &args.ifname);
    let mut fw = match NftFirewall::open() {
        Ok(fw) => fw,
        Err(e) => return (None, Err(kernel_err(e))),
    };
    let removed = fw.remove(&|t| t == tag).map(|_| ()).map_err(kernel_err);
    (Some(fw), removed)
}

fn delete_host_veth(name: &str) -> Result<(), CniError> {
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    if let Some(link) = rtnl.link_by_name(name).map_err(kernel_err)? {
        match rtnl.delete_link(&link) {
            Ok(()) => {}
            // A concurrent DEL, or the namespace going away, removed it.
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            Err(e) => return Err(kernel_err(e)),
        }
    }
    Ok(())
}
