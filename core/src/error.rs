//! The one error type of the engine. Every transport maps [`ErrorKind`] to its own
//! vocabulary (HTTP status, gRPC code, errno) in exactly one place; nothing here knows them.

use std::fmt;

use crate::store_error::{StoreError, StoreKind};

/// What kind of failure an [`Error`] is, independent of its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    NotEmpty,
    InvalidPath,
    InvalidArgument,
    ReadOnly,
    Conflict,
    /// The path names other content than the caller expected (an `If-Match`, a read of a
    /// named content id): nothing was read or changed.
    Stale,
    TooLarge,
    /// The change would take a session over its quota (see `quota`): nothing was changed.
    QuotaExceeded,
    /// Stored data failed a check (hash mismatch, undecodable record).
    Corrupt,
    /// The storage underneath failed (disk, database, object store).
    Storage,
    /// A store is busy or cannot be reached: the same call may succeed later.
    Unavailable,
    /// A fault of this process (a worker that panicked), not of the request or the storage.
    Internal,
}

impl ErrorKind {
    /// A stable, machine-readable name used in API error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::NotEmpty => "not_empty",
            ErrorKind::InvalidPath => "invalid_path",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Stale => "stale",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Storage => "storage",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Errors of the engine. Variants carry the subject (a path, a session id, a revision) so the
/// message alone tells a user what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("'{path}' already exists")]
    AlreadyExists { path: String },
    #[error("'{path}' is not a directory")]
    NotADirectory { path: String },
    #[error("'{path}' is a directory")]
    IsADirectory { path: String },
    #[error("directory '{path}' is not empty")]
    NotEmpty { path: String },
    #[error("invalid path '{path}': {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("session {session} is archived and read-only")]
    ReadOnly { session: String },
    #[error("{0}")]
    Conflict(String),
    #[error("'{path}' is now {actual}, not {expected}")]
    Stale {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    #[error("session {session} is over its quota of {limit} {what} ({used} with this change)")]
    QuotaExceeded {
        session: String,
        what: &'static str,
        limit: u64,
        used: u64,
    },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// An archive given to an import is malformed or uses what cannot be stored exactly.
    #[error("invalid archive: {0}")]
    Archive(#[from] crate::archive_error::ArchiveError),
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A store (metadata, git objects, chunks) failed; see [`StoreError`] for what it means.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of this process rather than of its input or storage: a worker that panicked.
    /// Its kind is [`ErrorKind::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::NotADirectory { .. } => ErrorKind::NotADirectory,
            Error::IsADirectory { .. } => ErrorKind::IsADirectory,
            Error::NotEmpty { .. } => ErrorKind::NotEmpty,
            Error::InvalidPath { .. } => ErrorKind::InvalidPath,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::ReadOnly { .. } => ErrorKind::ReadOnly,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Stale { .. } => ErrorKind::Stale,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Archive(_) => ErrorKind::InvalidArgument,
            Error::Store(e) => match e {
                StoreError::NotFound { .. } => ErrorKind::NotFound,
                StoreError::Conflict { .. } => ErrorKind::Conflict,
                StoreError::Corrupt { .. } => ErrorKind::Corrupt,
                StoreError::Unavailable { .. } => ErrorKind::Unavailable,
                StoreError::Io { .. } | StoreError::Backend { .. } => ErrorKind::Storage,
            },
            Error::Io { .. } => ErrorKind::Storage,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// A failure of the git object database's library, kept as the source.
    pub(crate) fn odb(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store(StoreError::backend(StoreKind::Objects, err))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_error::StoreKind;

    #[test]
    fn store_failures_keep_what_they_mean() {
        let busy = Error::Store(StoreError::Unavailable {
            store: StoreKind::Metadata,
            source: "database is locked".into(),
        });
        assert_eq!(busy.kind(), ErrorKind::Unavailable);
        assert_eq!(busy.kind().code(), "unavailable");
        let gone = Error::Store(StoreError::not_found(StoreKind::Chunks, "chunk x"));
        assert_eq!(gone.kind(), ErrorKind::NotFound);
        let broken = Error::Store(StoreError::backend(StoreKind::Objects, "bad pack"));
        assert_eq!(broken.kind(), ErrorKind::Storage);
        assert_eq!(Error::Internal("panic".into()).kind().code(), "internal");
    }
}
