//! containerd-shim-polis-v2, the containerd shim v2 that drives `polis-runc`, as a library:
//! the Task service's state machine (`task`) runs over the `OciRuntime` trait (`runtime`),
//! so it is unit-tested with a fake runtime and no containerd; `main.rs` only calls [`main`].

mod container;
mod error;
mod events;
mod flags;
mod info;
mod io;
mod logger;
mod monitor;
mod mount;
mod oom;
mod options;
mod process;
mod rpc;
mod runtime;
mod seccomp;
mod service;
mod start;
mod stats;
mod task;

/// The runtime type containerd knows the shim by.
pub const RUNTIME_ID: &str = "io.containerd.polis.v2";

/// The shim's command line: containerd's `start`, `delete` and the server it starts.
pub fn main() {
    let flags = match flags::parse(std::env::args_os().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            // as Go's flag package: the error and the usage on stderr, exit status 2
            eprintln!("{RUNTIME_ID}: {e}\n\n{}", flags::USAGE);
            std::process::exit(2);
        }
    };
    if flags.help {
        print!("{}", flags::USAGE);
        return;
    }
    if flags.version {
        println!("{RUNTIME_ID} {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if flags.info {
        if let Err(e) = info::print(RUNTIME_ID) {
            fail(e);
        }
        return;
    }
    let res = match flags.action.as_str() {
        "start" => start::start(&flags),
        "delete" => service::delete(&flags),
        "" => service::serve(&flags),
        other => Err(anyhow::anyhow!("unknown action {other}")),
    };
    if let Err(e) = res {
        fail(e);
    }
}

fn fail(e: anyhow::Error) -> ! {
    eprintln!("{RUNTIME_ID}: {e:#}");
    std::process::exit(1);
}
