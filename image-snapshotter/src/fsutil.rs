//! File-system helpers: disk usage the way containerd counts it, directory removal that
//! tolerates absence, and the tree copy the native backend uses.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// Inodes and bytes under `root`, each inode counted once (hard links), bytes as allocated
/// blocks: continuity's `fs.DiskUsage`, which containerd's snapshotters report.
pub fn disk_usage(root: &Path) -> Result<(i64, i64)> {
    let mut seen = HashSet::new();
    let mut size = 0i64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let md = fs::symlink_metadata(&path).at("stat", &path)?;
        if seen.insert((md.dev(), md.ino())) {
            size += md.blocks() as i64 * 512;
        }
        if md.is_dir() {
            for entry in fs::read_dir(&path).at("read dir", &path)? {
                stack.push(entry.at("read dir", &path)?.path());
            }
        }
    }
    Ok((seen.len() as i64, size))
}

/// Removes a directory tree; a tree that is already gone is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Creates `path` with exactly `mode` (the umask does not apply).
pub fn mkdir_mode(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir(path).at("mkdir", path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).at("chmod", path)
}

/// Copies the contents of `src` into the existing directory `dst`, keeping ownership, modes,
/// times, hard links, xattrs and special files: what the native backend needs to give a child
/// the full file system of its parent. GNU `cp -a` does all of that and reflinks where it can.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output()
        .at("run cp -a", src)?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "cp -a {} {}: {}",
            src.display(),
            dst.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_hard_links_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("fs");
        fs::create_dir(&root).unwrap();
        let (inodes0, _) = disk_usage(&root).unwrap();
        assert_eq!(inodes0, 1, "the directory itself is one inode");
        fs::write(root.join("a"), vec![1u8; 10000]).unwrap();
        fs::hard_link(root.join("a"), root.join("b")).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("a", root.join("sub/l")).unwrap();
        let (inodes, size) = disk_usage(&root).unwrap();
        assert_eq!(inodes, 4, "dir, file (two links), sub dir, symlink");
        let expect: i64 = ["", "a", "sub", "sub/l"]
            .iter()
            .map(|p| fs::symlink_metadata(root.join(p)).unwrap().blocks() as i64 * 512)
            .sum();
        assert_eq!(size, expect);
        assert!(size >= 10000);
    }

    #[test]
    fn copy_tree_keeps_links_and_modes() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("s"), d.path().join("d"));
        fs::create_dir_all(src.join("dir")).unwrap();
        fs::write(src.join("dir/f"), "hi").unwrap();
        fs::set_permissions(src.join("dir/f"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(src.join("dir/f"), src.join("g")).unwrap();
        std::os::unix::fs::symlink("dir/f", src.join("l")).unwrap();
        mkdir_mode(&dst, 0o755).unwrap();
        copy_tree(&src, &dst).unwrap();
        let f = fs::metadata(dst.join("dir/f")).unwrap();
        assert_eq!(f.mode() & 0o777, 0o640);
        assert_eq!(f.ino(), fs::metadata(dst.join("g")).unwrap().ino());
        assert_eq!(fs::read_link(dst.join("l")).unwrap(), Path::new("dir/f"));
        assert_eq!(fs::read_to_string(dst.join("g")).unwrap(), "hi");
    }

    #[test]
    fn remove_tree_of_a_missing_dir_is_ok() {
        let d = tempfile::tempdir().unwrap();
        remove_tree(&d.path().join("nope")).unwrap();
        mkdir_mode(&d.path().join("x"), 0o700).unwrap();
        remove_tree(&d.path().join("x")).unwrap();
        assert!(!d.path().join("x").exists());
    }
}
