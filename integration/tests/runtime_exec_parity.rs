//! What confines an exec'd process is what confines the container's init, and polis-runc
//! gives both what runc gives on the same bundle: seccomp, no_new_privs, the five capability
//! sets, every cgroup, every namespace, ids, groups, rlimits and the LSM label. An exec that
//! escaped the container's seccomp filter is how kubectl/crictl/ctr exec broke confinement.

use polis_integration::runtime::{stderr, stdout, Container, Runtime};
use serde_json::json;

/// Prints the confinement of the process whose pid is $1, one normalised line per fact.
const PROBE: &str = r#"p=$1
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/$p/status | tr -s '\t ' ' '
sed 's/  */ /g; s/^/limit /' /proc/$p/limits
sed 's/^/cgroup /' /proc/$p/cgroup
for n in /proc/$p/ns/*; do echo "ns ${n##*/} $(readlink $n)"; done
for a in current exec; do [ -r /proc/$p/attr/$a ] && echo "attr $a $(cat /proc/$p/attr/$a 2>/dev/null)"; done
exit 0
"#;

/// A container with a seccomp profile, extra groups and rlimits, running `sleep`.
fn confined(rt: &Runtime, no_new_privs: bool) -> Container<'_> {
    let c = Container::new(rt, "parity", &["/bin/sleep", "300"]);
    std::fs::write(c.bundle.rootfs().join("probe"), PROBE).unwrap();
    c.bundle
        .edit(|s| {
            s["process"]["noNewPrivileges"] = no_new_privs.into();
            s["process"]["user"]["additionalGids"] = json!([10, 20]);
            s["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512},
                {"type": "RLIMIT_NPROC", "hard": 333, "soft": 222}
            ]);
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
            });
        })
        .unwrap();
    c.create();
    rt.ok(&["start", &c.id]);
    rt.wait_status(&c.id, "running");
    c
}

/// The probe's lines for the init (pid 1) and for the exec itself, with what differs between
/// containers by construction (the cgroups path, namespace inode numbers) made comparable.
fn probe(rt: &Runtime, c: &Container) -> (Vec<String>, Vec<String>) {
    let run = |target: &str| -> Vec<String> {
        let o = rt.run(&[
            "exec",
            &c.id,
            "/bin/sh",
            "-c",
            &format!("sh /probe {target}"),
        ]);
        assert!(o.status.success(), "{}: probe: {}", rt.name, stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| normalise(l, &c.bundle.cgroups_path))
            .collect()
    };
    (run("1"), run("$$"))
}

/// The cgroups path becomes `<cg>`; a namespace link becomes `host` or `own` (whether it is
/// the test's own namespace), since inode numbers differ from container to container.
fn normalise(line: &str, cgroups_path: &str) -> String {
    let line = line.replace(cgroups_path, "<cg>");
    if let Some(rest) = line.strip_prefix("ns ") {
        let (kind, link) = rest.split_once(' ').unwrap_or((rest, ""));
        let ours = std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let whose = if link == ours { "host" } else { "own" };
        return format!("ns {kind} {whose}");
    }
    line
}

