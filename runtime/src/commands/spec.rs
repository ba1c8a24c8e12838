//! `spec`: write runc's default config.json (or its rootless variant) into the bundle, the
//! same document runc 1.1 writes, field for field: scripts and tools build bundles with
//! `spec` and then rely on its defaults (a terminal, a read-only root, deny-all devices).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::Spec as SpecArgs;

pub fn spec(args: SpecArgs) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = default_spec();
    if args.rootless {
        rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    let data = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, data + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(0)
}

fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The changes runc makes for `--rootless`: the caller mapped to root in a new user namespace,
/// no network namespace, no cgroup limits, devpts without a gid a user cannot give, and sysfs
/// bound from the host (a user cannot mount it).
fn rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    let mut namespaces: Vec<Value> = linux["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n["type"] != "network")
        .collect();
    namespaces.push(json!({"type": "user"}));
    linux["namespaces"] = Value::Array(namespaces);
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(l) = linux.as_object_mut() {
        l.remove("resources");
    }
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        } else if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
            opts.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("gid=")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses_as_an_oci_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec()).unwrap();
        assert_eq!(s.process().as_ref().unwrap().terminal(), Some(true));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    }

    #[test]
    fn rootless_spec_maps_the_caller_and_drops_netns() {
        let mut s = default_spec();
        rootless(&mut s, 1000, 1001);
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "user"]);
        assert_eq!(s["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(s["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(s["linux"].get("resources").is_none());
        let parsed: oci_spec::runtime::Spec = serde_json::from_value(s).unwrap();
        assert!(parsed.linux().as_ref().unwrap().resources().is_none());
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = spec(SpecArgs {
            bundle: dir.path().into(),
            rootless: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("exists"));
    }
}
