//! One module per runc subcommand; `dispatch` is the only entry point.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod subcgroup;
mod update;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::Container;

use crate::cli::{Command, GlobalOpts};

/// Runs one subcommand and returns the process exit code.
pub fn dispatch(command: Command, g: &GlobalOpts) -> Result<i32> {
    match command {
        Command::Create(a) => create::create(*a, g),
        Command::Start(a) => start::start(a, g),
        Command::Run(a) => run::run(*a, g),
        Command::Exec(a) => exec::exec(*a, g),
        Command::Kill(a) => kill::kill(a, g),
        Command::Delete(a) => delete::delete(a, g),
        Command::State(a) => state::state(a, g),
        Command::List(a) => list::list(a, g),
        Command::Ps(a) => ps::ps(a, g),
        Command::Pause(a) => pause::pause(a, g),
        Command::Resume(a) => pause::resume(a, g),
        Command::Events(a) => events::events(a, g),
        Command::Update(a) => update::update(*a, g),
        Command::Spec(a) => spec::spec(a),
        Command::Features => features::features(),
        Command::Checkpoint(_) | Command::Restore(_) => anyhow::bail!(
            "checkpoint/restore need CRIU, which polis-runc does not support yet; \
             use runc for containers that must be checkpointed"
        ),
    }
}

pub fn version_text() -> String {
    format!(
        "polis-runc version {}\ncommit: {}\nspec: {}\nlibcontainer: 0.7\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("POLIS_COMMIT").unwrap_or("unknown"),
        oci_spec::runtime::VERSION,
    )
}

/// Rejects ids that are not a plain file name before they become a path under `--root`.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use only letters, digits, '_', '+', '-', '.'");
    }
    Ok(())
}

pub fn container_dir(g: &GlobalOpts, id: &str) -> Result<PathBuf> {
    check_id(id)?;
    Ok(g.root.join(id))
}

/// Loads a container's state, with runc's "does not exist" error naming the id.
pub fn load(g: &GlobalOpts, id: &str) -> Result<Container> {
    let dir = container_dir(g, id)?;
    if !dir.join("state.json").exists() {
        bail!("container {id:?} does not exist");
    }
    Container::load(dir).with_context(|| format!("failed to load state of container {id:?}"))
}

pub fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("failed to read the standard input")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?
    };
    serde_json::from_str(&data).with_context(|| format!("failed to parse {}", path.display()))
}

/// A process label needs SELinux: without it the label could not be applied and the process
/// would run unconfined, so it is refused (runc's rule), rather than ignored.
pub fn check_selinux_label(label: Option<&str>) -> Result<()> {
    let Some(label) = label.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        bail!(
            "SELinux label {label:?} is specified, but SELinux is disabled or not supported on this host"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_escape_the_root_are_rejected() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\n"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["abc", "a.b", "A_1-2+3", "polis-test.1"] {
            check_id(good).unwrap();
        }
    }
}
