//! Protection of the runtime binary against being overwritten from inside a container
//! (CVE-2019-5736 class): before any command that enters a container, polis-runc re-executes
//! itself from a read-only view, so `/proc/<pid>/exe` never leads a container back to the host's
//! writable binary.
//!
//! The cheap way is a detached, read-only overlayfs mount of the binary's directory (fsopen +
//! fsmount, never attached to any mount tree, gone when the last fd closes): no copy, and
//! writes through it fail with EROFS. Where that is unavailable, fall back to a sealed memfd
//! copy, as runc does. Whether the running binary is already protected is checked on the file
//! itself, never trusted from the environment.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
    MountAttrFlags,
};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Re-executes the current process from a protected view of its binary unless it already runs
/// from one. Returns only when the binary is already protected.
pub fn ensure_sealed() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("failed to open /proc/self/exe")?;
    if is_protected(exe.as_raw_fd()) {
        return Ok(());
    }
    let path = std::fs::read_link("/proc/self/exe").context("failed to read /proc/self/exe")?;
    let sealed = match overlay_view(&path) {
        Ok(fd) => fd,
        Err(err) => {
            tracing::debug!(
                error = format!("{err:#}"),
                "read-only overlay view unavailable; copying to a memfd"
            );
            memfd_copy(&exe)?
        }
    };
    reexec(sealed.as_raw_fd())
}

/// Whether the command line names a command that enters a container (create, run, exec),
/// judged before clap parses it: the first word that is neither a flag nor a global flag's
/// value. A wrong guess costs time only, as those commands seal themselves again.
pub fn enters_container(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.as_bytes();
        if arg.starts_with(b"-") {
            // Global flags that take their value as the next word.
            if matches!(arg, b"--root" | b"--log" | b"--log-format" | b"--criu") {
                args.next();
            }
            continue;
        }
        return matches!(arg, b"create" | b"run" | b"exec");
    }
    false
}

/// True if nothing can write to the file through this fd: a read-only mount or a sealed memfd.
pub fn is_protected(fd: RawFd) -> bool {
    // SAFETY: fstatvfs/fcntl only read into a local struct / return flags for an open fd.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::fstatvfs(fd, &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0 {
            return true;
        }
        let seals = libc::fcntl(fd, libc::F_GET_SEALS);
        seals >= 0 && seals & libc::F_SEAL_WRITE != 0
    }
}

fn overlay_view(exe: &Path) -> Result<OwnedFd> {
    let dir = exe
        .parent()
        .context("runtime binary has no parent directory")?;
    let name = exe.file_name().context("runtime binary has no file name")?;
    let dir_str = dir.as_os_str().as_bytes();
    if dir_str.contains(&b':') || dir_str.contains(&b',') {
        bail!("{} cannot be an overlay lowerdir", dir.display());
    }
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(overlay) failed")?;
    // overlayfs wants two lower layers when there is no upper one, and they must not
    // overlap: the second is an empty detached tmpfs, as private as the overlay itself.
    let empty = empty_tmpfs()?;
    let mut layers = dir.as_os_str().to_owned();
    layers.push(format!(":/proc/self/fd/{}", empty.as_raw_fd()));
    fsconfig_set_string(&fs, "lowerdir", layers.as_os_str())
        .context("fsconfig(lowerdir) failed")?;
    fsconfig_create(&fs).context("fsconfig(create) failed")?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, read_only())
        .context("fsmount(overlay) failed")?;
    let file = rustix::fs::openat(
        &mnt,
        name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("failed to open the binary in the overlay view")?;
    if !is_protected(file.as_raw_fd()) {
        bail!("overlay view of {} is not read-only", exe.display());
    }
    Ok(file)
}

fn empty_tmpfs() -> Result<OwnedFd> {
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(tmpfs) failed")?;
    fsconfig_create(&fs).context("fsconfig(create) of tmpfs failed")?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, read_only()).context("fsmount(tmpfs) failed")
}

/// The detached mounts are read-only, and neither setuid nor device files work through them.
fn read_only() -> MountAttrFlags {
    MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
}

fn memfd_copy(exe: &File) -> Result<OwnedFd> {
    // SAFETY: memfd_create with a valid name; the fd is owned at once.
    let memfd = unsafe {
        check_fd(
            libc::memfd_create(
                c"polis-runc".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            ) as libc::c_long,
            "memfd_create",
        )?
    };
    let mut src = exe
        .try_clone()
        .context("failed to reopen the runtime binary")?;
    let mut dst = File::from(memfd);
    std::io::copy(&mut src, &mut dst).context("failed to copy the runtime binary to a memfd")?;
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(std::io::Error::last_os_error()).context("failed to seal the memfd copy");
    }
    Ok(OwnedFd::from(dst))
}

fn reexec(fd: RawFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| cstr(&a))
        .collect::<Result<_>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).context("environment variable contains NUL")
        })
        .collect::<Result<_>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        libc::execveat(
            fd,
            c"".as_ptr(),
            argv.as_ptr() as *const *mut libc::c_char,
            envp.as_ptr() as *const *mut libc::c_char,
            libc::AT_EMPTY_PATH,
        );
    }
    Err(std::io::Error::last_os_error())
        .context("failed to re-execute the protected runtime binary")
}

fn cstr(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains NUL"))
}

fn check(ret: libc::c_long, what: &str) -> Result<()> {
    if ret < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("{what} failed"));
    }
    Ok(())
}

fn check_fd(ret: libc::c_long, what: &str) -> Result<OwnedFd> {
    check(ret, what)?;
    // SAFETY: a non-negative return of these calls is a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_that_enter_a_container_are_told_from_the_others() {
        let yes = |line: &str| enters_container(line.split_whitespace().map(Into::into));
        assert!(yes("run -b /b id"));
        assert!(yes(
            "--root /r --log /l --log-format json --debug create id"
        ));
        assert!(yes("--root=/r exec -t id sh"));
        assert!(!yes("--root run state id"), "run is --root's value");
        assert!(!yes("state id"));
        assert!(!yes("delete -f run"));
        assert!(!yes("--version"));
        assert!(!yes(""));
    }
}
