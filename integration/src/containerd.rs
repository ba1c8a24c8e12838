//! A private containerd 1.6 for the shim and snapshotter tests: its own root, state, sockets
//! and /run in a mount namespace pinned to a file (so a restarted containerd finds the same
//! /run and the shims), a bin dir on its PATH holding the shim and polis-runc, the busybox
//! image, and the proxy snapshotters it is given. Dropping it stops what it started, by PID,
//! and unmounts the namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{run, run_ok};
// Where the shim tests have always found them.
pub use crate::{tail, wait_until};

/// The image every shim test runs.
pub const IMAGE: &str = "docker.io/library/busybox:latest";

pub struct Containerd {
    dir: tempfile::TempDir,
    /// The containerd namespace the tests use (also a prefix of their container ids).
    pub namespace: String,
    child: Option<Child>,
    ns_file: PathBuf,
}

/// What a private containerd is started with.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The containerd namespace is `polis-<tag>-<pid>-<n>`.
    pub tag: String,
    /// The Polis shim and polis-runc on containerd's PATH (the shim tests); without them it
    /// runs containers with runc, its default runtime.
    pub polis_runtime: bool,
    /// busybox imported as `IMAGE` once containerd answers.
    pub import_busybox: bool,
    /// Proxy snapshotter plugins: name and socket.
    pub proxy_snapshotters: Vec<(String, PathBuf)>,
}

/// The `[proxy_plugins]` entry of a snapshotter served at `sock` under `name`.
pub fn proxy_snapshotter_config(name: &str, sock: &Path) -> String {
    format!(
        "[proxy_plugins.{name}]\n  type = \"snapshot\"\n  address = \"{}\"\n",
        sock.display()
    )
}

impl Containerd {
    /// Starts containerd with the shim and `polis-runc` next to each other on its PATH, and
    /// imports busybox. `tag` names the test.
    pub fn start(tag: &str) -> Self {
        Self::start_with(Options {
            tag: format!("shim-{tag}"),
            polis_runtime: true,
            import_busybox: true,
            proxy_snapshotters: Vec::new(),
        })
    }

    /// A containerd whose only extra is the proxy snapshotter `name` at `sock` (the
    /// snapshotter's tests, which run containers with runc); the namespace is
    /// `polis-snaptest-...`.
    pub fn with_snapshotter(name: &str, sock: &Path) -> Self {
        Self::start_with(Options {
            tag: "snaptest".into(),
            proxy_snapshotters: vec![(name.into(), sock.to_path_buf())],
            ..Options::default()
        })
    }

    pub fn start_with(options: Options) -> Self {
        let mut tools = vec!["containerd", "ctr", "unshare", "nsenter"];
        if options.import_busybox {
            tools.push("umoci");
        }
        for tool in tools {
            crate::require_tool(tool);
        }
        let namespace = crate::unique_name(&options.tag);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{namespace}-"))
            .tempdir()
            .expect("containerd test dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        if options.polis_runtime {
            for name in ["containerd-shim-polis-v2", "polis-runc"] {
                std::os::unix::fs::symlink(crate::polis_bin(name), bin.join(name)).unwrap();
            }
        }
        let ns_file = pinned_mount_ns(
            dir.path(),
            "mount -t tmpfs -o mode=755 polis-run /run && mkdir -p /run/containerd",
        );
        let mut c = Self {
            dir,
            namespace,
            child: None,
            ns_file,
        };
        c.write_config(&options.proxy_snapshotters);
        c.launch();
        if options.import_busybox {
            c.import_busybox();
        }
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn write_config(&self, proxy_snapshotters: &[(String, PathBuf)]) {
        let d = self.dir.path();
        let mut cfg = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n",
            d = d.display(),
            s = self.sock().display()
        );
        for (name, sock) in proxy_snapshotters {
            cfg += &proxy_snapshotter_config(name, sock);
        }
        std::fs::write(d.join("config.toml"), cfg).unwrap();
    }

    /// Starts (or restarts) containerd inside the pinned mount namespace.
    pub fn launch(&mut self) {
        let d = self.dir.path();
        let _ = std::fs::remove_file(self.sock());
        self.child = Some(spawn_containerd(d, &self.ns_file, None));
        let sock = self.sock();
        wait_until("containerd's socket", Duration::from_secs(30), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("containerd exited: {st}\n{}", self.log());
            }
            sock.exists()
        });
        wait_until("containerd to answer", Duration::from_secs(30), || {
            self.ctr(&["version"]).status.success()
        });
    }

    /// Stops containerd by its PID and waits for it (shims keep running).
    pub fn stop(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of our own child's PID.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` in containerd's mount namespace, in the test's namespace.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount={}", self.ns_file.display()))
            .arg("--")
            .arg("ctr")
            .arg("-a")
            .arg(self.sock())
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        run(&mut self.ctr_cmd(args))
    }

    /// Runs ctr, asserts success, returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed ({}): {}{}\ncontainerd log tail:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn import_busybox(&self) {
        let tar = self.dir.path().join("busybox.tar");
        crate::fixtures::busybox_image_archive(&tar).expect("busybox image archive");
        let tar = tar.to_string_lossy().into_owned();
        self.ctr_ok(&[
            "images",
            "import",
            "--base-name",
            "docker.io/library/busybox",
            &tar,
        ]);
    }

    /// A container id unique to this test.
    pub fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.namespace)
    }

    /// PIDs of the shim processes of this containerd (their `-address` is our socket).
    pub fn shim_pids(&self) -> Vec<i32> {
        shim_pids_of(&self.sock())
    }

    /// Everything this instance may leave: shim processes, container cgroups of its
    /// namespace (the runtime leaves the namespace's parent cgroup, as runc does; its children
    /// are the containers' and must be gone), mounts under its dir.
    pub fn leftovers(&self) -> Vec<String> {
        instance_leftovers(
            &self.sock(),
            &format!("/{}", self.namespace),
            self.dir.path(),
            &self.ns_file,
        )
    }

    /// Removes every task and container of the namespace, then checks nothing is left once
    /// the shims have gone.
    pub fn clean_and_check(&self) {
        self.clean();
        if let Err(left) = settle(|| self.leftovers()) {
            panic!("left behind: {left:#?}");
        }
    }
}

