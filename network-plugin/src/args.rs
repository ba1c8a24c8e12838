//! The `CNI_*` environment of one invocation, as plain values.
//!
//! Only `main` reads the process environment; it hands a map to
//! [`CniArgs::from_env`], so the parsing is testable.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{code, CniError, CniResult};
use crate::names::{is_spec_name, validate_ifname};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> CniResult<Self> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!("unknown CNI_COMMAND {other:?}"),
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// Everything the runtime passes in the environment.
#[derive(Debug, Clone, Default)]
pub struct CniArgs {
    pub container_id: String,
    /// Empty when the runtime gave none (allowed for DEL).
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl CniArgs {
    /// Reads and validates the variables `cmd` needs.
    pub fn from_env(cmd: Command, env: &HashMap<String, String>) -> CniResult<Self> {
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let args = CniArgs {
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: parse_cni_args(&get("CNI_ARGS"))?,
            path: std::env::split_paths(&get("CNI_PATH")).collect(),
        };
        let need_container = matches!(cmd, Command::Add | Command::Del | Command::Check);
        if need_container {
            if args.container_id.is_empty() {
                return Err(missing("CNI_CONTAINERID"));
            }
            // IDs end up in rule comments and store files: keep them to the
            // spec's character set and a length that fits a rule comment.
            if !is_spec_name(&args.container_id) || args.container_id.len() > 100 {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "CNI_CONTAINERID {:?} must be 1-100 characters of [A-Za-z0-9_.-]",
                        args.container_id
                    ),
                ));
            }
            if args.ifname.is_empty() {
                return Err(missing("CNI_IFNAME"));
            }
            validate_ifname(&args.ifname)?;
        }
        if matches!(cmd, Command::Add | Command::Check) && args.netns.is_empty() {
            return Err(missing("CNI_NETNS"));
        }
        Ok(args)
    }
}

fn missing(var: &str) -> CniError {
    CniError::new(
        code::INVALID_ENV,
        format!("required environment variable {var} is missing or empty"),
    )
}

fn parse_cni_args(s: &str) -> CniResult<Vec<(String, String)>> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_ARGS entry {pair:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_needs_netns() {
        let e = CniArgs::from_env(
            Command::Add,
            &env(&[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]),
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_NETNS"));
    }

    #[test]
    fn del_accepts_missing_netns_and_parses_args() {
        let a = CniArgs::from_env(
            Command::Del,
            &env(&[
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p"),
                ("CNI_PATH", "/a:/b"),
            ]),
        )
        .unwrap();
        assert_eq!(a.args[1], ("K8S_POD_NAME".into(), "p".into()));
        assert_eq!(a.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn rejects_container_ids_outside_the_spec() {
        for bad in ["a/b", "x;y", &"a".repeat(101)] {
            let e = CniArgs::from_env(
                Command::Del,
                &env(&[("CNI_CONTAINERID", bad), ("CNI_IFNAME", "eth0")]),
            )
            .unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{bad}");
        }
    }

    #[test]
    fn rejects_bad_ifname() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a-very-long-ifname").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert_eq!(Command::parse("NOPE").unwrap_err().code, code::INVALID_ENV);
    }
}
