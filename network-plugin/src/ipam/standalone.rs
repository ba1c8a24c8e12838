//! The verbs of the standalone `polis-ipam` binary.

use serde::Deserialize;

use super::config::IpamConf;
use super::store::Owner;
use crate::args::{CniArgs, Command};
use crate::config::{check_version, require_valid_attachments, Attachment};
use crate::error::{code, CniError, CniResult};
use crate::names::is_spec_name;

#[derive(Deserialize)]
struct Conf {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    name: String,
    #[serde(default)]
    ipam: serde_json::Value,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

pub fn run(cmd: Command, args: &CniArgs, stdin: &[u8]) -> CniResult<String> {
    if cmd == Command::Version {
        return Ok(crate::config::version_answer(stdin));
    }
    let conf: Conf = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            format!("network configuration on stdin is not valid: {e}"),
        )
    })?;
    check_version(&conf.cni_version)?;
    if !is_spec_name(&conf.name) {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "network name {:?} must be characters of [A-Za-z0-9_.-]",
                conf.name
            ),
        ));
    }
    let ipam = if cmd == Command::Del {
        IpamConf::for_release(&conf.name, &conf.ipam)?
    } else {
        IpamConf::from_value(&conf.name, &conf.ipam)?
    };
    let owner = Owner {
        container_id: args.container_id.clone(),
        ifname: args.ifname.clone(),
    };
    match cmd {
        Command::Add => Ok(super::add(&ipam, &conf.name, &owner)?.to_json(&conf.cni_version)),
        Command::Del => super::del(&ipam, &conf.name, &owner).map(|_| String::new()),
        Command::Check => super::check(&ipam, &conf.name, &owner).map(|_| String::new()),
        Command::Status => super::status(&ipam, &conf.name).map(|_| String::new()),
        Command::Gc => {
            let valid = require_valid_attachments(&conf.name, conf.valid_attachments.as_ref())?;
            super::gc(&ipam, &conf.name, valid).map(|_| String::new())
        }
        Command::Version => unreachable!("handled above"),
    }
}
