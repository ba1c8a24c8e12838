//! A typed wrapper of the `polis-runc` command line (runc's CLI), run as a subprocess through
//! the exit monitor, the way containerd's Go shim runs runc.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::monitor::Monitor;
use crate::monitor::SpawnRequest;
use crate::options::RuntimeRecord;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to run {binary} {command} for {id}: {source}")]
    Spawn {
        binary: PathBuf,
        command: String,
        id: String,
        source: std::io::Error,
    },
    /// The runtime ran and failed; `message` is the runtime's own error text.
    #[error("{binary} {command} {id} failed (exit status {status}): {message}")]
    Failed {
        binary: PathBuf,
        command: String,
        id: String,
        status: i32,
        message: String,
    },
    #[error("{binary} {command} {id} printed invalid output: {detail}")]
    Output {
        binary: PathBuf,
        command: String,
        id: String,
        detail: String,
    },
}

/// What a failed runtime command says about its container. runc's CLI reports this only in
/// its messages, so they are read here, in one place (the Go shim reads runc's the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No such container (or process).
    Missing,
    AlreadyExists,
    /// The process has exited.
    NotRunning,
    /// The container is in a state the command does not apply to.
    WrongState,
    Other,
}

impl RuntimeError {
    /// Only a command that ran and failed says anything about the container.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Failed { message, .. } => classify(message),
            _ => Failure::Other,
        }
    }
}

fn classify(message: &str) -> Failure {
    let m = message.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if any(&["does not exist", "not found"]) {
        Failure::Missing
    } else if any(&["already exists"]) {
        Failure::AlreadyExists
    } else if any(&["not running", "no such process", "already finished"]) {
        Failure::NotRunning
    } else if any(&["not paused", "not stopped"]) {
        Failure::WrongState
    } else {
        Failure::Other
    }
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The three standard streams handed to a runtime command (and by it to the container).
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What the task state machine asks of an OCI runtime, one container at a time. `Runtime`
/// runs the binary; the state machine's tests put a scripted runtime in its place.
pub trait OciRuntime: Send + Sync {
    /// `create`: the container's init exists, stopped before the user's process; its pid is
    /// in `opts.pid_file` when this returns.
    fn create(&self, id: &str, opts: &CreateOpts, stdio: ChildStdio) -> Result<()>;
    /// `exec --detach`: the process runs, its pid in `opts.pid_file`.
    fn exec(&self, id: &str, opts: &ExecOpts, stdio: ChildStdio) -> Result<()>;
    fn start(&self, id: &str) -> Result<()>;
    fn pause(&self, id: &str) -> Result<()>;
    fn resume(&self, id: &str) -> Result<()>;
    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()>;
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// The pids in the container.
    fn ps(&self, id: &str) -> Result<Vec<u32>>;
    /// Applies an OCI `LinuxResources` JSON document.
    fn update(&self, id: &str, resources_json: &[u8]) -> Result<()>;
}

/// Makes the runtime of one container from its record and the runtime's log file.
pub type NewRuntime = dyn Fn(&RuntimeRecord, PathBuf) -> Arc<dyn OciRuntime> + Send + Sync;

/// `polis-runc` with a state root and a JSON log file.
#[derive(Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    systemd_cgroup: bool,
    pub log: PathBuf,
    monitor: Monitor,
}

pub struct CreateOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

pub struct ExecOpts<'a> {
    pub process_file: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

impl Runtime {
    pub fn new(r: &RuntimeRecord, log: PathBuf, monitor: Monitor) -> Self {
        Self {
            binary: r.binary.clone(),
            root: r.root.clone(),
            systemd_cgroup: r.systemd_cgroup,
            log,
            monitor,
        }
    }

    /// The runtime maker of the shim's server: every container's commands go through
    /// `monitor`.
    pub fn maker(monitor: Monitor) -> Box<NewRuntime> {
        Box::new(move |record, log| Arc::new(Runtime::new(record, log, monitor.clone())))
    }

    fn simple(&self, id: &str, cmd: &[&str]) -> Result<()> {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push(id);
        self.run_strs(id, &args, None).map(drop)
    }

