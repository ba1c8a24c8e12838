//! Bad input gets the CNI error JSON with the right code and changes nothing.

use std::path::Path;

use polis_integration::cni::*;
use serde_json::json;

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

/// Links, nft ruleset and store files: what a failed ADD must not change.
fn snapshot(host: &Netns, data: &Path) -> (Vec<String>, String, Vec<String>) {
    let mut files: Vec<String> = walk(data);
    files.sort();
    (host.links(), host.ruleset(), files)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                let content = std::fs::read_to_string(&p).unwrap_or_default();
                out.push(format!("{}={content}", p.display()));
            }
        }
    }
    out
}

fn add_raw(host: &Netns, cid: &str, netns: &str, conf: &str) -> CniOut {
    PLUGINS.run(PLUGINS.bridge, host, "ADD", cid, netns, "eth0", conf)
}

#[test]
fn malformed_or_invalid_configs_are_rejected_without_side_effects() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let good = net_conf(
        "bad",
        data.path(),
        json!([[{"subnet": "10.87.0.0/24"}]]),
        json!({"ipMasq": true}),
    );
    let before = snapshot(&host, data.path());

    let mut cases: Vec<(&str, String, u64)> = vec![
        (
            "malformed JSON",
            "{\"cniVersion\": \"1.0.0\", \"name\": ".to_string(),
            6,
        ),
        ("not an object", "[1,2]".to_string(), 6),
    ];
    let mut v = good.clone();
    v["cniVersion"] = json!("7.0.0");
    cases.push(("unknown cniVersion", v.to_string(), 1));
    let mut v = good.clone();
    v["bridge"] = json!("bridge-name-too-long");
    cases.push(("bridge name too long", v.to_string(), 7));
    let mut v = good.clone();
    v["ipam"]["ranges"] = json!([[{"subnet": "10.87.0.0/24", "rangeStart": "10.88.0.1"}]]);
    cases.push(("rangeStart outside the subnet", v.to_string(), 7));
    let mut v = good.clone();
    v["ipam"] = json!({"type": "no-such-ipam-plugin"});
    cases.push(("unknown IPAM plugin", v.to_string(), 7));
    let mut v = good.clone();
    v["name"] = json!("../escape");
    cases.push(("network name with a path", v.to_string(), 7));
    let mut v = good.clone();
    v["mtu"] = json!(10);
    cases.push(("mtu too small", v.to_string(), 7));

    for (what, conf, code) in &cases {
        let e = add_raw(&host, "bad1", &c.path(), conf).expect_err(what, *code);
        assert!(
            e["cniVersion"].is_string(),
            "{what}: error lacks cniVersion: {e}"
        );
        assert_eq!(
            snapshot(&host, data.path()),
            before,
            "{what} changed the host"
        );
        assert!(
            !c.links().contains(&"eth0".to_string()),
            "{what} created eth0"
        );
    }

    // Missing netns: the container is unknown.
    add_raw(
        &host,
        "bad1",
        "/run/netns/polis-test-does-not-exist",
        &good.to_string(),
    )
    .expect_err("missing netns", 3);
    assert_eq!(
        snapshot(&host, data.path()),
        before,
        "missing netns changed the host"
    );

    // Missing CNI_CONTAINERID: invalid environment.
    PLUGINS
        .run(
            PLUGINS.bridge,
            &host,
            "ADD",
            "",
            &c.path(),
            "eth0",
            &good.to_string(),
        )
        .expect_err("no container id", 4);
    // Invalid interface name.
    PLUGINS
        .run(
            PLUGINS.bridge,
            &host,
            "ADD",
            "bad1",
            &c.path(),
            "eth0/x",
            &good.to_string(),
        )
        .expect_err("bad ifname", 4);
    assert_eq!(
        snapshot(&host, data.path()),
        before,
        "bad environment changed the host"
    );
}

#[test]
fn exhausted_subnet_and_duplicate_add_change_nothing() {
    let host = Netns::new("pbh");
    let (c1, c2) = (Netns::new("pbc"), Netns::new("pbc"));
    let data = tempfile::tempdir().unwrap();
    // A /30 has one usable address after the gateway.
    let conf = net_conf(
        "tiny",
        data.path(),
        json!([[{"subnet": "10.88.0.0/30"}]]),
        json!({"ipMasq": true}),
    );
    let first = PLUGINS
        .cni(&host, "ADD", "first", &c1.path(), &conf)
        .expect_ok("first ADD");
    assert_eq!(result_ips(&first), vec!["10.88.0.2".to_string()]);
    let before = snapshot(&host, data.path());

    let e = PLUGINS
        .cni(&host, "ADD", "second", &c2.path(), &conf)
        .expect_err("ADD into exhausted subnet", 100);
    assert!(
        e["msg"].as_str().unwrap().contains("tiny"),
        "message should name the network: {e}"
    );
    assert_eq!(
        snapshot(&host, data.path()),
        before,
        "failed ADD changed the host"
    );
    assert!(!c2.links().contains(&"eth0".to_string()));

    // The same container again: refused, and the first attachment survives.
    PLUGINS
        .cni(&host, "ADD", "first", &c1.path(), &conf)
        .expect_err("duplicate ADD", 7);
    assert_eq!(
        snapshot(&host, data.path()),
        before,
        "duplicate ADD changed the host"
    );
    assert!(c1.links().contains(&"eth0".to_string()));
    assert!(
        c1.ping("10.88.0.1"),
        "first attachment broken by the duplicate ADD"
    );

    PLUGINS
        .cni(&host, "DEL", "first", &c1.path(), &conf)
        .expect_ok("DEL");
    // The freed address can be handed out again.
    let again = PLUGINS
        .cni(&host, "ADD", "second", &c2.path(), &conf)
        .expect_ok("ADD after DEL");
    assert_eq!(result_ips(&again), vec!["10.88.0.2".to_string()]);
    PLUGINS
        .cni(&host, "DEL", "second", &c2.path(), &conf)
        .expect_ok("DEL second");
    assert_no_leftovers(&host, data.path(), "tiny", "first");
    assert_no_leftovers(&host, data.path(), "tiny", "second");
}

#[test]
fn vlan_is_applied_or_refused_cleanly() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "vl",
        data.path(),
        json!([[{"subnet": "10.94.0.0/24"}]]),
        json!({"bridge": "pbrv", "vlan": 100}),
    );
    let out = PLUGINS.cni(&host, "ADD", "v1", &c.path(), &conf);
    if out.ok {
        // A kernel with bridge VLAN filtering: the port carries VLAN 100.
        let host_veth = out.json["interfaces"][1]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let vlans = host.run_ok(&["bridge", "vlan", "show", "dev", &host_veth]);
        assert!(
            vlans.contains("100"),
            "vlan 100 not on {host_veth}: {vlans}"
        );
        PLUGINS
            .cni(&host, "DEL", "v1", &c.path(), &conf)
            .expect_ok("DEL");
    } else {
        // This machine's kernel has no bridge VLAN filtering: a kernel error
        // naming the bridge, and the failed ADD is rolled back.
        assert_eq!(out.json["code"], 101, "{}", out.json);
        let msg = out.json["msg"].as_str().unwrap();
        assert!(
            msg.contains("pbrv") && msg.contains("not supported"),
            "{msg}"
        );
        assert!(!c.links().contains(&"eth0".to_string()));
    }
    assert_no_leftovers(&host, data.path(), "vl", "v1");
}
