//! `start`: let a created container's init exec the user process.

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalOpts, IdArg};

pub fn start(args: IdArg, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let mut container = super::load(g, id)?;
    if !container.can_start() {
        bail!(
            "cannot start container {id:?}: it is {}, not created",
            super::state::status_name(&container)
        );
    }
    container
        .start()
        .with_context(|| format!("failed to start container {id:?}"))?;
    Ok(0)
}
