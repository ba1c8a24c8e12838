//! polis-ipam: the in-process IPAM of polis-bridge as a standalone CNI IPAM
//! plugin, for other plugins to delegate to.

use std::collections::HashMap;
use std::io::{Read, Write};

use polis_bridge::args::{CniArgs, Command};
use polis_bridge::config::sniff_version;
use polis_bridge::error::{code, CniError};
use polis_bridge::ipam::standalone;

fn main() {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Err(e) => Err(CniError::new(
            code::IO_FAILURE,
            format!("reading configuration from stdin: {e}"),
        )),
        Ok(_) => Command::parse(env.get("CNI_COMMAND").map(String::as_str).unwrap_or(""))
            .and_then(|cmd| Ok((cmd, CniArgs::from_env(cmd, &env)?)))
            .and_then(|(cmd, args)| standalone::run(cmd, &args, &stdin)),
    };
    let mut out = std::io::stdout().lock();
    let rc = match outcome {
        Ok(s) => {
            if !s.is_empty() {
                let _ = writeln!(out, "{s}");
            }
            0
        }
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(&sniff_version(&stdin)));
            eprintln!("polis-ipam: {e}");
            1
        }
    };
    std::process::exit(rc);
}
