//! `ps`: the processes in the container's cgroup, as pids (json) or filtered `ps` output.

use std::collections::HashSet;
use std::process::Command;

use anyhow::{bail, Context, Result};
use libcgroups::common::CgroupManager;

use crate::cli::{GlobalOpts, OutputFormat, Ps};

pub fn ps(args: Ps, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let container = super::load(g, id)?;
    let manager = super::events::cgroup_manager(&container)?;
    let pids: Vec<i32> = manager
        .get_all_pids()
        .with_context(|| format!("failed to list processes of container {id:?}"))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    match args.format {
        // runc prints `null` for a container without processes (a stopped one)
        OutputFormat::Json if pids.is_empty() => println!("null"),
        OutputFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        OutputFormat::Table => {
            let ps_args = if args.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                args.ps_args.clone()
            };
            let out = Command::new("ps")
                .args(&ps_args)
                .output()
                .context("failed to run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    ps_args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            print!(
                "{}",
                filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?
            );
        }
    }
    Ok(0)
}

/// Keeps ps's header and the lines whose PID column is one of `pids`.
fn filter_ps(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let wanted: HashSet<i32> = pids.iter().copied().collect();
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| wanted.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_container_pids() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n";
        let f = filter_ps(out, &[42]).unwrap();
        assert_eq!(
            f,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n"
        );
        assert!(filter_ps("A B\n", &[1]).is_err());
    }
}
