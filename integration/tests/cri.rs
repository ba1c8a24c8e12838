//! Kubernetes through containerd's CRI plugin, as kubelet drives it (CRI v1 gRPC), with the
//! runtime handler `polis` (our shim + polis-runc), `polis-go` (containerd's Go runc shim with
//! polis-runc as its BinaryName) and `runc` (the reference, to show the harness itself is
//! right). Each test has its own containerd, node network namespace and cgroup parent.

use k8s_cri::v1::*;
use polis_integration::cri::{Cri, GATEWAY4};

fn out(r: &ExecSyncResponse) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// GETs `/` from `addr:port` inside the node namespace; the body's last line.
fn http_get(cri: &Cri, addr: &str, port: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let o = cri.on_node(&format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 {addr} {port}"
        ));
        last = String::from_utf8_lossy(&o.stdout).into_owned();
        if last.contains("hello-cri") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last.lines().last().unwrap_or_default().to_string()
}

fn pod_lifecycle(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod_cfg = cri.pod_config("web", &[(8080, 80)]);
    let pod = cri.run_pod(&pod_cfg, handler);

    let status = cri.pod_status(&pod);
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    let net = status.network.clone().expect("pod network status");
    assert!(net.ip.starts_with("10.89.0."), "pod IPv4 {net:?}");
    assert!(
        net.additional_ips
            .iter()
            .any(|ip| ip.ip.starts_with("fd89::")),
        "pod IPv6 {net:?}"
    );
    assert!(cri.list_pods().iter().any(|p| p.id == pod));

    // a web server, and a second container in the same pod whose output goes to CRI's log
    let web = cri.container_config(
        "web",
        "mkdir -p /www && echo hello-cri > /www/index.html && exec httpd -f -p 80 -h /www",
    );
    let web = cri.create_container(&pod, &pod_cfg, web);
    cri.start_container(&web);
    let side = cri.container_config(
        "side",
        "echo side-started; echo side-err >&2; exec sleep 300",
    );
    let side = cri.create_container(&pod, &pod_cfg, side);
    cri.start_container(&side);
    cri.wait_container(&web, ContainerState::ContainerRunning);
    cri.wait_container(&side, ContainerState::ContainerRunning);
    assert_eq!(cri.list_containers().len(), 2);
    assert_eq!(
        cri.shim_pids().len(),
        1,
        "{handler}: the pod's containers share one shim"
    );

    // ExecSync: exit code, stdout and stderr apart
    let r = cri.exec_sync(&web, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10);
    assert_eq!((r.exit_code, out(&r)), (3, "out\n".to_string()), "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");

    // CRI's log format: "<RFC 3339 time> <stream> <F|P> <line>"
    let log = std::path::Path::new(&pod_cfg.log_directory).join("side.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tagged = |stream: &str, line: &str| {
        text.lines().any(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            f.len() == 4 && f[1] == stream && f[2] == "F" && f[3] == line && f[0].contains('T')
        })
    };
    assert!(
        tagged("stdout", "side-started") && tagged("stderr", "side-err"),
        "{handler}: log {}: {text:?}",
        log.display()
    );

    // traffic: node to pod, node's host port to pod, pod to its gateway
    assert_eq!(
        http_get(&cri, &net.ip, 80),
        "hello-cri",
        "{handler}: pod IP"
    );
    assert_eq!(
        http_get(&cri, "127.0.0.1", 8080),
        "hello-cri",
        "{handler}: host port"
    );
    let ip6 = net.additional_ips[0].ip.clone();
    assert_eq!(
        http_get(&cri, &ip6, 80),
        "hello-cri",
        "{handler}: pod IPv6 {ip6}"
    );
    let r = cri.exec_sync(&side, &["ping", "-c", "1", "-W", "3", GATEWAY4], 10);
    assert_eq!(r.exit_code, 0, "{handler}: pod to gateway: {r:?}");
    // pod to pod: a second pod fetches the first one's page
    let peer_cfg = cri.pod_config("peer", &[]);
    let peer = cri.run_pod(&peer_cfg, handler);
    let client = cri.container_config("client", "exec sleep 3600");
    let client = cri.create_container(&peer, &peer_cfg, client);
    cri.start_container(&client);
    cri.wait_container(&client, ContainerState::ContainerRunning);
    let get = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 80 | tail -1",
        net.ip
    );
    let r = cri.exec_sync(&client, &["sh", "-c", &get], 10);
    assert_eq!(out(&r).trim(), "hello-cri", "{handler}: pod to pod {r:?}");
    cri.stop_pod(&peer);
    cri.remove_pod(&peer);

    cri.stop_pod(&pod);
    for c in cri.list_containers() {
        assert_eq!(c.state, ContainerState::ContainerExited as i32, "{c:?}");
    }
    cri.remove_pod(&pod);
    assert!(cri.list_pods().is_empty());
    assert!(cri.list_containers().is_empty());
    // removing again is not an error (kubelet retries)
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

