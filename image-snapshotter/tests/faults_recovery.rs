//! Faults under load (issue 13): the daemon SIGKILLed in the middle of 100 concurrent
//! Prepare/Commit/Remove calls, then restarted: the metadata and the directories agree exactly,
//! and the time from the restart to the first answered List is measured (target < 1 s). And a
//! root on a small tmpfs that fills up: a clear error, metadata intact, working again once
//! space is freed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::tonic::transport::Channel;
use polis_integration::snapshotter::*;
use polis_integration::{mounts_under, run_ok, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

fn upper_of(mounts: &[containerd_snapshots::api::types::Mount]) -> PathBuf {
    let m = &mounts[0];
    if m.r#type == "bind" {
        return PathBuf::from(&m.source);
    }
    PathBuf::from(
        m.options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .expect("upperdir option"),
    )
}

/// One client's share of the load: Prepare on `parent`, a file in the new snapshot, then
/// Commit (i % 3 == 0), Remove (i % 3 == 1) or nothing (stays active).
async fn op(mut c: SnapshotsClient<Channel>, round: usize, i: usize, parent: String) -> bool {
    let key = format!("r{round}-k{i}");
    let Ok(resp) = c
        .prepare(PrepareSnapshotRequest {
            snapshotter: String::new(),
            key: key.clone(),
            parent,
            labels: HashMap::new(),
        })
        .await
    else {
        return false;
    };
    let upper = upper_of(&resp.into_inner().mounts);
    if fs::write(upper.join("data"), key.as_bytes()).is_err() {
        return false;
    }
    match i % 3 {
        0 => c
            .commit(CommitSnapshotRequest {
                snapshotter: String::new(),
                name: format!("r{round}-c{i}"),
                key,
                labels: HashMap::new(),
            })
            .await
            .is_ok(),
        1 => c
            .remove(RemoveSnapshotRequest {
                snapshotter: String::new(),
                key,
            })
            .await
            .is_ok(),
        _ => true,
    }
}

/// The store and the directories agree exactly: every parent exists and is committed, every
/// active snapshot's directory exists, every committed one answers Usage, and once Cleanup
/// has run there is one directory per snapshot, no more. Returns the snapshots and how many
/// orphan directories Cleanup removed.
async fn check_agree(c: &mut SnapshotsClient<Channel>, root: &Path) -> (Vec<Info>, usize) {
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
                .unwrap_or_else(|e| panic!("mounts of {}: {e}", i.name))
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
    let before = snapshot_dirs(root).len();
    cleanup(c).await;
    let dirs = snapshot_dirs(root);
    assert_eq!(
        dirs.len(),
        infos.len(),
        "dirs {dirs:?} vs snapshots {infos:?}"
    );
    (infos, before - dirs.len())
}

/// Starts the daemon and measures the time until it answers a List.
fn restart(root: &Path, sock: &Path) -> (Daemon, Duration) {
    let t0 = Instant::now();
    let d = Daemon::start(BIN, root, sock, &[]);
    runtime().block_on(async {
        let mut c = connect(sock).await;
        list(&mut c).await;
    });
    (d, t0.elapsed())
}

#[test]
fn sigkill_during_100_concurrent_calls_restarts_consistent_within_a_second() {
    let dir = TestDir::new("snaptest-fault-load");
    let root = dir.join("root");
    let sock = dir.join("snap.sock");
    let rt = runtime();
    let mut d = Daemon::start(BIN, &root, &sock, &[]);
    rt.block_on(async {
        let mut c = connect(&sock).await;
        prepare(&mut c, "base-key", "").await;
        commit(&mut c, "base", "base-key").await;
    });
    let mut worst = Duration::ZERO;
    for (round, delay_ms) in [1u64, 5, 15, 40, 100, 300, 800].into_iter().enumerate() {
        let pid = d.child.id();
        let ok = rt.block_on(async {
            let c = connect(&sock).await;
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            });
            let ops = (0..100).map(|i| {
                let parent = if i % 2 == 0 { "base" } else { "" };
                op(c.clone(), round, i, parent.to_string())
            });
            let done = futures::future::join_all(ops).await;
            killer.join().unwrap();
            done.into_iter().filter(|ok| *ok).count()
        });
        d.kill9();
        let (nd, took) = restart(&root, &sock);
        d = nd;
        worst = worst.max(took);
        let (infos, orphans) = rt.block_on(async {
            let mut c = connect(&sock).await;
            check_agree(&mut c, &root).await
        });
        eprintln!(
            "round {round}: SIGKILL {delay_ms} ms into 100 concurrent calls ({ok} completed): \
             restart to first List {:.1} ms; {} snapshots, {orphans} orphan dirs removed by Cleanup",
            took.as_secs_f64() * 1000.0,
            infos.len()
        );
        // What the round left (but the base) goes before the next one.
        rt.block_on(async {
            let mut c = connect(&sock).await;
            for i in infos.iter().filter(|i| i.name != "base") {
                remove(&mut c, &i.name).await;
            }
        });
    }
    eprintln!(
        "snapshotter recovery after SIGKILL under load: worst {:.1} ms",
        worst.as_secs_f64() * 1000.0
    );
    assert!(worst < Duration::from_secs(1), "recovery took {worst:?}");
    rt.block_on(async {
        let mut c = connect(&sock).await;
        remove(&mut c, "base").await;
        assert!(list(&mut c).await.is_empty());
        cleanup(&mut c).await;
    });
    assert!(
        snapshot_dirs(&root).is_empty(),
        "{:?}",
        snapshot_dirs(&root)
    );
    drop(d);
    assert!(mounts_under(&dir.path).is_empty(), "mounts left");
}

