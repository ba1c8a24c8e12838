//! `run`: create + start, then (unless detached) wait for the init and pass its exit code on.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Context, Result};
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;

use crate::cli::{GlobalOpts, Run};
use crate::console::ConsoleProxy;
use crate::foreground::{self, Io};

pub fn run(args: Run, g: &GlobalOpts) -> Result<i32> {
    crate::seal::ensure_sealed()?;
    let mut opts = args.opts;
    let id = opts.container_id.clone();
    super::check_id(&id)?;
    let spec = super::create::check_bundle(&opts.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // In the foreground with a terminal and no socket, we own the pty, as runc does.
    let proxy = if !args.detach && opts.console_socket.is_none() && terminal {
        let p = ConsoleProxy::listen(&g.root, &id)?;
        opts.console_socket = Some(p.socket_path().to_path_buf());
        Some(p)
    } else {
        None
    };
    let piped = (!args.detach && !terminal).then(|| foreground::root_owner(&spec));
    let (mut container, pipes) =
        foreground::build_piped(piped, || super::create::build_init(&opts, &spec, g, true))?;
    let io = Io::of(proxy, pipes)?;
    let signals = if args.detach {
        None
    } else {
        Some(foreground::SignalForwarder::block()?)
    };
    if let Err(err) = container.start() {
        let _ = container.delete(true);
        return Err(err).with_context(|| format!("failed to start container {id:?}"));
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let pid = container
        .pid()
        .with_context(|| format!("container {id:?} has no init pid"))?;
    let code = signals.wait(pid, io)?;
    if !args.keep {
        delete_after_exit(&mut container, &super::container_dir(g, &id)?)
            .with_context(|| format!("failed to delete container {id:?}"))?;
    }
    Ok(code)
}

/// Deletes the stopped container. A `kill` that raced with the exit rewrites state.json right
/// after signalling; if that lands while the delete empties the state directory, the last
/// rmdir fails with ENOTEMPTY (the cgroup is already removed by then), so only the directory
/// is left to remove.
fn delete_after_exit(container: &mut Container, dir: &Path) -> Result<()> {
    let err = match container.delete(true) {
        Ok(()) => return Ok(()),
        Err(LibcontainerError::OtherIO(e)) if e.kind() == ErrorKind::DirectoryNotEmpty => e,
        Err(e) => return Err(e.into()),
    };
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => {}
            Err(e) => return Err(e).with_context(|| format!("failed to remove {}", dir.display())),
        }
    }
    Err(err).with_context(|| format!("failed to remove {}", dir.display()))
}
