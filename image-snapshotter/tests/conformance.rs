//! containerd's own snapshotter conformance suite against our binary, one daemon per test.

use polis_integration::containerd::Containerd;
use polis_integration::snapshotter::*;
use polis_integration::{require_tool, TestDir};

const BIN: &str = env!("CARGO_BIN_EXE_polis-snapshotter");

#[test]
fn containerd_snapshot_suite_passes_in_exec_mode() {
    require_tool("go");
    let dir = TestDir::new("snaptest-suite-exec");
    let cmd = format!("{BIN} --root {{root}} --address {{address}} --log-level warn");
    assert_suite_passes(&dir, &Suite::Exec(&cmd));
}

#[test]
fn containerd_snapshot_suite_passes_through_containerd() {
    require_tool("go");
    require_tool("containerd");
    let dir = TestDir::new("snaptest-suite-ctrd");
    let snap = Daemon::start(BIN, &dir.join("snap-root"), &dir.join("snap.sock"), &[]);
    let ctrd = Containerd::with_snapshotter("polis", &snap.address);
    assert_suite_passes(
        &dir,
        &Suite::Containerd {
            sock: &ctrd.sock(),
            snapshotter: "polis",
        },
    );
    drop(ctrd);
    // every test removed its snapshots: nothing may be left on disk once orphans are swept
    let rt = runtime();
    rt.block_on(async {
        let mut c = connect(&snap.address).await;
        assert!(list(&mut c).await.is_empty(), "snapshots left behind");
        cleanup(&mut c).await;
    });
    assert_nothing_left(&snap.root, &dir);
}
