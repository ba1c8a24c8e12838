//! The pty side of `run`/`exec` in the foreground with a terminal: we listen on a private console
//! socket, receive the pty master from the container, and copy our stdio to and from it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::termios::{self, SetArg, Termios};

pub struct ConsoleProxy {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleProxy {
    pub fn listen(root: &Path, id: &str) -> Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("failed to create root {}", root.display()))?;
        // A unix socket path is at most 107 bytes, and state roots (containerd's, Kubernetes')
        // can be longer than that alone: bind through a descriptor of the root, so the path
        // handed to bind() is short whatever the root and the id. libcontainer connects
        // through a symlink in the container's directory, so the long path works from there.
        let name = format!(".console-{}.sock", std::process::id());
        let path = root.join(&name);
        let _ = std::fs::remove_file(&path);
        let dir = std::fs::File::open(root)
            .with_context(|| format!("failed to open root {}", root.display()))?;
        let short = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
        let listener = UnixListener::bind(&short).with_context(|| {
            format!(
                "failed to listen on the console socket of {id:?} at {}",
                path.display()
            )
        })?;
        Ok(Self { listener, path })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master the container sent while it was being created.
    pub fn accept(self) -> Result<Console> {
        let (stream, _) = self
            .listener
            .accept()
            .context("failed to accept the console connection")?;
        let (_, master) =
            polis_sys::fd::recv_fd(stream.as_fd()).context("failed to receive the pty master")?;
        Console::new(master)
    }
}

impl Drop for ConsoleProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pty master plus our terminal in raw mode, restored on drop.
pub struct Console {
    pub master: OwnedFd,
    saved: Option<Termios>,
}

impl Console {
    fn new(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        let console = Self { master, saved };
        console.resize_from_stdin();
        Ok(console)
    }

    /// Gives the container's pty the size of our own terminal, if we have one.
    pub fn resize_from_stdin(&self) {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: plain ioctls on fds we hold, with a correctly sized winsize.
        unsafe {
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}
