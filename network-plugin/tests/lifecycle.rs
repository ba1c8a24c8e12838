//! DEL, CHECK, GC, STATUS and concurrent ADDs, each followed by a leak check.

use std::collections::HashSet;
use std::sync::Arc;

use polis_integration::cni::*;
use serde_json::json;

const PLUGINS: Plugins = Plugins {
    bridge: env!("CARGO_BIN_EXE_polis-bridge"),
    ipam: env!("CARGO_BIN_EXE_polis-ipam"),
};

fn v4(subnet: &str) -> serde_json::Value {
    json!([[{"subnet": subnet}]])
}

#[test]
fn del_is_idempotent_and_complete() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "del",
        data.path(),
        v4("10.81.0.0/24"),
        json!({"ipMasq": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 9090, "containerPort": 90}]}}),
    );

    // DEL twice after ADD.
    let c = Netns::new("pbc");
    PLUGINS
        .cni(&host, "ADD", "d1", &c.path(), &conf)
        .expect_ok("ADD");
    assert!(
        !leftovers(&host, data.path(), "del", "d1").is_empty(),
        "ADD left no trace: the leak check is blind"
    );
    PLUGINS
        .cni(&host, "DEL", "d1", &c.path(), &conf)
        .expect_ok("DEL");
    assert_no_leftovers(&host, data.path(), "del", "d1");
    PLUGINS
        .cni(&host, "DEL", "d1", &c.path(), &conf)
        .expect_ok("second DEL");

    // DEL of a container never added (no cached result, no netns given).
    PLUGINS
        .cni(&host, "DEL", "never-added", "", &conf)
        .expect_ok("DEL of unknown container");

    // DEL after the namespace is gone.
    let gone = Netns::new("pbc");
    let gone_path = gone.path();
    PLUGINS
        .cni(&host, "ADD", "d2", &gone_path, &conf)
        .expect_ok("ADD d2");
    drop(gone);
    PLUGINS
        .cni(&host, "DEL", "d2", &gone_path, &conf)
        .expect_ok("DEL after netns removal");
    assert_no_leftovers(&host, data.path(), "del", "d2");
    // Only the bridge and lo remain in the host.
    let mut links = host.links();
    links.sort();
    assert_eq!(links, vec!["lo".to_string(), "pbr0".to_string()]);
}

#[test]
fn check_passes_then_reports_drift() {
    let host = Netns::new("pbh");
    let c = Netns::new("pbc");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "chk",
        data.path(),
        json!([[{"subnet": "10.82.0.0/24"}], [{"subnet": "fd82::/64"}]]),
        json!({"ipMasq": true}),
    );
    let result = PLUGINS
        .cni(&host, "ADD", "k1", &c.path(), &conf)
        .expect_ok("ADD");
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_ok("CHECK of a fresh attachment");

    // CHECK without prevResult is a configuration error.
    PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &conf)
        .expect_err("CHECK without prevResult", 7);

    // A lost default route is drift too.
    c.run_ok(&["ip", "-6", "route", "del", "default"]);
    let e = PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_err("CHECK after route removal", 102);
    assert!(e["msg"].as_str().unwrap().contains("::/0"), "{e}");
    c.run_ok(&[
        "ip", "-6", "route", "add", "default", "via", "fd82::1", "dev", "eth0",
    ]);
    PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_ok("CHECK after restoring the route");

    let v4 = result_ips(&result)[0].clone();
    c.run_ok(&["ip", "addr", "del", &format!("{v4}/24"), "dev", "eth0"]);
    let e = PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_err("CHECK after address removal", 102);
    assert!(e["msg"].as_str().unwrap().contains(&v4), "{e}");

    PLUGINS
        .cni(&host, "DEL", "k1", &c.path(), &conf)
        .expect_ok("DEL");
    PLUGINS
        .cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_err("CHECK after DEL", 102);
    assert_no_leftovers(&host, data.path(), "chk", "k1");
}

