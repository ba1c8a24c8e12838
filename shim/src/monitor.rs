//! The exit monitor: the shim is a subreaper, so every process below it (the runtime
//! commands it runs, and the container processes reparented to it) is reaped here, in one
//! place. A runtime command's exit goes to the caller that spawned it; every other exit
//! (container inits and execs) goes to the service's exit channel.
//!
//! The spawn happens under the monitor's lock, after the waiter is registered, so an exit
//! can never be reaped before someone is listening for it.
//!
//! Once the shim confines itself (seccomp.rs), processes are spawned by the spawner thread:
//! the one thread started before the filter and so without it. Seccomp filters are
//! inherited, and neither polis-runc nor the containers may get the shim's.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

/// What to run; `fds[i]` becomes the child's fd `i`.
pub struct SpawnRequest {
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub fds: Vec<OwnedFd>,
}

/// One reaped process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, or 128 + signal when the process was killed (as the Go shim reports).
    pub status: i32,
    pub at: SystemTime,
}

#[derive(Default)]
struct State {
    waiters: HashMap<i32, Sender<Exit>>,
    others: Option<Sender<Exit>>,
}

/// A request to the spawner thread, answered with the pid.
type Job = (SpawnRequest, Sender<Exit>, Sender<io::Result<i32>>);

/// A handle on the reaper thread; cheap to clone and passed by value to whoever spawns.
#[derive(Clone)]
pub struct Monitor {
    state: Arc<Mutex<State>>,
    spawner: Option<Sender<Job>>,
}

impl Monitor {
    /// A monitor without threads yet. `others` receives exits that no spawner waits for.
    pub fn new() -> (Self, Receiver<Exit>) {
        let (tx, rx) = channel();
        let state = Arc::new(Mutex::new(State {
            others: Some(tx),
            ..Default::default()
        }));
        let monitor = Self {
            state,
            spawner: None,
        };
        (monitor, rx)
    }

    /// A monitor with its reaper thread running.
    pub fn start() -> io::Result<(Self, Receiver<Exit>)> {
        let (m, rx) = Self::new();
        m.start_reaper()?;
        Ok((m, rx))
    }

    /// Starts the reaper thread.
    pub fn start_reaper(&self) -> io::Result<()> {
        let mut signals = Signals::new([SIGCHLD])?;
        let reaper = self.clone();
        std::thread::Builder::new()
            .name("child-reaper".into())
            .spawn(move || {
                // A child may have exited before the handler existed: reap once up front.
                reaper.reap_all();
                for _ in signals.forever() {
                    reaper.reap_all();
                }
            })?;
        Ok(())
    }

    /// From now on every process is spawned by a thread of its own. Call it before the
    /// calling thread confines itself, and start no other thread before that.
    pub fn start_spawner(&mut self) -> io::Result<()> {
        let (tx, rx) = channel::<Job>();
        let here = self.clone();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for (req, exit_tx, reply) in rx {
                    let _ = reply.send(here.spawn_here(req, exit_tx));
                }
            })?;
        self.spawner = Some(tx);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns a process and returns its pid with a receiver for its exit.
    pub fn spawn(&self, req: SpawnRequest) -> io::Result<(i32, Receiver<Exit>)> {
        let (tx, rx) = channel();
        let pid = match &self.spawner {
            Some(spawner) => {
                let (reply_tx, reply) = channel();
                spawner
                    .send((req, tx, reply_tx))
                    .map_err(|_| io::Error::other("the spawner thread is gone"))?;
                reply
                    .recv()
                    .map_err(|_| io::Error::other("the spawner thread is gone"))??
            }
            None => self.spawn_here(req, tx)?,
        };
        Ok((pid, rx))
    }

    fn spawn_here(&self, req: SpawnRequest, exit_tx: Sender<Exit>) -> io::Result<i32> {
        let mut cmd = command_for(&req);
        let mut state = self.lock();
        let child = cmd.spawn()?;
        state.waiters.insert(child.id() as i32, exit_tx);
        Ok(child.id() as i32)
    }

    /// Runs `f` while nothing is reaped: a child found unreaped in `f` keeps its pid (no other
    /// process can be given it) until `f` returns.
    pub fn holding_reaps<R>(&self, f: impl FnOnce() -> R) -> R {
        let _state = self.lock();
        f()
    }

    fn reap_all(&self) {
        loop {
            // Reaped under the lock, for `holding_reaps`.
            let mut state = self.lock();
            let exit = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => exit_of(pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => exit_of(pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return;
                }
            };
            dispatch(&mut state, exit);
        }
    }
}

fn dispatch(state: &mut State, exit: Exit) {
    if let Some(tx) = state.waiters.remove(&exit.pid) {
        let _ = tx.send(exit);
    } else if let Some(tx) = &state.others {
        let _ = tx.send(exit);
    }
}

/// A command whose fds 0.. are `req.fds`.
pub fn command_for(req: &SpawnRequest) -> Command {
    let (prog, args) = req
        .argv
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p, a));
    let mut cmd = Command::new(prog);
    cmd.args(args).envs(req.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &req.cwd {
        cmd.current_dir(cwd);
    }
    let raw: Vec<RawFd> = req.fds.iter().map(|f| f.as_raw_fd()).collect();
    // The child's working copy is allocated here, before the fork: the shim has threads, and
    // a malloc in the child could wait forever on a lock another thread held at fork time.
    let mut moved = raw.clone();
    // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and exec, on buffers made
    // before the fork (no allocation in the child). A source that sits below the number of
    // targets is first moved out of the way.
    unsafe {
        cmd.pre_exec(move || {
            moved.copy_from_slice(&raw);
            for fd in moved.iter_mut() {
                if (*fd as usize) < raw.len() {
                    let n = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, raw.len() as i32);
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    *fd = n;
                }
            }
            for (target, fd) in moved.iter().enumerate() {
                if libc::dup2(*fd, target as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}

fn exit_of(pid: Pid, status: i32) -> Exit {
    Exit {
        pid: pid.as_raw(),
        status,
        at: SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Duration;

    fn sh(script: &str) -> SpawnRequest {
        SpawnRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            cwd: None,
            env: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// One reaper per test process: two would steal each other's children.
    fn monitor() -> &'static Monitor {
        static M: OnceLock<Monitor> = OnceLock::new();
        M.get_or_init(|| {
            let (m, others) = Monitor::start().unwrap();
            std::mem::forget(others);
            m
        })
    }

    #[test]
    fn spawned_exit_goes_to_its_waiter_with_status() {
        let monitor = monitor();
        let (pid, rx) = monitor.spawn(sh("exit 7")).unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.pid, pid);
        assert_eq!(exit.status, 7);
    }

    #[test]
    fn killed_child_reports_128_plus_signal() {
        let monitor = monitor();
        let (pid, rx) = monitor.spawn(sh("kill -9 $$")).unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.pid, pid);
        assert_eq!(exit.status, 137);
    }
}
