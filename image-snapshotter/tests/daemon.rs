//! The daemon as a process: the root lock, the socket's permissions, SIGKILL in the middle of
//! Commit and Remove loops, and that nothing is left behind once everything is removed.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::tonic::transport::Channel;
use polis_integration::snapshotter::*;
use polis_integration::{mounts_under, run_ok, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

#[test]
fn a_second_instance_on_the_same_root_refuses_to_start() {
    let dir = TestDir::new("snaptest-lock");
    let root = dir.join("root");
    let first = Daemon::start(BIN, &root, &dir.join("a.sock"), &[]);
    let out = std::process::Command::new(BIN)
        .arg("--root")
        .arg(&root)
        .arg("--address")
        .arg(dir.join("b.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "second instance started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains(&*root.to_string_lossy()),
        "{err}"
    );
    assert!(
        !dir.join("b.sock").exists(),
        "second instance bound its socket"
    );
    // the first one still serves
    runtime().block_on(async {
        let mut c = connect(&first.address).await;
        prepare(&mut c, "still-serving", "").await;
    });
}

#[test]
fn the_socket_is_0660_root_owned_and_gone_after_sigterm() {
    let dir = TestDir::new("snaptest-sock");
    let mut d = Daemon::start(BIN, &dir.join("root"), &dir.join("run/snap.sock"), &[]);
    let md = fs::metadata(&d.address).unwrap();
    assert_eq!(md.mode() & 0o777, 0o660, "mode {:o}", md.mode());
    assert_eq!((md.uid(), md.gid()), (0, 0));
    assert_eq!(fs::metadata(&d.root).unwrap().mode() & 0o777, 0o700);
    assert!(d.stop().success());
    assert!(!d.address.exists(), "socket left after SIGTERM");
}

fn upper_of(mounts: &[containerd_snapshots::api::types::Mount]) -> PathBuf {
    let m = &mounts[0];
    if m.r#type == "bind" {
        return PathBuf::from(&m.source);
    }
    let up = m
        .options
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .expect("upperdir option");
    PathBuf::from(up)
}

fn kill_after(pid: u32, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    })
}

