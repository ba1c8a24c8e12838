//! polis-snapshotter under test: the daemon as a child process, a gRPC client of its
//! snapshots API, and containerd's snapshotter conformance suite run against it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::tonic::transport::{Channel, Endpoint};

use crate::{mounts_under, require_tool, run_ok, wait_until, TestDir};

/// The daemon as a child process; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    pub child: Child,
    pub root: PathBuf,
    pub address: PathBuf,
}

impl Daemon {
    /// polis-snapshotter `bin` (a test's own build of it, `env!("CARGO_BIN_EXE_...")`, or
    /// `polis_bin`'s) on `root`, serving `address`.
    pub fn spawn(bin: impl AsRef<OsStr>, root: &Path, address: &Path, extra: &[&str]) -> Child {
        Command::new(bin)
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

    /// `spawn`, once it accepts connections.
    pub fn start(bin: impl AsRef<OsStr>, root: &Path, address: &Path, extra: &[&str]) -> Daemon {
        let _ = fs::remove_file(address);
        let mut child = Self::spawn(bin, root, address, extra);
        wait_listening(&mut child, address, Duration::from_secs(10));
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

/// Waits until the snapshotter `child` accepts connections at `address`; panics if it exits
/// first or `timeout` passes.
pub fn wait_listening(child: &mut Child, address: &Path, timeout: Duration) {
    wait_until("the snapshotter socket", timeout, || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("polis-snapshotter exited early: {st}");
        }
        // the socket file appears at bind(), a moment before listen(): until then a
        // connect is refused
        std::os::unix::net::UnixStream::connect(address).is_ok()
    });
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

/// Our harness around containerd's snapshotter conformance suite
/// (`image-snapshotter/conformance/polis_suite_test.go`).
pub fn suite_src() -> PathBuf {
    crate::workspace_root().join("image-snapshotter/conformance")
}

/// Newest modification time of the harness's Go sources.
fn suite_sources_mtime() -> std::time::SystemTime {
    let src = suite_src();
    fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("read {}: {e}", src.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "go"))
        .map(|p| fs::metadata(&p).unwrap().modified().unwrap())
        .max()
        .unwrap_or_else(|| panic!("no .go file in {}", src.display()))
}

/// The harness's test binary, `<target>/polis-snapsuite/polis-snapsuite.test`, built (offline,
/// GOPATH mode, against Debian's golang-github-containerd-containerd-dev) when missing or older
/// than its sources. Concurrent test processes are serialised by a flock on `build.lock` in that
/// directory; the Go build cache and temp files stay in there too.
pub fn suite_harness() -> PathBuf {
    use std::os::fd::AsRawFd;
    let go = require_tool("go");
    let dir = crate::target_dir().join("polis-snapsuite");
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
        Command::new(&go)
            .args(["test", "-c", "-o"])
            .arg(&new)
            .arg(".")
            .current_dir(suite_src())
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
