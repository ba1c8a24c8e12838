//! The exit monitor: the shim is a subreaper, so every process below it (the runtime
//! commands it runs, and the container processes reparented to it) is reaped here, in one
//! place. A runtime command's exit goes to the caller that spawned it; every other exit
//! (container inits and execs) goes to the service's exit channel.
//!
//! The spawn happens under the monitor's lock, after the waiter is registered, so an exit
//! can never be reaped before someone is listening for it.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

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

/// A handle on the reaper thread; cheap to clone and passed by value to whoever spawns.
#[derive(Clone)]
pub struct Monitor {
    state: Arc<Mutex<State>>,
}

impl Monitor {
    /// Starts the reaper thread. `others` receives exits that no spawner waits for.
    pub fn start() -> io::Result<(Self, Receiver<Exit>)> {
        let mut signals = Signals::new([SIGCHLD])?;
        let (tx, rx) = channel();
        let state = Arc::new(Mutex::new(State {
            waiters: HashMap::new(),
            others: Some(tx),
        }));
        let monitor = Self { state };
        let reaper = monitor.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                // A child may have exited before the handler existed: reap once up front.
                reaper.reap_all();
                for _ in signals.forever() {
                    reaper.reap_all();
                }
            })?;
        Ok((monitor, rx))
    }

    /// Spawns `cmd` and returns the child with a receiver for its exit.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, Receiver<Exit>)> {
        let (tx, rx) = channel();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        state.waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    fn reap_all(&self) {
        loop {
            let exit = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => exit_of(pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => exit_of(pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("waitpid failed: {e}");
                    return;
                }
            };
            self.dispatch(exit);
        }
    }

    fn dispatch(&self, exit: Exit) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = state.waiters.remove(&exit.pid) {
            let _ = tx.send(exit);
        } else if let Some(tx) = &state.others {
            let _ = tx.send(exit);
        }
    }
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
        let (child, rx) = monitor
            .spawn(Command::new("/bin/sh").args(["-c", "exit 7"]))
            .unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.pid, child.id() as i32);
        assert_eq!(exit.status, 7);
    }

    #[test]
    fn killed_child_reports_128_plus_signal() {
        let monitor = monitor();
        let (child, rx) = monitor
            .spawn(Command::new("/bin/sh").args(["-c", "kill -9 $$"]))
            .unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.pid, child.id() as i32);
        assert_eq!(exit.status, 137);
    }
}
