//! polis-runc against real containers: lifecycle commands, compared with runc on the same bundle.

use std::time::Duration;

use polis_integration::runtime::{stderr, stdout, Container, Runtime};
use serde_json::Value;

fn both() -> [Runtime; 2] {
    [Runtime::polis(), Runtime::runc()]
}

#[test]
fn run_prints_output_and_passes_exit_codes_like_runc() {
    for rt in both() {
        let c = Container::new(&rt, "echo", &["/bin/echo", "hello polis"]);
        let o = c.run();
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        assert_eq!(stdout(&o), "hello polis\n", "{}", rt.name);
        c.finish();

        let c = Container::new(&rt, "exit", &["/bin/sh", "-c", "exit 7"]);
        assert_eq!(c.run().status.code(), Some(7), "{}", rt.name);
        c.finish();

        // Killed by a signal: 128 + signal, as a shell reports it.
        let c = Container::new(&rt, "sig", &["/bin/sleep", "1000"]);
        let mut child = rt
            .command()
            .args(["run", "--bundle", c.bundle_path(), &c.id])
            .spawn()
            .unwrap();
        rt.wait_status(&c.id, "running");
        rt.ok(&["kill", &c.id, "KILL"]);
        assert_eq!(child.wait().unwrap().code(), Some(137), "{}", rt.name);
        c.finish();
    }
}

#[test]
fn create_start_state_kill_delete() {
    for rt in both() {
        let c = Container::new(&rt, "life", &["/bin/sleep", "1000"]);
        c.create();
        let s = rt.state(&c.id);
        assert_eq!(s["status"], "created", "{}", rt.name);
        assert_eq!(s["id"], c.id.as_str());
        assert!(s["pid"].as_i64().unwrap() > 0);
        assert_eq!(s["bundle"], c.bundle_path());
        for key in ["ociVersion", "rootfs", "created", "owner"] {
            assert!(s.get(key).is_some(), "{}: state lacks {key}: {s}", rt.name);
        }
        rt.ok(&["start", &c.id]);
        rt.wait_status(&c.id, "running");
        // A running container refuses a plain delete.
        let o = rt.run(&["delete", &c.id]);
        assert_eq!(o.status.code(), Some(1), "{}", rt.name);
        rt.ok(&["kill", &c.id, "KILL"]);
        rt.wait_status(&c.id, "stopped");
        assert_eq!(rt.state(&c.id)["pid"], 0, "{}", rt.name);
        rt.ok(&["delete", &c.id]);
        c.assert_clean();
    }
}

#[test]
fn kill_defaults_to_sigterm_and_takes_numbers() {
    for rt in both() {
        let c = Container::started(
            &rt,
            "term",
            &[
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.05; done",
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
        rt.ok(&["kill", &c.id]);
        rt.wait_status(&c.id, "stopped");
        c.finish();

        let c = Container::started(&rt, "num", &["/bin/sleep", "1000"]);
        rt.ok(&["kill", &c.id, "9"]);
        rt.wait_status(&c.id, "stopped");
        c.finish();
    }
}

#[test]
fn run_forwards_signals_to_the_container() {
    let rt = Runtime::polis();
    let c = Container::new(
        &rt,
        "fwd",
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 42' USR1; while :; do sleep 0.05; done",
        ],
    );
    let mut child = rt
        .command()
        .args(["run", "--bundle", c.bundle_path(), &c.id])
        .spawn()
        .unwrap();
    rt.wait_status(&c.id, "running");
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    c.assert_clean();
}

#[test]
fn list_shows_containers_in_all_formats() {
    for rt in both() {
        let c = Container::new(&rt, "list", &["/bin/sleep", "1000"]);
        c.create();
        let q = rt.ok(&["list", "-q"]);
        assert_eq!(q.trim(), c.id, "{}", rt.name);
        let json: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
        assert_eq!(json[0]["id"], c.id.as_str(), "{}", rt.name);
        assert_eq!(json[0]["status"], "created", "{}", rt.name);
        let table = rt.ok(&["list"]);
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
            "{}",
            rt.name
        );
        assert!(lines.next().unwrap().starts_with(&c.id));
        c.finish();
        assert_eq!(rt.ok(&["list", "-q"]), "", "{}", rt.name);
    }
}

