//! polis-bridge driven by the real libcni (Debian's golang-github-appc-cni-dev,
//! the library containerd's CRI plugin uses) from a conflist file, chained
//! with the reference bandwidth plugin: validate, ADD, CHECK, DEL, DEL again;
//! and with the capability arguments as containerd 1.6's CRI builds them
//! (go-cni's types, golang-github-containerd-go-cni-dev).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polis_integration::cni::*;
use polis_integration::{require_tool, run_ok};
use serde_json::{json, Value};

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

const GOPATH: &str = "/usr/share/gocode";

/// Builds tests/libcni/driver.go in GOPATH mode (no module proxy here).
fn build_driver(out_dir: &Path) -> PathBuf {
    require_tool("go");
    let libcni = Path::new(GOPATH).join("src/github.com/containernetworking/cni/libcni");
    assert!(
        libcni.is_dir(),
        "this test needs libcni sources in {} (Debian package golang-github-appc-cni-dev)",
        libcni.display()
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni/driver.go");
    let bin = out_dir.join("libcni-driver");
    let mut go = Command::new("go");
    go.args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .current_dir(out_dir);
    // go needs a build cache; CI may run without HOME.
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        go.env("GOCACHE", out_dir.join("gocache"));
    }
    run_ok(&mut go);
    bin
}

struct Driver {
    bin: PathBuf,
    conflist: PathBuf,
    cache: PathBuf,
    cni_path: String,
}

/// Our plugins, then the reference ones.
fn default_cni_path() -> String {
    PLUGINS.cni_path()
}

impl Driver {
    fn run(&self, host: &Netns, verb: &str, cid: &str, netns: &str, caps: &Value) -> Output {
        let bin = self.bin.to_str().unwrap();
        let conf = self.conflist.to_str().unwrap();
        let cache = self.cache.to_str().unwrap();
        host.run(&[
            bin,
            verb,
            conf,
            cache,
            &self.cni_path,
            cid,
            netns,
            &caps.to_string(),
        ])
    }