#[test]
fn gc_removes_attachments_not_in_valid_list() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf(
        "gcn",
        data.path(),
        v4("10.83.0.0/24"),
        json!({"ipMasq": true}),
    );
    let (a, b) = (Netns::new("pbc"), Netns::new("pbc"));
    PLUGINS
        .cni(&host, "ADD", "keep", &a.path(), &conf)
        .expect_ok("ADD keep");
    PLUGINS
        .cni(&host, "ADD", "stale", &b.path(), &conf)
        .expect_ok("ADD stale");

    // A second network sharing the bridge: GC of "gcn" must not touch it.
    let other = net_conf(
        "other",
        data.path(),
        v4("10.84.0.0/24"),
        json!({"ipMasq": true}),
    );
    let o = Netns::new("pbc");
    PLUGINS
        .cni(&host, "ADD", "foreign", &o.path(), &other)
        .expect_ok("ADD foreign");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    PLUGINS.cni(&host, "GC", "", "", &gc).expect_ok("GC");
    assert_no_leftovers(&host, data.path(), "gcn", "stale");
    assert!(
        !leftovers(&host, data.path(), "gcn", "keep").is_empty(),
        "GC removed a valid attachment"
    );
    assert!(
        !leftovers(&host, data.path(), "other", "foreign").is_empty(),
        "GC touched another network"
    );

    // GC without the list is refused rather than removing everything.
    PLUGINS
        .cni(&host, "GC", "", "", &conf)
        .expect_err("GC without valid-attachments", 7);
    // GC is a 1.1 verb.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    PLUGINS
        .cni(&host, "GC", "", "", &old)
        .expect_err("GC with cniVersion 1.0.0", 1);

    for (cid, ns, c) in [
        ("keep", &a, &conf),
        ("stale", &b, &conf),
        ("foreign", &o, &other),
    ] {
        PLUGINS
            .cni(&host, "DEL", cid, &ns.path(), c)
            .expect_ok("DEL");
    }
    assert_no_leftovers(&host, data.path(), "gcn", "keep");
    assert_no_leftovers(&host, data.path(), "other", "foreign");
}

#[test]
fn status_and_version() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf("st", data.path(), v4("10.85.0.0/24"), json!({}));
    let out = PLUGINS.cni(&host, "STATUS", "", "", &conf);
    assert!(out.ok, "STATUS failed: {}", out.json);
    // An unusable store (a file where the directory must be) is "not available".
    let blocked = data.path().join("blocked");
    std::fs::write(&blocked, "x").unwrap();
    let bad = net_conf("st", &blocked, v4("10.85.0.0/24"), json!({}));
    PLUGINS
        .cni(&host, "STATUS", "", "", &bad)
        .expect_err("STATUS with unusable dataDir", 50);

    let v = PLUGINS
        .run(
            PLUGINS.bridge,
            &host,
            "VERSION",
            "",
            "",
            "",
            r#"{"cniVersion":"1.0.0"}"#,
        )
        .expect_ok("VERSION");
    assert_eq!(v["cniVersion"], "1.0.0");
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.contains(&want), "{versions:?}");
    }
}

#[test]
fn fifty_parallel_adds_get_distinct_addresses() {
    const N: usize = 50;
    let host = Arc::new(Netns::new("pbh"));
    let data = tempfile::tempdir().unwrap();
    let conf = Arc::new(net_conf(
        "par",
        data.path(),
        v4("10.86.0.0/24"),
        json!({"ipMasq": true}),
    ));
    let netns: Vec<Arc<Netns>> = (0..N).map(|_| Arc::new(Netns::new("pbp"))).collect();

    let run_all = |verb: &'static str| -> Vec<serde_json::Value> {
        let handles: Vec<_> = netns
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (host, ns, conf) = (host.clone(), ns.clone(), conf.clone());
                std::thread::spawn(move || {
                    PLUGINS
                        .cni(&host, verb, &format!("par{i}"), &ns.path(), &conf)
                        .expect_ok(verb)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("plugin thread"))
            .collect()
    };

    let results = run_all("ADD");
    let ips: HashSet<String> = results.iter().map(|r| result_ips(r)[0].clone()).collect();
    assert_eq!(ips.len(), N, "duplicate addresses handed out");
    let files = std::fs::read_dir(data.path().join("par"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("10.86.")
        });
    assert_eq!(files.count(), N);
    let veths = host
        .links()
        .iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    assert_eq!(veths, N);

    run_all("DEL");
    for i in 0..N {
        assert_no_leftovers(&host, data.path(), "par", &format!("par{i}"));
    }
}

