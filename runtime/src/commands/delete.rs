//! `delete`: remove a stopped (or, with --force, any) container and everything it holds.

use anyhow::{bail, Context, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::{Delete, GlobalOpts};

pub fn delete(args: Delete, g: &GlobalOpts) -> Result<i32> {
    let id = &args.container_id;
    let dir = super::container_dir(g, id)?;
    if !dir.join("state.json").exists() {
        if args.force && dir.exists() {
            // A create that died before writing its state: nothing runs, just clean the dir.
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("failed to remove {}", dir.display()))?;
            return Ok(0);
        }
        bail!("container {id:?} does not exist");
    }
    let mut container = super::load(g, id)?;
    let status = container.status();
    if !args.force && matches!(status, ContainerStatus::Running | ContainerStatus::Paused) {
        bail!(
            "cannot delete container {id:?} that is not stopped: {}",
            super::state::status_name(&container)
        );
    }
    container
        .delete(args.force)
        .with_context(|| format!("failed to delete container {id:?}"))?;
    Ok(0)
}
