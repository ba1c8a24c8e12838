//! A network configuration list executed the way libcni does: plugins in
//! order for ADD with each result passed on as `prevResult`, runtimeConfig
//! filtered by declared capabilities, CHECK with the cached result, DEL in
//! reverse order. The reference `bandwidth` plugin follows polis-bridge and
//! only works if our result names the host veth correctly.

use polis_integration::cni::*;
use polis_integration::require_tool;
use serde_json::{json, Value};

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

struct ConfList {
    list: Value,
    runtime_config: Value,
}

impl ConfList {
    /// The configuration libcni builds for plugin `i`.
    fn plugin_conf(&self, i: usize, prev: Option<&Value>) -> Value {
        let mut conf = self.list["plugins"][i].clone();
        conf["cniVersion"] = self.list["cniVersion"].clone();
        conf["name"] = self.list["name"].clone();
        let mut rc = serde_json::Map::new();
        if let Some(caps) = conf["capabilities"].as_object() {
            for (cap, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = self.runtime_config.get(cap) {
                        rc.insert(cap.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        conf
    }

    fn plugin_bin(&self, i: usize) -> String {
        let ty = self.list["plugins"][i]["type"].as_str().unwrap();
        let ours = PLUGINS.dir().join(ty);
        if ours.is_file() {
            return ours.display().to_string();
        }
        require_reference_plugin(ty).display().to_string()
    }

    fn len(&self) -> usize {
        self.list["plugins"].as_array().unwrap().len()
    }

    fn add(&self, host: &Netns, cid: &str, netns: &str) -> Value {
        let mut prev: Option<Value> = None;
        for i in 0..self.len() {
            let conf = self.plugin_conf(i, prev.as_ref()).to_string();
            let out = PLUGINS.run(&self.plugin_bin(i), host, "ADD", cid, netns, "eth0", &conf);
            prev = Some(out.expect_ok(&format!("ADD plugin {i}")));
        }
        prev.expect("conflist has plugins")
    }

    fn check(&self, host: &Netns, cid: &str, netns: &str, cached: &Value) -> Result<(), Value> {
        for i in 0..self.len() {
            let conf = self.plugin_conf(i, Some(cached)).to_string();
            let out = PLUGINS.run(
                &self.plugin_bin(i),
                host,
                "CHECK",
                cid,
                netns,
                "eth0",
                &conf,
            );
            if !out.ok {
                return Err(out.json);
            }
        }
        Ok(())
    }

    fn del(&self, host: &Netns, cid: &str, netns: &str, cached: Option<&Value>) {
        for i in (0..self.len()).rev() {
            let conf = self.plugin_conf(i, cached).to_string();
            PLUGINS
                .run(&self.plugin_bin(i), host, "DEL", cid, netns, "eth0", &conf)
                .expect_ok(&format!("DEL plugin {i}"));
        }
    }
}

#[test]
fn conflist_with_reference_bandwidth_plugin_chained_after_polis_bridge() {
    require_reference_plugin("bandwidth");
    require_tool("tc");
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let list = ConfList {
        list: json!({
            "cniVersion": "1.0.0",
            "name": "chain",
            "plugins": [
                {"type": "polis-bridge", "bridge": "pbr0", "isDefaultGateway": true, "ipMasq": true,
                 "capabilities": {"portMappings": true},
                 "ipam": {"type": "polis-ipam", "dataDir": data.path(), "ranges": [[{"subnet": "10.92.0.0/24"}]]}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}}
            ]
        }),
        runtime_config: json!({
            "portMappings": [{"hostPort": 7070, "containerPort": 70, "protocol": "udp"}],
            "bandwidth": {"ingressRate": 8000000, "ingressBurst": 1000000}
        }),
    };
    let result = list.add(&host, "chain1", &c.path());
    // bandwidth passes our result through; it shaped the host veth it found there.
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(result["interfaces"][1]["sandbox"].is_null());
    let qdisc = host.run_ok(&["tc", "qdisc", "show", "dev", &host_veth]);
    assert!(
        qdisc.contains("tbf"),
        "bandwidth did not shape {host_veth}: {qdisc}"
    );
    assert!(
        host.ruleset().contains("udp dport 7070"),
        "portMappings capability did not reach polis-bridge"
    );
    assert!(c.ping("10.92.0.1"));

    list.check(&host, "chain1", &c.path(), &result)
        .expect("CHECK of the whole list");
    list.del(&host, "chain1", &c.path(), Some(&result));
    assert_no_leftovers(&host, data.path(), "chain", "chain1");
    assert!(
        list.check(&host, "chain1", &c.path(), &result).is_err(),
        "CHECK passed after DEL"
    );
    // libcni may run DEL again, and without a cached result.
    list.del(&host, "chain1", &c.path(), None);
}

#[test]
fn old_spec_versions_get_old_result_shape() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let mut conf = net_conf(
        "old",
        data.path(),
        json!([[{"subnet": "10.93.0.0/24"}]]),
        json!({"isDefaultGateway": false}),
    );
    conf["cniVersion"] = json!("0.4.0");
    conf["ipam"]["routes"] =
        json!([{"dst": "192.0.2.0/24"}, {"dst": "198.18.0.0/15", "gw": "10.93.0.254"}]);
    let r = PLUGINS
        .cni(&host, "ADD", "old1", &c.path(), &conf)
        .expect_ok("ADD 0.4.0");
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    // IPAM routes: without a gw they go through the range's gateway.
    let routes = c.run_ok(&["ip", "route"]);
    assert!(routes.contains("192.0.2.0/24 via 10.93.0.1"), "{routes}");
    assert!(routes.contains("198.18.0.0/15 via 10.93.0.254"), "{routes}");
    assert!(
        !routes.contains("default"),
        "isDefaultGateway=false added a default route: {routes}"
    );
    let mut chk = conf.clone();
    chk["prevResult"] = r;
    PLUGINS
        .cni(&host, "CHECK", "old1", &c.path(), &chk)
        .expect_ok("CHECK 0.4.0");
    PLUGINS
        .cni(&host, "DEL", "old1", &c.path(), &conf)
        .expect_ok("DEL 0.4.0");
    assert_no_leftovers(&host, data.path(), "old", "old1");
}

#[test]
fn add_after_another_interface_plugin_appends_to_prev_result() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let mut conf = net_conf(
        "prev",
        data.path(),
        json!([[{"subnet": "10.96.0.0/24"}]]),
        json!({}),
    );
    // What a loopback-style plugin earlier in the list returned.
    conf["prevResult"] = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "lo", "sandbox": c.path()}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "dns": {"nameservers": ["10.96.0.53"]}
    });
    let r = PLUGINS
        .cni(&host, "ADD", "p1", &c.path(), &conf)
        .expect_ok("ADD with prevResult");
    let names: Vec<&str> = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "lo");
    assert_eq!(names[1], "pbr0");
    assert_eq!(names[3], "eth0");
    assert_eq!(r["ips"][0]["address"], "127.0.0.1/8");
    assert_eq!(
        r["ips"][1]["interface"], 3,
        "our address must point at our eth0: {r}"
    );
    assert_eq!(r["dns"]["nameservers"][0], "10.96.0.53");
    PLUGINS
        .cni(&host, "DEL", "p1", &c.path(), &conf)
        .expect_ok("DEL");
    assert_no_leftovers(&host, data.path(), "prev", "p1");
}
