//! The one place service errors become HTTP: a status chosen from the error's code, and
//! `{"error": {"code", "message"}}` with the code's string unchanged (the same string gRPC puts
//! in `aether-code`). Git smart HTTP uses the same statuses with a text body (`git.rs`).

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use aether_service::{Code, ServiceError};

/// A service error on its way to an HTTP response.
#[derive(Debug, Clone)]
pub struct ApiError(pub ServiceError);

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_path`, `unauthorized`.
    pub code: String,
    pub message: String,
    /// Facts about the failure a client may act on (e.g. `target` of `is_a_symlink`,
    /// `expected` and `actual` of `stale`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// The HTTP status of every code.
pub fn status_of(code: Code) -> StatusCode {
    match code {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists
        | Code::NotADirectory
        | Code::IsADirectory
        | Code::IsASymlink
        | Code::IsASpecialFile
        | Code::NotEmpty
        | Code::ReadOnly
        | Code::Conflict => StatusCode::CONFLICT,
        Code::Stale => StatusCode::PRECONDITION_FAILED,
        Code::InvalidPath | Code::BadRequest | Code::InvalidJson => StatusCode::BAD_REQUEST,
        Code::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        Code::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::SourceUnreachable => StatusCode::BAD_GATEWAY,
        Code::SourceTimeout => StatusCode::GATEWAY_TIMEOUT,
        Code::Corrupt | Code::Storage | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Code::UriTooLong => StatusCode::URI_TOO_LONG,
        Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::ClientClosed => StatusCode::BAD_REQUEST,
        Code::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(ServiceError::new(code, message))
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.0.code)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = retry_after(&self.0);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code.as_str().to_owned(),
                message: self.0.message,
                details: self.0.details.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry {
            resp.headers_mut().insert(header::RETRY_AFTER, secs);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aether\""),
            );
        }
        resp
    }
}

/// The `Retry-After` value of an error that names one (`overloaded`, `rate_limited`).
pub fn retry_after(e: &ServiceError) -> Option<HeaderValue> {
    let secs = e.details.get("retry_after")?;
    HeaderValue::from_str(secs).ok()
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_only_storage_failures_are_5xx_of_ours() {
        for code in Code::ALL {
            let status = status_of(code);
            assert!(status.is_client_error() || status.is_server_error(), "{code}");
            let ours = status.is_server_error()
                && !matches!(code, Code::SourceUnreachable | Code::SourceTimeout | Code::Overloaded);
            assert_eq!(ours, code.is_internal(), "{code}");
        }
        assert_eq!(status_of(Code::InvalidJson), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(Code::IsASymlink), StatusCode::CONFLICT);
    }
}
