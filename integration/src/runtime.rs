//! Drives an OCI runtime binary (polis-runc or runc) with a private `--root`, so the same
//! scenario can be run against both and compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixtures::Bundle;

pub struct Runtime {
    pub name: &'static str,
    pub bin: PathBuf,
    root: tempfile::TempDir,
    /// Holds a wrapper script `bin` may be (crun's).
    _wrapper: Option<tempfile::TempDir>,
}

impl Runtime {
    pub fn polis() -> Self {
        Self::new("polis-runc", crate::polis_bin("polis-runc"))
    }

    pub fn runc() -> Self {
        Self::new("runc", crate::require_tool("runc"))
    }

    /// crun, which refuses a hybrid cgroup host as it is: each call runs in a private mount
    /// namespace without the cgroup2 mount (see ENVIRONMENT.md). None when crun is missing.
    pub fn crun() -> Option<Self> {
        let crun = ["/usr/bin/crun", "/usr/local/bin/crun"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let dir = tempfile::Builder::new()
            .prefix("polis-crun-")
            .tempdir()
            .expect("temp dir");
        let wrapper = dir.path().join("crun");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec unshare -m --propagation private sh -c \
                 'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"' {} \"$@\"\n",
                crun.display()
            ),
        )
        .expect("crun wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut rt = Self::new("crun", wrapper);
        rt._wrapper = Some(dir);
        Some(rt)
    }

    pub fn new(name: &'static str, bin: PathBuf) -> Self {
        let root = tempfile::Builder::new()
            .prefix("polis-state-")
            .tempdir()
            .expect("state root");
        Self {
            name,
            bin,
            root,
            _wrapper: None,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A command with `--root` set; the caller adds the rest.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs to completion with no stdin and captured output. Output goes through files, not
    /// pipes: a created container's init inherits them and would hold a pipe open for its life.
    pub fn run(&self, args: &[&str]) -> Output {
        run_captured(self.command().args(args))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{} {args:?} failed ({}): {}",
            self.name,
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is json")
    }

    /// Polls `state` until the status is `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.run(&["state", id]);
            let status = serde_json::from_slice::<Value>(&o.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from));
            if status.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: container {id} never became {want} (last: {status:?})",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One container of a test: deleted on drop, and `finish` asserts it left nothing behind.
pub struct Container<'a> {
    pub rt: &'a Runtime,
    pub id: String,
    pub bundle: Bundle,
}

impl<'a> Container<'a> {
    pub fn new(rt: &'a Runtime, tag: &str, args: &[&str]) -> Self {
        let id = crate::unique_name(tag);
        let bundle = Bundle::new(&id, args).expect("bundle");
        Self { rt, id, bundle }
    }

    pub fn bundle_path(&self) -> &str {
        self.bundle.path().to_str().expect("utf-8 bundle path")
    }

    /// `run` in the foreground; returns its output.
    pub fn run(&self) -> Output {
        self.rt
            .run(&["run", "--bundle", self.bundle_path(), &self.id])
    }

    /// A container created and started, running when this returns.
    pub fn started(rt: &'a Runtime, tag: &str, args: &[&str]) -> Self {
        let c = Self::new(rt, tag, args);
        c.create();
        rt.ok(&["start", &c.id]);
        rt.wait_status(&c.id, "running");
        c
    }

    pub fn create(&self) {
        self.rt
            .ok(&["create", "--bundle", self.bundle_path(), &self.id]);
    }

    /// Deletes the container and asserts nothing of it remains.
    pub fn finish(self) {
        let o = self.rt.run(&["delete", "--force", &self.id]);
        let why = if o.status.success() {
            String::new()
        } else {
            format!("delete --force failed ({}): {}", o.status, stderr(&o))
        };
        self.assert_clean_after(&why);
    }

    pub fn assert_clean(&self) {
        self.assert_clean_after("");
    }

    /// `why`: what the test saw fail before (shown with the leftovers).
    fn assert_clean_after(&self, why: &str) {
        let mut left = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        // cgroup removal can trail the last process exit by a moment.
        while Instant::now() < deadline {
            left = crate::leaks::leftovers(
                self.rt.root(),
                &self.id,
                &self.bundle.cgroups_path,
                self.bundle.path(),
            );
            if left.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: container {} left behind: {left:#?} {why}",
            self.rt.name, self.id
        );
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.rt.run(&["delete", "--force", &self.id]);
    }
}

/// Runs a command to its exit with stdout/stderr captured through temporary files.
pub fn run_captured(cmd: &mut Command) -> Output {
    let mut out = tempfile::tempfile().expect("temp file");
    let mut err = tempfile::tempfile().expect("temp file");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .status()
        .unwrap_or_else(|e| panic!("failed to spawn {cmd:?}: {e}"));
    let read = |f: &mut std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut v).expect("read");
        v
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// Receives one fd passed with SCM_RIGHTS (console sockets, seccomp listeners), with the bytes
/// that came along.
pub fn recv_fd(stream: &std::os::unix::net::UnixStream) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use std::os::fd::AsFd;
    polis_sys::fd::recv_fd(stream.as_fd()).expect("receive a descriptor")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// polis-runc and runc, for running one scenario through both and comparing.
pub fn both() -> [Runtime; 2] {
    [Runtime::polis(), Runtime::runc()]
}

/// Runs `args` in a fresh container of `rt` whose spec `edit` changes first (with the bundle's
/// rootfs at hand), and returns (exit code, stdout, stderr); the container is deleted and
/// checked for leftovers.
pub fn run_with(
    rt: &Runtime,
    tag: &str,
    args: &[&str],
    edit: impl FnOnce(&mut Value, &Path),
) -> (Option<i32>, String, String) {
    let c = Container::new(rt, tag, args);
    let rootfs = c.bundle.rootfs();
    c.bundle.edit(|s| edit(s, &rootfs)).unwrap();
    let o = c.run();
    let r = (o.status.code(), stdout(&o), stderr(&o));
    c.finish();
    r
}

/// `bin --root ROOT ARGS` of a runtime at a state root the caller owns, like `Runtime::run`.
pub fn run_at(bin: &str, root: &Path, args: &[&str]) -> Output {
    run_captured(Command::new(bin).arg("--root").arg(root).args(args))
}

/// A bundle whose rootfs holds busybox with only `applets` linked to it, and the spec that
/// `bin spec` writes without a terminal, changed by `edit`.
pub fn write_busybox_bundle(
    bin: &str,
    root: &Path,
    bundle: &Path,
    applets: &[&str],
    edit: impl FnOnce(&mut Value),
) {
    let busybox = crate::require_tool("busybox");
    let rootfs_bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs_bin).unwrap();
    std::fs::copy(&busybox, rootfs_bin.join("busybox")).unwrap();
    for a in applets {
        std::os::unix::fs::symlink("busybox", rootfs_bin.join(a)).unwrap();
    }
    let out = run_at(bin, root, &["spec", "--bundle", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "spec: {}", stderr(&out));
    let path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = serde_json::json!(false);
    edit(&mut spec);
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
}
