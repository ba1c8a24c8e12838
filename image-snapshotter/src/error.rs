//! One error type for the snapshotter; its kind decides the gRPC code containerd sees, so the
//! client side (`errdefs.FromGRPC`) gets the same `ErrNotFound`/`ErrAlreadyExists`/... as with
//! the built-in overlayfs snapshotter.

use std::io;
use std::path::{Path, PathBuf};

use containerd_snapshots::tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}: failed precondition")]
    FailedPrecondition(String),
    #[error("{0}: invalid argument")]
    InvalidArgument(String),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata store {}: {context}: {source}", path.display())]
    Store {
        path: PathBuf,
        context: String,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("metadata store: record of snapshot {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            _ if self.no_space() => Code::ResourceExhausted,
            Error::Io { .. } | Error::Store { .. } | Error::Corrupt { .. } | Error::Other(_) => {
                Code::Unknown
            }
        }
    }

    /// The file system under the root is full (ENOSPC or EDQUOT), here or in the store.
    pub fn no_space(&self) -> bool {
        let full = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
        match self {
            Error::Io { source, .. } => full(source),
            Error::Store { source, .. } => match &**source {
                redb::Error::Io(e) => full(e),
                _ => false,
            },
            _ => false,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

/// Adds the path to a bare `io::Error`, so every I/O failure names the file at fault.
pub trait IoContext<T> {
    fn at(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_grpc_codes_containerd_expects() {
        let cases = [
            (Error::NotFound("snapshot a".into()), Code::NotFound),
            (
                Error::AlreadyExists("snapshot a".into()),
                Code::AlreadyExists,
            ),
            (
                Error::FailedPrecondition("snapshot a".into()),
                Code::FailedPrecondition,
            ),
            (
                Error::InvalidArgument("field".into()),
                Code::InvalidArgument,
            ),
            (
                Error::io("open", "/x/y", io::Error::other("boom")),
                Code::Unknown,
            ),
            (
                Error::io("mkdir", "/x/y", io::Error::from_raw_os_error(libc::ENOSPC)),
                Code::ResourceExhausted,
            ),
            (
                Error::Store {
                    path: "/x/metadata.db".into(),
                    context: "commit".into(),
                    source: Box::new(redb::Error::Io(io::Error::from_raw_os_error(libc::ENOSPC))),
                },
                Code::ResourceExhausted,
            ),
        ];
        for (err, code) in cases {
            let msg = err.to_string();
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{msg}");
            assert_eq!(status.message(), msg);
        }
    }

    #[test]
    fn io_errors_name_the_path() {
        let err: Result<()> = Err(io::Error::other("denied")).at("remove", "/root/snapshots/7");
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("/root/snapshots/7"), "{msg}");
        assert!(msg.contains("remove"), "{msg}");
    }
}
