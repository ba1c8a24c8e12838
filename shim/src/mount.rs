//! Mounting the rootfs containerd hands over (overlay, bind, ...) in the calling thread:
//! no fork from this multithreaded process.
//!
//! mount(2) takes at most one page of options, which an image of some 50 layers outgrows in
//! `lowerdir` alone. containerd's Go code then chdirs into the layers' common parent in a
//! forked helper to shorten the paths; we instead build such an overlay with the new mount API
//! (fsopen/fsconfig), one `lowerdir+` per layer (Linux 6.8), where no option string is long.

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
    match data {
        Some(d) if fs == Some("overlay") && d.len() >= page_size() => {
            mount_overlay_by_parts(d, flags, target).map_err(err)?
        }
        _ => mount(Some(source), target, fs, flags, data).map_err(err)?,
    }
    if ro_bind {
        // A bind mount ignores MS_RDONLY until it is remounted.
        let f = flags | MsFlags::MS_REMOUNT;
        mount::<str, Path, str, str>(None, target, None, f, None).map_err(err)?;
    }
    Ok(())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// One overlay option for fsconfig: `lowerdir` is split into `lowerdir+` per layer (a `\:`
/// inside a path is an escaped colon, not a separator).
fn overlay_parts(data: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("lowerdir", dirs)) => {
                let mut cur = String::new();
                let mut chars = dirs.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        ':' => parts.push(("lowerdir+".into(), Some(std::mem::take(&mut cur)))),
                        c => cur.push(c),
                    }
                }
                parts.push(("lowerdir+".into(), Some(cur)));
            }
            Some((k, v)) => parts.push((k.into(), Some(v.into()))),
            None => parts.push((opt.into(), None)),
        }
    }
    parts
}

/// The overlay of `data` built with fsopen/fsconfig/fsmount and moved onto `target`.
fn mount_overlay_by_parts(data: &str, flags: MsFlags, target: &Path) -> nix::Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let errno = |e: rustix::io::Errno| nix::Error::from_raw(e.raw_os_error());
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(errno)?;
    for (key, value) in overlay_parts(data) {
        match value {
            Some(v) => fsconfig_set_string(&fs, key.as_str(), v.as_str()),
            None => fsconfig_set_flag(&fs, key.as_str()),
        }
        .map_err(errno)?;
    }
    fsconfig_create(&fs).map_err(errno)?;
    let mut attrs = MountAttrFlags::empty();
    for (f, a) in [
        (MsFlags::MS_RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
    ] {
        if flags.contains(f) {
            attrs |= a;
        }
    }
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(errno)?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno)
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

    #[test]
    fn lowerdir_splits_into_layers_with_escaped_colons() {
        let parts = overlay_parts("index=off,lowerdir=/a\\:b:/c,upperdir=/u,userxattr");
        let want: Vec<(String, Option<String>)> = vec![
            ("index".into(), Some("off".into())),
            ("lowerdir+".into(), Some("/a:b".into())),
            ("lowerdir+".into(), Some("/c".into())),
            ("upperdir".into(), Some("/u".into())),
            ("userxattr".into(), None),
        ];
        assert_eq!(parts, want);
    }

    /// An overlay whose options are far over a page (mount(2) would say EINVAL): every
    /// layer is there, in order, and the upper dir takes writes.
    #[test]
    fn overlay_of_many_long_layer_paths_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let long = "l".repeat(120);
        let mut lowers = Vec::new();
        for i in 0..80 {
            let d = dir.path().join(format!("{long}-{i:03}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join(format!("only-{i}")), i.to_string()).unwrap();
            std::fs::write(d.join("top"), i.to_string()).unwrap();
            lowers.push(d.to_str().unwrap().to_string());
        }
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let p = |d: &str| dir.path().join(d).to_str().unwrap().to_string();
        let options = opts(&[
            &format!("workdir={}", p("work")),
            &format!("upperdir={}", p("upper")),
            &format!("lowerdir={}", lowers.join(":")),
        ]);
        assert!(options.iter().map(|o| o.len()).sum::<usize>() > 2 * page_size());
        let target = dir.path().join("rootfs");
        let (_, data) = parse_options(&options);
        let plain = mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        );
        assert!(
            plain.is_err(),
            "mount(2) took {} bytes of options",
            data.len()
        );
        mount_one("overlay", "overlay", &options, &target).unwrap();
        let seen = (
            std::fs::read_to_string(target.join("top")),
            std::fs::read_to_string(target.join("only-79")),
            std::fs::write(target.join("new"), "w"),
        );
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert_eq!(seen.0.unwrap(), "0", "the first lowerdir is the top layer");
        assert_eq!(seen.1.unwrap(), "79");
        seen.2.unwrap();
        assert!(dir.path().join("upper/new").exists());
    }
}
