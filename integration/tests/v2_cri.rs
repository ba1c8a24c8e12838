//! Kubernetes on a cgroup v2 + systemd node, as kubeadm sets one up (`SystemdCgroup = true`):
//! a pod through containerd's CRI with each handler, its containers in transient systemd
//! scopes under the pod's slice with their limits, nothing left after removal. Runs in the v2
//! guest (`make test-v2`).

use std::process::Command;

use k8s_cri::v1::{LinuxContainerConfig, LinuxContainerResources};
use polis_integration::cri::{Cri, CriOptions};
use polis_integration::runtime::{run_captured, stdout};

fn systemctl_show(unit: &str, props: &str) -> String {
    stdout(&run_captured(
        Command::new("systemctl").args(["show", unit, "-p", props]),
    ))
}

fn pod_in_systemd_scopes(handler: &str) {
    assert!(
        polis_integration::cgroup2_host() && std::path::Path::new("/run/systemd/system").exists(),
        "needs cgroup v2 and systemd: this suite runs in the v2 guest (make test-v2)"
    );
    let mut cri = Cri::start_with(
        &format!("sd-{handler}"),
        CriOptions {
            systemd_cgroup: true,
            ..Default::default()
        },
    );
    let pod_cfg = cri.pod_config("web", &[]);
    let pod = cri.run_pod(&pod_cfg, handler);
    let mut cfg = cri.container_config("app", "echo started; sleep 1000");
    cfg.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100000,
            cpu_quota: 50000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&c);

    let slice = cri.cgroup_parent.clone();
    for (id, what) in [(&pod, "sandbox"), (&c, "container")] {
        let unit = format!("cri-containerd-{id}.scope");
        let props = systemctl_show(&unit, "ActiveState,Slice");
        assert!(
            props.contains("ActiveState=active") && props.contains(&format!("Slice={slice}")),
            "{handler}: {what} scope {unit}: {props}"
        );
    }
    let unit = format!("cri-containerd-{c}.scope");
    let dir = std::path::Path::new("/sys/fs/cgroup")
        .join(&slice)
        .join(&unit);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(
        read("memory.max").trim(),
        (64u64 << 20).to_string(),
        "{handler}"
    );
    assert_eq!(read("cpu.max").trim(), "50000 100000", "{handler}");
    let props = systemctl_show(&unit, "MemoryMax,CPUQuotaPerSecUSec");
    assert!(
        props.contains(&format!("MemoryMax={}", 64u64 << 20))
            && props.contains("CPUQuotaPerSecUSec=500ms"),
        "{handler}: {props}"
    );
    let r = cri.exec_sync(&c, &["cat", "/proc/self/cgroup"], 30);
    assert_eq!(r.exit_code, 0, "{handler}: exec");
    // the exec is in the container's cgroup (a cgroup namespace: its root)
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "0::/",
        "{handler}"
    );

    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    for id in [&pod, &c] {
        let unit = format!("cri-containerd-{id}.scope");
        polis_integration::containerd::wait_until(
            &format!("{unit} to go"),
            std::time::Duration::from_secs(30),
            || !systemctl_show(&unit, "LoadState").contains("LoadState=loaded"),
        );
    }
    cri.assert_nothing_left();
}

#[test]
fn systemd_cgroup_pod_with_the_polis_handler() {
    pod_in_systemd_scopes("polis");
}

/// containerd's runc shim sends `kill --all` when the pod stops, after systemd has already
/// removed the container's scope: polis-runc failed reading its cgroup, and CRI retried the
/// stop forever.
#[test]
fn systemd_cgroup_pod_with_the_go_shim_driving_polis_runc() {
    pod_in_systemd_scopes("polis-go");
}

#[test]
fn systemd_cgroup_pod_with_runc_for_reference() {
    pod_in_systemd_scopes("runc");
}
