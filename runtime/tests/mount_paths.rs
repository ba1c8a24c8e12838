//! How the rootfs mounts land, through the vendored libcontainer/pathrs fast paths: mount
//! destinations are resolved inside the rootfs even through symlinks that point out of it
//! (CVE-2024-21626 / CVE-2019-16884 class), missing destinations are created, and on a cgroup
//! v1 host /sys/fs/cgroup holds the container's own cgroup of each subsystem, read-only.
//! Runs as root against the real kernel.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use polis_integration::leaks::existing_cgroup_dirs;
use polis_integration::runtime::{run_at, stderr, write_busybox_bundle};
use polis_integration::TestDir;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polis-runc");

/// One bundle and state root in a temp dir, a host dir that the container must never reach,
/// and a top-level cgroup; all removed on drop.
struct Fixture {
    dir: TestDir,
    outside: tempfile::TempDir,
    id: String,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let dir = TestDir::new("rt-mounts");
        let outside = tempfile::Builder::new()
            .prefix("polis-rt-mounts-outside.")
            .tempdir()
            .expect("temp dir");
        let id = format!("polis-rt-mounts-{tag}-{}", std::process::id());
        Self { dir, outside, id }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    fn cgroups_path(&self) -> String {
        format!("/{}/c", self.id)
    }

    /// A busybox bundle running `sh -c script`, with `edit` applied to the runc-style spec.
    fn write_bundle(&self, script: &str, edit: impl FnOnce(&mut Value)) {
        let root = self.dir.path().join("root");
        write_busybox_bundle(BIN, &root, &self.bundle(), &["sh"], |spec| {
            spec["process"]["args"] = json!(["/bin/sh", "-c", script]);
            spec["process"]["env"] = json!(["PATH=/bin"]);
            spec["linux"]["cgroupsPath"] = json!(self.cgroups_path());
            edit(spec);
        });
    }

    fn polis(&self, args: &[&str]) -> Output {
        run_at(BIN, &self.dir.path().join("root"), args)
    }

