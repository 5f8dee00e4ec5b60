//! The one place service errors become gRPC statuses: a `Code` chosen from the error's code,
//! the message, and the code's string in the `aether-code` metadata entry (the same string the
//! REST API puts in its JSON body), so clients can tell a missing session from a missing file
//! without parsing messages.

use tonic::{Code as GrpcCode, Status};

use aether_service::{Code, ServiceError};

/// The metadata key holding the machine-readable error code.
pub const CODE_KEY: &str = "aether-code";
/// The metadata key of how many seconds to wait before retrying (`overloaded`).
pub const RETRY_AFTER_KEY: &str = "retry-after";

/// The gRPC code of every service code.
pub fn code_of(code: Code) -> GrpcCode {
    match code {
        Code::NotFound => GrpcCode::NotFound,
        Code::AlreadyExists => GrpcCode::AlreadyExists,
        Code::NotADirectory
        | Code::IsADirectory
        | Code::IsASymlink
        | Code::IsASpecialFile
        | Code::NotEmpty
        | Code::ReadOnly
        | Code::Conflict
        | Code::Stale => GrpcCode::FailedPrecondition,
        Code::InvalidPath | Code::InvalidArgument | Code::InvalidJson | Code::BadRequest => GrpcCode::InvalidArgument,
        Code::TooLarge => GrpcCode::ResourceExhausted,
        Code::RangeNotSatisfiable => GrpcCode::OutOfRange,
        Code::Unauthorized => GrpcCode::Unauthenticated,
        Code::Forbidden => GrpcCode::PermissionDenied,
        Code::MethodNotAllowed => GrpcCode::Unimplemented,
        Code::SourceUnreachable => GrpcCode::Unavailable,
        Code::SourceTimeout => GrpcCode::DeadlineExceeded,
        Code::Corrupt | Code::Storage | Code::Internal => GrpcCode::Internal,
        Code::Unavailable => GrpcCode::Unavailable,
        Code::RequestTimeout => GrpcCode::DeadlineExceeded,
        Code::UriTooLong | Code::HeadersTooLarge | Code::UnsupportedMediaType => GrpcCode::InvalidArgument,
        Code::ClientClosed => GrpcCode::Cancelled,
        Code::Overloaded => GrpcCode::Unavailable,
        Code::RateLimited | Code::QuotaExceeded => GrpcCode::ResourceExhausted,
    }
}

/// A service error as a status.
pub fn status(e: ServiceError) -> Status {
    let mut status = Status::new(code_of(e.code), e.message);
    status
        .metadata_mut()
        .insert(CODE_KEY, tonic::metadata::MetadataValue::from_static(e.code.as_str()));
    if let Some(secs) = e.details.get("retry_after")
        && let Ok(v) = secs.parse()
    {
        status.metadata_mut().insert(RETRY_AFTER_KEY, v);
    }
    status
}

/// A request this surface cannot decode (a missing oneof, an empty stream).
pub fn invalid(message: impl Into<String>) -> Status {
    status(ServiceError::invalid(message))
}

pub type GrpcResult<T> = Result<tonic::Response<T>, Status>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_grpc_code_and_travels_as_its_string() {
        let cases = [
            (Code::NotFound, GrpcCode::NotFound),
            (Code::AlreadyExists, GrpcCode::AlreadyExists),
            (Code::IsASymlink, GrpcCode::FailedPrecondition),
            (Code::Stale, GrpcCode::FailedPrecondition),
            (Code::InvalidPath, GrpcCode::InvalidArgument),
            (Code::InvalidJson, GrpcCode::InvalidArgument),
            (Code::TooLarge, GrpcCode::ResourceExhausted),
            (Code::RangeNotSatisfiable, GrpcCode::OutOfRange),
            (Code::Unauthorized, GrpcCode::Unauthenticated),
            (Code::Forbidden, GrpcCode::PermissionDenied),
            (Code::Storage, GrpcCode::Internal),
            (Code::Unavailable, GrpcCode::Unavailable),
            (Code::Internal, GrpcCode::Internal),
        ];
        for (code, grpc) in cases {
            assert_eq!(code_of(code), grpc, "{code}");
        }
        for code in Code::ALL {
            let s = status(ServiceError::new(code, "m"));
            assert_eq!(
                s.metadata().get(CODE_KEY).and_then(|v| v.to_str().ok()),
                Some(code.as_str())
            );
            assert_eq!(s.message(), "m");
        }
    }
}
