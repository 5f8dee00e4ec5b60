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
pub fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
        },
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The `code` of an error whose producer gave none, from its status.
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_argument",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}
