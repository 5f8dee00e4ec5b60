//! The one error of every use case: a [`Code`] from a closed vocabulary, a message for people and
//! optional details. Each surface maps a [`Code`] to its own vocabulary (HTTP status, gRPC code,
//! CLI exit code) in one place and sends [`Code::as_str`] unchanged, so the same failure carries
//! the same code string on every surface. Nothing here knows a transport.

use std::collections::BTreeMap;
use std::fmt;

use aether_core::ErrorKind;
use aether_gitbridge::import::ImportError;
use aether_gitbridge::serve::ServeError;

/// What went wrong, as a client program needs to tell it apart. Closed: a new failure gets a new
/// variant here (and one line in each surface's mapping), never a free-form string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A session, path, revision, token or route does not exist.
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    /// A read of file content named a symbolic link (read its target from `stat` instead).
    IsASymlink,
    /// A read of file content named a FIFO, socket or device node (no bytes are kept for one).
    IsASpecialFile,
    NotEmpty,
    /// A path is malformed (empty entry, `..`, NUL, too long).
    InvalidPath,
    /// A well-formed request asks for something that cannot be done as asked.
    InvalidArgument,
    /// A request body is not JSON, or not JSON of the expected shape.
    InvalidJson,
    /// A request parameter is malformed or out of range (paging, filters, headers).
    BadRequest,
    /// The session is archived.
    ReadOnly,
    Conflict,
    /// The path holds other content than the caller named: nothing was read or changed.
    Stale,
    /// A request or what it would create is over a limit.
    TooLarge,
    /// The change would take a session over its quota of bytes or files: nothing was changed.
    QuotaExceeded,
    /// A byte range or offset lies outside the content.
    RangeNotSatisfiable,
    /// No credentials, or credentials this server does not know.
    Unauthorized,
    /// Valid credentials without the access the operation needs.
    Forbidden,
    /// A surface does not offer this operation on this resource.
    MethodNotAllowed,
    /// A git source of an import cannot be reached.
    SourceUnreachable,
    /// A git source of an import took longer than allowed.
    SourceTimeout,
    /// Stored data failed a check.
    Corrupt,
    /// The storage underneath failed.
    Storage,
    /// A store is busy or cannot be reached: the same request may succeed later.
    Unavailable,
    /// A fault of the server itself (a worker that panicked).
    Internal,
    /// The client did not send its request (headers or body) in time.
    RequestTimeout,
    /// The request's URI is longer than the server reads.
    UriTooLong,
    /// The request's headers are larger than the server reads.
    HeadersTooLarge,
    /// The request body's media type is not one the operation takes.
    UnsupportedMediaType,
    /// The client went away before its request ended; nothing was changed.
    ClientClosed,
    /// The server is at its limit of concurrent work (blocking jobs, connections): nothing was
    /// done; the same request may succeed after the `retry_after` it names (in seconds).
    Overloaded,
    /// The caller's token is over a quota (requests a second, heavy operations at once):
    /// nothing was done; the same request may succeed after the `retry_after` it names.
    RateLimited,
}

impl Code {
    /// Every code, for tests and documentation.
    pub const ALL: [Code; 33] = [
        Code::NotFound,
        Code::AlreadyExists,
        Code::NotADirectory,
        Code::IsADirectory,
        Code::IsASymlink,
        Code::IsASpecialFile,
        Code::NotEmpty,
        Code::InvalidPath,
        Code::InvalidArgument,
        Code::InvalidJson,
        Code::BadRequest,
        Code::ReadOnly,
        Code::Conflict,
        Code::Stale,
        Code::TooLarge,
        Code::QuotaExceeded,
        Code::RangeNotSatisfiable,
        Code::Unauthorized,
        Code::Forbidden,
        Code::MethodNotAllowed,
        Code::SourceUnreachable,
        Code::SourceTimeout,
        Code::Corrupt,
        Code::Storage,
        Code::Unavailable,
        Code::Internal,
        Code::RequestTimeout,
        Code::UriTooLong,
        Code::HeadersTooLarge,
        Code::UnsupportedMediaType,
        Code::ClientClosed,
        Code::Overloaded,
        Code::RateLimited,
    ];