    fn run_strs(&self, id: &str, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.run_captured(id, &args, input)
    }

    fn output_error(&self, command: &str, id: &str, detail: String) -> RuntimeError {
        RuntimeError::Output {
            binary: self.binary.clone(),
            command: command.into(),
            id: id.into(),
            detail,
        }
    }

    /// Runs one command whose stdio goes to the container (create, exec).
    fn run(
        &self,
        id: &str,
        args: &[String],
        stdio: ChildStdio,
        _: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let err = |e| self.spawn_error(args, id, e);
        // What the runtime is given here the container inherits: a container without stdio
        // (every pod sandbox) gets /dev/null, never a pipe of ours. A pipe would reach its
        // init, which holds it open until it exits, and reading it to EOF would hang the
        // create. The runtime's own errors come through its JSON log.
        let stdin = stdio.stdin.map_or_else(devnull, Ok).map_err(err)?;
        let stdout = stdio.stdout.map_or_else(devnull, Ok).map_err(err)?;
        let stderr = stdio.stderr.map_or_else(devnull, Ok).map_err(err)?;
        self.execute(id, args, [stdin, stdout, stderr], None, None, None)
    }

    /// Runs one command with its stdout captured and `input` on its stdin.
    fn run_captured(&self, id: &str, args: &[String], input: Option<&[u8]>) -> Result<Vec<u8>> {
        let err = |e| self.spawn_error(args, id, e);
        let (stdin, in_w) = match input {
            Some(_) => pipe().map(|(r, w)| (r, Some(w))).map_err(err)?,
            None => (devnull().map_err(err)?, None),
        };
        let (out_r, out_w) = pipe().map_err(err)?;
        let (err_r, err_w) = pipe().map_err(err)?;
        let write_in = in_w.zip(input);
        self.execute(
            id,
            args,
            [stdin, out_w, err_w],
            write_in,
            Some(out_r),
            Some(err_r),
        )
    }

    fn spawn_error(&self, args: &[String], id: &str, source: std::io::Error) -> RuntimeError {
        RuntimeError::Spawn {
            binary: self.binary.clone(),
            command: args.first().cloned().unwrap_or_default(),
            id: id.into(),
            source,
        }
    }

    /// Spawns through the monitor (so the exit is ours), feeds stdin, drains the output.
    fn execute(
        &self,
        id: &str,
        args: &[String],
        fds: [OwnedFd; 3],
        input: Option<(OwnedFd, &[u8])>,
        out_r: Option<OwnedFd>,
        err_r: Option<OwnedFd>,
    ) -> Result<Vec<u8>> {
        let mut argv = vec![
            self.binary.to_string_lossy().into_owned(),
            "--root".into(),
            path_arg(&self.root),
            "--log".into(),
            path_arg(&self.log),
            "--log-format".into(),
            "json".into(),
        ];
        if self.systemd_cgroup {
            argv.push("--systemd-cgroup".into());
        }
        argv.extend(args.iter().cloned());
        // The shim's own cwd is the bundle of the first container of its group, which may
        // be gone by now: run in this container's bundle (the log's directory).
        let cwd = self.log.parent().filter(|d| d.is_dir()).map(path_arg);
        let req = SpawnRequest {
            argv,
            cwd,
            env: Vec::new(),
            fds: fds.into(),
        };
        let (_pid, exit) = self
            .monitor
            .spawn(req)
            .map_err(|e| self.spawn_error(args, id, e))?;
        if let Some((w, data)) = input {
            let mut w = File::from(w);
            let _ = w.write_all(data);
        }
        // stderr drains on its own thread so a chatty runtime cannot block on a full pipe
        // while we read stdout.
        let stderr = err_r.map(|r| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = File::from(r).read_to_end(&mut buf);
                buf
            })
        });
        let mut out = Vec::new();
        if let Some(r) = out_r {
            File::from(r)
                .read_to_end(&mut out)
                .map_err(|e| self.spawn_error(args, id, e))?;
        }
        let errout = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        let status = exit.recv().map(|e| e.status).unwrap_or(-1);
        if status == 0 {
            return Ok(out);
        }
        let message = last_log_error(&self.log)
            .unwrap_or_else(|| String::from_utf8_lossy(&errout).trim().to_string());
        Err(RuntimeError::Failed {
            binary: self.binary.clone(),
            command: args.first().cloned().unwrap_or_default(),
            id: id.into(),
            status,
            message,
        })
    }
}

