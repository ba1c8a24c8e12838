use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use nix::unistd::Pid;
use procfs::ProcError;
use procfs::process::MountInfo;

use super::ControllerType;
use super::controller_type::CONTROLLERS;
use crate::common::CGROUP_PROCS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    Ok(list_cgroup_mounts()?.v1)
}

/// polis patch: every cgroup mount, read from one pass over mountinfo.
#[derive(Debug, Default, Clone)]
pub struct CgroupMounts {
    /// Mount points of the v1 hierarchies (as `list_subsystem_mount_points`).
    pub v1: Vec<PathBuf>,
    /// Named v1 hierarchies without controllers, as (`name=<name>`, mount point): systemd's
    /// `name=systemd` on a legacy or hybrid host.
    pub named: Vec<(String, PathBuf)>,
    /// The cgroup2 mount beside v1 hierarchies (hybrid: `/sys/fs/cgroup/unified`).
    pub unified: Option<PathBuf>,
}

/// polis patch: the cgroup mounts of mountinfo, with the named hierarchies and the hybrid
/// cgroup2 mount that a container's processes must join as well (as runc does), though they
/// have no controller to manage.
pub fn list_cgroup_mounts() -> Result<CgroupMounts, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    reader
        .lines()
        .map(|lr| {
            lr.map_err(V1MountPointError::Io)
                .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
        })
        .try_fold(CgroupMounts::default(), |mut mounts, r| {
            r.map(|m| {
                if m.fs_type == "cgroup" {
                    if let Some(Some(name)) = m.super_options.get("name") {
                        let has_controller = m
                            .super_options
                            .keys()
                            .any(|k| CONTROLLERS.iter().any(|c| c.to_string() == *k));
                        if !has_controller
                            && !mounts.named.iter().any(|(n, _)| n == &format!("name={name}"))
                        {
                            mounts
                                .named
                                .push((format!("name={name}"), m.mount_point.clone()));
                        }
                    }
                    mounts.v1.push(m.mount_point);
                } else if m.fs_type == "cgroup2" && mounts.unified.is_none() {
                    mounts.unified = Some(m.mount_point);
                }
                mounts
            })
        })
}

/// List the mount points of all currently supported cgroup subsystems.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Ok(mount_point) = get_subsystem_mount_point(controller) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    find_subsystem_mount_point(&list_subsystem_mount_points()?, subsystem)
}

/// polis patch: the matching half of `get_subsystem_mount_point`, over mount points read once
/// (`list_subsystem_mount_points`), so that a caller looking up every controller parses
/// mountinfo once instead of once per controller.
pub fn find_subsystem_mount_point(
    mount_points: &[PathBuf],
    subsystem: &ControllerType,
) -> Result<PathBuf, V1MountPointError> {
    let subsystem_name = subsystem.to_string();
    mount_points
        .iter()
        .find(|mount_point| {
            // Some systems mount net_prio and net_cls in the same directory
            // other systems mount them in their own directories. This
            // should handle both cases.
            match subsystem_name.as_str() {
                "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpu" => ["cpu,cpuacct", "cpu"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                _ => mount_point.ends_with(&subsystem_name),
            }
        })
        .cloned()
        .ok_or(V1MountPointError::NotFound {
            subsystem: *subsystem,
        })
}

/// polis patch: the file a controller's `add_task` writes `pid` to. Pid 0 stands for "the
/// calling thread" (see `Manager::add_task`, the only place that passes it) and goes to
/// `tasks`; any other pid moves its whole thread group through `cgroup.procs`, as upstream.
pub(super) fn task_file(pid: Pid) -> &'static str {
    if pid.as_raw() == 0 {
        "tasks"
    } else {
        CGROUP_PROCS
    }
}

/// polis patch: the directory of `cgroup_path` in the cgroup2 mount of a hybrid host (v1
/// hierarchies and a cgroup2 mount side by side), where a container's processes belong too.
/// `None` on a legacy or unified host, or for an empty path.
/// Only systemd's standard place for it is looked at (`/sys/fs/cgroup/unified` on a
/// `/sys/fs/cgroup` tmpfs), with two statfs calls: this runs in every container start, and
/// reading mountinfo here cost more than it saves elsewhere. A hybrid layout mounted anywhere
/// else still works, by the slower `cgroup.procs` join.
pub fn hybrid_unified_dir(cgroup_path: &std::path::Path) -> Option<PathBuf> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
    use crate::common::PathBufExt;
    if cgroup_path.as_os_str().is_empty() {
        return None;
    }
    let root = std::path::Path::new("/sys/fs/cgroup");
    let unified = root.join("unified");
    if statfs(root).ok()?.filesystem_type() != TMPFS_MAGIC
        || statfs(&unified).ok()?.filesystem_type() != CGROUP2_SUPER_MAGIC
    {
        return None;
    }
    unified.join_safely(cgroup_path).ok()
}
