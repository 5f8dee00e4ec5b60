//! Finding the caller's secret in HTTP framing (`Authorization: Bearer X`, or the password of
//! HTTP basic auth for git clients) and handing it to the service, which decides who it is
//! (`aether_service::Service::authenticate`). Every route but `/healthz` needs one. Also the
//! admin token file, created on first start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use aether_core::Surface;
use aether_service::{Principal, ServiceError};

use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a REST request, as the authentication middleware found it.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ServiceError::unauthorized("missing credentials").into())
    }
}

/// A request made with the admin token; anything else is refused with 403 before the body is
/// read (the service checks again).
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        p.require_admin()?;
        Ok(Admin(p))
    }
}

/// The secret from `Authorization: Bearer X`, or the password of HTTP basic auth (git clients).
fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = decode_base64(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':').map_or(text.clone(), |(_, pw)| pw.to_owned()))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

/// Who sends requests with these headers. Shared by the HTTP middleware, git smart HTTP and
/// the gRPC services (whose metadata are these headers).
pub(crate) async fn principal_for(
    state: &AppState,
    headers: &HeaderMap,
    surface: Surface,
) -> Result<Principal, ServiceError> {
    state
        .service
        .authenticate(credential(headers).as_deref(), surface)
        .await
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" || (state.metrics_open && req.uri().path() == "/metrics") {
        return next.run(req).await;
    }
    match principal_for(&state, req.headers(), Surface::Rest).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal.clone());
            with_handoff(&principal, next.run(req).await)
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// The header naming the mounts whose changes a request went on without (see
/// `aether_service::handoff`): absent when every read and freeze of the request was exact.
pub const HANDOFF_HEADER: &str = "aether-handoff-incomplete";

/// `resp`, saying which mounts did not hand their changes over in time, if any.
pub(crate) fn with_handoff(p: &Principal, mut resp: Response) -> Response {
    let missed = p.incomplete_handoffs();
    if !missed.is_empty()
        && let Ok(v) = missed.join(", ").parse()
    {
        resp.headers_mut().insert(HANDOFF_HEADER, v);
    }
    resp
}

/// Read the admin token, creating it (mode 0600) on first start. Returns the token and whether
/// it was created now.
pub fn ensure_admin_token(data_dir: &Path) -> std::io::Result<(String, bool)> {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let token = aether_core::tokens::new_secret();
    let tmp = data_dir.join(".admin.token.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok((token, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_credentials() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("!!!").is_none());
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(credential(&h).as_deref(), Some("pass"));
        h.insert(AUTHORIZATION, "Bearer  aet_x ".parse().unwrap());
        assert_eq!(credential(&h).as_deref(), Some("aet_x"));
    }
}