impl Containerd {
    /// Best effort: kills and removes every task and container of the namespace.
    fn clean(&self) {
        if self.child.is_none() {
            return;
        }
        let list = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&list.stdout).lines() {
            if id.is_empty() {
                continue;
            }
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["task", "delete", "-f", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean();
        self.stop(libc::SIGTERM);
        // Shims of this instance outlive containerd by design: stop them by PID.
        for pid in self.shim_pids() {
            // SAFETY: plain kill(2) of a shim this test's containerd started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let ns_dir = self.ns_file.parent().unwrap().to_path_buf();
        let _ = Command::new("umount").arg(&self.ns_file).status();
        let _ = Command::new("umount").arg(&ns_dir).status();
        for dir in crate::leaks::cgroup_dirs(&format!("/{}", self.namespace)) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// PIDs of the shim processes whose `-address` is the containerd socket `sock`.
pub fn shim_pids_of(sock: &Path) -> Vec<i32> {
    let sock = sock.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_shim = args.first().is_some_and(|a| a.contains("containerd-shim"));
        if is_shim && args.iter().any(|a| a == &sock) {
            pids.push(pid);
        }
    }
    pids
}

/// A private mount namespace pinned to `<dir>/ns/mnt` (so a restarted containerd finds the
/// same one), prepared by the shell script `setup` run inside it; returns the pin file.
/// containerd hard-codes paths under /run (and CRI under /var/lib): the script gives it
/// private copies.
pub fn pinned_mount_ns(dir: &Path, setup: &str) -> PathBuf {
    let ns_dir = dir.join("ns");
    std::fs::create_dir_all(&ns_dir).unwrap();
    let ns_file = ns_dir.join("mnt");
    run_ok(
        Command::new("mount")
            .arg("--bind")
            .arg(&ns_dir)
            .arg(&ns_dir),
    );
    run_ok(Command::new("mount").arg("--make-private").arg(&ns_dir));
    std::fs::write(&ns_file, "").unwrap();
    run_ok(
        Command::new("unshare")
            .arg(format!("--mount={}", ns_file.display()))
            .args(["--propagation", "private", "sh", "-c", setup]),
    );
    ns_file
}

/// containerd with `<dir>/config.toml`, in the pinned mount namespace `ns_file` (and the
/// network namespace `netns` under /run/netns, if given), `<dir>/bin` first on its PATH (the
/// shim and polis-runc are found there), its output appended to `<dir>/containerd.log`.
pub fn spawn_containerd(dir: &Path, ns_file: &Path, netns: Option<&str>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        dir.join("bin").display()
    );
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--mount={}", ns_file.display()));
    if let Some(n) = netns {
        cmd.arg(format!("--net=/run/netns/{n}"));
    }
    cmd.arg("--")
        .arg("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start containerd")
}

/// What a private containerd's containers may leave: shims serving `sock`, cgroups below
/// `cgroup_parent` in every hierarchy, mounts under `dir` (the pinned namespace `ns_file`
/// itself aside).
pub fn instance_leftovers(
    sock: &Path,
    cgroup_parent: &str,
    dir: &Path,
    ns_file: &Path,
) -> Vec<String> {
    let mut found: Vec<String> = shim_pids_of(sock)
        .into_iter()
        .map(|p| format!("shim process {p}"))
        .collect();
    for cg in crate::leaks::cgroup_dirs(cgroup_parent) {
        for e in std::fs::read_dir(&cg).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                found.push(format!("cgroup dir {}", e.path().display()));
            }
        }
    }
    let d = dir.to_string_lossy().into_owned();
    let pin = ns_file.parent().unwrap().to_string_lossy().into_owned();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines().filter(|l| l.contains(&d) && !l.contains(&pin)) {
            found.push(format!("mount {line}"));
        }
    }
    found
}

/// Polls `leftovers` for up to 20 s (cgroups and shims trail the last exit by a moment);
/// the last list if something is still there.
pub fn settle(mut leftovers: impl FnMut() -> Vec<String>) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = leftovers();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
