//! What a pod's containers get through containerd's CRI, with the `polis` and `polis-go`
//! handlers, and `runc` for reference: ids, read-only rootfs, hostPath mounts in each
//! propagation mode, resource updates seen in the cgroup, stats, a Localhost seccomp profile,
//! an OOM kill reported as OOMKilled, ExecSync's timeout, ReopenContainerLog, and a pod whose
//! shim was killed still removed cleanly.

use std::time::{Duration, Instant};

use k8s_cri::v1::*;
use polis_integration::cri::Cri;

fn out(r: &ExecSyncResponse) -> String {
    String::from_utf8_lossy(&r.stdout).trim().to_string()
}

fn security(f: impl FnOnce(&mut LinuxContainerSecurityContext)) -> Option<LinuxContainerConfig> {
    let mut s = LinuxContainerSecurityContext::default();
    f(&mut s);
    Some(LinuxContainerConfig {
        security_context: Some(s),
        ..Default::default()
    })
}

fn containers(handler: &str) {
    let mut cri = Cri::start(&format!("ctr-{handler}"));
    let mut pod_cfg = cri.pod_config("feat", &[]);
    // the Bidirectional mount below needs a privileged container, so a privileged pod
    pod_cfg.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
        privileged: true,
        ..Default::default()
    });
    let pod = cri.run_pod(&pod_cfg, handler);

    // a host directory on a shared mount of its own, for the propagation modes
    // (in containerd's mount namespace: CRI checks the propagation of the path where it sees it)
    let host = cri.dir().join("hostpath");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    let in_ns = |cri: &Cri, script: &str| {
        let o = cri.in_mount_ns(script);
        assert!(o.status.success(), "{script}: {o:?}");
    };
    in_ns(
        &cri,
        &format!(
            "mount --bind {0} {0} && mount --make-shared {0}",
            host.display()
        ),
    );
    let mount = |path: &str, p: MountPropagation| Mount {
        container_path: path.into(),
        host_path: host.display().to_string(),
        propagation: p as i32,
        ..Default::default()
    };

    // run as 1000:1000, read-only rootfs, three hostPath mounts
    let mut cfg = cri.container_config("app", "exec sleep 3600");
    cfg.mounts = vec![
        mount("/private", MountPropagation::PropagationPrivate),
        mount("/h2c", MountPropagation::PropagationHostToContainer),
        mount("/bidi", MountPropagation::PropagationBidirectional),
    ];
    cfg.linux = security(|s| {
        s.run_as_user = Some(Int64Value { value: 1000 });
        s.run_as_group = Some(Int64Value { value: 1000 });
        s.readonly_rootfs = true;
        // Bidirectional needs a privileged container (kubelet refuses it otherwise)
        s.privileged = true;
    });
    let app = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&app);
    cri.wait_container(&app, ContainerState::ContainerRunning);

    let r = cri.exec_sync(&app, &["sh", "-c", "id -u; id -g"], 10);
    assert_eq!(out(&r), "1000\n1000", "{handler}: ids {r:?}");
    let r = cri.exec_sync(&app, &["sh", "-c", "touch /x 2>&1 || echo ro"], 10);
    assert!(out(&r).ends_with("ro"), "{handler}: rootfs {r:?}");

    // a mount made on the host after the start: seen through HostToContainer and
    // Bidirectional, not through Private
    in_ns(
        &cri,
        &format!(
            "mount -t tmpfs polis-cri-prop {0}/sub && echo from-host > {0}/sub/mark",
            host.display()
        ),
    );
    let r = cri.exec_sync(
        &app,
        &[
            "sh",
            "-c",
            "for d in private h2c bidi; do echo $d:$(cat /$d/sub/mark 2>/dev/null); done",
        ],
        10,
    );
    assert_eq!(
        out(&r),
        "private:\nh2c:from-host\nbidi:from-host",
        "{handler}: propagation {r:?}"
    );
    in_ns(&cri, &format!("umount {}/sub", host.display()));

    // resources: an update reaches the container's cgroup (v1 memory and cpu)
    let upd = cri.rt.block_on(cri.runtime.update_container_resources(
        UpdateContainerResourcesRequest {
            container_id: app.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                ..Default::default()
            }),
            ..Default::default()
        },
    ));
    assert!(upd.is_ok(), "{handler}: UpdateContainerResources {upd:?}");
    let r = cri.exec_sync(
        &app,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ],
        10,
    );
    assert_eq!(out(&r), format!("{}\n50000", 96 << 20), "{handler}: {r:?}");

    // stats from the container's cgroups
    let stats = cri
        .rt
        .block_on(cri.runtime.container_stats(ContainerStatsRequest {
            container_id: app.clone(),
        }))
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    let ws = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.clone())
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(ws > 0, "{handler}: {stats:?}");
    let listed = cri
        .rt
        .block_on(
            cri.runtime
                .list_container_stats(ListContainerStatsRequest { filter: None }),
        )
        .expect("ListContainerStats")
        .into_inner()
        .stats;
    assert!(listed
        .iter()
        .any(|s| s.attributes.as_ref().map(|a| a.id.as_str()) == Some(app.as_str())));

    // ExecSync's timeout: answered near the deadline, not after the command
    let t = Instant::now();
    let r = cri.rt.block_on(cri.runtime.exec_sync(ExecSyncRequest {
        container_id: app.clone(),
        cmd: vec!["sleep".into(), "30".into()],
        timeout: 1,
    }));
    assert!(t.elapsed() < Duration::from_secs(15), "{handler}: {r:?}");
    if let Ok(r) = &r {
        assert_ne!(
            r.get_ref().exit_code,
            0,
            "{handler}: a timed-out exec succeeded"
        );
    }

    // a Localhost seccomp profile refusing mkdir, applied to the init and to execs
    let profile = cri.dir().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let mut cfg = cri.container_config(
        "local",
        "mkdir /tmp/init-made 2>/dev/null || echo init-denied; exec sleep 3600",
    );
    cfg.linux = security(|s| {
        s.seccomp = Some(SecurityProfile {
            profile_type: security_profile::ProfileType::Localhost as i32,
            localhost_ref: profile.display().to_string(),
        })
    });
    let local = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&local);
    cri.wait_container(&local, ContainerState::ContainerRunning);
    let r = cri.exec_sync(
        &local,
        &[
            "sh",
            "-c",
            "mkdir /tmp/exec-made 2>&1; echo in-tmp:$(ls /tmp)",
        ],
        10,
    );
    assert!(
        out(&r).contains("Operation not permitted") && out(&r).ends_with("in-tmp:"),
        "{handler}: {r:?}"
    );

    // ReopenContainerLog: after the log is moved away, output goes to a new file at the path
    let mut cfg = cri.container_config(
        "talker",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done",
    );
    cfg.log_path = "talker.log".into();
    let talker = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&talker);
    let log = std::path::Path::new(&pod_cfg.log_directory).join("talker.log");
    polis_integration::containerd::wait_until("talker's log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("line1"))
    });
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    let r = cri
        .rt
        .block_on(cri.runtime.reopen_container_log(ReopenContainerLogRequest {
            container_id: talker.clone(),
        }));
    assert!(r.is_ok(), "{handler}: ReopenContainerLog {r:?}");
    polis_integration::containerd::wait_until("the reopened log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" stdout F line"))
    });

    // an OOM kill, reported as such
    let mut cfg = cri.container_config("hog", "head -c 200m /dev/zero | tail");
    cfg.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&hog);
    cri.wait_container(&hog, ContainerState::ContainerExited);
    let st = cri.container_status(&hog);
    assert_eq!(st.reason, "OOMKilled", "{handler}: {st:?}");
    assert_eq!(st.exit_code, 137, "{handler}: {st:?}");

    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    let _ = cri.in_mount_ns(&format!("umount -R {}", host.display()));
    cri.assert_nothing_left();
}

