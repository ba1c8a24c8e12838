//! The task state machine over a scripted runtime: the test decides what each runtime
//! command does and when processes exit, and reads the events in the order they leave.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::Code;

use super::*;
use crate::events::Event;
use crate::runtime::RuntimeError;
use crate::runtime::{ChildStdio, CreateOpts, ExecOpts, OciRuntime, Result as RtResult};

/// Above any pid the kernel hands out (PID_MAX_LIMIT is 2^22), so no real process is
/// signalled or looked up by mistake.
const FIRST_PID: u32 = 5_000_000;

type Hook = Box<dyn FnOnce(u32) + Send>;

/// A runtime that records its commands, gives out fake pids, fails a command when told to,
/// and runs a test's hook inside a command (as if something happened while it ran).
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    next_pid: AtomicU32,
    /// Process ("c1" or "c1/e1") → pid.
    pids: Mutex<HashMap<String, u32>>,
    /// Call ("kill c1 9 --all") → the runtime's error message.
    failures: Mutex<HashMap<String, String>>,
    /// Call → what runs inside it, given the pid of the process it concerns.
    hooks: Mutex<HashMap<String, Hook>>,
}

impl Fake {
    fn call(&self, call: String, process: &str) -> RtResult<()> {
        self.calls.lock().unwrap().push(call.clone());
        let pid = self.pid(process);
        let hook = self.hooks.lock().unwrap().remove(&call);
        if let Some(hook) = hook {
            hook(pid);
        }
        match self.failures.lock().unwrap().get(&call) {
            Some(message) => Err(RuntimeError::Failed {
                binary: "fake".into(),
                command: call,
                id: process.into(),
                status: 1,
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    fn spawn(&self, process: &str, pid_file: &std::path::Path) -> u32 {
        let pid = FIRST_PID + self.next_pid.fetch_add(1, Ordering::SeqCst);
        self.pids.lock().unwrap().insert(process.into(), pid);
        std::fs::write(pid_file, pid.to_string()).unwrap();
        pid
    }

    fn pid(&self, process: &str) -> u32 {
        self.pids.lock().unwrap().get(process).copied().unwrap_or(0)
    }

    fn fail(&self, call: &str, message: &str) {
        let mut failures = self.failures.lock().unwrap();
        failures.insert(call.into(), message.into());
    }

    fn hook(&self, call: &str, f: impl FnOnce(u32) + Send + 'static) {
        self.hooks.lock().unwrap().insert(call.into(), Box::new(f));
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl OciRuntime for Fake {
    fn create(&self, id: &str, opts: &CreateOpts, _: ChildStdio) -> RtResult<()> {
        self.spawn(id, opts.pid_file);
        self.call(format!("create {id}"), id)
    }

    fn exec(&self, id: &str, opts: &ExecOpts, _: ChildStdio) -> RtResult<()> {
        let exec_id = opts
            .process_file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("exec-"))
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap()
            .to_string();
        let process = format!("{id}/{exec_id}");
        self.spawn(&process, opts.pid_file);
        self.call(format!("exec {process}"), &process)
    }

    fn start(&self, id: &str) -> RtResult<()> {
        self.call(format!("start {id}"), id)
    }

    fn pause(&self, id: &str) -> RtResult<()> {
        self.call(format!("pause {id}"), id)
    }

    fn resume(&self, id: &str) -> RtResult<()> {
        self.call(format!("resume {id}"), id)
    }

    fn kill(&self, id: &str, signal: u32, all: bool) -> RtResult<()> {
        let all = if all { " --all" } else { "" };
        self.call(format!("kill {id} {signal}{all}"), id)
    }

    fn delete(&self, id: &str, _: bool) -> RtResult<()> {
        self.call(format!("delete {id}"), id)
    }

    fn ps(&self, id: &str) -> RtResult<Vec<u32>> {
        self.call(format!("ps {id}"), id)?;
        let pids = self.pids.lock().unwrap();
        let mut mine: Vec<u32> = pids
            .iter()
            .filter(|(k, _)| *k == id || k.starts_with(&format!("{id}/")))
            .map(|(_, v)| *v)
            .collect();
        mine.sort();
        Ok(mine)
    }

    fn update(&self, id: &str, _: &[u8]) -> RtResult<()> {
        self.call(format!("update {id}"), id)
    }
}

struct Harness {
    tasks: Arc<Tasks>,
    fake: Arc<Fake>,
    events: Receiver<Event>,
    exit_signal: Arc<ExitSignal>,
    dir: tempfile::TempDir,
    _exits: Receiver<Exit>,
}

impl Harness {
    fn new() -> Self {
        let (monitor, exits) = Monitor::new();
        let fake = Arc::new(Fake::default());
        let runtime = fake.clone();
        let new_runtime: Box<NewRuntime> =
            Box::new(move |_, _| runtime.clone() as Arc<dyn OciRuntime>);
        let (tx, events) = channel();
        let exit_signal = Arc::new(ExitSignal::default());
        let tasks = Tasks::new(
            "testns",
            monitor,
            new_runtime,
            Events::from_sender(tx),
            exit_signal.clone(),
        );
        Self {
            tasks: Arc::new(tasks),
            fake,
            events,
            exit_signal,
            dir: tempfile::tempdir().unwrap(),
            _exits: exits,
        }
    }

    /// A bundle whose spec gives the container a pid namespace of its own, or not (then its
    /// init's exit kills the rest with `kill --all`).
    fn create_with(&self, id: &str, own_pid_ns: bool) -> Result<CreateTaskResponse> {
        let bundle = self.dir.path().join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        let ns = if own_pid_ns { r#"{"type": "pid"}"# } else { "" };
        let spec = format!(r#"{{"linux": {{"namespaces": [{ns}]}}}}"#);
        std::fs::write(bundle.join("config.json"), spec).unwrap();
        self.tasks.create(CreateTaskRequest {
            id: id.into(),
            bundle: bundle.to_string_lossy().into_owned(),
            ..Default::default()
        })
    }

    fn create(&self, id: &str) -> Result<CreateTaskResponse> {
        self.create_with(id, true)
    }

    fn start(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
        self.tasks.start(StartRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        })
    }

    fn exec(&self, id: &str, exec_id: &str) -> Result<()> {
        self.tasks.exec(ExecProcessRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        })
    }

    fn kill(&self, id: &str, exec_id: &str, all: bool) -> Result<()> {
        self.tasks.kill(KillRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            signal: 15,
            all,
            ..Default::default()
        })
    }

    fn delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        self.tasks.delete(DeleteRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        })
    }

    fn state(&self, id: &str, exec_id: &str) -> StateResponse {
        self.tasks
            .state(StateRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                ..Default::default()
            })
            .unwrap()
    }

    fn status(&self, id: &str, exec_id: &str) -> Status {
        self.state(id, exec_id).status.enum_value().unwrap()
    }

    /// The monitor reaped `process` ("c1" or "c1/e1").
    fn exit(&self, process: &str, status: i32) {
        exit_of(&self.tasks, self.fake.pid(process), status);
    }

    /// The events published since the last call, as "topic container[/exec]".
    fn events(&self) -> Vec<String> {
        self.events
            .try_iter()
            .map(|(t, any)| describe(t, &any))
            .collect()
    }
}

fn exit_of(tasks: &Tasks, pid: u32, status: i32) {
    tasks.on_exit(Exit {
        pid: pid as i32,
        status,
        at: SystemTime::now(),
    });
}

fn describe(topic: &str, any: &Any) -> String {
    let v = &any.value;
    let name = topic.rsplit('/').next().unwrap_or(topic);
    let who = match topic {
        TASK_CREATE_EVENT_TOPIC => TaskCreate::parse_from_bytes(v).unwrap().container_id,
        TASK_START_EVENT_TOPIC => TaskStart::parse_from_bytes(v).unwrap().container_id,
        TASK_DELETE_EVENT_TOPIC => TaskDelete::parse_from_bytes(v).unwrap().container_id,
        TASK_PAUSED_EVENT_TOPIC => TaskPaused::parse_from_bytes(v).unwrap().container_id,
        TASK_RESUMED_EVENT_TOPIC => TaskResumed::parse_from_bytes(v).unwrap().container_id,
        TASK_EXEC_ADDED_EVENT_TOPIC => {
            let e = TaskExecAdded::parse_from_bytes(v).unwrap();
            format!("{}/{}", e.container_id, e.exec_id)
        }
        TASK_EXEC_STARTED_EVENT_TOPIC => {
            let e = TaskExecStarted::parse_from_bytes(v).unwrap();
            format!("{}/{}", e.container_id, e.exec_id)
        }
        TASK_EXIT_EVENT_TOPIC => {
            let e = TaskExit::parse_from_bytes(v).unwrap();
            if e.id == e.container_id {
                format!("{} {}", e.container_id, e.exit_status)
            } else {
                format!("{}/{} {}", e.container_id, e.id, e.exit_status)
            }
        }
        other => panic!("unexpected event {other}"),
    };
    format!("{name} {who}")
}

fn code<T>(r: Result<T>) -> Code {
    match r {
        Ok(_) => panic!("succeeded"),
        Err(e) => e.code(),
    }
}

#[test]
fn a_lifecycle_publishes_its_events_in_order_and_state_follows() {
    let h = Harness::new();
    let pid = h.create("c1").unwrap().pid;
    assert_eq!(pid, h.fake.pid("c1"));
    assert_eq!(h.status("c1", ""), Status::CREATED);
    h.start("c1", "").unwrap();
    assert_eq!(h.status("c1", ""), Status::RUNNING);
    h.exec("c1", "e1").unwrap();
    assert_eq!(h.status("c1", "e1"), Status::CREATED);
    assert_eq!(h.state("c1", "e1").pid, 0);
    let exec_pid = h.start("c1", "e1").unwrap().pid;
    assert_eq!(exec_pid, h.fake.pid("c1/e1"));
    assert_eq!(h.status("c1", "e1"), Status::RUNNING);

    h.exit("c1/e1", 3);
    let e1 = h.state("c1", "e1");
    assert_eq!(
        (e1.status.enum_value().unwrap(), e1.exit_status),
        (Status::STOPPED, 3)
    );
    assert_eq!(h.status("c1", ""), Status::RUNNING);
    h.exit("c1", 0);
    let init = h.state("c1", "");
    assert_eq!(
        (init.status.enum_value().unwrap(), init.pid),
        (Status::STOPPED, pid)
    );
    assert!(init.exited_at.is_some());

    assert_eq!(h.delete("c1", "e1").unwrap().exit_status, 3);
    assert_eq!(h.delete("c1", "").unwrap().pid, pid);
    assert_eq!(
        h.events(),
        [
            "create c1",
            "start c1",
            "exec-added c1/e1",
            "exec-started c1/e1",
            "exit c1/e1 3",
            "exit c1 0",
            "delete c1",
        ]
    );
    // An own pid namespace: the kernel kills the rest, no `kill --all`.
    assert_eq!(
        h.fake.calls(),
        ["create c1", "start c1", "exec c1/e1", "delete c1"]
    );
    assert_eq!(code(h.tasks.container("c1")), Code::NOT_FOUND);
}

#[test]
fn the_init_exit_waits_for_the_running_execs() {
    let h = Harness::new();
    h.create("c1").unwrap();
    h.start("c1", "").unwrap();
    for e in ["e1", "e2", "e3"] {
        h.exec("c1", e).unwrap();
    }
    h.start("c1", "e1").unwrap();
    h.start("c1", "e2").unwrap();
    h.events();

    h.exit("c1", 137);
    // Not published yet, but gone for good: no signals, no new execs.
    assert!(h.events().is_empty());
    assert_eq!(h.status("c1", ""), Status::RUNNING);
    assert_eq!(code(h.kill("c1", "", false)), Code::NOT_FOUND);
    assert_eq!(code(h.start("c1", "e3")), Code::FAILED_PRECONDITION);
    assert_eq!(code(h.exec("c1", "e4")), Code::FAILED_PRECONDITION);

    h.exit("c1/e2", 137);
    assert_eq!(h.events(), ["exit c1/e2 137"]);
    h.exit("c1/e1", 137);
    assert_eq!(h.events(), ["exit c1/e1 137", "exit c1 137"]);
    assert_eq!(h.status("c1", ""), Status::STOPPED);
    assert_eq!(h.state("c1", "").exit_status, 137);
    // e3 never started: it holds nothing back and is deleted as it is.
    assert_eq!(h.status("c1", "e3"), Status::CREATED);
    h.delete("c1", "e3").unwrap();
}

#[test]
fn a_shared_pid_namespace_is_emptied_before_the_init_exit_is_published() {
    let h = Harness::new();
    h.create_with("c1", false).unwrap();
    h.start("c1", "").unwrap();
    h.exec("c1", "e1").unwrap();
    h.start("c1", "e1").unwrap();
    h.events();
    // The kill of the leftovers is what makes the exec exit; it has, by the time the
    // monitor reports it.
    let tasks = h.tasks.clone();
    let exec_pid = h.fake.pid("c1/e1");
    h.fake.hook("kill c1 9 --all", move |_| {
        let t = std::thread::spawn(move || exit_of(&tasks, exec_pid, 137));
        t.join().unwrap();
    });
    h.exit("c1", 0);
    assert_eq!(h.events(), ["exit c1/e1 137", "exit c1 0"]);
    assert_eq!(
        h.fake.calls(),
        ["create c1", "start c1", "exec c1/e1", "kill c1 9 --all"]
    );
}

#[test]
fn an_exit_during_create_is_kept_for_the_container() {
    let h = Harness::new();
    let tasks = h.tasks.clone();
    // The init dies while the runtime's create still runs: its pid is not known yet.
    h.fake.hook("create c1", move |pid| {
        let t = std::thread::spawn(move || exit_of(&tasks, pid, 1));
        t.join().unwrap();
    });
    h.create_with("c1", false).unwrap();
    assert_eq!(h.events(), ["create c1", "exit c1 1"]);
    assert_eq!(h.fake.calls(), ["create c1", "kill c1 9 --all"]);
    assert_eq!(h.status("c1", ""), Status::STOPPED);
    assert_eq!(code(h.start("c1", "")), Code::FAILED_PRECONDITION);
    assert_eq!(code(h.exec("c1", "e1")), Code::FAILED_PRECONDITION);
    h.delete("c1", "").unwrap();
    assert_eq!(h.events(), ["delete c1"]);
}

#[test]
fn an_exit_during_start_follows_the_start_event() {
    let h = Harness::new();
    h.create("c1").unwrap();
    h.create("c2").unwrap();
    h.start("c2", "").unwrap();
    h.exec("c2", "e1").unwrap();
    h.events();
    for (call, process) in [("start c1", ("c1", "")), ("exec c2/e1", ("c2", "e1"))] {
        let (tasks, waiter) = (h.tasks.clone(), Arc::new(Mutex::new(None)));
        let w = waiter.clone();
        h.fake.hook(call, move |pid| {
            let t = std::thread::spawn(move || exit_of(&tasks, pid, 2));
            // Let the exit reach the lock before the start is published.
            std::thread::sleep(Duration::from_millis(50));
            *w.lock().unwrap() = Some(t);
        });
        h.start(process.0, process.1).unwrap();
        let t = waiter.lock().unwrap().take().unwrap();
        t.join().unwrap();
    }
    assert_eq!(
        h.events(),
        [
            "start c1",
            "exit c1 2",
            "exec-started c2/e1",
            "exit c2/e1 2",
        ]
    );
}

#[test]
fn kill_reaches_only_live_processes() {
    let h = Harness::new();
    h.create("c1").unwrap();
    h.start("c1", "").unwrap();
    h.exec("c1", "e1").unwrap();
    // Not started: nothing to signal.
    assert_eq!(code(h.kill("c1", "e1", false)), Code::NOT_FOUND);
    h.kill("c1", "", false).unwrap();
    h.kill("c1", "", true).unwrap();
    // The runtime found the init gone before the monitor reported it.
    h.fail("kill c1 15", "container not running");
    assert_eq!(code(h.kill("c1", "", false)), Code::NOT_FOUND);
    h.fail("kill c1 15 --all", "container \"c1\" does not exist");
    assert_eq!(code(h.kill("c1", "", true)), Code::NOT_FOUND);
    h.fail("kill c1 15 --all", "permission denied");
    assert_eq!(code(h.kill("c1", "", true)), Code::UNKNOWN);
    h.exit("c1", 0);
    assert_eq!(code(h.kill("c1", "", false)), Code::NOT_FOUND);
    assert_eq!(code(h.kill("c2", "", false)), Code::NOT_FOUND);
    assert_eq!(
        h.fake.calls()[2..],
        [
            "kill c1 15",
            "kill c1 15 --all",
            "kill c1 15",
            "kill c1 15 --all",
            "kill c1 15 --all",
        ]
    );
}

impl Harness {
    fn fail(&self, call: &str, message: &str) {
        self.fake.fail(call, message);
    }
}

#[test]
fn delete_waits_for_the_exit() {
    let h = Harness::new();
    h.create("c1").unwrap();
    h.start("c1", "").unwrap();
    h.exec("c1", "e1").unwrap();
    h.start("c1", "e1").unwrap();
    assert_eq!(code(h.delete("c1", "")), Code::FAILED_PRECONDITION);
    assert_eq!(code(h.delete("c1", "e1")), Code::FAILED_PRECONDITION);
    h.exit("c1/e1", 0);
    h.delete("c1", "e1").unwrap();
    assert_eq!(code(h.delete("c1", "e1")), Code::NOT_FOUND);
    h.exit("c1", 0);
    h.delete("c1", "").unwrap();
    assert_eq!(code(h.delete("c1", "")), Code::NOT_FOUND);
    let events = h.events();
    assert_eq!(events.last().map(String::as_str), Some("delete c1"));

    // Created and never started: deleted without an exit (as runc's `delete --force`).
    h.create("c2").unwrap();
    h.delete("c2", "").unwrap();
    assert_eq!(h.events(), ["create c2", "delete c2"]);
    assert!(h.fake.calls().ends_with(&[
        "delete c1".into(),
        "create c2".into(),
        "delete c2".into()
    ]));
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let h = Harness::new();
    h.fail("create c1", "boom");
    assert_eq!(code(h.create("c1")), Code::UNKNOWN);
    assert_eq!(h.fake.calls(), ["create c1", "delete c1"]);
    assert!(h.events().is_empty());
    assert_eq!(code(h.tasks.container("c1")), Code::NOT_FOUND);
    h.fake.failures.lock().unwrap().clear();
    h.create("c1").unwrap();
    assert_eq!(code(h.create("c1")), Code::ALREADY_EXISTS);
}

#[test]
fn containers_of_a_pod_live_and_leave_apart() {
    let h = Harness::new();
    h.create("sandbox").unwrap();
    h.start("sandbox", "").unwrap();
    h.create_with("app", false).unwrap();
    h.start("app", "").unwrap();
    h.events();

    h.exit("app", 1);
    assert_eq!(h.events(), ["exit app 1"]);
    assert_eq!(h.status("sandbox", ""), Status::RUNNING);
    // Only the exited container's processes were killed.
    assert_eq!(h.fake.calls().last().unwrap(), "kill app 9 --all");
    h.delete("app", "").unwrap();
    h.tasks.shutdown();
    assert!(!h.exit_signal.is_set());

    h.exit("sandbox", 0);
    h.tasks.shutdown();
    assert!(!h.exit_signal.is_set());
    h.delete("sandbox", "").unwrap();
    assert_eq!(
        h.events(),
        ["delete app", "exit sandbox 0", "delete sandbox"]
    );
    h.tasks.shutdown();
    assert!(h.exit_signal.is_set());
}

#[test]
fn an_exit_killing_leftovers_holds_up_no_other_container() {
    let h = Harness::new();
    h.create_with("app", false).unwrap();
    h.start("app", "").unwrap();
    let (release, released) = channel::<()>();
    let (entered, in_kill) = channel::<()>();
    h.fake.hook("kill app 9 --all", move |_| {
        entered.send(()).unwrap();
        released.recv().unwrap();
    });
    let exiting = {
        let (tasks, pid) = (h.tasks.clone(), h.fake.pid("app"));
        std::thread::spawn(move || exit_of(&tasks, pid, 137))
    };
    in_kill.recv().unwrap();
    // While `kill --all` runs, another container of the shim is created and started.
    let (done, finished) = channel();
    let tasks = h.tasks.clone();
    let bundle = h.dir.path().join("other");
    std::fs::create_dir_all(&bundle).unwrap();
    let other = std::thread::spawn(move || {
        let req = CreateTaskRequest {
            id: "other".into(),
            bundle: bundle.to_string_lossy().into_owned(),
            ..Default::default()
        };
        tasks.create(req).unwrap();
        let start = StartRequest {
            id: "other".into(),
            ..Default::default()
        };
        tasks.start(start).unwrap();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("create and start waited on another container's exit");
    other.join().unwrap();
    assert_eq!(h.status("app", ""), Status::RUNNING);
    release.send(()).unwrap();
    exiting.join().unwrap();
    assert_eq!(h.status("app", ""), Status::STOPPED);
    assert_eq!(
        h.events(),
        [
            "create app",
            "start app",
            "create other",
            "start other",
            "exit app 137"
        ]
    );
}

#[test]
fn pause_resume_and_the_runtime_commands_of_a_running_init() {
    let h = Harness::new();
    h.create("c1").unwrap();
    assert_eq!(
        code(h.tasks.pause_or_resume("c1", true)),
        Code::FAILED_PRECONDITION
    );
    h.start("c1", "").unwrap();
    h.tasks.pause_or_resume("c1", true).unwrap();
    assert_eq!(h.status("c1", ""), Status::PAUSED);
    assert_eq!(
        code(h.tasks.pause_or_resume("c1", true)),
        Code::FAILED_PRECONDITION
    );
    h.tasks.pause_or_resume("c1", false).unwrap();
    assert_eq!(h.status("c1", ""), Status::RUNNING);
    h.exec("c1", "e1").unwrap();
    h.start("c1", "e1").unwrap();
    // Fake pids have no cgroup: the runtime's ps answers.
    let pids = h
        .tasks
        .pids(PidsRequest {
            id: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    let listed: Vec<(u32, bool)> = pids
        .processes
        .iter()
        .map(|p| (p.pid, p.info.is_some()))
        .collect();
    assert_eq!(
        listed,
        [(h.fake.pid("c1"), false), (h.fake.pid("c1/e1"), true)]
    );
    assert_eq!(
        h.events()[2..],
        [
            "paused c1",
            "resumed c1",
            "exec-added c1/e1",
            "exec-started c1/e1"
        ]
    );
    assert_eq!(
        h.fake.calls()[2..],
        ["pause c1", "resume c1", "exec c1/e1", "ps c1"]
    );
}

#[test]
fn wait_returns_when_the_exit_is_published() {
    let h = Harness::new();
    h.create("c1").unwrap();
    h.start("c1", "").unwrap();
    let tasks = h.tasks.clone();
    let waiter = std::thread::spawn(move || {
        tasks.wait(WaitRequest {
            id: "c1".into(),
            ..Default::default()
        })
    });
    std::thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished());
    h.exit("c1", 7);
    assert_eq!(waiter.join().unwrap().unwrap().exit_status, 7);
}