#[test]
fn exec_runs_in_the_container_with_overrides() {
    for rt in both() {
        let c = Container::started(&rt, "exec", &["/bin/sleep", "1000"]);
        let out = rt.ok(&[
            "exec",
            "-e",
            "POLIS=yes",
            "--cwd",
            "/tmp",
            &c.id,
            "/bin/sh",
            "-c",
            "echo $POLIS $(pwd) $(hostname)",
        ]);
        assert_eq!(out, "yes /tmp polis\n", "{}", rt.name);
        let o = rt.run(&["exec", &c.id, "/bin/sh", "-c", "exit 5"]);
        assert_eq!(o.status.code(), Some(5), "{}", rt.name);
        let o = rt.run(&["exec", "-u", "65534:65534", &c.id, "/bin/id", "-u"]);
        assert_eq!(stdout(&o), "65534\n", "{}: {}", rt.name, stderr(&o));
        // A process file, as containerd passes it.
        let pfile = c.bundle.path().join("process.json");
        let mut p = c.bundle.spec().unwrap()["process"].clone();
        p["args"] = serde_json::json!(["/bin/echo", "from-process-file"]);
        std::fs::write(&pfile, serde_json::to_vec(&p).unwrap()).unwrap();
        let out = rt.ok(&["exec", "--process", pfile.to_str().unwrap(), &c.id]);
        assert_eq!(out, "from-process-file\n", "{}", rt.name);
        // The exec'd process shares the init's pid namespace: the init is pid 1 there.
        let out = rt.ok(&["exec", &c.id, "/bin/cat", "/proc/1/cmdline"]);
        assert!(out.starts_with("/bin/sleep"), "{}: {out:?}", rt.name);
        c.finish();
    }
}

#[test]
fn exec_detached_writes_pid_file() {
    let rt = Runtime::polis();
    let c = Container::started(&rt, "execd", &["/bin/sleep", "1000"]);
    let pidfile = c.bundle.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "/bin/sleep",
        "999",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("/bin/sleep\0999"), "{cmdline:?}");
    let ps: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &c.id])).unwrap();
    assert!(ps.contains(&pid), "{ps:?} lacks {pid}");
    assert_eq!(ps.len(), 2, "{ps:?}");
    let table = rt.ok(&["ps", &c.id]);
    assert!(table.lines().next().unwrap().contains("PID"));
    assert_eq!(table.lines().count(), 3, "{table}");
    c.finish();
}

#[test]
fn pause_and_resume_freeze_the_cgroup() {
    for rt in both() {
        let c = Container::started(&rt, "pause", &["/bin/sleep", "1000"]);
        rt.ok(&["pause", &c.id]);
        assert_eq!(rt.state(&c.id)["status"], "paused", "{}", rt.name);
        let freezer = std::path::Path::new("/sys/fs/cgroup/freezer")
            .join(c.bundle.cgroups_path.trim_start_matches('/'))
            .join("freezer.state");
        if freezer.exists() {
            assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
        }
        // A paused container cannot be paused again.
        assert_eq!(
            rt.run(&["pause", &c.id]).status.code(),
            Some(1),
            "{}",
            rt.name
        );
        rt.ok(&["resume", &c.id]);
        assert_eq!(rt.state(&c.id)["status"], "running", "{}", rt.name);
        c.finish();
    }
}

#[test]
fn update_memory_limit_is_seen_in_the_cgroup() {
    for rt in both() {
        let c = Container::started(&rt, "upd", &["/bin/sleep", "1000"]);
        rt.ok(&["update", "--memory", "64m", &c.id]);
        let dir = polis_integration::leaks::memory_cgroup_dir(&c.bundle.cgroups_path);
        let file = if dir.join("memory.limit_in_bytes").exists() {
            dir.join("memory.limit_in_bytes")
        } else {
            dir.join("memory.max")
        };
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            "67108864",
            "{}",
            rt.name
        );
        rt.ok(&["update", "--pids-limit", "20", &c.id]);
        let pids = std::path::Path::new("/sys/fs/cgroup/pids")
            .join(c.bundle.cgroups_path.trim_start_matches('/'))
            .join("pids.max");
        if pids.exists() {
            assert_eq!(
                std::fs::read_to_string(&pids).unwrap().trim(),
                "20",
                "{}",
                rt.name
            );
        }
        // --resources from a file replaces limits the same way.
        let res = c.bundle.path().join("res.json");
        std::fs::write(&res, r#"{"memory":{"limit":33554432}}"#).unwrap();
        rt.ok(&["update", "--resources", res.to_str().unwrap(), &c.id]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            "33554432",
            "{}",
            rt.name
        );
        c.finish();
    }
}

#[test]
fn events_stats_reports_memory_and_pids() {
    for rt in both() {
        let c = Container::started(&rt, "ev", &["/bin/sleep", "1000"]);
        let ev: Value = serde_json::from_str(&rt.ok(&["events", "--stats", &c.id])).unwrap();
        assert_eq!(ev["type"], "stats", "{}", rt.name);
        assert_eq!(ev["id"], c.id.as_str());
        assert!(
            ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
            "{}: {ev}",
            rt.name
        );
        assert_eq!(ev["data"]["pids"]["current"], 1, "{}: {ev}", rt.name);
        c.finish();
    }
}

