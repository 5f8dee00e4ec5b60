//! CLI errors: a kind (which decides the exit code), a one-line message and a one-line hint.
//! gRPC statuses are mapped here and nowhere else.

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
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            hint: hint.into(),
        }
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
        let code = s
            .metadata()
            .get("aether-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
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
            Code::ResourceExhausted => (
                Kind::Usage,
                "the request is over a server limit (see aetherd --help)".to_owned(),
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
        CliError { kind, message, hint }
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

/// Describe a transport-level failure in words (the source chain, joined).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