#[test]
fn cri_pod_lifecycle_with_the_polis_handler() {
    pod_lifecycle("polis");
}

#[test]
fn cri_pod_lifecycle_with_the_go_shim_driving_polis_runc() {
    pod_lifecycle("polis-go");
}

#[test]
fn cri_pod_lifecycle_with_runc_for_reference() {
    pod_lifecycle("runc");
}

/// seccomp RuntimeDefault on a container: its init and everything exec'd into it are
/// filtered (an exec that escaped the filter was a confinement hole).
fn runtime_default_seccomp(handler: &str) {
    let mut cri = Cri::start(handler);
    let pod_cfg = cri.pod_config("sec", &[]);
    let pod = cri.run_pod(&pod_cfg, handler);
    let mut cfg = cri.container_config("confined", "exec sleep 300");
    cfg.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&c);
    cri.wait_container(&c, ContainerState::ContainerRunning);
    let r = cri.exec_sync(
        &c,
        // CRI's default pid namespace is the pod's: pid 1 is the sandbox, so find our init
        &[
            "sh",
            "-c",
            "grep Seccomp: /proc/$(pidof sleep)/status /proc/self/status",
        ],
        10,
    );
    let lines: Vec<String> = out(&r)
        .lines()
        .map(|l| l.split(':').skip(1).collect::<Vec<_>>().join(":"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["Seccomp: 2", "Seccomp: 2"],
        "{handler}: {}",
        out(&r)
    );
    // the default profile refuses what it should, in the exec too (unshare is not allowed
    // without CAP_SYS_ADMIN)
    let r = cri.exec_sync(&c, &["unshare", "-m", "true"], 10);
    assert_ne!(
        r.exit_code, 0,
        "{handler}: unshare worked under RuntimeDefault"
    );
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

#[test]
fn cri_runtime_default_seccomp_confines_execs_with_polis() {
    runtime_default_seccomp("polis");
}

#[test]
fn cri_runtime_default_seccomp_confines_execs_with_the_go_shim_and_polis_runc() {
    runtime_default_seccomp("polis-go");
}

#[test]
fn cri_runtime_default_seccomp_confines_execs_with_runc_for_reference() {
    runtime_default_seccomp("runc");
}

/// Images pulled by CRI's PullImage from a registry on the node's loopback and unpacked on
/// polis-snapshotter (`snapshotter = "polis"`); a pod on them (its sandbox image pulled by
/// RunPodSandbox); ImageStatus, ListImages, RemoveImage; the snapshots gone after removal.
fn pulled_images_on_polis_snapshotter(handler: &str) {
    use polis_integration::cri::{CriOptions, REGISTRY_BUSYBOX, REGISTRY_PAUSE};
    let mut cri = Cri::start_with(
        &format!("pull-{handler}"),
        CriOptions {
            polis_snapshotter: true,
            registry: true,
            ..Default::default()
        },
    );
    let spec = |image: &str| ImageSpec {
        image: image.into(),
        ..Default::default()
    };
    let pulled = cri.rt.block_on(cri.images.pull_image(PullImageRequest {
        image: Some(spec(REGISTRY_BUSYBOX)),
        auth: None,
        sandbox_config: None,
    }));
    let image_ref = match pulled {
        Ok(r) => r.into_inner().image_ref,
        Err(e) => panic!("PullImage: {e}\n{}", cri.log_tail()),
    };
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let status = cri
        .rt
        .block_on(cri.images.image_status(ImageStatusRequest {
            image: Some(spec(REGISTRY_BUSYBOX)),
            verbose: false,
        }))
        .expect("ImageStatus")
        .into_inner()
        .image
        .expect("the pulled image");
    assert!(
        status.repo_tags.iter().any(|t| t == REGISTRY_BUSYBOX),
        "{status:?}"
    );
    assert!(status.size > 0);
    assert!(
        !cri.polis_snapshots().is_empty(),
        "nothing unpacked on polis"
    );

    let pod_cfg = cri.pod_config("pulled", &[]);
    let pod = cri.run_pod(&pod_cfg, handler);
    let mut cfg = cri.container_config("c", "echo on-polis-snapshotter; exec sleep 3600");
    cfg.image = Some(spec(REGISTRY_BUSYBOX));
    let c = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&c);
    cri.wait_container(&c, ContainerState::ContainerRunning);
    let r = cri.exec_sync(
        &c,
        &["sh", "-c", "grep ' / ' /proc/mounts | cut -d' ' -f3"],
        10,
    );
    assert_eq!(out(&r).trim(), "overlay", "{handler}: the rootfs {r:?}");
    let listed = cri
        .rt
        .block_on(cri.images.list_images(ListImagesRequest { filter: None }))
        .expect("ListImages")
        .into_inner()
        .images;
    for want in [REGISTRY_BUSYBOX, REGISTRY_PAUSE] {
        assert!(
            listed.iter().any(|i| i.repo_tags.iter().any(|t| t == want)),
            "{want} not in {listed:?}"
        );
    }
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    for image in [REGISTRY_BUSYBOX, REGISTRY_PAUSE] {
        let r = cri.rt.block_on(cri.images.remove_image(RemoveImageRequest {
            image: Some(spec(image)),
        }));
        assert!(r.is_ok(), "RemoveImage {image}: {r:?}");
    }
    // containerd's garbage collector removes the snapshots shortly after
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cri.polis_snapshots().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "snapshots left on polis: {:?}",
            cri.polis_snapshots()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cri.assert_nothing_left();
}

