//! `exec`: run a new process inside a running container. Without --process the process is the
//! container's own process spec with the command-line overrides, as runc does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Capability, Process, Spec};

use crate::cli::{Exec, GlobalOpts};
use crate::console::ConsoleProxy;
use crate::foreground::{Io, SignalForwarder};

pub fn exec(args: Exec, g: &GlobalOpts) -> Result<i32> {
    let id = args.container_id.clone();
    let container = super::load(g, &id)?;
    let paused_ok = args.ignore_paused && container.can_resume();
    if !(container.can_exec() || paused_ok) {
        bail!(
            "cannot exec in container {id:?}: it is {}, not running",
            super::state::status_name(&container)
        );
    }
    let subs = super::subcgroup::parse(&args.cgroup)?;
    super::check_selinux_label(args.process_label.as_deref())?;
    crate::seal::ensure_sealed()?;
    // The terminal flag comes from the process we hand over: read back only a caller's file.
    let (process_file, terminal) = match &args.process {
        Some(p) => {
            let (process, filled) = load_process(p)?;
            let terminal = process["terminal"].as_bool().unwrap_or(false);
            super::check_selinux_label(process["selinuxLabel"].as_str())?;
            if filled {
                let path = container
                    .root
                    .join(format!("exec-{}.json", std::process::id()));
                std::fs::write(&path, serde_json::to_vec(&process)?)
                    .with_context(|| format!("failed to write {}", path.display()))?;
                (TempFile::owned(path), terminal)
            } else {
                (TempFile::borrowed(p.clone()), terminal)
            }
        }
        None => {
            let spec = Spec::load(container.bundle().join("config.json"))
                .with_context(|| format!("failed to load config.json of container {id:?}"))?;
            let process = process_from_args(&args, spec.process().clone())?;
            let path = container
                .root
                .join(format!("exec-{}.json", std::process::id()));
            std::fs::write(&path, serde_json::to_vec(&process)?)
                .with_context(|| format!("failed to write {}", path.display()))?;
            (TempFile::owned(path), args.tty)
        }
    };
    let proxy = if terminal && !args.detach && args.console_socket.is_none() {
        Some(ConsoleProxy::listen(&g.root, &id)?)
    } else {
        None
    };
    let console_socket = args
        .console_socket
        .clone()
        .or_else(|| proxy.as_ref().map(|p| p.socket_path().to_path_buf()));

    let cgroup_dirs = match container.pid() {
        Some(init) if !subs.is_empty() => super::subcgroup::dirs(init.as_raw(), &subs)?,
        _ => Vec::new(),
    };
    let piped = (!args.detach && !terminal).then(|| {
        Spec::load(container.bundle().join("config.json"))
            .ok()
            .as_ref()
            .and_then(crate::foreground::root_owner)
    });
    let (pid, pipes) = crate::foreground::build_piped(piped, || {
        ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_executor(crate::keyring::KeyringExecutor::without_keyring())
            .with_root_path(&g.root)?
            .with_pid_file(args.pid_file.as_ref())?
            .with_console_socket(console_socket.as_ref())
            .with_preserved_fds(args.preserve_fds)
            .validate_id()?
            .as_tenant()
            // libcontainer's "detach" only decides whether a console socket is expected; in the
            // foreground with a terminal we hold the socket ourselves.
            .with_detach(args.detach || console_socket.is_some())
            .with_process(Some(&process_file.path))
            .with_ignore_paused(args.ignore_paused)
            .with_cgroup_dirs(cgroup_dirs)
            .with_process_label(args.process_label.clone())
            .build()
            .with_context(|| format!("failed to exec in container {id:?}"))
    })?;
    drop(process_file);
    if args.detach {
        return Ok(0);
    }
    let io = Io::of(proxy, pipes)?;
    SignalForwarder::block()?.wait(pid, io)
}

/// A caller's process.json, checked, with what runc defaults filled in: a process without
/// `user` runs as 0:0. Returns it and whether anything was filled in.
fn load_process(path: &Path) -> Result<(serde_json::Value, bool)> {
    let data = std::fs::read(path)
        .with_context(|| format!("failed to read process {}", path.display()))?;
    let mut v: serde_json::Value = serde_json::from_slice(&data)
        .with_context(|| format!("invalid process json {}", path.display()))?;
    let obj = v
        .as_object_mut()
        .with_context(|| format!("invalid process json {}: not an object", path.display()))?;
    let filled = !obj.contains_key("user");
    if filled {
        obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
    }
    let _: Process = serde_json::from_value(v.clone())
        .with_context(|| format!("invalid process json {}", path.display()))?;
    Ok((v, filled))
}

