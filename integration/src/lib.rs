//! The one test harness of the Polis workspace, used by the end-to-end tests here and by the
//! tests of polis-runc, polis-bridge and polis-snapshotter: OCI bundles and images built
//! offline from busybox-static, a runtime driver with leak checks, private containerds, CNI
//! network namespaces, the snapshotter daemon and its conformance suite, and small process
//! helpers.

pub mod cni;
pub mod containerd;
pub mod cri;
pub mod fixtures;
pub mod leaks;
pub mod runtime;
pub mod snapshotter;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate has a parent")
        .to_path_buf()
}

/// The target directory: `CARGO_TARGET_DIR` if set, else `<workspace root>/target`. A relative
/// one is taken from the workspace root, where cargo is run from, not from the test's working
/// directory (its package's).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join("target"),
    }
}

/// A built Polis binary: `$POLIS_BIN_DIR/NAME`, else target/release, else target/debug.
/// Panics with a clear message when it is missing, since a test without it proves nothing.
pub fn polis_bin(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("POLIS_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    let target = target_dir();
    dirs.push(target.join("release"));
    dirs.push(target.join("debug"));
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not built (looked in {dirs:?}); run `make build` or `cargo build -p ...` first"
    );
}

/// An external tool the tests need; panics with a clear message when it is missing. The usual
/// system directories come first, so that the reference runtimes compared against are the
/// installed ones whatever PATH says; then PATH, for tools installed elsewhere (go).
pub fn require_tool(name: &str) -> PathBuf {
    let system = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .map(PathBuf::from);
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for dir in system.iter().chain(path.iter()) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "this test needs `{name}`, which is not installed; run `scripts/install-deps.sh` \
         (make test does; the packages are in scripts/apt-packages.txt)"
    );
}

/// Whether /sys/fs/cgroup is a pure cgroup v2 host (the guest of `make test-v2`), where the
/// same tests read the unified files instead of v1's.
pub fn cgroup2_host() -> bool {
    polis_sys::cgroup::cgroup2_host()
}

/// The next number of this test process, for names that must not collide.
fn next_seq() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A unique, readable name for what one test creates: `polis-<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    format!("polis-{tag}-{}-{}", std::process::id(), next_seq())
}

/// A unique name short enough for a network interface (15 bytes with a prefix of up to 3):
/// `<prefix><pid>x<n>`.
pub fn unique_short(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id(), next_seq())
}

/// Polls `f` every 20 ms until it holds, or panics naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to its exit with captured output; panics naming it if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"))
}

/// `run`, asserting success.
pub fn run_ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut found: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}

/// A directory `/tmp/polis-<tag>-<pid>-<n>` of one test; on drop, unmounts what is left under
/// it (a failed test's) and removes it. /tmp rather than TMPDIR: the snapshotter's overlayfs
/// needs a file system that can hold an upper dir, which /tmp is here.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let path = Path::new("/tmp").join(unique_name(tag));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        for m in mounts_under(&self.path) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
