//! runtimeConfig as containerd's CRI sends it (issue 9): port mappings in
//! go-cni's spelling forward traffic and are removed by DEL; DEL removes an
//! attachment even when its configuration is one ADD would refuse; ADD
//! refuses a malformed mapping by name and leaves nothing behind.
//! Every namespace is created by the test: one plays the host.

use std::time::Duration;

use polis_integration::cni::*;
use polis_integration::{require_tool, wait_until};
use serde_json::{json, Value};

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

/// What containerd 1.6's CRI puts in `runtimeConfig.portMappings` for a
/// pod port: go-cni's `PortMapping`, a Go struct without json tags.
fn cri_mapping(host_port: u16, container_port: u16) -> Value {
    json!({"HostPort": host_port, "ContainerPort": container_port, "Protocol": "tcp", "HostIP": ""})
}

fn cri_conf(name: &str, data: &std::path::Path, subnet: &str) -> Value {
    net_conf(
        name,
        data,
        json!([[{ "subnet": subnet }]]),
        json!({"ipMasq": true, "hairpinMode": true,
               "runtimeConfig": {"portMappings": [cri_mapping(8080, 80)]}}),
    )
}

/// The host's links and rules: what a refused ADD must leave as it was.
fn host_state(host: &Netns) -> (Vec<String>, String) {
    (host.links(), host.ruleset())
}

#[test]
fn cri_port_mappings_forward_and_del_removes_everything() {
    require_tool("busybox");
    let host = Netns::new("pbh");
    // The node's own address: on lo, as the kernel has no dummy interfaces.
    host.run_ok(&["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let web = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello-from-cri\n").unwrap();
    let mut conf = cri_conf("cri", data.path(), "10.96.0.0/24");
    // A second mapping as other Go clients send it: upper-case protocol, bound
    // to one address.
    conf["runtimeConfig"]["portMappings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"HostPort": 8081, "ContainerPort": 80, "Protocol": "TCP", "HostIP": "10.99.0.1"}));

    let r = PLUGINS
        .cni(&host, "ADD", "cri-web", &web.path(), &conf)
        .expect_ok("ADD with CRI mappings");
    let web_ip = result_ips(&r)[0].clone();
    let host_veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let ruleset = host.ruleset();
    assert!(
        ruleset.contains("tcp dport 8080") && ruleset.contains("tcp dport 8081"),
        "{ruleset}"
    );

    let _httpd = web.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        www.path().to_str().unwrap(),
    ]);
    wait_until("httpd in the container", Duration::from_secs(5), || {
        web.http_get(&web_ip, 80).is_some()
    });
    let want = Some("hello-from-cri".to_string());
    assert_eq!(host.http_get("10.99.0.1", 8080), want, "node IP:8080");
    assert_eq!(host.http_get("127.0.0.1", 8080), want, "127.0.0.1:8080");
    assert_eq!(host.http_get("10.99.0.1", 8081), want, "HostIP-bound 8081");
    assert_eq!(
        host.http_get("127.0.0.1", 8081),
        None,
        "8081 is bound to 10.99.0.1 only"
    );

    // CHECK counts the rules the same mappings need.
    let mut check = conf.clone();
    check["prevResult"] = r.clone();
    PLUGINS
        .cni(&host, "CHECK", "cri-web", &web.path(), &check)
        .expect_ok("CHECK");

    // containerd passes the same runtimeConfig on DEL.
    PLUGINS
        .cni(&host, "DEL", "cri-web", &web.path(), &conf)
        .expect_ok("DEL with CRI mappings");
    assert_eq!(
        host.http_get("10.99.0.1", 8080),
        None,
        "mapping survived DEL"
    );
    assert!(
        !host.links().contains(&host_veth),
        "{host_veth} survived DEL"
    );
    assert!(!web.links().contains(&"eth0".to_string()));
    let ruleset = host.ruleset();
    assert!(!ruleset.contains("dport 808"), "{ruleset}");
    assert_no_leftovers(&host, data.path(), "cri", "cri-web");
    PLUGINS
        .cni(&host, "DEL", "cri-web", &web.path(), &conf)
        .expect_ok("second DEL");
}

