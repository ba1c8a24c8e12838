//! What a container may leave behind, checked after every test: its state dir, its cgroup
//! directories in every hierarchy, mounts of its bundle, and processes in its cgroup.

use std::path::{Path, PathBuf};

/// Every leftover of one container, as readable lines (empty when clean).
pub fn leftovers(state_root: &Path, id: &str, cgroups_path: &str, bundle: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let state = state_root.join(id);
    if state.exists() {
        found.push(format!("state dir {}", state.display()));
    }
    for dir in cgroup_dirs(cgroups_path) {
        if dir.exists() {
            found.push(format!("cgroup dir {}", dir.display()));
        }
    }
    let bundle_s = bundle.to_string_lossy();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            if line.contains(bundle_s.as_ref()) {
                found.push(format!("mount {line}"));
            }
        }
    }
    found
}

/// The directories a cgroups path maps to, one per mounted hierarchy on v1 (a hierarchy
/// mounted under two names, as cpu and cpu,cpuacct may be, counted once) and the one unified
/// directory on v2, whether they exist or not.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    let mut hierarchies: Vec<PathBuf> = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        if !(p.join("cgroup.procs").exists() || p.join("tasks").exists()) {
            continue;
        }
        let real = p.canonicalize().unwrap_or(p);
        if !hierarchies.contains(&real) {
            hierarchies.push(real);
        }
    }
    hierarchies.into_iter().map(|h| h.join(rel)).collect()
}

/// The cgroup directories of a cgroups path that exist now.
pub fn existing_cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    cgroup_dirs(cgroups_path)
        .into_iter()
        .filter(|d| d.exists())
        .collect()
}

/// The memory cgroup directory (v1) or the unified one (v2) of a cgroups path.
pub fn memory_cgroup_dir(cgroups_path: &str) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.exists() {
        v1.join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(rel)
    }
}
