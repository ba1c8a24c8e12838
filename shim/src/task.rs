//! The ttrpc Task service: every RPC maps to a container operation, and exits become
//! TaskExit events. Start and exit handling share `event_order`, so TaskStart or
//! TaskExecStarted always leaves before the TaskExit of the same process, and an init's
//! TaskExit waits for those of its running execs (containerd takes the init's for the end of
//! the task). The runtime is an `OciRuntime`, so the state machine is tested over a fake
//! (`state_tests`).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{EnumOrUnknown, MessageField};
use containerd_shim_protos::shim::shim::*;
use containerd_shim_protos::shim::shim_ttrpc::Task;
use containerd_shim_protos::topics::*;
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::ttrpc::{Result as TtrpcResult, TtrpcContext};
use containerd_shim_protos::types::task::ProcessInfo;

use crate::container::Container;
use crate::error::{Result, TaskError};
use crate::events::{timestamp, Events};
use crate::io::StdioPaths;
use crate::monitor::{Exit, Monitor};
use crate::process::{Process, Status as PStatus};
use crate::runtime::{Failure, NewRuntime, Runtime};
use crate::stats;

/// Sends `sig` to `pid` if it is a child of ours that has not exited, through a pidfd: a pid
/// the monitor has reaped meanwhile (which the kernel may have given to another process) is
/// never signalled, since a pidfd names one process for good and waitid on it fails for
/// anything but our own child. `Some(true)`: signalled; `Some(false)`: not a running child of
/// ours (or the signal was refused); `None`: no pidfds (Linux < 5.3, or < 5.4 for waitid on
/// one).
fn signal_running_child(pid: i32, sig: i32) -> Option<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open on a pid with no flags; the fd it returns is ours alone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error().raw_os_error();
        return (err == Some(libc::ESRCH)).then_some(false);
    }
    // SAFETY: fd was just returned by pidfd_open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: waitid on our pidfd with a zeroed siginfo the kernel fills in; WNOWAIT leaves
    // the reaping to the monitor.
    let (rc, info) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        let rc = libc::waitid(
            libc::P_PIDFD,
            fd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        );
        (rc, info)
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error().raw_os_error();
        // Linux 5.3 has pidfd_open but not P_PIDFD.
        return (err != Some(libc::EINVAL)).then_some(false);
    }
    // SAFETY: waitid succeeded, so the kernel filled in the siginfo.
    if unsafe { info.si_pid() } != 0 {
        return Some(false);
    }
    // SAFETY: pidfd_send_signal on our pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Some(r == 0)
}

/// SIGKILLs `pid` if it is a child of ours still running; true if it was.
fn kill_running_child(pid: i32, monitor: &Monitor) -> bool {
    match signal_running_child(pid, libc::SIGKILL) {
        Some(sent) => sent,
        None => kill_unreaped_child(pid, monitor),
    }
}

/// `kill_running_child` without pidfds.
fn kill_unreaped_child(pid: i32, monitor: &Monitor) -> bool {
    // Without pidfds the check and the kill are two steps; with reaping held off between
    // them, a pid found to be our unreaped child cannot be freed and given to another
    // process before the kill.
    monitor.holding_reaps(|| {
        // SAFETY: waitid and kill on a pid, with a zeroed siginfo the kernel fills in.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) == 0
                && info.si_pid() == 0
                && libc::kill(pid, libc::SIGKILL) == 0
        }
    })
}

/// Before an init's exit is reported, the processes left in its container (it had no pid
/// namespace of its own, so the kernel kills nothing else): the runtime's `kill --all`, then
/// the execs the shim started, its own children, should the runtime have missed any.
fn kill_leftovers(c: &Container, monitor: &Monitor) {
    if let Err(e) = c.runtime.kill(&c.id, libc::SIGKILL as u32, true) {
        tracing::warn!(container = c.id, error = %e, "processes left not killed");
    }
    for exec in c.execs() {
        let pid = exec.pid() as i32;
        if exec.exit().is_none() && pid > 0 && kill_running_child(pid, monitor) {
            tracing::warn!(
                container = c.id,
                exec = exec.exec_id,
                "exec outlived kill --all"
            );
        }
    }
}

/// Exits of pids not (yet) known: an exec can exit before its pid file is read.
const PENDING_EXITS_MAX: usize = 4096;

