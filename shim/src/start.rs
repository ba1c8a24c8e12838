//! The `start` subcommand, answered the way containerd 1.6 reads it: the shim socket's
//! address alone on stdout (the shim library answers in the JSON form of containerd 1.7+,
//! which 1.6 takes for an address).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use sha2::{Digest, Sha256};

use crate::container::grouping;
use crate::flags::Flags;
use crate::options::Settings;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where containerd's shims put their sockets, one per group.
const SOCKET_DIR: &str = "/run/containerd/s";

pub fn start(flags: &Flags) -> Result<()> {
    let bundle = flags.bundle().context("current dir")?;
    let spec = crate::container::SpecView::read(&bundle);
    let group = grouping(&spec, &flags.id);
    // Bad options fail here, before there is a server to clean up.
    let settings = Settings::from_any(read_options()?.as_ref())?;
    let address = socket_address(&flags.address, &flags.namespace, &group);
    let pid = spawn_server(flags, &address)
        .with_context(|| format!("spawn the shim server for {} (group {group})", flags.id))?;
    if let Err(e) = place_server(pid as i32, &settings) {
        // SAFETY: kill(2) of the server we just spawned.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let _ = std::fs::remove_file(address.trim_start_matches("unix://"));
        return Err(e.context(format!("shim server of {}", flags.id)));
    }
    // containerd reads it back when it reconnects to the shim after a restart.
    std::fs::write("address", &address)
        .with_context(|| format!("write address in {}", bundle.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The group's socket: the same name for every container of the group, so the second one
/// finds the first one's server. A hash keeps it short enough for a unix socket path.
pub fn socket_address(containerd: &str, namespace: &str, group: &str) -> String {
    let digest = Sha256::digest(format!("{containerd}/{namespace}/{group}"));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_DIR}/{hex}")
}

pub const TUNABLES: &str = "GLIBC_TUNABLES";
/// The caller's GLIBC_TUNABLES, for the server to restore for the processes it spawns.
pub const ORIG_TUNABLES: &str = "POLIS_SHIM_ORIG_GLIBC_TUNABLES";
const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

/// Starts this binary again as the server (or finds the group's running one, see
/// `service::serve`), and waits until it says it serves: it closes its stdout then.
fn spawn_server(flags: &Flags, address: &str) -> Result<u32> {
    let exe = std::env::current_exe().context("find our own binary")?;
    let mut cmd = Command::new(&exe);
    // Its own process group, as the Go shim does: a signal to containerd's group (a ^C on a
    // containerd in the foreground) must not reach the shims that keep the containers.
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .args(["-namespace", &flags.namespace, "-id", &flags.id])
        .args(["-address", &flags.address, "-socket", address]);
    if flags.debug {
        cmd.arg("-debug");
    }
    // No per-thread malloc caches in the server (glibc reads its tunables only at exec).
    // Each thread's tcache keeps up to 7 free blocks of every small size for itself, where
    // malloc_trim cannot reach them: with the ttrpc method threads of an exec storm (probes)
    // that was ~250 KB of a shim's heap after 1,000 execs (heap 100 -> 420 KB over 3,000,
    // flat after ~6,000; with tcache off it stays at ~100 KB). The shim's allocations are few
    // and its threads mostly sleep: a shared arena costs nothing measurable. The server
    // gives its children the caller's setting back (service::restore_tunables).
    let orig = std::env::var_os(TUNABLES);
    let mut tunables = std::ffi::OsString::from(NO_TCACHE);
    if let Some(o) = &orig {
        tunables.push(":");
        tunables.push(o);
        cmd.env(ORIG_TUNABLES, o);
    }
    cmd.env(TUNABLES, tunables);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", exe.display()))?;
    if let Some(mut out) = child.stdout.take() {
        std::io::copy(&mut out, &mut std::io::stderr()).context("wait for the server")?;
    }
    Ok(child.id())
}

/// Puts the new server where the Go shim puts it: in the options' `ShimCgroup`, and one
/// point of OOM score above containerd (our parent), so the kernel kills a shim first.
fn place_server(pid: i32, settings: &Settings) -> Result<()> {
    if !settings.shim_cgroup.is_empty() {
        join_cgroup(pid, &settings.shim_cgroup)?;
    }
    adjust_oom_score(pid)
}

/// containerd writes the runtime options (an `Any`) to our stdin, for `start` and `-info`.
pub fn read_options() -> Result<Option<Any>> {
    use std::io::{IsTerminal, Read};
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut data = Vec::new();
    stdin
        .read_to_end(&mut data)
        .context("read the runtime options from stdin")?;
    if data.is_empty() {
        return Ok(None);
    }
    Any::parse_from_bytes(&data)
        .map(Some)
        .context("runtime options on stdin")
}

/// Moves `pid` into `cgroup` in the unified hierarchy, or in every v1 hierarchy that has it.
fn join_cgroup(pid: i32, cgroup: &str) -> Result<()> {
    let rel = cgroup.trim_start_matches('/');
    let mut dirs: Vec<PathBuf> = Vec::new();
    if polis_sys::cgroup::cgroup2_host() {
        dirs.push(Path::new(CGROUP_ROOT).join(rel));
    } else {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        for (controller, mount) in polis_sys::cgroup::hierarchy_mounts(&mountinfo) {
            // the unified hierarchy of a hybrid host holds no v1 controller; co-mounted
            // controllers share a mount point, listed once
            if !controller.is_empty() && !dirs.iter().any(|d| d.starts_with(&mount)) {
                dirs.push(mount.join(rel));
            }
        }
        dirs.retain(|d| d.is_dir());
    }
    if !dirs.iter().any(|d| d.is_dir()) {
        anyhow::bail!("shim cgroup {cgroup} does not exist");
    }
    for d in dirs {
        let procs = d.join("cgroup.procs");
        match std::fs::write(&procs, pid.to_string()) {
            // The new server may already have exited: another shim serves the group.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            other => other.with_context(|| format!("join {}", procs.display()))?,
        }
    }
    Ok(())
}

fn adjust_oom_score(pid: i32) -> Result<()> {
    let parent = std::os::unix::process::parent_id();
    let path = format!("/proc/{parent}/oom_score_adj");
    let score: i32 = std::fs::read_to_string(&path)
        .with_context(|| format!("read {path}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {path}"))?;
    let ours = format!("/proc/{pid}/oom_score_adj");
    match std::fs::write(&ours, (score + 1).min(1000).to_string()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.with_context(|| format!("write {ours}")),
    }
}
