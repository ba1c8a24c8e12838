//! polis-runc on a pure cgroup v2 host with systemd, against runc on the same bundles. These
//! machines are v1 hybrid, so this suite runs in the nested guest of `make test-v2`
//! (scripts/v2vm.sh); `make test` leaves it out. Every value is read back from the cgroup
//! files (or from systemd), never inferred from an exit code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use polis_integration::runtime::{both, run_captured, stderr, stdout, Container, Runtime};
use serde_json::{json, Value};

/// The suite proves nothing on a v1 host: say so instead of passing.
fn require_v2() {
    assert!(
        polis_integration::cgroup2_host(),
        "/sys/fs/cgroup is not cgroup2: this suite runs in the v2 guest (make test-v2)"
    );
}

fn cg_dir(cgroups_path: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(cgroups_path.trim_start_matches('/'))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn init_pid(rt: &Runtime, id: &str) -> i64 {
    rt.state(id)["pid"].as_i64().expect("state has a pid")
}

/// The major:minor of the block device under / (the guest's virtio disk).
fn root_block_device() -> (u64, u64) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a mount on /");
    let (maj, min) = line.split(' ').nth(2).unwrap().split_once(':').unwrap();
    (maj.parse().unwrap(), min.parse().unwrap())
}

const LIMITS: &[&str] = &[
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "memory.high",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.max",
];

/// cpu.weight from OCI's cpu.shares: polis-runc maps as runc >= 1.3.2 and crun >= 1.23 do
/// (1024 shares, v1's default, give 100, v2's default); runc 1.1.5, the reference here, maps
/// linearly (1024 gives 39, so a container with default shares weighed less than any systemd
/// service). A deliberate difference (README, "Known differences").
fn expected_cpu_weight(rt: &Runtime, shares: f64) -> String {
    if rt.name == "runc" {
        (1 + ((shares as u64 - 2) * 9999) / 262142).to_string()
    } else {
        let l = shares.log2();
        (10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64).to_string()
    }
}

/// The files both runtimes must write alike, and cpu.weight (checked per runtime).
fn split_weight(files: Vec<(String, String)>) -> (Vec<(String, String)>, String) {
    let (w, rest): (Vec<_>, Vec<_>) = files.into_iter().partition(|(f, _)| f == "cpu.weight");
    (rest, w[0].1.clone())
}

fn limit_files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = LIMITS
        .iter()
        .map(|f| (f.to_string(), read(dir, f)))
        .collect();
    // blkio weight goes to BFQ's file when that scheduler is there, else io.weight
    for f in ["io.bfq.weight", "io.weight"] {
        if dir.join(f).exists() {
            v.push((f.to_string(), read(dir, f)));
        }
    }
    v
}

#[test]
fn resources_are_written_to_the_v2_files_as_runc_writes_them() {
    require_v2();
    let (maj, min) = root_block_device();
    let mut seen = Vec::new();
    for rt in both() {
        let c = Container::new(&rt, "v2-res", &["sleep", "1000"]);
        c.bundle
            .edit(|s| {
                s["linux"]["resources"] = json!({
                    "devices": [{"allow": false, "access": "rwm"}],
                    "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
                    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                    "pids": {"limit": 64},
                    "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}]},
                    "unified": {"memory.high": "100663296"}
                });
            })
            .unwrap();
        c.create();
        rt.ok(&["start", &c.id]);
        let files = limit_files(&cg_dir(&c.bundle.cgroups_path));
        let get = |name: &str| files.iter().find(|(f, _)| f == name).unwrap().1.clone();
        assert_eq!(get("memory.max"), (64u64 << 20).to_string(), "{}", rt.name);
        // OCI's swap is memory+swap; v2's file is swap alone
        assert_eq!(
            get("memory.swap.max"),
            (32u64 << 20).to_string(),
            "{}",
            rt.name
        );
        assert_eq!(get("memory.low"), (32u64 << 20).to_string(), "{}", rt.name);
        assert_eq!(get("memory.high"), "100663296", "{}", rt.name);
        assert_eq!(get("cpu.max"), "50000 100000", "{}", rt.name);
        assert_eq!(get("pids.max"), "64", "{}", rt.name);
        assert_eq!(get("cpuset.cpus"), "0", "{}", rt.name);
        assert!(
            get("io.max").starts_with(&format!("{maj}:{min} rbps=1048576")),
            "{}: io.max {}",
            rt.name,
            get("io.max")
        );
        let (files, weight) = split_weight(files);
        assert_eq!(
            weight,
            expected_cpu_weight(&rt, 512.0),
            "{}: cpu.weight",
            rt.name
        );
        seen.push(files);
        c.finish();
    }
    assert_eq!(
        seen[0], seen[1],
        "polis-runc and runc wrote different limits"
    );
}

