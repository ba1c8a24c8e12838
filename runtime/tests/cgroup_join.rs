//! The container's init must end up in every cgroup of its cgroupsPath with the limits of its
//! spec, however the runtime moves it there (our vendored libcgroups moves a single-threaded
//! intermediate through `tasks`, not `cgroup.procs`). Runs as root against the real kernel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use polis_integration::leaks::existing_cgroup_dirs;
use polis_integration::runtime::{run_at, stderr, write_busybox_bundle};
use polis_integration::TestDir;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polis-runc");

/// One container in its own temp dir, under its own top-level cgroup; removes both on drop.
struct Fixture {
    dir: TestDir,
    id: String,
    cgroup_top: String,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let dir = TestDir::new("rt-cgjoin");
        let id = format!("polis-rt-cgjoin-{tag}-{}", std::process::id());
        let cgroup_top = id.clone();
        Self {
            dir,
            id,
            cgroup_top,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cgroups_path(&self) -> String {
        format!("/{}/c", self.cgroup_top)
    }

    fn write_bundle(&self, pids_limit: i64) -> PathBuf {
        let bundle = self.dir.path().join("bundle");
        write_busybox_bundle(BIN, &self.root(), &bundle, &["sleep"], |spec| {
            spec["process"]["args"] = json!(["/bin/sleep", "1000"]);
            spec["linux"]["cgroupsPath"] = json!(self.cgroups_path());
            spec["linux"]["resources"]["pids"] = json!({ "limit": pids_limit });
        });
        bundle
    }

    fn polis(&self, args: &[&str]) -> Output {
        run_at(BIN, &self.root(), args)
    }

    /// For `create`: the init inherits our stdio and outlives the command, so pipes would
    /// never reach EOF; stderr goes to a file instead.
    fn polis_create(&self, bundle: &Path) {
        let log = self.dir.path().join("create.err");
        let status = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(["create", "--bundle", bundle.to_str().unwrap(), &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .status()
            .expect("run polis-runc create");
        let err = fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "create {}: {err}", self.id);
    }

    /// Our cgroup dirs that still exist, in every mounted hierarchy.
    fn leftover_cgroups(&self) -> Vec<PathBuf> {
        existing_cgroup_dirs(&self.cgroup_top)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.polis(&["delete", "--force", &self.id]);
        for p in self.leftover_cgroups() {
            let _ = fs::remove_dir(p.join("c"));
            let _ = fs::remove_dir(&p);
        }
    }
}

/// The controllers polis-runc manages on a v1 host (libcgroups' list), as named in
/// /proc/<pid>/cgroup, that this kernel has mounted.
fn mounted_v1_controllers() -> Vec<String> {
    let wanted = [
        "cpu", "cpuacct", "cpuset", "devices", "memory", "pids", "blkio", "freezer",
    ];
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    wanted
        .iter()
        .filter(|c| {
            mounts.lines().any(|l| {
                l.contains(" - cgroup ")
                    && l.rsplit(' ').next().unwrap().split(',').any(|o| o == **c)
            })
        })
        .map(|c| c.to_string())
        .collect()
}

#[test]
fn init_joins_every_cgroup_of_its_path_with_its_limits() {
    let f = Fixture::new("join");
    let bundle = f.write_bundle(37);
    f.polis_create(&bundle);
    let state: Value = serde_json::from_slice(&f.polis(&["state", &f.id]).stdout).unwrap();
    let pid = state["pid"].as_i64().expect("state has a pid");

    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = f.cgroups_path();
    let v1 = mounted_v1_controllers();
    if v1.is_empty() {
        // Unified host: one cgroup2 line.
        assert!(
            membership.lines().any(|l| l == format!("0::{want}")),
            "init {pid} not in {want}: {membership}"
        );
        let max = fs::read_to_string(format!("/sys/fs/cgroup{want}/pids.max")).unwrap();
        assert_eq!(max.trim(), "37");
    } else {
        for c in &v1 {
            let line = membership
                .lines()
                .find(|l| l.split(':').nth(1).unwrap().split(',').any(|x| x == c))
                .unwrap_or_else(|| panic!("no {c} line in {membership}"));
            assert!(
                line.ends_with(&format!(":{want}")),
                "{c}: {line} (want {want})"
            );
        }
        // The whole process moved, not only a thread: cgroup.procs lists it.
        let procs = fs::read_to_string(format!("/sys/fs/cgroup/pids{want}/cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string(), "pids cgroup.procs");
        let max = fs::read_to_string(format!("/sys/fs/cgroup/pids{want}/pids.max")).unwrap();
        assert_eq!(max.trim(), "37", "pids.max");
    }

    let out = f.polis(&["delete", "--force", &f.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    // Our parent dir is ours to remove; the container's own cgroup must already be gone.
    for p in f.leftover_cgroups() {
        assert!(
            !p.join("c").exists(),
            "{} left behind",
            p.join("c").display()
        );
        fs::remove_dir(&p).unwrap();
    }
    assert!(f.leftover_cgroups().is_empty());
    assert!(!f.root().join(&f.id).exists(), "state dir left behind");
}
