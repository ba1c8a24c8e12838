//! Task metrics: the cgroup of the init process, in containerd's Metrics types (v1 or v2),
//! packed as the `Any` containerd's `ctr task metrics` decodes.

use containerd_shim::cgroup::{collect_metrics, collect_metrics_v2, get_cgroup};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;

const V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
const V2_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

pub fn collect(pid: u32) -> Result<Any, String> {
    let cgroup = get_cgroup(pid).map_err(|e| format!("cgroup of pid {pid}: {e}"))?;
    let (type_url, value) = if cgroup.v2() {
        let m = collect_metrics_v2(&cgroup).map_err(|e| e.to_string())?;
        (V2_TYPE, m.write_to_bytes().map_err(|e| e.to_string())?)
    } else {
        let m = collect_metrics(&cgroup).map_err(|e| e.to_string())?;
        (V1_TYPE, m.write_to_bytes().map_err(|e| e.to_string())?)
    };
    let mut any = Any::new();
    any.type_url = type_url.into();
    any.value = value;
    Ok(any)
}
