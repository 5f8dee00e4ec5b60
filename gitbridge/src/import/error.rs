//! Errors of a git import, by where they come from: the request, the source repository, the
//! limits, the local git binary, or the engine.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The URL or ref in the request is malformed or of an unsupported kind.
    #[error("{0}")]
    InvalidSource(String),
    /// The source repository does not exist at that URL.
    #[error("git repository {url} not found: {detail}")]
    SourceNotFound { url: String, detail: String },
    /// The source could not be fetched (connection refused, authentication needed, protocol error).
    #[error("cannot fetch {url}: {detail}")]
    SourceUnreachable { url: String, detail: String },
    /// The ref asked for is not a branch, tag or commit of the source.
    #[error("ref '{rev}' not found in {url}")]
    UnknownRef { url: String, rev: String },
    /// The source has no commits (or its HEAD names a branch that does not exist).
    #[error("{0}")]
    NothingToImport(String),
    #[error("fetching {url} took longer than {limit:?}")]
    TimedOut { url: String, limit: Duration },
    #[error("the import of {url} exceeds the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// The local git binary failed where it should not have.
    #[error("git {command} failed: {detail}")]
    Git { command: String, detail: String },
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] aether_core::Error),
}

impl ImportError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| ImportError::Io { context, source }
    }

    pub(crate) fn git(command: &str, detail: impl Into<String>) -> Self {
        ImportError::Git {
            command: command.to_owned(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = ImportError> = std::result::Result<T, E>;
