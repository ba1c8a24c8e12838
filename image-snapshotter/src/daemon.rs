//! Process-level concerns: the exclusive lock on the root dir, the unix socket (0660, root
//! only) and serving until SIGTERM/SIGINT.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_snapshots::tonic::transport::Server;
use nix::sys::stat::{umask, Mode};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::backend::{Backend, BackendKind};
use crate::error::{Error, IoContext, Result};
use crate::service::Service;
use crate::snapshotter::Snapshotter;

pub struct Config {
    pub root: PathBuf,
    pub address: PathBuf,
    pub backend: BackendKind,
}

/// Holds `root/lock` with an exclusive flock for the life of the process: a second instance
/// on the same root would corrupt it, so it must fail to start instead.
pub struct RootLock {
    _file: File,
}

impl RootLock {
    pub fn acquire(root: &Path) -> Result<RootLock> {
        let path = root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open", &path)?;
        // SAFETY: flock on a valid, owned descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Other(format!(
                    "root {} is in use by another polis-snapshotter (lock {} is held)",
                    root.display(),
                    path.display()
                )));
            }
            return Err(Error::io("lock", &path, err));
        }
        Ok(RootLock { _file: file })
    }
}

/// Binds the socket with mode 0660 from the start (no window where others could connect).
pub fn bind_socket(address: &Path) -> Result<UnixListener> {
    if let Some(dir) = address.parent() {
        fs::create_dir_all(dir).at("create socket dir", dir)?;
    }
    match fs::remove_file(address) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove stale socket", address, e))
        }
        _ => {}
    }
    let old = umask(Mode::from_bits_truncate(0o117));
    let listener = UnixListener::bind(address);
    umask(old);
    let listener = listener.at("bind", address)?;
    fs::set_permissions(address, fs::Permissions::from_mode(0o660)).at("chmod", address)?;
    std::os::unix::fs::chown(address, Some(0), Some(0)).at("chown", address)?;
    Ok(listener)
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    fs::create_dir_all(&cfg.root).at("create root", &cfg.root)?;
    fs::set_permissions(&cfg.root, fs::Permissions::from_mode(0o700)).at("chmod", &cfg.root)?;
    let _lock = RootLock::acquire(&cfg.root)?;
    let backend = Backend::choose(cfg.backend, &cfg.root)?;
    let snapshotter = Arc::new(Snapshotter::open(&cfg.root, backend)?);
    let listener = bind_socket(&cfg.address)?;
    tracing::info!(root = %cfg.root.display(), address = %cfg.address.display(), backend = backend.name(), "serving");

    let service = containerd_snapshots::server(Arc::new(Service::new(snapshotter)));
    let result = Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await;
    let _ = fs::remove_file(&cfg.address);
    result.map_err(|e| anyhow::anyhow!("serving on {}: {e}", cfg.address.display()))?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn second_lock_on_a_root_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(d.path()).unwrap();
        let err = RootLock::acquire(d.path())
            .err()
            .expect("second lock must fail");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        RootLock::acquire(d.path()).unwrap();
    }

    #[tokio::test]
    async fn socket_is_0660_and_root_owned() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("sub/snap.sock");
        let _l = bind_socket(&sock).unwrap();
        let md = fs::metadata(&sock).unwrap();
        assert_eq!(md.mode() & 0o777, 0o660);
        assert_eq!((md.uid(), md.gid()), (0, 0));
        // a stale socket file from a dead instance is replaced
        drop(_l);
        let _l2 = bind_socket(&sock).unwrap();
    }
}
