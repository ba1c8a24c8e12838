//! OOM watching: on cgroup v1 an eventfd registered on `memory.oom_control`; on cgroup v2
//! the `oom_kill` counter of `memory.events`, polled. Each OOM calls `on_oom`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
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

/// Calls `on_oom` for each OOM in the memory cgroup `dir` until the cgroup is removed: on v1
/// from the shim's one OOM thread, on v2 from a thread of its own.
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
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let line = format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd());
    std::fs::write(dir.join("cgroup.event_control"), line).map_err(err)?;
    V1Watcher::get()
        .map_err(err)?
        .add(V1Watch {
            efd,
            _oom_control: oom,
            control,
            on_oom: Box::new(on_oom),
        })
        .map_err(|source| OomError::Watch {
            path: dir.join("memory.oom_control"),
            source,
        })
}

/// One cgroup v1 OOM registration: its eventfd, the open `memory.oom_control` the
/// registration refers to, and what to call.
struct V1Watch {
    efd: OwnedFd,
    _oom_control: File,
    control: PathBuf,
    on_oom: Box<dyn Fn() + Send>,
}

/// One thread waits on the eventfds of every container of the shim (a pod's shim has many),
/// not one thread per container.
struct V1Watcher {
    epoll: OwnedFd,
    watches: Mutex<HashMap<RawFd, V1Watch>>,
}

impl V1Watcher {
    fn get() -> io::Result<&'static V1Watcher> {
        static WATCHER: OnceLock<V1Watcher> = OnceLock::new();
        if let Some(w) = WATCHER.get() {
            return Ok(w);
        }
        // SAFETY: epoll_create1 returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let candidate = V1Watcher {
            // SAFETY: a fresh fd we own.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            watches: Mutex::new(HashMap::new()),
        };
        let mut installed = false;
        let w = WATCHER.get_or_init(|| {
            installed = true;
            candidate
        });
        if installed {
            std::thread::Builder::new()
                .name("oom-v1".into())
                .spawn(move || w.run())?;
        }
        Ok(w)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RawFd, V1Watch>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, watch: V1Watch) -> io::Result<()> {
        let fd = watch.efd.as_raw_fd();
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // Registered first, so the thread finds the watch as soon as the fd fires.
        self.lock().insert(fd, watch);
        // SAFETY: epoll_ctl on our epoll fd and an eventfd we hold in `watches`.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }
            < 0
        {
            let e = io::Error::last_os_error();
            self.lock().remove(&fd);
            return Err(e);
        }
        Ok(())
    }

    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        loop {
            // SAFETY: epoll_wait into our buffer of events.len() entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("OOM watcher: {}", io::Error::last_os_error());
                return;
            }
            for ev in &events[..n as usize] {
                self.fired(ev.u64 as RawFd);
            }
        }
    }

    fn fired(&self, fd: RawFd) {
        let mut buf = [0u8; 8];
        // SAFETY: read of 8 bytes from an eventfd we hold.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut watches = self.lock();
        let Some(w) = watches.get(&fd) else {
            return;
        };
        // The eventfd also fires when the cgroup goes away: then the watch ends (dropping it
        // closes the eventfd, which takes it out of the epoll set).
        if !w.control.exists() {
            watches.remove(&fd);
            return;
        }
        (w.on_oom)();
    }
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

    /// Test memory cgroups, removed on drop (whatever is left of them).
    struct TestCgroups(Vec<PathBuf>);

    impl Drop for TestCgroups {
        fn drop(&mut self) {
            for d in &self.0 {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .count()
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn v1_watches_share_one_thread_and_end_with_their_cgroup() {
        let cgroups = TestCgroups(
            (0..3)
                .map(|i| {
                    PathBuf::from(format!(
                        "/sys/fs/cgroup/memory/polis-oomtest-{}-{i}",
                        std::process::id()
                    ))
                })
                .collect(),
        );
        let watched = |d: &Path| {
            let control = d.join("memory.oom_control");
            let w = V1Watcher::get().unwrap();
            let n = w.lock().values().filter(|w| w.control == control).count();
            n
        };
        for d in &cgroups.0 {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            watch(d.clone(), false, || {}).unwrap();
            assert_eq!(watched(d), 1);
        }
        // The thread names itself once it runs.
        wait_for("the OOM thread", || threads_named("oom-v1") == 1);
        assert_eq!(threads_named("oom-v1"), 1);
        for d in &cgroups.0 {
            std::fs::remove_dir(d).unwrap();
        }
        for d in &cgroups.0 {
            wait_for(&format!("the end of the watch of {}", d.display()), || {
                watched(d) == 0
            });
        }
    }
}