fn parity(no_new_privs: bool) {
    let mut seen = Vec::new();
    for rt in [Runtime::polis(), Runtime::runc()] {
        let c = confined(&rt, no_new_privs);
        let (init, exec) = probe(&rt, &c);
        assert!(
            init.iter().any(|l| l == "Seccomp: 2"),
            "{}: the init is not filtered: {init:#?}",
            rt.name
        );
        if rt.name == "runc" {
            // runc 1.1.5 sometimes leaves an exec with the NOFILE soft limit Go raised for
            // runc itself (fixed in runc 1.1.6): its init is the reference, compared below
            let differ: Vec<_> = init
                .iter()
                .zip(&exec)
                .filter(|(i, e)| i != e && !i.starts_with("limit Max open files"))
                .collect();
            assert!(
                differ.is_empty(),
                "runc: the exec differs from the init: {differ:?}"
            );
        } else {
            assert_eq!(init, exec, "{}: the exec differs from the init", rt.name);
        }
        // and the filter really acts on the exec
        let o = rt.run(&["exec", &c.id, "/bin/mkdir", "/tmp/denied"]);
        assert_eq!(o.status.code(), Some(1), "{}: {o:?}", rt.name);
        assert!(
            stderr(&o).contains("Permission denied"),
            "{}: {}",
            rt.name,
            stderr(&o)
        );
        c.finish();
        seen.push((rt.name, init, exec));
    }
    // polis-runc's exec against runc's init: what runc gives a container's processes
    let (polis, runc) = (&seen[0].2, &seen[1].1);
    let only_polis: Vec<_> = polis.iter().filter(|l| !runc.contains(l)).collect();
    let only_runc: Vec<_> = runc.iter().filter(|l| !polis.contains(l)).collect();
    assert!(
        only_polis.is_empty() && only_runc.is_empty(),
        "polis-runc and runc confine an exec differently\nonly polis-runc: {only_polis:#?}\nonly runc: {only_runc:#?}"
    );
}

#[test]
fn exec_is_confined_as_the_init_and_as_runc_does_with_no_new_privs() {
    parity(true);
}

#[test]
fn exec_is_confined_as_the_init_and_as_runc_does_without_no_new_privs() {
    parity(false);
}

/// A pause image has no Env: runc runs an absolute args[0] without PATH, and refuses a bare
/// name it cannot look up.
#[test]
fn an_absolute_program_runs_without_path_in_env() {
    for rt in [Runtime::polis(), Runtime::runc()] {
        let c = Container::new(&rt, "nopath", &["/bin/echo", "no-path-needed"]);
        c.bundle
            .edit(|s| {
                s["process"].as_object_mut().unwrap().remove("env");
            })
            .unwrap();
        let o = c.run();
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        assert_eq!(stdout(&o).trim(), "no-path-needed", "{}", rt.name);
        c.finish();

        let c = Container::new(&rt, "nopath-bare", &["echo", "x"]);
        c.bundle
            .edit(|s| {
                s["process"]["env"] = json!(["TERM=xterm"]);
            })
            .unwrap();
        let o = c.run();
        assert!(
            !o.status.success(),
            "{}: a bare name ran without PATH",
            rt.name
        );
        if rt.name == "polis-runc" {
            assert!(stderr(&o).contains("PATH"), "{}", stderr(&o));
        }
        c.finish();
    }
}

/// Without `linux.cgroupsPath`, the container's cgroup is the one runc makes (`/<id>` when the
/// caller is in the root cgroup, as here), in every hierarchy, and it goes with the container.
#[test]
fn the_default_cgroup_is_runcs() {
    let mut seen = Vec::new();
    for rt in [Runtime::polis(), Runtime::runc()] {
        let c = Container::new(&rt, "nocgpath", &["/bin/sleep", "300"]);
        c.bundle
            .edit(|s| {
                s["linux"].as_object_mut().unwrap().remove("cgroupsPath");
            })
            .unwrap();
        c.create();
        let pid = rt.state(&c.id)["pid"].as_i64().unwrap();
        let lines: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .lines()
            .map(|l| l.replace(&c.id, "<id>"))
            .collect();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        if own.lines().any(|l| !l.ends_with(":/")) {
            eprintln!("skipped: this test runs outside the root cgroup, where runc nests");
            return;
        }
        rt.ok(&["delete", "--force", &c.id]);
        let left: Vec<_> = polis_integration::leaks::cgroup_dirs(&format!("/{}", c.id))
            .into_iter()
            .filter(|d| d.exists())
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", rt.name);
        seen.push((rt.name, lines));
    }
    assert!(
        seen[0].1.iter().all(|l| l.ends_with(":/<id>")),
        "polis-runc: {:?}",
        seen[0].1
    );
    assert_eq!(seen[0].1, seen[1].1, "polis-runc and runc differ");
}
