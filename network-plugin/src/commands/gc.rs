//! GC (spec 1.1): drop allocations, NAT rules and bridge ports of every
//! attachment of this network that is not in `cni.dev/valid-attachments`.

use std::collections::HashSet;

use super::ipam_step::Ipam;
use super::links::{host_veth_name, is_our_veth_name};
use super::{kernel_err, require_version};
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::{code, CniError, CniResult};
use crate::net::rtnl::Rtnl;
use crate::nft::{self, Firewall, NftFirewall};

pub fn cmd_gc(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    require_version(conf, "1.1.0", "GC")?;
    // Without the list, "everything not valid" would be everything.
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "GC of network {:?} needs cni.dev/valid-attachments",
                conf.name
            ),
        )
    })?;
    let keep: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    Ipam::from_conf(conf)?.gc(conf, args, stdin, valid)?;
    let mut fw = NftFirewall::open().map_err(kernel_err)?;
    fw.remove(&|t| nft::parse_tag(&conf.name, t).is_some_and(|id| !keep.contains(&id)))
        .map_err(kernel_err)?;
    remove_stale_ports(conf, valid)
}

fn remove_stale_ports(conf: &NetConf, valid: &[crate::config::Attachment]) -> CniResult<()> {
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    let Some(br) = rtnl.link_by_name(&conf.bridge).map_err(kernel_err)? else {
        return Ok(());
    };
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| host_veth_name(&conf.name, &a.container_id, &a.ifname))
        .collect();
    for link in rtnl.links().map_err(kernel_err)? {
        // The alias says which network owns the port: another network may
        // share the bridge.
        let ours = nft::parse_tag(&conf.name, &link.alias).is_some();
        if link.master == Some(br.index)
            && ours
            && is_our_veth_name(&link.name)
            && !keep.contains(&link.name)
        {
            match rtnl.delete_link(&link) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                Err(e) => return Err(kernel_err(e)),
            }
        }
    }
    Ok(())
}
