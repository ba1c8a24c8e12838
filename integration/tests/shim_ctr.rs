//! containerd-shim-polis-v2 through a real containerd and `ctr`, and the same scenarios with
//! containerd's Go runc shim driving polis-runc (`--runc-binary`): the drop-in promise.

use std::time::Duration;

use polis_integration::containerd::{wait_until, Containerd, IMAGE};

#[derive(Clone, Copy, Debug)]
enum Shim {
    Polis,
    GoRuncShim,
}

impl Shim {
    /// The `ctr run` flags selecting this shim (and, for the Go shim, polis-runc).
    fn run_flags(self) -> Vec<String> {
        match self {
            Shim::Polis => vec!["--runtime".into(), "io.containerd.polis.v2".into()],
            Shim::GoRuncShim => {
                let runc = polis_integration::polis_bin("polis-runc");
                vec![
                    "--runtime".into(),
                    "io.containerd.runc.v2".into(),
                    "--runc-binary".into(),
                    runc.to_string_lossy().into_owned(),
                ]
            }
        }
    }
}

fn run_args<'a>(shim: &'a [String], head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = vec!["run"];
    v.extend(head);
    v.extend(shim.iter().map(String::as_str));
    v.extend(tail);
    v
}

fn echo_and_exit_codes(shim: Shim) {
    let ctrd = Containerd::start("echo");
    let flags = shim.run_flags();
    let id = ctrd.id("echo");
    let out = ctrd.ctr_ok(&run_args(
        &flags,
        &["--rm"],
        &[
            IMAGE,
            &id,
            "sh",
            "-c",
            "echo hello-from-polis; echo to-stderr >&2",
        ],
    ));
    assert_eq!(out.trim(), "hello-from-polis", "{shim:?}");

    // A non-zero exit code reaches ctr's own exit status.
    let id = ctrd.id("exit3");
    let o = ctrd.ctr(&run_args(
        &flags,
        &["--rm"],
        &[IMAGE, &id, "sh", "-c", "exit 3"],
    ));
    assert_eq!(o.status.code(), Some(3), "{shim:?}: {o:?}");

    // Quick exits with more output than a pipe buffer lose nothing.
    let id = ctrd.id("bulk");
    let out = ctrd.ctr_ok(&run_args(
        &flags,
        &["--rm"],
        &[
            IMAGE,
            &id,
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20000, "{shim:?}");
    assert_eq!(lines[19999], "line19999");
    ctrd.clean_and_check();
}

#[test]
fn polis_shim_runs_echo_and_propagates_exit_codes() {
    echo_and_exit_codes(Shim::Polis);
}

#[test]
fn go_shim_with_polis_runc_runs_echo_and_propagates_exit_codes() {
    echo_and_exit_codes(Shim::GoRuncShim);
}

/// Column `n` of `id`'s row in `ctr task ls` (1: pid, 2: status).
fn task_column(ctrd: &Containerd, id: &str, n: usize) -> Option<String> {
    let out = ctrd.ctr_ok(&["task", "ls"]);
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(n))
        .map(str::to_string)
}

fn task_status(ctrd: &Containerd, id: &str) -> String {
    task_column(ctrd, id, 2).unwrap_or_default()
}

fn detached_exec_kill_delete(shim: Shim) {
    let ctrd = Containerd::start("exec");
    let flags = shim.run_flags();
    let id = ctrd.id("sleeper");
    ctrd.ctr_ok(&run_args(&flags, &["-d"], &[IMAGE, &id, "sleep", "300"]));
    assert_eq!(task_status(&ctrd, &id), "RUNNING");

    let out = ctrd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in-exec; exit 0",
    ]);
    assert_eq!(out.trim(), "in-exec", "{shim:?}");
    let o = ctrd.ctr(&["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{shim:?}: {o:?}");

    // A running exec shows in `task ps` with its exec id (the Go shim's ProcessDetails).
    ctrd.ctr_ok(&["task", "exec", "-d", "--exec-id", "e3", &id, "sleep", "300"]);
    let ps = ctrd.ctr_ok(&["task", "ps", &id]);
    assert_eq!(ps.lines().count(), 3, "{shim:?}: {ps}");
    assert_eq!(
        ps.lines().filter(|l| l.contains("e3")).count(),
        1,
        "{shim:?}: {ps}"
    );

    ctrd.ctr_ok(&["task", "pause", &id]);
    assert_eq!(task_status(&ctrd, &id), "PAUSED");
    ctrd.ctr_ok(&["task", "resume", &id]);
    assert_eq!(task_status(&ctrd, &id), "RUNNING");

    // Real counters of the container's cgroups, not just the table's rows.
    let metrics = ctrd.ctr_ok(&["task", "metrics", &id]);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.split_whitespace()
                    .collect::<Vec<_>>()
                    .get(..2)
                    .and_then(|f| (f[0] == name).then(|| f[1].parse().ok()).flatten())
            })
            .unwrap_or_else(|| panic!("{shim:?}: no {name} in {metrics}"))
    };
    if polis_integration::cgroup2_host() {
        assert!(value("memory.usage") > 0, "{shim:?}: {metrics}");
        assert!(value("cpu.usage_usec") > 0, "{shim:?}: {metrics}");
        // no limits set: "max", which containerd's v2 metrics carry as u64::MAX
        assert_eq!(value("pids.limit"), u64::MAX, "{shim:?}: {metrics}");
        assert_eq!(value("memory.usage_limit"), u64::MAX, "{shim:?}: {metrics}");
    } else {
        assert!(value("memory.usage_in_bytes") > 0, "{shim:?}: {metrics}");
        assert!(value("cpuacct.usage") > 0, "{shim:?}: {metrics}");
    }
    assert!(
        value("pids.current") >= 2,
        "{shim:?}: sleep and the exec: {metrics}"
    );

    // sleep is PID 1 of its namespace and has no SIGTERM handler: only SIGKILL stops it.
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until("the task to stop", Duration::from_secs(20), || {
        task_status(&ctrd, &id) == "STOPPED"
    });
    // Killing a task whose process is gone is a clear error and changes nothing.
    let o = ctrd.ctr(&["task", "kill", &id]);
    assert!(
        !o.status.success(),
        "{shim:?}: killing a stopped task succeeded"
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("not found") || err.contains("finished") || err.contains("not running"),
        "{shim:?}: {err}"
    );
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.ctr_ok(&["containers", "rm", &id]);
    ctrd.clean_and_check();
}

