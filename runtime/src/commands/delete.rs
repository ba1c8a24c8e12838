//! `delete`: remove a stopped (or, with --force, any) container and everything it holds.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use libcontainer::signal::Signal;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::cli::{Delete, GlobalOpts};

pub fn delete(args: Delete, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let dir = super::container_dir(g, id)?;
    if !dir.join("state.json").exists() {
        if args.force {
            // A create that died before writing its state: nothing runs, just clean the dir.
            // No dir at all: as runc, a forced delete of what does not exist succeeds (the
            // state a caller wants is reached), silently.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("failed to remove {}", dir.display()))?;
            }
            return Ok(0);
        }
        bail!("container {id:?} does not exist");
    }
    let mut container = super::load(g, id)?;
    let mut status = container.status();
    // `kill KILL` then `delete` is a common script: the signal is sent, but the init may not
    // have exited yet when delete looks (we start in a few ms, and more so on a loaded
    // machine). A dying init is waited for, as the caller meant; a live one is refused at once.
    if !args.force && status == ContainerStatus::Running {
        if let Some(pid) = container.pid().filter(|p| dying(p.as_raw())) {
            if let Some(fd) = pidfd(pid.as_raw()) {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(EXIT_WAIT_MS));
            }
            container
                .refresh_status()
                .with_context(|| format!("failed to read the state of container {id:?}"))?;
            status = container.status();
        }
    }
    if !args.force && matches!(status, ContainerStatus::Running | ContainerStatus::Paused) {
        bail!(
            "cannot delete container {id:?} that is not stopped: {}",
            super::state::status_name(&container)
        );
    }
    if args.force
        && matches!(
            status,
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        )
    {
        // Best effort: whatever this leaves, libcontainer's delete kills and retries itself.
        if let Err(err) = kill_and_wait(&mut container) {
            tracing::debug!(container = id, error = %err, "early kill failed");
        }
    }
    container
        .delete(args.force)
        .with_context(|| format!("failed to delete container {id:?}"))?;
    Ok(0)
}

/// How long a forced delete waits for the killed init before leaving the rest to libcontainer.
const EXIT_WAIT_MS: u16 = 500;

/// SIGKILLs the container's processes and waits (bounded) until its init has exited.
/// libcontainer's delete would kill too, but then try to remove the cgroups while the init is
/// still exiting; the busy rmdir costs it a 10 ms sleep before retrying. When the init of a
/// pid namespace has exited, so has every process in it.
fn kill_and_wait(container: &mut Container) -> Result<(), LibcontainerError> {
    // The pidfd is taken before the kill, so it names the init and not a later reuse of its pid.
    let pidfd = container.pid().and_then(|pid| pidfd(pid.as_raw()));
    // A created container holds only its init, waiting for `start`: signalling it alone spares
    // the freeze that killing "all" does (which may sleep 10 ms while the init settles).
    let all = container.status() != ContainerStatus::Created;
    container.kill(Signal::from(nix::sys::signal::Signal::SIGKILL), all)?;
    if let Some(fd) = pidfd {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        // A timeout or an error only means libcontainer's own retries take over.
        let _ = poll(&mut fds, PollTimeout::from(EXIT_WAIT_MS));
    }
    Ok(())
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `pid` is on its way out: a SIGKILL pending, or already exiting (PF_EXITING).
fn dying(pid: i32) -> bool {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    dying_from(&read("status"), &read("stat"))
}

fn dying_from(status: &str, stat: &str) -> bool {
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    const PF_EXITING: u64 = 0x4;
    let killed = status.lines().any(|l| {
        let mask = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    });
    // The flags are the 9th field of stat, the 7th after the command's closing parenthesis
    // (the command itself may hold spaces and parentheses).
    let exiting = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|f| f & PF_EXITING != 0);
    killed || exiting
}

#[cfg(test)]
mod tests {
    use super::{dying, dying_from};

    const STAT: &str = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 120 0 0 0";

    #[test]
    fn a_pending_sigkill_or_the_exiting_flag_is_dying() {
        let quiet = "Name:\tsleep\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n";
        assert!(!dying_from(quiet, STAT));
        let killed = "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n";
        assert!(dying_from(killed, STAT));
        let termed = "SigPnd:\t0000000000004000\nShdPnd:\t0000000000000000\n";
        assert!(!dying_from(termed, STAT));
        let exiting = STAT.replace("4194560", "4194564");
        assert!(dying_from(quiet, &exiting));
        assert!(!dying_from("", ""));
    }

    #[test]
    fn a_live_process_is_not_dying_nor_a_reaped_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!dying(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!dying(pid));
    }
}
