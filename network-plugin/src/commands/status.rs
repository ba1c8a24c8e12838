//! STATUS (spec 1.1): ready when the IPAM store and nftables are usable.

use super::ipam_step::Ipam;
use super::require_version;
use crate::args::CniArgs;
use crate::config::NetConf;
use crate::error::{code, CniError, CniResult};
use crate::nft::NftFirewall;

pub fn cmd_status(args: &CniArgs, conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    require_version(conf, "1.1.0", "STATUS")?;
    Ipam::from_conf(conf)?.status(conf, args, stdin)?;
    NftFirewall::open()
        .map(|_| ())
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.to_string()))
}
