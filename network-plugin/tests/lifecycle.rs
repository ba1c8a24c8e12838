//! DEL, CHECK, GC, STATUS and concurrent ADDs, each followed by a leak check.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use serde_json::json;

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
    cni(&host, "ADD", "d1", &c.path(), &conf).expect_ok("ADD");
    assert!(
        !leftovers(&host, data.path(), "del", "d1").is_empty(),
        "ADD left no trace: the leak check is blind"
    );
    cni(&host, "DEL", "d1", &c.path(), &conf).expect_ok("DEL");
    assert_no_leftovers(&host, data.path(), "del", "d1");
    cni(&host, "DEL", "d1", &c.path(), &conf).expect_ok("second DEL");

    // DEL of a container never added (no cached result, no netns given).
    cni(&host, "DEL", "never-added", "", &conf).expect_ok("DEL of unknown container");

    // DEL after the namespace is gone.
    let gone = Netns::new("pbc");
    let gone_path = gone.path();
    cni(&host, "ADD", "d2", &gone_path, &conf).expect_ok("ADD d2");
    drop(gone);
    cni(&host, "DEL", "d2", &gone_path, &conf).expect_ok("DEL after netns removal");
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
    let result = cni(&host, "ADD", "k1", &c.path(), &conf).expect_ok("ADD");
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    cni(&host, "CHECK", "k1", &c.path(), &check_conf).expect_ok("CHECK of a fresh attachment");

    // CHECK without prevResult is a configuration error.
    cni(&host, "CHECK", "k1", &c.path(), &conf).expect_err("CHECK without prevResult", 7);

    // A lost default route is drift too.
    c.run_ok(&["ip", "-6", "route", "del", "default"]);
    let e = cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_err("CHECK after route removal", 102);
    assert!(e["msg"].as_str().unwrap().contains("::/0"), "{e}");
    c.run_ok(&[
        "ip", "-6", "route", "add", "default", "via", "fd82::1", "dev", "eth0",
    ]);
    cni(&host, "CHECK", "k1", &c.path(), &check_conf).expect_ok("CHECK after restoring the route");

    let v4 = result_ips(&result)[0].clone();
    c.run_ok(&["ip", "addr", "del", &format!("{v4}/24"), "dev", "eth0"]);
    let e = cni(&host, "CHECK", "k1", &c.path(), &check_conf)
        .expect_err("CHECK after address removal", 102);
    assert!(e["msg"].as_str().unwrap().contains(&v4), "{e}");

    cni(&host, "DEL", "k1", &c.path(), &conf).expect_ok("DEL");
    cni(&host, "CHECK", "k1", &c.path(), &check_conf).expect_err("CHECK after DEL", 102);
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
    cni(&host, "ADD", "keep", &a.path(), &conf).expect_ok("ADD keep");
    cni(&host, "ADD", "stale", &b.path(), &conf).expect_ok("ADD stale");

    // A second network sharing the bridge: GC of "gcn" must not touch it.
    let other = net_conf(
        "other",
        data.path(),
        v4("10.84.0.0/24"),
        json!({"ipMasq": true}),
    );
    let o = Netns::new("pbc");
    cni(&host, "ADD", "foreign", &o.path(), &other).expect_ok("ADD foreign");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    cni(&host, "GC", "", "", &gc).expect_ok("GC");
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
    cni(&host, "GC", "", "", &conf).expect_err("GC without valid-attachments", 7);
    // GC is a 1.1 verb.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    cni(&host, "GC", "", "", &old).expect_err("GC with cniVersion 1.0.0", 1);

    for (cid, ns, c) in [
        ("keep", &a, &conf),
        ("stale", &b, &conf),
        ("foreign", &o, &other),
    ] {
        cni(&host, "DEL", cid, &ns.path(), c).expect_ok("DEL");
    }
    assert_no_leftovers(&host, data.path(), "gcn", "keep");
    assert_no_leftovers(&host, data.path(), "other", "foreign");
}

#[test]
fn status_and_version() {
    let host = Netns::new("pbh");
    let data = tempfile::tempdir().unwrap();
    let conf = net_conf("st", data.path(), v4("10.85.0.0/24"), json!({}));
    let out = cni(&host, "STATUS", "", "", &conf);
    assert!(out.ok, "STATUS failed: {}", out.json);
    // An unusable store (a file where the directory must be) is "not available".
    let blocked = data.path().join("blocked");
    std::fs::write(&blocked, "x").unwrap();
    let bad = net_conf("st", &blocked, v4("10.85.0.0/24"), json!({}));
    cni(&host, "STATUS", "", "", &bad).expect_err("STATUS with unusable dataDir", 50);

    let v = run_plugin(
        PLUGIN,
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
                    cni(&host, verb, &format!("par{i}"), &ns.path(), &conf).expect_ok(verb)
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
