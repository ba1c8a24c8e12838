//! `run`: create + start, then (unless detached) wait for the init and pass its exit code on.

use anyhow::{Context, Result};

use crate::cli::{GlobalOpts, Run};
use crate::console::ConsoleProxy;
use crate::foreground;

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
    let mut container = super::create::build_init(&opts, g, true)?;
    let proxy = match proxy {
        Some(p) => Some(p.accept()?),
        None => None,
    };
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
    let code = signals.wait(pid, proxy)?;
    if !args.keep {
        container
            .delete(true)
            .with_context(|| format!("failed to delete container {id:?}"))?;
    }
    Ok(code)
}
