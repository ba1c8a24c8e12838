//! The shim process: the `start` and `delete` subcommands, and the setup of the task
//! service (exit monitor, events) when containerd runs us as a server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_address;
use containerd_shim::{Config, Error, ExitSignal, Flags, StartOpts};

use crate::container::{read_runtime_file, runtime_binary, runtime_root, unmount_rootfs};
use crate::events::Events;
use crate::monitor::Monitor;
use crate::runtime::Runtime;
use crate::task::TaskService;

/// Spec annotations that put containers into one shim, checked in this order.
pub const GROUP_KEYS: [&str; 2] = [
    "io.containerd.polis.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

pub struct Service {
    namespace: String,
    id: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

/// The shim (and socket) a container belongs to: its group annotation, else its own id.
pub fn grouping(spec: &serde_json::Value, id: &str) -> String {
    GROUP_KEYS
        .iter()
        .find_map(|k| spec["annotations"][k].as_str().filter(|v| !v.is_empty()))
        .unwrap_or(id)
        .to_string()
}

fn read_spec(bundle: &Path) -> serde_json::Value {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

impl containerd_shim::Shim for Service {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Self {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = grouping(&read_spec(&self.bundle), &opts.id);
        let (_pid, address) = containerd_shim::spawn(opts, &group, Vec::new())?;
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let (monitor, _others) = Monitor::start().map_err(|e| Error::Other(e.to_string()))?;
        let default = containerd_shim::protos::shim::oci::Options::new();
        let (binary, root) = read_runtime_file(&self.bundle).unwrap_or_else(|| {
            (
                runtime_binary(&default),
                runtime_root(&default, &self.namespace),
            )
        });
        let log = self.bundle.join("log.json");
        let runtime = Runtime::new(binary, root, log, monitor);
        if let Err(e) = runtime.delete(&self.id, true) {
            if !e.message().contains("does not exist") {
                log::warn!("delete of {} in {}: {e}", self.id, self.bundle.display());
            }
        }
        unmount_rootfs(&self.bundle);
        let mut ts =
            containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp::new();
        let d = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        ts.seconds = d.as_secs() as i64;
        ts.nanos = d.subsec_nanos() as i32;
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(ts),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::start(publisher, address, self.namespace.clone());
        let (monitor, exits) = match Monitor::start() {
            Ok(m) => m,
            Err(e) => {
                log::error!("cannot watch child exits: {e}");
                std::process::exit(1);
            }
        };
        TaskService::new(&self.namespace, monitor, exits, events, self.exit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grouping_prefers_polis_group_then_sandbox_then_id() {
        let both = json!({"annotations": {
            "io.containerd.polis.v2.group": "g1",
            "io.kubernetes.cri.sandbox-id": "sb"}});
        assert_eq!(grouping(&both, "c1"), "g1");
        let sandbox = json!({"annotations": {"io.kubernetes.cri.sandbox-id": "sb"}});
        assert_eq!(grouping(&sandbox, "c1"), "sb");
        assert_eq!(grouping(&json!({}), "c1"), "c1");
    }
}
