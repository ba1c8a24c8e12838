//! polis-runc's security basics and OCI features on real containers, compared with runc.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

use polis_integration::runtime::{
    both, run_captured, run_with, stderr, stdout, Container, Runtime,
};
use serde_json::json;

#[test]
fn seccomp_profile_denies_mkdir_with_the_given_errno() {
    let mut results = Vec::new();
    for rt in both() {
        let r = run_with(&rt, "seccomp", &["/bin/mkdir", "/tmp/denied"], |s, _| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
            });
        });
        assert_eq!(r.0, Some(1), "{}: {r:?}", rt.name);
        assert!(r.2.contains("Permission denied"), "{}: {r:?}", rt.name);
        results.push(r);
    }
    assert_eq!(results[0], results[1], "polis-runc and runc differ");
}

#[test]
fn readonly_rootfs_refuses_writes() {
    for rt in both() {
        let r = run_with(&rt, "ro", &["/bin/touch", "/newfile"], |s, _| {
            s["root"]["readonly"] = true.into();
        });
        assert_eq!(r.0, Some(1), "{}: {r:?}", rt.name);
        assert!(r.2.contains("Read-only file system"), "{}: {r:?}", rt.name);
    }
}

#[test]
fn user_namespace_maps_ids() {
    let mut results = Vec::new();
    for rt in both() {
        let r = run_with(
            &rt,
            "userns",
            &[
                "/bin/sh",
                "-c",
                "cat /proc/self/uid_map /proc/self/gid_map; id -u",
            ],
            |s, _| {
                let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
                ns.push(json!({"type": "user"}));
                s["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                s["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                // gid=5 does not exist in the mapped range's view; runc's rootless spec drops it too.
                for m in s["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == "/dev/pts" {
                        m["options"] = json!([
                            "nosuid",
                            "noexec",
                            "newinstance",
                            "ptmxmode=0666",
                            "mode=0620"
                        ]);
                    }
                    if m["destination"] == "/sys/fs/cgroup" {
                        m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "ro"]);
                    }
                }
            },
        );
        assert_eq!(r.0, Some(0), "{}: {r:?}", rt.name);
        let words: Vec<&str> = r.1.split_whitespace().collect();
        assert_eq!(
            words,
            ["0", "100000", "65536", "0", "100000", "65536", "0"],
            "{}",
            rt.name
        );
        results.push(r.1);
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn capabilities_nnp_and_masked_paths_match_runc() {
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; \
                  wc -c < /proc/timer_list; wc -c < /proc/keys; ls /sys/firmware | wc -l; \
                  awk '$5 == \"/proc/sys\" {split($6, o, \",\"); print $5, o[1]}' /proc/self/mountinfo";
    let mut results = Vec::new();
    for rt in both() {
        let r = run_with(&rt, "caps", &["/bin/sh", "-c", script], |_, _| {});
        assert_eq!(r.0, Some(0), "{}: {r:?}", rt.name);
        assert!(r.1.contains("NoNewPrivs:\t1"), "{}: {}", rt.name, r.1);
        assert!(r.1.contains("/proc/sys ro\n"), "{}: {}", rt.name, r.1);
        // CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE
        assert!(
            r.1.contains("CapEff:\t0000000020000420"),
            "{}: {}",
            rt.name,
            r.1
        );
        results.push(r.1);
    }
    assert_eq!(results[0], results[1], "polis-runc and runc differ");
}