pub struct Tasks {
    namespace: String,
    monitor: Monitor,
    new_runtime: Box<NewRuntime>,
    events: Events,
    exit_signal: Arc<ExitSignal>,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Held while a process's start or exit is published, so that its TaskStart (or
    /// TaskExecStarted) leaves before its TaskExit; holds the exits of pids not known yet.
    event_order: Mutex<HashMap<i32, Exit>>,
}

/// Set by Shutdown; the server's main thread waits for it.
#[derive(Default)]
pub struct ExitSignal(Mutex<bool>, Condvar);

impl ExitSignal {
    pub fn signal(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.1.notify_all();
    }

    #[cfg(test)]
    pub fn is_set(&self) -> bool {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wait(&self) {
        let mut done = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.1.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What containerd talks to; a thin handle on the shared state.
#[derive(Clone)]
pub struct TaskService {
    tasks: Arc<Tasks>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TaskService {
    pub fn new(
        namespace: &str,
        monitor: Monitor,
        exits: std::sync::mpsc::Receiver<Exit>,
        events: Events,
        exit_signal: Arc<ExitSignal>,
    ) -> Self {
        let new_runtime = Runtime::maker(monitor.clone());
        let tasks = Arc::new(Tasks::new(
            namespace,
            monitor,
            new_runtime,
            events,
            exit_signal,
        ));
        let t = tasks.clone();
        let _ = std::thread::Builder::new()
            .name("exits".into())
            .spawn(move || {
                for exit in exits {
                    t.on_exit(exit);
                }
            });
        Self { tasks }
    }
}

impl Tasks {
    fn new(
        namespace: &str,
        monitor: Monitor,
        new_runtime: Box<NewRuntime>,
        events: Events,
        exit_signal: Arc<ExitSignal>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            monitor,
            new_runtime,
            events,
            exit_signal,
            containers: Mutex::new(HashMap::new()),
            event_order: Mutex::new(HashMap::new()),
        }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        lock(&self.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| TaskError::NotFound(format!("container {id}")))
    }

    fn find_by_pid(&self, pid: i32) -> Option<(Arc<Container>, Arc<Process>)> {
        for c in lock(&self.containers).values() {
            if c.init.pid() as i32 == pid && !c.init_exited() {
                return Some((c.clone(), c.init.clone()));
            }
            if let Some(p) = c
                .execs()
                .into_iter()
                .find(|p| p.pid() as i32 == pid && p.exit().is_none())
            {
                return Some((c.clone(), p));
            }
        }
        None
    }

    /// A process below the shim exited.
    fn on_exit(&self, exit: Exit) {
        let found = {
            let mut pending = lock(&self.event_order);
            let found = self.find_by_pid(exit.pid);
            if found.is_none() {
                if pending.len() >= PENDING_EXITS_MAX {
                    pending.clear();
                }
                // Create or Start claims it once it knows the pid.
                pending.insert(exit.pid, exit);
            }
            found
        };
        if let Some((c, p)) = found {
            self.finish_exit(&c, &p, exit);
        }
    }

    /// An init without its own pid namespace takes its container's other processes with it.
    /// That runs the runtime (`kill --all`), so it happens outside `event_order`, or the
    /// Create/Start of every other container of a pod's shim would wait on it. The exit was
    /// taken out of the monitor's stream (or the pending ones) by the caller, so no other
    /// thread records it meanwhile.
    fn finish_exit(&self, c: &Container, p: &Process, exit: Exit) {
        if p.exec_id.is_empty() && c.kill_all_on_exit && p.exit().is_none() {
            kill_leftovers(c, &self.monitor);
        }
        let _order = lock(&self.event_order);
        self.record_exit(c, p, exit);
    }

    /// Publishes an exit; the init's waits for its running execs' (their exits follow the
    /// kill of the leftovers, or the end of the pid namespace). Called with `event_order`
    /// held.
    fn record_exit(&self, c: &Container, p: &Process, exit: Exit) {
        if p.exit().is_some() {
            return;
        }
        if !p.exec_id.is_empty() {
            self.publish_exit(c, p, exit);
            if c.running_execs() == 0 {
                if let Some(init_exit) = c.take_deferred_exit() {
                    self.publish_exit(c, &c.init, init_exit);
                }
            }
        } else if c.running_execs() > 0 {
            c.defer_exit(exit);
        } else {
            self.publish_exit(c, p, exit);
        }
    }

    fn publish_exit(&self, c: &Container, p: &Process, exit: Exit) {
        if !p.set_exited(exit.status as u32, exit.at) {
            return;
        }
        let id = if p.exec_id.is_empty() {
            c.id.clone()
        } else {
            p.exec_id.clone()
        };
        self.events.send(
            TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: c.id.clone(),
                id,
                pid: exit.pid as u32,
                exit_status: exit.status as u32,
                exited_at: MessageField::some(timestamp(exit.at)),
                ..Default::default()
            },
        );
    }

    fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if lock(&self.containers).contains_key(&req.id) {
            return Err(TaskError::AlreadyExists(format!("container {}", req.id)));
        }
        let c = Container::create(&req, &self.namespace, &self.monitor, &*self.new_runtime)?;
        let c = Arc::new(c);
        let pid = c.init.pid();
        let mut pending = lock(&self.event_order);
        lock(&self.containers).insert(req.id.clone(), c.clone());
        self.events.send(
            TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid,
                ..Default::default()
            },
        );
        let early_exit = pending.remove(&(pid as i32));
        drop(pending);
        if let Some(exit) = early_exit {
            self.finish_exit(&c, &c.init, exit);
        }
        self.watch_oom(&c);
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn watch_oom(&self, c: &Container) {
        let events = self.events.clone();
        let id = c.id.clone();
        let watched = crate::oom::memory_cgroup_of(c.init.pid()).and_then(|(dir, v2)| {
            crate::oom::watch(dir, v2, move || {
                events.send(
                    TASK_OOM_EVENT_TOPIC,
                    TaskOOM {
                        container_id: id.clone(),
                        ..Default::default()
                    },
                )
            })
        });
        if let Err(e) = watched {
            tracing::warn!(container = c.id, error = %e, "no OOM events");
        }
    }

    fn start(&self, req: StartRequest) -> Result<StartResponse> {
        let c = self.container(&req.id)?;
        let mut pending = lock(&self.event_order);
        let p = if req.exec_id.is_empty() {
            if c.init.status() != PStatus::Created {
                return Err(TaskError::FailedPrecondition(format!(
                    "container {} is {:?}, not created",
                    c.id,
                    c.init.status()
                )));
            }
            c.runtime.start(&c.id)?;
            let _ = c.init.transition(PStatus::Running);
            self.events.send(
                TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: c.id.clone(),
                    pid: c.init.pid(),
                    ..Default::default()
                },
            );
            c.init.clone()
        } else {
            if c.init_exited() {
                return Err(TaskError::FailedPrecondition(format!(
                    "container {} is stopped",
                    c.id
                )));
            }
            if c.process(&req.exec_id)?.status() != PStatus::Created {
                return Err(TaskError::FailedPrecondition(format!(
                    "exec {} in {} was already started",
                    req.exec_id, c.id
                )));
            }
            let p = c.start_exec(&req.exec_id, &self.monitor, &self.namespace)?;
            let _ = p.transition(PStatus::Running);
            self.events.send(
                TASK_EXEC_STARTED_EVENT_TOPIC,
                TaskExecStarted {
                    container_id: c.id.clone(),
                    exec_id: req.exec_id.clone(),
                    pid: p.pid(),
                    ..Default::default()
                },
            );
            p
        };
        let early_exit = pending.remove(&(p.pid() as i32));
        drop(pending);
        if let Some(exit) = early_exit {
            self.finish_exit(&c, &p, exit);
        }
        Ok(StartResponse {
            pid: p.pid(),
            ..Default::default()
        })
    }

    fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if !req.exec_id.is_empty() {
            let Some(exit) = p.exit() else {
                if p.status() != PStatus::Created {
                    return Err(TaskError::FailedPrecondition(format!(
                        "exec {} in {} is still running",
                        req.exec_id, c.id
                    )));
                }
                c.remove_exec(&req.exec_id);
                return Ok(DeleteResponse::default());
            };
            drain_output(&c.id, &p);
            c.remove_exec(&req.exec_id);
            return Ok(delete_response(p.pid(), exit.status, exit.at));
        }
        if matches!(p.status(), PStatus::Running | PStatus::Paused) {
            return Err(TaskError::FailedPrecondition(format!(
                "container {} is still running",
                c.id
            )));
        }
        drain_output(&c.id, &p);
        c.destroy()?;
        let exit = p.exit();
        let (status, at) = exit.map_or((0, SystemTime::now()), |e| (e.status, e.at));
        lock(&self.containers).remove(&c.id);
        self.events.send(
            TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: c.id.clone(),
                pid: p.pid(),
                exit_status: status,
                exited_at: MessageField::some(timestamp(at)),
                ..Default::default()
            },
        );
        Ok(delete_response(p.pid(), status, at))
    }

    fn kill(&self, req: KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let finished = if req.exec_id.is_empty() {
            c.init_exited()
        } else {
            p.exit().is_some() || p.pid() == 0
        };
        if finished {
            return Err(TaskError::NotFound(format!(
                "process {} of {}: process already finished",
                if req.exec_id.is_empty() {
                    &c.id
                } else {
                    &req.exec_id
                },
                c.id
            )));
        }
        if req.exec_id.is_empty() {
            // The init is our child (we are its subreaper): signal it ourselves, as `runtime
            // kill` without --all would, and save a runtime exec on every stop. Anything else
            // (--all, an init that is not a running child of ours) goes to the runtime.
            if !req.all
                && p.pid() > 0
                && signal_running_child(p.pid() as i32, req.signal as i32) == Some(true)
            {
                return Ok(());
            }
            return c.runtime.kill(&c.id, req.signal, req.all).map_err(|e| {
                if e.failure() == Failure::NotRunning {
                    TaskError::NotFound(format!("container {}: process already finished", c.id))
                } else {
                    e.into()
                }
            });
        }
        let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
            .map_err(|e| TaskError::InvalidArgument(format!("signal {}: {e}", req.signal)))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid() as i32), sig)
            .map_err(|e| TaskError::NotFound(format!("exec {} of {}: {e}", req.exec_id, c.id)))
    }

    fn exec(&self, req: ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        if c.init_exited() {
            return Err(TaskError::FailedPrecondition(format!(
                "container {} is stopped",
                c.id
            )));
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        c.add_exec(&req.exec_id, stdio, &spec)?;
        self.events.send(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(())
    }

    fn state(&self, req: StateRequest) -> Result<StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let status = match p.status() {
            PStatus::Created => Status::CREATED,
            PStatus::Running => Status::RUNNING,
            PStatus::Paused => Status::PAUSED,
            PStatus::Stopped => Status::STOPPED,
        };
        let exit = p.exit();
        Ok(StateResponse {
            id: if req.exec_id.is_empty() {
                c.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid(),
            status: EnumOrUnknown::new(status),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map_or(0, |e| e.status),
            exited_at: exit.map(|e| timestamp(e.at)).into(),
            exec_id: req.exec_id,
            ..Default::default()
        })
    }

    fn pause_or_resume(&self, id: &str, pause: bool) -> Result<()> {
        let c = self.container(id)?;
        let (from, to) = if pause {
            (PStatus::Running, PStatus::Paused)
        } else {
            (PStatus::Paused, PStatus::Running)
        };
        if c.init.status() != from {
            return Err(TaskError::FailedPrecondition(format!(
                "container {id} is {:?}, not {from:?}",
                c.init.status()
            )));
        }
        if pause {
            c.runtime.pause(id)?;
        } else {
            c.runtime.resume(id)?;
        }
        let _ = c.init.transition(to);
        let cid = id.to_string();
        if pause {
            let ev = TaskPaused {
                container_id: cid,
                ..Default::default()
            };
            self.events.send(TASK_PAUSED_EVENT_TOPIC, ev);
        } else {
            let ev = TaskResumed {
                container_id: cid,
                ..Default::default()
            };
            self.events.send(TASK_RESUMED_EVENT_TOPIC, ev);
        }
        Ok(())
    }

    fn pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let c = self.container(&req.id)?;
        let execs: HashMap<u32, String> = c
            .execs()
            .iter()
            .filter(|p| p.pid() != 0)
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        // While the init runs, its cgroup is read directly (what the runtime's `ps` reads)
        // instead of running the runtime for each call: liveness probes and `ctr task ps` call
        // this often. Otherwise, or if that fails, the runtime answers.
        let init = c.init.pid();
        let direct = (init > 0 && c.init.exit().is_none())
            .then(|| stats::cgroup_pids(init).ok())
            .flatten();
        let pids = match direct {
            Some(p) => p,
            None => c.runtime.ps(&c.id)?,
        };
        let processes = pids
            .into_iter()
            .map(|pid| ProcessInfo {
                pid,
                info: execs.get(&pid).map(|id| process_details(id)).into(),
                ..Default::default()
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let exit = p.wait();
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        })
    }

    fn stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let c = self.container(&req.id)?;
        let any: Any = stats::collect(c.init.pid()).map_err(|source| TaskError::Stats {
            id: c.id.clone(),
            source,
        })?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn shutdown(&self) {
        if lock(&self.containers).is_empty() {
            self.exit_signal.signal();
        }
    }
}