/// DEL isolates the host veth at once (off the bridge, down) and leaves deleting it to a
/// child: an ADD of the same attachment right after DEL succeeds, and a veth left detached (its
/// child never ran) is deleted by the next ADD of its attachment, or else by GC.
#[test]
fn del_isolates_at_once_and_readd_or_gc_finish_the_deletion() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf("defer", data.path(), v4("10.86.0.0/24"), json!({}));
    let c = Netns::new("pbc");
    let out = PLUGINS.cni(&host, "ADD", "r1", &c.path(), &conf);
    assert!(out.ok, "ADD failed: {}", out.json);
    let host_veth = out.json["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let ip = result_ips(&out.json)[0].clone();
    assert!(host.ping(&ip), "pod {ip} unreachable before DEL");

    // Re-ADD right after DEL, many times, racing the child's delete.
    for round in 0..20 {
        PLUGINS
            .cni(&host, "DEL", "r1", &c.path(), &conf)
            .expect_ok("DEL");
        let shown = host.run(&["ip", "-o", "link", "show", &host_veth]);
        let line = String::from_utf8_lossy(&shown.stdout).to_string();
        assert!(
            !line.contains(" master ") && !line.contains(",UP"),
            "round {round}: {host_veth} still bridged or up right after DEL: {line}"
        );
        let again = PLUGINS.cni(&host, "ADD", "r1", &c.path(), &conf);
        assert!(
            again.ok,
            "round {round}: ADD right after DEL: {}",
            again.json
        );
        let ip = result_ips(&again.json)[0].clone();
        assert!(
            host.ping(&ip),
            "round {round}: pod {ip} unreachable after re-ADD"
        );
    }
    PLUGINS
        .cni(&host, "DEL", "r1", &c.path(), &conf)
        .expect_ok("last DEL");
    assert_no_leftovers(&host, data.path(), "defer", "r1");

    // The kernel frees the name as soon as the child's delete request is in, so the state
    // where a DEL's child has not run (or died) is made by hand: off the bridge and down.
    let detach = |cid: &str| {
        let tag = format!("polis/defer/{cid}/");
        let veth = host
            .run_ok(&["ip", "-o", "link", "show", "type", "veth"])
            .lines()
            .find(|l| l.contains(&tag))
            .and_then(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{cid}'s host veth"));
        host.run_ok(&["ip", "link", "set", &veth, "nomaster", "down"]);
        veth
    };
    let mut gc_conf = conf.clone();
    gc_conf["cniVersion"] = json!("1.1.0");

    // An ADD of the same attachment deletes it first.
    PLUGINS
        .cni(&host, "ADD", "r2", &c.path(), &gc_conf)
        .expect_ok("ADD r2");
    detach("r2");
    let again = PLUGINS.cni(&host, "ADD", "r2", &c.path(), &gc_conf);
    assert!(again.ok, "ADD over a detached veth: {}", again.json);
    let ip = result_ips(&again.json)[0].clone();
    assert!(
        host.ping(&ip),
        "pod {ip} unreachable after ADD over a detached veth"
    );
    PLUGINS
        .cni(&host, "DEL", "r2", &c.path(), &gc_conf)
        .expect_ok("DEL r2");
    assert_no_leftovers(&host, data.path(), "defer", "r2");

    // GC removes one no ADD came for.
    PLUGINS
        .cni(&host, "ADD", "r3", &c.path(), &gc_conf)
        .expect_ok("ADD r3");
    let veth3 = detach("r3");
    let mut gc = gc_conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    PLUGINS.cni(&host, "GC", "", "", &gc).expect_ok("GC");
    let left = host.run(&["ip", "link", "show", &veth3]);
    assert!(!left.status.success(), "GC left the detached {veth3}");
    assert_no_leftovers(&host, data.path(), "defer", "r3");
}