#[test]
fn no_host_fd_leaks_into_the_container() {
    // An fd the caller forgot to mark close-on-exec must not reach the container
    // (CVE-2024-21626 class: a leaked directory fd lets a process escape the rootfs).
    let rt = Runtime::polis();
    let c = Container::new(
        &rt,
        "fds",
        &["/bin/sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd"],
    );
    let leaked = std::fs::File::open("/sys/fs/cgroup").unwrap();
    let raw = leaked.as_raw_fd();
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle", c.bundle_path(), &c.id]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec, so clear it explicitly.
            if libc::dup2(raw, 7) < 0 || libc::fcntl(7, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run_captured(&mut cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let fds: Vec<&str> = out.lines().take_while(|l| !l.starts_with('/')).collect();
    // ls itself holds one directory fd beyond stdio.
    assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
    assert!(out.lines().last() == Some("/"), "{out}");
    c.finish();
}

#[test]
fn runtime_binary_cannot_be_overwritten_from_a_container() {
    // CVE-2019-5736 class: a container that gets hold of /proc/<runtime>/exe must not be
    // able to write the host's runtime binary. Checked on a copy in a temp dir.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("polis-runc");
    std::fs::copy(polis_integration::polis_bin("polis-runc"), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let rt = Runtime::new("polis-runc copy", copy.clone());
    let c = Container::new(&rt, "exe", &["/bin/true"]);
    c.create();
    // In the created state the container's init is still the runtime binary, inside the
    // container's namespaces: exactly what an attacker would open.
    let pid = rt.state(&c.id)["pid"].as_i64().unwrap();
    let exe = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    rt.ok(&["delete", "--force", &c.id]);
    let reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    assert!(
        reopened.is_err(),
        "the runtime binary was writable through /proc/pid/exe"
    );
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    c.assert_clean();
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "hooks", &["/bin/true"]);
    let log = c.bundle.path().join("hooks.log");
    let hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("read -r s; echo {name} \"$s\" >> {}", log.display())]})
    };
    c.bundle
        .edit(|s| {
            s["hooks"] = json!({
                "prestart": [hook("prestart")],
                "createRuntime": [hook("createRuntime")],
                "poststart": [hook("poststart")],
                "poststop": [hook("poststop")],
            });
        })
        .unwrap();
    let o = c.run();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        ["prestart", "createRuntime", "poststart", "poststop"],
        "{text}"
    );
    for line in text.lines() {
        let state: serde_json::Value =
            serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        assert_eq!(state["id"], c.id.as_str(), "{line}");
        assert_eq!(state["bundle"], c.bundle_path(), "{line}");
    }
    c.finish();
}

#[test]
fn hook_timeout_fails_create_and_leaves_nothing() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "hooktmo", &["/bin/true"]);
    c.bundle
        .edit(|s| {
            s["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
        })
        .unwrap();
    let start = std::time::Instant::now();
    let o = rt.run(&["create", "--bundle", c.bundle_path(), &c.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(start.elapsed().as_secs() < 20, "timeout not honoured");
    assert!(stderr(&o).contains(&c.id), "{}", stderr(&o));
    c.assert_clean();
}

#[test]
fn container_side_hooks_run_in_the_container() {
    // createContainer and startContainer run inside the container's namespaces (the hostname is
    // the container's); startContainer runs after pivot_root, so its /tmp is the rootfs's.
    let rt = Runtime::polis();
    let c = Container::new(&rt, "inhooks", &["/bin/true"]);
    c.bundle
        .edit(|s| {
            s["hooks"] = json!({
                // createContainer runs before pivot_root: its paths are still the host's.
                "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
                    format!("hostname > {}/create-hook", c.bundle_path())]}],
                "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo start > /tmp/start-hook"]}],
            });
        })
        .unwrap();
    let o = c.run();
    assert!(o.status.success(), "{}", stderr(&o));
    let tmp = c.bundle.rootfs().join("tmp");
    let created = c.bundle.path().join("create-hook");
    assert_eq!(std::fs::read_to_string(created).unwrap(), "polis\n");
    assert_eq!(
        std::fs::read_to_string(tmp.join("start-hook")).unwrap(),
        "start\n"
    );
    c.finish();
}

#[test]
fn each_container_gets_its_own_session_keyring_unless_told_not_to() {
    // Keyrings are not namespaced: without a keyring of its own a container would share its
    // caller's. /proc/keys is unmasked here so the container can list what it can see.
    for rt in both() {
        for no_new in [false, true] {
            let c = Container::new(&rt, "keyring", &["/bin/sh", "-c", "cat /proc/keys"]);
            c.bundle
                .edit(|s| {
                    let masked = s["linux"]["maskedPaths"].as_array_mut().unwrap();
                    masked.retain(|p| p != "/proc/keys");
                })
                .unwrap();
            let mut args = vec!["run"];
            if no_new {
                args.push("--no-new-keyring");
            }
            args.extend(["--bundle", c.bundle_path(), &c.id]);
            let o = rt.run(&args);
            assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
            let own = format!("_ses.{}:", c.id);
            assert_eq!(
                stdout(&o).contains(&own),
                !no_new,
                "{} (--no-new-keyring={no_new}): {}",
                rt.name,
                stdout(&o)
            );
            c.finish();
        }
    }
}
