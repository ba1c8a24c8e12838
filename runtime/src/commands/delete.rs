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
    let status = container.status();
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
    let pidfd = container.pid().and_then(|pid| {
        // SAFETY: pidfd_open takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    });
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
