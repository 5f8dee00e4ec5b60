//! CLI errors: a kind (which decides the exit code), a code (the server's `aether-code` string
//! when it sent one, so `--json` names a failure as the REST and gRPC APIs do), a one-line
//! message and a one-line hint. gRPC statuses are mapped here and nowhere else.

use std::fmt;

use tonic::Code;

/// What went wrong, as far as a script calling `aether` needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else (server-side failure, local I/O): exit 1.
    Other,
    /// Bad command line or invalid input: exit 2.
    Usage,
    /// A session, path, revision or token does not exist: exit 3.
    NotFound,
    /// No token, a bad token, or a token without access: exit 4.
    Auth,
    /// The server cannot be reached: exit 5.
    Unreachable,
    /// The request conflicts with the current state (exists, not empty, archived): exit 6.
    Conflict,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Auth => 4,
            Kind::Unreachable => 5,
            Kind::Conflict => 6,
        }
    }

    /// The kind named by [`Kind::name`] (`Other` for anything unknown).
    pub fn from_name(name: &str) -> Kind {
        [
            Kind::Usage,
            Kind::NotFound,
            Kind::Auth,
            Kind::Unreachable,
            Kind::Conflict,
        ]
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or(Kind::Other)
    }

    /// The code of a failure of this kind that carries none of its own: one of the server's
    /// codes where one fits, else a name of the CLI's own (`unreachable`, `error`).
    pub fn code(self) -> &'static str {
        match self {
            Kind::Other => "error",
            Kind::Usage => "invalid_argument",
            Kind::NotFound => "not_found",
            Kind::Auth => "unauthorized",
            Kind::Unreachable => "unreachable",
            Kind::Conflict => "conflict",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Other => "error",
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Auth => "auth",
            Kind::Unreachable => "unreachable",
            Kind::Conflict => "conflict",
        }
    }
}

/// The exit codes, as documented in `aether --help` and the README.
pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  other failure (server error, local I/O)
  2  usage error or invalid input
  3  not found (session, path, revision, token)
  4  authentication or permission failure
  5  server unreachable
  6  conflict with the current state (already exists, not empty, archived)";

#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    pub hint: String,
    /// The server's code for this failure, when it came from the server.
    code: Option<String>,
}

/// The code a gRPC status stands for when the server sent no `aether-code` (a proxy or the
/// transport answered): the service vocabulary's name for it, where there is one.
fn code_of_status(code: Code) -> Option<&'static str> {
    Some(match code {
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::InvalidArgument => "invalid_argument",
        Code::ResourceExhausted => "too_large",
        Code::OutOfRange => "range_not_satisfiable",
        Code::Unauthenticated => "unauthorized",
        Code::PermissionDenied => "forbidden",
        Code::FailedPrecondition | Code::Aborted => "conflict",
        Code::Unavailable => "unreachable",
        _ => return None,
    })
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            hint: hint.into(),
            code: None,
        }
    }

    /// The machine-readable code: the server's when it sent one, else the kind's.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or(self.kind.code())
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message, hint)
    }

    pub fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            Kind::NotFound
        } else {
            Kind::Other
        };
        Self::new(kind, format!("{what}: {e}"), "check the local path and its permissions")
    }

    /// A failed call, with the server named for context.
    pub fn from_status(s: &tonic::Status, server: &str) -> Self {
        let message = s.message().to_owned();
        let server_code = s
            .metadata()
            .get("aether-code")
            .and_then(|v| v.to_str().ok())
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let code = server_code.as_deref().unwrap_or("");
        let (kind, hint) = match s.code() {
            Code::Unavailable | Code::DeadlineExceeded if code.starts_with("source_") => (
                Kind::Other,
                "check the repository URL and that the server can reach it".to_owned(),
            ),
            Code::NotFound => (
                Kind::NotFound,
                "list what exists with 'aether session list' or 'aether fs ls SESSION'".to_owned(),
            ),
            Code::Unauthenticated => (
                Kind::Auth,
                "pass a valid token with --token or AETHER_TOKEN (the admin token is in <data-dir>/admin.token)"
                    .to_owned(),
            ),
            Code::PermissionDenied => (
                Kind::Auth,
                "this needs a token with more access (the admin token, or write access)".to_owned(),
            ),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => (
                Kind::Conflict,
                "check the current state with 'aether fs stat' or 'aether session show'".to_owned(),
            ),
            Code::InvalidArgument | Code::OutOfRange => {
                (Kind::Usage, "see 'aether help' for the expected arguments".to_owned())
            }
            Code::ResourceExhausted if code == "rate_limited" => (
                Kind::Other,
                "this token is over its quota of requests or heavy operations; try again in a moment".to_owned(),
            ),
            Code::ResourceExhausted if code == "quota_exceeded" => (
                Kind::Conflict,
                "the session is over its quota: remove files, or raise it with 'aether session quota' (admin)"
                    .to_owned(),
            ),
            Code::ResourceExhausted => (
                Kind::Usage,
                "the request is over a server limit (see aetherd --help)".to_owned(),
            ),
            Code::Unavailable if code == "overloaded" => (
                Kind::Other,
                "the server is at its limit of concurrent work; try again in a moment".to_owned(),
            ),
            Code::Unavailable => (
                Kind::Unreachable,
                format!("is aetherd running at {server}? set --server or AETHER_URL"),
            ),
            Code::Unimplemented => (
                Kind::Other,
                "the server does not offer this yet; upgrade aetherd or use the HTTP API".to_owned(),
            ),
            _ => (Kind::Other, format!("see the logs of aetherd at {server}")),
        };
        let message = if message.is_empty() {
            format!("{}", s.code())
        } else {
            message
        };
        let code = server_code.or_else(|| code_of_status(s.code()).map(str::to_owned));
        CliError {
            kind,
            message,
            hint,
            code,
        }
    }

    pub fn unreachable(server: &str, detail: impl fmt::Display) -> Self {
        Self::new(
            Kind::Unreachable,
            format!("cannot reach the server at {server}: {detail}"),
            "start it with 'aetherd', or point --server / AETHER_URL at a running one",
        )
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for CliError {}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_code(code: Code, aether_code: &str) -> tonic::Status {
        let mut s = tonic::Status::new(code, "m");
        s.metadata_mut().insert("aether-code", aether_code.parse().unwrap());
        s
    }

    #[test]
    fn the_code_is_the_servers_and_the_exit_code_stays_the_kinds() {
        let e = CliError::from_status(&with_code(Code::FailedPrecondition, "is_a_symlink"), "s");
        assert_eq!((e.code(), e.kind.exit_code()), ("is_a_symlink", 6));
        let e = CliError::from_status(&with_code(Code::FailedPrecondition, "stale"), "s");
        assert_eq!((e.code(), e.kind), ("stale", Kind::Conflict));
        let e = CliError::from_status(&with_code(Code::PermissionDenied, "forbidden"), "s");
        assert_eq!((e.code(), e.kind.exit_code()), ("forbidden", 4));
        // No aether-code (a proxy answered): the status's name in the same vocabulary.
        let e = CliError::from_status(&tonic::Status::new(Code::Unauthenticated, "no"), "s");
        assert_eq!((e.code(), e.kind), ("unauthorized", Kind::Auth));
        let e = CliError::from_status(&tonic::Status::new(Code::Internal, "boom"), "s");
        assert_eq!((e.code(), e.kind), ("error", Kind::Other));
        // Failures of the CLI itself.
        assert_eq!(CliError::unreachable("s", "refused").code(), "unreachable");
        assert_eq!(CliError::usage("bad", "hint").code(), "invalid_argument");
    }
}
