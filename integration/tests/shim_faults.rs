//! containerd-shim-polis-v2 under faults and load: containerd restarted under running
//! containers, a shim killed with SIGKILL, containers grouped into one shim, and 20
//! containers started at once.

use std::time::Duration;

use polis_integration::containerd::{wait_until, Containerd, IMAGE};

const RUNTIME: &str = "io.containerd.polis.v2";

fn task_line(ctrd: &Containerd, id: &str) -> Option<String> {
    ctrd.ctr_ok(&["task", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .map(str::to_string)
}

/// Starts a detached sleeping container through our shim; returns the pids of the shims, which
/// must be exactly one.
fn run_sleeper(ctrd: &Containerd, id: &str) -> Vec<i32> {
    ctrd.ctr_ok(&["run", "-d", "--runtime", RUNTIME, IMAGE, id, "sleep", "300"]);
    let shims = ctrd.shim_pids();
    assert_eq!(shims.len(), 1, "one shim for {id}: {shims:?}");
    shims
}

#[test]
fn containerd_restart_keeps_containers_and_reconnects() {
    let mut ctrd = Containerd::start("restart");
    let id = ctrd.id("survivor");
    let shims = run_sleeper(&ctrd, &id);

    ctrd.stop(libc::SIGTERM);
    assert_eq!(ctrd.shim_pids(), shims, "the shim died with containerd");
    ctrd.launch();

    let line = task_line(&ctrd, &id).expect("task gone after the restart");
    assert!(line.contains("RUNNING"), "{line}");
    let out = ctrd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        &id,
        "echo",
        "reconnected",
    ]);
    assert_eq!(out.trim(), "reconnected");
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until("the task to stop", Duration::from_secs(20), || {
        task_line(&ctrd, &id).is_some_and(|l| l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.clean_and_check();
}

#[test]
fn sigkilled_shim_is_cleaned_up_by_containerd() {
    let ctrd = Containerd::start("sigkill");
    let id = ctrd.id("orphan");
    let shims = run_sleeper(&ctrd, &id);
    // SAFETY: kill(2) of the shim our containerd started.
    unsafe { libc::kill(shims[0], libc::SIGKILL) };
    // containerd sees the shim go, runs `shim delete` (which removes the container) and
    // drops the task.
    wait_until(
        "containerd to drop the task",
        Duration::from_secs(30),
        || task_line(&ctrd, &id).is_none_or(|l| l.contains("STOPPED")),
    );
    let _ = ctrd.ctr(&["task", "delete", &id]);
    ctrd.ctr_ok(&["containers", "rm", &id]);
    ctrd.clean_and_check();
}

#[test]
fn containers_of_one_group_share_one_shim() {
    let ctrd = Containerd::start("group");
    let group = format!("io.containerd.polis.v2.group={}", ctrd.id("pod"));
    let ids = [ctrd.id("a"), ctrd.id("b")];
    for id in &ids {
        ctrd.ctr_ok(&[
            "run",
            "-d",
            "--annotation",
            &group,
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "sleep",
            "300",
        ]);
    }
    assert_eq!(ctrd.shim_pids().len(), 1, "one shim for the group");
    for id in &ids {
        assert!(task_line(&ctrd, id).is_some_and(|l| l.contains("RUNNING")));
    }
    // Removing the first leaves the shim serving the second.
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &ids[0]]);
    wait_until("a to stop", Duration::from_secs(20), || {
        task_line(&ctrd, &ids[0]).is_some_and(|l| l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["task", "delete", &ids[0]]);
    let out = ctrd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "still",
        &ids[1],
        "echo",
        "alive",
    ]);
    assert_eq!(out.trim(), "alive");
    assert_eq!(ctrd.shim_pids().len(), 1);
    ctrd.clean_and_check();
}

#[test]
fn twenty_containers_start_concurrently() {
    let ctrd = Containerd::start("twenty");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let ctrd = &ctrd;
                s.spawn(move || {
                    let id = ctrd.id(&format!("c{i}"));
                    let msg = format!("hello-{i}");
                    let out = ctrd.ctr_ok(&[
                        "run",
                        "--rm",
                        "--runtime",
                        RUNTIME,
                        IMAGE,
                        &id,
                        "echo",
                        &msg,
                    ]);
                    assert_eq!(out.trim(), msg);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    ctrd.clean_and_check();
}

fn seccomp_mode(proc_dir: &str) -> String {
    std::fs::read_to_string(format!("{proc_dir}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// (thread name, seccomp mode) of every thread of `pid`.
fn thread_modes(pid: i32) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let dir = e.path().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(format!("{dir}/comm")).unwrap_or_default();
        v.push((name.trim().to_string(), seccomp_mode(&dir)));
    }
    v
}

#[test]
fn shim_confines_itself_but_not_its_containers() {
    let ctrd = Containerd::start("seccomp");
    let id = ctrd.id("free");
    let shims = run_sleeper(&ctrd, &id);
    // Every thread is filtered but the one that spawns polis-runc (filters are inherited).
    let threads = thread_modes(shims[0]);
    assert!(threads.len() > 2, "{threads:?}");
    for (name, mode) in &threads {
        let want = if name == "spawner" { "0" } else { "2" };
        assert_eq!(mode, want, "shim thread {name}: {threads:?}");
    }
    assert_eq!(
        threads.iter().filter(|(n, _)| n == "spawner").count(),
        1,
        "{threads:?}"
    );
    // ctr's default spec has no seccomp profile: the container must have no filter at all.
    let line = task_line(&ctrd, &id).unwrap();
    let pid: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        seccomp_mode(&format!("/proc/{pid}")),
        "0",
        "the container inherited a filter"
    );
    // Still fully working while confined: exec, kill, delete.
    let out = ctrd.ctr_ok(&["task", "exec", "--exec-id", "x", &id, "echo", "confined-ok"]);
    assert_eq!(out.trim(), "confined-ok");
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until("the task to stop", Duration::from_secs(20), || {
        task_line(&ctrd, &id).is_some_and(|l| l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.clean_and_check();
}
