//! GC (spec 1.1): drop allocations, NAT rules and bridge ports (also those DEL
//! detached) of every attachment of this network that is not in
//! `cni.dev/valid-attachments`.

use std::collections::HashSet;

use super::ipam_step::Ipam;
use super::links::{host_veth_name, is_our_veth_name};
use super::{kernel_err, require_version};
use crate::args::CniArgs;
use crate::config::{require_valid_attachments, Attachment, NetConf};
use crate::error::CniResult;
use crate::net::rtnl::Rtnl;
use crate::nft::wire::NftError;
use crate::nft::{self, Firewall, NftFirewall};

pub fn cmd_gc(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    require_version(conf, "1.1.0", "GC")?;
    let valid = require_valid_attachments(&conf.name, conf.valid_attachments.as_ref())?;
    Ipam::from_conf(conf)?.gc(conf, args, stdin, valid)?;
    let mut fw = NftFirewall::open().map_err(kernel_err)?;
    remove_stale_rules(&mut fw, &conf.name, valid).map_err(kernel_err)?;
    remove_stale_ports(conf, valid)
}

/// Removes the rules of `network`'s attachments that are not in `valid`;
/// rules of other networks are left alone.
fn remove_stale_rules(
    fw: &mut dyn Firewall,
    network: &str,
    valid: &[Attachment],
) -> Result<usize, NftError> {
    let keep: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    fw.remove(&|t| nft::parse_tag(network, t).is_some_and(|id| !keep.contains(&id)))
}

fn remove_stale_ports(conf: &NetConf, valid: &[Attachment]) -> CniResult<()> {
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
        // A detached one is a DEL's whose deleting child never ran.
        let port = link.master == Some(br.index) || link.is_detached();
        if port && ours && is_our_veth_name(&link.name) && !keep.contains(&link.name) {
            match rtnl.delete_link(&link) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                Err(e) => return Err(kernel_err(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::rules::RuleSpec;

    /// Rules reduced to their tags.
    #[derive(Default)]
    struct FakeFirewall {
        tags: Vec<String>,
    }

    impl Firewall for FakeFirewall {
        fn add(&mut self, tag: &str, rules: &[RuleSpec]) -> Result<(), NftError> {
            self.tags.extend(rules.iter().map(|_| tag.to_string()));
            Ok(())
        }
        fn remove(&mut self, doomed: &dyn Fn(&str) -> bool) -> Result<usize, NftError> {
            let before = self.tags.len();
            self.tags.retain(|t| !doomed(t));
            Ok(before - self.tags.len())
        }
        fn count(&mut self, tag: &str) -> Result<usize, NftError> {
            Ok(self.tags.iter().filter(|t| *t == tag).count())
        }
    }

    #[test]
    fn gc_keeps_valid_and_foreign_rules() {
        let mut fw = FakeFirewall::default();
        let masq = crate::nft::rules::plan(&["10.0.0.2/24".parse().unwrap()], true, &[]);
        for (net, id, ifname) in [
            ("n", "a", "eth0"),
            ("n", "b", "eth0"),
            ("n", "a", "eth1"),
            ("m", "b", "eth0"),
        ] {
            fw.add(&nft::tag(net, id, ifname), &masq).unwrap();
        }
        let valid = [Attachment {
            container_id: "a".into(),
            ifname: "eth0".into(),
        }];
        assert_eq!(remove_stale_rules(&mut fw, "n", &valid).unwrap(), 2);
        assert_eq!(
            fw.tags,
            vec![nft::tag("n", "a", "eth0"), nft::tag("m", "b", "eth0")]
        );
    }
}
