//! One container: its bundle, its runtime, the init process and the execs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::api::CreateTaskRequest;

use crate::error::{Result, TaskError};
use crate::io::{self, StdioPaths};
use crate::monitor::{Exit, Monitor};
use crate::options::{RuntimeRecord, Settings};
use crate::process::Process;
use crate::runtime::{CreateOpts, ExecOpts, Failure, NewRuntime, OciRuntime};

/// The file in the bundle recording which runtime binary and root the container uses, so the
/// `delete` subcommand (a fresh process) finds them.
const RUNTIME_FILE: &str = "polis-runtime.json";

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Arc<dyn OciRuntime>,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    /// No pid namespace of its own: when the init exits, the kernel does not kill the rest,
    /// so the shim does (as the Go shim, `kill --all`).
    pub kill_all_on_exit: bool,
    /// The options' IoUid/IoGid, for the execs' stdio too.
    io_owner: Option<(u32, u32)>,
    /// The init's exit while execs still run: it is published after theirs, as the Go shim
    /// does, so containerd never sees an exec outlive its container.
    deferred_exit: Mutex<Option<Exit>>,
}

/// The parts of a bundle's config.json the shim reads. serde skips the rest without building
/// it (a whole `serde_json::Value` of a spec is tens of KB of heap in every shim).
#[derive(Debug, Default, serde::Deserialize)]
pub struct SpecView {
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    linux: Option<LinuxView>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct LinuxView {
    #[serde(default)]
    namespaces: Option<Vec<NamespaceView>>,
}

#[derive(Debug, serde::Deserialize)]
struct NamespaceView {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<String>,
}

impl SpecView {
    /// The bundle's spec; empty when it cannot be read.
    pub fn read(bundle: &Path) -> Self {
        std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether the spec leaves the container without a new pid namespace of its own.
    pub fn shares_pid_namespace(&self) -> bool {
        let namespaces = self.linux.as_ref().and_then(|l| l.namespaces.as_ref());
        !namespaces.is_some_and(|v| {
            v.iter()
                .any(|ns| ns.kind == "pid" && ns.path.as_deref().unwrap_or("").is_empty())
        })
    }
}

/// Spec annotations that put containers into one shim, checked in this order.
pub const GROUP_KEYS: [&str; 2] = [
    "io.containerd.polis.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// The shim (and socket) a container belongs to: its group annotation, else its own id.
pub fn grouping(spec: &SpecView, id: &str) -> String {
    GROUP_KEYS
        .iter()
        .find_map(|k| spec.annotation(k).filter(|v| !v.is_empty()))
        .unwrap_or(id)
        .to_string()
}

/// Records the runtime of a bundle for the `delete` subcommand.
fn write_runtime_file(bundle: &Path, r: &RuntimeRecord) -> Result<()> {
    let v =
        serde_json::json!({"binary": r.binary, "root": r.root, "systemdCgroup": r.systemd_cgroup});
    let path = bundle.join(RUNTIME_FILE);
    std::fs::write(&path, v.to_string()).map_err(|source| TaskError::File {
        op: "write",
        path,
        source,
    })
}

/// The runtime a bundle was created with, if it was.
pub fn read_runtime_file(bundle: &Path) -> Option<RuntimeRecord> {
    let data = std::fs::read(bundle.join(RUNTIME_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    Some(RuntimeRecord {
        binary: PathBuf::from(v["binary"].as_str()?),
        root: PathBuf::from(v["root"].as_str()?),
        systemd_cgroup: v["systemdCgroup"].as_bool().unwrap_or(false),
    })
}

fn mount_rootfs(req: &CreateTaskRequest, rootfs: &Path) -> Result<()> {
    for m in &req.rootfs {
        crate::mount::mount_one(&m.type_, &m.source, &m.options, rootfs)?;
    }
    Ok(())
}

/// Unmounts everything under the bundle's rootfs (lazily, as the Go shim does).
pub fn unmount_rootfs(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    while nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

fn read_pid(path: &Path) -> Result<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| TaskError::NoPid(path.into()))
}

impl Container {
    /// Mounts the rootfs and runs the runtime's `create`; the init is then created, not
    /// started.
    pub fn create(
        req: &CreateTaskRequest,
        namespace: &str,
        monitor: &Monitor,
        new_runtime: &NewRuntime,
    ) -> Result<Self> {
        let settings = Settings::from_any(req.options.as_ref())
            .map_err(|e| TaskError::InvalidArgument(format!("{}: {e}", req.id)))?;
        let bundle = PathBuf::from(&req.bundle);
        let record = settings.record(namespace);
        write_runtime_file(&bundle, &record)?;
        let runtime = new_runtime(&record, bundle.join("log.json"));
        let rootfs = bundle.join("rootfs");
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs).map_err(|source| TaskError::File {
                op: "mkdir",
                path: rootfs.clone(),
                source,
            })?;
        }
        mount_rootfs(req, &rootfs).inspect_err(|_| unmount_rootfs(&bundle))?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let env = [
            ("CONTAINER_ID", req.id.as_str()),
            ("CONTAINER_NAMESPACE", namespace),
        ];
        let created = (|| -> Result<Process> {
            let prepared = io::prepare(&stdio, monitor, &env, settings.io_owner)?;
            let pid_file = bundle.join("init.pid");
            let opts = CreateOpts {
                bundle: &bundle,
                pid_file: &pid_file,
                console_socket: prepared.console.as_ref().map(|c| c.path()),
                no_pivot: settings.no_pivot_root,
                no_new_keyring: settings.no_new_keyring,
            };
            runtime.create(&req.id, &opts, prepared.child)?;
            if let Some(console) = prepared.console {
                console.attach(&stdio, &prepared.io)?;
            }
            let init = Process::new("", stdio.clone(), prepared.io);
            init.set_pid(read_pid(&pid_file)?);
            Ok(init)
        })();
        let init = created.inspect_err(|_| {
            let _ = runtime.delete(&req.id, true);
            unmount_rootfs(&bundle);
        })?;
        let kill_all_on_exit = SpecView::read(&bundle).shares_pid_namespace();
        Ok(Self {
            id: req.id.clone(),
            bundle,
            runtime,
            init: Arc::new(init),
            execs: Mutex::new(HashMap::new()),
            kill_all_on_exit,
            io_owner: settings.io_owner,
            deferred_exit: Mutex::new(None),
        })
    }

    /// The init for an empty exec id, else that exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.lock_execs()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id} in {}", self.id)))
    }

