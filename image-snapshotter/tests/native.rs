//! The native-copy backend: chosen explicitly it passes containerd's suite; with `--backend
//! auto` it is what a root without usable overlayfs gets.

use std::fs;

use polis_integration::snapshotter::*;
use polis_integration::{mounts_under, require_tool, run_ok, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

#[test]
fn containerd_snapshot_suite_passes_on_the_native_backend() {
    require_tool("go");
    let dir = TestDir::new("snaptest-suite-native");
    let cmd =
        format!("{BIN} --root {{root}} --address {{address}} --log-level warn --backend native");
    assert_suite_passes(&dir, &Suite::Exec(&cmd));
}

#[test]
fn auto_falls_back_to_native_where_overlay_cannot_be_used() {
    let dir = TestDir::new("snaptest-fallback");
    // overlayfs cannot use a directory on overlayfs as upper/work: a root in there has none
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(dir.join(d)).unwrap();
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.join("lower").display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    run_ok(
        std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &data])
            .arg(dir.join("merged")),
    );
    let root = dir.join("merged/root");
    let overlay_refused = std::process::Command::new(BIN)
        .arg("--root")
        .arg(&root)
        .arg("--address")
        .arg(dir.join("refused.sock"))
        .args(["--backend", "overlayfs"])
        .output()
        .unwrap();
    assert!(
        !overlay_refused.status.success(),
        "--backend overlayfs must refuse a root where overlay does not work"
    );

    let snap = Daemon::start(BIN, &root, &dir.join("snap.sock"), &["--backend", "auto"]);
    runtime().block_on(async {
        let mut c = connect(&snap.address).await;
        prepare(&mut c, "base-a", "").await;
        let upper = snap.root.join("snapshots/1/fs");
        fs::write(upper.join("from-base"), "base").unwrap();
        commit(&mut c, "base", "base-a").await;
        let m = c
            .prepare(
                containerd_snapshots::api::snapshots::v1::PrepareSnapshotRequest {
                    snapshotter: String::new(),
                    key: "child".into(),
                    parent: "base".into(),
                    labels: Default::default(),
                },
            )
            .await
            .unwrap()
            .into_inner()
            .mounts;
        assert_eq!(m[0].r#type, "bind", "{m:?}");
        // a native child starts as a full copy of its parent
        let copied = fs::read_to_string(format!("{}/from-base", m[0].source)).unwrap();
        assert_eq!(copied, "base");
        remove(&mut c, "child").await;
        remove(&mut c, "base").await;
        cleanup(&mut c).await;
    });
    assert!(snapshot_dirs(&snap.root).is_empty());
    drop(snap);
    nix::mount::umount2(&dir.join("merged"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(mounts_under(&dir.path).is_empty());
}
