//! The one place core errors become HTTP: a status and `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use aether_core::ErrorKind;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_path`, `unauthorized`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::NotEmpty
        | ErrorKind::ReadOnly
        | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Stale => StatusCode::PRECONDITION_FAILED,
        ErrorKind::InvalidPath => StatusCode::BAD_REQUEST,
        ErrorKind::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Corrupt | ErrorKind::Storage => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<aether_core::Error> for ApiError {
    fn from(e: aether_core::Error) -> Self {
        let kind = e.kind();
        let status = status_of(kind);
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError {
            status,
            code: kind.code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aether\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<aether_gitbridge::import::ImportError> for ApiError {
    fn from(e: aether_gitbridge::import::ImportError) -> Self {
        use aether_gitbridge::import::ImportError as E;
        let e = match e {
            E::Core(core) => return core.into(),
            other => other,
        };
        let (status, code) = match &e {
            E::Core(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            E::InvalidSource(_) | E::NothingToImport(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument"),
            E::SourceNotFound { .. } | E::UnknownRef { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::SourceUnreachable { .. } => (StatusCode::BAD_GATEWAY, "source_unreachable"),
            E::TimedOut { .. } => (StatusCode::GATEWAY_TIMEOUT, "source_timeout"),
            E::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::Git { .. } | E::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "git import failed");
        }
        ApiError::new(status, code, e.to_string())
    }
}
