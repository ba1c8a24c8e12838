//! containerd's own snapshotter conformance suite against our binary, one daemon per test.

mod common;

use common::*;

#[test]
fn containerd_snapshot_suite_passes_in_exec_mode() {
    need_tool("go");
    let dir = TestDir::new("suite-exec");
    let cmd = format!("{BIN} --root {{root}} --address {{address}} --log-level warn");
    let (ok, text) = run_suite(&dir, &["exec", &cmd]);
    let summary = text
        .lines()
        .find(|l| l.starts_with("snapshot-suite[exec]:"))
        .unwrap_or_else(|| panic!("no summary line\n{text}"));
    assert!(ok && summary.contains("20 passed, 0 failed"), "{text}");
    assert!(mounts_under(&dir.path).is_empty(), "the suite left mounts");
}

#[test]
fn containerd_snapshot_suite_passes_through_containerd() {
    need_tool("go");
    need_tool("containerd");
    let dir = TestDir::new("suite-ctrd");
    let snap = Daemon::start(&dir.join("snap-root"), &dir.join("snap.sock"), &[]);
    let ctrd = Containerd::start(&dir.path, &snap.address);
    let sock = ctrd.sock.display().to_string();
    let (ok, text) = run_suite(&dir, &["containerd", &sock, "polis"]);
    let summary = text
        .lines()
        .find(|l| l.starts_with("snapshot-suite[containerd]:"))
        .unwrap_or_else(|| panic!("no summary line\n{text}"));
    assert!(ok && summary.contains("20 passed, 0 failed"), "{text}");
    drop(ctrd);
    // every test removed its snapshots: nothing may be left on disk once orphans are swept
    let rt = runtime();
    rt.block_on(async {
        let mut c = connect(&snap.address).await;
        assert!(list(&mut c).await.is_empty(), "snapshots left behind");
        cleanup(&mut c).await;
    });
    assert!(
        snapshot_dirs(&snap.root).is_empty(),
        "{:?}",
        snapshot_dirs(&snap.root)
    );
    assert!(mounts_under(&dir.path).is_empty(), "mounts left behind");
}
