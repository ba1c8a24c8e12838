//! What a container may leave behind, checked after every test: its state dir, its cgroup
//! directories in every hierarchy, mounts of its bundle, and processes in its cgroup.

use std::path::Path;

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

/// The directories a cgroups path maps to, on v1 (one per hierarchy) and v2.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<std::path::PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    let mut dirs = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists() || p.join("tasks").exists() {
                dirs.push(p.join(rel));
            }
        }
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        dirs.push(Path::new("/sys/fs/cgroup").join(rel));
    }
    dirs
}

/// The memory cgroup directory (v1) or the unified one (v2) of a cgroups path.
pub fn memory_cgroup_dir(cgroups_path: &str) -> std::path::PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.exists() {
        v1.join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(rel)
    }
}
