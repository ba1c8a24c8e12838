//! A private containerd 1.6 with its CRI plugin, driven the way kubelet drives it: a Kubernetes
//! CRI v1 client (gRPC over containerd's socket) and no mock anywhere.
//!
//! Everything it makes is its own: a network namespace that plays the node (containerd, the
//! shims, the bridge, pod veths and port mappings live there, never in the machine's own), a
//! pinned mount namespace with a private /run and /var/lib (CRI and libcni hard-code paths
//! there), containerd's root, state and sockets, CNI conf and bin dirs, a cgroup parent for
//! the pods, and the busybox and pause images built offline. Three runtime handlers:
//! `polis` (our shim), `polis-go` (containerd's Go runc shim with `BinaryName` = polis-runc)
//! and `runc` (the reference). Dropping it removes every pod, stops what it started by PID and
//! removes the namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint};

use crate::{run, run_ok, tail};

pub const BUSYBOX: &str = "docker.io/library/busybox:latest";
pub const PAUSE: &str = "polis.test/pause:latest";
/// The pods' IPv4 and IPv6 subnets (inside the test's own node namespace).
pub const SUBNET4: &str = "10.89.0.0/24";
pub const SUBNET6: &str = "fd89::/64";
pub const GATEWAY4: &str = "10.89.0.1";

pub struct Cri {
    dir: tempfile::TempDir,
    /// Unique prefix of what this instance makes (netns, cgroup parent, pod names).
    pub name: String,
    /// The network namespace playing the node, under /run/netns.
    pub node_netns: String,
    ns_file: PathBuf,
    child: Option<Child>,
    pub rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    /// The pods' cgroup parent (kubelet always gives one).
    pub cgroup_parent: String,
    /// Helpers started for this instance (snapshotter, registry), stopped by PID on drop.
    helpers: Vec<Child>,
    pub options: CriOptions,
}

/// What an instance is made of beyond the default (overlayfs, images imported into k8s.io).
#[derive(Clone, Copy, Debug, Default)]
pub struct CriOptions {
    /// CRI unpacks images on polis-snapshotter (`snapshotter = "polis"`), served from the
    /// test dir, instead of containerd's overlayfs.
    pub polis_snapshotter: bool,
    /// A registry (Debian's docker-registry) on the node namespace's loopback holds busybox
    /// and the pause image; nothing is imported into k8s.io, CRI pulls (PullImage, and the
    /// sandbox image on RunPodSandbox).
    pub registry: bool,
    /// The systemd cgroup driver, as kubeadm sets a node up: `SystemdCgroup = true` for the
    /// runc handlers, `systemdCgroup` in the Polis shim's config file, and a pod cgroup
    /// parent that is a slice (CRI then asks for `slice:cri-containerd:<id>`). Needs systemd.
    pub systemd_cgroup: bool,
}

/// Where the registry mode's images are.
pub const REGISTRY: &str = "127.0.0.1:5000";
pub const REGISTRY_BUSYBOX: &str = "127.0.0.1:5000/polis/busybox:latest";
pub const REGISTRY_PAUSE: &str = "127.0.0.1:5000/polis/pause:latest";

