//! What polis-runc's own integration tests share: the binary, busybox bundles, cgroup lookups.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_polis-runc");
pub const BUSYBOX: &str = "/bin/busybox";

/// A fresh temp dir named `prefix*`; fails the test, naming the fix, without busybox-static.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install busybox-static (scripts/install-deps.sh)"
    );
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// `polis-runc --root ROOT ARGS`, without stdin, output captured.
pub fn polis(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run polis-runc")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bundle whose rootfs holds busybox with `applets` linked to it, and polis-runc's default
/// spec without a terminal, changed by `edit`.
pub fn write_busybox_bundle(
    root: &Path,
    bundle: &Path,
    applets: &[&str],
    edit: impl FnOnce(&mut Value),
) {
    let bin = bundle.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for a in applets {
        symlink("busybox", bin.join(a)).unwrap();
    }
    let out = polis(root, &["spec", "--bundle", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "spec: {}", stderr(&out));
    let path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = json!(false);
    edit(&mut spec);
    fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
}

/// The cgroup dirs named `name` right under any mounted hierarchy (or the unified root).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for top in [entry.path(), PathBuf::from("/sys/fs/cgroup")] {
            let p = top.join(name);
            if p.exists() && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}