#[test]
fn spec_writes_a_config_that_runs() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "spec", &["/bin/true"]);
    std::fs::remove_file(c.bundle.path().join("config.json")).unwrap();
    rt.ok(&["spec", "--bundle", c.bundle_path()]);
    // A second spec refuses to overwrite, like runc.
    assert_eq!(
        rt.run(&["spec", "--bundle", c.bundle_path()]).status.code(),
        Some(1)
    );
    c.bundle
        .edit(|s| {
            s["process"]["terminal"] = false.into();
            s["root"]["readonly"] = false.into();
            s["process"]["args"] = serde_json::json!(["/bin/echo", "spec-ok"]);
            s["linux"]["cgroupsPath"] = c.bundle.cgroups_path.clone().into();
        })
        .unwrap();
    let o = c.run();
    assert_eq!(stdout(&o), "spec-ok\n", "{}", stderr(&o));
    c.finish();
}

/// `spec` writes runc's document, field for field, and so does `spec --rootless`.
#[test]
fn spec_is_runcs_default_bundle() {
    for extra in [&[][..], &["--rootless"][..]] {
        let mut docs = Vec::new();
        for rt in [Runtime::polis(), Runtime::runc()] {
            let dir = tempfile::tempdir().unwrap();
            let mut args = vec!["spec", "--bundle", dir.path().to_str().unwrap()];
            args.extend_from_slice(extra);
            rt.ok(&args);
            let doc: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                    .unwrap();
            docs.push(doc);
        }
        assert_eq!(
            docs[0], docs[1],
            "spec {extra:?}: polis-runc and runc differ"
        );
    }
}

#[test]
fn features_and_version() {
    let rt = Runtime::polis();
    let f: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["namespaces"].as_array().unwrap().len() >= 7);
    let v = rt.ok(&["--version"]);
    assert!(v.starts_with("polis-runc version "), "{v}");
    assert!(v.contains("\ncommit: ") && v.contains("\nspec: "), "{v}");
}

#[test]
fn json_log_carries_the_last_error_for_containerd() {
    let rt = Runtime::polis();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let o = rt
        .command()
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "polis-no-such",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("polis-no-such"),
        "{last}"
    );
    assert!(last["time"].is_string());
    // Like runc, the error also reaches stderr when the log goes to a file.
    assert!(stderr(&o).contains("polis-no-such"));
}

#[test]
fn run_keep_leaves_a_stopped_container_and_preserve_fds_passes_fds() {
    use std::os::unix::process::CommandExt;
    for rt in both() {
        let c = Container::new(&rt, "keep", &["/bin/sh", "-c", "cat <&3"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passed");
        std::fs::write(&file, "through fd 3\n").unwrap();
        let f = std::fs::File::open(&file).unwrap();
        let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
        let mut cmd = rt.command();
        cmd.args([
            "run",
            "--keep",
            "--preserve-fds",
            "1",
            "--bundle",
            c.bundle_path(),
            &c.id,
        ]);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself would keep close-on-exec, so clear it explicitly.
                if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = polis_integration::runtime::run_captured(&mut cmd);
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        assert_eq!(stdout(&o), "through fd 3\n", "{}", rt.name);
        assert_eq!(rt.state(&c.id)["status"], "stopped", "{}", rt.name);
        rt.ok(&["delete", &c.id]);
        c.assert_clean();
    }
}

#[test]
fn events_stream_until_the_container_is_deleted_and_ps_takes_ps_args() {
    let rt = Runtime::polis();
    let c = Container::started(&rt, "evs", &["/bin/sleep", "1000"]);
    let table = rt.ok(&["ps", &c.id, "-o", "pid,comm"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert!(lines.next().unwrap().ends_with("sleep"), "{table}");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = rt
        .command()
        .args(["events", "--interval", "100ms", &c.id])
        .stdout(out.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(out.path()).unwrap().lines().count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no stats events streamed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.ok(&["kill", &c.id, "KILL"]);
    rt.wait_status(&c.id, "stopped");
    // As runc's: the stream goes on while the stopped container exists (its cgroup does), and
    // ends by itself once it is deleted.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "events ended at the stop"
    );
    rt.ok(&["delete", &c.id]);
    let status = child.wait().unwrap();
    assert!(status.success());
    for line in std::fs::read_to_string(out.path()).unwrap().lines() {
        let ev: Value = serde_json::from_str(line).unwrap();
        assert_eq!(ev["type"], "stats");
        assert_eq!(ev["id"], c.id.as_str());
    }
    c.finish();
}
