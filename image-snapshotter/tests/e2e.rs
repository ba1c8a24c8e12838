//! End to end through a real containerd and ctr: import (unpack) a busybox image with
//! `--snapshotter polis`, run containers that write to their rootfs, share the image's layers,
//! inspect and remove snapshots with `ctr snapshots`, and leave nothing behind.

use std::time::Duration;

use polis_integration::containerd::Containerd;
use polis_integration::fixtures::{busybox_image_archive, busybox_rootfs_inodes};
use polis_integration::snapshotter::*;
use polis_integration::{require_tool, wait_until, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

const IMAGE: &str = "docker.io/library/busybox:latest";

#[test]
fn ctr_import_run_share_and_remove_with_polis() {
    require_tool("containerd");
    require_tool("ctr");
    require_tool("runc");
    let dir = TestDir::new("snaptest-e2e");
    let archive = dir.join("busybox.tar");
    busybox_image_archive(&archive).expect("busybox image archive");
    let snap = Daemon::start(BIN, &dir.join("snap-root"), &dir.join("snap.sock"), &[]);
    let ctrd = Containerd::with_snapshotter("polis", &snap.address);
    let tar = archive.display().to_string();

    let out = ctrd.ctr_ok(&[
        "images",
        "import",
        "--snapshotter",
        "polis",
        "--base-name",
        "docker.io/library/busybox",
        &tar,
    ]);
    assert!(out.contains("busybox"), "{out}");

    // A container writes to its rootfs and reads it back; the image's files are there.
    let out = ctrd.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "polis",
        IMAGE,
        "polis-e2e-run",
        "sh",
        "-c",
        "echo written-by-polis > /written && cat /written && ls /bin/busybox",
    ]);
    assert!(out.contains("written-by-polis"), "{out}");
    assert!(out.contains("/bin/busybox"), "{out}");

    // Two containers share the image's committed layer as their parent.
    for c in ["polis-e2e-a", "polis-e2e-b"] {
        ctrd.ctr_ok(&["containers", "create", "--snapshotter", "polis", IMAGE, c]);
    }
    let ls = ctrd.ctr_ok(&["snapshots", "--snapshotter", "polis", "ls"]);
    let row = |key: &str| -> Vec<String> {
        ls.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no snapshot {key} in\n{ls}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (row("polis-e2e-a"), row("polis-e2e-b"));
    assert_eq!(a[2], "Active", "{ls}");
    assert_eq!(a[1], b[1], "containers do not share the image layer\n{ls}");
    let parent = a[1].clone();
    // KEY PARENT KIND, and the base layer has no parent
    assert_eq!(row(&parent).last().unwrap(), "Committed", "{ls}");
    assert_eq!(
        ls.lines().count(),
        4,
        "header, image layer, two containers:\n{ls}"
    );

    let usage = ctrd.ctr_ok(&["snapshots", "--snapshotter", "polis", "usage", &parent]);
    assert!(usage.contains(&parent), "{usage}");
    // KEY SIZE INODES: the layer holds exactly the fixture's rootfs
    let fields: Vec<&str> = usage.lines().nth(1).unwrap().split_whitespace().collect();
    let inodes: usize = fields.last().unwrap().parse().unwrap();
    assert_eq!(
        inodes,
        busybox_rootfs_inodes().expect("busybox rootfs"),
        "{usage}"
    );
    let busybox = std::fs::metadata("/bin/busybox").unwrap().len() as f64;
    let size: f64 = fields[1].parse().unwrap();
    let bytes = match fields[2] {
        "MiB" => size * 1048576.0,
        "KiB" => size * 1024.0,
        unit => panic!("unexpected unit {unit}: {usage}"),
    };
    assert!(
        bytes >= busybox * 0.95,
        "usage {bytes} below busybox's {busybox}: {usage}"
    );

    // The shared parent cannot go while its children exist.
    let mut rm = ctrd.ctr_cmd(&["snapshots", "--snapshotter", "polis", "rm", &parent]);
    let out = rm.output().unwrap();
    assert!(
        !out.status.success(),
        "removing a parent with children succeeded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("precondition"), "{err}");

    ctrd.ctr_ok(&["snapshots", "--snapshotter", "polis", "rm", "polis-e2e-b"]);
    ctrd.ctr_ok(&["containers", "rm", "polis-e2e-a", "polis-e2e-b"]);
    ctrd.ctr_ok(&["images", "rm", "--sync", IMAGE]);

    // containerd's GC removes the image's snapshots through the proxy and calls Cleanup.
    wait_until(
        "GC to remove the image snapshots",
        Duration::from_secs(30),
        || {
            ctrd.ctr_ok(&["snapshots", "--snapshotter", "polis", "ls"])
                .lines()
                .count()
                <= 1
        },
    );
    drop(ctrd);
    runtime().block_on(async {
        let mut c = connect(&snap.address).await;
        assert!(list(&mut c).await.is_empty());
        cleanup(&mut c).await;
    });
    assert_nothing_left(&snap.root, &dir);
}
