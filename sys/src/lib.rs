//! The small kernel-facing pieces that polis-runc, the shim and the integration tests each
//! need, kept in one place: receiving a descriptor over a unix socket (console sockets,
//! seccomp listeners) and finding cgroups (the host's layout, a process's cgroups, the
//! hierarchies' mount points).

pub mod cgroup;
pub mod fd;