impl OciRuntime for Runtime {
    fn create(&self, id: &str, opts: &CreateOpts, stdio: ChildStdio) -> Result<()> {
        let mut args = vec!["create".into(), "--bundle".into(), path_arg(opts.bundle)];
        if opts.no_pivot {
            args.push("--no-pivot".into());
        }
        if opts.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        push_pid_console_id(&mut args, opts.pid_file, opts.console_socket, id);
        self.run(id, &args, stdio, None).map(drop)
    }

    fn exec(&self, id: &str, opts: &ExecOpts, stdio: ChildStdio) -> Result<()> {
        let mut args = vec![
            "exec".into(),
            "--process".into(),
            path_arg(opts.process_file),
            "--detach".into(),
        ];
        push_pid_console_id(&mut args, opts.pid_file, opts.console_socket, id);
        self.run(id, &args, stdio, None).map(drop)
    }

    fn start(&self, id: &str) -> Result<()> {
        self.simple(id, &["start"])
    }

    fn pause(&self, id: &str) -> Result<()> {
        self.simple(id, &["pause"])
    }

    fn resume(&self, id: &str) -> Result<()> {
        self.simple(id, &["resume"])
    }

    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run_strs(id, &args, None).map(drop)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run_strs(id, &args, None).map(drop)
    }

    /// `ps --format json`.
    /// A container without processes is `null` (runc's, and polis-runc's, answer).
    fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run_strs(id, &["ps", "--format", "json", id], None)?;
        serde_json::from_slice::<Option<Vec<u32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| self.output_error("ps", id, e.to_string()))
    }

    fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        self.run_strs(
            id,
            &["update", "--resources", "-", id],
            Some(resources_json),
        )
        .map(drop)
    }
}

fn devnull() -> std::io::Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// The tail create and exec share: where the pid goes, the console socket if any, the id.
fn push_pid_console_id(args: &mut Vec<String>, pid_file: &Path, console: Option<&Path>, id: &str) {
    args.extend(["--pid-file".into(), path_arg(pid_file)]);
    if let Some(s) = console {
        args.extend(["--console-socket".into(), path_arg(s)]);
    }
    args.push(id.into());
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The `msg` of the last `"level":"error"` line of a runc-shaped JSON log.
pub fn last_log_error(log: &Path) -> Option<String> {
    let data = std::fs::read_to_string(log).ok()?;
    parse_last_error(&data)
}

fn parse_last_error(data: &str) -> Option<String> {
    data.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? == "error" {
            Some(v.get("msg")?.as_str()?.to_string())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_wins_and_other_levels_are_ignored() {
        let log = concat!(
            r#"{"level":"error","msg":"first","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"container \"x\" does not exist","time":"t"}"#,
            "\n",
            r#"{"level":"warning","msg":"later warning","time":"t"}"#,
            "\nnot json\n"
        );
        assert_eq!(
            parse_last_error(log).as_deref(),
            Some("container \"x\" does not exist")
        );
    }

    #[test]
    fn runtime_messages_are_classified() {
        for (message, failure) in [
            ("container \"c1\" does not exist", Failure::Missing),
            ("container not found", Failure::Missing),
            (
                "container with id c1 already exists",
                Failure::AlreadyExists,
            ),
            ("container not running", Failure::NotRunning),
            ("No such process", Failure::NotRunning),
            ("os: process already finished", Failure::NotRunning),
            ("container not paused", Failure::WrongState),
            ("boom", Failure::Other),
        ] {
            assert_eq!(classify(message), failure, "{message}");
        }
        let spawn = RuntimeError::Spawn {
            binary: "/not found/polis-runc".into(),
            command: "kill".into(),
            id: "c1".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(spawn.failure(), Failure::Other);
    }

    #[test]
    fn no_error_line_gives_none() {
        assert_eq!(parse_last_error(r#"{"level":"info","msg":"ok"}"#), None);
    }
}
