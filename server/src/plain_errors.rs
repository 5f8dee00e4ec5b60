//! Every error response is `{"error":{"code","message"}}` with a JSON content type, also the
//! ones no handler wrote: axum's extractor rejections (a path that is not UTF-8, a body over the
//! limit read as bytes), and anything else answering 4xx/5xx with plain text or nothing. This
//! middleware rewrites such responses; it never changes a status, a JSON error, a gRPC response
//! (errors travel in `grpc-status`), or the git surface's plain-text errors (git clients show
//! those to their user as they are).

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use aether_service::Code;

use crate::error::{ErrorBody, ErrorDetail};

/// Most bytes of a plain error body kept as the message.
const MAX_MESSAGE: usize = 4096;

/// Middleware: turn a non-JSON error response into the API's JSON error.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let git = req.uri().path().starts_with("/git/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || git {
        return resp;
    }
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") || ctype.starts_with("application/grpc") {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("request failed").to_owned(),
        t => t.to_owned(),
    };
    let mut fixed = json_error(status, code_of(status), message);
    // Keep what the original said besides its body (WWW-Authenticate, Allow, Content-Range...).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name, value.clone());
        }
    }
    fixed
}

/// An API error response with this status, code and message.
pub fn json_error(status: StatusCode, code: Code, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_owned(),
            message,
            details: Default::default(),
        },
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The code of an error whose producer gave none, from its status (one of the service's codes,
/// so the vocabulary stays closed).
pub fn code_of(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::BadRequest,
        StatusCode::UNAUTHORIZED => Code::Unauthorized,
        StatusCode::FORBIDDEN => Code::Forbidden,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => Code::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => Code::TooLarge,
        StatusCode::URI_TOO_LONG => Code::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Code::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::TOO_MANY_REQUESTS => Code::RateLimited,
        StatusCode::CONFLICT => Code::Conflict,
        StatusCode::PRECONDITION_FAILED => Code::Stale,
        StatusCode::RANGE_NOT_SATISFIABLE => Code::RangeNotSatisfiable,
        StatusCode::BAD_GATEWAY => Code::SourceUnreachable,
        StatusCode::GATEWAY_TIMEOUT => Code::SourceTimeout,
        StatusCode::INSUFFICIENT_STORAGE => Code::QuotaExceeded,
        s if s.is_server_error() => Code::Internal,
        _ => Code::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::status_of;

    #[test]
    fn a_status_without_a_code_gets_a_code_of_that_status() {
        for code in Code::ALL {
            let status = status_of(code);
            assert_eq!(status_of(code_of(status)), status, "{code} -> {status}");
        }
    }
}
