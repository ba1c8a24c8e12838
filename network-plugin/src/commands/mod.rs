//! One module per CNI verb; [`run`] dispatches. Commands take plain values
//! (arguments, parsed configuration, raw stdin for delegation).

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod ipam_step;
pub mod links;
pub mod status;

use crate::args::{CniArgs, Command};
use crate::config::NetConf;
use crate::error::{code, CniError, CniResult};

/// Runs one verb; returns what goes to stdout.
pub fn run(cmd: Command, args: &CniArgs, stdin: &[u8]) -> CniResult<String> {
    if cmd == Command::Version {
        return Ok(crate::config::version_answer(stdin));
    }
    if cmd == Command::Del {
        let (conf, ignored) = NetConf::parse_for_del(stdin)?;
        if let Some(e) = ignored {
            eprintln!(
                "polis-bridge: DEL of container {} ({}) on network {:?} ignores the rest of a configuration ADD would refuse: {}",
                args.container_id, args.ifname, conf.name, e.msg
            );
        }
        return del::cmd_del(args, &conf, stdin).map(|_| String::new());
    }
    let conf = NetConf::parse(stdin)?;
    match cmd {
        Command::Add => add::cmd_add(args, &conf, stdin),
        Command::Del => unreachable!("handled above"),
        Command::Check => check::cmd_check(args, &conf, stdin).map(|_| String::new()),
        Command::Status => status::cmd_status(args, &conf, stdin).map(|_| String::new()),
        Command::Gc => gc::cmd_gc(args, &conf, stdin).map(|_| String::new()),
        Command::Version => unreachable!("handled above"),
    }
}

/// Verbs added by a spec version are refused for older configurations.
pub fn require_version(conf: &NetConf, min: &str, verb: &str) -> CniResult<()> {
    if conf.version_at_least(min) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{verb} needs cniVersion >= {min}, network {:?} uses {}",
                conf.name, conf.cni_version
            ),
        ))
    }
}

pub(crate) fn kernel_err(e: impl std::fmt::Display) -> CniError {
    CniError::new(code::KERNEL_FAILURE, e.to_string())
}
