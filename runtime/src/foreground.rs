//! Waiting for a foreground container process: forward the signals we get, copy pty IO, reap,
//! and turn the wait status into runc's exit code (status, or 128 + signal).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fchown, pipe2, read, write, Gid, Pid, Uid};

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

    /// Runs until `pid` exits, copying its IO through the pty or the pipes; returns its exit
    /// code.
    pub fn wait(self, pid: Pid, io: Io) -> Result<i32> {
        match io {
            Io::Pipes(pipes) => self.wait_piped(pid, pipes),
            Io::Console(c) => self.wait_console(pid, Some(c)),
            Io::Inherited => self.wait_console(pid, None),
        }
    }

    fn wait_console(self, pid: Pid, console: Option<Console>) -> Result<i32> {
        let mut stdin_open = console.is_some();
        loop {
            if let Some(code) = reap(pid)? {
                if let Some(c) = &console {
                    drain(c.master.as_fd(), 1);
                }
                tracing::debug!(pid = pid.as_raw(), status = code, "process exited");
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
            let ready = wait_ready(&mut fds)?;
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

    fn wait_piped(self, pid: Pid, mut p: ProcessPipes) -> Result<i32> {
        loop {
            if let Some(code) = reap(pid)? {
                // What it wrote just before exiting; a child it left behind may hold the pipes
                // open, so this stops at the first quiet moment rather than at EOF.
                for (r, to) in [(&p.stdout, 1), (&p.stderr, 2)] {
                    if let Some(r) = r {
                        drain(r.as_fd(), to);
                    }
                }
                tracing::debug!(pid = pid.as_raw(), status = code, "process exited");
                return Ok(code);
            }
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            let mut slots = [usize::MAX; 3];
            for (k, r) in [&p.stdout, &p.stderr].into_iter().enumerate() {
                if let Some(r) = r {
                    slots[k] = fds.len();
                    fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                }
            }
            // Our stdin is read only when the container's pipe has room, so a container that
            // does not read its stdin never blocks us.
            if let Some(w) = &p.stdin {
                slots[2] = fds.len();
                if p.pending.is_empty() {
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                } else {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
                }
            }
            let ready = wait_ready(&mut fds)?;
            drop(fds);
            if ready[0] {
                self.forward(pid, None)?;
            }
            for (k, to) in [(0, 1), (1, 2)] {
                let out = if k == 0 { &mut p.stdout } else { &mut p.stderr };
                if slots[k] != usize::MAX && ready[slots[k]] {
                    if let Some(r) = out {
                        if !copy(r.as_raw_fd(), to) {
                            *out = None;
                        }
                    }
                }
            }
            if slots[2] != usize::MAX && ready[slots[2]] {
                p.feed_stdin();
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

/// Waits until one of `fds` is ready (or a signal came); which ones are, in order.
fn wait_ready(fds: &mut [PollFd<'_>]) -> Result<Vec<bool>> {
    match poll(fds, PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e).context("poll failed"),
    }
    Ok(fds
        .iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect())
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

/// Copies what the process wrote just before exiting to `to`, without blocking on an idle pty
/// or pipe.
fn drain(from: BorrowedFd<'_>, to: i32) {
    loop {
        let mut fds = [PollFd::new(from, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u8)) {
            Ok(n) if n > 0 => {
                if !copy(from.as_raw_fd(), to) {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// How a foreground process's IO reaches us.
pub enum Io {
    /// Through the pty whose master we got on our console socket.
    Console(Console),
    /// Through pipes we gave it (no terminal), as runc does.
    Pipes(ProcessPipes),
    /// It has our own fds (there is nothing to copy).
    Inherited,
}

/// runc's foreground IO without a terminal: the process gets three pipes, never the caller's
/// own descriptors. Handing those over would give a container the caller's terminal (a
/// TIOCSTI away from typing commands into the caller's shell) or whatever file the caller
/// has open, for as long as any of its processes keeps the descriptor.
///
/// `install` puts the container's ends of the pipes on fds 0-2 of this process, for the
/// container to inherit when libcontainer clones it; `restore` puts ours back. Between the
/// two, what this process writes to stderr goes to the process's stderr pipe and is copied out
/// with the rest of it (`flush` after a failed create).
pub struct StdioPipes {
    saved: [OwnedFd; 3],
    ours: ProcessPipes,
}

/// Our ends: the write end of the process's stdin, the read ends of its stdout and stderr.
pub struct ProcessPipes {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Read from our stdin, not yet taken by the process's pipe.
    pending: Vec<u8>,
}

/// Runs `build`, which clones the foreground process, with the process's pipes in place when
/// `piped` (its value: the pipes' owner, see `install`): returns what `build` made and our ends
/// of the pipes. A failed `build` has what was written meanwhile (our own messages among it)
/// copied out before its error is returned.
pub fn build_piped<T>(
    piped: Option<Option<(u32, u32)>>,
    build: impl FnOnce() -> Result<T>,
) -> Result<(T, Option<ProcessPipes>)> {
    let Some(owner) = piped else {
        return Ok((build()?, None));
    };
    let installed = StdioPipes::install(owner)?;
    let built = build();
    let pipes = installed.restore();
    match built {
        Ok(t) => Ok((t, Some(pipes))),
        Err(e) => {
            pipes.flush();
            Err(e)
        }
    }
}

impl Io {
    /// The pty when we own the console socket, else the pipes if we gave any, else nothing.
    pub fn of(
        proxy: Option<crate::console::ConsoleProxy>,
        pipes: Option<ProcessPipes>,
    ) -> Result<Self> {
        Ok(match (proxy, pipes) {
            (Some(p), _) => Io::Console(p.accept()?),
            (None, Some(p)) => Io::Pipes(p),
            (None, None) => Io::Inherited,
        })
    }
}

impl StdioPipes {
    /// `owner`: the host uid and gid of the container's root, who gets the pipes (so a process
    /// of the container can reopen them through /proc/self/fd), as runc does.
    fn install(owner: Option<(u32, u32)>) -> Result<Self> {
        // A closed stdio fd of ours is /dev/null from here on, so that the pipes and the
        // copies below land above 2.
        for fd in 0..3 {
            if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                let null = std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .context("failed to open /dev/null")?;
                if null.as_raw_fd() != fd {
                    dup2(null.as_raw_fd(), fd).context("failed to put /dev/null in place")?;
                } else {
                    std::mem::forget(null);
                }
            }
        }
        let save = |fd: i32| -> Result<OwnedFd> {
            let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .context("failed to keep a copy of our stdio")?;
            // SAFETY: F_DUPFD_CLOEXEC just gave us this fd.
            Ok(unsafe { OwnedFd::from_raw_fd(n) })
        };
        let saved = [save(0)?, save(1)?, save(2)?];
        let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).context("failed to create the stdin pipe")?;
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).context("failed to create the stdout pipe")?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).context("failed to create the stderr pipe")?;
        if let Some((uid, gid)) = owner.filter(|o| *o != (0, 0)) {
            for fd in [&in_r, &out_w, &err_w] {
                fchown(
                    fd.as_raw_fd(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                )
                .context("failed to hand the stdio pipes to the container's root")?;
            }
        }
        nix::fcntl::fcntl(
            in_w.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        )
        .context("failed to make the stdin pipe non-blocking")?;
        for (fd, target) in [(&in_r, 0), (&out_w, 1), (&err_w, 2)] {
            dup2(fd.as_raw_fd(), target).context("failed to put a stdio pipe in place")?;
        }
        Ok(Self {
            saved,
            ours: ProcessPipes {
                stdin: Some(in_w),
                stdout: Some(out_r),
                stderr: Some(err_r),
                pending: Vec::new(),
            },
        })
    }

    /// Puts our own stdio back (the process has its ends by now) and returns our ends. What
    /// was written to stderr meanwhile (our own messages) is copied out first.
    fn restore(self) -> ProcessPipes {
        for (k, fd) in self.saved.iter().enumerate() {
            let _ = dup2(fd.as_raw_fd(), k as i32);
        }
        self.ours
    }
}

impl ProcessPipes {
    /// Copies out what is in the process's stdout and stderr pipes now, without waiting:
    /// after a failed create, our own messages are among it.
    fn flush(self) {
        for (r, to) in [(&self.stdout, 1), (&self.stderr, 2)] {
            if let Some(r) = r {
                let _ = nix::fcntl::fcntl(
                    r.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
                );
                while copy(r.as_raw_fd(), to) {}
            }
        }
    }

    /// Moves one chunk of our stdin into the process's pipe; at our EOF its pipe is closed.
    fn feed_stdin(&mut self) {
        let Some(w) = &self.stdin else { return };
        if self.pending.is_empty() {
            let mut buf = [0u8; 4096];
            match read(0, &mut buf) {
                Ok(0) | Err(_) => {
                    self.stdin = None;
                    return;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
        match write(w, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            // The process closed its stdin: what we would give it has nowhere to go.
            Err(_) => {
                self.stdin = None;
                self.pending.clear();
            }
        }
    }
}

/// The host uid and gid of the container's root: the ids mapped to 0 in its user namespace, or
/// None without one.
pub fn root_owner(spec: &oci_spec::runtime::Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    let host = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_ref()?
            .iter()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    let uid = host(linux.uid_mappings())?;
    Some((uid, host(linux.gid_mappings()).unwrap_or(uid)))
}
