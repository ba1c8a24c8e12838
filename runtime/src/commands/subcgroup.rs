//! `exec --cgroup [<controller>[,<controller>...]:]<path>`: the exec'd process goes into an
//! existing sub-cgroup of the container, in the hierarchies named (or in every one when no
//! controller is given), as runc does. Nothing is created: a sub-cgroup that does not exist
//! fails the exec.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The `--cgroup` arguments as controller -> sub-path; the key "" stands for every hierarchy.
pub fn parse(args: &[String]) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for a in args {
        let parts: Vec<&str> = a.split(':').collect();
        match parts[..] {
            [path] => {
                if args.len() > 1 {
                    bail!(
                        "invalid --cgroup argument {a:?}: with more than one --cgroup, each \
                         needs a <controller>: prefix"
                    );
                }
                map.insert(String::new(), path.to_string());
            }
            [ctrls, path] => {
                for c in ctrls.split(',') {
                    map.insert(c.to_string(), path.to_string());
                }
            }
            _ => bail!("invalid --cgroup argument {a:?}: expected [<controller>:]<path>"),
        }
    }
    Ok(map)
}

/// One hierarchy the container's init is in: its controllers ("" for cgroup2, `name=systemd`
/// for a named one) and the container's directory there.
#[derive(Debug, PartialEq)]
struct Hierarchy {
    controllers: Vec<String>,
    dir: PathBuf,
}

/// The directories the exec'd process must move into, after it joined the container's cgroups.
pub fn dirs(init_pid: i32, subs: &HashMap<String, String>) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    let cgroup =
        std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).with_context(|| {
            format!("failed to read the cgroups of the container's init {init_pid}")
        })?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .context("failed to read /proc/self/mountinfo")?;
    let hierarchies = hierarchies(&cgroup, &mountinfo);
    for ctrl in subs.keys().filter(|k| !k.is_empty()) {
        if !hierarchies.iter().any(|h| h.controllers.contains(ctrl)) {
            bail!("unknown controller {ctrl:?} in --cgroup");
        }
    }
    let mut out = Vec::new();
    for h in &hierarchies {
        let sub = h
            .controllers
            .iter()
            .find_map(|c| subs.get(c))
            .or_else(|| subs.get(""));
        let Some(sub) = sub else { continue };
        let dir = sub_dir(&h.dir, sub)?;
        if dir == h.dir {
            continue;
        }
        if !dir.is_dir() {
            bail!(
                "sub-cgroup {sub:?} does not exist: {} (--cgroup only joins existing cgroups)",
                dir.display()
            );
        }
        out.push(dir);
    }
    Ok(out)
}

/// The container's directory in the hierarchy of `controller` ("" for cgroup2), from the
/// cgroups of its process `pid`.
pub fn dir_of(pid: i32, controller: &str) -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    hierarchies(&cgroup, &mountinfo)
        .into_iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .map(|h| h.dir)
}

/// `base` joined with `sub` and normalised (`..` taken lexically); a result outside `base` is
/// refused.
fn sub_dir(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut parts: Vec<String> = base
        .to_string_lossy()
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_string()),
        }
    }
    let dir: PathBuf = std::iter::once("/".to_string()).chain(parts).collect();
    if !dir.starts_with(base) {
        bail!("{sub:?} is not a sub-cgroup of the container's cgroup");
    }
    Ok(dir)
}

/// Pairs each line of /proc/PID/cgroup with a mount of its hierarchy.
fn hierarchies(cgroup: &str, mountinfo: &str) -> Vec<Hierarchy> {
    // (controllers or "" for cgroup2, mount root, mount point)
    let mut mounts: Vec<(Vec<String>, &str, &str)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let ctrls = match post[0] {
            "cgroup2" => vec![String::new()],
            "cgroup" => post[2]
                .split(',')
                .filter(|o| is_controller_option(o))
                .map(String::from)
                .collect(),
            _ => continue,
        };
        mounts.push((ctrls, pre[3], pre[4]));
    }
    let mut out = Vec::new();
    for line in cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let controllers: Vec<String> = if ctrls.is_empty() {
            vec![String::new()]
        } else {
            ctrls.split(',').map(String::from).collect()
        };
        let found = mounts.iter().find(|(m, root, _)| {
            controllers.iter().all(|c| m.contains(c)) && (*root == "/" || path.starts_with(root))
        });
        if let Some((_, root, point)) = found {
            let rel = path
                .strip_prefix(root.trim_end_matches('/'))
                .unwrap_or(path)
                .trim_start_matches('/');
            out.push(Hierarchy {
                controllers,
                dir: Path::new(unescape(point).as_str()).join(rel),
            });
        }
    }
    out
}

/// A cgroup v1 mount option that names a hierarchy's controller (or its name).
fn is_controller_option(o: &str) -> bool {
    !matches!(
        o,
        "rw" | "ro" | "noprefix" | "xattr" | "clone_children" | "cpuset_v2_mode" | "none"
    ) && !o.starts_with("release_agent=")
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_as_runc_reads_them() {
        let m = parse(&strings(&["sub"])).unwrap();
        assert_eq!(m.get(""), Some(&"sub".to_string()));
        let m = parse(&strings(&["cpu,pids:a", "memory:/b"])).unwrap();
        assert_eq!(m.get("cpu"), Some(&"a".to_string()));
        assert_eq!(m.get("pids"), Some(&"a".to_string()));
        assert_eq!(m.get("memory"), Some(&"/b".to_string()));
        assert!(parse(&strings(&["a:b:c"])).is_err());
        assert!(parse(&strings(&["sub", "pids:sub"])).is_err());
        assert_eq!(parse(&strings(&[":x"])).unwrap().get(""), Some(&"x".into()));
    }

    #[test]
    fn sub_paths_stay_inside() {
        let base = Path::new("/cg/pids/c1");
        let d = |s| sub_dir(base, s);
        assert_eq!(d("a/../b").unwrap(), PathBuf::from("/cg/pids/c1/b"));
        assert_eq!(d("/").unwrap(), base);
        assert_eq!(d("").unwrap(), base);
        assert_eq!(d("/../c1/x").unwrap(), PathBuf::from("/cg/pids/c1/x"));
        assert!(d("../x").is_err());
        assert!(d("a/../../x").is_err());
        assert!(d("../c10").is_err());
    }

    #[test]
    fn hierarchies_from_proc_and_mountinfo() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid shared:6 - cgroup cgroup rw,xattr,name=systemd
35 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpu,cpuacct
36 25 0:32 / /sys/fs/cgroup/pids rw shared:11 - cgroup cgroup rw,pids
";
        let cgroup = "4:pids:/c1\n3:cpu,cpuacct:/c1\n1:name=systemd:/c1\n0::/c1\n";
        let h = hierarchies(cgroup, mountinfo);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].dir, PathBuf::from("/sys/fs/cgroup/pids/c1"));
        assert_eq!(h[1].controllers, strings(&["cpu", "cpuacct"]));
        assert_eq!(h[1].dir, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"));
        assert_eq!(h[2].dir, PathBuf::from("/sys/fs/cgroup/systemd/c1"));
        assert_eq!(h[3].controllers, strings(&[""]));
        assert_eq!(h[3].dir, PathBuf::from("/sys/fs/cgroup/unified/c1"));
    }
}
