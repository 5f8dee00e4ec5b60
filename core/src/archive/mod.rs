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

pub use crate::archive_error::ArchiveError;

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
