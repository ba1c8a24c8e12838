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
    let init_pid = container.pid().map(|p| p.as_raw());
    if args.stats {
        println!("{}", stats_event(id, &manager, init_pid)?);
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
        match stats_event(id, &manager, init_pid) {
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

fn stats_event(id: &str, m: &AnyCgroupManager, pid: Option<i32>) -> Result<String> {
    let stats = m
        .stats()
        .with_context(|| format!("failed to read cgroup stats of container {id:?}"))?;
    let mut data = runc_stats(&stats);
    data["cpuset"] = pid.map(cpuset_stats).unwrap_or_else(|| json!({}));
    data["intel_rdt"] = json!({});
    data["network_interfaces"] = Value::Null;
    omit_empty(&mut data, OMIT_EMPTY);
    Ok(event("stats", id, Some(data)))
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

/// The fields runc's `types.Stats` leaves out when they are zero or empty (Go's `omitempty`):
/// a path of keys, `*` for every element of an array or value of a map.
const OMIT_EMPTY: &[&[&str]] = &[
    &["hugetlb", "*", "usage"],
    &["hugetlb", "*", "max"],
    &["blkio", "*", "*", "major"],
    &["blkio", "*", "*", "minor"],
    &["blkio", "*", "*", "op"],
    &["blkio", "*", "*", "value"],
    &["blkio", "*"],
    &["pids", "current"],
    &["pids", "limit"],
    &["cpu", "throttling", "periods"],
    &["cpu", "throttling", "throttledPeriods"],
    &["cpu", "throttling", "throttledTime"],
    &["cpu", "usage", "total"],
    &["cpu", "usage", "percpu"],
    &["cpu", "usage", "percpu_kernel"],
    &["cpu", "usage", "percpu_user"],
    &["cpuset", "cpus"],
    &["cpuset", "mems"],
    &["memory", "cache"],
    &["memory", "*", "usage"],
    &["memory", "*", "max"],
    &["memory", "raw"],
];

/// Removes the fields at `paths` whose value is 0, "", an empty array or an empty object.
fn omit_empty(v: &mut Value, paths: &[&[&str]]) {
    fn walk(v: &mut Value, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let empty = |x: &Value| match x {
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Null => true,
            Value::Bool(_) => false,
        };
        match v {
            Value::Object(o) if rest.is_empty() => {
                if *first == "*" {
                    o.retain(|_, x| !empty(x));
                } else if o.get(*first).is_some_and(empty) {
                    o.remove(*first);
                }
            }
            Value::Object(o) if *first == "*" => o.values_mut().for_each(|x| walk(x, rest)),
            Value::Object(o) => {
                if let Some(x) = o.get_mut(*first) {
                    walk(x, rest);
                }
            }
            Value::Array(a) if *first == "*" => a.iter_mut().for_each(|x| walk(x, rest)),
            _ => {}
        }
    }
    for p in paths {
        walk(v, p);
    }
}

/// runc's cpuset statistics: the cgroup's cpuset files (lists expanded, flags as numbers).
fn cpuset_stats(pid: i32) -> Value {
    let Some(dir) = super::subcgroup::dir_of(pid, "cpuset") else {
        return json!({});
    };
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(format!("cpuset.{f}")))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let num = |f: &str| -> Value { read(f).parse::<i64>().map(Value::from).unwrap_or(json!(0)) };
    json!({
        "cpus": expand_list(&read("cpus")),
        "cpu_exclusive": num("cpu_exclusive"),
        "mems": expand_list(&read("mems")),
        "mem_hardwall": num("mem_hardwall"),
        "mem_exclusive": num("mem_exclusive"),
        "memory_migrate": num("memory_migrate"),
        "memory_spread_page": num("memory_spread_page"),
        "memory_spread_slab": num("memory_spread_slab"),
        "memory_pressure": num("memory_pressure"),
        "sched_load_balance": num("sched_load_balance"),
        "sched_relax_domain_level": num("sched_relax_domain_level"),
    })
}

/// "0-2,5" as [0, 1, 2, 5].
fn expand_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
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
    fn empty_fields_are_left_out_as_go_does() {
        let mut v = json!({"pids": {"current": 1, "limit": 0},
                           "blkio": {"a": [], "b": [{"major": 0, "op": "Read", "value": 3}]},
                           "hugetlb": {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}});
        omit_empty(&mut v, OMIT_EMPTY);
        assert_eq!(
            v,
            json!({"pids": {"current": 1}, "blkio": {"b": [{"op": "Read", "value": 3}]},
                   "hugetlb": {"2MB": {"failcnt": 0}}})
        );
        assert_eq!(expand_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(expand_list(""), Vec::<u32>::new());
    }

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
