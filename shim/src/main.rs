//! containerd-shim-polis-v2: the containerd shim v2 that drives `polis-runc`.

mod container;
mod error;
mod events;
mod io;
mod monitor;
mod oom;
mod process;
mod runtime;
mod service;
mod stats;
mod task;

fn main() {
    let config = containerd_shim::Config {
        // Exits are reaped by our own monitor, which hands runtime commands their status.
        no_reaper: true,
        ..Default::default()
    };
    containerd_shim::run::<service::Service>("io.containerd.polis.v2", Some(config));
}