/// The container's process spec with exec's overrides applied.
fn process_from_args(args: &Exec, base: Option<Process>) -> Result<Process> {
    if args.command.is_empty() {
        bail!("exec needs a command to run (or --process FILE)");
    }
    let mut p = base.unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    // The caller's terminal size, which the pty gets before the process runs (runc's process
    // sees its caller's size from its first instruction too).
    p.set_console_size(
        if args.tty && !args.detach && args.console_socket.is_none() {
            caller_console_size()
        } else {
            None
        },
    );
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, kv) in env.iter().enumerate() {
        index.insert(kv.split('=').next().unwrap_or("").to_string(), i);
    }
    for kv in &args.env {
        let key = kv.split('=').next().unwrap_or("").to_string();
        match index.get(&key) {
            Some(&i) => env[i] = kv.clone(),
            None => {
                index.insert(key, env.len());
                env.push(kv.clone());
            }
        }
    }
    p.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        let mut u = p.user().clone();
        u.set_uid(uid);
        if let Some(gid) = gid {
            u.set_gid(gid);
        }
        p.set_user(u);
    }
    if !args.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(args.additional_gids.clone()));
        p.set_user(u);
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &args.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if !args.cap.is_empty() {
        add_caps(&mut p, &args.cap);
    }
    Ok(p)
}

/// The size of the terminal on our stdin, if it is one.
fn caller_console_size() -> Option<oci_spec::runtime::Box> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we pass, of the right size.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return None;
    }
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(ws.ws_row))
        .width(u64::from(ws.ws_col))
        .build()
        .ok()
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("invalid --user {s:?}: expected <uid>[:<gid>]"))?;
    let gid = g
        .map(|g| g.parse())
        .transpose()
        .with_context(|| format!("invalid --user {s:?}: expected <uid>[:<gid>]"))?;
    Ok((uid, gid))
}

/// Adds `--cap` capabilities to every set. A name this build does not know is left out with a
/// warning, as runc does (a newer kernel's capability must not make exec fail).
fn add_caps(p: &mut Process, caps: &[String]) {
    let mut parsed = Vec::new();
    let mut unknown = Vec::new();
    for c in caps {
        let upper = c.to_ascii_uppercase();
        // oci-spec parses the names without their CAP_ prefix
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        match bare.parse::<Capability>() {
            Ok(cap) => parsed.push(cap),
            Err(_) => unknown.push(c.as_str()),
        }
    }
    if !unknown.is_empty() {
        tracing::warn!(capabilities = ?unknown, "ignoring unknown or unavailable capabilities");
    }
    let mut set = p.capabilities().clone().unwrap_or_default();
    let extend = |s: &Option<oci_spec::runtime::Capabilities>| {
        let mut s = s.clone().unwrap_or_default();
        s.extend(parsed.iter().copied());
        Some(s)
    };
    let (b, e, pe, i, a) = (
        extend(set.bounding()),
        extend(set.effective()),
        extend(set.permitted()),
        extend(set.inheritable()),
        extend(set.ambient()),
    );
    set.set_bounding(b)
        .set_effective(e)
        .set_permitted(pe)
        .set_inheritable(i)
        .set_ambient(a);
    p.set_capabilities(Some(set));
}

/// The process file handed to libcontainer; ours are removed when done.
struct TempFile {
    path: PathBuf,
    owned: bool,
}

impl TempFile {
    fn owned(path: PathBuf) -> Self {
        Self { path, owned: true }
    }
    fn borrowed(path: PathBuf) -> Self {
        Self { path, owned: false }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_args(extra: &[&str]) -> Exec {
        use clap::Parser;
        let mut argv = vec!["polis-runc", "exec"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            Some(crate::cli::Command::Exec(e)) => *e,
            _ => unreachable!(),
        }
    }

    #[test]
    fn overrides_apply_on_the_container_process() {
        let mut base = Process::default();
        base.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        let a = exec_args(&[
            "-e", "A=2", "-e", "B=3", "-u", "5:6", "--cwd", "/tmp", "c", "ls",
        ]);
        let p = process_from_args(&a, Some(base)).unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["ls"]);
        assert_eq!(
            p.env().as_ref().unwrap(),
            &["PATH=/bin".to_string(), "A=2".into(), "B=3".into()]
        );
        assert_eq!(p.user().uid(), 5);
        assert_eq!(p.user().gid(), 6);
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!(p.terminal(), Some(false));
    }

    #[test]
    fn bad_user_is_named_and_caps_parse_as_runcs() {
        let a = exec_args(&["-u", "bob", "c", "ls"]);
        let err = process_from_args(&a, None).unwrap_err().to_string();
        assert!(err.contains("bob"), "{err}");
        // an unknown capability is left out, a known one added, with or without CAP_
        let a = exec_args(&[
            "--cap",
            "CAP_FLY",
            "--cap",
            "CAP_SYS_ADMIN",
            "--cap",
            "net_raw",
            "c",
            "ls",
        ]);
        let p = process_from_args(&a, None).unwrap();
        let caps = p.capabilities().clone().unwrap();
        let eff = caps.effective().clone().unwrap();
        assert!(eff.contains(&Capability::SysAdmin), "{eff:?}");
        assert!(eff.contains(&Capability::NetRaw), "{eff:?}");
        let base = Process::default().capabilities().clone().unwrap();
        assert_eq!(
            eff.len(),
            base.effective().as_ref().unwrap().len() + 2,
            "{eff:?}"
        );
    }
}