#[test]
fn cri_containers_with_the_polis_handler() {
    containers("polis");
}

#[test]
fn cri_containers_with_the_go_shim_driving_polis_runc() {
    containers("polis-go");
}

#[test]
fn cri_containers_with_runc_for_reference() {
    containers("runc");
}

/// The pod's shim SIGKILLed under it: StopPodSandbox and RemovePodSandbox still succeed (also
/// twice), and nothing is left.
fn shim_killed(handler: &str) {
    let mut cri = Cri::start(&format!("kill-{handler}"));
    let pod_cfg = cri.pod_config("victim", &[(8081, 80)]);
    let pod = cri.run_pod(&pod_cfg, handler);
    let c = cri.container_config("c", "exec sleep 3600");
    let c = cri.create_container(&pod, &pod_cfg, c);
    cri.start_container(&c);
    cri.wait_container(&c, ContainerState::ContainerRunning);
    let shims = cri.shim_pids();
    assert_eq!(shims.len(), 1, "{handler}");
    for p in shims {
        // SAFETY: plain kill(2) of the shim this test's containerd started.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    cri.wait_container(&c, ContainerState::ContainerExited);
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.remove_pod(&pod);
    assert!(cri.list_pods().is_empty());
    cri.assert_nothing_left();
}

#[test]
fn cri_pod_removed_after_its_polis_shim_was_killed() {
    shim_killed("polis");
}

#[test]
fn cri_pod_removed_after_its_go_shim_was_killed() {
    shim_killed("polis-go");
}
