//! polis-runc, an OCI runtime with runc's command line, as a library: parse the command line,
//! set up runc-shaped logging, dispatch one command over libcontainer. `main.rs` only calls
//! [`main`].

mod cli;
mod commands;
mod console;
mod foreground;
mod keyring;
mod logging;
mod seal;

use clap::Parser;

/// runc's command line: one command, then the process exits with its status.
pub fn main() {
    // Commands that enter a container re-execute themselves from a protected view of the
    // binary (seal.rs): whatever runs before that runs twice, so it comes before the parser
    // and the logger. A failure here is left for the command, which seals again and reports it.
    if seal::enters_container(std::env::args_os().skip(1)) {
        let _ = seal::ensure_sealed();
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Exit codes as runc's: 3 for a command it does not know ("No help topic"), 1 for
        // any other usage error (an unknown flag, a bad value, a missing argument); --help and
        // --version print on stdout and exit 0.
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                ErrorKind::InvalidSubcommand => 3,
                _ => 1,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if cli.global.version {
        print!("{}", commands::version_text());
        return;
    }
    let Some(command) = cli.command else {
        eprintln!("polis-runc: no command given; see 'polis-runc --help'");
        std::process::exit(1);
    };
    // libcontainer steps into the container dir and back, so it needs a working directory that
    // exists; a caller may well have started us from one that was deleted since (runc copes).
    if std::env::current_dir().is_err() {
        let _ = std::env::set_current_dir("/");
    }
    let g = &cli.global;
    // Commands that only print end quietly when their reader goes away (`events | head -1`),
    // killed by SIGPIPE as runc is, instead of failing on EPIPE with an error. The others keep
    // Rust's ignored SIGPIPE: they talk to their own child processes and sockets, where a
    // closed peer is an error to report, not a reason to die.
    if matches!(
        command,
        cli::Command::State(_)
            | cli::Command::List(_)
            | cli::Command::Ps(_)
            | cli::Command::Events(_)
            | cli::Command::Spec(_)
            | cli::Command::Features
    ) {
        // SAFETY: setting a signal's disposition to its default has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    if let Err(err) = logging::init(g.log.as_deref(), g.log_format, g.debug) {
        eprintln!("{err:#}");
        std::process::exit(1);
    }
    // runc exits 255 when exec itself fails, so callers can tell it from the process's own code.
    let error_code = if matches!(command, cli::Command::Exec(_)) {
        255
    } else {
        1
    };
    let code = match commands::dispatch(command, g) {
        Ok(code) => code,
        Err(err) => {
            let msg = one_line(&format!("{err:#}"));
            tracing::error!("{msg}");
            // Like runc: the error goes to the log, and to stderr too unless the log already is stderr.
            if g.log.is_some() {
                eprintln!("{msg}");
            }
            error_code
        }
    };
    std::process::exit(code);
}

/// The error as one line that names what failed once: libcontainer wraps the init's error in
/// phrases of its own plumbing ("exec process failed with error error in executing process :",
/// a second "failed to create container:"), which say nothing to a user.
fn one_line(msg: &str) -> String {
    const PLUMBING: &[&str] = &[
        "failed to create container: ",
        "failed to run container process ",
        "exec process failed with error ",
        "error in executing process : ",
    ];
    let mut out = msg.replace('\n', " ");
    for p in PLUMBING {
        out = out.replace(p, "");
    }
    drop_repeats(&out)
}

/// Libraries whose error text already ends with its source's text make the chain say the
/// same thing twice ("x not available: x not available"): a run of causes repeated right
/// after itself is kept once.
fn drop_repeats(msg: &str) -> String {
    let mut parts: Vec<&str> = msg.split(": ").collect();
    let mut i = 0;
    while i < parts.len() {
        let dup = (1..=(parts.len() - i) / 2)
            .rev()
            .find(|&k| parts[i..i + k] == parts[i + k..i + 2 * k]);
        match dup {
            Some(k) => {
                parts.drain(i + k..i + 2 * k);
            }
            None => i += 1,
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn plumbing_phrases_are_dropped() {
        let m = "failed to create container \"e1\": failed to create container: exec process failed with error error in executing process : executable /nope: No such file";
        assert_eq!(
            super::one_line(m),
            "failed to create container \"e1\": executable /nope: No such file"
        );
    }

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_said_once() {
        let m = "failed to create container \"c\": systemd error: no systemd: no systemd";
        assert_eq!(
            super::one_line(m),
            "failed to create container \"c\": systemd error: no systemd"
        );
        assert_eq!(super::drop_repeats("a: b: a: b: c"), "a: b: c");
        assert_eq!(super::drop_repeats("a: b: c"), "a: b: c");
    }
}
