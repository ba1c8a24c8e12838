//! `events`: runc's event stream — `{"type":"stats","id":..,"data":..}` every interval, one with
//! --stats, and `{"type":"oom"}` when the OOM counter of the container's cgroup grows.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libcgroups::common::{create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager};
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use libcontainer::container::{Container, ContainerStatus};
use serde_json::{json, Value};

use crate::cli::{Events, GlobalOpts};

pub fn events(args: Events, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let container = super::load(g, id)?;
    if container.status() == ContainerStatus::Stopped {
        bail!("container {id:?} is not running");
    }
    let manager = cgroup_manager(&container)?;
    if args.stats {
        println!("{}", stats_event(id, &manager)?);
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    // As runc: an `oom` event as soon as the kernel reports one (v1: an eventfd on
    // memory.oom_control; elsewhere the oom_kill counter, read each interval), stats every
    // interval from one interval after the start, and the end when the container's cgroup is
    // gone (it was deleted), not when its processes exit.
    let watch = container.pid().and_then(|p| OomWatch::new(p.as_raw()));
    let mut ooms = oom_count(&manager);
    let mut next = Instant::now() + args.interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match &watch {
            Some(w) => {
                if w.wait(wait)? {
                    if !w.cgroup_exists() {
                        return Ok(0);
                    }
                    writeln!(out, "{}", event("oom", id, None))?;
                    out.flush()?;
                    continue;
                }
            }
            None => std::thread::sleep(wait),
        }
        next += args.interval;
        if super::load(g, id).is_err() {
            return Ok(0);
        }
        match stats_event(id, &manager) {
            Ok(v) => writeln!(out, "{v}")?,
            Err(err) => tracing::error!("{err:#}"),
        }
        if watch.is_none() {
            let now = oom_count(&manager);
            if now > ooms {
                writeln!(out, "{}", event("oom", id, None))?;
                ooms = now;
            }
        }
        out.flush()?;
    }
}

/// The v1 memory cgroup's OOM notification: an eventfd registered through
/// `cgroup.event_control`; the kernel also signals it when the cgroup is removed.
struct OomWatch {
    efd: OwnedFd,
    dir: PathBuf,
    _control: std::fs::File,
}

impl OomWatch {
    fn new(pid: i32) -> Option<Self> {
        let dir = super::subcgroup::dir_of(pid, "memory")?;
        let control = std::fs::File::open(dir.join("memory.oom_control")).ok()?;
        // SAFETY: eventfd has no memory-safety preconditions; the fd is owned below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a new fd nobody else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(dir.join("cgroup.event_control"), line).ok()?;
        Some(Self {
            efd,
            dir,
            _control: control,
        })
    }

    /// Waits up to `timeout`; true when the eventfd fired (an OOM, or the cgroup's removal).
    fn wait(&self, timeout: Duration) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.efd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err).context("failed to wait for OOM notifications");
        }
        if n == 0 {
            return Ok(false);
        }
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8.
        unsafe { libc::read(self.efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        Ok(true)
    }

    fn cgroup_exists(&self) -> bool {
        self.dir.join("cgroup.event_control").exists()
    }
}

pub fn cgroup_manager(c: &Container) -> Result<AnyCgroupManager> {
    let spec = c
        .spec()
        .with_context(|| format!("failed to load saved config of container {:?}", c.id()))?;
    create_cgroup_manager(CgroupConfig {
        cgroup_path: spec.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: c.id().to_string(),
    })
    .with_context(|| format!("failed to open cgroup of container {:?}", c.id()))
}

fn stats_event(id: &str, m: &AnyCgroupManager) -> Result<String> {
    let stats = m
        .stats()
        .with_context(|| format!("failed to read cgroup stats of container {id:?}"))?;
    Ok(event("stats", id, Some(runc_stats(&stats))))
}

/// An event line with runc's key order: type, id, then data (left out when there is none).
fn event(kind: &str, id: &str, data: Option<Value>) -> String {
    let mut line = format!(
        "{{\"type\":{},\"id\":{}",
        Value::from(kind),
        Value::from(id)
    );
    if let Some(data) = data {
        line.push_str(&format!(",\"data\":{data}"));
    }
    line.push('}');
    line
}

fn oom_count(m: &AnyCgroupManager) -> u64 {
    m.stats()
        .ok()
        .and_then(|s| s.memory.stats.get("oom_kill").copied())
        .unwrap_or(0)
}

/// libcgroups' stats in the shape of runc's `events --stats` (`types.Stats`).
pub fn runc_stats(s: &Stats) -> Value {
    let mem = |d: &MemoryData| json!({"limit": d.limit, "usage": d.usage, "max": d.max_usage, "failcnt": d.fail_count});
    let blk = |v: &[BlkioDeviceStat]| -> Value {
        v.iter()
            .map(|d| json!({"major": d.major, "minor": d.minor, "op": d.op_type.clone().unwrap_or_default(), "value": d.value}))
            .collect()
    };
    let hugetlb: serde_json::Map<String, Value> = s
        .hugetlb
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({"usage": v.usage, "max": v.max_usage, "failcnt": v.fail_count}),
            )
        })
        .collect();
    json!({
        "cpu": {
            "usage": {
                "total": s.cpu.usage.usage_total,
                "percpu": s.cpu.usage.per_core_usage_total,
                "percpu_kernel": s.cpu.usage.per_core_usage_kernel,
                "percpu_user": s.cpu.usage.per_core_usage_user,
                "kernel": s.cpu.usage.usage_kernel,
                "user": s.cpu.usage.usage_user,
            },
            "throttling": {
                "periods": s.cpu.throttling.periods,
                "throttledPeriods": s.cpu.throttling.throttled_periods,
                "throttledTime": s.cpu.throttling.throttled_time,
            },
        },
        "memory": {
            "cache": s.memory.cache,
            "usage": mem(&s.memory.memory),
            "swap": mem(&s.memory.memswap),
            "kernel": mem(&s.memory.kernel),
            "kernelTCP": mem(&s.memory.kernel_tcp),
            "raw": s.memory.stats,
        },
        "pids": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio": {
            "ioServiceBytesRecursive": blk(&s.blkio.service_bytes),
            "ioServicedRecursive": blk(&s.blkio.serviced),
            "ioQueueRecursive": blk(&s.blkio.queued),
            "ioServiceTimeRecursive": blk(&s.blkio.service_time),
            "ioWaitTimeRecursive": blk(&s.blkio.wait_time),
            "ioMergedRecursive": blk(&s.blkio.merged),
            "ioTimeRecursive": blk(&s.blkio.time),
            "sectorsRecursive": blk(&s.blkio.sectors),
        },
        "hugetlb": hugetlb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_have_runc_field_names() {
        let mut s = Stats::default();
        s.memory.memory.usage = 4096;
        s.memory.memory.limit = 1 << 20;
        s.pids.current = 3;
        s.cpu.usage.usage_total = 77;
        let v = runc_stats(&s);
        assert_eq!(v["memory"]["usage"]["usage"], 4096);
        assert_eq!(v["memory"]["usage"]["limit"], 1 << 20);
        assert_eq!(v["pids"]["current"], 3);
        assert_eq!(v["cpu"]["usage"]["total"], 77);
        assert!(v["blkio"]["ioServiceBytesRecursive"].is_array());
    }
}