#[test]
fn polis_shim_detached_exec_pause_metrics_kill_delete() {
    detached_exec_kill_delete(Shim::Polis);
}

#[test]
fn go_shim_with_polis_runc_detached_exec_pause_metrics_kill_delete() {
    detached_exec_kill_delete(Shim::GoRuncShim);
}

fn task_pid(ctrd: &Containerd, id: &str) -> i32 {
    task_column(ctrd, id, 1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid for {id} in ctr task ls"))
}

/// A container that joins another's pid namespace: when its init dies the kernel kills
/// nothing else, so the shim must (`kill --all`), or its execs would live on unseen.
fn execs_die_with_an_init_in_a_shared_pid_namespace(shim: Shim) {
    let ctrd = Containerd::start("sharedpid");
    let flags = shim.run_flags();
    let holder = ctrd.id("holder");
    ctrd.ctr_ok(&run_args(
        &flags,
        &["-d"],
        &[IMAGE, &holder, "sleep", "300"],
    ));
    let ns = format!("pid:/proc/{}/ns/pid", task_pid(&ctrd, &holder));
    let guest = ctrd.id("guest");
    ctrd.ctr_ok(&run_args(
        &flags,
        &["-d", "--with-ns", &ns],
        &[IMAGE, &guest, "sleep", "300"],
    ));
    ctrd.ctr_ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "left",
        &guest,
        "sleep",
        "300",
    ]);
    let ps = ctrd.ctr_ok(&["task", "ps", &guest]);
    let exec_pid: i32 = ps
        .lines()
        .find(|l| l.contains("left"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{shim:?}: no exec in {ps}"));

    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &guest]);
    wait_until("the guest to stop", Duration::from_secs(20), || {
        task_status(&ctrd, &guest) == "STOPPED"
    });
    let proc_dir = format!("/proc/{exec_pid}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&proc_dir).exists() {
        if std::time::Instant::now() > deadline {
            let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap_or_default();
            panic!(
                "{shim:?}: the guest's exec {exec_pid} outlived its init:\n{}\ncontainerd log:\n{}",
                status.lines().take(8).collect::<Vec<_>>().join("\n"),
                polis_integration::containerd::tail(&ctrd.log(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(task_status(&ctrd, &holder), "RUNNING", "{shim:?}");
    ctrd.clean_and_check();
}

#[test]
fn polis_shim_kills_execs_of_an_init_sharing_a_pid_namespace() {
    execs_die_with_an_init_in_a_shared_pid_namespace(Shim::Polis);
}

#[test]
fn go_shim_with_polis_runc_kills_execs_of_an_init_sharing_a_pid_namespace() {
    execs_die_with_an_init_in_a_shared_pid_namespace(Shim::GoRuncShim);
}

/// A container without stdio (every pod sandbox is one) gets /dev/null on fds 0-2, never a
/// pipe of the shim's, and its run returns when it exits.
fn null_io_container_exits_and_sees_dev_null(shim: Shim) {
    let ctrd = Containerd::start("nullio");
    let flags = shim.run_flags();
    let id = ctrd.id("quiet");
    let mut child = ctrd
        .ctr_cmd(&run_args(
            &flags,
            &["--rm", "--null-io"],
            &[IMAGE, &id, "sh", "-c", "sleep 1"],
        ))
        .spawn()
        .expect("spawn ctr");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shim:?}: `ctr run --null-io` of a 1 s container still runs after 30 s\n{}",
                polis_integration::containerd::tail(&ctrd.log(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{shim:?}: {status}");

    let id = ctrd.id("quiet-d");
    ctrd.ctr_ok(&run_args(
        &flags,
        &["-d", "--null-io"],
        &[IMAGE, &id, "sleep", "300"],
    ));
    let fds = ctrd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "fds",
        &id,
        "sh",
        "-c",
        "for f in 0 1 2; do readlink /proc/1/fd/$f; done",
    ]);
    assert_eq!(
        fds.lines().collect::<Vec<_>>(),
        ["/dev/null"; 3],
        "{shim:?}: the init's stdio"
    );
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until("the task to stop", Duration::from_secs(20), || {
        task_status(&ctrd, &id) == "STOPPED"
    });
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.ctr_ok(&["containers", "rm", &id]);
    ctrd.clean_and_check();
}

#[test]
fn polis_shim_runs_a_container_without_stdio() {
    null_io_container_exits_and_sees_dev_null(Shim::Polis);
}

#[test]
fn go_shim_with_polis_runc_runs_a_container_without_stdio() {
    null_io_container_exits_and_sees_dev_null(Shim::GoRuncShim);
}
