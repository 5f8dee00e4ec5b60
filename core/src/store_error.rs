//! Typed failures of the stores behind the engine's seams: the metadata store, the git object
//! store and the chunk store. Every backend (SQLite, local disk, in memory, and later
//! PostgreSQL and S3) reports its failures as a [`StoreError`], which [`crate::Error::Store`]
//! keeps whole (source included) so that [`crate::ErrorKind`] stays precise and a log shows the
//! backend's own error. Nothing here knows a particular backend.

use std::fmt;

/// Which store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    Metadata,
    Objects,
    Chunks,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Metadata => "metadata store",
            StoreKind::Objects => "object database",
            StoreKind::Chunks => "chunk store",
        })
    }
}

/// The boxed error of a backend library (rusqlite, gix, an object-store client).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of a store, by what it means to the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record or object asked for does not exist. The message names the subject only, as
    /// [`crate::Error::NotFound`] does: which store was asked is no news to the caller.
    #[error("{what} not found")]
    NotFound { store: StoreKind, what: String },
    /// The change collides with what is stored (a unique key taken, a constraint refused).
    #[error("{store}: conflict: {what}")]
    Conflict {
        store: StoreKind,
        what: String,
        #[source]
        source: Option<BackendError>,
    },
    /// Stored data failed a check (undecodable record, hash mismatch, damaged file).
    #[error("{store}: corrupt data: {what}")]
    Corrupt { store: StoreKind, what: String },
    /// The file system underneath failed.
    #[error("{store}: I/O error while {context}: {source}")]
    Io {
        store: StoreKind,
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The store is busy (locked) or cannot be reached; the same call may succeed later.
    #[error("{store} is busy or unavailable: {source}")]
    Unavailable {
        store: StoreKind,
        #[source]
        source: BackendError,
    },
    /// Any other failure of the backend, with its own error as the source.
    #[error("{store}: {source}")]
    Backend {
        store: StoreKind,
        #[source]
        source: BackendError,
    },
}

impl StoreError {
    pub fn store(&self) -> StoreKind {
        match self {
            StoreError::NotFound { store, .. }
            | StoreError::Conflict { store, .. }
            | StoreError::Corrupt { store, .. }
            | StoreError::Io { store, .. }
            | StoreError::Unavailable { store, .. }
            | StoreError::Backend { store, .. } => *store,
        }
    }

    pub fn not_found(store: StoreKind, what: impl Into<String>) -> Self {
        StoreError::NotFound {
            store,
            what: what.into(),
        }
    }

    pub fn corrupt(store: StoreKind, what: impl Into<String>) -> Self {
        StoreError::Corrupt {
            store,
            what: what.into(),
        }
    }

    pub fn conflict(store: StoreKind, what: impl Into<String>) -> Self {
        StoreError::Conflict {
            store,
            what: what.into(),
            source: None,
        }
    }

    pub fn backend(store: StoreKind, source: impl Into<BackendError>) -> Self {
        StoreError::Backend {
            store,
            source: source.into(),
        }
    }

    /// A mapper for `map_err` on an I/O result.
    pub fn io(store: StoreKind, context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| StoreError::Io { store, context, source }
    }
}
