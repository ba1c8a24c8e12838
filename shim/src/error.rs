//! Task errors and their one mapping to ttrpc codes (which containerd turns back into
//! errdefs: NotFound, AlreadyExists, FailedPrecondition, ...).

use containerd_shim_protos::ttrpc::{self, Code};

use crate::io::IoError;
use crate::runtime::RuntimeError;

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
    #[error("{0}")]
    Internal(String),
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
            Self::Runtime(e) => runtime_code(&e.message()),
            Self::Io(_) | Self::Internal(_) => Code::UNKNOWN,
        }
    }
}

/// Classifies a runtime's message the way the Go shim does for runc's.
fn runtime_code(message: &str) -> Code {
    let m = message.to_ascii_lowercase();
    if m.contains("does not exist") || m.contains("not found") {
        Code::NOT_FOUND
    } else if m.contains("already exists") {
        Code::ALREADY_EXISTS
    } else if m.contains("not running")
        || m.contains("not paused")
        || m.contains("not stopped")
        || m.contains("already finished")
        || m.contains("no such process")
    {
        Code::FAILED_PRECONDITION
    } else {
        Code::UNKNOWN
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
    use std::path::PathBuf;

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
