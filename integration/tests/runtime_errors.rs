//! Bad input to polis-runc: a one-line error naming the id or path at fault, exit 1, and
//! nothing left behind. runc's exit codes are the reference.

use polis_integration::runtime::{stderr, Container, Runtime};

fn assert_fails_naming(rt: &Runtime, args: &[&str], needle: &str) {
    let o = rt.run(args);
    // runc exits 255 when exec itself fails, 1 for every other command.
    let want = if args[0] == "exec" { 255 } else { 1 };
    assert_eq!(
        o.status.code(),
        Some(want),
        "{}: {args:?}: {}",
        rt.name,
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(needle),
        "{}: {args:?}: error {err:?} does not name {needle:?}",
        rt.name
    );
}

#[test]
fn commands_on_a_missing_container_name_it() {
    let rt = Runtime::polis();
    let runc = Runtime::runc();
    let id = polis_integration::unique_name("missing");
    for cmd in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str()],
        vec!["delete", id.as_str()],
        vec!["pause", id.as_str()],
        vec!["resume", id.as_str()],
        vec!["ps", id.as_str()],
        vec!["exec", id.as_str(), "/bin/true"],
        vec!["events", "--stats", id.as_str()],
        vec!["update", "--memory", "1m", id.as_str()],
    ] {
        assert_fails_naming(&rt, &cmd, &id);
        assert_eq!(
            runc.run(&cmd).status.code(),
            rt.run(&cmd).status.code(),
            "exit codes of runc and polis-runc differ for {cmd:?}"
        );
    }
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_survives() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "dup", &["/bin/sleep", "1000"]);
    c.create();
    assert_fails_naming(&rt, &["create", "--bundle", c.bundle_path(), &c.id], &c.id);
    assert_eq!(rt.state(&c.id)["status"], "created");
    c.finish();
}

#[test]
fn bad_bundles_name_the_path_and_leave_nothing() {
    let rt = Runtime::polis();
    let runc = Runtime::runc();

    let c = Container::new(&rt, "badjson", &["/bin/true"]);
    std::fs::write(c.bundle.path().join("config.json"), "{ not json").unwrap();
    assert_fails_naming(
        &rt,
        &["create", "--bundle", c.bundle_path(), &c.id],
        "config.json",
    );
    assert_eq!(
        runc.run(&["create", "--bundle", c.bundle_path(), &c.id])
            .status
            .code(),
        Some(1)
    );
    c.assert_clean();

    let c = Container::new(&rt, "noconfig", &["/bin/true"]);
    std::fs::remove_file(c.bundle.path().join("config.json")).unwrap();
    assert_fails_naming(
        &rt,
        &["run", "--bundle", c.bundle_path(), &c.id],
        c.bundle_path(),
    );
    c.assert_clean();

    let c = Container::new(&rt, "norootfs", &["/bin/true"]);
    std::fs::remove_dir_all(c.bundle.rootfs()).unwrap();
    assert_fails_naming(
        &rt,
        &["create", "--bundle", c.bundle_path(), &c.id],
        "rootfs",
    );
    c.assert_clean();

    // An executable that is not in the rootfs fails at create, after namespaces and cgroups
    // exist: those must be undone too.
    let c = Container::new(&rt, "noexe", &["/bin/no-such-binary"]);
    assert_fails_naming(
        &rt,
        &["run", "--bundle", c.bundle_path(), &c.id],
        "no-such-binary",
    );
    c.assert_clean();
}

#[test]
fn unknown_signal_and_bad_ids_are_rejected() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "badsig", &["/bin/sleep", "1000"]);
    c.create();
    assert_fails_naming(&rt, &["kill", &c.id, "SIGNOPE"], "SIGNOPE");
    assert_eq!(rt.state(&c.id)["status"], "created");
    c.finish();
    assert_fails_naming(&rt, &["state", "../etc"], "../etc");
    assert_fails_naming(
        &rt,
        &["create", "--bundle", "/nonexistent-polis-bundle", "a/b"],
        "a/b",
    );
}

#[test]
fn kill_of_a_stopped_container_is_a_clear_error() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "stopped", &["/bin/true"]);
    c.create();
    rt.ok(&["start", &c.id]);
    rt.wait_status(&c.id, "stopped");
    assert_fails_naming(&rt, &["kill", &c.id, "KILL"], "not running");
    c.finish();
}

