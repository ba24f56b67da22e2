//! The sync engine: the changeset codec, applying uploads, producing downloads, sessions
//! and conflict resolution. It knows the domain and the repository; it knows nothing of
//! HTTP (the web layer maps [`SyncError`] to status codes).

pub mod apply;
pub mod code;
pub mod codec;
pub mod download;
pub mod import;
pub mod judge;
pub mod open_conflicts;
pub mod resolve;
pub mod session;
mod spool;

use crate::db::DbError;
use code::ErrorCode;
use codec::CodecError;

/// Why a sync step was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such session (or conflict) for this device or user.
    #[error("{0}")]
    NotFound(String),
    /// The step does not fit the session's state (failed, abandoned, complete, uploaded).
    #[error("{message}")]
    State { code: ErrorCode, message: String },
    /// Not a readable changeset.
    #[error("{message}")]
    Malformed { code: ErrorCode, message: String },
    /// Over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// A row that may not be applied; nothing of the upload was.
    #[error("{message}")]
    Rejected {
        code: ErrorCode,
        table: Option<String>,
        id: Option<String>,
        field: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    /// An upload whose items are not in judging order (deletes, then records parents
    /// first): it is sorted and judged again. Never reaches a client.
    #[error("the upload must be sorted before it is judged")]
    Unordered,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        SyncError::Db(DbError::Query(e))
    }
}

impl From<CodecError> for SyncError {
    fn from(e: CodecError) -> Self {
        let message = e.to_string();
        match e {
            CodecError::Malformed(_) => SyncError::Malformed {
                code: ErrorCode::Malformed,
                message,
            },
            CodecError::Doctype => SyncError::Malformed {
                code: ErrorCode::Doctype,
                message,
            },
            CodecError::Version(_) => SyncError::Malformed {
                code: ErrorCode::UnsupportedVersion,
                message,
            },
            CodecError::Invalid {
                code,
                table,
                id,
                field,
                ..
            } => SyncError::Rejected {
                code,
                table,
                id,
                field,
                message,
            },
            CodecError::TooLarge(_) => SyncError::TooLarge(message),
            CodecError::Io(io) => SyncError::Io(io),
        }
    }
}

impl SyncError {
    pub(crate) fn rejected(
        code: ErrorCode,
        table: &str,
        id: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        SyncError::Rejected {
            code,
            table: Some(table.to_owned()),
            id: Some(id.to_owned()),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Whether the failure was the client's (so the session is marked failed with it).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            SyncError::Malformed { .. } | SyncError::TooLarge(_) | SyncError::Rejected { .. }
        )
    }
}