    /// The stable string clients match on (`code` in REST bodies, `aether-code` in gRPC
    /// metadata, `code` in the CLI's `--json` errors).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::NotADirectory => "not_a_directory",
            Code::IsADirectory => "is_a_directory",
            Code::IsASymlink => "is_a_symlink",
            Code::IsASpecialFile => "is_a_special_file",
            Code::NotEmpty => "not_empty",
            Code::InvalidPath => "invalid_path",
            Code::InvalidArgument => "invalid_argument",
            Code::InvalidJson => "invalid_json",
            Code::BadRequest => "bad_request",
            Code::ReadOnly => "read_only",
            Code::Conflict => "conflict",
            Code::Stale => "stale",
            Code::TooLarge => "too_large",
            Code::QuotaExceeded => "quota_exceeded",
            Code::RangeNotSatisfiable => "range_not_satisfiable",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::SourceUnreachable => "source_unreachable",
            Code::SourceTimeout => "source_timeout",
            Code::Corrupt => "corrupt",
            Code::Storage => "storage",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::RequestTimeout => "timeout",
            Code::UriTooLong => "uri_too_long",
            Code::HeadersTooLarge => "headers_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::ClientClosed => "client_closed",
            Code::Overloaded => "overloaded",
            Code::RateLimited => "rate_limited",
        }
    }

    /// The code named `s` by [`Code::as_str`].
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A failure of the server rather than of the request: logged where it is made.
    pub fn is_internal(self) -> bool {
        matches!(self, Code::Corrupt | Code::Storage | Code::Unavailable | Code::Internal)
    }

    fn of_kind(kind: ErrorKind) -> Code {
        match kind {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::NotADirectory => Code::NotADirectory,
            ErrorKind::IsADirectory => Code::IsADirectory,
            ErrorKind::NotEmpty => Code::NotEmpty,
            ErrorKind::InvalidPath => Code::InvalidPath,
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::ReadOnly => Code::ReadOnly,
            ErrorKind::Conflict => Code::Conflict,
            ErrorKind::Stale => Code::Stale,
            ErrorKind::TooLarge => Code::TooLarge,
            ErrorKind::QuotaExceeded => Code::QuotaExceeded,
            ErrorKind::Corrupt => Code::Corrupt,
            ErrorKind::Storage => Code::Storage,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every use case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: Code,
    pub message: String,
    /// Structured facts about the failure (the symlink's target, the content a path now holds),
    /// for clients that act on them; the message already says them in words.
    pub details: BTreeMap<&'static str, String>,
}

impl ServiceError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }

    pub fn with_detail(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.details.insert(key, value.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidJson, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(Code::TooLarge, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// `path` holds `actual`, not the `expected` content the caller named.
    pub fn stale(path: &str, expected: &str, actual: &str) -> Self {
        aether_core::Error::Stale {
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }
        .into()
    }

    fn logged(self, what: &str) -> Self {
        if self.code.is_internal() {
            tracing::error!(code = %self.code, error = %self.message, "{what} failed");
        }
        self
    }
}

impl From<aether_core::Error> for ServiceError {
    fn from(e: aether_core::Error) -> Self {
        let mut out = ServiceError::new(Code::of_kind(e.kind()), e.to_string());
        if let aether_core::Error::Stale { expected, actual, .. } = &e {
            out = out.with_detail("expected", expected).with_detail("actual", actual);
        }
        out.logged("request")
    }
}

impl From<ImportError> for ServiceError {
    fn from(e: ImportError) -> Self {
        let code = match &e {
            ImportError::Core(core) => Code::of_kind(core.kind()),
            ImportError::InvalidSource(_) | ImportError::NothingToImport(_) => Code::InvalidArgument,
            ImportError::SourceNotFound { .. } | ImportError::UnknownRef { .. } => Code::NotFound,
            ImportError::SourceUnreachable { .. } => Code::SourceUnreachable,
            ImportError::TimedOut { .. } => Code::SourceTimeout,
            ImportError::TooLarge { .. } => Code::TooLarge,
            ImportError::Git { .. } | ImportError::Io { .. } => Code::Storage,
        };
        ServiceError::new(code, e.to_string()).logged("git import")
    }
}

impl From<ServeError> for ServiceError {
    fn from(e: ServeError) -> Self {
        let code = match &e {
            ServeError::Core(core) => Code::of_kind(core.kind()),
            ServeError::Protocol(_) | ServeError::NotOurRef(_) => Code::BadRequest,
            ServeError::TooLarge => Code::TooLarge,
            ServeError::Corrupt(_) => Code::Corrupt,
            ServeError::Missing(_) | ServeError::Io(_) => Code::Storage,
        };
        ServiceError::new(code, e.to_string()).logged("git request")
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::parse("kind"), None);
    }

    #[test]
    fn core_errors_keep_their_code_and_stale_names_both_contents() {
        let e = ServiceError::from(aether_core::Error::NotEmpty { path: "d".into() });
        assert_eq!(
            (e.code, e.message.as_str()),
            (Code::NotEmpty, "directory 'd' is not empty")
        );
        let e = ServiceError::stale("f", "\"a\"", "b");
        assert_eq!(e.code, Code::Stale);
        assert_eq!(e.details.get("expected").map(String::as_str), Some("\"a\""));
        assert_eq!(e.details.get("actual").map(String::as_str), Some("b"));
        // Every core kind has a code of the same name.
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::ReadOnly,
            ErrorKind::TooLarge,
            ErrorKind::QuotaExceeded,
            ErrorKind::Storage,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(Code::of_kind(kind).as_str(), kind.code());
        }
    }
}