#[test]
fn update_rewrites_each_v2_file_as_runc_does() {
    require_v2();
    let mut seen = Vec::new();
    for rt in both() {
        let c = Container::started(&rt, "v2-upd", &["sleep", "1000"]);
        let dir = cg_dir(&c.bundle.cgroups_path);
        rt.ok(&[
            "update",
            "--memory",
            "80M",
            "--memory-swap",
            "120M",
            "--memory-reservation",
            "40M",
            "--cpu-share",
            "256",
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "50000",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "33",
            &c.id,
        ]);
        let files = limit_files(&dir);
        let get = |name: &str| files.iter().find(|(f, _)| f == name).unwrap().1.clone();
        assert_eq!(get("memory.max"), (80u64 << 20).to_string(), "{}", rt.name);
        assert_eq!(
            get("memory.swap.max"),
            (40u64 << 20).to_string(),
            "{}",
            rt.name
        );
        assert_eq!(get("memory.low"), (40u64 << 20).to_string(), "{}", rt.name);
        assert_eq!(get("cpu.max"), "20000 50000", "{}", rt.name);
        assert_eq!(get("pids.max"), "33", "{}", rt.name);
        // a JSON update with -1: unlimited again
        let r = json!({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}});
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), r.to_string()).unwrap();
        rt.ok(&["update", "-r", f.path().to_str().unwrap(), &c.id]);
        assert_eq!(read(&dir, "memory.max"), "max", "{}", rt.name);
        assert_eq!(read(&dir, "pids.max"), "max", "{}", rt.name);
        let (files, weight) = split_weight(files);
        assert_eq!(
            weight,
            expected_cpu_weight(&rt, 256.0),
            "{}: cpu.weight",
            rt.name
        );
        seen.push(files);
        c.finish();
    }
    assert_eq!(seen[0], seen[1], "polis-runc and runc updated differently");
}

