//! Mounting the rootfs containerd hands over (overlay, bind, ...) in the calling thread:
//! no fork from this multithreaded process.

use std::path::Path;

use nix::mount::{mount, MsFlags};

#[derive(Debug, thiserror::Error)]
#[error("mount {fs_type} {source_path} on {target}: {errno}")]
pub struct MountError {
    fs_type: String,
    source_path: String,
    target: String,
    errno: nix::Error,
}

/// Splits mount(8)-style options into flags and the filesystem's data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

pub fn mount_one(
    fs_type: &str,
    source: &str,
    options: &[String],
    target: &Path,
) -> Result<(), MountError> {
    let (flags, data) = parse_options(options);
    let err = |errno| MountError {
        fs_type: fs_type.into(),
        source_path: source.into(),
        target: target.display().to_string(),
        errno,
    };
    let fs = Some(fs_type).filter(|t| !t.is_empty() && !flags.contains(MsFlags::MS_BIND));
    let data = Some(data.as_str()).filter(|d| !d.is_empty());
    let ro_bind = flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY);
    mount(Some(source), target, fs, flags, data).map_err(err)?;
    if ro_bind {
        // A bind mount ignores MS_RDONLY until it is remounted.
        let f = flags | MsFlags::MS_REMOUNT;
        mount::<str, Path, str, str>(None, target, None, f, None).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options_become_data() {
        let (flags, data) = parse_options(&opts(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l1:/l2",
        ]));
        assert!(flags.is_empty());
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2");
    }

    #[test]
    fn flags_set_and_clear() {
        let (flags, data) = parse_options(&opts(&["rbind", "ro", "nosuid", "rw"]));
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID));
        assert!(!flags.contains(MsFlags::MS_RDONLY));
        assert!(data.is_empty());
    }

    #[test]
    fn read_only_bind_mount_is_really_read_only() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f"), "x").unwrap();
        let s = src.path().to_str().unwrap();
        mount_one("", s, &opts(&["rbind", "ro"]), dst.path()).unwrap();
        let write = std::fs::write(dst.path().join("g"), "y");
        let content = std::fs::read_to_string(dst.path().join("f"));
        nix::mount::umount2(dst.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(write.is_err(), "read-only bind mount was writable");
        assert_eq!(content.unwrap(), "x");
    }
}
