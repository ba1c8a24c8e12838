//! polis-runc on a pure cgroup v2 host: these machines are v1 hybrid, so the test mounts its own
//! cgroup2 hierarchy over /sys/fs/cgroup in a private mount namespace (gone when it exits) and
//! runs the container lifecycle there. Only the core files (procs, freeze, kill) work on v2 here;
//! v2 limits are covered by libcgroups' own tests.

use std::process::Command;

use polis_integration::fixtures::Bundle;
use polis_integration::runtime::{run_captured, stderr, stdout};

#[test]
fn lifecycle_on_a_private_cgroup2_hierarchy() {
    let unshare = polis_integration::require_tool("unshare");
    let bin = polis_integration::polis_bin("polis-runc");
    let id = polis_integration::unique_name("v2");
    let bundle = Bundle::new(&id, &["/bin/sleep", "1000"]).unwrap();
    let root = tempfile::Builder::new()
        .prefix("polis-state-")
        .tempdir()
        .unwrap();
    let cg = bundle.cgroups_path.trim_start_matches('/');
    let script = format!(
        r#"set -e
umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup
mount -t cgroup2 polis-cg2 /sys/fs/cgroup
R="{bin} --root {root}"
$R run -d -b {bundle} {id} </dev/null >/dev/null 2>&1
pid=$($R state {id} | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
echo "cgroup=$(grep '^0::' /proc/$pid/cgroup)"
echo "procs=$(cat /sys/fs/cgroup/{cg}/cgroup.procs)"
$R pause {id}
echo "freeze=$(cat /sys/fs/cgroup/{cg}/cgroup.freeze)"
$R resume {id}
echo "thawed=$(cat /sys/fs/cgroup/{cg}/cgroup.freeze)"
$R delete -f {id}
[ -e /sys/fs/cgroup/{cg} ] && echo leftover=yes || echo leftover=no
"#,
        bin = bin.display(),
        root = root.path().display(),
        bundle = bundle.path().display(),
    );
    let o = run_captured(Command::new(unshare).args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let pid_line = out.lines().find(|l| l.starts_with("procs=")).unwrap();
    assert!(out.contains(&format!("cgroup=0::/{cg}\n")), "{out}");
    assert!(pid_line.len() > "procs=".len(), "{out}");
    assert!(
        out.contains("freeze=1\n") && out.contains("thawed=0\n"),
        "{out}"
    );
    assert!(out.contains("leftover=no"), "{out}");
    assert!(!root.path().join(&id).exists());
}