#[test]
fn cri_pulls_onto_polis_snapshotter_with_the_polis_handler() {
    pulled_images_on_polis_snapshotter("polis");
}

#[test]
fn cri_pulls_onto_polis_snapshotter_with_the_go_shim_driving_polis_runc() {
    pulled_images_on_polis_snapshotter("polis-go");
}

/// kubectl exec and attach: CRI's Exec and Attach through containerd's streaming server (a
/// WebSocket with the v4 channel protocol), with and without a TTY.
fn streaming(handler: &str) {
    let mut cri = Cri::start(&format!("stream-{handler}"));
    let pod_cfg = cri.pod_config("stream", &[]);
    let pod = cri.run_pod(&pod_cfg, handler);
    let mut cfg = cri.container_config("cat", "exec cat");
    cfg.stdin = true;
    let c = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&c);
    cri.wait_container(&c, ContainerState::ContainerRunning);

    let exec = |cri: &mut Cri, cmd: &[&str], tty: bool| {
        let url = cri
            .rt
            .block_on(cri.runtime.exec(ExecRequest {
                container_id: c.clone(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                // kubectl exec -t always comes with -i: a terminal has an input side
                stdin: tty,
                stdout: true,
                stderr: !tty,
            }))
            .unwrap_or_else(|e| panic!("{handler}: Exec: {e}"))
            .into_inner()
            .url;
        cri.stream(&url, None, None)
    };
    // without a TTY: stdout and stderr apart, the exit code in the status
    let s = exec(
        &mut cri,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
    );
    assert_eq!(
        String::from_utf8_lossy(&s.stdout),
        "out\n",
        "{handler}: {s:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&s.stderr),
        "err\n",
        "{handler}: {s:?}"
    );
    assert!(
        s.status.contains("NonZeroExitCode") && s.status.contains("\"3\""),
        "{handler}: {s:?}"
    );
    // with a TTY: one stream, on a terminal
    let s = exec(&mut cri, &["sh", "-c", "[ -t 1 ] && echo on-a-tty"], true);
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("on-a-tty"),
        "{handler}: {s:?}"
    );
    assert!(s.status.contains("Success"), "{handler}: {s:?}");

    // attach to a container on a terminal: what is typed comes back through the tty
    let mut cfg = cri.container_config("tty", "exec cat");
    cfg.stdin = true;
    cfg.tty = true;
    let tty = cri.create_container(&pod, &pod_cfg, cfg);
    cri.start_container(&tty);
    cri.wait_container(&tty, ContainerState::ContainerRunning);
    let url = cri
        .rt
        .block_on(cri.runtime.attach(AttachRequest {
            container_id: tty.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        }))
        .unwrap_or_else(|e| panic!("{handler}: Attach with a TTY: {e}"))
        .into_inner()
        .url;
    let s = cri.stream(&url, Some(b"typed-on-tty\n"), Some("typed-on-tty"));
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("typed-on-tty"),
        "{handler}: {s:?}"
    );

    // attach to the container's own stdin and stdout (cat echoes what it reads)
    let url = cri
        .rt
        .block_on(cri.runtime.attach(AttachRequest {
            container_id: c.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        }))
        .unwrap_or_else(|e| panic!("{handler}: Attach: {e}"))
        .into_inner()
        .url;
    let s = cri.stream(&url, Some(b"through-attach\n"), Some("through-attach"));
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("through-attach"),
        "{handler}: {s:?}"
    );
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    cri.assert_nothing_left();
}

#[test]
fn cri_streaming_exec_and_attach_with_polis() {
    streaming("polis");
}

#[test]
fn cri_streaming_exec_and_attach_with_the_go_shim_driving_polis_runc() {
    streaming("polis-go");
}

#[test]
fn cri_streaming_exec_and_attach_with_runc_for_reference() {
    streaming("runc");
}