#[test]
fn commands_work_from_a_deleted_working_directory() {
    let rt = Runtime::polis();
    let c = Container::started(&rt, "nocwd", &["/bin/sleep", "1000"]);
    let gone = tempfile::tempdir().unwrap();
    let gone_path = gone.path().to_path_buf();
    let mut cmd = rt.command();
    cmd.args(["exec", &c.id, "/bin/echo", "from-nowhere"]);
    // SAFETY: chdir and rmdir are async-signal-safe; the path outlives the child's exec.
    let cpath = std::ffi::CString::new(gone_path.to_str().unwrap()).unwrap();
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::chdir(cpath.as_ptr()) != 0 || libc::rmdir(cpath.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = polis_integration::runtime::run_captured(&mut cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(polis_integration::runtime::stdout(&o), "from-nowhere\n");
    drop(gone);
    c.finish();
}

/// A score below the caller's needs CAP_SYS_RESOURCE, which these machines lack (so does a
/// rootless or nested runtime): both runtimes refuse, and ours names the value, the file and
/// the container, not a bare "io error".
#[test]
fn a_refused_oom_score_adj_is_named() {
    let current: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let lowered = (current - 1).max(-1000);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    if lowered == current || cap_eff & (1 << CAP_SYS_RESOURCE) != 0 {
        eprintln!("skipped: this process may lower its OOM score, nothing is refused");
        return;
    }
    for rt in [Runtime::polis(), Runtime::runc()] {
        let c = Container::new(&rt, "oomadj", &["/bin/true"]);
        c.bundle
            .edit(|s| s["process"]["oomScoreAdj"] = lowered.into())
            .unwrap();
        let o = c.run();
        assert!(
            !o.status.success(),
            "{}: lowering the score worked",
            rt.name
        );
        if rt.name == "polis-runc" {
            let err = stderr(&o);
            for needle in [lowered.to_string().as_str(), "oom_score_adj", c.id.as_str()] {
                assert!(
                    err.contains(needle),
                    "error {err:?} does not name {needle:?}"
                );
            }
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
        c.finish();
    }
}

/// A container that cannot start fails with one line that names the container and the thing
/// at fault, as runc's do, without the library's plumbing ("exec process failed with error
/// error in executing process", a second "failed to create container", "youki").
#[test]
fn a_failed_start_is_one_line_naming_the_cause() {
    let rt = Runtime::polis();
    for (tag, needle, edit) in [
        (
            "nobin",
            "/no-such-binary",
            Box::new(|s: &mut serde_json::Value| {
                s["process"]["args"] = serde_json::json!(["/no-such-binary"]);
            }) as Box<dyn Fn(&mut serde_json::Value)>,
        ),
        (
            // a file bound over a directory: the kernel's bare EINVAL/ENOTDIR said nothing of
            // which mount it was (runc names source and destination)
            "fileondir",
            "/etc/hostname on /bin",
            Box::new(|s: &mut serde_json::Value| {
                s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                    "destination": "/bin", "type": "bind", "source": "/etc/hostname",
                    "options": ["rbind"]
                }));
            }),
        ),
        (
            "nosrc",
            "/no-such-source",
            Box::new(|s: &mut serde_json::Value| {
                s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                    "destination": "/x", "type": "bind", "source": "/no-such-source",
                    "options": ["rbind"]
                }));
            }),
        ),
    ] {
        let c = Container::new(&rt, tag, &["/bin/true"]);
        c.bundle.edit(|s| edit(s)).unwrap();
        let o = c.run();
        assert_eq!(o.status.code(), Some(1), "{tag}: {o:?}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{tag}: {err}");
        for want in [needle, c.id.as_str()] {
            assert!(err.contains(want), "{tag}: {err:?} does not name {want}");
        }
        for plumbing in ["youki", "exec process failed", "error in executing process"] {
            assert!(!err.contains(plumbing), "{tag}: {err}");
        }
        c.finish();
    }
}

/// The init is forked before its cgroups are filled and moved into them by pid (vendor patch
/// 042). When they cannot be filled (a CPU that does not exist), the start fails as runc's
/// does, with one line naming the file, and no process of the container is left behind (the
/// init, forked already, is killed before the error is reported).
#[test]
fn a_cgroup_that_cannot_be_filled_fails_the_start_and_leaves_no_process() {
    // The init is the runtime's child (a sibling of the intermediate process); when the
    // runtime exits, an init still alive comes to this process instead of PID 1.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    for rt in [Runtime::polis(), Runtime::runc()] {
        let c = Container::new(&rt, "badcpus", &["/bin/sleep", "1000"]);
        c.bundle
            .edit(|s| s["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": "4096"}))
            .unwrap();
        let o = c.run();
        assert_eq!(o.status.code(), Some(1), "{}: {o:?}", rt.name);
        if rt.name == "polis-runc" {
            let err = stderr(&o);
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            for want in ["cpuset.cpus", c.id.as_str()] {
                assert!(err.contains(want), "{err:?} does not name {want}");
            }
        }
        polis_integration::wait_until(
            &format!("{}: the processes it left to this one to exit", rt.name),
            std::time::Duration::from_secs(3),
            || orphans().is_empty(),
        );
        c.finish();
    }
}

/// This process's children that it did not start itself (reaped as they exit), by name.
fn orphans() -> Vec<String> {
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    let me = std::process::id().to_string();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its last ')'
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = tail.split_whitespace().nth(1);
        if ppid == Some(me.as_str()) {
            left.push(head.to_string() + ")");
        }
    }
    left
}
