//! The one place errors become gRPC statuses. Core errors carry their stable code (the same
//! `code` the HTTP API puts in its JSON body) in the `aether-code` metadata entry, so clients can
//! tell a missing session from a missing file without parsing messages.

use axum::http::StatusCode;
use tonic::{Code, Status};

use aether_core::ErrorKind;

use crate::error::ApiError;

/// The metadata key holding the machine-readable error code.
pub const CODE_KEY: &str = "aether-code";

pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::NotEmpty
        | ErrorKind::ReadOnly
        | ErrorKind::Conflict
        | ErrorKind::Stale => Code::FailedPrecondition,
        ErrorKind::InvalidPath | ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::TooLarge => Code::ResourceExhausted,
        ErrorKind::Corrupt | ErrorKind::Storage => Code::Internal,
    }
}

fn with_code(code: Code, message: String, machine: &str) -> Status {
    let mut status = Status::new(code, message);
    if let Ok(v) = machine.parse() {
        status.metadata_mut().insert(CODE_KEY, v);
    }
    status
}

/// A core error as a status.
pub fn from_core(e: aether_core::Error) -> Status {
    let kind = e.kind();
    let code = code_of(kind);
    if code == Code::Internal {
        tracing::error!(error = %e, "grpc request failed");
    }
    with_code(code, e.to_string(), kind.code())
}

/// An error of the HTTP layer's shared helpers (auth, scoping, argument parsing) as a status.
pub fn from_api(e: ApiError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::FailedPrecondition,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::RANGE_NOT_SATISFIABLE => Code::OutOfRange,
        StatusCode::BAD_GATEWAY => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    with_code(code, e.message, e.code)
}

/// A request over a limit of this surface (one message's size), with what to use instead.
pub fn too_large(message: impl Into<String>) -> Status {
    with_code(Code::ResourceExhausted, message.into(), ErrorKind::TooLarge.code())
}

pub fn invalid(message: impl Into<String>) -> Status {
    with_code(Code::InvalidArgument, message.into(), ErrorKind::InvalidArgument.code())
}

/// A page size from a request: 0 means `default`, otherwise 1 to 1000.
pub fn page_limit(limit: u32, default: usize) -> Result<usize, Status> {
    match limit {
        0 => Ok(default),
        l @ 1..=1000 => Ok(l as usize),
        l => Err(invalid(format!("limit must be from 1 to 1000, got {l}"))),
    }
}

pub type GrpcResult<T> = Result<tonic::Response<T>, Status>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code() {
        let cases = [
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::AlreadyExists, Code::AlreadyExists),
            (ErrorKind::NotEmpty, Code::FailedPrecondition),
            (ErrorKind::ReadOnly, Code::FailedPrecondition),
            (ErrorKind::InvalidPath, Code::InvalidArgument),
            (ErrorKind::TooLarge, Code::ResourceExhausted),
            (ErrorKind::Storage, Code::Internal),
        ];
        for (kind, code) in cases {
            assert_eq!(code_of(kind), code, "{kind}");
        }
        let s = from_api(ApiError::forbidden("no"));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(
            s.metadata().get(CODE_KEY).and_then(|v| v.to_str().ok()),
            Some("forbidden")
        );
        assert_eq!(from_api(ApiError::unauthorized("x")).code(), Code::Unauthenticated);
    }
}
