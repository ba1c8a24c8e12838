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
            // the socket file appears at bind(), a moment before listen(): until then a
            // connect is refused
            std::os::unix::net::UnixStream::connect(address).is_ok()
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

/// Our harness around containerd's snapshotter conformance suite
/// (`image-snapshotter/conformance/polis_suite_test.go`).
pub const SUITE_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance");

/// The target directory: `CARGO_TARGET_DIR` if set (relative to the workspace root), else
/// `<workspace root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join("target"),
    }
}

/// Newest modification time of the harness's Go sources.
fn suite_sources_mtime() -> std::time::SystemTime {
    fs::read_dir(SUITE_SRC)
        .unwrap_or_else(|e| panic!("read {SUITE_SRC}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "go"))
        .map(|p| fs::metadata(&p).unwrap().modified().unwrap())
        .max()
        .unwrap_or_else(|| panic!("no .go file in {SUITE_SRC}"))
}

/// The harness's test binary, `<target>/polis-snapsuite/polis-snapsuite.test`, built (offline,
/// GOPATH mode, against Debian's golang-github-containerd-containerd-dev) when missing or older
/// than its sources. Concurrent test processes are serialised by a flock on `build.lock` in that
/// directory; the Go build cache and temp files stay in there too.
pub fn suite_harness() -> PathBuf {
    use std::os::fd::AsRawFd;
    need_tool("go");
    let dir = target_dir().join("polis-snapsuite");
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    let lock = fs::File::create(dir.join("build.lock")).unwrap();
    // SAFETY: flock on an open descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let bin = dir.join("polis-snapsuite.test");
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some_and(|t| t >= suite_sources_mtime()) {
        return bin;
    }
    let new = dir.join("polis-snapsuite.test.new");
    let gopath = format!("{}:/usr/share/gocode", dir.display());
    let start = Instant::now();
    run_ok(
        Command::new("go")
            .args(["test", "-c", "-o"])
            .arg(&new)
            .arg(".")
            .current_dir(SUITE_SRC)
            .env("GO111MODULE", "off")
            .env("GOPATH", gopath)
            .env("GOFLAGS", "")
            .env("GOCACHE", dir.join("gocache"))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null()),
    );
    fs::rename(&new, &bin).unwrap();
    eprintln!(
        "built {} in {:.1}s",
        bin.display(),
        start.elapsed().as_secs_f64()
    );
    bin
}

/// How the suite reaches the snapshotter.
pub enum Suite<'a> {
    /// A fresh snapshotter per test case, from this command line (split on whitespace), where
    /// `{root}` and `{address}` stand for its root and socket.
    Exec(&'a str),
    /// Through the containerd at `sock`, to its proxy snapshotter `snapshotter`.
    Containerd {
        sock: &'a Path,
        snapshotter: &'a str,
    },
}

/// The outcome of a suite run: its subtests by result, and the output of the failing ones.
pub struct SuiteRun {
    pub success: bool,
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
    /// stdout and stderr of the whole run.
    pub output: String,
    /// Per subtest, the lines `go test -v` printed for it.
    pub by_test: std::collections::BTreeMap<String, String>,
}

const SUITE_TEST: &str = "TestSnapshotterSuite/";

impl SuiteRun {
    pub fn parse(success: bool, output: String) -> SuiteRun {
        let mut run = SuiteRun {
            success,
            passed: vec![],
            failed: vec![],
            skipped: vec![],
            output: String::new(),
            by_test: Default::default(),
        };
        let mut current: Option<String> = None;
        for line in output.lines() {
            let t = line.trim_start();
            // `=== RUN|PAUSE|CONT|NAME  name`: what follows is that test's
            if let Some(rest) = t.strip_prefix("=== ") {
                current = rest.split_whitespace().nth(1).map(str::to_string);
            }
            // `--- PASS|FAIL|SKIP: name (0.12s)`: the result, and that test's lines after it
            if let Some(rest) = t.strip_prefix("--- ") {
                if let Some((result, rest)) = rest.split_once(": ") {
                    let name = rest.split(" (").next().unwrap_or(rest).to_string();
                    if let Some(sub) = name.strip_prefix(SUITE_TEST) {
                        match result {
                            "PASS" => run.passed.push(sub.to_string()),
                            "FAIL" => run.failed.push(sub.to_string()),
                            "SKIP" => run.skipped.push(sub.to_string()),
                            _ => {}
                        }
                    }
                    current = Some(name);
                }
            }
            if let Some(name) = current.as_ref().filter(|n| n.starts_with(SUITE_TEST)) {
                let lines = run.by_test.entry(name.clone()).or_default();
                lines.push_str(line);
                lines.push('\n');
            }
        }
        run.output = output;
        run
    }

    /// The output of the failing subtests, or the whole output if none failed by name.
    pub fn failure_output(&self) -> String {
        if self.failed.is_empty() {
            return self.output.clone();
        }
        self.failed
            .iter()
            .map(|f| {
                let key = format!("{SUITE_TEST}{f}");
                self.by_test.get(&key).cloned().unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs containerd's snapshotter suite through our harness with `-test.v`; its temp files (the
/// suite's per-test roots, sockets and work dirs) go under `dir/suite-tmp`.
pub fn run_suite(dir: &TestDir, suite: &Suite) -> SuiteRun {
    let bin = suite_harness();
    let tmp = dir.join("suite-tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["-test.v", "-test.timeout=5m"]);
    match suite {
        Suite::Exec(command) => cmd.args(["-mode", "exec", "-command", command]),
        Suite::Containerd { sock, snapshotter } => cmd
            .args(["-mode", "containerd", "-containerd"])
            .arg(sock)
            .args(["-snapshotter", snapshotter]),
    };
    let out = cmd
        .env("TMPDIR", &tmp)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    SuiteRun::parse(out.status.success(), text)
}

/// Runs the suite and asserts the full pass: 20 passed, 0 failed (containerd's own overlayfs
/// passes 20 and skips 1 here), and that it left no mounts under `dir`.
pub fn assert_suite_passes(dir: &TestDir, suite: &Suite) {
    let run = run_suite(dir, suite);
    assert!(
        run.success && run.passed.len() == 20 && run.failed.is_empty(),
        "containerd's snapshotter suite: {} passed, {} failed {:?}, {} skipped {:?} (want 20 \
         passed, 0 failed); output of the failing subtests:\n{}",
        run.passed.len(),
        run.failed.len(),
        run.failed,
        run.skipped.len(),
        run.skipped,
        run.failure_output()
    );
    assert!(
        mounts_under(&dir.path).is_empty(),
        "the suite left mounts: {:?}",
        mounts_under(&dir.path)
    );
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
    /// The containerd namespace of this instance, unique to the test: containers run with
    /// `ctr run` get the cgroup `/<namespace>/<id>`, and the parent goes on drop.
    pub namespace: String,
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
            namespace: polis_integration::unique_name("snaptest"),
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
            .args(["-n", &self.namespace])
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
        for dir in polis_integration::leaks::cgroup_dirs(&self.namespace) {
            let _ = fs::remove_dir(dir);
        }
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
