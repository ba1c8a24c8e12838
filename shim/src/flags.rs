//! The shim's command line, as containerd writes it: Go `flag` syntax (`-name value`,
//! `-name=value`, `--name`, bare booleans), flags first, then the action (`start`, `delete`,
//! or none for the server).

use std::ffi::OsString;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    pub debug: bool,
    pub version: bool,
    /// `-h`/`-help`: print the usage and exit.
    pub help: bool,
    /// containerd 2.x's `-info`: describe the runtime and exit.
    pub info: bool,
    pub namespace: String,
    pub id: String,
    pub socket: String,
    pub bundle: String,
    pub address: String,
    pub publish_binary: String,
    pub action: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value {1:?} for -{0}")]
    BadBool(String, String),
    #[error("argument {0:?} is not UTF-8")]
    NotUtf8(OsString),
}

impl Flags {
    /// The bundle: `-bundle`, else the directory containerd starts the shim in.
    pub fn bundle(&self) -> std::io::Result<std::path::PathBuf> {
        if self.bundle.is_empty() {
            std::env::current_dir()
        } else {
            Ok(self.bundle.clone().into())
        }
    }

    fn string_slot(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "namespace" => &mut self.namespace,
            "id" => &mut self.id,
            "socket" => &mut self.socket,
            "bundle" => &mut self.bundle,
            "address" => &mut self.address,
            "publish-binary" => &mut self.publish_binary,
            _ => return None,
        })
    }

    fn bool_slot(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "debug" => &mut self.debug,
            "v" | "version" => &mut self.version,
            "h" | "help" => &mut self.help,
            "info" => &mut self.info,
            _ => return None,
        })
    }
}

/// What `-help` prints, and what follows an unknown flag.
pub const USAGE: &str = "\
Usage: containerd-shim-polis-v2 [flags] [start|delete]

containerd starts this shim for runtime type io.containerd.polis.v2; it is not run by hand.
Put it on containerd's PATH (or name it by absolute path as the runtime), then e.g.
  ctr run --runtime io.containerd.polis.v2 IMAGE ID CMD
or a CRI runtime handler with runtime_type = \"io.containerd.polis.v2\".

Actions:
  start     spawn (or reuse) the shim server for -id and print its address
  delete    clean up the container -id after its shim has gone
  (none)    serve the Task API on the socket containerd passes

Flags (Go flag syntax: -name value, -name=value, --name):
  -namespace string       containerd namespace
  -id string              container id
  -address string         containerd's grpc address
  -publish-binary string  binary that publishes events to containerd
  -bundle string          bundle directory (default: the working directory)
  -socket string          socket to serve on (containerd 2.x)
  -debug                  debug logging
  -info                   print the runtime's info (containerd 2.x) and exit
  -v, -version            print the version and exit
  -h, -help               print this help and exit
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Flags, FlagError> {
    let mut args = args
        .into_iter()
        .map(|a| a.into_string().map_err(FlagError::NotUtf8))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let mut flags = Flags::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            flags.action = args.next().unwrap_or_default();
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            // Go stops at the first non-flag argument: that is the action.
            flags.action = arg;
            break;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if let Some(slot) = flags.bool_slot(name) {
            *slot = match inline.as_deref() {
                None => true,
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                Some(v) => return Err(FlagError::BadBool(name.into(), v.into())),
            };
        } else if let Some(slot) = flags.string_slot(name) {
            *slot = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| FlagError::MissingValue(name.into()))?,
            };
        } else {
            return Err(FlagError::Unknown(name.into()));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Flags, FlagError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn help_in_every_spelling() {
        for a in ["-h", "--h", "-help", "--help"] {
            assert!(p(&[a]).unwrap().help, "{a}");
        }
        assert!(USAGE.contains("-namespace") && USAGE.contains("start"));
    }

    #[test]
    fn containerd_start_line() {
        let f = p(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action, "start");
    }

    #[test]
    fn go_forms() {
        let f = p(&["--id=a", "-socket=unix:///x", "-debug=false", "-v"]).unwrap();
        assert!(!f.info && p(&["-info"]).unwrap().info);
        assert_eq!(f.id, "a");
        assert_eq!(f.socket, "unix:///x");
        assert!(!f.debug && f.version);
        assert_eq!(f.action, "");
        assert_eq!(p(&["-id", "x", "--", "-delete"]).unwrap().action, "-delete");
        // Flags after the action are the action's, not ours.
        assert_eq!(p(&["delete", "-bogus"]).unwrap().action, "delete");
    }

    #[test]
    fn bad_lines_name_the_flag() {
        assert_eq!(p(&["-bogus"]), Err(FlagError::Unknown("bogus".into())));
        assert_eq!(p(&["-id"]), Err(FlagError::MissingValue("id".into())));
        assert_eq!(
            p(&["-debug=maybe"]),
            Err(FlagError::BadBool("debug".into(), "maybe".into()))
        );
    }
}
