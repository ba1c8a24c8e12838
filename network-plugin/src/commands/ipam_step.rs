//! The IPAM of a network: in process for `polis-ipam`, delegated otherwise.

use crate::args::{CniArgs, Command};
use crate::config::{Attachment, NetConf};
use crate::error::{code, CniError, CniResult};
use crate::ipam::{self, config::IpamConf, delegate, store::Owner};
use crate::result::CniOutput;

pub const IN_PROCESS_TYPE: &str = "polis-ipam";

pub enum Ipam {
    InProcess(IpamConf),
    Delegate(String),
}

impl Ipam {
    pub fn from_conf(conf: &NetConf) -> CniResult<Self> {
        match conf.ipam_type() {
            "" => Err(CniError::new(
                code::INVALID_CONFIG,
                format!("network {:?} has no ipam type", conf.name),
            )),
            IN_PROCESS_TYPE => Ok(Ipam::InProcess(IpamConf::from_value(
                &conf.name, &conf.ipam,
            )?)),
            other => Ok(Ipam::Delegate(other.to_string())),
        }
    }

    /// DEL's IPAM: `polis-ipam` releases from its store even when the ranges
    /// of the ipam section no longer parse.
    pub fn for_del(conf: &NetConf) -> CniResult<Self> {
        match conf.ipam_type() {
            IN_PROCESS_TYPE => Ok(Ipam::InProcess(IpamConf::for_release(
                &conf.name, &conf.ipam,
            )?)),
            _ => Self::from_conf(conf),
        }
    }

    pub fn add(&self, conf: &NetConf, args: &CniArgs, stdin: &[u8]) -> CniResult<CniOutput> {
        match self {
            Ipam::InProcess(ic) => ipam::add(ic, &conf.name, &owner(args)),
            Ipam::Delegate(p) => delegate::add(p, args, stdin),
        }
    }

    pub fn del(&self, conf: &NetConf, args: &CniArgs, stdin: &[u8]) -> CniResult<()> {
        match self {
            Ipam::InProcess(ic) => ipam::del(ic, &conf.name, &owner(args)),
            Ipam::Delegate(p) => delegate::exec(p, Command::Del, args, stdin).map(|_| ()),
        }
    }

    pub fn check(&self, conf: &NetConf, args: &CniArgs, stdin: &[u8]) -> CniResult<()> {
        match self {
            Ipam::InProcess(ic) => ipam::check(ic, &conf.name, &owner(args)),
            Ipam::Delegate(p) => delegate::exec(p, Command::Check, args, stdin).map(|_| ()),
        }
    }

    pub fn gc(
        &self,
        conf: &NetConf,
        args: &CniArgs,
        stdin: &[u8],
        valid: &[Attachment],
    ) -> CniResult<()> {
        match self {
            Ipam::InProcess(ic) => ipam::gc(ic, &conf.name, valid),
            // A pre-1.1 IPAM plugin has no GC: its leases stay its business.
            Ipam::Delegate(p) if !delegate::supports(p, args, "1.1.0")? => Ok(()),
            Ipam::Delegate(p) => delegate::exec(p, Command::Gc, args, stdin).map(|_| ()),
        }
    }

    pub fn status(&self, conf: &NetConf, args: &CniArgs, stdin: &[u8]) -> CniResult<()> {
        match self {
            Ipam::InProcess(ic) => ipam::status(ic, &conf.name),
            Ipam::Delegate(p) if !delegate::supports(p, args, "1.1.0")? => {
                delegate::find_plugin(p, args).map(|_| ())
            }
            Ipam::Delegate(p) => delegate::exec(p, Command::Status, args, stdin).map(|_| ()),
        }
    }
}

pub fn owner(args: &CniArgs) -> Owner {
    Owner {
        container_id: args.container_id.clone(),
        ifname: args.ifname.clone(),
    }
}
