//! OOM watching: on cgroup v1 an eventfd registered on `memory.oom_control`; on cgroup v2
//! the `oom_kill` counter of `memory.events`, polled. Each OOM calls `on_oom`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("no memory cgroup for pid {0}")]
    NoCgroup(u32),
    #[error("failed to watch {path}: {source}")]
    Watch { path: PathBuf, source: io::Error },
}

/// The memory cgroup directory of `pid`, on v1 or unified v2.
pub fn memory_cgroup_of(pid: u32) -> Result<(PathBuf, bool), OomError> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|_| OomError::NoCgroup(pid))?;
    memory_cgroup_from(&data, Path::new("/sys/fs/cgroup")).ok_or(OomError::NoCgroup(pid))
}

/// Parses `/proc/PID/cgroup`; returns the directory and whether it is v2.
fn memory_cgroup_from(data: &str, root: &Path) -> Option<(PathBuf, bool)> {
    let mut v2 = None;
    for line in data.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some((root.join("memory").join(rel), false));
        }
        if controllers.is_empty() {
            v2 = Some((root.join(rel), true));
        }
    }
    v2
}

/// Starts a thread that calls `on_oom` for each OOM in the memory cgroup `dir`; it ends
/// when the cgroup is removed.
pub fn watch(dir: PathBuf, v2: bool, on_oom: impl Fn() + Send + 'static) -> Result<(), OomError> {
    if v2 {
        let events = dir.join("memory.events");
        let mut last = read_oom_kills(&events).unwrap_or(0);
        let _ = std::thread::Builder::new()
            .name("oom-v2".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(200));
                let Some(now) = read_oom_kills(&events) else {
                    return;
                };
                if now > last {
                    on_oom();
                }
                last = now;
            });
        return Ok(());
    }
    let control = dir.join("memory.oom_control");
    let err = |source| OomError::Watch {
        path: control.clone(),
        source,
    };
    let oom = File::open(&control).map_err(err)?;
    // SAFETY: eventfd returns a new fd or -1.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: efd is a fresh fd we own.
    let mut efd = unsafe { File::from_raw_fd(efd) };
    let line = format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd());
    std::fs::write(dir.join("cgroup.event_control"), line).map_err(err)?;
    let _ = std::thread::Builder::new()
        .name("oom-v1".into())
        .spawn(move || {
            let _keep = oom;
            let mut buf = [0u8; 8];
            while efd.read_exact(&mut buf).is_ok() {
                // The eventfd also fires when the cgroup goes away.
                if !control.exists() {
                    return;
                }
                on_oom();
            }
        });
    Ok(())
}

fn read_oom_kills(events: &Path) -> Option<u64> {
    parse_oom_kills(&std::fs::read_to_string(events).ok()?)
}

fn parse_oom_kills(data: &str) -> Option<u64> {
    data.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_memory_line_wins_over_unified() {
        let data = "12:memory:/polis/abc\n0::/polis/abc\n3:cpu,cpuacct:/polis/abc\n";
        let (dir, v2) = memory_cgroup_from(data, Path::new("/sys/fs/cgroup")).unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/memory/polis/abc"));
        assert!(!v2);
    }

    #[test]
    fn unified_only_is_v2() {
        let (dir, v2) = memory_cgroup_from("0::/k/pod1\n", Path::new("/sys/fs/cgroup")).unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/k/pod1"));
        assert!(v2);
    }

    #[test]
    fn oom_kill_counter_parsed() {
        let data = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n";
        assert_eq!(parse_oom_kills(data), Some(1));
        assert_eq!(parse_oom_kills("low 0\n"), None);
    }

    #[test]
    fn v2_watch_fires_on_counter_increase() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        watch(dir.path().to_path_buf(), true, move || {
            let _ = tx.send(());
        })
        .unwrap();
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
