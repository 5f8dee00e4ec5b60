//! Every request has an id: the client's `x-request-id` when it is one we can log as it is (1
//! to 128 characters of `[A-Za-z0-9._:-]`), else a new one (32 hex digits). It goes back in the
//! response's `x-request-id` and is the `id` field of the request's span (`request`), so every
//! log line written while serving it carries it, on blocking threads too (see core's
//! `blocking`), in the text and the JSON log formats.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";

/// Longest client-given id kept.
const MAX_LEN: usize = 128;

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

fn generate() -> HeaderValue {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: the time still tells requests apart well enough for logs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&hex).unwrap_or(HeaderValue::from_static("0"))
}

/// Give the request its id (before its span is made) and return it with the response.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .filter(|v| acceptable(v))
        .cloned()
        .unwrap_or_else(generate);
    req.headers_mut().insert(HEADER, id.clone());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(HEADER, id);
    resp
}

/// The span every log line of a request is written in.
pub fn span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_a_log_can_carry_as_they_are_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_X.y:z")));
        for bad in ["", "has space", "quote\"", "tab\t"] {
            let ok = HeaderValue::from_str(bad).map_or(true, |v| !acceptable(&v));
            assert!(ok, "{bad:?}");
        }
        assert!(!acceptable(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
        let g = generate();
        assert!(acceptable(&g) && g.len() == 32, "{g:?}");
        assert_ne!(generate(), g);
    }
}
