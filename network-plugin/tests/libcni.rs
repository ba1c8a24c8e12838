//! polis-bridge driven by the real libcni (Debian's golang-github-appc-cni-dev,
//! the library containerd's CRI plugin uses) from a conflist file, chained
//! with the reference bandwidth plugin: validate, ADD, CHECK, DEL, DEL again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

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
    sh_ok(&mut go);
    bin
}

struct Driver {
    bin: PathBuf,
    conflist: PathBuf,
    cache: PathBuf,
}

impl Driver {
    fn run(&self, host: &Netns, verb: &str, cid: &str, netns: &str, caps: &Value) -> Output {
        let cni_path = format!(
            "{}:{}",
            Path::new(PLUGIN).parent().unwrap().display(),
            REFERENCE_CNI_DIR
        );
        let bin = self.bin.to_str().unwrap();
        let conf = self.conflist.to_str().unwrap();
        let cache = self.cache.to_str().unwrap();
        host.run(&[
            bin,
            verb,
            conf,
            cache,
            &cni_path,
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
