//! A typed wrapper of the `polis-runc` command line (runc's CLI), run as a subprocess through
//! the exit monitor, the way containerd's Go shim runs runc.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::monitor::Monitor;

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

impl RuntimeError {
    /// The runtime's own message, for error classification.
    pub fn message(&self) -> String {
        match self {
            Self::Failed { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The three standard streams handed to a runtime command (and by it to the container).
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
    pub stderr: Option<Stdio>,
}

/// `polis-runc` with a state root and a JSON log file.
#[derive(Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    monitor: Monitor,
}

pub struct CreateOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

pub struct ExecOpts<'a> {
    pub process_file: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

impl Runtime {
    pub fn new(binary: PathBuf, root: PathBuf, log: PathBuf, monitor: Monitor) -> Self {
        Self {
            binary,
            root,
            log,
            monitor,
        }
    }

    pub fn create(&self, id: &str, opts: &CreateOpts, stdio: ChildStdio) -> Result<()> {
        let mut args = vec![
            "create".into(),
            "--bundle".into(),
            path_arg(opts.bundle),
            "--pid-file".into(),
            path_arg(opts.pid_file),
        ];
        if let Some(s) = opts.console_socket {
            args.extend(["--console-socket".into(), path_arg(s)]);
        }
        args.push(id.into());
        self.run(id, &args, stdio, None).map(drop)
    }

    pub fn exec(&self, id: &str, opts: &ExecOpts, stdio: ChildStdio) -> Result<()> {
        let mut args = vec![
            "exec".into(),
            "--process".into(),
            path_arg(opts.process_file),
            "--detach".into(),
            "--pid-file".into(),
            path_arg(opts.pid_file),
        ];
        if let Some(s) = opts.console_socket {
            args.extend(["--console-socket".into(), path_arg(s)]);
        }
        args.push(id.into());
        self.run(id, &args, stdio, None).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.simple(id, &["start"])
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.simple(id, &["pause"])
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.simple(id, &["resume"])
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run_strs(id, &args, None).map(drop)
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run_strs(id, &args, None).map(drop)
    }

    /// The pids in the container (`ps --format json`).
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run_strs(id, &["ps", "--format", "json", id], None)?;
        serde_json::from_slice(&out).map_err(|e| self.output_error("ps", id, e.to_string()))
    }

    /// Applies an OCI `LinuxResources` JSON document.
    pub fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        self.run_strs(
            id,
            &["update", "--resources", "-", id],
            Some(resources_json),
        )
        .map(drop)
    }

    fn simple(&self, id: &str, cmd: &[&str]) -> Result<()> {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push(id);
        self.run_strs(id, &args, None).map(drop)
    }

    fn run_strs(&self, id: &str, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdio = ChildStdio {
            stdout: Some(Stdio::piped()),
            ..Default::default()
        };
        self.run(id, &args, stdio, input)
    }

    fn output_error(&self, command: &str, id: &str, detail: String) -> RuntimeError {
        RuntimeError::Output {
            binary: self.binary.clone(),
            command: command.into(),
            id: id.into(),
            detail,
        }
    }

    /// Runs one command to completion; its exit is collected by the monitor.
    fn run(
        &self,
        id: &str,
        args: &[String],
        stdio: ChildStdio,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let command = args.first().cloned().unwrap_or_default();
        let mut cmd = Command::new(&self.binary);
        // The shim's own cwd is the bundle of the first container of its group, which may
        // be gone by now: run in this container's bundle (the log's directory).
        if let Some(dir) = self.log.parent().filter(|d| d.is_dir()) {
            cmd.current_dir(dir);
        }
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(stdio.stdin.unwrap_or_else(|| {
                if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                }
            }))
            .stdout(stdio.stdout.unwrap_or_else(Stdio::null))
            .stderr(stdio.stderr.unwrap_or_else(Stdio::piped));
        let spawn_err = |source| RuntimeError::Spawn {
            binary: self.binary.clone(),
            command: command.clone(),
            id: id.into(),
            source,
        };
        let (mut child, exit) = self.monitor.spawn(&mut cmd).map_err(spawn_err)?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(spawn_err)?;
        }
        // stderr drains on its own thread so a chatty runtime cannot block on a full pipe
        // while we read stdout.
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = e.read_to_end(&mut buf);
                buf
            })
        });
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_end(&mut out).map_err(spawn_err)?;
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
            command,
            id: id.into(),
            status,
            message,
        })
    }
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
    fn no_error_line_gives_none() {
        assert_eq!(parse_last_error(r#"{"level":"info","msg":"ok"}"#), None);
    }
}
