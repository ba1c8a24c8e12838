//! OOM watching: on cgroup v1 an eventfd registered on `memory.oom_control`; on cgroup v2
//! an inotify watch on `memory.events` and its `oom_kill` counter. Each OOM calls `on_oom`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("no memory cgroup for pid {0}")]
    NoCgroup(u32),
    #[error("failed to watch {path}: {source}")]
    Watch { path: PathBuf, source: io::Error },
}

/// The memory cgroup directory of `pid`, on v1 or unified v2.
pub fn memory_cgroup_of(pid: u32) -> Result<(PathBuf, bool), OomError> {
    polis_sys::cgroup::Cgroups::of_pid(pid)
        .ok()
        .and_then(|c| c.memory_dir())
        .ok_or(OomError::NoCgroup(pid))
}

/// Calls `on_oom` for each OOM in the memory cgroup `dir` until the cgroup is removed, from
/// the shim's one OOM thread: on v1 through an eventfd registered on `memory.oom_control`, on
/// v2 through an inotify watch on `memory.events` (the kernel reports each change of its
/// counters as a modification) and the `oom_kill` counter read when it changes. No polling.
pub fn watch(dir: PathBuf, v2: bool, on_oom: impl Fn() + Send + 'static) -> Result<(), OomError> {
    if v2 {
        let events = dir.join("memory.events");
        let err = |source| OomError::Watch {
            path: events.clone(),
            source,
        };
        let last = read_oom_kills(&events).ok_or_else(|| err(io::ErrorKind::NotFound.into()))?;
        return Watcher::get()
            .map_err(err)?
            .add_v2(events.clone(), last, Box::new(on_oom))
            .map_err(err);
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
    Watcher::get()
        .map_err(err)?
        .add_v1(V1Watch {
            efd,
            _oom_control: oom,
            control: control.clone(),
            on_oom: Box::new(on_oom),
        })
        .map_err(err)
}

/// One cgroup v1 OOM registration: its eventfd, the open `memory.oom_control` the
/// registration refers to, and what to call.
struct V1Watch {
    efd: OwnedFd,
    _oom_control: File,
    control: PathBuf,
    on_oom: Box<dyn Fn() + Send>,
}

/// One cgroup v2 watch: the `memory.events` file, its last `oom_kill` count, what to call.
struct V2Watch {
    events: PathBuf,
    last: u64,
    on_oom: Box<dyn Fn() + Send>,
}

/// The epoll token of the inotify fd (eventfds use their fd number).
const INOTIFY_TOKEN: u64 = u64::MAX;

/// One thread waits on the OOM notifications of every container of the shim (a pod's shim has
/// many), v1 eventfds and v2 inotify watches alike, not one thread per container.
struct Watcher {
    epoll: OwnedFd,
    inotify: OwnedFd,
    v1: Mutex<HashMap<RawFd, V1Watch>>,
    /// By inotify watch descriptor.
    v2: Mutex<HashMap<i32, V2Watch>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_fd(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Watcher {
    fn get() -> io::Result<&'static Watcher> {
        static WATCHER: OnceLock<Watcher> = OnceLock::new();
        if let Some(w) = WATCHER.get() {
            return Ok(w);
        }
        // SAFETY: plain fd-creating calls; results checked by new_fd.
        let epoll = new_fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let inotify = new_fd(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
        epoll_add(&epoll, inotify.as_raw_fd(), INOTIFY_TOKEN)?;
        let candidate = Watcher {
            epoll,
            inotify,
            v1: Mutex::new(HashMap::new()),
            v2: Mutex::new(HashMap::new()),
        };
        let mut installed = false;
        let w = WATCHER.get_or_init(|| {
            installed = true;
            candidate
        });
        if installed {
            std::thread::Builder::new()
                .name("oom".into())
                .spawn(move || w.run())?;
        }
        Ok(w)
    }

    fn add_v1(&self, watch: V1Watch) -> io::Result<()> {
        let fd = watch.efd.as_raw_fd();
        // Registered first, so the thread finds the watch as soon as the fd fires.
        lock(&self.v1).insert(fd, watch);
        epoll_add(&self.epoll, fd, fd as u64).inspect_err(|_| {
            lock(&self.v1).remove(&fd);
        })
    }

    fn add_v2(&self, events: PathBuf, last: u64, on_oom: Box<dyn Fn() + Send>) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(events.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // The lock is held across the add so that the thread cannot see the new descriptor's
        // first event before the watch is in the map.
        let mut watches = lock(&self.v2);
        // SAFETY: a NUL-terminated path and our inotify fd.
        let wd = unsafe {
            libc::inotify_add_watch(self.inotify.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY)
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        watches.insert(
            wd,
            V2Watch {
                events,
                last,
                on_oom,
            },
        );
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
                tracing::error!(error = %io::Error::last_os_error(), "OOM watcher failed");
                return;
            }
            for ev in &events[..n as usize] {
                if ev.u64 == INOTIFY_TOKEN {
                    self.inotify_fired();
                } else {
                    self.eventfd_fired(ev.u64 as RawFd);
                }
            }
        }
    }

    fn eventfd_fired(&self, fd: RawFd) {
        let mut buf = [0u8; 8];
        // SAFETY: read of 8 bytes from an eventfd we hold.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut watches = lock(&self.v1);
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

    fn inotify_fired(&self) {
        // Aligned for inotify_event; room for many events without names (watches are on files).
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: read into our buffer of the given size from our inotify fd.
            let n = unsafe {
                libc::read(
                    self.inotify.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n <= 0 {
                return; // EAGAIN: drained
            }
            // SAFETY: the kernel wrote n bytes of whole inotify_event records.
            let bytes =
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            let mut off = 0;
            let head = std::mem::size_of::<libc::inotify_event>();
            while off + head <= bytes.len() {
                // SAFETY: a whole record starts at off; read_unaligned copes with any offset.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(bytes[off..].as_ptr().cast()) };
                off += head + ev.len as usize;
                self.v2_event(ev.wd, ev.mask);
            }
        }
    }

    fn v2_event(&self, wd: i32, mask: u32) {
        let mut watches = lock(&self.v2);
        // IN_IGNORED: the file is gone (the cgroup was removed) and the kernel dropped the watch.
        if mask & libc::IN_IGNORED != 0 {
            watches.remove(&wd);
            return;
        }
        let Some(w) = watches.get_mut(&wd) else {
            return;
        };
        let Some(now) = read_oom_kills(&w.events) else {
            return;
        };
        if now > w.last {
            (w.on_oom)();
        }
        w.last = now;
    }
}

fn epoll_add(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: epoll_ctl on our epoll fd and an fd the caller holds.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
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
    use std::time::Duration;

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
        // a change of another counter is no OOM
        std::fs::write(&events, "oom 1\noom_kill 1\nmax 3\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        std::fs::write(&events, "oom 2\noom_kill 2\n").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // the watch ends with its file, on the one OOM thread
        let watched = || {
            lock(&Watcher::get().unwrap().v2)
                .values()
                .filter(|w| w.events == events)
                .count()
        };
        assert_eq!(watched(), 1);
        assert_eq!(threads_named("oom"), 1);
        std::fs::remove_file(&events).unwrap();
        wait_for("the end of the v2 watch", || watched() == 0);
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
            let w = Watcher::get().unwrap();
            let n = lock(&w.v1)
                .values()
                .filter(|w| w.control == control)
                .count();
            n
        };
        for d in &cgroups.0 {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            watch(d.clone(), false, || {}).unwrap();
            assert_eq!(watched(d), 1);
        }
        // The thread names itself once it runs.
        wait_for("the OOM thread", || threads_named("oom") == 1);
        assert_eq!(threads_named("oom"), 1);
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
