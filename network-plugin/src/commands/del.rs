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
use crate::net::rtnl::{Link, Rtnl};
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
///
/// The host veth is taken off the bridge and down first, so no frame crosses it once its
/// addresses are released; deleting it is left to a detached child (see `delete_later`).
pub fn teardown(
    args: &CniArgs,
    conf: &NetConf,
    stdin: &[u8],
    ipam: Option<&Ipam>,
) -> CniResult<()> {
    let host_name = host_veth_name(&conf.name, &args.container_id, &args.ifname);
    let detached = detach_host_veth(&host_name);
    let (fw, nat) = remove_nat(conf, args);
    let addrs = ipam.map_or(Ok(()), |ipam| ipam.del(conf, args, stdin));
    let link = match detached {
        Ok(Some(link)) => delete_later(link),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    // The child holds its own copy of the nftables socket: closing ours does not wait for the
    // kernel to free the transaction (a grace period).
    drop(fw);
    nat.and(link).and(addrs)
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

/// The host veth, off its bridge and down; None when it is already gone.
fn detach_host_veth(name: &str) -> Result<Option<Link>, CniError> {
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    let Some(link) = rtnl.link_by_name(name).map_err(kernel_err)? else {
        return Ok(None);
    };
    match rtnl.detach_link(&link) {
        Ok(()) => Ok(Some(link)),
        // A concurrent DEL, or the namespace going away, removed it.
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(kernel_err(e)),
    }
}

/// Deletes a detached veth (and with it the container end) in a child that outlives us.
///
/// Unregistering a veth waits for an RCU barrier in the kernel (15-25 ms here, more than the
/// rest of DEL together), and the runtime waits for DEL on every pod stop; the link is already
/// isolated, so nobody needs to wait for it to go. The child is in a session of its own with
/// /dev/null as stdio (the runtime reads our stdout until EOF) and is reaped by init. Should it
/// never run, the link still goes with the container's namespace, an ADD of the same
/// attachment deletes it first, and GC removes any left. Without a child (fork failed) the
/// deletion happens here.
fn delete_later(link: Link) -> Result<(), CniError> {
    // SAFETY: the plugin is single-threaded here (no thread of ours is running), so the child
    // may allocate; it leaves through _exit, running no destructor or atexit handler of the
    // parent's state.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => Ok(()),
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors of this process.
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
                }
            }
            let ok = delete_detached(&link).is_ok();
            // SAFETY: ends the child without unwinding into the parent's code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Err(_) => delete_detached(&link),
    }
}

/// Deletes `link` if its index still holds it, detached: by then an ADD of the same
/// attachment may have replaced it with a new veth of the same name (and a new index).
pub fn delete_detached(link: &Link) -> Result<(), CniError> {
    let mut rtnl = Rtnl::open().map_err(kernel_err)?;
    let Some(now) = rtnl.link_by_index(link.index).map_err(kernel_err)? else {
        return Ok(());
    };
    if now.name != link.name || now.master.is_some() {
        return Ok(());
    }
    match rtnl.delete_link(&now) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(kernel_err(e)),
    }
}