#[test]
fn del_with_a_config_add_would_refuse_still_removes_the_attachment() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    // ADD with the spec's spelling: this test is about DEL alone.
    let mut good = cri_conf("crid", data.path(), "10.97.0.0/24");
    good["runtimeConfig"]["portMappings"] =
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut v = good.clone();
    v["runtimeConfig"]["portMappings"] = json!([{"HostPort": "eighty", "ContainerPort": 80}]);
    cases.push(("HostPort not a number", v));
    let mut v = good.clone();
    v["runtimeConfig"]["portMappings"] = json!([{"ContainerPort": 80, "Protocol": "sctp"}]);
    cases.push(("no HostPort, sctp", v));
    let mut v = good.clone();
    v["runtimeConfig"]["portMappings"] = json!("garbage");
    cases.push(("portMappings not a list", v));
    let mut v = good.clone();
    v["runtimeConfig"] = json!(5);
    cases.push(("runtimeConfig not an object", v));
    let mut v = good.clone();
    v["mtu"] = json!("big");
    v["bridge"] = json!("a-bridge-name-far-too-long");
    cases.push(("bad mtu and bridge", v));

    for (i, (what, bad)) in cases.iter().enumerate() {
        let cid = format!("crid{i}");
        let c = Netns::new("pbc");
        PLUGINS
            .cni(&host, "ADD", &cid, &c.path(), &good)
            .expect_ok("ADD");
        assert!(
            !leftovers(&host, data.path(), "crid", &cid).is_empty(),
            "ADD left no trace: the leak check is blind"
        );
        let out = PLUGINS.cni(&host, "DEL", &cid, &c.path(), bad);
        assert!(out.stderr.contains("ignores"), "{what}: {}", out.stderr);
        out.expect_ok(what);
        assert_no_leftovers(&host, data.path(), "crid", &cid);
        assert!(
            !c.links().contains(&"eth0".to_string()),
            "{what}: eth0 left"
        );
        PLUGINS
            .cni(&host, "DEL", &cid, &c.path(), bad)
            .expect_ok("second DEL");
    }

    // IPAM ranges that no longer parse: the store is still found by dataDir.
    let c = Netns::new("pbc");
    PLUGINS
        .cni(&host, "ADD", "crid-ipam", &c.path(), &good)
        .expect_ok("ADD");
    let mut v = good.clone();
    v["ipam"]["ranges"] = json!("garbage");
    PLUGINS
        .cni(&host, "DEL", "crid-ipam", &c.path(), &v)
        .expect_ok("DEL with broken ranges");
    assert_no_leftovers(&host, data.path(), "crid", "crid-ipam");

    // No IPAM section at all: the veth and the rules still go; the error
    // keeps the runtime retrying for the address, which a good DEL frees.
    PLUGINS
        .cni(&host, "ADD", "crid-noipam", &c.path(), &good)
        .expect_ok("ADD");
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("ipam");
    PLUGINS
        .cni(&host, "DEL", "crid-noipam", &c.path(), &v)
        .expect_err("DEL without ipam", 7);
    let left = leftovers(&host, data.path(), "crid", "crid-noipam");
    assert!(
        left.len() == 1 && left[0].starts_with("allocation"),
        "only the allocation should remain: {left:#?}"
    );
    PLUGINS
        .cni(&host, "DEL", "crid-noipam", &c.path(), &good)
        .expect_ok("good DEL");
    assert_no_leftovers(&host, data.path(), "crid", "crid-noipam");
    let mut links = host.links();
    links.sort();
    assert_eq!(links, vec!["lo".to_string(), "pbr0".to_string()]);
}

#[test]
fn add_refuses_a_malformed_cri_mapping_by_name_and_leaves_nothing() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let good = cri_conf("cria", data.path(), "10.98.0.0/24");
    let before = host_state(&host);
    for (mapping, want) in [
        (
            json!({"HostPort": "eighty", "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}),
            r#"HostPort "eighty""#,
        ),
        (
            json!({"HostPort": 8080, "ContainerPort": 0, "Protocol": "tcp", "HostIP": ""}),
            "ContainerPort 0",
        ),
        (
            json!({"HostPort": 8080, "ContainerPort": 80, "Protocol": "sctp", "HostIP": ""}),
            r#"Protocol "sctp""#,
        ),
        (
            json!({"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": "node-1"}),
            r#"HostIP "node-1""#,
        ),
        (
            json!({"hostPort": 8080, "HostPort": 8081, "ContainerPort": 80}),
            "HostPort",
        ),
    ] {
        let mut bad = good.clone();
        bad["runtimeConfig"]["portMappings"] = json!([cri_mapping(9090, 90), mapping]);
        let e = PLUGINS
            .cni(&host, "ADD", "cria1", &c.path(), &bad)
            .expect_err(want, 7);
        let msg = e["msg"].as_str().unwrap();
        assert!(
            msg.contains("portMappings[1]") && msg.contains(want),
            "{msg:?} should name {want:?}"
        );
        assert_eq!(host_state(&host), before, "{want}: ADD changed the host");
        assert_no_leftovers(&host, data.path(), "cria", "cria1");
        assert!(!c.links().contains(&"eth0".to_string()));
    }
}
