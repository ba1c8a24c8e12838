//! containerd-shim-polis-v2 at rest (issue 13): a shim with one sleeping container must not
//! wake up on its own, and a shim stopped and continued (SIGSTOP/SIGCONT, as a debugger or
//! `kill -STOP` does) keeps serving.

use std::time::Duration;

use polis_integration::containerd::{wait_until, Containerd, IMAGE};

const RUNTIME: &str = "io.containerd.polis.v2";

/// (thread name, voluntary + involuntary context switches) of every thread of `pid`.
fn switches(pid: i32) -> Vec<(String, String, u64)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let tid = e.file_name().to_string_lossy().into_owned();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let n: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        v.push((tid, name.trim().to_string(), n));
    }
    v
}

fn the_shim(ctrd: &Containerd, id: &str) -> i32 {
    ctrd.ctr_ok(&["run", "-d", "--runtime", RUNTIME, IMAGE, id, "sleep", "300"]);
    let shims = ctrd.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    shims[0]
}

#[test]
fn an_idle_shim_does_not_wake_up() {
    let ctrd = Containerd::start("idle");
    let id = ctrd.id("sleeper");
    let shim = the_shim(&ctrd, &id);
    // Without per-thread malloc caches (they held ~250 KB after 1,000 execs: bench/soak.sh).
    let environ = std::fs::read(format!("/proc/{shim}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|e| e == b"GLIBC_TUNABLES=glibc.malloc.tcache_count=0"),
        "the shim server runs with tcache"
    );
    // Past the start's events (the connection to containerd closes 2 s after the last one).
    std::thread::sleep(Duration::from_secs(4));
    let before = switches(shim);
    std::thread::sleep(Duration::from_secs(3));
    let after = switches(shim);
    let woke: Vec<_> = after
        .iter()
        .filter_map(|(tid, name, n)| {
            let was = before.iter().find(|(t, _, _)| t == tid).map_or(0, |b| b.2);
            (*n > was).then(|| format!("{name} ({tid}): {} wake-ups", n - was))
        })
        .collect();
    let total: u64 =
        after.iter().map(|a| a.2).sum::<u64>() - before.iter().map(|b| b.2).sum::<u64>();
    eprintln!("idle shim over 3 s: {total} context switches {woke:?}");
    assert!(
        total <= 5,
        "an idle shim woke up {total} times in 3 s: {woke:?}"
    );
    // Events still go out after the idle connection closed: the exit reaches containerd.
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until(
        "the exit to reach containerd",
        Duration::from_secs(20),
        || {
            ctrd.ctr_ok(&["task", "ls"])
                .lines()
                .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
        },
    );
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.clean_and_check();
}

#[test]
fn a_stopped_and_continued_shim_keeps_serving() {
    let ctrd = Containerd::start("stopcont");
    let id = ctrd.id("sleeper");
    let shim = the_shim(&ctrd, &id);
    // Several times, with the connection to containerd open (right after events) and closed.
    for round in 0..4 {
        if round % 2 == 0 {
            let out = ctrd.ctr_ok(&[
                "task",
                "exec",
                "--exec-id",
                &format!("e{round}"),
                &id,
                "echo",
                "x",
            ]);
            assert_eq!(out.trim(), "x");
        } else {
            std::thread::sleep(Duration::from_millis(2500));
        }
        // SAFETY: kill(2) of the shim our containerd started.
        unsafe { libc::kill(shim, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(100));
        unsafe { libc::kill(shim, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(200));
        let out = ctrd.ctr_ok(&[
            "task",
            "exec",
            "--exec-id",
            &format!("after{round}"),
            &id,
            "echo",
            "alive",
        ]);
        assert_eq!(out.trim(), "alive", "round {round}");
    }
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until(
        "the exit to reach containerd",
        Duration::from_secs(20),
        || {
            ctrd.ctr_ok(&["task", "ls"])
                .lines()
                .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
        },
    );
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.clean_and_check();
}
