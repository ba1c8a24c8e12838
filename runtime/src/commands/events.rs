//! `events`: runc's event stream — `{"type":"stats","id":..,"data":..}` every interval, one with
//! --stats, and `{"type":"oom"}` when the OOM counter of the container's cgroup grows.

use std::io::Write;

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
    let mut ooms = oom_count(&manager);
    loop {
        let mut c = super::load(g, id)?;
        c.refresh_status()?;
        if c.status() == ContainerStatus::Stopped {
            return Ok(0);
        }
        writeln!(out, "{}", stats_event(id, &manager)?)?;
        let now = oom_count(&manager);
        if now > ooms {
            writeln!(out, "{}", json!({"type": "oom", "id": id}))?;
            ooms = now;
        }
        out.flush()?;
        std::thread::sleep(args.interval);
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

fn stats_event(id: &str, m: &AnyCgroupManager) -> Result<Value> {
    let stats = m
        .stats()
        .with_context(|| format!("failed to read cgroup stats of container {id:?}"))?;
    Ok(json!({"type": "stats", "id": id, "data": runc_stats(&stats)}))
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
