//! The tar format, read and written byte for byte: names and link targets are opaque bytes
//! (never parsed as paths, so `../.././x` and `//abs//path` survive), modes keep every
//! permission bit, and what cannot be represented exactly is refused with an [`ArchiveError`],
//! never stored as something else.
//!
//! Reading understands what GNU tar, bsdtar and the common libraries write: v7, ustar, GNU
//! (long names and links, old GNU sparse files) and POSIX pax (local and global records,
//! `path`/`linkpath`/`size`, GNU sparse formats 0.0, 0.1 and 1.0), optionally gzip-compressed.
//! The whole stream is consumed, so a gzip trailer whose CRC or length is wrong, a truncated
//! stream and data after the end-of-archive blocks are errors. Writing produces POSIX pax
//! archives (ustar headers, pax records for what does not fit).
//!
//! This module knows nothing of sessions: callers decide what a name means.

mod header;
mod pax;
mod read;
mod sparse;
mod stream;
mod write;

pub use read::{EntryHeader, EntryKind, TarReader};
pub use stream::decompress;
pub use write::{TarWriter, WriteKind};

/// Why an archive was refused. Every variant says where, so a user can find the problem.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the stream is compressed with {0}; only tar and gzip-compressed tar are accepted")]
    UnsupportedCompression(&'static str),
    #[error("the gzip stream is corrupt: {0}")]
    Gzip(String),
    #[error("the archive ends early ({0}); it is truncated")]
    Truncated(String),
    #[error("the header at byte {offset} is invalid: {reason}")]
    BadHeader { offset: u64, reason: String },
    #[error("entry '{path}': {reason}")]
    BadEntry { path: String, reason: String },
    #[error("data follows the end-of-archive blocks at byte {0}; concatenated archives are not supported")]
    TrailingData(u64),
}

impl ArchiveError {
    pub(crate) fn entry(path: &[u8], reason: impl Into<String>) -> Self {
        ArchiveError::BadEntry {
            path: String::from_utf8_lossy(path).escape_debug().to_string(),
            reason: reason.into(),
        }
    }

    /// This error as an I/O error (for `Read` implementations), recoverable with
    /// [`ArchiveError::from_io`].
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The archive error inside `e`, or `e` itself when it is not one (the source failed).
    pub(crate) fn from_io(e: std::io::Error) -> Result<ArchiveError, std::io::Error> {
        if e.get_ref().is_some_and(|inner| inner.is::<ArchiveError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(archive) = inner.downcast::<ArchiveError>()
            {
                return Ok(*archive);
            }
            // Unreachable: the payload was just checked to be an `ArchiveError`.
            return Err(std::io::Error::other("archive error lost"));
        }
        Err(e)
    }
}

/// A failure reading an archive: the archive itself is wrong, or the bytes could not be read.
pub(crate) fn read_failure(context: &str, e: std::io::Error) -> crate::Error {
    match ArchiveError::from_io(e) {
        Ok(archive) => crate::Error::Archive(archive),
        Err(io) => crate::Error::io(context.to_owned())(io),
    }
}

/// Turn an I/O error that carries an archive error (from reading an entry's data through a
/// consumer such as the ingest) back into the archive error.
pub(crate) fn unwrap_error(e: crate::Error) -> crate::Error {
    match e {
        crate::Error::Io { context, source } => match ArchiveError::from_io(source) {
            Ok(archive) => crate::Error::Archive(archive),
            Err(source) => crate::Error::Io { context, source },
        },
        other => other,
    }
}
