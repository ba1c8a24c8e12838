//! Test fixtures and harness for the Polis end-to-end tests: OCI bundles and images built
//! offline from busybox-static, a runtime driver with leak checks, and small process helpers.

pub mod containerd;
pub mod cri;
pub mod fixtures;
pub mod leaks;
pub mod runtime;

use std::path::PathBuf;

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate has a parent")
        .to_path_buf()
}

/// A built Polis binary: `$POLIS_BIN_DIR/NAME`, else target/release, else target/debug.
/// Panics with a clear message when it is missing, since a test without it proves nothing.
pub fn polis_bin(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("POLIS_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
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

/// An external tool the tests need; panics with a clear message when it is missing.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed; run `scripts/install-deps.sh` (make test does)");
}

/// Whether /sys/fs/cgroup is a pure cgroup v2 host (the guest of `make test-v2`), where the
/// same tests read the unified files instead of v1's.
pub fn cgroup2_host() -> bool {
    polis_sys::cgroup::cgroup2_host()
}

/// A unique, readable name for what one test creates: `polis-<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "polis-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
