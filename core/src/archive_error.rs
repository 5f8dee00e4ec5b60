//! Why an archive given to an import was refused (see `archive`). Its own module so that the
//! engine's error type can carry it without depending on the tar reader.

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
