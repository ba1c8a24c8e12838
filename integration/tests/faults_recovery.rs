//! Faults under load, each with its recovery time measured (issue 13; target < 1 s to a
//! consistent state): the shim of a container SIGKILLed during a busy exec loop, and containerd
//! SIGKILLed and restarted while 20 containers run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use polis_integration::containerd::{wait_until, Containerd, IMAGE};

const RUNTIME: &str = "io.containerd.polis.v2";

/// `(id, pid, status)` of every task containerd lists.
fn tasks(ctrd: &Containerd) -> Vec<(String, String, String)> {
    ctrd.ctr_ok(&["task", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// A child process killed (by its PID) and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn shim_sigkilled_during_an_exec_loop_is_cleaned_up_within_a_second() {
    let ctrd = Containerd::start("fault-execkill");
    let id = ctrd.id("busy");
    ctrd.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        &id,
        "sleep",
        "300",
    ]);
    let shims = ctrd.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let killed_at = std::thread::scope(|s| {
        for w in 0..3 {
            let (ctrd, id, stop, ok, failed) =
                (&ctrd, &id, stop.clone(), ok.clone(), failed.clone());
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let out = ctrd.ctr(&[
                        "task",
                        "exec",
                        "--exec-id",
                        &format!("w{w}-{n}"),
                        id,
                        "echo",
                        "probe",
                    ]);
                    if out.status.success() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        wait_until("a busy exec loop", Duration::from_secs(30), || {
            ok.load(Ordering::Relaxed) >= 10
        });
        // SAFETY: kill(2) of the shim our containerd started.
        unsafe { libc::kill(shims[0], libc::SIGKILL) };
        let t0 = Instant::now();
        // containerd sees the shim go: the task is reported stopped (or gone).
        wait_until(
            "containerd to see the shim die",
            Duration::from_secs(30),
            || {
                tasks(&ctrd)
                    .iter()
                    .all(|(t, _, st)| t != &id || st == "STOPPED")
            },
        );
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        took
    });
    eprintln!(
        "shim SIGKILL during an exec loop ({} execs done, {} failed): containerd reported the task stopped after {:.0} ms",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        killed_at.as_secs_f64() * 1000.0
    );
    let t0 = Instant::now();
    let _ = ctrd.ctr(&["task", "delete", &id]);
    ctrd.ctr_ok(&["containers", "rm", &id]);
    ctrd.clean_and_check();
    eprintln!(
        "cleanup to nothing left: {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    assert!(
        killed_at < Duration::from_secs(1),
        "recovery took {killed_at:?}"
    );
}

#[test]
fn containerd_sigkilled_and_restarted_with_20_containers_finds_them_all() {
    let mut ctrd = Containerd::start("fault-restart");
    let ids: Vec<String> = (0..20).map(|i| ctrd.id(&format!("c{i}"))).collect();
    std::thread::scope(|s| {
        for chunk in ids.chunks(5) {
            let ctrd = &ctrd;
            s.spawn(move || {
                for id in chunk {
                    ctrd.ctr_ok(&[
                        "run",
                        "-d",
                        "--runtime",
                        &runtime(),
                        IMAGE,
                        id,
                        "sleep",
                        "300",
                    ]);
                }
            });
        }
    });
    let mut before = tasks(&ctrd);
    before.sort();
    assert_eq!(before.len(), 20, "{before:?}");
    let mut shims = ctrd.shim_pids();
    shims.sort();
    assert_eq!(shims.len(), 20);

    ctrd.stop(libc::SIGKILL);
    let t0 = Instant::now();
    ctrd.launch();
    let answering = t0.elapsed();
    let mut after = Vec::new();
    wait_until(
        "all 20 tasks listed running",
        Duration::from_secs(30),
        || {
            after = tasks(&ctrd);
            after.len() == 20 && after.iter().all(|(_, _, st)| st == "RUNNING")
        },
    );
    let recovered = t0.elapsed();
    after.sort();
    assert_eq!(after, before, "tasks changed across the restart");
    let mut shims_after = ctrd.shim_pids();
    shims_after.sort();
    assert_eq!(shims_after, shims, "shims changed (duplicated or lost)");
    let containers = ctrd.ctr_ok(&["containers", "ls", "-q"]);
    assert_eq!(containers.lines().count(), 20, "{containers}");

    // Events resume: a subscriber started now sees the exits of the kills below.
    let mut events = KillOnDrop(
        ctrd.ctr_cmd(&["events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let out = events.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // Every container answers exec and metrics, then stops on kill.
    for id in &ids {
        let out = ctrd.ctr_ok(&[
            "task",
            "exec",
            "--exec-id",
            "after",
            id,
            "echo",
            "reachable",
        ]);
        assert_eq!(out.trim(), "reachable", "{id}");
        let m = ctrd.ctr_ok(&["task", "metrics", id]);
        assert!(
            m.contains("memory") || m.contains("pids"),
            "metrics of {id}: {m}"
        );
    }
    for id in &ids {
        ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    }
    let mut exited = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while exited.len() < ids.len() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("/tasks/exit") {
                if let Some(id) = ids.iter().find(|id| line.contains(&format!("\"{id}\""))) {
                    exited.insert(id.clone());
                }
            }
        }
    }
    drop(events);
    assert_eq!(
        exited.len(),
        ids.len(),
        "exit events after the restart: {exited:?}\ntasks: {:?}\ncontainerd log:\n{}",
        tasks(&ctrd),
        polis_integration::containerd::tail(&ctrd.log(), 40)
    );
    eprintln!(
        "containerd SIGKILL + restart with 20 containers: answering after {:.0} ms, all 20 listed running after {:.0} ms; exec, metrics, kill and exit events work; no task or shim duplicated",
        answering.as_secs_f64() * 1000.0,
        recovered.as_secs_f64() * 1000.0
    );
    for id in &ids {
        let _ = ctrd.ctr(&["task", "delete", id]);
    }
    ctrd.clean_and_check();
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
}

/// The runtime under test: ours, or another (`FAULTS_RUNTIME=io.containerd.runc.v2`, the Go
/// shim, to compare).
fn runtime() -> String {
    std::env::var("FAULTS_RUNTIME").unwrap_or_else(|_| RUNTIME.to_string())
}
