//! containerd-shim-polis-v2's runtime options, as a CRI runtime handler or ctr passes them:
//! a config file named by `runtimeoptions.v1.Options.ConfigPath` (ctr --runtime-config-path)
//! that moves the shim into a cgroup and turns off the container's session keyring, and a bad
//! config file that fails the container with the file's name and leaves nothing behind.

use std::path::PathBuf;
use std::time::Duration;

use polis_integration::containerd::{wait_until, Containerd, IMAGE};
use polis_integration::leaks::cgroup_dirs;

const RUNTIME: &str = "io.containerd.polis.v2";

/// The shim cgroup of one test, made in the memory and pids hierarchies (v1) or the unified
/// one (v2); removed on drop.
struct ShimCgroup {
    path: String,
    dirs: Vec<PathBuf>,
}

/// The /proc/PID/cgroup lines a process in the shim cgroup `path` has.
fn shim_cgroup_lines(path: &str) -> Vec<String> {
    if polis_integration::cgroup2_host() {
        vec![format!("0::{path}\n")]
    } else {
        ["memory", "pids"]
            .iter()
            .map(|h| format!(":{h}:{path}\n"))
            .collect()
    }
}

impl ShimCgroup {
    fn new(path: String) -> Self {
        let dirs: Vec<PathBuf> = if polis_integration::cgroup2_host() {
            vec![PathBuf::from(format!("/sys/fs/cgroup{path}"))]
        } else {
            ["memory", "pids"]
                .iter()
                .map(|h| PathBuf::from(format!("/sys/fs/cgroup/{h}{path}")))
                .collect()
        };
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        Self { path, dirs }
    }
}

