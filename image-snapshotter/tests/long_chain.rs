//! A chain longer than one overlay mount takes (kernel: 500 lowerdirs, one page of options):
//! the snapshotter flattens the deep end, and the view still shows every layer, whiteouts
//! included, mounted the way containerd mounts it (lowerdirs relative to `snapshots/`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::api::types::Mount;
use polis_integration::snapshotter::*;
use polis_integration::{run_ok, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

const LAYERS: usize = 620;

fn upper_of(m: &Mount) -> PathBuf {
    match m.r#type.as_str() {
        "bind" => PathBuf::from(&m.source),
        _ => PathBuf::from(
            m.options
                .iter()
                .find_map(|o| o.strip_prefix("upperdir="))
                .expect("upperdir"),
        ),
    }
}

/// Mounts `m` on `target` as containerd's mount package does for long option strings:
/// lowerdirs relative to their common parent, from that directory.
fn mount_like_containerd(m: &Mount, snapshots: &Path, target: &Path) {
    let prefix = format!("{}/", snapshots.display());
    let opts: Vec<String> = m
        .options
        .iter()
        .map(|o| match o.strip_prefix("lowerdir=") {
            Some(l) => format!(
                "lowerdir={}",
                l.split(':')
                    .map(|d| d.strip_prefix(&prefix).expect("lowerdir under snapshots/"))
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            None => o.clone(),
        })
        .collect();
    let data = opts.join(",");
    assert!(
        data.len() <= 4096,
        "options still exceed a page: {}",
        data.len()
    );
    run_ok(
        Command::new("mount")
            .current_dir(snapshots)
            .args(["-t", "overlay", "overlay", "-o", &data])
            .arg(target),
    );
}

#[test]
fn a_chain_past_the_kernel_limit_is_flattened_and_complete() {
    let dir = TestDir::new("snaptest-long");
    let snap = Daemon::start(BIN, &dir.join("root"), &dir.join("snap.sock"), &[]);
    let snapshots = snap.root.join("snapshots");
    let rt = runtime();
    rt.block_on(async {
        let mut c = connect(&snap.address).await;
        for i in 0..LAYERS {
            let parent = if i == 0 {
                String::new()
            } else {
                format!("layer-{}", i - 1)
            };
            let key = format!("active-{i}");
            let m = c
                .prepare(PrepareSnapshotRequest {
                    snapshotter: String::new(),
                    key: key.clone(),
                    parent,
                    labels: HashMap::new(),
                })
                .await
                .unwrap_or_else(|e| panic!("prepare layer {i}: {e}"))
                .into_inner()
                .mounts;
            let upper = upper_of(&m[0]);
            fs::write(upper.join(format!("layer-{i}")), i.to_string()).unwrap();
            match i {
                0 => fs::write(upper.join("doomed"), "bottom").unwrap(),
                // what overlay writes when a file of a lower layer is deleted
                5 => nix::sys::stat::mknod(
                    &upper.join("doomed"),
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
                .unwrap(),
                _ => {}
            }
            commit(&mut c, &format!("layer-{i}"), &key).await;
        }

        let top = format!("layer-{}", LAYERS - 1);
        let m = c
            .view(ViewSnapshotRequest {
                snapshotter: String::new(),
                key: "top-view".into(),
                parent: top.clone(),
                labels: HashMap::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .mounts;
        let lower = m[0]
            .options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .unwrap();
        let lowers: Vec<&str> = lower.split(':').collect();
        assert!(lowers.len() < 500, "{} lowerdirs", lowers.len());
        assert!(lowers.last().unwrap().ends_with("/flat"), "{lower}");

        let target = dir.join("view");
        fs::create_dir(&target).unwrap();
        mount_like_containerd(&m[0], &snapshots, &target);
        let missing: Vec<usize> = (0..LAYERS)
            .filter(|i| {
                fs::read_to_string(target.join(format!("layer-{i}"))).ok() != Some(i.to_string())
            })
            .collect();
        let doomed = target.join("doomed").exists();
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(
            missing.is_empty(),
            "layers missing from the view: {missing:?}"
        );
        assert!(!doomed, "a file whited out in layer 5 reappeared");

        // Mounts gives the same answer later (the flat dir is reused, not rebuilt).
        let again = c
            .mounts(MountsRequest {
                snapshotter: String::new(),
                key: "top-view".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .mounts;
        assert_eq!(again, m);

        remove(&mut c, "top-view").await;
        for i in (0..LAYERS).rev() {
            remove(&mut c, &format!("layer-{i}")).await;
        }
        cleanup(&mut c).await;
    });
    assert_nothing_left(&snap.root, &dir);
    let stray: Vec<_> = fs::read_dir(&snap.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("flatten-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
