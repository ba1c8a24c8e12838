//! runc's command line, habit by habit: each scenario is a sequence of invocations run through
//! runc and through polis-runc (and crun, for reference) in fresh state roots on the same
//! bundle; their exit codes, and stdout where it is not id- or time-specific, must match
//! between polis-runc and runc. A summary table is printed with a crun column (whether crun
//! behaves as runc, to tell runc's own habits from common ones); the test fails on any
//! difference between polis-runc and runc that is not a documented, kept one.
//!
//! `PARITY_ONLY=text` runs the scenarios whose name contains `text`; `PARITY_CRUN=0` skips crun;
//! `PARITY_SHOW=1` prints every runtime's results.

use polis_integration::runtime::{run_captured, stderr, stdout, Container, Runtime};
use serde_json::{json, Value};

/// What a step's result is compared on.
#[derive(Clone, Copy)]
enum Cmp {
    /// The exit code.
    Code,
    /// The exit code and stdout (trimmed; ids, bundle and temp paths replaced).
    Out,
    /// The exit code and what the function makes of (stdout, stderr), both normalised as
    /// for `Out`.
    With(fn(&str, &str) -> String),
}

struct Scenario {
    name: &'static str,
    /// The container's command (a busybox bundle as runc's `spec` writes it, no terminal).
    args: &'static [&'static str],
    /// A change to the bundle's config.json (given the bundle's path), if any.
    edit: Option<fn(&mut Value, &str)>,
    /// Where runc's behaviour is a bug and ours is kept: why, and what polis-runc must give
    /// (every step's result, as compared).
    kept: Option<(&'static str, &'static [(i32, &'static str)])>,
    /// Why the scenario is not run at all (runc cannot do it here, or it would hang).
    excluded: Option<&'static str>,
    /// Invocations: `{id}` the container id, `{bundle}` its bundle, `{proc}` a process.json
    /// without `user` (written beside the bundle), `{missing}` an id that does not exist.
    /// A step `["@sh", SCRIPT]` runs SCRIPT with sh on the host, in a temp directory of the
    /// scenario (`{tmp}`), where `{rt}` is the runtime's command with its --root and `{cg}`
    /// the container's cgroups path.
    steps: &'static [(&'static [&'static str], Cmp)],
}

/// A scenario with the defaults: no edit, nothing kept or excluded.
const fn sc(
    name: &'static str,
    args: &'static [&'static str],
    steps: &'static [(&'static [&'static str], Cmp)],
) -> Scenario {
    Scenario {
        name,
        args,
        edit: None,
        kept: None,
        excluded: None,
        steps,
    }
}

const SLEEP: &[&str] = &["/bin/sleep", "300"];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "delete --force of a container that does not exist",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[(&["delete", "--force", "{missing}"], Cmp::Out)],
    },
    Scenario {
        name: "delete of a container that does not exist",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[(&["delete", "{missing}"], Cmp::Code)],
    },
    Scenario {
        name: "exec into a created, not started container",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/echo", "in-created"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exec --process with a process.json without user",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "--process", "{proc}", "{id}"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "kill with signal 0 checks liveness",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["kill", "{id}", "0"], Cmp::Code),
            (&["kill", "{id}", "KILL"], Cmp::Code),
            (&["delete", "{id}"], Cmp::Code),
            (&["kill", "{id}", "0"], Cmp::Code),
        ],
    },
    Scenario {
        name: "update with -1 (unlimited)",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--memory", "64m", "{id}"], Cmp::Code),
            (&["update", "--memory", "-1", "{id}"], Cmp::Code),
            (&["update", "--pids-limit", "-1", "{id}"], Cmp::Code),
            (&["update", "--memory", "-5", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exec --additional-gids and --cwd",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "exec",
                    "--additional-gids",
                    "10",
                    "--additional-gids",
                    "20",
                    "--cwd",
                    "/tmp",
                    "{id}",
                    "/bin/sh",
                    "-c",
                    "grep Groups: /proc/self/status; pwd",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "a paused container: exec refused, delete --force works",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["pause", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/true"], Cmp::Code),
            (&["delete", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (&["state", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "ps after the container stopped",
        args: &["/bin/true"],
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["@sh", "sleep 0.5"], Cmp::Code),
            (&["ps", "--format", "json", "{id}"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exit codes of run and exec",
        args: &["/bin/sh", "-c", "exit 7"],
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "--bundle", "{bundle}", "{id}"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "unknown command, --help, --version",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["frobnicate"], Cmp::Code),
            (&["--help"], Cmp::Code),
            (&["create", "--help"], Cmp::Code),
            (&["list", "-q"], Cmp::Out),
        ],
    },
    Scenario {
        name: "HOME of a user /etc/passwd does not know, and of root",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "exec",
                    "--user",
                    "1234:1234",
                    "{id}",
                    "/bin/sh",
                    "-c",
                    "echo $HOME",
                ],
                Cmp::Out,
            ),
            (&["exec", "{id}", "/bin/sh", "-c", "echo $HOME"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "update: cpu period alone, quota alone, cpuset, a paused container",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--cpu-period", "50000", "{id}"], Cmp::Code),
            (&["update", "--cpu-quota", "20000", "{id}"], Cmp::Code),
            (&["update", "--cpuset-cpus", "0", "{id}"], Cmp::Code),
            (&["pause", "{id}"], Cmp::Code),
            (&["update", "--pids-limit", "50", "{id}"], Cmp::Code),
            (&["resume", "{id}"], Cmp::Code),
            (
                &["exec", "{id}", "/bin/cat", "/sys/fs/cgroup/pids/pids.max"],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "events --stats once",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["events", "--stats", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "checkpoint and restore where CRIU is missing",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["checkpoint", "{id}"], Cmp::Code),
            (
                &["restore", "--bundle", "{bundle}", "{id}-restored"],
                Cmp::Code,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "umask from the spec",
        args: SLEEP,
        edit: Some(|s, _| s["process"]["user"]["umask"] = json!(0o027)),
        kept: Some((
            "runc 1.1.5 applies the spec's umask to the init but not to an exec (0022)",
            &[(0, ""), (0, "0027"), (0, "")],
        )),
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/sh", "-c", "umask"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "delete --force: a foreign process in the container's memory cgroup only (v1)",
        args: SLEEP,
        edit: None,
        kept: Some((
            "runc 1.1.5 kills only what its devices cgroup lists: a process someone moved into \
             one other hierarchy of the container keeps running there, and the cgroup dir stays \
             (runc logs 'Failed to remove paths'); polis-runc kills every process in every \
             hierarchy of the container and removes them all, since a container must leave \
             nothing running after delete --force",
            &[(0, ""), (0, ""), (0, ""), (0, "dead")],
        )),
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "test -d /sys/fs/cgroup/memory{cg} || exit 0; \
                     sleep 1000 >/dev/null 2>&1 </dev/null & echo $! > {tmp}/foreign; \
                     echo $! > /sys/fs/cgroup/memory{cg}/cgroup.procs",
                ],
                Cmp::Code,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    // A killed orphan may stay a zombie until the test reaps it: alive means
                    // not a zombie.
                    "test -f {tmp}/foreign || { echo dead; exit 0; }; p=$(cat {tmp}/foreign); \
                     sleep 0.2; st=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); \
                     if [ -n \"$st\" ] && [ \"$st\" != Z ]; then echo alive; kill -9 $p; \
                     else echo dead; fi; sleep 0.2; \
                     if test -d /sys/fs/cgroup/memory{cg}; then echo cgroup left; \
                     rmdir /sys/fs/cgroup/memory{cg}; fi",
                ],
                Cmp::Out,
            ),
        ],
    },
    Scenario {
        name: "unified (cgroup v2) resources on a v1 host",
        args: SLEEP,
        edit: Some(|s, _| {
            s["linux"]["resources"]["unified"] = json!({"memory.high": "1000000"});
        }),
        kept: None,
        excluded: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "start twice, kill unknown signal",
        args: SLEEP,
        edit: None,
        kept: None,
        excluded: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["kill", "{id}", "SIGNOPE"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exec --ignore-paused into a paused container",
        excluded: Some("runc 1.1.5 hangs by design (the process cannot start in a frozen cgroup)"),
        ..sc("", SLEEP, &[])
    },
    sc(
        "run in the foreground without a terminal gives the container pipes, not our fds",
        &[
            "/bin/sh",
            "-c",
            "for f in 0 1 2; do readlink /proc/self/fd/$f; done; cat; echo to-stderr >&2; exit 6",
        ],
        &[(
            &[
                "@sh",
                "echo from-stdin > in; {rt} run --bundle {bundle} {id} < in > out 2> err; \
                 echo rc=$?; sed 's/pipe:\\[[0-9]*\\]/pipe/' out; cat err",
            ],
            Cmp::Out,
        )],
    ),
    sc(
        "exec in the foreground without a terminal gives the process pipes, not our fds",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "echo from-stdin > in; \
                     {rt} exec {id} sh -c 'for f in 0 1 2; do readlink /proc/self/fd/$f; done; \
                     cat; echo to-stderr >&2; exit 7' < in > out 2> err; \
                     echo rc=$?; sed 's/pipe:\\[[0-9]*\\]/pipe/' out; cat err",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        name: "exec of an absolute path in a container whose env has no PATH",
        edit: Some(|s, _| s["process"]["env"] = json!(["TERM=xterm"])),
        ..sc(
            "",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["exec", "{id}", "/bin/echo", "no-path-needed"], Cmp::Out),
                (&["exec", "{id}", "echo", "needs-a-path"], Cmp::Code),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    sc(
        "create --console-socket naming a socket nobody listens on",
        SLEEP,
        &[
            (
                &[
                    "create",
                    "--console-socket",
                    "{tmp}/nobody-listens.sock",
                    "--bundle",
                    "{bundle}",
                    "{id}",
                ],
                Cmp::Code,
            ),
            (&["start", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/echo", "started"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "create --no-new-keyring and --no-pivot",
        SLEEP,
        &[
            (
                &[
                    "create",
                    "--no-new-keyring",
                    "--no-pivot",
                    "--bundle",
                    "{bundle}",
                    "{id}",
                ],
                Cmp::Code,
            ),
            (&["start", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/sh", "-c", "ls /bin/sh"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "run --no-new-keyring --no-pivot --detach (long forms)",
        SLEEP,
        &[
            (
                &[
                    "run",
                    "--no-new-keyring",
                    "--no-pivot",
                    "--detach",
                    "--bundle",
                    "{bundle}",
                    "{id}",
                ],
                Cmp::Code,
            ),
            (&["exec", "--detach", "{id}", "/bin/true"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "run --keep leaves the stopped container for state and delete",
        &["/bin/sh", "-c", "exit 3"],
        &[
            (&["run", "--keep", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &["@sh", "{rt} state {id} | grep -o '\"status\": *\"[a-z]*\"'"],
                Cmp::Out,
            ),
            (&["delete", "{id}"], Cmp::Code),
            (&["state", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec --env, --cap, --no-new-privs",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &["exec", "--env", "POLIS_A=one", "--env", "PATH=/bin", "{id}", "/bin/sh", "-c", "echo $POLIS_A $PATH"],
                Cmp::Out,
            ),
            (
                &["exec", "--cap", "CAP_SYS_ADMIN", "{id}", "/bin/sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
                Cmp::Out,
            ),
            (
                &["exec", "--no-new-privs", "{id}", "/bin/sh", "-c", "grep NoNewPrivs /proc/self/status"],
                Cmp::Out,
            ),
            (&["exec", "--cap", "CAP_NOT_A_CAP", "{id}", "/bin/true"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec --apparmor and --process-label where the LSM is not enabled",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "--apparmor", "unconfined", "{id}", "/bin/echo", "aa"], Cmp::Code),
            (
                &["exec", "--process-label", "system_u:system_r:container_t:s0", "{id}", "/bin/echo", "se"],
                Cmp::Code,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "list --quiet",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["list", "--quiet"], Cmp::Out),
            (&["list", "-q"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (&["list", "--quiet"], Cmp::Out),
        ],
    ),
    sc(
        "--systemd-cgroup on a host without systemd as init",
        SLEEP,
        &[
            (&["--systemd-cgroup", "list", "-q"], Cmp::Out),
            (&["--systemd-cgroup", "state", "{missing}"], Cmp::Code),
        ],
    ),
    sc(
        "update --blkio-weight, --cpuset-mems, --kernel-memory(-tcp), RDT schemas",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--cpuset-mems", "0", "{id}"], Cmp::Code),
            (&["update", "--blkio-weight", "300", "{id}"], Cmp::Code),
            (&["update", "--kernel-memory", "64m", "{id}"], Cmp::Code),
            (&["update", "--kernel-memory-tcp", "64m", "{id}"], Cmp::Code),
            (&["update", "--l3-cache-schema", "L3:0=f", "{id}"], Cmp::Code),
            (&["update", "--mem-bw-schema", "MB:0=70", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "spec --rootless writes runc's rootless bundle",
        SLEEP,
        &[
            (
                &["@sh", "{rt} spec --rootless && cat config.json"],
                Cmp::With(json_canon),
            ),
            // a second spec refuses to overwrite the first
            (&["@sh", "{rt} spec --rootless; echo rc=$?"], Cmp::Out),
        ],
    ),
    sc(
        "create in a cgroup someone froze is refused (v1 freezer)",
        SLEEP,
        &[
            (
                &[
                    "@sh",
                    "f=/sys/fs/cgroup/freezer{cg}; mkdir -p $f && echo FROZEN > $f/freezer.state; \
                     timeout 10 {rt} run -d --bundle {bundle} {id} < /dev/null; echo rc=$?; \
                     echo THAWED > $f/freezer.state; {rt} state {id} > /dev/null 2>&1; echo state=$?",
                ],
                Cmp::Out,
            ),
            (
                &["@sh", "for d in /sys/fs/cgroup/*{cg}; do rmdir $d 2>/dev/null; done; true"],
                Cmp::Code,
            ),
        ],
    ),
    sc(
        "exec --pid-file relative to the caller's cwd, also with --cwd",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "mkdir d && {rt} exec --pid-file p1 {id} true && \
                     {rt} exec --pid-file d/p2 --cwd /tmp {id} true && \
                     {rt} exec -d --pid-file p3 {id} sleep 1 && \
                     for f in p1 d/p2 p3; do printf '%s: ' $f; tr 0-9 9 < $f | tr -s 9; echo; done",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec --preserve-fds passes the extra fds, and only those",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "echo three > f3; echo four > f4; \
                     {rt} exec --preserve-fds 2 {id} sh -c 'cat <&3; cat <&4' 3<f3 4<f4; echo $?; \
                     {rt} exec {id} sh -c 'cat <&3' 3<f3 2>/dev/null; echo $?; \
                     {rt} exec --preserve-fds 1 {id} sh -c 'cat <&4' 3<f3 4<f4 2>/dev/null; echo $?",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec --user with --additional-gids",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &["exec", "-u", "1000:1000", "--additional-gids", "10", "{id}", "/bin/id"],
                Cmp::Out,
            ),
            (&["exec", "-u", "1000", "-g", "0", "{id}", "/bin/id"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec --cgroup: existing sub-cgroups, per controller or in all",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &["@sh", "mkdir /sys/fs/cgroup/pids{cg}/sub /sys/fs/cgroup/cpu{cg}/sub"],
                Cmp::Code,
            ),
            (
                &["exec", "--cgroup", "pids:sub", "{id}", "/bin/grep", "-e", ":pids:", "-e", ":cpu:", "/proc/self/cgroup"],
                Cmp::Out,
            ),
            (
                &["exec", "--cgroup", "cpu,pids:/sub", "{id}", "/bin/grep", "-e", ":pids:", "-e", ":cpu:", "/proc/self/cgroup"],
                Cmp::Out,
            ),
            (
                &["exec", "--cgroup", "pids:/../{id}/sub", "{id}", "/bin/grep", ":pids:", "/proc/self/cgroup"],
                Cmp::Out,
            ),
            (&["exec", "--cgroup", "pids:", "{id}", "/bin/grep", ":pids:", "/proc/self/cgroup"], Cmp::Out),
            (&["exec", "--cgroup", "sub", "{id}", "/bin/true"], Cmp::Code),
            (&["exec", "--cgroup", "memory:sub", "{id}", "/bin/true"], Cmp::Code),
            (&["exec", "--cgroup", "a:b:c", "{id}", "/bin/true"], Cmp::Code),
            (&["exec", "--cgroup", "sub", "--cgroup", "pids:sub", "{id}", "/bin/true"], Cmp::Code),
            (&["exec", "--cgroup", "nosuch:sub", "{id}", "/bin/true"], Cmp::Code),
            (&["exec", "--cgroup", "pids:../x", "{id}", "/bin/true"], Cmp::Code),
            (&["@sh", "ls /sys/fs/cgroup/memory{cg} | grep -c sub"], Cmp::Out),
            (&["exec", "-d", "--cgroup", "pids:sub", "{id}", "/bin/sleep", "100"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (&["@sh", "ls -d /sys/fs/cgroup/*{cg} 2>/dev/null | wc -l"], Cmp::Out),
        ],
    ),
    sc(
        "exec --user without access to the cwd, and a missing cwd",
        SLEEP,
        &[
            (&["@sh", "mkdir -m 700 {bundle}/rootfs/private"], Cmp::Code),
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "-u", "1000", "--cwd", "/private", "{id}", "/bin/pwd"], Cmp::Out),
            (&["exec", "-u", "1000", "--cwd", "/private", "{id}", "/bin/ls"], Cmp::Code),
            (&["exec", "--cwd", "/nonexistent", "{id}", "/bin/pwd"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec exit codes: the process's, a signal's, exec's own failures",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/sh", "-c", "exit 42"], Cmp::Code),
            (&["exec", "{id}", "/bin/sh", "-c", "kill -9 $$"], Cmp::Code),
            (&["exec", "{id}", "/nonexistent"], Cmp::Code),
            (&["exec", "{id}", "/etc/passwd"], Cmp::Code),
            (&["exec", "-d", "{id}", "/bin/sh", "-c", "exit 3"], Cmp::Code),
            (&["exec", "{missing}", "/bin/true"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec -t: the caller's console size, the tty's owner for a non-root user",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &["@sh", "script -qec 'stty rows 33 cols 77; {rt} exec -t {id} sh -c \"sleep 0.5; stty size\"' /dev/null"],
                Cmp::With(tty_text),
            ),
            (
                &[
                    "@sh",
                    "echo 'stat -c %u:%g:%a $(tty); tty' > {bundle}/rootfs/ttyinfo; \
                     script -qec '{rt} exec -t -u 1000 {id} sh /ttyinfo' /dev/null",
                ],
                Cmp::With(tty_text),
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        kept: Some((
            "runc 1.1.5 fails exec -t in the foreground when the caller has no controlling \
             terminal (it opens /dev/tty); polis-runc gives the process its pty and copies the \
             caller's stdio",
            &[(0, ""), (0, "in-a-tty"), (0, "")],
        )),
        ..sc(
            "exec --tty without a controlling terminal",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (
                    &["@sh", "setsid {rt} exec --tty {id} sh -c 'tty >/dev/null && echo in-a-tty' </dev/null"],
                    Cmp::With(tty_text),
                ),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    sc(
        "events --interval: default (5s), 1s, 100ms; the first stats after one interval",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["@sh", "timeout 2.5 {rt} events {id} | wc -l"], Cmp::Out),
            (
                &[
                    "@sh",
                    "timeout 0.7 {rt} events --interval 1s {id} | wc -l; \
                     timeout 2.5 {rt} events --interval 1s {id} > e; \
                     wc -l < e; grep -o '^{\"type\":\"stats\",\"id\":\"[^\"]*\",\"data\":{' e | uniq",
                ],
                Cmp::Out,
            ),
            (
                &["@sh", "timeout 1.05 {rt} events --interval 100ms {id} | wc -l"],
                Cmp::With(about_ten),
            ),
            (&["events", "--interval", "0s", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        edit: Some(|s, _| {
            s["linux"]["resources"]["memory"] = json!({"limit": 20971520, "swap": 20971520});
        }),
        ..sc(
            "events: an oom event when the container is OOM-killed, the end at delete",
            &["/bin/sh", "-c", "sleep 1; x=a; while :; do x=$x$x; done"],
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (
                    &[
                        "@sh",
                        "(timeout 20 {rt} events --interval 1s {id} > ev; echo \"exit $?\" > ev-end) & \
                         for i in $(seq 50); do {rt} state {id} | grep -q stopped && break; sleep 0.2; done; \
                         sleep 0.5; {rt} state {id} | grep -o '\"status\": \"[a-z]*\"'",
                    ],
                    Cmp::Out,
                ),
                (&["delete", "{id}"], Cmp::Code),
                (
                    &[
                        "@sh",
                        "for i in $(seq 50); do [ -s ev-end ] && break; sleep 0.1; done; cat ev-end; \
                         grep -c '^{\"type\":\"oom\",\"id\":\"[^\"]*\"}$' ev",
                    ],
                    Cmp::Out,
                ),
            ],
        )
    },
    sc(
        "ps with ps(1) arguments (-e -x, -o), -f json, and after the container stopped",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "-d", "{id}", "/bin/sleep", "100"], Cmp::Code),
            (&["ps", "{id}", "-e", "-x"], Cmp::With(ps_shape)),
            (&["ps", "{id}", "-o", "pid,comm"], Cmp::With(ps_shape)),
            (&["ps", "-f", "json", "{id}"], Cmp::With(json_len)),
            (&["ps", "{id}"], Cmp::With(ps_shape)),
            (&["kill", "--all", "{id}", "KILL"], Cmp::Code),
            (&["@sh", "sleep 0.5"], Cmp::Code),
            (&["ps", "-f", "json", "{id}"], Cmp::Out),
            (&["ps", "{id}"], Cmp::Out),
            (&["delete", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        edit: Some(|s, _| {
            s["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rm"}
            ]);
            s["linux"]["devices"] =
                json!([{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 432}]);
            for set in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
        }),
        ..sc(
            "devices: deny all, a char device rw, a block device rm, denied mknod and open",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["@sh", "sort /sys/fs/cgroup/devices{cg}/devices.list"], Cmp::Out),
                (
                    &[
                        "exec", "{id}", "/bin/sh", "-c",
                        "echo x > /dev/null; echo null-w $?; \
                         echo x > /dev/loop0 2>/dev/null; echo loop-w $?; \
                         mknod /dev/l1 b 7 0; echo mknod-b-allowed $?; \
                         mknod /dev/l2 b 7 1 2>/dev/null; echo mknod-b-other $?; \
                         mknod /dev/c1 c 5 1; echo mknod-console $?; \
                         echo x > /dev/c1 2>/dev/null; echo console-w $?; \
                         mknod /dev/m1 c 1 1 && head -c1 /dev/m1 >/dev/null 2>&1; echo mem-r $?",
                    ],
                    Cmp::Out,
                ),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    Scenario {
        edit: Some(|s, _| {
            s["linux"]["resources"]
                .as_object_mut()
                .unwrap()
                .remove("devices");
        }),
        ..sc(
            "devices: a spec without device rules still denies all but the defaults",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["@sh", "sort /sys/fs/cgroup/devices{cg}/devices.list"], Cmp::Out),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    Scenario {
        edit: Some(|s, _| {
            s["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rm"}
            ]);
        }),
        ..sc(
            "update keeps the device rules (and writes none)",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["update", "--memory", "64m", "{id}"], Cmp::Code),
                (
                    &[
                        "@sh",
                        "echo '{\"devices\": [{\"allow\": true, \"access\": \"rwm\"}]}' > r.json; \
                         {rt} update --resources r.json {id}; echo $?; \
                         sort /sys/fs/cgroup/devices{cg}/devices.list",
                    ],
                    Cmp::Out,
                ),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    sc(
        "update: the cgroup files after period, quota, cpuset, pids, memory (paused)",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--cpu-period", "50000", "{id}"], Cmp::Code),
            (&["@sh", "cd /sys/fs/cgroup/cpu{cg}; cat cpu.cfs_period_us cpu.cfs_quota_us"], Cmp::Out),
            (&["update", "--cpu-quota", "20000", "{id}"], Cmp::Code),
            (&["@sh", "cd /sys/fs/cgroup/cpu{cg}; cat cpu.cfs_period_us cpu.cfs_quota_us"], Cmp::Out),
            (&["update", "--cpu-period", "100000", "--cpu-quota", "-1", "{id}"], Cmp::Code),
            (&["@sh", "cd /sys/fs/cgroup/cpu{cg}; cat cpu.cfs_period_us cpu.cfs_quota_us"], Cmp::Out),
            (&["update", "--cpuset-cpus", "0", "{id}"], Cmp::Code),
            (&["@sh", "cat /sys/fs/cgroup/cpuset{cg}/cpuset.cpus"], Cmp::Out),
            (&["pause", "{id}"], Cmp::Code),
            (&["update", "--memory", "32m", "--pids-limit", "40", "{id}"], Cmp::Code),
            (
                &["@sh", "cat /sys/fs/cgroup/memory{cg}/memory.limit_in_bytes /sys/fs/cgroup/pids{cg}/pids.max /sys/fs/cgroup/freezer{cg}/freezer.state"],
                Cmp::Out,
            ),
            (&["resume", "{id}"], Cmp::Code),
            (&["update", "--cpuset-cpus", "7-9", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        edit: Some(|s, b| hooks_logging(s, b, &["prestart", "createRuntime", "createContainer", "poststop"])),
        ..sc(
            "hooks: their environment, cwd and the state on stdin",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["delete", "--force", "{id}"], Cmp::Code),
                (&["@sh", "cat {bundle}/hooks.log"], Cmp::Out),
            ],
        )
    },
    Scenario {
        edit: Some(|s, b| hooks_logging(s, b, &["poststart"])),
        kept: Some((
            "runc 1.1.5 gives poststart hooks the state 'created'; they run after the process \
             started, and polis-runc says 'running'",
            &[
                (0, ""),
                (
                    0,
                    "== poststart cwd=<bundle>\nHOOKVAR=1\nPATH=/usr/bin:/bin\nPWD=<bundle>\n\
                     {\"id\":\"<id>\",\"status\":\"running\",\"pid\":true,\"bundle\":\"<bundle>\",\
                     \"annotations\":null,\"keys\":[\"bundle\",\"id\",\"ociVersion\",\"pid\",\"status\"]}",
                ),
                (0, ""),
            ],
        )),
        ..sc(
            "hooks: poststart's state",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
                (&["@sh", "cat {bundle}/hooks.log"], Cmp::Out),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
    Scenario {
        edit: Some(|s, _| {
            s["hooks"] = json!({"prestart": [
                {"path": "/bin/true"},
                {"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 3"]}
            ]});
        }),
        ..sc(
            "a failing hook: the run fails, naming the hook and its exit status",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::With(names_hook)),
                (&["state", "{id}"], Cmp::Code),
            ],
        )
    },
    sc(
        "--debug: debug lines on stderr, in --log, as text and json",
        &["/bin/true"],
        &[
            (&["@sh", "{rt} --debug run --bundle {bundle} {id} 2>&1 >/dev/null"], Cmp::With(debug_kinds)),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (&["@sh", "{rt} --debug --log log.txt run --bundle {bundle} {id}; cat log.txt"], Cmp::With(debug_kinds)),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (
                &["@sh", "{rt} --debug --log log.json --log-format json run --bundle {bundle} {id}; cat log.json"],
                Cmp::With(debug_kinds),
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "signals: the init and an exec start with SIGPIPE at its default",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "exec", "{id}", "/bin/sh", "-c",
                    "for p in 1 self; do i=$(grep SigIgn /proc/$p/status | cut -f2); \
                     echo SIGPIPE ignored in $p: $(( 0x$i >> 12 & 1 )); done; (yes | head -1) 2>&1",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "events ends quietly when its reader goes away (killed by SIGPIPE, as runc)",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "({rt} events --interval 100ms {id}; echo \"events: $?\" >&2) 2>err | head -c 1 >/dev/null; \
                     cat err",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "events --stats: runc's fields, empty ones left out as runc leaves them",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--pids-limit", "50", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "{rt} events --stats {id} | jq -r '[paths | map(tostring) | join(\".\")] \
                     | map(select(test(\"[.][0-9]+([.]|$)\") | not)) | sort | .[]'",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "exec with stdin that is not a terminal (a pipe)",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["@sh", "printf 'one\\ntwo\\n' | {rt} exec {id} sh -c 'wc -l; test -t 0; echo $?'"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    sc(
        "update: realtime period and runtime, shares, reservation, swap",
        SLEEP,
        &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--cpu-rt-period", "1000000", "--cpu-rt-runtime", "0", "{id}"], Cmp::Code),
            (&["update", "--cpu-rt-runtime", "10000", "{id}"], Cmp::Code),
            (&["update", "--cpu-share", "512", "--memory-reservation", "10m", "--memory", "64m", "--memory-swap", "128m", "{id}"], Cmp::Code),
            (
                &[
                    "@sh",
                    "cat /sys/fs/cgroup/cpu{cg}/cpu.rt_period_us /sys/fs/cgroup/cpu{cg}/cpu.rt_runtime_us \
                     /sys/fs/cgroup/cpu{cg}/cpu.shares /sys/fs/cgroup/memory{cg}/memory.soft_limit_in_bytes \
                     /sys/fs/cgroup/memory{cg}/memory.limit_in_bytes",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    ),
    Scenario {
        edit: Some(|s, _| {
            s["hooks"] = json!({"prestart": [
                {"path": "/bin/sh", "args": ["sh", "-c", "echo out-noise; echo err-noise >&2"]}
            ]});
        }),
        ..sc(
            "a hook that succeeds: what it writes is not the runtime's output",
            SLEEP,
            &[
                (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::With(|o, e| format!("{o}|{e}"))),
                (&["delete", "--force", "{id}"], Cmp::Code),
            ],
        )
    },
];

/// Hooks of the given kinds, each appending its name, cwd, environment and the state it got
/// on stdin (what does not differ by version) to `<bundle>/hooks.log`.
fn hooks_logging(s: &mut Value, bundle: &str, kinds: &[&str]) {
    let script = format!(
        "{{ echo \"== $0 cwd=$(pwd)\"; env | sort; \
         jq -c '{{id, status, pid: (.pid > 0), bundle, annotations, keys: keys}}'; }} >> {bundle}/hooks.log"
    );
    let mut hooks = serde_json::Map::new();
    for kind in kinds {
        hooks.insert(
            kind.to_string(),
            json!([{"path": "/bin/sh", "args": ["sh", "-c", script, kind],
                    "env": ["HOOKVAR=1", "PATH=/usr/bin:/bin"]}]),
        );
    }
    s["hooks"] = Value::Object(hooks);
}

/// A terminal's output without the carriage returns and NULs (also as `^@`) the ptys add.
fn tty_text(out: &str, _: &str) -> String {
    out.replace(['\r', '\0'], "")
        .replace("^@", "")
        .trim()
        .to_string()
}

/// "about ten" for a count between 5 and 11 (ten 100 ms ticks in about a second).
fn about_ten(out: &str, _: &str) -> String {
    match out.trim().parse::<u32>() {
        Ok(5..=11) => "about ten".into(),
        _ => format!("not about ten: {out}"),
    }
}

/// ps(1)'s header and how many processes are listed.
fn ps_shape(out: &str, _: &str) -> String {
    let mut lines = out.lines();
    let header = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    format!("{} / {} processes", header.join(" "), lines.count())
}

/// A JSON document with its keys sorted at every level, so that documents equal as data
/// compare equal whatever the writer's key order and indentation.
fn json_canon(out: &str, _: &str) -> String {
    fn sorted(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    match serde_json::from_str::<Value>(out) {
        Ok(v) => serde_json::to_string_pretty(&sorted(v)).unwrap(),
        Err(_) => format!("not JSON: {out}"),
    }
}

/// How many elements a JSON array has.
fn json_len(out: &str, _: &str) -> String {
    match serde_json::from_str::<Value>(out) {
        Ok(Value::Array(a)) => format!("{} pids", a.len()),
        _ => format!("not an array: {out}"),
    }
}

/// Whether the error names the failing hook (its path and exit status) and quotes what it wrote
/// to stderr (which is not also passed through).
fn names_hook(_: &str, err: &str) -> String {
    let path = err.contains("/bin/sh") || err.contains("#1");
    let status = err.contains("status 3");
    let output = err.contains("stderr: oops");
    let once = err.matches("oops").count() == 1;
    format!(
        "names the hook: {path}, its status: {status}, quotes its stderr once: {}",
        output && once
    )
}

/// The kinds of log lines: debug lines at all, start-up progress of the container process
/// (runc's nsexec stages), the end of the process, and whether every line is json.
fn debug_kinds(out: &str, _: &str) -> String {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let level_msg = |l: &str| -> (String, String) {
        match serde_json::from_str::<Value>(l) {
            Ok(v) => (
                v["level"].as_str().unwrap_or_default().to_string(),
                v["msg"].as_str().unwrap_or_default().to_string(),
            ),
            Err(_) => {
                let level = l
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("level="))
                    .unwrap_or_default()
                    .to_string();
                (level, l.to_string())
            }
        }
    };
    let parsed: Vec<(String, String)> = lines.iter().map(|l| level_msg(l)).collect();
    let debug: Vec<&String> = parsed
        .iter()
        .filter(|(lvl, _)| lvl == "debug")
        .map(|(_, m)| m)
        .collect();
    let json = !lines.is_empty()
        && lines.iter().all(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["level"].is_string() && v["msg"].is_string() && v["time"].is_string()
            })
        });
    let stages: std::collections::BTreeSet<&str> = ["nsexec-0", "nsexec-1", "nsexec-2"]
        .into_iter()
        .filter(|st| debug.iter().any(|m| m.contains(&format!("{st}["))))
        .collect();
    format!(
        "debug lines: {}, start-up stages: {stages:?}, init line: {}, exit line: {}, json: {json}",
        !debug.is_empty(),
        debug.iter().any(|m| m.contains("init:")),
        debug.iter().any(|m| m.contains("process exited")),
    )
}

/// One step's result: exit code and what is compared of the output.
type Outcome = (Option<i32>, String);

/// Runs one scenario through `rt`: the result of each step.
fn run(rt: &Runtime, s: &Scenario) -> Vec<Outcome> {
    let c = Container::new(rt, "cli", s.args);
    let bundle = c.bundle_path().to_string();
    if let Some(edit) = s.edit {
        c.bundle.edit(|spec| edit(spec, &bundle)).unwrap();
    }
    let proc_file = c.bundle.path().join("process.json");
    std::fs::write(
        &proc_file,
        json!({"args": ["/bin/echo", "no-user"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
    )
    .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("polis-parity-")
        .tempdir()
        .unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    let rt_cmd = format!("{} --root {}", rt.bin.display(), rt.root().display());
    let missing = format!("{}-missing", c.id);
    let fill = |a: &str| {
        a.replace("{id}", &c.id)
            .replace("{bundle}", &bundle)
            .replace("{proc}", proc_file.to_str().unwrap())
            .replace("{missing}", &missing)
            .replace("{rt}", &rt_cmd)
            .replace("{cg}", &c.bundle.cgroups_path)
            .replace("{tmp}", &tmp_path)
    };
    let normalise = |t: &str| {
        t.trim()
            .replace(&bundle, "<bundle>")
            .replace(&tmp_path, "<tmp>")
            .replace(&c.id, "<id>")
    };
    let mut results = Vec::new();
    for (argv, cmp) in s.steps {
        let argv: Vec<String> = argv.iter().map(|a| fill(a)).collect();
        let o = if argv[0] == "@sh" {
            run_captured(
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&argv[1])
                    .current_dir(tmp.path()),
            )
        } else {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            run_captured(rt.command().args(&argv).current_dir(tmp.path()))
        };
        let out = match cmp {
            Cmp::Code => String::new(),
            Cmp::Out => normalise(&stdout(&o)),
            Cmp::With(f) => f(&normalise(&stdout(&o)), &normalise(&stderr(&o))),
        };
        results.push((o.status.code(), out));
    }
    if rt.name == "polis-runc" {
        // every scenario is also a leak check of ours
        c.finish();
    } else {
        // The references' leftovers are theirs, but the cgroups are removed here so that a
        // run leaves nothing: crun refuses linux.resources.unified on a v1 host only after
        // it made the container's cgroup in every hierarchy, and leaves them.
        let cgroups_path = c.bundle.cgroups_path.clone();
        drop(c);
        for dir in polis_integration::leaks::cgroup_dirs(&cgroups_path) {
            let _ = std::fs::remove_dir(dir);
        }
    }
    results
}

#[test]
fn runcs_command_line_habits_work_the_same() {
    let polis = Runtime::polis();
    let runc = Runtime::runc();
    let crun = match std::env::var("PARITY_CRUN").as_deref() {
        Ok("0") => None,
        _ => Runtime::crun(),
    };
    let only = std::env::var("PARITY_ONLY").unwrap_or_default();
    let mut differ = Vec::new();
    let (mut same, mut kept, mut excluded, mut crun_same) = (0, 0, 0, 0);
    let mut ran = 0;
    println!("{:<78} {:<9} {:<8}", "scenario", "polis", "crun");
    for s in SCENARIOS.iter().filter(|s| s.name.contains(&only)) {
        if let Some(why) = s.excluded {
            excluded += 1;
            println!("{:<78} {:<9} {:<8} ({why})", s.name, "excluded", "-");
            continue;
        }
        ran += 1;
        let p = run(&polis, s);
        let r = run(&runc, s);
        let c = crun.as_ref().map(|crun| run(crun, s));
        if std::env::var_os("PARITY_SHOW").is_some() {
            println!("  polis-runc {p:?}\n  runc       {r:?}\n  crun       {c:?}");
        }
        let crun_col = match &c {
            None => "-",
            Some(c) if *c == r => {
                crun_same += 1;
                "as runc"
            }
            Some(_) => "differs",
        };
        if let Some((why, want)) = s.kept {
            let want: Vec<Outcome> = want
                .iter()
                .map(|(c, o)| (Some(*c), o.to_string()))
                .collect();
            kept += 1;
            println!("{:<78} {:<9} {:<8} ({why})", s.name, "kept", crun_col);
            if p != want {
                differ.push(format!(
                    "{} (kept): polis-runc {p:?}, want {want:?}",
                    s.name
                ));
            }
            continue;
        }
        let ok = p == r;
        if ok {
            same += 1;
        }
        println!(
            "{:<78} {:<9} {:<8}",
            s.name,
            if ok { "as runc" } else { "DIFFERS" },
            crun_col
        );
        if !ok {
            differ.push(format!(
                "{}:\n  polis-runc {p:?}\n  runc       {r:?}\n  crun       {c:?}",
                s.name
            ));
        }
    }
    println!(
        "{} scenarios: {ran} run, {same} as runc, {kept} kept where runc is wrong, {} different, \
         {excluded} excluded; crun as runc in {crun_same} of {ran}",
        ran + excluded,
        differ.len() - differ.iter().filter(|d| d.contains("(kept)")).count(),
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