impl Drop for ShimCgroup {
    fn drop(&mut self) {
        // A shim killed a moment ago (a failed test) may still be leaving the cgroup.
        for _ in 0..50 {
            for d in &self.dirs {
                let _ = std::fs::remove_dir(d);
            }
            if self.dirs.iter().all(|d| !d.exists()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let left: Vec<String> = cgroup_dirs(&self.path)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| d.display().to_string())
            .collect();
        if !std::thread::panicking() {
            assert!(left.is_empty(), "shim cgroup left: {left:?}");
        }
    }
}

/// Whether the host sees a session keyring made for container `id` (containerd's default spec
/// masks /proc/keys inside the container, so this looks from outside while it runs).
fn has_own_keyring(id: &str) -> bool {
    let own = format!("_ses.{id}:");
    std::fs::read_to_string("/proc/keys")
        .unwrap()
        .lines()
        .any(|l| l.contains(&own))
}

/// A detached `sleep 300` whose shim reads the config file `cfg`.
fn sleep_with_config(ctrd: &Containerd, id: &str, cfg: &std::path::Path) {
    let cfg = cfg.to_str().unwrap();
    let args = [
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        cfg,
    ];
    ctrd.ctr_ok(&[&args[..], &[IMAGE, id, "sleep", "300"]].concat());
}

fn stop(ctrd: &Containerd, id: &str) {
    ctrd.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    wait_until("the task to stop", Duration::from_secs(20), || {
        ctrd.ctr_ok(&["task", "ls"])
            .lines()
            .any(|l| l.starts_with(id) && l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["task", "delete", id]);
    ctrd.ctr_ok(&["containers", "rm", id]);
}

#[test]
fn config_file_from_cri_options_places_the_shim_and_drops_the_keyring() {
    // Declared first so it is dropped last, after `ctrd` has killed any shim left in it.
    let cg: ShimCgroup;
    let ctrd = Containerd::start("options");
    cg = ShimCgroup::new(format!("/{}-shims", ctrd.id("cg")));
    let cfg = ctrd.dir().join("shim.json");
    std::fs::write(
        &cfg,
        format!(r#"{{"noNewKeyring": true, "shimCgroup": "{}"}}"#, cg.path),
    )
    .unwrap();
    let id = ctrd.id("configured");
    sleep_with_config(&ctrd, &id, &cfg);
    let shims = ctrd.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", shims[0])).unwrap();
    for want in shim_cgroup_lines(&cg.path) {
        assert!(cgroups.contains(&want), "shim not in {want:?}: {cgroups}");
    }
    // One point above containerd, so the OOM killer takes the shim before containerd.
    let score = |pid: u32| -> i32 {
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(score(shims[0] as u32), (score(ctrd.pid()) + 1).min(1000));
    assert!(!has_own_keyring(&id), "{id} got a keyring of its own");

    // The same without the config file: the container gets its own session keyring, so the
    // check above can fail.
    let plain = ctrd.id("plain");
    ctrd.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        &plain,
        "sleep",
        "300",
    ]);
    assert!(has_own_keyring(&plain), "{plain} got no keyring of its own");

    stop(&ctrd, &id);
    stop(&ctrd, &plain);
    ctrd.clean_and_check();
}

#[test]
fn bad_config_file_fails_the_container_naming_the_file() {
    let ctrd = Containerd::start("badopts");
    let cfg = ctrd.dir().join("bad-shim.json");
    std::fs::write(&cfg, r#"{"noNewKeyrin": true}"#).unwrap();
    let id = ctrd.id("refused");
    let out = ctrd.ctr(&[
        "run",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        cfg.to_str().unwrap(),
        IMAGE,
        &id,
        "true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-shim.json") && err.contains("noNewKeyrin"),
        "{err}"
    );
    let _ = ctrd.ctr(&["containers", "rm", &id]);
    ctrd.clean_and_check();
}

#[test]
fn io_owner_from_config_file_owns_the_stdio_of_init_and_execs() {
    let ctrd = Containerd::start("ioowner");
    let cfg = ctrd.dir().join("io-shim.json");
    std::fs::write(&cfg, r#"{"ioUid": 4242, "ioGid": 4343}"#).unwrap();
    let owners = "stat -L -c %u:%g /proc/self/fd/1 /proc/self/fd/2";
    let run = |id: &str, with_config: bool| -> String {
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
        if with_config {
            args.extend(["--runtime-config-path", cfg.to_str().unwrap()]);
        }
        args.extend([IMAGE, id, "sh", "-c", owners]);
        ctrd.ctr_ok(&args)
    };
    let owned = run(&ctrd.id("owned"), true);
    assert_eq!(
        owned.split_whitespace().collect::<Vec<_>>(),
        ["4242:4343"; 2]
    );
    // Without IoUid/IoGid the stdio stays containerd's, so the check above can fail.
    let plain = run(&ctrd.id("plain"), false);
    assert_eq!(plain.split_whitespace().collect::<Vec<_>>(), ["0:0"; 2]);

    let id = ctrd.id("execs");
    sleep_with_config(&ctrd, &id, &cfg);
    let exec = ctrd.ctr_ok(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", owners]);
    assert_eq!(
        exec.split_whitespace().collect::<Vec<_>>(),
        ["4242:4343"; 2]
    );
    stop(&ctrd, &id);
    ctrd.clean_and_check();
}

/// containerd 2.x runs `containerd-shim-polis-v2 -info` (runtime options on stdin) and checks
/// specs against the `features` it gets back: the runtime's own `features` document.
#[test]
fn info_describes_the_runtime_with_its_features() {
    let shim = polis_integration::polis_bin("containerd-shim-polis-v2");
    let runtime = polis_integration::polis_bin("polis-runc");
    let out = std::process::Command::new(&shim)
        .arg("-info")
        .env("POLIS_RUNC", &runtime)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8_lossy(&out.stdout);
    let features = std::process::Command::new(&runtime)
        .arg("features")
        .output()
        .unwrap();
    let features = String::from_utf8(features.stdout).unwrap();
    assert!(features.contains("ociVersionMax"), "{features}");
    for want in [
        RUNTIME,
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features",
        features.trim(),
    ] {
        assert!(
            info.contains(want),
            "{want:?} not in the runtime info: {info:?}"
        );
    }

    // A runtime without `features` leaves them out; the info is still given.
    let out = std::process::Command::new(&shim)
        .arg("-info")
        .env("POLIS_RUNC", "/bin/false")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains(RUNTIME) && !info.contains("features/Features"),
        "{info:?}"
    );
}

/// `--help` prints the usage on stdout and exits 0; an unknown flag is named, with the usage,
/// on stderr and exit status 2 (Go's flag package, which containerd's shims use).
#[test]
fn shim_help_and_unknown_flags() {
    let shim = polis_integration::polis_bin("containerd-shim-polis-v2");
    let o = std::process::Command::new(&shim)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: containerd-shim-polis-v2"));
    let o = std::process::Command::new(&shim)
        .arg("-bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("-bogus") && err.contains("Usage:"), "{err}");
}
