//! Helpers of the integration tests: uniquely named temp dirs that clean up (mounts first),
//! the daemon as a child process, a gRPC client, a private containerd, an offline busybox image.
#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::tonic::transport::{Channel, Endpoint};

pub const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn need_tool(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs `{name}` on PATH (scripts/apt-packages.txt installs it)"
    );
}

pub fn suite_tool() -> PathBuf {
    let p = workspace_root().join("../shared/tools/snapshot-suite/run");
    assert!(
        p.exists(),
        "containerd's snapshot conformance suite is missing: expected {}",
        p.display()
    );
    p
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut found: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}

/// A directory `/tmp/polis-snaptest-<name>-<pid>-<n>`; on drop, unmounts what is left under it
/// and removes it.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let path = PathBuf::from(format!(
            "/tmp/polis-snaptest-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        for m in mounts_under(&self.path) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon as a child process; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    pub child: Child,
    pub root: PathBuf,
    pub address: PathBuf,
}

impl Daemon {
    pub fn spawn(root: &Path, address: &Path, extra: &[&str]) -> Child {
        Command::new(BIN)
            .arg("--root")
            .arg(root)
            .arg("--address")
            .arg(address)
            .args(["--log-level", "warn"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn polis-snapshotter")
    }

    pub fn start(root: &Path, address: &Path, extra: &[&str]) -> Daemon {
        let _ = fs::remove_file(address);
        let mut child = Self::spawn(root, address, extra);
        wait_for("the snapshotter socket", Duration::from_secs(10), || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("polis-snapshotter exited early: {st}");
            }
            address.exists()
        });
        Daemon {
            child,
            root: root.to_path_buf(),
            address: address.to_path_buf(),
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as containerd's shutdown would, and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn connect(address: &Path) -> SnapshotsClient<Channel> {
    let path = address.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:0")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            tokio::net::UnixStream::connect(path.clone())
        }))
        .await
        .expect("connect to the snapshotter");
    SnapshotsClient::new(channel)
}

pub async fn prepare(c: &mut SnapshotsClient<Channel>, key: &str, parent: &str) {
    c.prepare(PrepareSnapshotRequest {
        snapshotter: String::new(),
        key: key.into(),
        parent: parent.into(),
        labels: Default::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("prepare {key}: {e}"));
}

pub async fn commit(c: &mut SnapshotsClient<Channel>, name: &str, key: &str) {
    c.commit(CommitSnapshotRequest {
        snapshotter: String::new(),
        name: name.into(),
        key: key.into(),
        labels: Default::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("commit {key} as {name}: {e}"));
}

pub async fn remove(c: &mut SnapshotsClient<Channel>, key: &str) {
    c.remove(RemoveSnapshotRequest {
        snapshotter: String::new(),
        key: key.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("remove {key}: {e}"));
}

pub async fn list(c: &mut SnapshotsClient<Channel>) -> Vec<Info> {
    let mut stream = c
        .list(ListSnapshotsRequest {
            snapshotter: String::new(),
            filters: vec![],
        })
        .await
        .expect("list")
        .into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await.expect("list stream") {
        out.extend(batch.info);
    }
    out
}

pub async fn cleanup(c: &mut SnapshotsClient<Channel>) {
    c.cleanup(CleanupRequest {
        snapshotter: String::new(),
    })
    .await
    .expect("cleanup");
}

/// Entries of `root/snapshots`, sorted.
pub fn snapshot_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs containerd's snapshot suite tool; runs are serialised across test processes (the tool
/// builds its test binary and writes its log in one shared directory).
pub fn run_suite(dir: &TestDir, args: &[&str]) -> (bool, String) {
    use std::os::fd::AsRawFd;
    let lock = fs::File::create("/tmp/polis-snapsuite.lock").unwrap();
    // SAFETY: flock on an open descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    // The tool may have to build its test binary first, and `go` refuses a TMPDIR that does not
    // exist yet (the tool itself only creates it after building).
    let tmp = dir.join("suite-tmp");
    fs::create_dir_all(&tmp).unwrap();
    let out = Command::new(suite_tool())
        .args(args)
        .env("TMPDIR", &tmp)
        .output()
        .expect("run the snapshot suite");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the suite in `mode` and asserts the full pass: 20 passed, 0 failed (containerd's own
/// overlayfs passes 20 and skips 1 here), and that it left no mounts under `dir`.
pub fn assert_suite_passes(dir: &TestDir, args: &[&str]) {
    let (ok, text) = run_suite(dir, args);
    let tag = format!("snapshot-suite[{}]:", args[0]);
    let summary = text
        .lines()
        .find(|l| l.starts_with(&tag))
        .unwrap_or_else(|| panic!("no summary line\n{text}"));
    assert!(ok && summary.contains("20 passed, 0 failed"), "{text}");
    assert!(mounts_under(&dir.path).is_empty(), "the suite left mounts");
}

/// Nothing of the snapshots remains: no snapshot dirs under `root`, no mounts under `dir`.
pub fn assert_nothing_left(root: &Path, dir: &TestDir) {
    assert!(snapshot_dirs(root).is_empty(), "{:?}", snapshot_dirs(root));
    assert!(
        mounts_under(&dir.path).is_empty(),
        "{:?}",
        mounts_under(&dir.path)
    );
}

/// A containerd in a private mount namespace with its own /run, configured with the proxy
/// plugin `polis` at `snap_sock`. Killed (by PID) on drop.
pub struct Containerd {
    pub child: Child,
    pub sock: PathBuf,
    pub dir: PathBuf,
}

impl Containerd {
    pub fn start(dir: &Path, snap_sock: &Path) -> Containerd {
        let sock = dir.join("containerd.sock");
        let cfg = dir.join("config.toml");
        fs::write(
            &cfg,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[proxy_plugins.polis]
  type = "snapshot"
  address = "{snap}"
"#,
                d = dir.display(),
                sock = sock.display(),
                snap = snap_sock.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o mode=755 polis-run /run && exec containerd --config {}",
                cfg.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut c = Containerd {
            child,
            sock: sock.clone(),
            dir: dir.to_path_buf(),
        };
        let log = dir.join("containerd.log");
        wait_for("containerd's socket", Duration::from_secs(30), || {
            if let Ok(Some(st)) = c.child.try_wait() {
                panic!(
                    "containerd exited: {st}\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            sock.exists()
        });
        c.ctr(&["version"]);
        c
    }

    /// `ctr` inside containerd's mount namespace (its /run holds the fifos and shim sockets).
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.child.id().to_string(), "-m", "--"])
            .arg("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(["-n", "polis-test"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run_ok(&mut self.ctr_cmd(args)).stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many inodes the image layer holds: the fixture's rootfs, built again and counted
/// (the root directory included).
pub fn busybox_layer_inodes() -> usize {
    fn count(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let is_dir = e.file_type().unwrap().is_dir();
                1 + if is_dir { count(&e.path()) } else { 0 }
            })
            .sum()
    }
    let tmp = tempfile::tempdir().unwrap();
    polis_integration::fixtures::busybox_rootfs(tmp.path()).expect("busybox rootfs");
    1 + count(tmp.path())
}

/// Builds a busybox OCI image archive offline (busybox-static + umoci) at `dir/busybox.tar`,
/// with the project's shared fixture.
pub fn busybox_archive(dir: &Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    polis_integration::fixtures::busybox_image_archive(&tar).expect("busybox image archive");
    tar
}
