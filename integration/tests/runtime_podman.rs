//! podman drives polis-runc with `--runtime`, as it drives runc: the drop-in promise for podman.
//! podman keeps its storage and run state in the test's temp dir and runs the fixture's rootfs
//! directly (`--rootfs`), with no network and rlimits within this machine's hard limits (there is
//! no CAP_SYS_RESOURCE here, so podman's default RLIMIT_NOFILE/NPROC raise fails with runc too).

use std::process::Command;

use polis_integration::runtime::{run_captured, stderr, stdout};

#[test]
fn podman_runs_a_container_with_polis_runc() {
    let podman = polis_integration::require_tool("podman");
    let bin = polis_integration::polis_bin("polis-runc");
    let dir = tempfile::Builder::new()
        .prefix("polis-podman-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    polis_integration::fixtures::busybox_rootfs(&rootfs).unwrap();
    let d = dir.path().display();
    let o = run_captured(Command::new(podman).args([
        "--root",
        &format!("{d}/storage"),
        "--runroot",
        &format!("{d}/run"),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--runtime",
        bin.to_str().unwrap(),
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "echo podman-on-polis; exit 6",
    ]));
    assert_eq!(o.status.code(), Some(6), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "podman-on-polis\n", "{}", stderr(&o));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(d.to_string().as_str()))
        .collect();
    assert!(ours.is_empty(), "podman left mounts: {ours:#?}");
}