/// Fills the file system under `dir` with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_root_gives_a_clear_error_and_works_again_once_space_is_freed() {
    let dir = TestDir::new("snaptest-fault-full");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    run_ok(std::process::Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        "size=16m,mode=700",
        "polis-snaptest-full",
        &root.to_string_lossy(),
    ]));
    let sock = dir.join("snap.sock");
    let rt = runtime();
    let mut d = Daemon::start(BIN, &root, &sock, &[]);
    let filler = rt.block_on(async {
        let mut c = connect(&sock).await;
        prepare(&mut c, "base-key", "").await;
        commit(&mut c, "base", "base-key").await;
        prepare(&mut c, "work", "base").await;
        let m = c
            .mounts(MountsRequest {
                snapshotter: String::new(),
                key: "work".into(),
            })
            .await
            .unwrap()
            .into_inner();
        fill(&upper_of(&m.mounts))
    });
    // Full: calls that need space fail with a message that says so; the others still work.
    let errors = rt.block_on(async {
        let mut c = connect(&sock).await;
        let mut errors = Vec::new();
        for i in 0..20 {
            let r = c
                .prepare(PrepareSnapshotRequest {
                    snapshotter: String::new(),
                    key: format!("full-{i}"),
                    parent: "base".into(),
                    labels: HashMap::new(),
                })
                .await;
            if let Err(e) = r {
                errors.push(e);
            }
        }
        if let Err(e) = c
            .commit(CommitSnapshotRequest {
                snapshotter: String::new(),
                name: "work-done".into(),
                key: "work".into(),
                labels: HashMap::new(),
            })
            .await
        {
            errors.push(e);
        }
        let (infos, _) = check_agree(&mut c, &root).await;
        eprintln!("full root: {} snapshots listed", infos.len());
        errors
    });
    eprintln!(
        "full root: {} of 21 calls failed, e.g. {:?}: {}",
        errors.len(),
        errors.first().map(|e| e.code()),
        errors.first().map_or("", |e| e.message())
    );
    assert!(!errors.is_empty(), "no call failed on a full root");
    for e in &errors {
        assert!(
            e.message().contains("No space left on device"),
            "unclear error on a full root: {e:?}"
        );
        assert_eq!(
            e.code(),
            containerd_snapshots::tonic::Code::ResourceExhausted,
            "{e:?}"
        );
    }
    // Space back: everything works, and after a restart too.
    fs::remove_file(&filler).unwrap();
    let t0 = Instant::now();
    rt.block_on(async {
        let mut c = connect(&sock).await;
        let infos = list(&mut c).await;
        for i in infos.iter().filter(|i| i.name.starts_with("full-")) {
            remove(&mut c, &i.name).await;
        }
        prepare(&mut c, "again", "base").await;
        commit(&mut c, "again-done", "again").await;
    });
    eprintln!(
        "full root: working again {:.1} ms after the space was freed",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    d.kill9();
    let (nd, took) = restart(&root, &sock);
    d = nd;
    eprintln!(
        "full root: restart to first List {:.1} ms",
        took.as_secs_f64() * 1000.0
    );
    rt.block_on(async {
        let mut c = connect(&sock).await;
        let (infos, _) = check_agree(&mut c, &root).await;
        let names: Vec<_> = infos.iter().map(|i| i.name.clone()).collect();
        assert!(names.contains(&"again-done".to_string()), "{names:?}");
        // Children before their parent: "base" last.
        for n in names.iter().filter(|n| *n != "base") {
            remove(&mut c, n).await;
        }
        remove(&mut c, "base").await;
        assert!(list(&mut c).await.is_empty());
        cleanup(&mut c).await;
    });
    drop(d);
    let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
    assert!(mounts_under(&dir.path).is_empty(), "mounts left");
}
