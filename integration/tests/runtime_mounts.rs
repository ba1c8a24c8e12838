//! Mount options as CRI and podman use them, compared with runc on the same bundle: every
//! option `features` advertises, `tmpcopyup` (podman --read-only/--tmpfs), bind propagation
//! (CRI's HostToContainer and Bidirectional mounts) and a masked path that is a symlink.

use std::path::PathBuf;
use std::process::Command;

use polis_integration::runtime::{both, run_with, stderr, stdout, Container, Runtime};
use serde_json::{json, Value};

/// Every mount option polis-runc's `features` lists works wherever runc's does: a tmpfs at
/// /mnt with the option (a bind mount of a host dir for the bind-only ones).
#[test]
fn every_advertised_mount_option_works_as_with_runc() {
    let polis = Runtime::polis();
    let features: Value = serde_json::from_str(&polis.ok(&["features"])).unwrap();
    let options: Vec<String> = features["mountOptions"]
        .as_array()
        .expect("mountOptions in features")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(options.len() > 20, "{options:?}");
    let src = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    for opt in &options {
        let bind = opt.contains("bind") || opt == "rro" || opt == "rrw";
        let mount = if bind {
            json!({"destination": "/mnt", "type": "bind", "source": src.path(), "options": ["rbind", opt]})
        } else {
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": [opt]})
        };
        let results: Vec<_> = both()
            .iter()
            .map(|rt| {
                run_with(rt, "mountopt", &["/bin/true"], |s, _| {
                    s["mounts"].as_array_mut().unwrap().push(mount.clone());
                })
            })
            .collect();
        let (p, r) = (&results[0], &results[1]);
        if r.0 == Some(0) && p.0 != Some(0) {
            differ.push(format!("{opt}: runc runs it, polis-runc: {}", p.2.trim()));
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

/// A read-only rootfs with a writable /etc that still holds the image's files (podman
/// --read-only mounts /run, /tmp, /var/tmp this way).
#[test]
fn tmpcopyup_fills_the_tmpfs_with_what_it_hides() {
    let mut seen = Vec::new();
    for rt in both() {
        let r = run_with(
            &rt,
            "copyup",
            &[
                "/bin/sh",
                "-c",
                "cat /etc/passwd | head -1; touch /etc/new && echo wrote; \
                 ls -l /etc/mtab-link | sed 's/.*-> //'; stat -c %a /etc; \
                 touch /rootfs-write 2>/dev/null || echo ro-root",
            ],
            |s, rootfs| {
                std::os::unix::fs::symlink("/proc/mounts", rootfs.join("etc/mtab-link")).unwrap();
                std::fs::set_permissions(
                    rootfs.join("etc"),
                    std::os::unix::fs::PermissionsExt::from_mode(0o751),
                )
                .unwrap();
                s["root"]["readonly"] = true.into();
                s["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                    "options": ["rw", "nosuid", "nodev", "tmpcopyup"]
                }));
            },
        );
        assert_eq!(r.0, Some(0), "{}: {r:?}", rt.name);
        assert_eq!(
            r.1, "root:x:0:0:root:/root:/bin/sh\nwrote\n/proc/mounts\n751\nro-root\n",
            "{}",
            rt.name
        );
        seen.push(r);
    }
    assert_eq!(seen[0], seen[1]);
}

/// A host directory on a shared mount of its own; unmounted (with what is under it) on drop.
struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("polis-propagation-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        sh(&format!(
            "mount --bind {0} {0} && mount --make-shared {0}",
            p.display()
        ));
        std::fs::create_dir(p.join("sub")).unwrap();
        Self { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.dir.path())
            .status();
    }
}

fn sh(script: &str) {
    let o = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(o.status.success(), "{script}: {o:?}");
}

/// CRI's HostToContainer (rslave + rootfsPropagation rslave) and Bidirectional (rshared +
/// rshared): a mount made on the host under the source after the start shows inside, and the
/// mount's propagation in mountinfo is what runc gives.
#[test]
fn bind_propagation_modes_work_as_with_runc() {
    for (mode, root_prop) in [
        ("rslave", "rslave"),
        ("rshared", "rshared"),
        ("rprivate", "rprivate"),
        ("slave", "slave"),
        ("shared", "shared"),
        ("private", "private"),
    ] {
        let mut seen = Vec::new();
        for rt in both() {
            let shared = SharedDir::new();
            let c = Container::new(&rt, "prop", &["/bin/sleep", "300"]);
            c.bundle
                .edit(|s| {
                    s["linux"]["rootfsPropagation"] = root_prop.into();
                    s["mounts"].as_array_mut().unwrap().push(json!({
                        "destination": "/host", "type": "bind", "source": shared.path(),
                        "options": ["rbind", mode]
                    }));
                })
                .unwrap();
            let o = rt.run(&["run", "-d", "--bundle", c.bundle_path(), &c.id]);
            assert!(o.status.success(), "{} {mode}: {}", rt.name, stderr(&o));
            rt.wait_status(&c.id, "running");
            // a mount made on the host after the start
            let sub = shared.path().join("sub");
            sh(&format!("mount -t tmpfs polis-prop {}", sub.display()));
            std::fs::write(sub.join("seen"), "from-host").unwrap();
            let o = rt.run(&[
                "exec",
                &c.id,
                "/bin/sh",
                "-c",
                "cat /host/sub/seen 2>/dev/null || echo not-seen; \
                 grep ' /host ' /proc/self/mountinfo | grep -oE '(shared|master):' | sort | tr '\\n' ' '",
            ]);
            assert!(o.status.success(), "{} {mode}: {}", rt.name, stderr(&o));
            let got = stdout(&o);
            c.finish();
            drop(shared);
            seen.push((rt.name, got));
        }
        let want_seen = !mode.contains("private");
        assert_eq!(
            seen[1].1.starts_with("from-host"),
            want_seen,
            "runc {mode}: {seen:?}"
        );
        assert_eq!(seen[0].1, seen[1].1, "{mode}: polis-runc and runc differ");
    }
}

/// A masked path that is a symlink in the image: the same outcome as runc (the run works, and
/// what the container sees through it and its target matches).
#[test]
fn a_masked_path_that_is_a_symlink_is_handled_as_runc_does() {
    let mut seen = Vec::new();
    for rt in both() {
        let r = run_with(
            &rt,
            "masklink",
            &[
                "/bin/sh",
                "-c",
                "echo link:$(cat /masklink 2>&1 | head -1); echo target:$(head -1 /etc/passwd); \
                 echo dirlink:$(ls /maskdir 2>&1 | head -1)",
            ],
            |s, rootfs| {
                std::os::unix::fs::symlink("/etc/passwd", rootfs.join("masklink")).unwrap();
                std::fs::create_dir(rootfs.join("realdir")).unwrap();
                std::fs::write(rootfs.join("realdir/inside"), "x").unwrap();
                std::os::unix::fs::symlink("/realdir", rootfs.join("maskdir")).unwrap();
                std::os::unix::fs::symlink("/nonexistent", rootfs.join("dangling")).unwrap();
                s["linux"]["maskedPaths"].as_array_mut().unwrap().extend([
                    json!("/masklink"),
                    json!("/maskdir"),
                    json!("/dangling"),
                ]);
            },
        );
        seen.push((rt.name, r));
    }
    assert_eq!(seen[1].1 .0, Some(0), "runc: {seen:?}");
    assert_eq!(
        seen[0].1, seen[1].1,
        "polis-runc and runc differ: {seen:#?}"
    );
}