    fn lock_execs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn execs(&self) -> Vec<Arc<Process>> {
        self.lock_execs().values().cloned().collect()
    }

    /// Registers an exec; it runs on Start.
    pub fn add_exec(&self, exec_id: &str, stdio: StdioPaths, spec: &[u8]) -> Result<()> {
        let mut execs = self.lock_execs();
        if execs.contains_key(exec_id) {
            return Err(TaskError::AlreadyExists(format!(
                "exec {exec_id} in {}",
                self.id
            )));
        }
        let spec_path = self.exec_file(exec_id, "json");
        std::fs::write(&spec_path, spec).map_err(|source| TaskError::File {
            op: "write",
            path: spec_path,
            source,
        })?;
        let p = Process::new(exec_id, stdio, Default::default());
        execs.insert(exec_id.into(), Arc::new(p));
        Ok(())
    }

    fn exec_file(&self, exec_id: &str, ext: &str) -> PathBuf {
        self.bundle.join(format!("exec-{exec_id}.{ext}"))
    }

    /// Runs an exec (`exec --detach`) and returns its process with its pid set.
    pub fn start_exec(&self, exec_id: &str, monitor: &Monitor, ns: &str) -> Result<Arc<Process>> {
        let p = self.process(exec_id)?;
        let env = [
            ("CONTAINER_ID", self.id.as_str()),
            ("CONTAINER_NAMESPACE", ns),
        ];
        let prepared = io::prepare(&p.stdio, monitor, &env, self.io_owner)?;
        let pid_file = self.exec_file(exec_id, "pid");
        let opts = ExecOpts {
            process_file: &self.exec_file(exec_id, "json"),
            pid_file: &pid_file,
            console_socket: prepared.console.as_ref().map(|c| c.path()),
        };
        self.runtime.exec(&self.id, &opts, prepared.child)?;
        // Waiters may already hold this process: it keeps its identity and gains its IO.
        p.io.adopt(prepared.io);
        if let Some(console) = prepared.console {
            console.attach(&p.stdio, &p.io)?;
        }
        p.set_pid(read_pid(&pid_file)?);
        Ok(p)
    }

