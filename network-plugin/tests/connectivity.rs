//! Real traffic through attachments made by polis-bridge: container to
//! container (IPv4 and IPv6), host port mappings, outbound masquerade.
//! Every namespace is created by the test: one plays the host.

use std::time::Duration;

use polis_integration::cni::*;
use polis_integration::{require_tool, unique_short, wait_until};
use serde_json::json;

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

fn dual_stack() -> serde_json::Value {
    json!([[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]])
}

#[test]
fn containers_reach_each_other_over_the_bridge_v4_and_v6() {
    require_tool("busybox");
    let host = Netns::new("pbh");
    let (c1, c2) = (Netns::new("pbc"), Netns::new("pbc"));
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "conn",
        data.path(),
        dual_stack(),
        json!({"mtu": 1400, "promiscMode": true}),
    );

    let r1 = PLUGINS
        .cni(&host, "ADD", "ping-a", &c1.path(), &conf)
        .expect_ok("ADD a");
    let r2 = PLUGINS
        .cni(&host, "ADD", "ping-b", &c2.path(), &conf)
        .expect_ok("ADD b");

    // Result shape: bridge, host veth, container interface (with sandbox).
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3);
    assert_eq!(ifs[0]["name"], "pbr0");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], c1.path().as_str());
    assert_eq!(ifs[2]["mtu"], 1400);
    assert_eq!(r1["cniVersion"], "1.1.0");
    for ip in r1["ips"].as_array().unwrap() {
        assert_eq!(ip["interface"], 2);
    }
    let routes: Vec<&str> = r1["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap())
        .collect();
    assert!(
        routes.contains(&"0.0.0.0/0") && routes.contains(&"::/0"),
        "{routes:?}"
    );

    let ips1 = result_ips(&r1);
    let ips2 = result_ips(&r2);
    assert_eq!(ips1.len(), 2);
    assert_ne!(ips1, ips2);
    // The container sees the addresses the result claims.
    let addrs = c1.run_ok(&["ip", "addr", "show", "eth0"]);
    assert!(addrs.contains("mtu 1400"), "mtu not applied: {addrs}");
    let bridge = host.run_ok(&["ip", "link", "show", "pbr0"]);
    assert!(
        bridge.contains("PROMISC") && bridge.contains("mtu 1400"),
        "bridge flags: {bridge}"
    );
    for ip in &ips1 {
        assert!(addrs.contains(ip.as_str()), "{ip} not on eth0: {addrs}");
    }
    for (from, to) in [(&c1, &ips2), (&c2, &ips1)] {
        for ip in to {
            assert!(from.ping(ip), "{} cannot ping {ip}", from.name);
        }
    }
    // The host (gateway) reaches containers too.
    assert!(host.ping(&ips1[0]));

    PLUGINS
        .cni(&host, "DEL", "ping-a", &c1.path(), &conf)
        .expect_ok("DEL a");
    PLUGINS
        .cni(&host, "DEL", "ping-b", &c2.path(), &conf)
        .expect_ok("DEL b");
    assert!(
        !c1.links().contains(&"eth0".to_string()),
        "eth0 left in container"
    );
    assert!(!c2.ping(&ips1[0]), "a deleted container still answers");
    assert_no_leftovers(&host, data.path(), "conn", "ping-a");
    assert_no_leftovers(&host, data.path(), "conn", "ping-b");
}