#[test]
fn events_stats_read_the_v2_files() {
    require_v2();
    for rt in both() {
        let c = Container::started(&rt, "v2-ev", &["sleep", "1000"]);
        let dir = cg_dir(&c.bundle.cgroups_path);
        let ev: Value = serde_json::from_str(&rt.ok(&["events", "--stats", &c.id])).unwrap();
        let d = &ev["data"];
        assert_eq!(ev["type"], "stats", "{}", rt.name);
        assert_eq!(
            d["pids"]["current"].as_u64(),
            Some(read(&dir, "pids.current").parse().unwrap()),
            "{}: {ev}",
            rt.name
        );
        assert!(
            d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
            "{}: {ev}",
            rt.name
        );
        assert!(
            d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
            "{}: {ev}",
            rt.name
        );
        let anon: u64 = read(&dir, "memory.stat")
            .lines()
            .find_map(|l| l.strip_prefix("anon "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            d["memory"]["raw"]["anon"].as_u64(),
            Some(anon),
            "{}",
            rt.name
        );
        c.finish();
    }
}

#[test]
fn pause_and_resume_go_through_cgroup_freeze() {
    require_v2();
    for rt in both() {
        let c = Container::started(&rt, "v2-frz", &["sleep", "1000"]);
        let dir = cg_dir(&c.bundle.cgroups_path);
        rt.ok(&["pause", &c.id]);
        assert_eq!(read(&dir, "cgroup.freeze"), "1", "{}", rt.name);
        assert!(
            read(&dir, "cgroup.events").contains("frozen 1"),
            "{}",
            rt.name
        );
        assert_eq!(rt.state(&c.id)["status"], "paused", "{}", rt.name);
        let pid = init_pid(&rt, &c.id);
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(st.contains("State:\tS"), "{}: {st}", rt.name);
        rt.ok(&["resume", &c.id]);
        assert_eq!(read(&dir, "cgroup.freeze"), "0", "{}", rt.name);
        assert!(
            read(&dir, "cgroup.events").contains("frozen 0"),
            "{}",
            rt.name
        );
        assert_eq!(rt.state(&c.id)["status"], "running", "{}", rt.name);
        c.finish();
    }
}

/// The v2 device controller is an eBPF program. The guest's own root disk is the device: any
/// node may be made (runc's default allows mknod of every device), but it may be opened only
/// with a rule that allows it, and then only for reading.
#[test]
fn device_rules_are_enforced_by_the_ebpf_program() {
    require_v2();
    let (maj, min) = root_block_device();
    let script = format!(
        "mknod /tmp/disk b {maj} {min} && echo made; \
         head -c 512 /tmp/disk >/dev/null 2>&1 && echo read || echo read-denied; \
         head -c 1 /dev/null && echo null-ok; true"
    );
    let mut outs = Vec::new();
    for rt in both() {
        for allowed in [false, true] {
            let (code, out, err) = polis_integration::runtime::run_with(
                &rt,
                "v2-dev",
                &["sh", "-c", &script],
                |s, _| {
                    for set in ["bounding", "effective", "permitted"] {
                        s["process"]["capabilities"][set] = json!(["CAP_MKNOD"]);
                    }
                    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
                    if allowed {
                        rules.push(json!({"allow": true, "type": "b", "major": maj, "minor": min, "access": "r"}));
                    }
                    s["linux"]["resources"]["devices"] = json!(rules);
                },
            );
            assert_eq!(code, Some(0), "{}: {err}", rt.name);
            let want = if allowed { "read" } else { "read-denied" };
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(
                lines,
                ["made", want, "null-ok"],
                "{} (allowed: {allowed}): {err}",
                rt.name
            );
            outs.push(out);
        }
    }
    assert_eq!(outs[..2], outs[2..]);
}

/// Without cgroupsPath, runc makes `/<id>` (not libcontainer's `:youki:<id>`), and exec'd
/// processes join it.
#[test]
fn default_cgroup_path_and_exec_join_it() {
    require_v2();
    for rt in both() {
        let c = Container::new(&rt, "v2-def", &["sleep", "1000"]);
        c.bundle
            .edit(|s| {
                s["linux"].as_object_mut().unwrap().remove("cgroupsPath");
            })
            .unwrap();
        c.create();
        rt.ok(&["start", &c.id]);
        let pid = init_pid(&rt, &c.id);
        // on v2, runc's default is <id> under the parent of the caller's own cgroup
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = Path::new(own.trim().strip_prefix("0::").unwrap());
        let parent = own.parent().unwrap_or(own);
        let rel = parent.join(&c.id);
        let want = format!("0::{}", rel.display());
        let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(init_cg.trim(), want, "{}", rt.name);
        let exec_cg = rt.ok(&["exec", &c.id, "cat", "/proc/self/cgroup"]);
        assert_eq!(exec_cg.trim(), want, "{}: exec", rt.name);
        let _ = rt.run(&["delete", "--force", &c.id]);
        let dir = cg_dir(rel.to_str().unwrap());
        assert!(!dir.exists(), "{}: {} left", rt.name, dir.display());
    }
}

fn systemctl(args: &[&str]) -> String {
    stdout(&run_captured(Command::new("systemctl").args(args)))
}

fn wait_gone(what: &str, mut gone: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gone() {
        assert!(Instant::now() < deadline, "{what} is still there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--systemd-cgroup` (containerd's SystemdCgroup = true): a transient scope under the given
/// slice, made over D-Bus, with the limits as its properties, gone after delete.
#[test]
fn systemd_driver_makes_a_transient_scope_with_the_limits() {
    require_v2();
    assert!(
        Path::new("/run/systemd/system").exists(),
        "systemd is not PID 1: this suite runs in the v2 guest (make test-v2)"
    );
    let mut seen = Vec::new();
    for rt in both() {
        let c = Container::new(&rt, "v2-sd", &["sleep", "1000"]);
        let name = c.id.clone();
        let prefix = if rt.name == "runc" { "rcref" } else { "polis" };
        c.bundle
            .edit(|s| {
                s["linux"]["cgroupsPath"] = json!(format!("system.slice:{prefix}:{name}"));
                s["linux"]["resources"]["memory"] = json!({"limit": 48 << 20});
                s["linux"]["resources"]["pids"] = json!({"limit": 21});
                s["linux"]["resources"]["cpu"] = json!({"quota": 25000, "period": 100000});
            })
            .unwrap();
        let bundle = c.bundle_path().to_string();
        let o = run_captured(rt.command().args([
            "--systemd-cgroup",
            "create",
            "--bundle",
            &bundle,
            &c.id,
        ]));
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        let o = run_captured(rt.command().args(["--systemd-cgroup", "start", &c.id]));
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        let unit = format!("{prefix}-{name}.scope");
        let props = systemctl(&[
            "show",
            &unit,
            "-p",
            "ActiveState,MemoryMax,TasksMax,CPUQuotaPerSecUSec,Slice",
        ]);
        let pid = init_pid(&rt, &c.id);
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(cg.trim(), format!("0::/system.slice/{unit}"), "{}", rt.name);
        let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
        assert_eq!(
            read(&dir, "memory.max"),
            (48u64 << 20).to_string(),
            "{}",
            rt.name
        );
        assert_eq!(read(&dir, "pids.max"), "21", "{}", rt.name);
        assert_eq!(read(&dir, "cpu.max"), "25000 100000", "{}", rt.name);
        for want in [
            "ActiveState=active",
            &format!("MemoryMax={}", 48u64 << 20),
            "TasksMax=21",
            "CPUQuotaPerSecUSec=250ms",
            "Slice=system.slice",
        ] {
            assert!(props.contains(want), "{}: {want} not in {props}", rt.name);
        }
        // the same id again fails while the first one lives
        let again = run_captured(rt.command().args([
            "--systemd-cgroup",
            "create",
            "--bundle",
            &bundle,
            &c.id,
        ]));
        assert!(!again.status.success(), "{}: second create", rt.name);
        if rt.name == "polis-runc" {
            // Another state root, the same unit: runc 1.1.5 joins the live scope (two
            // containers in one cgroup, each deleting it); polis-runc refuses, naming it.
            let other = Runtime::polis();
            let o = run_captured(other.command().args([
                "--systemd-cgroup",
                "create",
                "--bundle",
                &bundle,
                &c.id,
            ]));
            let err = stderr(&o);
            assert!(!o.status.success(), "a second runtime joined {unit}");
            assert!(err.contains(&unit), "error does not name {unit}: {err}");
            assert!(
                other.run(&["state", &c.id]).status.code() != Some(0),
                "the refused create left a container behind"
            );
        }
        let o = run_captured(
            rt.command()
                .args(["--systemd-cgroup", "delete", "--force", &c.id]),
        );
        assert!(o.status.success(), "{}: {}", rt.name, stderr(&o));
        wait_gone(&unit, || {
            !systemctl(&["show", &unit, "-p", "LoadState"]).contains("LoadState=loaded")
        });
        wait_gone(&dir.display().to_string(), || !dir.exists());
        seen.push(props.replace(prefix, "PREFIX").replace(&name, "NAME"));
    }
    assert_eq!(seen[0], seen[1], "polis-runc's scope differs from runc's");
}

/// With no bus to reach systemd, the error names the bus, and nothing is left behind.
#[test]
fn systemd_driver_without_a_bus_fails_naming_it() {
    require_v2();
    let rt = Runtime::polis();
    let c = Container::new(&rt, "v2-nobus", &["true"]);
    c.bundle
        .edit(|s| {
            s["linux"]["cgroupsPath"] = json!(format!("system.slice:polis:{}", c.id));
        })
        .unwrap();
    // a private mount namespace where the system bus and systemd's private socket are gone
    let script = format!(
        "mount -t tmpfs none /run/dbus && mount -t tmpfs none /run/systemd && \
         exec {} --root {} --systemd-cgroup run --bundle {} {}",
        rt.bin.display(),
        rt.root().display(),
        c.bundle_path(),
        c.id
    );
    let o = run_captured(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let err = stderr(&o);
    assert!(!o.status.success(), "ran without systemd: {err}");
    assert!(
        err.contains("bus") || err.contains("dbus") || err.contains("D-Bus"),
        "error does not name the bus: {err}"
    );
    assert!(err.lines().count() <= 2, "not one clear line: {err}");
    c.assert_clean();
}
