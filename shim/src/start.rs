//! The `start` subcommand, answered the way containerd 1.6 reads it: the shim socket's
//! address alone on stdout (the shim library answers in the JSON form of containerd 1.7+,
//! which 1.6 takes for an address).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use containerd_shim::util::write_address;
use containerd_shim::{Flags, StartOpts};

use crate::service::grouping;

pub fn start(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().context("current dir")?
    } else {
        flags.bundle.clone().into()
    };
    let spec = read_spec(&bundle);
    let group = grouping(&spec, &flags.id);
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    let (_pid, address) = containerd_shim::spawn(opts, &group, Vec::new())
        .with_context(|| format!("spawn the shim server for {} (group {group})", flags.id))?;
    write_address(&address).with_context(|| format!("write address in {}", bundle.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn read_spec(bundle: &Path) -> serde_json::Value {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}
