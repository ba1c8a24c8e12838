//! The launcher: a small process forked before the shim confines itself, which spawns every
//! process the shim needs (polis-runc, logging binaries). Seccomp filters are inherited, so
//! nothing the confined shim would pass on reaches the runtime or the containers.
//!
//! Protocol over a SOCK_SEQPACKET pair (encoding in wire.rs): the shim sends id, argv, cwd
//! and env with the child's fds 0.. as SCM_RIGHTS; the launcher answers the id with a pid
//! or an error, and later the pid's exit status when it reaps that child. Orphans (container processes)
//! are reparented to the shim, the subreaper, not to the launcher.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use wire::{Reply, Request, ERROR, EXITED, SPAWNED};

mod wire;

/// What to run; `fds[i]` becomes the child's fd `i`.
pub struct SpawnRequest {
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub fds: Vec<OwnedFd>,
}

const MAX_FDS: usize = 8;
const MAX_MSG: usize = 64 * 1024;

fn send(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

fn recv(sock: RawFd) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        // SAFETY: the kernel installed these fds for us.
                        fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "launcher socket closed",
        ));
    }
    buf.truncate(n);
    Ok((buf, fds))
}

/// The last request id, and the requesters waiting for their pid.
type Pending = (u64, HashMap<u64, Sender<io::Result<i32>>>);

/// The shim's side.
pub struct Launcher {
    sock: OwnedFd,
    state: Mutex<Pending>,
}

impl Launcher {
    /// Forks the launcher. Call while the process is still single-threaded.
    pub fn fork() -> io::Result<OwnedFd> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        // SAFETY: the caller guarantees no other thread exists; the child only runs
        // `serve`, which never returns.
        match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                // A name of its own, so nobody takes it for the shim server.
                // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
                unsafe { libc::prctl(libc::PR_SET_NAME, c"polis-launcher".as_ptr(), 0, 0, 0) };
                // Our stdout is the pipe `start` reads until EOF: let go of it.
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    for fd in 0..3 {
                        // SAFETY: dup2 onto our own standard fds.
                        unsafe { libc::dup2(null.as_raw_fd(), fd) };
                    }
                }
                serve(theirs.as_raw_fd());
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Parent { .. } => Ok(ours),
        }
    }

    /// Starts the reply reader; `on_exit(pid, status)` gets each reaped child, and
    /// `on_spawned(pid)` runs before the requester learns the pid, so no exit is missed.
    pub fn start(
        sock: OwnedFd,
        on_spawned: impl Fn(u64, i32) + Send + 'static,
        on_exit: impl Fn(i32, i32) + Send + 'static,
    ) -> io::Result<Arc<Self>> {
        let me = Arc::new(Self {
            sock,
            state: Mutex::new((0, HashMap::new())),
        });
        let reader = me.clone();
        std::thread::Builder::new()
            .name("launcher".into())
            .spawn(move || loop {
                let Ok((data, _)) = recv(reader.sock.as_raw_fd()) else {
                    log::error!("launcher is gone");
                    return;
                };
                let Ok(r) = Reply::decode(&data) else {
                    continue;
                };
                if r.kind == EXITED {
                    on_exit(r.pid, r.status);
                    continue;
                }
                let tx = reader.lock().1.remove(&r.id);
                let res = match r.kind {
                    ERROR => Err(io::Error::other(r.error)),
                    _ => {
                        on_spawned(r.id, r.pid);
                        Ok(r.pid)
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(res);
                }
            })?;
        Ok(me)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a request id (so the caller can register interest before sending).
    pub fn next_id(&self) -> u64 {
        let mut s = self.lock();
        s.0 += 1;
        s.0
    }

    /// Spawns through the launcher and returns the pid.
    pub fn spawn(&self, id: u64, req: SpawnRequest) -> io::Result<i32> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.lock().1.insert(id, tx);
        let msg = Request {
            id,
            argv: req.argv,
            cwd: req.cwd,
            env: req.env,
        }
        .encode();
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                self.lock().1.remove(&id);
                return Err(e);
            }
        };
        let fds: Vec<RawFd> = req.fds.iter().map(|f| f.as_raw_fd()).collect();
        send(self.sock.as_raw_fd(), &msg, &fds)?;
        drop(req.fds);
        rx.recv()
            .map_err(|_| io::Error::other("launcher is gone"))?
    }
}

/// The launcher's loop: single-threaded, so forking here is safe.
fn serve(sock: RawFd) {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return;
    };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sock,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two valid pollfd entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(sock);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let Ok((data, child_fds)) = recv(sock) else {
                return;
            };
            let Ok(req) = Request::decode(&data) else {
                continue;
            };
            let (kind, pid, error) = match spawn_local(&req, child_fds) {
                Ok(pid) => (SPAWNED, pid, String::new()),
                Err(e) => (ERROR, 0, format!("spawn {:?}: {e}", req.argv.first())),
            };
            let reply = Reply {
                kind,
                id: req.id,
                pid,
                status: 0,
                error,
            };
            let _ = send(sock, &reply.encode(), &[]);
        } else if fds[0].revents != 0 {
            return;
        }
    }
}

fn reap(sock: RawFd) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) => (p, c),
            Ok(WaitStatus::Signaled(p, s, _)) => (p, 128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        let r = Reply {
            kind: EXITED,
            id: 0,
            pid: pid.as_raw(),
            status,
            error: String::new(),
        };
        let _ = send(sock, &r.encode(), &[]);
    }
}

fn spawn_local(req: &Request, fds: Vec<OwnedFd>) -> io::Result<i32> {
    let spawn = SpawnRequest {
        argv: req.argv.clone(),
        cwd: req.cwd.clone(),
        env: req.env.clone(),
        fds,
    };
    let child = crate::monitor::command_for(&spawn).spawn()?;
    Ok(child.id() as i32)
}
