//! polis-bridge: CNI plugin entry point. Reads the environment and stdin,
//! dispatches the verb, prints the result or the CNI error JSON.

use std::collections::HashMap;
use std::io::{Read, Write};

use polis_bridge::args::{CniArgs, Command};
use polis_bridge::commands;
use polis_bridge::config::sniff_version;
use polis_bridge::error::{code, CniError};

fn main() {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = match read {
        Err(e) => Err(CniError::new(
            code::IO_FAILURE,
            format!("reading configuration from stdin: {e}"),
        )),
        Ok(_) => run(&env, &stdin),
    };
    std::process::exit(report(outcome, &stdin));
}

fn run(env: &HashMap<String, String>, stdin: &[u8]) -> Result<String, CniError> {
    let cmd = Command::parse(env.get("CNI_COMMAND").map(String::as_str).unwrap_or(""))?;
    let args = CniArgs::from_env(cmd, env)?;
    commands::run(cmd, &args, stdin)
}

/// Prints the outcome as the spec asks; returns the exit code.
fn report(outcome: Result<String, CniError>, stdin: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(s) => {
            if !s.is_empty() {
                let _ = writeln!(out, "{s}");
            }
            0
        }
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(&sniff_version(stdin)));
            eprintln!("polis-bridge: {e}");
            1
        }
    }
}
