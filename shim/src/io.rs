//! The stdio containerd hands over (fifos, `binary://` and `file://` log URIs) and TTYs
//! received through the console socket.
//!
//! Without a TTY the container gets the fifos (or the log file, or a pipe to the logging
//! binary) as its own stdio: no copy in the shim, so nothing is lost or delayed when a
//! process exits quickly, and the reader sees EOF exactly when the last writer exits.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::monitor::Monitor;
use crate::monitor::SpawnRequest;
use crate::runtime::{pipe, ChildStdio};

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("failed to open {what} {path}: {source}")]
    Open {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("unsupported stdio URI {0}")]
    Scheme(String),
    #[error("logging binary {path}: {source}")]
    Logger { path: String, source: io::Error },
    #[error("console socket {path}: {source}")]
    Console { path: PathBuf, source: io::Error },
    #[error("failed to give {what} to {uid}:{gid}: {source}")]
    Owner {
        what: &'static str,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, IoError>;

/// The stdio paths of one process, as containerd sent them.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim keeps of a process's IO after the runtime has started it.
#[derive(Default)]
pub struct ProcessIo {
    /// The shim's own writer on the stdin fifo: keeps the container from seeing EOF before
    /// containerd opened its end; dropped by CloseIO.
    stdin_keeper: Mutex<Option<File>>,
    /// The pty master, for ResizePty.
    console: Mutex<Option<File>>,
    /// Copies from the pty master still running: Delete waits for them, so that what the
    /// process wrote just before it exited reaches containerd before its client closes the
    /// fifo (the Go shim waits the same way, up to 2 s).
    copying: Copies,
}

/// A count of running copies that can be waited on to reach zero.
#[derive(Clone, Default)]
struct Copies(Arc<(Mutex<usize>, Condvar)>);

/// One running copy, counted until dropped (also when its thread could not start).
struct Copying(Copies);

impl Copies {
    fn start(&self) -> Copying {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Copying(self.clone())
    }

    fn running(&self) -> usize {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the count reached zero within `limit`.
    fn wait(&self, limit: Duration) -> bool {
        let (count, zero) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = zero
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Copying {
    fn drop(&mut self) {
        let (count, zero) = &*self.0 .0;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        zero.notify_all();
    }
}

impl ProcessIo {
    /// Takes over what `other` holds (an exec gets its IO only when it starts).
    pub fn adopt(&self, other: ProcessIo) {
        let keeper = other
            .stdin_keeper
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let console = other
            .console
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        *self.stdin_keeper.lock().unwrap_or_else(|e| e.into_inner()) = keeper;
        *self.console.lock().unwrap_or_else(|e| e.into_inner()) = console;
        // A terminal's copies start in `ConsoleSocket::attach`, on the adopting side.
        debug_assert_eq!(other.copying.running(), 0);
    }

    /// Waits (at most `limit`) until the output copied from the pty reached containerd: the
    /// copy ends when every holder of the pty's other end has exited.
    pub fn wait_output(&self, limit: Duration) -> bool {
        self.copying.wait(limit)
    }

    /// CloseIO: the container sees EOF once containerd's writer is closed too.
    pub fn close_stdin(&self) {
        self.stdin_keeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    pub fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        let guard = self.console.lock().unwrap_or_else(|e| e.into_inner());
        let Some(master) = guard.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "process has no terminal",
            ));
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer on an open fd.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The stdio for the runtime command, plus what the shim must keep.
pub struct PreparedIo {
    pub child: ChildStdio,
    pub io: ProcessIo,
    /// Set when a TTY is requested: the runtime sends the pty master here.
    pub console: Option<ConsoleSocket>,
}

/// Opens what the runtime (and so the container) gets as stdio, owned by `owner` if given.
pub fn prepare(
    paths: &StdioPaths,
    monitor: &Monitor,
    env: &[(&str, &str)],
    owner: Option<(u32, u32)>,
) -> Result<PreparedIo> {
    let prepared = open_stdio(paths, monitor, env)?;
    if let Some((uid, gid)) = owner {
        let c = &prepared.child;
        for (what, fd) in [
            ("stdin", &c.stdin),
            ("stdout", &c.stdout),
            ("stderr", &c.stderr),
        ] {
            if let Some(fd) = fd {
                nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into())).map_err(
                    |e| IoError::Owner {
                        what,
                        uid,
                        gid,
                        source: e.into(),
                    },
                )?;
            }
        }
    }
    Ok(prepared)
}

fn open_stdio(paths: &StdioPaths, monitor: &Monitor, env: &[(&str, &str)]) -> Result<PreparedIo> {
    let io = ProcessIo::default();
    if paths.terminal {
        return Ok(PreparedIo {
            child: ChildStdio::default(),
            io,
            console: Some(ConsoleSocket::new()?),
        });
    }
    let mut child = ChildStdio::default();
    if !paths.stdin.is_empty() {
        let (keeper, reader) = open_stdin(&paths.stdin)?;
        *io.stdin_keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
        child.stdin = Some(reader.into());
    }
    let same = paths.stdout == paths.stderr;
    if let Some(uri) = paths.stdout.strip_prefix("binary://") {
        let (out, err) = spawn_logger(uri, monitor, env)?;
        child.stdout = Some(out.into());
        child.stderr = Some(err.into());
        return Ok(PreparedIo {
            child,
            io,
            console: None,
        });
    }
    if !paths.stdout.is_empty() {
        let f = open_output(&paths.stdout)?;
        if same {
            child.stderr = Some(
                f.try_clone()
                    .map_err(|e| IoError::Open {
                        what: "stderr",
                        path: paths.stderr.clone(),
                        source: e,
                    })?
                    .into(),
            );
        }
        child.stdout = Some(f.into());
    }
    if !paths.stderr.is_empty() && !same {
        child.stderr = Some(open_output(&paths.stderr)?.into());
    }
    Ok(PreparedIo {
        child,
        io,
        console: None,
    })
}

fn open_stdin(path: &str) -> Result<(File, File)> {
    let err = |source| IoError::Open {
        what: "stdin fifo",
        path: path.into(),
        source,
    };
    // Read-write never blocks on a fifo, and once it is open a read-only open does not either.
    let keeper = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    let reader = OpenOptions::new().read(true).open(path).map_err(err)?;
    Ok((keeper, reader))
}

/// A fifo (plain path or `fifo://`) or a `file://` log file.
fn open_output(uri: &str) -> Result<File> {
    let err = |source| IoError::Open {
        what: "output",
        path: uri.into(),
        source,
    };
    if let Some(path) = uri.strip_prefix("file://") {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        return OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err);
    }
    let path = uri.strip_prefix("fifo://").unwrap_or(uri);
    if uri.contains("://") && !uri.starts_with("fifo://") {
        return Err(IoError::Scheme(uri.into()));
    }
    // Read-write: opening never blocks waiting for containerd's reader.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(err)
}

/// Starts containerd's logging-binary protocol: fd 3 stdout, fd 4 stderr, fd 5 "ready".
fn spawn_logger(uri: &str, monitor: &Monitor, env: &[(&str, &str)]) -> Result<(File, File)> {
    let err = |source| IoError::Logger {
        path: uri.into(),
        source,
    };
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let (out_r, out_w) = pipe().map_err(err)?;
    let (err_r, err_w) = pipe().map_err(err)?;
    let (ready_r, ready_w) = pipe().map_err(err)?;
    let mut argv = vec![path.to_string()];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        argv.push(k.into());
        if !v.is_empty() {
            argv.push(v.into());
        }
    }
    let null = || -> io::Result<OwnedFd> {
        Ok(OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?
            .into())
    };
    let req = SpawnRequest {
        argv,
        cwd: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        // containerd's protocol: fd 3 stdout, fd 4 stderr, fd 5 closed when ready.
        fds: vec![
            null().map_err(err)?,
            null().map_err(err)?,
            null().map_err(err)?,
            out_r,
            err_r,
            ready_w,
        ],
    };
    // The logger outlives this call; its exit reaches the monitor's unclaimed channel.
    let _ = monitor.spawn(req).map_err(err)?;
    let mut ready = File::from(ready_r);
    let mut buf = [0u8; 1];
    ready.read(&mut buf).map_err(err)?;
    Ok((File::from(out_w), File::from(err_w)))
}

