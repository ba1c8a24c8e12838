//! The processes of a task: the init process and its execs share one shape. Their state
//! moves only forward (created → running ⇄ paused → stopped); an illegal move is an error the
//! task service turns into FailedPrecondition.

use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

use crate::io::{ProcessIo, StdioPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub status: u32,
    pub at: SystemTime,
}

#[derive(Debug)]
struct Inner {
    pid: u32,
    status: Status,
    exit: Option<ExitInfo>,
}

/// One process: the init (`exec_id` empty) or an exec.
pub struct Process {
    pub exec_id: String,
    pub stdio: StdioPaths,
    pub io: ProcessIo,
    inner: Mutex<Inner>,
    exited: Condvar,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, io: ProcessIo) -> Self {
        Self {
            exec_id: exec_id.into(),
            stdio,
            io,
            inner: Mutex::new(Inner {
                pid: 0,
                status: Status::Created,
                exit: None,
            }),
            exited: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.lock().pid
    }

    pub fn set_pid(&self, pid: u32) {
        self.lock().pid = pid;
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn exit(&self) -> Option<ExitInfo> {
        self.lock().exit
    }

    /// Moves to `to` if the current status allows it; returns the status found otherwise.
    pub fn transition(&self, to: Status) -> Result<(), Status> {
        let mut inner = self.lock();
        let ok = matches!(
            (inner.status, to),
            (Status::Created, Status::Running)
                | (Status::Running, Status::Paused)
                | (Status::Paused, Status::Running)
                | (_, Status::Stopped)
        );
        if ok {
            inner.status = to;
            Ok(())
        } else {
            Err(inner.status)
        }
    }

    /// Records the exit once; returns false when it was already recorded.
    pub fn set_exited(&self, status: u32, at: SystemTime) -> bool {
        let mut inner = self.lock();
        if inner.exit.is_some() {
            return false;
        }
        inner.exit = Some(ExitInfo { status, at });
        inner.status = Status::Stopped;
        self.exited.notify_all();
        true
    }

    /// Blocks until the process has exited.
    pub fn wait(&self) -> ExitInfo {
        let mut inner = self.lock();
        loop {
            if let Some(e) = inner.exit {
                return e;
            }
            inner = self.exited.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn process() -> Process {
        Process::new("", StdioPaths::default(), ProcessIo::default())
    }

    #[test]
    fn legal_and_illegal_transitions() {
        let p = process();
        assert_eq!(p.transition(Status::Paused), Err(Status::Created));
        p.transition(Status::Running).unwrap();
        assert_eq!(p.transition(Status::Running), Err(Status::Running));
        p.transition(Status::Paused).unwrap();
        p.transition(Status::Running).unwrap();
        p.transition(Status::Stopped).unwrap();
        assert_eq!(p.transition(Status::Running), Err(Status::Stopped));
    }

    #[test]
    fn wait_returns_the_first_recorded_exit() {
        let p = Arc::new(process());
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.wait())
        };
        let at = SystemTime::now();
        assert!(p.set_exited(3, at));
        assert!(!p.set_exited(9, SystemTime::now()));
        let e = waiter.join().unwrap();
        assert_eq!((e.status, e.at), (3, at));
        assert_eq!(p.status(), Status::Stopped);
    }
}
