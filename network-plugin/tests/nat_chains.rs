//! ADD leaves existing NAT chains alone and creates only missing ones; a
//! chain of our name that is not what we create still makes ADD fail.

use polis_integration::cni::*;
use polis_integration::require_tool;
use serde_json::json;

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

/// Rules of `chain` in `ip polis` carrying the tag of container `cid`.
fn tagged_rules(host: &Netns, chain: &str, cid: &str) -> usize {
    let out = host.run_ok(&["nft", "list", "chain", "ip", "polis", chain]);
    let tag = format!("\"polis/nch/{cid}/eth0\"");
    out.lines().filter(|l| l.contains(&tag)).count()
}

#[test]
fn add_creates_only_missing_chains() {
    require_tool("nft");
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "nch",
        data.path(),
        json!([[{"subnet": "10.87.0.0/24"}]]),
        json!({"ipMasq": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 9191, "containerPort": 91}]}}),
    );
    let (a, b, c, d) = (
        Netns::new("pbc"),
        Netns::new("pbc"),
        Netns::new("pbc"),
        Netns::new("pbc"),
    );
    PLUGINS
        .cni(&host, "ADD", "n1", &a.path(), &conf)
        .expect_ok("ADD n1");
    let n1_output = tagged_rules(&host, "output", "n1");
    assert!(n1_output > 0, "port mapping put no rule in output");

    // An administrator removed one chain: the next ADD recreates it and
    // keeps the other chains (and their rules) as they were.
    host.run_ok(&["nft", "flush", "chain", "ip", "polis", "output"]);
    host.run_ok(&["nft", "delete", "chain", "ip", "polis", "output"]);
    PLUGINS
        .cni(&host, "ADD", "n2", &b.path(), &conf)
        .expect_ok("ADD n2 after chain removal");
    assert_eq!(tagged_rules(&host, "output", "n2"), n1_output);
    assert!(tagged_rules(&host, "prerouting", "n1") > 0);
    assert!(tagged_rules(&host, "postrouting", "n1") > 0);
    let listing = host.run_ok(&["nft", "list", "chain", "ip", "polis", "output"]);
    assert!(
        listing.contains("type nat hook output priority -100"),
        "{listing}"
    );

    // The whole table gone: everything is created again.
    host.run_ok(&["nft", "delete", "table", "ip", "polis"]);
    PLUGINS
        .cni(&host, "ADD", "n3", &c.path(), &conf)
        .expect_ok("ADD n3 after table removal");
    for chain in ["prerouting", "output", "postrouting"] {
        assert!(
            tagged_rules(&host, chain, "n3") > 0,
            "no n3 rule in {chain}"
        );
    }

    // A chain of our name hooked elsewhere is not taken for ours: ADD fails
    // (kernel failure) and rolls back.
    host.run_ok(&["nft", "flush", "chain", "ip", "polis", "output"]);
    host.run_ok(&["nft", "delete", "chain", "ip", "polis", "output"]);
    host.run_ok(&[
        "nft",
        "add chain ip polis output { type nat hook output priority 50; }",
    ]);
    PLUGINS
        .cni(&host, "ADD", "n4", &d.path(), &conf)
        .expect_err("ADD n4 with a foreign output chain", 101);
    assert_no_leftovers(&host, data.path(), "nch", "n4");

    for (cid, ns) in [("n1", &a), ("n2", &b), ("n3", &c)] {
        PLUGINS
            .cni(&host, "DEL", cid, &ns.path(), &conf)
            .expect_ok("DEL");
        assert_no_leftovers(&host, data.path(), "nch", cid);
    }
}
