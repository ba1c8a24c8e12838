use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::process::Stat;
use procfs::{FromRead, ProcError, ProcessCGroups};

use super::blkio::{Blkio, V1BlkioStatsError};
use super::controller::Controller;
use super::controller_type::CONTROLLERS;
use super::cpu::{Cpu, V1CpuStatsError};
use super::cpuacct::{CpuAcct, V1CpuAcctStatsError};
use super::cpuset::{CpuSet, V1CpuSetControllerError};
use super::devices::Devices;
use super::freezer::{Freezer, V1FreezerControllerError};
use super::hugetlb::{HugeTlb, V1HugeTlbControllerError, V1HugeTlbStatsError};
use super::memory::{Memory, V1MemoryControllerError, V1MemoryStatsError};
use super::network_classifier::NetworkClassifier;
use super::network_priority::NetworkPriority;
use super::perf_event::PerfEvent;
use super::pids::Pids;
use super::util::V1MountPointError;
use super::{ControllerType as CtrlType, util};
use crate::common::{
    self, AnyCgroupManager, CGROUP_PROCS, CgroupManager, ControllerOpt, FreezerState,
    JoinSafelyError, PathBufExt, WrapIoResult, WrappedIoError,
};
use crate::stats::{PidStatsError, Stats, StatsProvider};

pub struct Manager {
    subsystems: HashMap<CtrlType, PathBuf>,
    /// polis patch: the container's cgroup in the hierarchies without controllers (named ones
    /// such as `name=systemd`, and the cgroup2 mount of a hybrid host). runc puts a container's
    /// processes there too; systemd tracks processes by them. Joined and removed, never
    /// configured.
    extra: Vec<PathBuf>,
    /// polis patch: which of `extra` the calling process is already in (a process cloned
    /// into its cgroup2 cgroup, see libcontainer's fork::container_clone_into): moving it
    /// there again would still take the kernel's global lock.
    extra_joined: Vec<bool>,
}

