//! polis-snapshotter: parse flags, set up logging, serve.

use std::path::PathBuf;

use clap::Parser;
use polis_snapshotter::backend::BackendKind;
use polis_snapshotter::daemon::{serve, Config};

/// containerd proxy snapshotter on overlayfs.
#[derive(Parser, Debug)]
#[command(name = "polis-snapshotter", version)]
struct Cli {
    /// State directory (metadata.db, snapshots/, staging/, lock)
    #[arg(long, default_value = "/var/lib/polis-snapshotter")]
    root: PathBuf,
    /// Unix socket to serve containerd's Snapshots API on
    #[arg(long, default_value = "/run/polis-snapshotter/snapshotter.sock")]
    address: PathBuf,
    /// error, warn, info, debug or trace
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Storage backend
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendKind,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .map_err(|e| anyhow::anyhow!("--log-level {:?}: {e}", cli.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(Config {
        root: cli.root,
        address: cli.address,
        backend: cli.backend,
    }))
}