/// A listening socket the runtime connects to, to send the pty master.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    fn new() -> Result<Self> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "polis-shim-pty-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|source| IoError::Console {
            path: path.clone(),
            source,
        })?;
        Ok(Self { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the master after the runtime command succeeded, and starts copying between
    /// it and the process's fifos.
    pub fn attach(self, paths: &StdioPaths, io: &ProcessIo) -> Result<()> {
        let err = |source| IoError::Console {
            path: self.path.clone(),
            source,
        };
        self.listener.set_nonblocking(true).map_err(err)?;
        let (conn, _) = self.listener.accept().map_err(err)?;
        let master = recv_fd(conn.as_raw_fd()).map_err(err)?;
        let master = File::from(master);
        if !paths.stdout.is_empty() {
            let out = open_output(&paths.stdout)?;
            let from = master.try_clone().map_err(err)?;
            copy_in_thread("pty-out", from, out, false, Some(io.copying.start()));
        }
        if !paths.stdin.is_empty() {
            let (keeper, reader) = open_stdin(&paths.stdin)?;
            *io.stdin_keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
            let to = master.try_clone().map_err(err)?;
            copy_in_thread("pty-in", reader, to, true, None);
        }
        *io.console.lock().unwrap_or_else(|e| e.into_inner()) = Some(master);
        Ok(())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Copies until EOF or an error; `copying`, when given, counts the copy while it runs.
fn copy_in_thread(
    name: &str,
    mut from: File,
    mut to: File,
    eot_on_eof: bool,
    copying: Option<Copying>,
) {
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            if eot_on_eof {
                // End of stdin on a terminal is ^D, as a user would type it.
                let _ = to.write_all(&[4]);
            }
            drop(copying);
        });
    if spawned.is_err() {
        tracing::warn!(thread = name, "could not start the copy thread");
    }
}

fn recv_fd(sock: i32) -> io::Result<OwnedFd> {
    // SAFETY: `sock` is the accepted connection, open for the duration of this call.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(sock) };
    // The socket was accepted from a non-blocking listener; wait for the message.
    for _ in 0..500 {
        match polis_sys::fd::recv_fd(sock) {
            Ok((_, fd)) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("timed out waiting for the pty master"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uri_appends_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.txt");
        let uri = format!("file://{}", path.display());
        writeln!(open_output(&uri).unwrap(), "one").unwrap();
        writeln!(open_output(&uri).unwrap(), "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn unknown_scheme_is_refused() {
        assert!(matches!(
            open_output("tcp://1.2.3.4:5"),
            Err(IoError::Scheme(_))
        ));
    }

    #[test]
    fn wait_output_returns_once_the_copy_has_written_everything() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let io = ProcessIo::default();
        assert!(io.wait_output(Duration::ZERO), "nothing copying yet");
        let (r, w) = nix::unistd::pipe().unwrap();
        let out = File::create(&out_path).unwrap();
        copy_in_thread("t-out", r.into(), out, false, Some(io.copying.start()));
        let mut w = File::from(w);
        w.write_all(b"last words").unwrap();
        assert!(
            !io.wait_output(Duration::from_millis(50)),
            "the writer is still open"
        );
        drop(w);
        assert!(io.wait_output(Duration::from_secs(5)));
        assert_eq!(std::fs::read(&out_path).unwrap(), b"last words");
    }

    #[test]
    fn stdin_reader_sees_eof_only_after_keeper_and_writer_close() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.to_str().unwrap();
        let (keeper, mut reader) = open_stdin(path).unwrap();
        let mut writer = OpenOptions::new().write(true).open(path).unwrap();
        writer.write_all(b"hi").unwrap();
        drop(writer);
        let mut buf = [0u8; 2];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        drop(keeper);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