    /// Execs started and not yet exited.
    pub fn running_execs(&self) -> usize {
        let execs = self.lock_execs();
        execs
            .values()
            .filter(|p| p.pid() != 0 && p.exit().is_none())
            .count()
    }

    fn lock_deferred(&self) -> std::sync::MutexGuard<'_, Option<Exit>> {
        self.deferred_exit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the init's exit back until the running execs have exited.
    pub fn defer_exit(&self, exit: Exit) {
        *self.lock_deferred() = Some(exit);
    }

    pub fn take_deferred_exit(&self) -> Option<Exit> {
        self.lock_deferred().take()
    }

    /// The init has exited, whether or not its exit is published yet.
    pub fn init_exited(&self) -> bool {
        self.init.exit().is_some() || self.lock_deferred().is_some()
    }

    pub fn remove_exec(&self, exec_id: &str) {
        self.lock_execs().remove(exec_id);
        let _ = std::fs::remove_file(self.exec_file(exec_id, "json"));
        let _ = std::fs::remove_file(self.exec_file(exec_id, "pid"));
    }

    /// Deletes the container in the runtime and unmounts its rootfs.
    pub fn destroy(&self) -> Result<()> {
        let res = self.runtime.delete(&self.id, true);
        unmount_rootfs(&self.bundle);
        match res {
            Err(e) if e.failure() == Failure::Missing => Ok(()),
            other => other.map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> SpecView {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn grouping_prefers_polis_group_then_sandbox_then_id() {
        let both = spec(
            r#"{"annotations": {"io.containerd.polis.v2.group": "g1",
                "io.kubernetes.cri.sandbox-id": "sb"}, "process": {"args": ["sh"]}}"#,
        );
        assert_eq!(grouping(&both, "c1"), "g1");
        let sandbox = spec(r#"{"annotations": {"io.kubernetes.cri.sandbox-id": "sb"}}"#);
        assert_eq!(grouping(&sandbox, "c1"), "sb");
        assert_eq!(grouping(&spec("{}"), "c1"), "c1");
        assert_eq!(grouping(&spec(r#"{"annotations": null}"#), "c1"), "c1");
    }

    #[test]
    fn only_a_new_pid_namespace_is_own() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |ns: &str| {
            let s = format!(r#"{{"linux": {{"namespaces": [{{"type": "mount"}}{ns}]}}}}"#);
            std::fs::write(dir.path().join("config.json"), s).unwrap();
            SpecView::read(dir.path()).shares_pid_namespace()
        };
        assert!(!spec(r#", {"type": "pid"}"#));
        assert!(!spec(r#", {"type": "pid", "path": ""}"#));
        assert!(spec(r#", {"type": "pid", "path": "/proc/7/ns/pid"}"#));
        assert!(spec(""));
    }

    #[test]
    fn runtime_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let r = RuntimeRecord {
            binary: "/b/polis-runc".into(),
            root: "/r/ns".into(),
            systemd_cgroup: true,
        };
        write_runtime_file(dir.path(), &r).unwrap();
        assert_eq!(read_runtime_file(dir.path()), Some(r));
    }
}