    fn ok(&self, host: &Netns, verb: &str, cid: &str, netns: &str, caps: &Value) -> String {
        let out = self.run(host, verb, cid, netns, caps);
        assert!(
            out.status.success(),
            "libcni {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn libcni_runs_a_conflist_with_polis_bridge_and_bandwidth() {
    require_reference_plugin("bandwidth");
    require_tool("tc");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ipam");
    let conflist = tmp.path().join("10-polis.conflist");
    std::fs::write(
        &conflist,
        json!({
            "cniVersion": "1.0.0",
            "name": "libcni-net",
            "plugins": [
                {"type": "polis-bridge", "bridge": "pbr0", "isDefaultGateway": true, "ipMasq": true,
                 "capabilities": {"portMappings": true},
                 "ipam": {"type": "polis-ipam", "dataDir": data, "ranges": [[{"subnet": "10.95.0.0/24"}]]}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let driver = Driver {
        bin: build_driver(tmp.path()),
        conflist,
        cache: tmp.path().join("cache"),
        cni_path: default_cni_path(),
    };
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let caps = json!({
        "portMappings": [{"hostPort": 6060, "containerPort": 60, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 8000000, "ingressBurst": 1000000}
    });

    driver.ok(&host, "validate", "", "", &json!({}));
    let result: Value = serde_json::from_str(&driver.ok(&host, "add", "lc1", &c.path(), &caps))
        .expect("ADD printed JSON");
    let ips = result_ips(&result);
    assert!(ips[0].starts_with("10.95.0."), "{result}");
    assert!(c.run_ok(&["ip", "addr", "show", "eth0"]).contains(&ips[0]));
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        host.run_ok(&["tc", "qdisc", "show", "dev", &host_veth])
            .contains("tbf"),
        "bandwidth did not shape {host_veth}"
    );
    assert!(
        host.ruleset().contains("tcp dport 6060"),
        "portMappings did not reach polis-bridge"
    );
    assert!(c.ping("10.95.0.1"));

    driver.ok(&host, "check", "lc1", &c.path(), &caps);
    driver.ok(&host, "del", "lc1", &c.path(), &caps);
    assert_no_leftovers(&host, &data, "libcni-net", "lc1");
    assert!(!c.links().contains(&"eth0".to_string()));
    // The runtime retries DEL (the cached result is gone by now).
    driver.ok(&host, "del", "lc1", &c.path(), &caps);
    assert!(
        !driver
            .run(&host, "check", "lc1", &c.path(), &caps)
            .status
            .success(),
        "CHECK passed after DEL"
    );
}

/// A `polis-bridge` for CNI_PATH that saves the configuration of each call to
/// `<dir>/<CNI_COMMAND>.<pid>.json`, then runs the real plugin on it.
fn recording_plugin(bin_dir: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin_dir).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let script = bin_dir.join("polis-bridge");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nf=\"{}/$CNI_COMMAND.$$.json\"\ncat > \"$f\"\nexec {} < \"$f\"\n",
            dir.display(),
            PLUGINS.bridge
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The configurations `recording_plugin` saved for `verb`.
fn recorded(dir: &Path, verb: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{verb}.")) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            out.push(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")));
        }
    }
    out
}

/// containerd 1.6's CRI passes a pod's hostPort through go-cni, whose
/// PortMapping has no json tags: libcni hands polis-bridge
/// `{"HostPort":..,"ContainerPort":..,"Protocol":"tcp","HostIP":""}`, next to
/// runtimeConfig keys it has no use for (`dns` in go-cni's spelling, the pod
/// annotations).
#[test]
fn libcni_passes_port_mappings_as_containerd_cri_does() {
    require_reference_plugin("bandwidth");
    require_tool("tc");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ipam");
    let saved = tmp.path().join("stdin");
    let bin_dir = tmp.path().join("bin");
    recording_plugin(&bin_dir, &saved);
    let conflist = tmp.path().join("10-cri.conflist");
    std::fs::write(
        &conflist,
        json!({
            "cniVersion": "1.0.0",
            "name": "cri-net",
            "plugins": [
                {"type": "polis-bridge", "bridge": "pbr0", "isGateway": true, "ipMasq": true,
                 "capabilities": {"portMappings": true, "dns": true,
                                  "io.kubernetes.cri.pod-annotations": true},
                 "ipam": {"type": "polis-ipam", "dataDir": data, "ranges": [[{"subnet": "10.96.0.0/24"}]]}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let driver = Driver {
        bin: build_driver(tmp.path()),
        conflist,
        cache: tmp.path().join("cache"),
        cni_path: format!("{}:{}", bin_dir.display(), default_cni_path()),
    };
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    // The pod as the CRI code reads it; the driver decodes it into go-cni's
    // types (json field names of the test do not matter: Go matches them
    // ignoring case), and libcni marshals those.
    let pod = json!({
        "portMappings": [{"hostPort": 6061, "containerPort": 61, "protocol": "tcp", "hostIP": ""}],
        "bandwidth": {"ingressRate": 8000000, "ingressBurst": 1000000},
        "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
        "annotations": {"io.kubernetes.cri.sandbox-name": "polis-test"}
    });

    let result: Value = serde_json::from_str(&driver.ok(&host, "cri-add", "cri1", &c.path(), &pod))
        .expect("ADD printed JSON");
    let adds = recorded(&saved, "ADD");
    assert_eq!(adds.len(), 1, "{adds:?}");
    let rc = &adds[0]["runtimeConfig"];
    assert_eq!(
        rc["portMappings"],
        json!([{"HostPort": 6061, "ContainerPort": 61, "Protocol": "tcp", "HostIP": ""}]),
        "what libcni sent: {rc}"
    );
    assert_eq!(rc["dns"]["Servers"], json!(["10.96.0.10"]), "{rc}");
    assert!(rc["io.kubernetes.cri.pod-annotations"].is_object(), "{rc}");
    assert!(result_ips(&result)[0].starts_with("10.96.0."), "{result}");
    assert!(
        host.ruleset().contains("tcp dport 6061"),
        "the CRI port mapping did not reach the rules: {}",
        host.ruleset()
    );
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        host.run_ok(&["tc", "qdisc", "show", "dev", &host_veth])
            .contains("tbf"),
        "bandwidth did not shape {host_veth}"
    );

    driver.ok(&host, "cri-check", "cri1", &c.path(), &pod);
    driver.ok(&host, "cri-del", "cri1", &c.path(), &pod);
    let dels = recorded(&saved, "DEL");
    assert_eq!(
        dels[0]["runtimeConfig"]["portMappings"][0]["HostPort"],
        6061
    );
    assert_no_leftovers(&host, &data, "cri-net", "cri1");
    assert!(!host.links().contains(&host_veth));
    assert!(!c.links().contains(&"eth0".to_string()));
    driver.ok(&host, "cri-del", "cri1", &c.path(), &pod);
}
