//! Task errors and their one mapping to ttrpc codes (which containerd turns back into
//! errdefs: NotFound, AlreadyExists, FailedPrecondition, ...).

use containerd_shim_protos::ttrpc::{self, Code};

use std::path::PathBuf;

use crate::io::IoError;
use crate::mount::MountError;
use crate::runtime::{Failure, RuntimeError};
use crate::stats::StatsError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not implemented")]
    Unimplemented(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no pid in {}", .0.display())]
    NoPid(PathBuf),
    #[error("stats of {id}: {source}")]
    Stats { id: String, source: StatsError },
}

pub type Result<T> = std::result::Result<T, TaskError>;

impl TaskError {
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound(_) => Code::NOT_FOUND,
            Self::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Self::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Self::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Self::Unimplemented(_) => Code::UNIMPLEMENTED,
            Self::Runtime(e) => match e.failure() {
                Failure::Missing => Code::NOT_FOUND,
                Failure::AlreadyExists => Code::ALREADY_EXISTS,
                Failure::NotRunning | Failure::WrongState => Code::FAILED_PRECONDITION,
                Failure::Other => Code::UNKNOWN,
            },
            Self::Io(_)
            | Self::Mount(_)
            | Self::File { .. }
            | Self::NoPid(_)
            | Self::Stats { .. } => Code::UNKNOWN,
        }
    }
}

impl From<TaskError> for ttrpc::Error {
    fn from(e: TaskError) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(message: &str) -> TaskError {
        TaskError::Runtime(RuntimeError::Failed {
            binary: PathBuf::from("polis-runc"),
            command: "kill".into(),
            id: "c1".into(),
            status: 1,
            message: message.into(),
        })
    }

    #[test]
    fn runtime_messages_map_to_codes() {
        assert_eq!(
            failed("container \"c1\" does not exist").code(),
            Code::NOT_FOUND
        );
        assert_eq!(
            failed("container with id c1 already exists").code(),
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            failed("container not running").code(),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(failed("boom").code(), Code::UNKNOWN);
    }

    #[test]
    fn own_errors_map_to_codes() {
        assert_eq!(
            TaskError::NotFound("exec e1".into()).code(),
            Code::NOT_FOUND
        );
        assert_eq!(
            TaskError::Unimplemented("checkpoint".into()).code(),
            Code::UNIMPLEMENTED
        );
        let status = match ttrpc::Error::from(TaskError::AlreadyExists("c1".into())) {
            ttrpc::Error::RpcStatus(s) => s,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(status.code(), Code::ALREADY_EXISTS);
        assert!(status.message().contains("c1"));
    }
}
