//! polis patch: the `tmpcopyup` mount option (runc's extension, listed in `features`): a tmpfs
//! mounted over a directory of the image starts with a copy of what it hides, so a read-only
//! rootfs can get writable /run, /tmp or /var/cache that still hold the image's files (podman
//! `--read-only`, `--tmpfs`).
//!
//! Everything goes through directory fds with `*at` calls and `O_NOFOLLOW`: the tree being
//! copied belongs to the container image, and a symlink in it must be copied as a symlink, never
//! followed out of the rootfs.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn open_at(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid dirfd and NUL-terminated name; the fd returned is ours.
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, name and out pointer.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Owner, permission bits and times of `st` onto `name` in `dir` (the entry itself, not what a
/// symlink points to).
fn copy_attrs(dir: RawFd, name: &CStr, st: &libc::stat, is_link: bool) -> io::Result<()> {
    // SAFETY: valid dirfd and name.
    check(unsafe {
        libc::fchownat(dir, name.as_ptr(), st.st_uid, st.st_gid, libc::AT_SYMLINK_NOFOLLOW)
    })?;
    if !is_link {
        // SAFETY: valid dirfd and name; not a symlink, so fchmodat acts on the entry.
        check(unsafe { libc::fchmodat(dir, name.as_ptr(), st.st_mode & 0o7777, 0) })?;
    }
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: valid dirfd, name and a two-element times array.
    check(unsafe {
        libc::utimensat(dir, name.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(())
}

/// Copies the contents of the directory `src` (any fd of it, O_PATH is fine) into the root of
/// the new tmpfs `dst`, which also takes the hidden directory's owner and mode, as with runc.
pub fn copy_up(src: BorrowedFd, dst: BorrowedFd) -> io::Result<()> {
    let dot = c".";
    let src = open_at(src.as_raw_fd(), dot, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let st = stat_at(src.as_raw_fd(), dot)?;
    copy_attrs(dst.as_raw_fd(), dot, &st, false)?;
    copy_tree(src, dst.as_raw_fd())
}

fn copy_tree(src: OwnedFd, dst: RawFd) -> io::Result<()> {
    let src_raw = src.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the fd (released with closedir below).
    let dir = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(src)) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    struct Closer(*mut libc::DIR);
    impl Drop for Closer {
        fn drop(&mut self) {
            // SAFETY: the DIR came from fdopendir and is closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let dir = Closer(dir);
    let mut names = Vec::new();
    loop {
        // SAFETY: readdir on an open DIR; the entry is copied out before the next call.
        let ent = unsafe { libc::readdir(dir.0) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the dirent.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(CString::from(name));
        }
    }
    for name in names {
        copy_entry(src_raw, dst, &name)?;
    }
    Ok(())
}

fn copy_entry(src: RawFd, dst: RawFd, name: &CStr) -> io::Result<()> {
    let st = stat_at(src, name)?;
    let kind = st.st_mode & libc::S_IFMT;
    match kind {
        libc::S_IFDIR => {
            // SAFETY: valid dirfd and name.
            check(unsafe { libc::mkdirat(dst, name.as_ptr(), 0o700) })?;
            let from = open_at(src, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let to = open_at(dst, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            copy_tree(from, to.as_raw_fd())?;
        }
        libc::S_IFREG => {
            let from = open_at(src, name, libc::O_RDONLY, 0)?;
            let to = open_at(
                dst,
                name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            let mut from = std::fs::File::from(from);
            let mut to = std::fs::File::from(to);
            io::copy(&mut from, &mut to)?;
        }
        libc::S_IFLNK => {
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            // SAFETY: valid dirfd, name and buffer of the given length.
            let n = unsafe {
                libc::readlinkat(src, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            buf.truncate(n as usize);
            let target = CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: valid target, dirfd and name.
            check(unsafe { libc::symlinkat(target.as_ptr(), dst, name.as_ptr()) })?;
            return copy_attrs(dst, name, &st, true);
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            // SAFETY: valid dirfd and name; the node's type and number come from the source.
            check(unsafe { libc::mknodat(dst, name.as_ptr(), kind | 0o600, st.st_rdev) })?;
        }
        // a socket is bound by a process: there is nothing to copy
        _ => return Ok(()),
    }
    copy_attrs(dst, name, &st, false)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn copies_files_dirs_and_symlinks_without_following_them() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        std::fs::create_dir(s.join("sub")).unwrap();
        std::fs::write(s.join("sub/file"), b"payload").unwrap();
        std::fs::set_permissions(s.join("sub/file"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", s.join("escape")).unwrap();
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o1777)).unwrap();

        let from = std::fs::File::open(s).unwrap();
        let to = std::fs::File::open(dst.path()).unwrap();
        copy_up(from.as_fd(), to.as_fd()).unwrap();

        let d = dst.path();
        assert_eq!(std::fs::read(d.join("sub/file")).unwrap(), b"payload");
        assert_eq!(
            std::fs::metadata(d.join("sub/file")).unwrap().mode() & 0o7777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(d.join("escape")).unwrap(),
            std::path::Path::new("/etc/shadow")
        );
        assert_eq!(std::fs::metadata(d).unwrap().mode() & 0o7777, 0o1777);
        assert_eq!(
            std::fs::metadata(d.join("sub/file")).unwrap().mtime(),
            std::fs::metadata(s.join("sub/file")).unwrap().mtime()
        );
    }
}
