//! Waiting for a foreground container process: forward the signals we get, copy pty IO, reap,
//! and turn the wait status into runc's exit code (status, or 128 + signal).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{read, write, Pid};

use crate::console::Console;

pub struct SignalForwarder {
    sfd: SignalFd,
}

impl SignalForwarder {
    /// Blocks every signal so that they arrive on a signalfd instead; call it after the container
    /// process is cloned, since a blocked mask would be inherited.
    pub fn block() -> Result<Self> {
        let mask = SigSet::all();
        mask.thread_block().context("failed to block signals")?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("failed to create signalfd")?;
        Ok(Self { sfd })
    }

    /// Runs until `pid` exits; returns its exit code.
    pub fn wait(self, pid: Pid, console: Option<Console>) -> Result<i32> {
        let mut stdin_open = console.is_some();
        loop {
            if let Some(code) = reap(pid)? {
                if let Some(c) = &console {
                    drain(c.master.as_fd());
                }
                tracing::debug!("process exited pid={pid} status={code}");
                return Ok(code);
            }
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(c) = &console {
                fds.push(PollFd::new(c.master.as_fd(), PollFlags::POLLIN));
                if stdin_open {
                    // SAFETY: fd 0 stays open for the life of the process.
                    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll failed"),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                self.forward(pid, console.as_ref())?;
            }
            if let Some(c) = &console {
                if ready[1] {
                    copy(c.master.as_raw_fd(), 1);
                }
                if stdin_open && ready.get(2) == Some(&true) && !copy(0, c.master.as_raw_fd()) {
                    stdin_open = false;
                }
            }
        }
    }

    fn forward(&self, pid: Pid, console: Option<&Console>) -> Result<()> {
        while let Some(info) = self.sfd.read_signal().context("failed to read signalfd")? {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD | Signal::SIGURG => {}
                Signal::SIGWINCH => {
                    if let Some(c) = console {
                        c.resize_from_stdin();
                    }
                }
                other => {
                    let _ = kill(pid, other);
                }
            }
        }
        Ok(())
    }
}

/// Reaps every exited child; returns the exit code once `pid` is among them.
fn reap(pid: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(Some(128 + sig as i32)),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(Errno::ECHILD) => return Ok(Some(0)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waitpid failed"),
        }
    }
}

/// Copies one chunk; false at end of input.
fn copy(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: both fds are open for the duration of the call.
    let (src, dst) = unsafe { (BorrowedFd::borrow_raw(from), BorrowedFd::borrow_raw(to)) };
    match read(src.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match write(dst, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Copies what the process wrote just before exiting, without blocking on an idle pty.
fn drain(master: BorrowedFd<'_>) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u8)) {
            Ok(n) if n > 0 => {
                if !copy(master.as_raw_fd(), 1) {
                    return;
                }
            }
            _ => return,
        }
    }
}
