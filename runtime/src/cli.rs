//! The command line, flag for flag with runc's, so anything that drives runc drives us.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_ROOT: &str = "/run/polis-runc";

#[derive(Parser, Debug)]
#[command(name = "polis-runc", about = "An OCI runtime with runc's command line")]
#[command(disable_version_flag = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Set the log file to write runtime logs to (default is stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Enable systemd cgroup support
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Ignore cgroup permission errors ('true', 'false', or 'auto'); before the subcommand, as in runc
    #[arg(long, default_value = "auto", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: String,
    /// Path to the criu binary used for checkpoint and restore (accepted for compatibility)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container
    Create(Box<Create>),
    /// Execute the user defined process in a created container
    Start(IdArg),
    /// Create and run a container
    Run(Box<Run>),
    /// Execute new process inside the container
    Exec(Box<Exec>),
    /// Kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill(Kill),
    /// Delete any resources held by the container often used with detached containers
    Delete(Delete),
    /// Output the state of a container
    State(IdArg),
    /// Lists containers started by polis-runc with the given root
    List(List),
    /// Displays the processes running inside a container
    Ps(Ps),
    /// Pause suspends all processes inside the container
    Pause(IdArg),
    /// Resumes all processes that have been previously paused
    Resume(IdArg),
    /// Display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events(Events),
    /// Update container resource constraints
    Update(Box<Update>),
    /// Create a new specification file
    Spec(Spec),
    /// Show the enabled features
    Features,
    /// Checkpoint a running container (needs CRIU; not offered by polis-runc yet)
    Checkpoint(Criu),
    /// Restore a container from a previous checkpoint (needs CRIU; not offered yet)
    Restore(Criu),
}

/// `checkpoint`/`restore`: runc's flags are accepted, so a caller gets the real reason.
#[derive(Args, Debug)]
pub struct Criu {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub container_id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateOpts {
    /// Path to the root of the bundle directory, defaults to the current directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct Create {
    #[command(flatten)]
    pub opts: CreateOpts,
}

#[derive(Args, Debug)]
pub struct Run {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct Exec {
    /// Path to the process.json
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding set for the process
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass N additional file descriptors to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Run the process in an (existing) sub-cgroup(s): [<controller>[,<controller>...]:]<path>
    #[arg(long)]
    pub cgroup: Vec<String>,
    pub container_id: String,
    /// The command to run and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Kill {
    /// Send the specified signal to all processes inside the container
    #[arg(short, long)]
    pub all: bool,
    pub container_id: String,
    /// Signal name (with or without SIG) or number; default SIGTERM
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct Delete {
    /// Forcibly delete the container if it is still running (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    pub container_id: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct List {
    /// Select one of: table or json
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Display only container IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct Ps {
    /// Select one of: table or json
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    pub container_id: String,
    /// Arguments passed to ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Events {
    /// Set the stats collection interval
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    pub container_id: String,
}

// -1 (unlimited) is a value here, not a flag, as with runc
#[derive(Args, Debug, Default)]
#[command(allow_negative_numbers = true)]
pub struct Update {
    /// Path to a file containing the resources to update or '-' to read from the standard input
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU realtime period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (in bytes, or with a k/m/g suffix; -1 for unlimited)
    #[arg(short, long, value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_parser = parse_bytes)]
    pub memory_swap: Option<i64>,
    /// Kernel memory limit (deprecated, accepted and ignored like runc)
    #[arg(long = "kernel-memory", value_parser = parse_bytes)]
    pub kernel_memory: Option<i64>,
    /// Kernel memory limit for TCP buffer (deprecated, accepted and ignored like runc)
    #[arg(long = "kernel-memory-tcp", value_parser = parse_bytes)]
    pub kernel_memory_tcp: Option<i64>,
    /// Maximum number of pids allowed in the container
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// The string of Intel RDT/CAT L3 cache schema
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// The string of Intel RDT/MBA memory bandwidth schema
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct Spec {
    /// Path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

/// Parses Go-style durations as runc accepts them ("5s", "100ms", "1m").
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("invalid duration {s:?}: missing unit (e.g. 5s)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: bad number"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
    };
    if secs <= 0.0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses sizes like docker's RAMInBytes: "1024", "10k", "64m", "1g", "-1".
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected bytes with optional k/m/g/t suffix"))?;
    if n < 0.0 {
        return Err(format!("invalid size {s:?}: must not be negative"));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap().as_millis(), 5000);
        assert_eq!(parse_duration("100ms").unwrap().as_millis(), 100);
        assert_eq!(parse_duration("1m").unwrap().as_secs(), 60);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("10kb").unwrap(), 10 << 10);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn kill_defaults_to_sigterm_like_runc() {
        let cli = Cli::try_parse_from(["polis-runc", "kill", "abc"]).unwrap();
        match cli.command {
            Some(Command::Kill(k)) => assert_eq!(k.signal, "SIGTERM"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand_too() {
        let cli = Cli::try_parse_from([
            "polis-runc",
            "--root",
            "/tmp/r",
            "state",
            "--log-format",
            "json",
            "abc",
        ])
        .unwrap();
        assert_eq!(cli.global.root, PathBuf::from("/tmp/r"));
        assert_eq!(cli.global.log_format, LogFormat::Json);
    }

    #[test]
    fn exec_takes_the_command_after_the_id() {
        let cli =
            Cli::try_parse_from(["polis-runc", "exec", "-t", "abc", "sh", "-c", "ls -l"]).unwrap();
        match cli.command {
            Some(Command::Exec(e)) => {
                let e = *e;
                assert!(e.tty);
                assert_eq!(e.container_id, "abc");
                assert_eq!(e.command, ["sh", "-c", "ls -l"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