/// Prepare on `parent`, fill the upper dir with files (so Commit has real work), commit; with
/// `kill`, SIGKILL the daemon that long after sending the Commit.
async fn layer(
    c: &mut SnapshotsClient<Channel>,
    i: usize,
    parent: &str,
    kill: Option<(u32, Duration)>,
) -> Result<(), String> {
    let key = format!("active-{i}");
    let resp = c
        .prepare(PrepareSnapshotRequest {
            snapshotter: String::new(),
            key: key.clone(),
            parent: parent.into(),
            labels: HashMap::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let upper = upper_of(&resp.into_inner().mounts);
    fs::write(upper.join(format!("layer-{i}")), i.to_string()).map_err(|e| e.to_string())?;
    for f in 0..300 {
        fs::write(upper.join(format!("filler-{f}")), "x".repeat(f)).map_err(|e| e.to_string())?;
    }
    let killer = kill.map(|(pid, delay)| kill_after(pid, delay));
    let res = c
        .commit(CommitSnapshotRequest {
            snapshotter: String::new(),
            name: format!("layer-{i}"),
            key,
            labels: HashMap::new(),
        })
        .await;
    if let Some(k) = killer {
        k.join().unwrap();
    }
    res.map(|_| ()).map_err(|e| e.to_string())
}

/// The store and the directories agree: parents exist and are committed, every active
/// snapshot's directory exists, and after Cleanup there is exactly one directory a snapshot.
async fn check_consistent(c: &mut SnapshotsClient<Channel>, root: &Path) -> Vec<Info> {
    let infos = list(c).await;
    let by_name: HashMap<_, _> = infos.iter().map(|i| (i.name.clone(), i)).collect();
    for i in &infos {
        if !i.parent.is_empty() {
            let p = by_name
                .get(&i.parent)
                .unwrap_or_else(|| panic!("{} has a missing parent {}", i.name, i.parent));
            assert_eq!(
                p.kind, 3,
                "parent {} of {} is not committed",
                p.name, i.name
            );
        }
        if i.kind == 2 {
            let m = c
                .mounts(MountsRequest {
                    snapshotter: String::new(),
                    key: i.name.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(upper_of(&m.mounts).is_dir(), "dir of {} is gone", i.name);
        }
        c.usage(UsageRequest {
            snapshotter: String::new(),
            key: i.name.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("usage of {}: {e}", i.name));
    }
    cleanup(c).await;
    let dirs = snapshot_dirs(root);
    assert_eq!(
        dirs.len(),
        infos.len(),
        "dirs {dirs:?} vs snapshots {infos:?}"
    );
    assert!(dirs.iter().all(|d| d.parse::<u64>().is_ok()), "{dirs:?}");
    infos
}

/// Mounts a view of `name` and checks that it shows every layer's own file.
async fn check_view(c: &mut SnapshotsClient<Channel>, dir: &TestDir, name: &str, layers: usize) {
    let key = format!("view-of-{name}");
    let m = c
        .view(ViewSnapshotRequest {
            snapshotter: String::new(),
            key: key.clone(),
            parent: name.into(),
            labels: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .mounts;
    let target = dir.join("view");
    fs::create_dir_all(&target).unwrap();
    let mut cmd = std::process::Command::new("mount");
    cmd.args([
        "-t",
        &m[0].r#type,
        "-o",
        &m[0].options.join(","),
        &m[0].source,
    ])
    .arg(&target);
    run_ok(&mut cmd);
    let missing: Vec<usize> = (0..layers)
        .filter(|i| {
            fs::read_to_string(target.join(format!("layer-{i}"))).ok() != Some(i.to_string())
        })
        .collect();
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(
        missing.is_empty(),
        "view of {name} lacks layers {missing:?}"
    );
    remove(c, &key).await;
}

#[test]
fn sigkill_in_commit_and_remove_loops_leaves_a_consistent_store() {
    let dir = TestDir::new("snaptest-crash");
    let root = dir.join("root");
    let sock = dir.join("snap.sock");
    let rt = runtime();
    // Kill at several moments of a Commit, each time after two good layers.
    for (round, delay_us) in [0u64, 300, 700, 1500, 3000, 6000, 12000]
        .into_iter()
        .enumerate()
    {
        let d = Daemon::start(BIN, &root, &sock, &[]);
        let pid = d.child.id();
        let (got, interrupted) = rt.block_on(async {
            let mut c = connect(&sock).await;
            let infos = check_consistent(&mut c, &root).await;
            // an active key the kill left over is removed before going on
            for i in infos.iter().filter(|i| i.kind == 2) {
                remove(&mut c, &i.name).await;
            }
            let mut top = infos.iter().filter(|i| i.kind == 3).count();
            if top > 0 {
                check_view(&mut c, &dir, &format!("layer-{}", top - 1), top).await;
            }
            for n in 0..3 {
                let parent = if top == 0 {
                    String::new()
                } else {
                    format!("layer-{}", top - 1)
                };
                let kill = (n == 2).then_some((pid, Duration::from_micros(delay_us)));
                if layer(&mut c, top, &parent, kill).await.is_err() {
                    return (top, true);
                }
                top += 1;
            }
            (top, false)
        });
        drop(d);
        eprintln!("round {round}: kill {delay_us} us into a Commit; {got} layers, commit interrupted: {interrupted}");
    }
    // Now kill in the middle of Removes of the chain, top down.
    for delay_us in [0u64, 500, 2000] {
        let d = Daemon::start(BIN, &root, &sock, &[]);
        let pid = d.child.id();
        rt.block_on(async {
            let mut c = connect(&sock).await;
            let infos = check_consistent(&mut c, &root).await;
            for i in infos.iter().filter(|i| i.kind == 2) {
                remove(&mut c, &i.name).await;
            }
            let n = infos.iter().filter(|i| i.kind == 3).count();
            assert!(n >= 2, "the commit rounds left {n} layers");
            remove(&mut c, &format!("layer-{}", n - 1)).await;
            let killer = kill_after(pid, Duration::from_micros(delay_us));
            let res = c
                .remove(RemoveSnapshotRequest {
                    snapshotter: String::new(),
                    key: format!("layer-{}", n - 2),
                })
                .await;
            killer.join().unwrap();
            eprintln!(
                "remove of layer-{} killed after {delay_us} us: {:?}",
                n - 2,
                res.map(|_| ())
            );
        });
        drop(d);
    }
    // Restart, check, remove everything: nothing may remain under the root.
    let _d = Daemon::start(BIN, &root, &sock, &[]);
    rt.block_on(async {
        let mut c = connect(&sock).await;
        let infos = check_consistent(&mut c, &root).await;
        let top = infos.iter().filter(|i| i.kind == 3).count();
        if top > 0 {
            check_view(&mut c, &dir, &format!("layer-{}", top - 1), top).await;
        }
        let mut names: Vec<_> = infos.iter().map(|i| i.name.clone()).collect();
        names.sort_by_key(|n| {
            std::cmp::Reverse(
                n.trim_start_matches("layer-")
                    .parse::<usize>()
                    .unwrap_or(usize::MAX),
            )
        });
        for n in names {
            remove(&mut c, &n).await;
        }
        assert!(list(&mut c).await.is_empty());
        cleanup(&mut c).await;
    });
    assert!(
        snapshot_dirs(&root).is_empty(),
        "{:?}",
        snapshot_dirs(&root)
    );
    assert!(mounts_under(&dir.path).is_empty(), "mounts left");
    let left: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        ["lock", "metadata.db", "snapshots", "staging"],
        "root holds more than state"
    );
    // staging holds only empty directories made ahead for new snapshots
    for e in fs::read_dir(root.join("staging")).unwrap() {
        let e = e.unwrap().path();
        let mut inner: Vec<_> = fs::read_dir(&e)
            .unwrap()
            .map(|i| i.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        inner.sort();
        assert!(
            inner == ["fs", "work"] || inner == ["fs"],
            "{e:?}: {inner:?}"
        );
        assert_eq!(fs::read_dir(e.join("fs")).unwrap().count(), 0, "{e:?}");
    }
}

#[test]
fn a_restart_sweeps_what_a_killed_flattening_left() {
    let dir = TestDir::new("snaptest-recover");
    let root = dir.join("root");
    let sock = dir.join("snap.sock");
    let mut d = Daemon::start(BIN, &root, &sock, &[]);
    runtime().block_on(async {
        let mut c = connect(&sock).await;
        prepare(&mut c, "a", "").await;
        commit(&mut c, "base", "a").await;
    });
    d.kill9();
    // what a SIGKILL in the middle of flattening leaves: a mounted scratch dir, a staging dir
    let scratch = root.join("flatten-4242-1");
    fs::create_dir(&scratch).unwrap();
    run_ok(std::process::Command::new("mount").args([
        "-t",
        "tmpfs",
        "polis-test",
        &scratch.to_string_lossy(),
    ]));
    let staging = root.join("snapshots/1/flat.tmp-4242-1");
    fs::create_dir_all(staging.join("deep")).unwrap();
    let _d = Daemon::start(BIN, &root, &sock, &[]);
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    assert!(!scratch.exists() && !staging.exists());
    assert!(
        root.join("snapshots/1/fs").is_dir(),
        "the snapshot's own data stays"
    );
}
