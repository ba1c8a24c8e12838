//! Running code inside another network namespace.
//!
//! `setns` happens on a fresh thread so the main thread never leaves the
//! host namespace; the thread ends with the closure (it is never reused).

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {path}: {source}")]
    Enter { path: String, source: nix::Error },
    #[error("thread working in network namespace {path} panicked")]
    Panicked { path: String },
}

impl NetnsError {
    /// The namespace file is gone (container stopped).
    pub fn is_missing(&self) -> bool {
        matches!(self, NetnsError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

pub fn open(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Runs `f` with the calling context moved into the namespace `ns`.
pub fn run_in<T: Send>(
    ns: &File,
    path: &Path,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let shown = path.display().to_string();
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                path: shown.clone(),
                source,
            })?;
            Ok(f())
        });
        handle.join().unwrap_or_else(|_| {
            Err(NetnsError::Panicked {
                path: shown.clone(),
            })
        })
    })
}

/// Writes a sysctl of the calling thread's network namespace.
pub fn write_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// Writes a per-interface sysctl (interface names may contain dots).
pub fn write_if_sysctl(family: &str, ifname: &str, key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/net/{family}/conf/{ifname}/{key}");
    std::fs::write(&path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
}
