//! Where cgroups are: the host's layout, the cgroups of a process, the mount point of each
//! hierarchy. Read from /proc each time (a hierarchy can be mounted, a process moved).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

/// Whether /sys/fs/cgroup is a cgroup2 mount (a pure v2 host), not v1 or hybrid.
pub fn cgroup2_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Controller → cgroup path, from the text of `/proc/PID/cgroup`. The unified hierarchy is
/// the controller `""`; a named v1 hierarchy is `name=NAME`.
pub fn parse_proc_cgroup(data: &str) -> HashMap<String, String> {
    let mut paths = HashMap::new();
    for line in data.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        for c in controllers.split(',') {
            paths.insert(c.to_string(), path.to_string());
        }
    }
    paths
}

/// Controller → mount point of its hierarchy (`""` for cgroup2), from the text of
/// `/proc/self/mountinfo`. Only hierarchies mounted from their root count (a bind of a
/// sub-cgroup does not map paths one to one); the first mount of each wins.
pub fn hierarchy_mounts(mountinfo: &str) -> HashMap<String, PathBuf> {
    let mut mounts = HashMap::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let (Some(fs), Some(_), Some(opts)) = (post.next(), post.next(), post.next()) else {
            continue;
        };
        let mut pre = pre.split_whitespace();
        let (Some(root), Some(mnt)) = (pre.nth(3), pre.next()) else {
            continue;
        };
        if root != "/" {
            continue;
        }
        match fs {
            "cgroup2" => {
                mounts
                    .entry(String::new())
                    .or_insert_with(|| PathBuf::from(mnt));
            }
            "cgroup" => {
                for o in opts.split(',') {
                    mounts
                        .entry(o.to_string())
                        .or_insert_with(|| PathBuf::from(mnt));
                }
            }
            _ => {}
        }
    }
    mounts
}

/// The cgroups of process `pid` and the mount points of the hierarchies, as read now.
pub struct Cgroups {
    pub paths: HashMap<String, String>,
    pub mounts: HashMap<String, PathBuf>,
}

impl Cgroups {
    pub fn of_pid(pid: u32) -> io::Result<Self> {
        let paths = parse_proc_cgroup(&read(&format!("/proc/{pid}/cgroup"))?);
        let mounts = hierarchy_mounts(&read("/proc/self/mountinfo")?);
        Ok(Self { paths, mounts })
    }

    /// The directory of the process's cgroup in `controller`'s hierarchy (`""`: unified).
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        let path = self.paths.get(controller)?;
        let mount = self.mounts.get(controller)?;
        Some(mount.join(path.trim_start_matches('/')))
    }

    /// The directory of the process's memory cgroup and whether it is v2 (unified).
    pub fn memory_dir(&self) -> Option<(PathBuf, bool)> {
        match self.dir("memory") {
            Some(d) => Some((d, false)),
            None => self.dir("").map(|d| (d, true)),
        }
    }
}

fn read(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "12:pids:/ns/c\n4:cpu,cpuacct:/ns/c\n2:memory:/ns/c\n\
                                 1:name=systemd:/user.slice\n0::/user.slice\n";
    const HYBRID_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
33 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
34 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
35 25 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
90 80 0:29 /ns /mnt/bound rw - cgroup cgroup rw,memory\n";

    #[test]
    fn a_hybrid_host_maps_each_controller_to_its_hierarchy() {
        let c = Cgroups {
            paths: parse_proc_cgroup(HYBRID_CGROUP),
            mounts: hierarchy_mounts(HYBRID_MOUNTINFO),
        };
        assert_eq!(
            c.dir("pids").unwrap(),
            PathBuf::from("/sys/fs/cgroup/pids/ns/c")
        );
        assert_eq!(
            c.dir("cpuacct").unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ns/c")
        );
        assert_eq!(
            c.dir("name=systemd").unwrap(),
            PathBuf::from("/sys/fs/cgroup/systemd/user.slice")
        );
        assert_eq!(
            c.memory_dir().unwrap(),
            (PathBuf::from("/sys/fs/cgroup/memory/ns/c"), false)
        );
        // the bind of a sub-cgroup does not replace the hierarchy's root mount
        assert_eq!(c.mounts["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert!(c.dir("hugetlb").is_none());
    }

    #[test]
    fn a_pure_v2_host_has_only_the_unified_hierarchy() {
        let c = Cgroups {
            paths: parse_proc_cgroup("0::/k/pod1\n"),
            mounts: hierarchy_mounts("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
        };
        assert_eq!(
            c.memory_dir().unwrap(),
            (PathBuf::from("/sys/fs/cgroup/k/pod1"), true)
        );
    }

    #[test]
    fn this_process_has_cgroups() {
        let c = Cgroups::of_pid(std::process::id()).unwrap();
        assert!(!c.paths.is_empty());
        assert_eq!(
            cgroup2_host(),
            !c.paths.keys().any(|k| !k.is_empty()) && c.mounts.len() == 1
        );
    }
}
