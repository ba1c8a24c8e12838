//! Descriptors passed over unix sockets (SCM_RIGHTS), as the console-socket and seccomp-agent
//! protocols pass them.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Receives one message carrying a descriptor: the bytes that came with it (at most 64 KiB)
/// and the first descriptor, close-on-exec. Any further descriptors in the message are closed.
/// A message without one is an error; on a non-blocking socket with nothing to read the error
/// is `WouldBlock`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<(Vec<u8>, OwnedFd)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    let mut first = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed these fds in our table; nobody else owns
                // them, and each is wrapped once (those after the first are closed on drop).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    buf.truncate(n);
    let fd = first.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the message carried no file descriptor",
        )
    })?;
    Ok((buf, fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::{IoSlice, Read};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_passed_descriptor_arrives_with_its_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        let fds = [w.as_raw_fd()];
        let iov = [IoSlice::new(b"hello")];
        sendmsg::<()>(
            a.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(w);
        let (bytes, fd) = recv_fd(b.as_fd()).unwrap();
        assert_eq!(bytes, b"hello");
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc_cloexec(), 0, "not close-on-exec");
        // the received end works: what is written through it is read from its peer
        std::io::Write::write_all(&mut std::fs::File::from(fd), b"x").unwrap();
        let mut got = [0u8; 1];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }

    #[test]
    fn a_message_without_a_descriptor_is_an_error() {
        let (mut a, b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut a, b"no fd").unwrap();
        let err = recv_fd(b.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    fn libc_cloexec() -> i32 {
        nix::fcntl::FdFlag::FD_CLOEXEC.bits()
    }
}