/// What a terminal's process wrote last is still in the pty when its exit is seen; containerd's
/// client closes its fifo once Delete returns.
fn drain_output(id: &str, p: &Process) {
    if !p.io.wait_output(Duration::from_secs(2)) {
        tracing::warn!(
            container = id,
            exec = p.exec_id,
            "terminal output still open after 2 s"
        );
    }
}

fn delete_response(pid: u32, status: u32, at: SystemTime) -> DeleteResponse {
    DeleteResponse {
        pid,
        exit_status: status,
        exited_at: MessageField::some(timestamp(at)),
        ..Default::default()
    }
}

type Empty = containerd_shim_protos::protobuf::well_known_types::empty::Empty;

fn done<T>(what: &str, r: Result<T>) -> TtrpcResult<T> {
    r.map_err(|e| {
        tracing::info!(request = what, error = %e, "request failed");
        ttrpc::Error::from(e)
    })
}

impl Task for TaskService {
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        done("state", self.tasks.state(req))
    }

    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        done("create", self.tasks.create(req))
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        done("start", self.tasks.start(req))
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        done("delete", self.tasks.delete(req))
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        done("pids", self.tasks.pids(req))
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        done("pause", self.tasks.pause_or_resume(&req.id, true)).map(|_| Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        done("resume", self.tasks.pause_or_resume(&req.id, false)).map(|_| Empty::new())
    }

    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        let e = TaskError::Unimplemented(format!("checkpoint of {}", req.id));
        done("checkpoint", Err(e))
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        done("kill", self.tasks.kill(req)).map(|_| Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        done("exec", self.tasks.exec(req)).map(|_| Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let r = self.tasks.container(&req.id).and_then(|c| {
            let p = c.process(&req.exec_id)?;
            p.io.resize(req.width, req.height).map_err(|e| {
                TaskError::FailedPrecondition(format!("resize {} of {}: {e}", req.exec_id, c.id))
            })
        });
        done("resize_pty", r).map(|_| Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let r = self.tasks.container(&req.id).and_then(|c| {
            let p = c.process(&req.exec_id)?;
            if req.stdin {
                p.io.close_stdin();
            }
            Ok(())
        });
        done("close_io", r).map(|_| Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let r = self.tasks.container(&req.id).and_then(|c| {
            let data = req
                .resources
                .as_ref()
                .map(|a| a.value.clone())
                .unwrap_or_default();
            c.runtime.update(&c.id, &data).map_err(TaskError::from)
        });
        done("update", r).map(|_| Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        done("wait", self.tasks.wait(req))
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        done("stats", self.tasks.stats(req))
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let task_pid = self
            .tasks
            .container(&req.id)
            .map(|c| c.init.pid())
            .unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> TtrpcResult<Empty> {
        self.tasks.shutdown();
        Ok(Empty::new())
    }
}

/// The Go shim's `ProcessDetails` for an exec's pid (message `{ string exec_id = 1; }`), so
/// `ctr task ps` shows which exec a process is.
fn process_details(exec_id: &str) -> Any {
    let mut value = Vec::with_capacity(exec_id.len() + 3);
    let mut out = containerd_shim_protos::protobuf::CodedOutputStream::vec(&mut value);
    // Writing into a Vec cannot fail.
    let _ = out.write_string(1, exec_id);
    let _ = out.flush();
    drop(out);
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.ProcessDetails".into();
    any.value = value;
    any
}

#[cfg(test)]
mod state_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_details_carry_the_exec_id() {
        let id = "x".repeat(200);
        let any = process_details(&id);
        let mut input = containerd_shim_protos::protobuf::CodedInputStream::from_bytes(&any.value);
        assert_eq!(input.read_raw_tag_or_eof().unwrap(), Some(0x0a));
        assert_eq!(input.read_string().unwrap(), id);
        assert!(input.eof().unwrap());
    }

    #[test]
    fn only_a_running_child_is_killed() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let (monitor, _exits) = Monitor::new();
        assert!(kill_running_child(child.id() as i32, &monitor));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        // Reaped: no longer ours, whoever has the pid now.
        assert!(!kill_running_child(child.id() as i32, &monitor));
        // Not a child at all.
        assert!(!kill_running_child(1, &monitor));
        // The same without pidfds.
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        assert!(kill_unreaped_child(child.id() as i32, &monitor));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(!kill_unreaped_child(child.id() as i32, &monitor));
        assert!(!kill_unreaped_child(1, &monitor));
    }
}
