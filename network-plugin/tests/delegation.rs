//! IPAM delegation both ways: polis-bridge delegating to the reference
//! host-local/static plugins, and the reference bridge delegating to polis-ipam.

use polis_integration::cni::*;
use serde_json::json;

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

#[test]
fn delegates_to_reference_host_local_and_static() {
    require_reference_plugin("host-local");
    require_reference_plugin("static");
    let host = Netns::new("pbh");
    let (c1, c2) = (Netns::new("pbc"), Netns::new("pbc"));
    let data = tempfile::tempdir().unwrap();
    let hl = json!({
        "cniVersion": "1.0.0", "name": "hl", "type": "polis-bridge", "bridge": "pbr0", "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.89.0.0/24"}]]}
    });
    let r = PLUGINS
        .cni(&host, "ADD", "hl1", &c1.path(), &hl)
        .expect_ok("ADD with host-local");
    let ip = result_ips(&r)[0].clone();
    assert!(ip.starts_with("10.89.0."), "{ip}");
    assert!(
        data.path().join("hl").join(&ip).exists(),
        "host-local recorded no allocation"
    );
    assert!(c1.ping("10.89.0.1"), "container cannot reach the gateway");

    let st = json!({
        "cniVersion": "1.0.0", "name": "st", "type": "polis-bridge", "bridge": "pbr0",
        "ipam": {"type": "static", "addresses": [{"address": "10.89.0.77/24", "gateway": "10.89.0.1"}]}
    });
    let r = PLUGINS
        .cni(&host, "ADD", "st1", &c2.path(), &st)
        .expect_ok("ADD with static");
    assert_eq!(result_ips(&r), vec!["10.89.0.77".to_string()]);
    assert!(
        c2.ping(&ip),
        "static-addressed container cannot reach the host-local one"
    );

    // host-local 1.1.1 predates GC and STATUS: they must not be sent to it.
    let mut gc = hl.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "hl1", "ifname": "eth0"}]);
    PLUGINS
        .cni(&host, "GC", "", "", &gc)
        .expect_ok("GC with a pre-1.1 delegate");
    PLUGINS
        .cni(&host, "STATUS", "", "", &gc)
        .expect_ok("STATUS with a pre-1.1 delegate");
    assert!(
        data.path().join("hl").join(&ip).exists(),
        "GC removed a valid host-local lease"
    );

    PLUGINS
        .cni(&host, "DEL", "hl1", &c1.path(), &hl)
        .expect_ok("DEL host-local");
    assert!(
        !data.path().join("hl").join(&ip).exists(),
        "host-local allocation survived DEL"
    );
    PLUGINS
        .cni(&host, "DEL", "st1", &c2.path(), &st)
        .expect_ok("DEL static");
    assert_no_leftovers(&host, data.path(), "hl", "hl1");
    assert_no_leftovers(&host, data.path(), "st", "st1");
}

#[test]
fn reference_bridge_delegates_to_polis_ipam() {
    let bridge = require_reference_plugin("bridge");
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "refbr0", "isGateway": true,
        "ipam": {"type": "polis-ipam", "dataDir": data.path(), "ranges": [[{"subnet": "10.91.0.0/24"}], [{"subnet": "fd91::/64"}]]}
    })
    .to_string();
    let bridge = bridge.to_str().unwrap();
    let r = PLUGINS
        .run(bridge, &host, "ADD", "ref1", &c.path(), "eth0", &conf)
        .expect_ok("reference bridge ADD");
    let ips = result_ips(&r);
    assert_eq!(ips.len(), 2, "{r}");
    assert!(
        data.path().join("refnet").join(&ips[0]).exists(),
        "polis-ipam recorded no allocation"
    );
    assert!(c.ping("10.91.0.1"));

    PLUGINS
        .run(bridge, &host, "DEL", "ref1", &c.path(), "eth0", &conf)
        .expect_ok("reference bridge DEL");
    assert_no_leftovers(&host, data.path(), "refnet", "ref1");
    let mut links = host.links();
    links.sort();
    assert_eq!(
        links,
        vec!["lo".to_string(), "refbr0".to_string()],
        "reference bridge left a veth"
    );

    // polis-ipam directly: CHECK fails for an owner without allocation.
    PLUGINS
        .run(
            PLUGINS.ipam,
            &host,
            "CHECK",
            "ref1",
            &c.path(),
            "eth0",
            &conf,
        )
        .expect_err("CHECK after DEL", 102);
    let v = PLUGINS
        .run(PLUGINS.ipam, &host, "VERSION", "", "", "", &conf)
        .expect_ok("VERSION");
    assert_eq!(v["cniVersion"], "1.0.0");
}
