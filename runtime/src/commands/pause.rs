//! `pause` / `resume`: freeze and thaw every process of a container through its cgroup.

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalOpts, IdArg};

pub fn pause(args: IdArg, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let mut c = super::load(g, id)?;
    if !c.can_pause() {
        bail!(
            "cannot pause container {id:?}: it is {}, not running",
            super::state::status_name(&c)
        );
    }
    c.pause()
        .with_context(|| format!("failed to pause container {id:?}"))?;
    Ok(0)
}

pub fn resume(args: IdArg, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let mut c = super::load(g, id)?;
    if !c.can_resume() {
        bail!(
            "cannot resume container {id:?}: it is {}, not paused",
            super::state::status_name(&c)
        );
    }
    c.resume()
        .with_context(|| format!("failed to resume container {id:?}"))?;
    Ok(0)
}