impl Cri {
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, CriOptions::default())
    }

    pub fn start_with(tag: &str, options: CriOptions) -> Self {
        for tool in [
            "containerd",
            "ctr",
            "unshare",
            "nsenter",
            "umoci",
            "ip",
            "nft",
        ] {
            crate::require_tool(tool);
        }
        if std::env::var_os("POLIS_PAUSE_BIN").is_none() {
            crate::require_tool("cc");
        }
        let name = crate::unique_name(&format!("cri-{tag}"));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("CRI test dir");
        let d = dir.path().to_path_buf();
        let node_netns = name.clone();
        run_ok(Command::new("ip").args(["netns", "add", &node_netns]));
        run_ok(Command::new("ip").args(["-n", &node_netns, "link", "set", "lo", "up"]));

        // binaries: the shim and polis-runc on containerd's PATH, the CNI plugins in bin_dir
        let bin = d.join("bin");
        let cni_bin = d.join("cni-bin");
        let cni_conf = d.join("cni-conf");
        for p in [&bin, &cni_bin, &cni_conf] {
            std::fs::create_dir_all(p).unwrap();
        }
        for (dir, name) in [
            (&bin, "containerd-shim-polis-v2"),
            (&bin, "polis-runc"),
            (&cni_bin, "polis-bridge"),
            (&cni_bin, "polis-ipam"),
        ] {
            std::os::unix::fs::symlink(crate::polis_bin(name), dir.join(name)).unwrap();
        }
        // CRI sets up each pod's loopback with the reference plugin
        std::os::unix::fs::symlink("/usr/lib/cni/loopback", cni_bin.join("loopback")).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "polis-cri",
            "plugins": [{
                "type": "polis-bridge", "bridge": "cni0", "isGateway": true,
                "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
                "capabilities": {"portMappings": true},
                "ipam": {"type": "polis-ipam", "dataDir": d.join("ipam"),
                         "ranges": [[{"subnet": SUBNET4}], [{"subnet": SUBNET6}]]}
            }]
        });
        std::fs::write(
            cni_conf.join("10-polis.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();

        // containerd hard-codes /run/containerd (shim sockets, fifos), CRI /var/run/netns and
        // libcni /var/lib/cni: private copies of both trees in the pinned mount namespace.
        // With the systemd driver, the runtimes under it need systemd's and D-Bus's sockets
        // from the real /run: carried over into the private one.
        let keep_run = if options.systemd_cgroup {
            let keep = d.join("keep-run");
            format!(
                "mkdir -p {k}/systemd {k}/dbus && mount --rbind /run/systemd {k}/systemd \
                 && mount --rbind /run/dbus {k}/dbus && ",
                k = keep.display()
            )
        } else {
            String::new()
        };
        let restore_run = if options.systemd_cgroup {
            let keep = d.join("keep-run");
            format!(
                " && mkdir -p /run/systemd /run/dbus && mount --move {k}/systemd /run/systemd \
                 && mount --move {k}/dbus /run/dbus",
                k = keep.display()
            )
        } else {
            String::new()
        };
        let ns_file = crate::containerd::pinned_mount_ns(
            &d,
            &format!(
                "{keep_run}mount -t tmpfs -o mode=755 polis-run /run && mkdir -p /run/containerd \
                 && mount -t tmpfs -o mode=755 polis-varlib /var/lib && mkdir -p /var/lib/cni{restore_run}"
            ),
        );

        // a slice name without '-' is a top-level slice (systemd reads '-' as nesting)
        let cgroup_parent = if options.systemd_cgroup {
            format!("{}.slice", name.replace('-', "_"))
        } else {
            format!("/{name}")
        };
        let (runc_opts, polis_opts) = if options.systemd_cgroup {
            let shim_cfg = d.join("polis-shim.json");
            std::fs::write(&shim_cfg, r#"{"systemdCgroup": true}"#).unwrap();
            (
                "        SystemdCgroup = true\n".to_string(),
                format!(
                    "      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.polis.options]\n        ConfigPath = \"{}\"\n",
                    shim_cfg.display()
                ),
            )
        } else {
            (String::new(), String::new())
        };
        let mut helpers = Vec::new();
        let mut extra_cfg = String::new();
        let mut snapshotter = "overlayfs";
        if options.polis_snapshotter {
            let snap_sock = d.join("snap.sock");
            let mut snap = crate::snapshotter::Daemon::spawn(
                crate::polis_bin("polis-snapshotter"),
                &d.join("snap"),
                &snap_sock,
                &[],
            );
            crate::snapshotter::wait_listening(&mut snap, &snap_sock, Duration::from_secs(30));
            helpers.push(snap);
            snapshotter = "polis";
            extra_cfg += &crate::containerd::proxy_snapshotter_config("polis", &snap_sock);
        }
        let sandbox_image = if options.registry {
            helpers.push(start_registry(&d, &node_netns));
            REGISTRY_PAUSE
        } else {
            PAUSE
        };
        let registry_cfg = if options.registry {
            format!(
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{REGISTRY}\"]\n    endpoint = [\"http://{REGISTRY}\"]\n"
            )
        } else {
            String::new()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = d.join("containerd.sock");
        // POLIS_CRI_DEBUG=1: containerd's debug log, to see where the time of a call goes
        if std::env::var_os("POLIS_CRI_DEBUG").is_some() {
            extra_cfg += "[debug]\n  level = \"debug\"\n";
        }
        let cfg = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
{extra_cfg}[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
{runc_opts}    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.polis]
      runtime_type = "io.containerd.polis.v2"
{polis_opts}    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.polis-go]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.polis-go.options]
        BinaryName = "{runc}"
{runc_opts}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
{registry_cfg}"#,
            d = d.display(),
            sock = sock.display(),
            runc = crate::polis_bin("polis-runc").display(),
            cni_bin = cni_bin.display(),
            cni_conf = cni_conf.display(),
        );
        std::fs::write(d.join("config.toml"), cfg).unwrap();

        let child = crate::containerd::spawn_containerd(&d, &ns_file, Some(&node_netns));
        let (runtime, images) = {
            let sock = sock.clone();
            crate::wait_until("containerd's socket", Duration::from_secs(30), || {
                sock.exists()
            });
            let channel = rt.block_on(async move {
                Endpoint::try_from("http://[::]:0")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_| {
                        tokio::net::UnixStream::connect(sock.clone())
                    }))
                    .await
                    .expect("connect to containerd")
            });
            (
                RuntimeServiceClient::new(channel.clone()),
                ImageServiceClient::new(channel),
            )
        };
        let mut cri = Self {
            dir,
            name,
            node_netns,
            ns_file,
            child: Some(child),
            rt,
            runtime,
            images,
            cgroup_parent,
            helpers,
            options,
        };
        cri.wait_ready();
        if options.registry {
            cri.push(
                &|p| crate::fixtures::busybox_image_archive(p),
                "docker.io/library/busybox",
                REGISTRY_BUSYBOX,
            );
            cri.push(
                &|p| crate::fixtures::pause_image_archive(p),
                "polis.test/pause",
                REGISTRY_PAUSE,
            );
        } else {
            cri.import(
                &|p| crate::fixtures::busybox_image_archive(p),
                "docker.io/library/busybox",
            );
            cri.import(
                &|p| crate::fixtures::pause_image_archive(p),
                "polis.test/pause",
            );
        }
        cri
    }

    /// Imports an image into a namespace of its own, pushes it to the registry as `remote`
    /// (from the node namespace, where the registry listens) and removes it there again, so
    /// that CRI has to pull it.
    fn push(&self, build: &dyn Fn(&Path) -> anyhow::Result<()>, base: &str, remote: &str) {
        let tar = self.dir().join(format!("{}.tar", base.replace('/', "_")));
        build(&tar).expect("image archive");
        let ctr = |args: &[&str]| {
            run_ok(
                Command::new("nsenter")
                    .arg(format!("--mount={}", self.ns_file.display()))
                    .arg(format!("--net=/run/netns/{}", self.node_netns))
                    .arg("--")
                    .arg("ctr")
                    .arg("-a")
                    .arg(self.sock())
                    .args(["-n", "polis-push"])
                    .args(args)
                    .stdin(Stdio::null()),
            )
        };
        let local = format!("{base}:latest");
        ctr(&[
            "images",
            "import",
            "--base-name",
            base,
            tar.to_str().unwrap(),
        ]);
        ctr(&["images", "tag", &local, remote]);
        ctr(&["images", "push", "--plain-http", remote]);
        ctr(&["images", "rm", &local, remote]);
    }

    /// Snapshot directories left in polis-snapshotter's root (registry/snapshotter mode).
    pub fn polis_snapshots(&self) -> Vec<String> {
        let dir = self.dir().join("snap/snapshots");
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The tail of containerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log(), 40)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("containerd exited: {st}\n{}", self.log_tail());
            }
            let status = self
                .rt
                .block_on(self.runtime.status(StatusRequest { verbose: false }));
            if let Ok(s) = status {
                let conds = s
                    .into_inner()
                    .status
                    .map(|s| s.conditions)
                    .unwrap_or_default();
                if conds.len() >= 2 && conds.iter().all(|c| c.status) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "CRI never became ready\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr` in containerd's mount namespace and CRI's `k8s.io` namespace.
    pub fn ctr(&self, args: &[&str]) -> Output {
        run(Command::new("nsenter")
            .arg(format!("--mount={}", self.ns_file.display()))
            .arg("--")
            .arg("ctr")
            .arg("-a")
            .arg(self.sock())
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null()))
    }

    fn import(&self, build: &dyn Fn(&Path) -> anyhow::Result<()>, base: &str) {
        let tar = self.dir().join(format!("{}.tar", base.replace('/', "_")));
        build(&tar).expect("image archive");
        let o = self.ctr(&[
            "images",
            "import",
            "--base-name",
            base,
            tar.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "import {base}: {o:?}");
    }

    /// A shell script in containerd's mount namespace (where the pods' host paths are seen).
    pub fn in_mount_ns(&self, script: &str) -> Output {
        run(Command::new("nsenter")
            .arg(format!("--mount={}", self.ns_file.display()))
            .args(["--", "sh", "-c", script]))
    }

    /// A command inside the node's network namespace.
    pub fn on_node(&self, script: &str) -> Output {
        run(Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.node_netns))
            .args(["--", "sh", "-c", script]))
    }

    /// A pod config as kubelet writes one, with this instance's cgroup parent and log dir.
    pub fn pod_config(&self, name: &str, ports: &[(i32, i32)]) -> PodSandboxConfig {
        let log_dir = self.dir().join("pods").join(name);
        std::fs::create_dir_all(&log_dir).unwrap();
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("{}-{name}", self.name),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_dir.display().to_string(),
            port_mappings: ports
                .iter()
                .map(|&(host, container)| PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: container,
                    host_port: host,
                    host_ip: String::new(),
                })
                .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn run_pod(&mut self, config: &PodSandboxConfig, handler: &str) -> String {
        // a deadline, as kubelet sets one: a hang fails the test with containerd's log
        let mut req = tonic::Request::new(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        });
        req.set_timeout(Duration::from_secs(180));
        let r = self.rt.block_on(self.runtime.run_pod_sandbox(req));
        match r {
            Ok(r) => r.into_inner().pod_sandbox_id,
            Err(e) => panic!("RunPodSandbox ({handler}): {e}\n{}", self.log_tail()),
        }
    }

    /// A busybox container config running `sh -c script`, logging to `<name>.log`.
    pub fn container_config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub fn create_container(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> String {
        let r = self
            .rt
            .block_on(self.runtime.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }));
        match r {
            Ok(r) => r.into_inner().container_id,
            Err(e) => panic!("CreateContainer: {e}\n{}", self.log_tail()),
        }
    }

    pub fn start_container(&mut self, id: &str) {
        let r = self
            .rt
            .block_on(self.runtime.start_container(StartContainerRequest {
                container_id: id.into(),
            }));
        if let Err(e) = r {
            panic!("StartContainer: {e}\n{}", self.log_tail());
        }
    }

    pub fn container_status(&mut self, id: &str) -> ContainerStatus {
        self.rt
            .block_on(self.runtime.container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }))
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("a status")
    }

    pub fn pod_status(&mut self, id: &str) -> PodSandboxStatus {
        self.rt
            .block_on(self.runtime.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            }))
            .expect("PodSandboxStatus")
            .into_inner()
            .status
            .expect("a status")
    }

    pub fn exec_sync(&mut self, id: &str, cmd: &[&str], timeout: i64) -> ExecSyncResponse {
        let r = self.rt.block_on(self.runtime.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }));
        match r {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("ExecSync {cmd:?}: {e}\n{}", self.log_tail()),
        }
    }

    pub fn stop_pod(&mut self, id: &str) {
        let r = self
            .rt
            .block_on(self.runtime.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }));
        if let Err(e) = r {
            panic!("StopPodSandbox: {e}\n{}", self.log_tail());
        }
    }

    /// RemovePodSandbox, retried as kubelet retries it in one case: containerd 1.6 can race
    /// its own removal of a container's directory against a late TaskOOM event that writes
    /// the container's status there ("directory not empty"); seen with the Go shim right
    /// after an OOM kill. Any other error fails at once.
    pub fn remove_pod(&mut self, id: &str) {
        for attempt in 0.. {
            let r = self
                .rt
                .block_on(self.runtime.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                }));
            match r {
                Ok(_) => return,
                Err(e) if attempt < 3 && e.message().contains("directory not empty") => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("RemovePodSandbox: {e}\n{}", self.log_tail()),
            }
        }
    }

    pub fn list_pods(&mut self) -> Vec<PodSandbox> {
        self.rt
            .block_on(
                self.runtime
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )
            .expect("ListPodSandbox")
            .into_inner()
            .items
    }

    pub fn list_containers(&mut self) -> Vec<Container> {
        self.rt
            .block_on(
                self.runtime
                    .list_containers(ListContainersRequest { filter: None }),
            )
            .expect("ListContainers")
            .into_inner()
            .containers
    }

    /// PIDs of the shims this containerd started (their `-address` is our socket).
    pub fn shim_pids(&self) -> Vec<i32> {
        crate::containerd::shim_pids_of(&self.sock())
    }

    /// Everything the pods may leave: shims, the pods' cgroups, mounts, veths, IP
    /// reservations and port-mapping rules in the node namespace.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = crate::containerd::instance_leftovers(
            &self.sock(),
            &self.cgroup_parent,
            self.dir(),
            &self.ns_file,
        );
        // the pods' network namespaces, which CRI keeps under its (private) /run/netns
        let netns = self.in_mount_ns("ls /run/netns 2>/dev/null");
        for l in String::from_utf8_lossy(&netns.stdout).lines() {
            found.push(format!("pod netns {l}"));
        }
        let veths = self.on_node("ip -o link show type veth");
        for l in String::from_utf8_lossy(&veths.stdout).lines() {
            found.push(format!("veth {l}"));
        }
        let net = self.dir().join("ipam/polis-cri");
        for e in std::fs::read_dir(&net).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.parse::<std::net::IpAddr>().is_ok() {
                found.push(format!("IP reservation {n}"));
            }
        }
        let rules = self.on_node("nft -a list ruleset");
        for l in String::from_utf8_lossy(&rules.stdout).lines() {
            if l.contains("polis/") {
                found.push(format!("nft rule {}", l.trim()));
            }
        }
        found
    }

    /// Waits until nothing of the pods is left, or panics listing what is.
    pub fn assert_nothing_left(&self) {
        if let Err(left) = crate::containerd::settle(|| self.leftovers()) {
            panic!("left behind: {left:#?}\n{}", self.log_tail());
        }
    }

    /// Polls a container until CRI reports `state`.
    pub fn wait_container(&mut self, id: &str, state: ContainerState) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.container_status(id);
            if s.state == state as i32 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} never reached {state:?}: {s:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Best effort: stops and removes every pod (and so every container).
    fn clean(&mut self) {
        if self.child.is_none() {
            return;
        }
        let pods = self
            .rt
            .block_on(
                self.runtime
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )
            .map(|r| r.into_inner().items)
            .unwrap_or_default();
        for p in pods {
            let _ = self
                .rt
                .block_on(self.runtime.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: p.id.clone(),
                }));
            let _ = self
                .rt
                .block_on(self.runtime.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: p.id,
                }));
        }
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        self.clean();
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of our own child's PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        for pid in self.shim_pids() {
            // SAFETY: plain kill(2) of a shim this test's containerd started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for mut h in self.helpers.drain(..) {
            // SAFETY: plain kill(2) of our own child's PID.
            unsafe { libc::kill(h.id() as i32, libc::SIGTERM) };
            let _ = h.wait();
        }
        let ns_dir = self.ns_file.parent().unwrap().to_path_buf();
        let _ = Command::new("umount").arg(&self.ns_file).status();
        let _ = Command::new("umount").arg(&ns_dir).status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.node_netns])
            .status();
        if self.options.systemd_cgroup {
            // the pods' slice is systemd's: it stays until stopped
            let _ = Command::new("systemctl")
                .args(["stop", &self.cgroup_parent])
                .status();
        }
        // the parent goes once the last pod cgroup has (a moment after its processes)
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && !crate::leaks::cgroup_dirs(&self.cgroup_parent)
                .iter()
                .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Debian's docker-registry on the node namespace's loopback, storing in the test dir.