    /// `run` in the foreground; returns the container's stdout.
    fn run(&self) -> String {
        let out = self.polis(&["run", "--bundle", self.bundle().to_str().unwrap(), &self.id]);
        assert!(
            out.status.success(),
            "run {}: exit {:?}, stdout {:?}, stderr {:?}",
            self.id,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Host mounts whose mount point is under one of our temp dirs.
    fn our_host_mounts(&self) -> Vec<String> {
        let ours = [self.dir.path(), self.outside.path()];
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| ours.iter().any(|o| Path::new(m).starts_with(o)))
            .map(str::to_owned)
            .collect()
    }

    fn our_cgroups(&self) -> Vec<PathBuf> {
        existing_cgroup_dirs(&self.id)
    }

    /// After a run: nothing of ours is left mounted on the host, and our cgroup parent is the
    /// only cgroup trace (the container's own is gone); removes that parent.
    fn assert_clean(&self) {
        assert_eq!(
            self.our_host_mounts(),
            Vec::<String>::new(),
            "host mounts left"
        );
        for p in self.our_cgroups() {
            assert!(
                !p.join("c").exists(),
                "{} left behind",
                p.join("c").display()
            );
            fs::remove_dir(&p).unwrap();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.polis(&["delete", "--force", &self.id]);
        for p in self.our_cgroups() {
            let _ = fs::remove_dir(p.join("c"));
            let _ = fs::remove_dir(&p);
        }
    }
}

fn is_unified_host() -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    !mounts.lines().any(|l| l.contains(" - cgroup "))
}

#[test]
fn mount_destinations_through_symlinks_stay_in_the_rootfs() {
    let f = Fixture::new("symlink");
    let outside = f.outside.path().to_path_buf();
    let host_file = f.dir.path().join("probe.txt");
    fs::write(&host_file, "polis-probe\n").unwrap();
    let out_str = outside.to_str().unwrap().to_owned();
    let script = format!(
        "grep -q ' {out_str}/tmpfs ' /proc/self/mountinfo && echo abs-inside; \
         grep -q ' {out_str}/bind ' /proc/self/mountinfo && echo rel-inside; \
         cat /deep/new/dirs/probe.txt"
    );
    f.write_bundle(&script, |spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts
            .push(json!({"destination": "/escape-abs/tmpfs", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({"destination": "/escape-rel/bind", "type": "bind",
            "source": f.rootfs().join("bin"), "options": ["rbind", "ro"]}));
        mounts.push(
            json!({"destination": "/deep/new/dirs/probe.txt", "type": "bind",
            "source": host_file, "options": ["bind", "ro"]}),
        );
    });
    // Both links name the host dir: one absolute, one climbing out with "..". Inside the
    // rootfs they resolve to <rootfs><outside>, which exists (no dangling link), so that is
    // where the mounts must go.
    symlink(&outside, f.rootfs().join("escape-abs")).unwrap();
    let climb = format!("../../../../../../../../..{}", outside.display());
    symlink(&climb, f.rootfs().join("escape-rel")).unwrap();
    fs::create_dir_all(f.rootfs().join(outside.strip_prefix("/").unwrap())).unwrap();

    let stdout = f.run();
    assert!(
        stdout.contains("abs-inside"),
        "tmpfs not at the in-rootfs path: {stdout:?}"
    );
    assert!(
        stdout.contains("rel-inside"),
        "bind not at the in-rootfs path: {stdout:?}"
    );
    assert!(
        stdout.contains("polis-probe"),
        "file bind into new dirs: {stdout:?}"
    );
    let host_entries: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(
        host_entries.is_empty(),
        "the container wrote to the host dir: {host_entries:?}"
    );
    f.assert_clean();
}

/// With a cgroup namespace each v1 subsystem is a new mount; without, a bind from the host.
#[test]
fn cgroup_mount_shows_the_containers_own_cgroups_read_only_with_cgroupns() {
    check_cgroup_mount("cgns", true);
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroups_read_only_without_cgroupns() {
    check_cgroup_mount("nocgns", false);
}

fn check_cgroup_mount(tag: &str, cgroup_ns: bool) {
    let f = Fixture::new(tag);
    let script = "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
                  (echo 40 > /sys/fs/cgroup/pids/pids.max) 2>/dev/null || echo bind-ro; \
                  mkdir /sys/fs/cgroup/polis-x 2>/dev/null || echo tmpfs-ro; \
                  ls /sys/fs/cgroup";
    f.write_bundle(script, |spec| {
        spec["linux"]["resources"]["pids"] = json!({ "limit": 41 });
        let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "cgroup");
        if cgroup_ns {
            namespaces.push(json!({ "type": "cgroup" }));
        }
    });
    let stdout = f.run();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&"tmpfs-ro") || is_unified_host(),
        "{stdout:?}"
    );
    if is_unified_host() {
        // cgroup2: one mount of the container's cgroup (limits cannot be enabled on every host).
        assert!(lines.contains(&"cgroup.procs"), "{stdout:?}");
        f.assert_clean();
        return;
    }
    assert_eq!(
        lines.first(),
        Some(&"41"),
        "pids.max of the container's cgroup: {stdout:?}"
    );
    assert!(
        lines.contains(&"bind-ro"),
        "pids bind is writable: {stdout:?}"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mounts.lines().filter(|l| l.contains(" - cgroup ")) {
        let point = l.split(' ').nth(4).unwrap();
        let name = Path::new(point).file_name().unwrap().to_str().unwrap();
        if Path::new(point).parent() == Some(Path::new("/sys/fs/cgroup")) {
            assert!(
                lines.contains(&name),
                "{name} missing in the container: {stdout:?}"
            );
        }
    }
    f.assert_clean();
}
