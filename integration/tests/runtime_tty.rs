//! Terminals: `run` in the foreground owning the pty (through `script`, since CI has no tty),
//! and `create --console-socket` handing the pty master to a caller, as containerd's shim does.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::Command;

use polis_integration::runtime::{run_captured, stderr, stdout, Container, Runtime};

#[test]
fn foreground_run_with_a_terminal() {
    let script = polis_integration::require_tool("script");
    let rt = Runtime::polis();
    let c = Container::new(
        &rt,
        "tty",
        &[
            "/bin/sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 3",
        ],
    );
    c.bundle
        .edit(|s| s["process"]["terminal"] = true.into())
        .unwrap();
    let inner = format!(
        "{} --root {} run --bundle {} {}",
        rt.bin.display(),
        rt.root().display(),
        c.bundle_path(),
        c.id
    );
    let o = run_captured(Command::new(script).args(["-qec", &inner, "/dev/null"]));
    assert_eq!(o.status.code(), Some(3), "{} {}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("on-a-tty"), "{}", stdout(&o));
    c.finish();
}

/// A state root deeper than a unix socket path may be long (107 bytes), as containerd's and
/// Kubernetes' are: the foreground run's own console socket must still work, and go away.
#[test]
fn foreground_run_with_a_terminal_under_a_deep_root() {
    let script = polis_integration::require_tool("script");
    let rt = Runtime::polis();
    let c = Container::new(
        &rt,
        "ttydeep",
        &["/bin/sh", "-c", "tty >/dev/null && echo deep-tty"],
    );
    c.bundle
        .edit(|s| s["process"]["terminal"] = true.into())
        .unwrap();
    let deep = rt.root().join("d".repeat(100)).join("e".repeat(100));
    std::fs::create_dir_all(&deep).unwrap();
    let inner = format!(
        "{} --root {} run --bundle {} {}",
        rt.bin.display(),
        deep.display(),
        c.bundle_path(),
        c.id
    );
    let o = run_captured(Command::new(script).args(["-qec", &inner, "/dev/null"]));
    assert_eq!(o.status.code(), Some(0), "{} {}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("deep-tty"), "{}", stdout(&o));
    let left: Vec<_> = std::fs::read_dir(&deep).unwrap().flatten().collect();
    assert!(left.is_empty(), "left under the root: {left:?}");
    c.finish();
}

#[test]
fn create_hands_the_pty_master_to_the_console_socket() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "consock", &["/bin/sh", "-c", "tty; echo via-console"]);
    c.bundle
        .edit(|s| s["process"]["terminal"] = true.into())
        .unwrap();
    let sock = c.bundle.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    rt.ok(&[
        "create",
        "--bundle",
        c.bundle_path(),
        "--console-socket",
        sock.to_str().unwrap(),
        &c.id,
    ]);
    let (stream, _) = listener.accept().unwrap();
    let (_, master) = polis_integration::runtime::recv_fd(&stream);
    rt.ok(&["start", &c.id]);
    let mut out = String::new();
    let mut f = std::fs::File::from(master);
    // Reading the master ends with EIO once the container side closes.
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
        if out.contains("via-console") {
            break;
        }
    }
    assert!(out.contains("via-console"), "{out:?}");
    assert!(out.contains("/dev/"), "{out:?}");
    rt.wait_status(&c.id, "stopped");
    c.finish();
}

#[test]
fn exec_with_a_terminal_in_the_foreground() {
    let script = polis_integration::require_tool("script");
    let rt = Runtime::polis();
    let c = Container::started(&rt, "exectty", &["/bin/sleep", "1000"]);
    let inner = format!(
        "{} --root {} exec -t {} /bin/sh -c '[ -t 0 ] && echo exec-on-tty; exit 4'",
        rt.bin.display(),
        rt.root().display(),
        c.id
    );
    let o = run_captured(Command::new(script).args(["-qec", &inner, "/dev/null"]));
    assert_eq!(o.status.code(), Some(4), "{} {}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("exec-on-tty"), "{}", stdout(&o));
    c.finish();
}

/// `--console-socket` for a process without a terminal: runc 1.1.5 refuses it ("cannot use
/// console socket if runc will not detach or allocate tty"), and so does polis-runc, with a
/// message that says which setting is at odds, and nothing left behind.
#[test]
fn a_console_socket_without_a_terminal_is_refused_as_runc_does() {
    for rt in [Runtime::polis(), Runtime::runc()] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("console.sock");
        let _listener = UnixListener::bind(&sock).unwrap();
        let c = Container::new(&rt, "nottysock", &["/bin/sleep", "300"]);
        let o = rt.run(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            c.bundle_path(),
            &c.id,
        ]);
        assert_eq!(o.status.code(), Some(1), "{}: {o:?}", rt.name);
        let err = stderr(&o);
        assert!(err.contains("console"), "{}: {err}", rt.name);
        if rt.name == "polis-runc" {
            assert!(
                err.contains("process.terminal") && !err.contains("youki"),
                "{err}"
            );
        }
        c.assert_clean();
    }
}
