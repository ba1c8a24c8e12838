//! `kill`: send a signal (default SIGTERM) to the init, or with --all to every process.

use anyhow::{bail, Context, Result};
use libcontainer::container::state::StateError;
use libcontainer::container::ContainerStatus;
use libcontainer::error::LibcontainerError;
use libcontainer::signal::Signal;

use crate::cli::{GlobalOpts, Kill};

pub fn kill(args: Kill, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    // Signal 0 checks that the init is alive, as kill(2) and runc do; nothing is sent.
    if args.signal.trim_start_matches("SIG") == "0" {
        let container = super::load(g, id)?;
        let alive = !matches!(
            container.status(),
            ContainerStatus::Stopped | ContainerStatus::Creating
        ) && container
            .pid()
            .is_some_and(|p| nix::sys::signal::kill(p, None).is_ok());
        if !alive {
            bail!("cannot kill container {id:?}: container not running");
        }
        return Ok(0);
    }
    let signal = parse_signal(&args.signal)?;
    let mut container = super::load(g, id)?;
    let status = container.status();
    if matches!(status, ContainerStatus::Stopped | ContainerStatus::Creating) && !args.all {
        bail!("cannot kill container {id:?}: container not running");
    }
    match container.kill(signal, args.all) {
        Ok(()) => Ok(0),
        // libcontainer records "stopped" after the signal is sent; a foreground `run` that
        // reaps the process may remove the container in between. The signal was delivered and
        // there is nothing left to record (runc records nothing after signalling either).
        Err(LibcontainerError::State(StateError::OpenStateFile { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(0)
        }
        Err(err) => Err(err)
            .with_context(|| format!("failed to send signal {} to container {id:?}", args.signal)),
    }
}

pub fn parse_signal(s: &str) -> Result<Signal> {
    Signal::try_from(s).map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        for s in ["KILL", "SIGKILL", "9", "sigterm", "HUP"] {
            parse_signal(s).unwrap();
        }
        let err = parse_signal("SIGFOO").unwrap_err().to_string();
        assert!(err.contains("SIGFOO"), "{err}");
    }
}