#[test]
fn port_mapping_reached_from_host_localhost_and_containers() {
    require_tool("busybox");
    let host = Netns::new("pbh");
    // The node's own address: on lo, as the kernel has no dummy interfaces.
    host.run_ok(&["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);
    host.run_ok(&["ip", "addr", "add", "fd99::1/128", "dev", "lo", "nodad"]);
    let (web, client) = (Netns::new("pbc"), Netns::new("pbc"));
    let data = tempfile::tempdir().unwrap();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello-from-polis\n").unwrap();

    let base = net_conf(
        "pm",
        data.path(),
        json!([[{"subnet": "10.78.0.0/24"}]]),
        json!({"hairpinMode": true, "ipMasq": true}),
    );
    let mut with_ports = base.clone();
    with_ports["runtimeConfig"] = json!({"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "10.99.0.1"}
    ]});
    let r = PLUGINS
        .cni(&host, "ADD", "web", &web.path(), &with_ports)
        .expect_ok("ADD web");
    PLUGINS
        .cni(&host, "ADD", "client", &client.path(), &base)
        .expect_ok("ADD client");
    let web_ip = result_ips(&r)[0].clone();

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

    let want = Some("hello-from-polis".to_string());
    assert_eq!(
        host.http_get("10.99.0.1", 8080),
        want,
        "host -> node IP:8080"
    );
    assert_eq!(
        host.http_get("127.0.0.1", 8080),
        want,
        "host -> 127.0.0.1:8080"
    );
    assert_eq!(
        host.http_get("10.99.0.1", 8081),
        want,
        "host -> hostIP-bound 8081"
    );
    assert_eq!(
        host.http_get("127.0.0.1", 8081),
        None,
        "8081 is bound to 10.99.0.1 only"
    );
    assert_eq!(
        client.http_get("10.99.0.1", 8080),
        want,
        "other container -> node IP (hairpin)"
    );
    assert_eq!(
        web.http_get("10.99.0.1", 8080),
        want,
        "container -> its own mapping (hairpin)"
    );

    // DEL without runtimeConfig (no cached result) still removes the mappings.
    PLUGINS
        .cni(&host, "DEL", "web", &web.path(), &base)
        .expect_ok("DEL web");
    assert_eq!(
        host.http_get("10.99.0.1", 8080),
        None,
        "mapping survived DEL"
    );
    PLUGINS
        .cni(&host, "DEL", "client", &client.path(), &base)
        .expect_ok("DEL client");
    assert_no_leftovers(&host, data.path(), "pm", "web");
    assert_no_leftovers(&host, data.path(), "pm", "client");
}

#[test]
fn outbound_traffic_is_masqueraded_only_with_ip_masq() {
    require_tool("busybox");
    let host = Netns::new("pbh");
    let outside = Netns::new("pbo");
    // A link host <-> outside; outside has no route back to the container
    // subnets, so only masqueraded traffic gets answers.
    let (h_if, o_if) = (unique_short("pbu"), unique_short("pbv"));
    host.run_ok(&[
        "ip",
        "link",
        "add",
        &h_if,
        "type",
        "veth",
        "peer",
        "name",
        &o_if,
        "netns",
        &outside.name,
    ]);
    host.run_ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", &h_if]);
    host.run_ok(&["ip", "link", "set", &h_if, "up"]);
    outside.run_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", &o_if]);
    outside.run_ok(&["ip", "link", "set", &o_if, "up"]);

    let data = tempfile::tempdir().unwrap();
    let masq = net_conf(
        "masq",
        data.path(),
        json!([[{"subnet": "10.79.0.0/24"}]]),
        json!({"ipMasq": true}),
    );
    let plain = net_conf(
        "plain",
        data.path(),
        json!([[{"subnet": "10.80.0.0/24"}]]),
        json!({"bridge": "pbr1"}),
    );
    let (c1, c2) = (Netns::new("pbc"), Netns::new("pbc"));
    PLUGINS
        .cni(&host, "ADD", "out-m", &c1.path(), &masq)
        .expect_ok("ADD masq");
    PLUGINS
        .cni(&host, "ADD", "out-p", &c2.path(), &plain)
        .expect_ok("ADD plain");

    assert!(
        c1.ping("198.51.100.2"),
        "masqueraded container cannot reach the outside"
    );
    assert!(
        !c2.ping("198.51.100.2"),
        "un-masqueraded container got an answer: the test proves nothing"
    );

    PLUGINS
        .cni(&host, "DEL", "out-m", &c1.path(), &masq)
        .expect_ok("DEL masq");
    assert!(
        !host.ruleset().contains("masquerade"),
        "masquerade rule left behind"
    );
    PLUGINS
        .cni(&host, "DEL", "out-p", &c2.path(), &plain)
        .expect_ok("DEL plain");
    assert_no_leftovers(&host, data.path(), "masq", "out-m");
    assert_no_leftovers(&host, data.path(), "plain", "out-p");
}
