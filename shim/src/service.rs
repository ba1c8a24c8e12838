//! The shim process's three lives: `start` (start.rs), `delete` (clean up after a dead shim)
//! and the ttrpc server containerd talks to.
//!
//! The server registers the Task service under both `containerd.task.v2.Task` (containerd
//! 1.6/1.7) and `containerd.task.v3.Task` (containerd 2.x): the messages are the same.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::shim::DeleteResponse;

use crate::container::{read_runtime_file, unmount_rootfs};
use crate::events::Events;
use crate::flags::Flags;
use crate::monitor::Monitor;
use crate::options::Settings;
use crate::runtime::{Failure, OciRuntime, Runtime};
use crate::task::{ExitSignal, TaskService};

/// `delete`: containerd calls it after a shim died, to remove what the shim left.
pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = flags.bundle().unwrap_or_default();
    // A bundle without our record never got as far as the runtime's create: the defaults
    // find nothing to delete, which is what we report.
    let record = read_runtime_file(&bundle).unwrap_or_else(|| {
        let s = Settings::from_any(None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "shim options unreadable, defaults used");
            Settings::fallback()
        });
        s.record(&flags.namespace)
    });
    // containerd runs this after every shim that exits, also after a clean delete of each
    // container: the runtime is run only while it still has state for the container (its
    // state dir under the root), which saves a runtime exec on every pod teardown.
    if record.root.join(&flags.id).exists() {
        let (monitor, _others) = Monitor::start().context("watch child exits")?;
        let runtime = Runtime::new(&record, bundle.join("log.json"), monitor);
        if let Err(e) = runtime.delete(&flags.id, true) {
            if e.failure() != Failure::Missing {
                tracing::warn!(container = flags.id, bundle = %bundle.display(), error = %e, "delete failed");
            }
        }
    }
    unmount_rootfs(&bundle);
    let resp = DeleteResponse {
        pid: 0,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: MessageField::some(crate::events::timestamp(SystemTime::now())),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&resp.write_to_bytes()?)?;
    out.flush()?;
    Ok(())
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// Binds the shim socket; `None` when a live shim of the same group already serves it.
fn listen(address: &str) -> Result<Option<UnixListener>> {
    let path = Path::new(socket_path(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path).with_context(|| format!("remove {}", path.display()))?;
            Ok(Some(
                UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?,
            ))
        }
        Err(e) => Err(e).with_context(|| format!("bind {}", path.display())),
    }
}

/// The Task service's methods under the v2 and v3 service names.
fn task_methods(task: TaskService) -> crate::rpc::Methods {
    let v3 = containerd_shim_protos::shim::shim_ttrpc::create_task(Arc::new(task.clone()));
    let mut methods = containerd_shim_protos::shim::shim_ttrpc::create_task(Arc::new(task));
    methods = methods
        .into_iter()
        .map(|(k, v)| (k.replace("containerd.task.v3.", "containerd.task.v2."), v))
        .collect();
    methods.extend(v3);
    methods
}

/// Tells the `start` process (which reads our stdout until EOF) that we are serving.
fn signal_started() {
    // SAFETY: dup2 of our own standard fds.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

/// polis-runc and the log binaries we spawn get the caller's GLIBC_TUNABLES, not the
/// server's own (start.rs). Called before any thread exists.
fn restore_tunables() {
    use crate::start::{ORIG_TUNABLES, TUNABLES};
    match std::env::var_os(ORIG_TUNABLES) {
        Some(o) => std::env::set_var(TUNABLES, o),
        None => std::env::remove_var(TUNABLES),
    }
    std::env::remove_var(ORIG_TUNABLES);
}

/// The server: the shim's long life.
pub fn serve(flags: &Flags) -> Result<()> {
    if flags.socket.is_empty() || flags.namespace.is_empty() {
        bail!("the server needs -socket and -namespace (id {})", flags.id);
    }
    // SAFETY: mallopt, prctl and signal with constant arguments, before any thread exists.
    unsafe {
        // One malloc arena: glibc would give each of our threads its own (touched pages
        // that stay for the shim's whole life), and the shim's threads mostly sleep.
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    restore_tunables();
    crate::logger::init(flags.debug);
    let Some(listener) = listen(&flags.socket)? else {
        std::fs::write("address", &flags.socket).context("write address")?;
        signal_started();
        return Ok(());
    };
    // The spawner is the one thread without the seccomp filter; every thread started after
    // `confine` inherits it from this one.
    let (mut monitor, exits) = Monitor::new();
    monitor
        .start_spawner()
        .context("start the spawner thread")?;
    crate::seccomp::confine();
    monitor.start_reaper().context("watch child exits")?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS is not set")?;
    let events = Events::start(ttrpc_address, flags.namespace.clone())?;
    let exit = Arc::new(ExitSignal::default());
    let task = TaskService::new(
        &flags.namespace,
        monitor,
        exits,
        events.clone(),
        exit.clone(),
    );
    crate::rpc::serve(listener, task_methods(task)).context("start the ttrpc server")?;
    signal_started();
    exit.wait();
    // containerd's Shutdown comes right after the last Delete, whose TaskDelete may still be
    // queued: the shim's exit must not lose it.
    events.flush(std::time::Duration::from_secs(2));
    let _ = std::fs::remove_file(socket_path(&flags.socket));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_service_answers_under_v2_and_v3() {
        let (monitor, exits) = Monitor::start().unwrap();
        let (tx, _rx) = std::sync::mpsc::channel();
        let events = Events::from_sender(tx);
        let task = TaskService::new("ns", monitor, exits, events, Default::default());
        let methods = task_methods(task);
        for name in [
            "/containerd.task.v2.Task/Create",
            "/containerd.task.v3.Task/Wait",
        ] {
            assert!(methods.contains_key(name), "{name} missing");
        }
        assert_eq!(methods.len(), 2 * 17);
    }
}