#[derive(thiserror::Error, Debug)]
pub enum V1ManagerError {
    #[error("io error: {0}")]
    WrappedIo(#[from] WrappedIoError),
    #[error("mount point error: {0}")]
    MountPoint(#[from] V1MountPointError),
    #[error("proc error: {0}")]
    Proc(#[from] ProcError),
    #[error("while joining paths: {0}")]
    JoinSafely(#[from] JoinSafelyError),
    #[error("cgroup {0} is required to fulfill the request, but is not supported by this system")]
    CGroupRequired(CtrlType),
    #[error("subsystem does not exist")]
    SubsystemDoesNotExist,
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),

    #[error(transparent)]
    BlkioController(WrappedIoError),
    #[error(transparent)]
    CpuController(WrappedIoError),
    #[error(transparent)]
    CpuAcctController(WrappedIoError),
    #[error(transparent)]
    CpuSetController(#[from] V1CpuSetControllerError),
    #[error(transparent)]
    FreezerController(#[from] V1FreezerControllerError),
    #[error(transparent)]
    HugeTlbController(#[from] V1HugeTlbControllerError),
    #[error(transparent)]
    MemoryController(#[from] V1MemoryControllerError),
    #[error(transparent)]
    PidsController(WrappedIoError),

    #[error(transparent)]
    BlkioStats(#[from] V1BlkioStatsError),
    #[error(transparent)]
    CpuStats(#[from] V1CpuStatsError),
    #[error(transparent)]
    CpuAcctStats(#[from] V1CpuAcctStatsError),
    #[error(transparent)]
    PidsStats(#[from] PidStatsError),
    #[error(transparent)]
    HugeTlbStats(#[from] V1HugeTlbStatsError),
    #[error(transparent)]
    MemoryStats(#[from] V1MemoryStatsError),
}

impl Manager {
    /// Constructs a new cgroup manager with cgroups_path being relative to the root of the subsystem
    pub fn new(cgroup_path: &Path) -> Result<Self, V1ManagerError> {
        // polis patch: mountinfo and /proc/self/cgroup are read once here rather than once per
        // controller (24 safe-procfs opens and 12 mountinfo renders per manager before); the
        // per-controller lookups below match what the upstream helpers matched.
        let mounts = util::list_cgroup_mounts();
        let mount_points = mounts.as_ref().map(|m| m.v1.clone());
        let process_cgroups = Self::read_process_cgroups();
        let mut subsystems = HashMap::new();
        for subsystem in CONTROLLERS {
            let path = match (&mount_points, &process_cgroups) {
                (Ok(mounts), Ok(cgroups)) => {
                    Self::subsystem_path(cgroup_path, subsystem, mounts, cgroups)
                }
                _ => Err(V1ManagerError::SubsystemDoesNotExist),
            };
            if let Ok(subsystem_path) = path {
                subsystems.insert(*subsystem, subsystem_path);
            } else {
                tracing::warn!("cgroup {} not supported on this system", subsystem);
            }
        }

        let extra = match (&mounts, &process_cgroups) {
            (Ok(mounts), Ok(cgroups)) => Self::extra_paths(cgroup_path, mounts, cgroups),
            _ => Vec::new(),
        };
        let (extra, extra_joined) = extra.into_iter().unzip();

        Ok(Manager {
            subsystems,
            extra,
            extra_joined,
        })
    }

    /// polis patch: where the container's cgroup lies in each hierarchy without controllers
    /// that this process is a member of (see `Manager::extra`).
    fn extra_paths(
        cgroup_path: &Path,
        mounts: &util::CgroupMounts,
        cgroups: &ProcessCGroups,
    ) -> Vec<(PathBuf, bool)> {
        let named = mounts.named.iter().filter_map(|(name, mount)| {
            let own = cgroups.0.iter().find(|c| c.controllers.iter().any(|k| k == name))?;
            Some((mount, own))
        });
        let unified = mounts.unified.as_ref().and_then(|mount| {
            let own = cgroups.0.iter().find(|c| c.hierarchy == 0)?;
            Some((mount, own))
        });
        named
            .chain(unified)
            .filter_map(|(mount, own)| {
                let rel = if cgroup_path.as_os_str().is_empty() {
                    Path::new(&own.pathname)
                } else {
                    cgroup_path
                };
                let joined = Path::new(&own.pathname) == rel;
                mount.join_safely(rel).ok().map(|p| (p, joined))
            })
            .collect()
    }

    /// polis patch: whether the calling process has exactly one thread (/proc/self/stat).
    fn is_single_threaded() -> Result<bool, V1ManagerError> {
        let stat = Stat::from_read(ProcfsHandle::new()?.open(
            ProcfsBase::ProcSelf,
            "stat",
            OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
        )?)?;
        Ok(stat.num_threads == 1)
    }

    fn read_process_cgroups() -> Result<ProcessCGroups, V1ManagerError> {
        Ok(ProcessCGroups::from_read(ProcfsHandle::new()?.open(
            ProcfsBase::ProcSelf,
            "cgroup",
            OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
        )?)?)
    }

    fn subsystem_path(
        cgroup_path: &Path,
        subsystem: &CtrlType,
        mount_points: &[PathBuf],
        process_cgroups: &ProcessCGroups,
    ) -> Result<PathBuf, V1ManagerError> {
        tracing::debug!("Get path for subsystem: {}", subsystem);
        let mount_point = util::find_subsystem_mount_point(mount_points, subsystem)?;

        let cgroup = process_cgroups
            .0
            .iter()
            .find(|c| c.controllers.contains(&subsystem.to_string()))
            .ok_or(V1ManagerError::SubsystemDoesNotExist)?;

        let p = if cgroup_path.as_os_str().is_empty() {
            mount_point.join_safely(Path::new(&cgroup.pathname))?
        } else {
            mount_point.join_safely(cgroup_path)?
        };

        Ok(p)
    }

    fn get_required_controllers(
        &self,
        controller_opt: &ControllerOpt,
    ) -> Result<HashMap<&CtrlType, &PathBuf>, V1ManagerError> {
        let mut required_controllers = HashMap::new();

        for controller in CONTROLLERS {
            let required = match controller {
                CtrlType::Cpu => Cpu::needs_to_handle(controller_opt).is_some(),
                CtrlType::CpuAcct => CpuAcct::needs_to_handle(controller_opt).is_some(),
                CtrlType::CpuSet => CpuSet::needs_to_handle(controller_opt).is_some(),
                CtrlType::Devices => Devices::needs_to_handle(controller_opt).is_some(),
                CtrlType::HugeTlb => HugeTlb::needs_to_handle(controller_opt).is_some(),
                CtrlType::Memory => Memory::needs_to_handle(controller_opt).is_some(),
                CtrlType::Pids => Pids::needs_to_handle(controller_opt).is_some(),
                CtrlType::PerfEvent => PerfEvent::needs_to_handle(controller_opt).is_some(),
                CtrlType::Blkio => Blkio::needs_to_handle(controller_opt).is_some(),
                CtrlType::NetworkPriority => {
                    NetworkPriority::needs_to_handle(controller_opt).is_some()
                }
                CtrlType::NetworkClassifier => {
                    NetworkClassifier::needs_to_handle(controller_opt).is_some()
                }
                CtrlType::Freezer => Freezer::needs_to_handle(controller_opt).is_some(),
            };

            if required {
                if let Some(subsystem_path) = self.subsystems.get(controller) {
                    required_controllers.insert(controller, subsystem_path);
                } else {
                    return Err(V1ManagerError::CGroupRequired(*controller));
                }
            }
        }

        Ok(required_controllers)
    }

    pub fn any(self) -> AnyCgroupManager {
        AnyCgroupManager::V1(self)
    }
}

impl CgroupManager for Manager {
    type Error = V1ManagerError;

    fn get_all_pids(&self) -> Result<Vec<Pid>, Self::Error> {
        let devices = self.subsystems.get(&CtrlType::Devices);
        if let Some(p) = devices {
            Ok(common::get_all_pids(p)?)
        } else {
            Err(V1ManagerError::SubsystemDoesNotExist)
        }
    }

    fn add_task(&self, pid: Pid) -> Result<(), Self::Error> {
        // polis patch: writing a pid to cgroup.procs makes the kernel take its global
        // threadgroup rwsem for writing, and the first writer after a quiet spell waits for an
        // RCU grace period: 7-15 ms per container start measured on these (v1) hosts. A
        // single-threaded process moving itself moves its only thread instead ("0" to
        // `tasks`), which the kernel does without that lock; the outcome is the same. This is
        // what libcontainer's intermediate process does for every create/run/exec.
        let pid = if pid == nix::unistd::getpid() && Self::is_single_threaded()? {
            Pid::from_raw(0)
        } else {
            pid
        };
        for (ctrl_type, cgroup_path) in &self.subsystems {
            match ctrl_type {
                CtrlType::Cpu => Cpu::add_task(pid, cgroup_path)?,
                CtrlType::CpuAcct => CpuAcct::add_task(pid, cgroup_path)?,
                CtrlType::CpuSet => CpuSet::add_task(pid, cgroup_path)?,
                CtrlType::Devices => Devices::add_task(pid, cgroup_path)?,
                CtrlType::HugeTlb => HugeTlb::add_task(pid, cgroup_path)?,
                CtrlType::Memory => Memory::add_task(pid, cgroup_path)?,
                CtrlType::Pids => Pids::add_task(pid, cgroup_path)?,
                CtrlType::PerfEvent => PerfEvent::add_task(pid, cgroup_path)?,
                CtrlType::Blkio => Blkio::add_task(pid, cgroup_path)?,
                CtrlType::NetworkPriority => NetworkPriority::add_task(pid, cgroup_path)?,
                CtrlType::NetworkClassifier => NetworkClassifier::add_task(pid, cgroup_path)?,
                CtrlType::Freezer => Freezer::add_task(pid, cgroup_path)?,
            }
        }
        for (path, joined) in self.extra.iter().zip(&self.extra_joined) {
            if *joined && (pid.as_raw() == 0 || pid == nix::unistd::getpid()) {
                continue;
            }
            fs::create_dir_all(path).wrap_create_dir(path)?;
            // "0" (the caller) through `tasks` where there is one, as for the controllers
            let tasks = path.join("tasks");
            let file = if pid.as_raw() == 0 && tasks.exists() {
                tasks
            } else {
                path.join(CGROUP_PROCS)
            };
            common::write_cgroup_file(&file, pid)?;
        }

        Ok(())
    }

    fn apply(&self, controller_opt: &ControllerOpt) -> Result<(), Self::Error> {
        for (ctrl_type, cgroup_path) in self.get_required_controllers(controller_opt)? {
            match ctrl_type {
                CtrlType::Cpu => Cpu::apply(controller_opt, cgroup_path)?,
                CtrlType::CpuAcct => CpuAcct::apply(controller_opt, cgroup_path)?,
                CtrlType::CpuSet => CpuSet::apply(controller_opt, cgroup_path)?,
                CtrlType::Devices => Devices::apply(controller_opt, cgroup_path)?,
                CtrlType::HugeTlb => HugeTlb::apply(controller_opt, cgroup_path)?,
                CtrlType::Memory => Memory::apply(controller_opt, cgroup_path)?,
                CtrlType::Pids => Pids::apply(controller_opt, cgroup_path)?,
                CtrlType::PerfEvent => PerfEvent::apply(controller_opt, cgroup_path)?,
                CtrlType::Blkio => Blkio::apply(controller_opt, cgroup_path)?,
                CtrlType::NetworkPriority => NetworkPriority::apply(controller_opt, cgroup_path)?,
                CtrlType::NetworkClassifier => {
                    NetworkClassifier::apply(controller_opt, cgroup_path)?
                }
                CtrlType::Freezer => Freezer::apply(controller_opt, cgroup_path)?,
            }
        }

        Ok(())
    }

    fn remove(&self) -> Result<(), Self::Error> {
        // polis patch: a container's cgroup may have sub-cgroups (made by its users, or for
        // `exec --cgroup`): their processes are killed and they are removed, deepest first,
        // as runc does; upstream killed the top cgroup's processes only and its rmdir failed.
        for cgroup_path in self.subsystems.values() {
            if cgroup_path.exists() {
                tracing::debug!("remove cgroup {:?}", cgroup_path);
                remove_cgroup_tree(cgroup_path)?;
            }
        }
        // the processes are gone with the controllers' cgroups above
        for path in &self.extra {
            if path.exists() {
                remove_cgroup_tree(path)?;
            }
        }

        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<(), Self::Error> {
        let controller_opt = ControllerOpt {
            resources: &Default::default(),
            freezer_state: Some(state),
            oom_score_adj: None,
            disable_oom_killer: false,
        };
        Ok(Freezer::apply(
            &controller_opt,
            self.subsystems
                .get(&CtrlType::Freezer)
                .ok_or(V1ManagerError::SubsystemDoesNotExist)?,
        )?)
    }

    fn stats(&self) -> Result<Stats, Self::Error> {
        let mut stats = Stats::default();

        for (ctrl_type, cgroup_path) in &self.subsystems {
            match ctrl_type {
                CtrlType::Cpu => stats.cpu.throttling = Cpu::stats(cgroup_path)?,
                CtrlType::CpuAcct => stats.cpu.usage = CpuAcct::stats(cgroup_path)?,
                CtrlType::Pids => stats.pids = Pids::stats(cgroup_path)?,
                CtrlType::HugeTlb => stats.hugetlb = HugeTlb::stats(cgroup_path)?,
                CtrlType::Blkio => stats.blkio = Blkio::stats(cgroup_path)?,
                CtrlType::Memory => stats.memory = Memory::stats(cgroup_path)?,
                _ => continue,
            }
        }

        Ok(stats)
    }
}

/// polis patch: kills the processes of `path` and of every cgroup below it, and removes them
/// all, children before parents.
fn remove_cgroup_tree(path: &Path) -> Result<(), V1ManagerError> {
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path())?;
            }
        }
    }
    let procs_path = path.join(CGROUP_PROCS);
    if let Ok(procs) = fs::read_to_string(&procs_path) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
    common::delete_with_retry(path, 4, Duration::from_millis(100))?;
    Ok(())
}

// polis patch: tests against the host's cgroup v1 hierarchies (as root on a v1 or hybrid host,
// as on the machines polis is tested on); anywhere else they say so and return.
#[cfg(test)]
mod polis_tests {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};

    use nix::sys::statfs::{CGROUP_SUPER_MAGIC, statfs};
    use nix::unistd::Pid;

    use super::*;

    fn v1_host() -> bool {
        let v1 =
            statfs("/sys/fs/cgroup/pids").is_ok_and(|s| s.filesystem_type() == CGROUP_SUPER_MAGIC);
        if !v1 || !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root and a cgroup v1 pids hierarchy at /sys/fs/cgroup/pids");
        }
        v1 && nix::unistd::geteuid().is_root()
    }

    struct Sleeper(Child);

    impl Sleeper {
        fn new() -> Self {
            Self(
                Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .expect("spawn sleep"),
            )
        }

        fn pid(&self) -> Pid {
            Pid::from_raw(self.0.id() as i32)
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn test_cgroup(what: &str) -> PathBuf {
        PathBuf::from(format!("/polis-vendor-test-{what}-{}", std::process::id()))
    }

    // polis patch (vendor/patches/002): a sub-cgroup's processes are killed and the sub-cgroup
    // removed with its parent (upstream: the parent's rmdir failed, and `remove` with it).
    #[test]
    fn test_remove_kills_and_removes_sub_cgroups() {
        if !v1_host() {
            return;
        }
        let cgroup = test_cgroup("remove");
        let manager = Manager::new(&cgroup).expect("manager");
        let child = Sleeper::new();
        manager.add_task(child.pid()).expect("add task");
        let pids = Path::new("/sys/fs/cgroup/pids").join(cgroup.strip_prefix("/").unwrap());
        let sub = pids.join("sub");
        fs::create_dir(&sub).expect("make sub-cgroup");
        fs::write(sub.join(CGROUP_PROCS), child.pid().to_string()).expect("move to sub-cgroup");

        let removed = manager.remove();
        let gone = !pids.exists();
        drop(child);
        if !gone {
            let _ = fs::remove_dir(&sub);
            let _ = manager.remove();
        }
        removed.expect("remove a cgroup with a sub-cgroup");
        assert!(gone, "{} still exists", pids.display());
    }

    // polis patch (vendor/patches/003): the container's processes join its cgroup in the
    // hierarchies without controllers too (name=systemd here), as with runc; upstream left
    // them in the root.
    #[test]
    fn test_add_task_joins_named_hierarchy() {
        if !v1_host() {
            return;
        }
        let own = fs::read_to_string("/proc/self/cgroup").expect("own cgroups");
        let named = own
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .find(|c| c.starts_with("name="));
        let Some(name) = named.map(str::to_owned) else {
            eprintln!("skipped: no named cgroup v1 hierarchy on this host");
            return;
        };
        let cgroup = test_cgroup("named");
        let manager = Manager::new(&cgroup).expect("manager");
        let child = Sleeper::new();
        manager.add_task(child.pid()).expect("add task");
        let own = fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).expect("cgroup");
        drop(child);
        manager.remove().expect("remove");

        let line = own
            .lines()
            .find(|l| l.split(':').nth(1) == Some(name.as_str()))
            .unwrap_or_default();
        assert!(
            line.ends_with(&format!(":{}", cgroup.display())),
            "{name} of the task: {line:?}"
        );
    }
}
