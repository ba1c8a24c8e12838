//! `update`: change resource limits of a live container in its cgroup.

use anyhow::{bail, Context, Result};
use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::container::ContainerStatus;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};

use crate::cli::{GlobalOpts, Update};

pub fn update(args: Update, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let container = super::load(g, id)?;
    if container.status() == ContainerStatus::Stopped {
        bail!("cannot update container {id:?}: container not running");
    }
    let mut resources = match &args.resources {
        Some(path) => super::read_json_file::<LinuxResources>(path)?,
        None => resources_from_flags(&args)?,
    };
    // The device rules stay the container's own, as with runc (whose update has no device
    // settings and ignores them in --resources): the cgroup is then left untouched.
    let spec = oci_spec::runtime::Spec::load(container.bundle().join("config.json"))
        .with_context(|| format!("failed to load config.json of container {id:?}"))?;
    resources.set_devices(
        spec.linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone()),
    );
    let manager = super::events::cgroup_manager(&container)?;
    manager
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .with_context(|| format!("failed to update resources of container {id:?}"))?;
    Ok(0)
}

/// Only the limits given on the command line, so that the others stay as they are.
fn resources_from_flags(a: &Update) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    if a.memory.is_some() || a.memory_swap.is_some() || a.memory_reservation.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(v) = a.memory {
            m = m.limit(v);
        }
        if let Some(v) = a.memory_swap {
            m = m.swap(v);
        }
        if let Some(v) = a.memory_reservation {
            m = m.reservation(v);
        }
        r.set_memory(Some(m.build()?));
    }
    let cpu_given = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_given {
        let mut c = LinuxCpuBuilder::default();
        if let Some(v) = a.cpu_period {
            c = c.period(v);
        }
        if let Some(v) = a.cpu_quota {
            c = c.quota(v);
        }
        if let Some(v) = a.cpu_share {
            c = c.shares(v);
        }
        if let Some(v) = a.cpu_rt_period {
            c = c.realtime_period(v);
        }
        if let Some(v) = a.cpu_rt_runtime {
            c = c.realtime_runtime(v);
        }
        if let Some(v) = &a.cpuset_cpus {
            c = c.cpus(v.clone());
        }
        if let Some(v) = &a.cpuset_mems {
            c = c.mems(v.clone());
        }
        r.set_cpu(Some(c.build()?));
    }
    if let Some(v) = a.pids_limit {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(v).build()?));
    }
    if let Some(v) = a.blkio_weight {
        r.set_block_io(Some(LinuxBlockIoBuilder::default().weight(v).build()?));
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        tracing::warn!("kernel memory limits are deprecated and ignored, as in runc");
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("Intel RDT updates are not supported by this build");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_limits_are_set() {
        let a = Update {
            memory: Some(64 << 20),
            pids_limit: Some(10),
            container_id: "x".into(),
            ..Default::default()
        };
        let r = resources_from_flags(&a).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.memory().as_ref().unwrap().swap(), None);
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert!(r.cpu().is_none());
        assert!(r.block_io().is_none());
    }
}
