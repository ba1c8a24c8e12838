//! OCI bundles and image archives built offline from busybox-static.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Fills `rootfs` with /bin/busybox, its applet links and the usual empty directories.
pub fn busybox_rootfs(rootfs: &Path) -> Result<()> {
    let busybox = crate::require_tool("busybox");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "sys", "dev", "tmp", "etc", "root", "var"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(&busybox, bin.join("busybox"))
        .with_context(|| format!("failed to copy {}", busybox.display()))?;
    let out = Command::new(&busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let link = bin.join(applet);
        if !link.exists() {
            symlink("busybox", &link)?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n")?;
    Ok(())
}

/// How many inodes `busybox_rootfs` makes, its root directory included: what an image layer
/// of it holds.
pub fn busybox_rootfs_inodes() -> Result<usize> {
    fn count(dir: &Path) -> Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            n += 1;
            if e.file_type()?.is_dir() {
                n += count(&e.path())?;
            }
        }
        Ok(n)
    }
    let tmp = tempfile::Builder::new().prefix("polis-rootfs-").tempdir()?;
    busybox_rootfs(tmp.path())?;
    Ok(1 + count(tmp.path())?)
}

/// runc's default `config.json` (what `runc spec` writes), with the given args, no terminal,
/// and a cgroups path of our own so leak checks know where to look.
pub fn default_spec(args: &[&str], cgroups_path: &str) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "polis",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A busybox bundle in a temporary directory, removed on drop.
pub struct Bundle {
    dir: tempfile::TempDir,
    pub cgroups_path: String,
}

impl Bundle {
    /// `name` (unique to the test, `polis-...`) is the cgroups path (`/<name>`): a top-level
    /// cgroup of its own in every hierarchy, which the container's delete removes, so no
    /// parent shared between tests is left behind.
    pub fn new(name: &str, args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("polis-bundle-").tempdir()?;
        busybox_rootfs(&dir.path().join("rootfs"))?;
        let cgroups_path = format!("/{name}");
        let b = Self { dir, cgroups_path };
        b.write_spec(&default_spec(args, &b.cgroups_path))?;
        Ok(b)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn spec(&self) -> Result<Value> {
        let data = std::fs::read(self.path().join("config.json"))?;
        Ok(serde_json::from_slice(&data)?)
    }

    pub fn write_spec(&self, spec: &Value) -> Result<()> {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(spec)?,
        )?;
        Ok(())
    }

    /// Edits config.json in place.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) -> Result<()> {
        let mut spec = self.spec()?;
        f(&mut spec);
        self.write_spec(&spec)
    }
}

/// Builds an OCI image layout of busybox with umoci and packs it as a tar that
/// `ctr images import` accepts. `out` is the tar file to write.
pub fn busybox_image_archive(out: &Path) -> Result<()> {
    image_archive(
        out,
        busybox_rootfs,
        &["--config.cmd", "/bin/sh", "--config.env", "PATH=/bin"],
    )
}

/// A pod sandbox ("pause") image: only a static `/pause` built from
/// `integration/fixtures/pause.c`, as its entrypoint, and no Env at all (as pause images
/// have), so a runtime must run it by its absolute path without a PATH.
pub fn pause_image_archive(out: &Path) -> Result<()> {
    let src = crate::workspace_root().join("integration/fixtures/pause.c");
    image_archive(
        out,
        |rootfs| {
            std::fs::create_dir_all(rootfs)?;
            // make test-v2 builds it on the host: nothing is compiled in the v2 guest
            if let Some(prebuilt) = std::env::var_os("POLIS_PAUSE_BIN") {
                std::fs::copy(&prebuilt, rootfs.join("pause"))
                    .with_context(|| format!("copy POLIS_PAUSE_BIN {prebuilt:?}"))?;
                return Ok(());
            }
            let o = Command::new("cc")
                .args(["-static", "-Os", "-s", "-o"])
                .arg(rootfs.join("pause"))
                .arg(&src)
                .output()
                .context("run cc (build-essential)")?;
            if !o.status.success() {
                bail!(
                    "cc {}: {}",
                    src.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            Ok(())
        },
        &["--config.entrypoint", "/pause"],
    )
}

/// Builds an image with umoci from a rootfs that `fill` makes and the given `umoci config`
/// flags, and packs its layout as a tar that `ctr images import` accepts.
pub fn image_archive(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
    config: &[&str],
) -> Result<()> {
    let umoci = crate::require_tool("umoci");
    let work = tempfile::Builder::new().prefix("polis-image-").tempdir()?;
    let layout = work.path().join("layout");
    let unpacked = work.path().join("unpacked");
    let image = format!("{}:latest", layout.display());
    let run = |args: &[&str]| -> Result<()> {
        let o = Command::new(&umoci).args(args).output()?;
        if !o.status.success() {
            bail!("umoci {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    };
    let layout_s = layout.to_string_lossy().to_string();
    let unpacked_s = unpacked.to_string_lossy().to_string();
    run(&["init", "--layout", &layout_s])?;
    run(&["new", "--image", &image])?;
    run(&["unpack", "--image", &image, &unpacked_s])?;
    fill(&unpacked.join("rootfs"))?;
    run(&["repack", "--image", &image, &unpacked_s])?;
    let mut args = vec!["config", "--image", &image];
    args.extend_from_slice(config);
    args.extend_from_slice(&["--architecture", "amd64", "--os", "linux"]);
    run(&args)?;
    run(&["gc", "--layout", &layout_s])?;
    let o = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"])
        .output()?;
    if !o.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}