// The child is handed to the caller, whose Drop stops and waits for it; the lint cannot see
// that through the return value.
#[allow(clippy::zombie_processes)]
fn start_registry(d: &Path, node_netns: &str) -> Child {
    let bin = crate::require_tool("docker-registry");
    let cfg = d.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {REGISTRY}\n",
            d.join("registry").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("registry.log")).unwrap();
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{node_netns}"))
        .arg("--")
        .arg(bin)
        .arg("serve")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start docker-registry");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{node_netns}"))
            .args(["--", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000"])
            .output()
            .unwrap();
        if o.status.success() {
            break child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the registry never listened: {}",
                std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a streaming session (CRI Exec or Attach) gave back: each channel's bytes, and the
/// status the server sent on the error channel (a Kubernetes `Status` as JSON, or empty).
#[derive(Debug, Default)]
pub struct Streamed {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: String,
}

impl Cri {
    /// Opens a streaming URL that CRI's Exec or Attach returned, as kubectl does through the
    /// API server: a WebSocket with the `v4.channel.k8s.io` protocol (one leading byte per
    /// message names the channel: 0 stdin, 1 stdout, 2 stderr, 3 status). The server listens on
    /// the node namespace's loopback, so the connection is made from there. `stdin` is sent
    /// first; the session is read until the server closes it, or until `until` is seen on
    /// stdout (then we close it, as a user leaving an attach does).
    pub fn stream(&self, url: &str, stdin: Option<&[u8]>, until: Option<&str>) -> Streamed {
        use tungstenite::client::IntoClientRequest;
        use tungstenite::Message;
        let addr = url
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected streaming URL {url}"))
            .to_string();
        let netns = std::fs::File::open(format!("/run/netns/{}", self.node_netns)).unwrap();
        // a socket keeps the namespace it was made in: connect from a thread that entered it
        let tcp = std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the node's network namespace");
            std::net::TcpStream::connect(&addr)
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = url
            .replacen("http://", "ws://", 1)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let (mut ws, _) = tungstenite::client::client(req, tcp)
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        if let Some(data) = stdin {
            let mut m = vec![0u8];
            m.extend_from_slice(data);
            ws.send(Message::Binary(m.into())).unwrap();
        }
        let mut got = Streamed::default();
        loop {
            let msg = match ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    break
                }
                Err(tungstenite::Error::Protocol(_)) => break,
                Err(e) => panic!("streaming {url}: {e}"),
            };
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, body)) = data.split_first() else {
                continue;
            };
            match channel {
                1 => got.stdout.extend_from_slice(body),
                2 => got.stderr.extend_from_slice(body),
                3 => got.status.push_str(&String::from_utf8_lossy(body)),
                _ => {}
            }
            if let Some(u) = until {
                if String::from_utf8_lossy(&got.stdout).contains(u) {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    break;
                }
            }
        }
        got
    }
}
