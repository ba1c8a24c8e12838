//! Self-confinement: before the server starts, the shim's main thread gets a seccomp
//! allowlist of what a shim does (ttrpc, files, fifos, ptys, mounts of the rootfs, signals,
//! reaping, cgroup reads), and every thread started after that inherits it. Processes are
//! spawned by the spawner thread (monitor.rs), started before this and left without the
//! filter, so neither polis-runc nor the containers inherit it.
//!
//! A syscall off the list fails with EPERM. `POLIS_SHIM_SECCOMP=log` logs instead (to find
//! a missing entry in the kernel log), `off` disables the filter.

use std::collections::BTreeMap;

use seccompiler::{apply_filter, BpfProgram, SeccompAction, SeccompFilter};

/// Syscalls the shim server needs after start-up.
const ALLOWED: &[i64] = &[
    // memory, threads, time
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_prctl,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    // resumes a timed wait (poll, futex, nanosleep) stopped by SIGSTOP or a debugger: without
    // it the wait fails with EPERM after a `kill -STOP`/`-CONT` of the shim
    libc::SYS_restart_syscall,
    // files, fifos, sockets
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_lseek,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_mkdir,
    libc::SYS_unlink,
    libc::SYS_rmdir,
    libc::SYS_rename,
    libc::SYS_readlink,
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchmod,
    // IoUid/IoGid: the stdio handed to a container is given to its owner.
    libc::SYS_fchown,
    libc::SYS_fsync,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    // cgroup v2 OOM events: an inotify watch on memory.events
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept4,
    libc::SYS_shutdown,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    // rootfs mounts, signals to containers, reaping
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_move_mount,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_wait4,
    libc::SYS_waitid,
];

/// How the filter treats a syscall off the list.
fn mode() -> Option<SeccompAction> {
    match std::env::var("POLIS_SHIM_SECCOMP").as_deref() {
        Ok("off") => None,
        Ok("log") => Some(SeccompAction::Log),
        _ => Some(SeccompAction::Errno(libc::EPERM as u32)),
    }
}

fn program(mismatch: SeccompAction) -> Result<BpfProgram, seccompiler::BackendError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        ALLOWED.iter().map(|n| (*n, Vec::new())).collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|_| seccompiler::BackendError::InvalidTargetArch(std::env::consts::ARCH.into()))?;
    SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch)?.try_into()
}

/// Confines the calling thread and every thread it starts from now on; logs and carries on
/// unconfined if that fails.
pub fn confine() {
    let Some(mismatch) = mode() else {
        return;
    };
    let res = program(mismatch)
        .map_err(|e| e.to_string())
        .and_then(|p| apply_filter(&p).map_err(|e| e.to_string()));
    if let Err(e) = res {
        tracing::error!(error = %e, "seccomp filter not loaded: the shim runs unconfined");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_compiles_to_a_filter() {
        let p = program(SeccompAction::Errno(libc::EPERM as u32)).unwrap();
        assert!(p.len() > ALLOWED.len());
    }

    #[test]
    fn confined_thread_cannot_do_what_a_shim_never_does() {
        let p = program(SeccompAction::Errno(libc::EPERM as u32)).unwrap();
        // In a child process, so the filter stays there.
        // SAFETY: the child only makes raw syscalls and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = seccompiler::apply_filter(&p).is_ok()
                    // SAFETY: plain syscalls with constant arguments.
                    && unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) } == -1
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
                    && unsafe { libc::syscall(libc::SYS_getpid) } > 0;
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
