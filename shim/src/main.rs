//! containerd-shim-polis-v2: the containerd shim v2 that drives `polis-runc`.

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
// Only the static shim links glibc's archive, where these replacements keep its gettext and
// locale machinery out; a dynamic build (and the tests) keep glibc's own symbols.
#[cfg(target_feature = "crt-static")]
mod static_link;
mod stats;
mod task;

const RUNTIME_ID: &str = "io.containerd.polis.v2";

fn main() {
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
