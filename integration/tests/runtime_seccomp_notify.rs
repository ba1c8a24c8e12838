//! SCMP_ACT_NOTIFY with listenerPath: polis-runc hands the seccomp notify fd and the container
//! state to an agent, which answers the container's trapped syscall itself.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use polis_integration::runtime::{stderr, stdout, Container, Runtime};
use serde_json::json;

/// Receives the state message and the notify fd the runtime sends to the listener.
fn receive(listener: &UnixListener) -> (serde_json::Value, OwnedFd) {
    let (stream, _) = listener.accept().unwrap();
    let (bytes, fd) = polis_integration::runtime::recv_fd(&stream);
    (serde_json::from_slice(&bytes).expect("state json"), fd)
}

/// Answers one notification with `errno` (the agent's decision, not the kernel's).
fn answer_one(fd: &OwnedFd, errno: i32) -> i32 {
    // SAFETY: zeroed structs of the kernel's layout, ioctls on a seccomp notify fd we own.
    unsafe {
        let mut req: libc::seccomp_notif = std::mem::zeroed();
        assert_eq!(
            libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
        resp.id = req.id;
        resp.error = -errno;
        assert_eq!(
            libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        req.data.nr
    }
}

#[test]
fn notify_fd_reaches_the_listener_and_its_answer_reaches_the_container() {
    let rt = Runtime::polis();
    let c = Container::new(&rt, "notify", &["/bin/mkdir", "/tmp/asked"]);
    let sock = c.bundle.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    c.bundle
        .edit(|s| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": sock.to_str().unwrap(),
                "listenerMetadata": "polis-test",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            });
        })
        .unwrap();
    let id = c.id.clone();
    let agent = std::thread::spawn(move || {
        let (state, fd) = receive(&listener);
        let nr = answer_one(&fd, libc::EROFS);
        (state, nr)
    });
    let o = c.run();
    let (state, nr) = agent.join().unwrap();
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    assert_eq!(state["metadata"], "polis-test", "{state}");
    assert!(
        state["fds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "seccompFd"),
        "{state}"
    );
    assert!(
        nr == libc::SYS_mkdir as i32 || nr == libc::SYS_mkdirat as i32,
        "syscall {nr}"
    );
    assert_eq!(o.status.code(), Some(1), "{} {}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!c.bundle.rootfs().join("tmp/asked").exists());
    c.finish();
}
