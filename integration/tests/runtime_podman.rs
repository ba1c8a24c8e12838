//! podman drives polis-runc with `--runtime`, as it drives runc: the drop-in promise for podman.
//! podman keeps its storage and run state in the test's temp dir and runs the fixture's rootfs
//! directly (`--rootfs`), with no network and rlimits within this machine's hard limits (there is
//! no CAP_SYS_RESOURCE here, so podman's default RLIMIT_NOFILE/NPROC raise fails with runc too).

use std::process::Command;

use polis_integration::runtime::{run_captured, stderr, stdout};

/// Runs `podman run --rm [extra] --rootfs <busybox> /bin/sh -c script` with polis-runc, in a
/// temp dir of its own; asserts podman and polis-runc left no mounts and no state outside it.
fn podman_run(extra: &[&str], script: &str) -> std::process::Output {
    let podman = polis_integration::require_tool("podman");
    let bin = polis_integration::polis_bin("polis-runc");
    let dir = tempfile::Builder::new()
        .prefix("polis-podman-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    polis_integration::fixtures::busybox_rootfs(&rootfs).unwrap();
    let d = dir.path().display();
    let default_root = std::path::Path::new(polis_runc_default_root());
    let had_default_root = default_root.exists();
    let libpod = std::path::Path::new("/run/libpod");
    let had_libpod = libpod.exists();
    let runtime_root = format!("root={d}/runtime");
    let mut args = vec![
        "--root".to_string(),
        format!("{d}/storage"),
        "--runroot".into(),
        format!("{d}/run"),
        // podman's own scratch state (alive lock, exits, events) defaults to /run/libpod
        "--tmpdir".into(),
        format!("{d}/tmp"),
        "--cgroup-manager".into(),
        "cgroupfs".into(),
        "--events-backend".into(),
        "file".into(),
        "--runtime".into(),
        bin.to_str().unwrap().into(),
        // podman passes no --root of its own: the runtime's state goes where the test says
        "--runtime-flag".into(),
        runtime_root,
        "run".into(),
        "--rm".into(),
        "--network".into(),
        "none".into(),
        "--ulimit".into(),
        "nofile=1024:1024".into(),
        "--ulimit".into(),
        "nproc=1024:1024".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--rootfs".into(),
        rootfs.to_str().unwrap().into(),
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
    ]);
    let o = run_captured(Command::new(podman).args(&args));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(d.to_string().as_str()))
        .collect();
    assert!(ours.is_empty(), "podman left mounts: {ours:#?}");
    assert!(
        had_libpod || !libpod.exists(),
        "podman left {}",
        libpod.display()
    );
    assert!(
        had_default_root || !default_root.exists(),
        "{} was left behind",
        default_root.display()
    );
    o
}

fn polis_runc_default_root() -> &'static str {
    "/run/polis-runc"
}

#[test]
fn podman_runs_a_container_with_polis_runc() {
    let o = podman_run(&[], "echo podman-on-polis; exit 6");
    assert_eq!(o.status.code(), Some(6), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "podman-on-polis\n", "{}", stderr(&o));
}

/// `--read-only` gives /run, /tmp and /var/tmp as tmpfs with `tmpcopyup`, `--tmpfs` another:
/// all writable over a read-only root (they failed with EINVAL before tmpcopyup worked).
#[test]
fn podman_read_only_and_tmpfs_work_with_polis_runc() {
    let o = podman_run(
        &["--read-only", "--tmpfs", "/data:rw,size=1m"],
        "touch /tmp/a /run/b /var/tmp/c /data/d && echo writable; touch /etc/x 2>/dev/null || echo ro-root",
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "writable\nro-root\n", "{}", stderr(&o));
}
