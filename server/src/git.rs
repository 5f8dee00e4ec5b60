//! Git smart HTTP at `/git/{id}` and `/git/{id}.git`: `info/refs?service=git-upload-pack` and
//! `git-upload-pack`, a codec over the service's git use cases (the protocol is in
//! `aether_gitbridge::serve`). Git clients authenticate with HTTP basic auth (the token is the
//! password), so a missing or bad credential gets a `Basic` challenge that makes git ask its
//! credential helper. Errors have the REST statuses (`error::status_of`) and a plain text body,
//! which git shows to its user.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use aether_core::Surface;
use aether_gitbridge::serve::{self, Version};
use aether_service::{Code, GitRepo, ServiceError};

use crate::auth::{Caller, principal_for, with_handoff};
use crate::error::{retry_after, status_of};
use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/git/{repo}/info/refs", get(info_refs))
        .route("/git/{repo}/git-upload-pack", post(upload_pack))
        .route("/git/{repo}/git-receive-pack", post(receive_pack))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// An error as git clients want it: a status and a one-line text body (and `Retry-After` when
/// the server is overloaded).
struct GitError(StatusCode, String, Option<HeaderValue>);

impl IntoResponse for GitError {
    fn into_response(self) -> Response {
        let mut resp = (self.0, format!("{}\n", self.1)).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = self.2 {
            h.insert(header::RETRY_AFTER, secs);
        }
        if self.0 == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"aetherfs\""),
            );
        }
        resp
    }
}

impl From<ServiceError> for GitError {
    fn from(e: ServiceError) -> Self {
        let retry = retry_after(&e);
        GitError(status_of(e.code), e.message, retry)
    }
}

impl From<crate::error::ApiError> for GitError {
    fn from(e: crate::error::ApiError) -> Self {
        e.0.into()
    }
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match principal_for(&state, req.headers(), Surface::Git).await {
        Ok(p) => {
            req.extensions_mut().insert(p.clone());
            with_handoff(&p, next.run(req).await)
        }
        // Said in git's terms (basic auth, token as password), not the REST API's bearer tokens.
        Err(e) if e.code == Code::Unauthorized => {
            let msg = if req.headers().contains_key(header::AUTHORIZATION) {
                "authentication failed: the password must be an AetherFS token valid on this server"
            } else {
                "authentication required: give an AetherFS token as the password (any user name)"
            };
            GitError(StatusCode::UNAUTHORIZED, msg.into(), None).into_response()
        }
        Err(e) => GitError::from(e).into_response(),
    }
}

fn version(headers: &HeaderMap) -> Version {
    let v2 = headers
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(':').any(|p| p.trim() == "version=2"));
    if v2 { Version::V2 } else { Version::V0 }
}

fn git_response(content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[derive(Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

async fn info_refs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(repo): Path<String>,
    Query(q): Query<InfoRefsQuery>,
    headers: HeaderMap,
) -> Result<Response, GitError> {
    state.service.git_session(&caller, GitRepo(&repo))?;
    match q.service.as_deref() {
        Some("git-upload-pack") => {}
        Some("git-receive-pack") => state.service.git_receive_pack(&caller, GitRepo(&repo))?,
        _ => {
            return Err(GitError(
                StatusCode::BAD_REQUEST,
                "only smart HTTP is served: use ?service=git-upload-pack".into(),
                None,
            ));
        }
    }
    let body = state
        .service
        .git_advertise(&caller, GitRepo(&repo), version(&headers))
        .await?;
    Ok(git_response(
        "application/x-git-upload-pack-advertisement",
        Body::from(body),
    ))
}

async fn upload_pack(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(repo): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GitError> {
    let raw = axum::body::to_bytes(body, serve::MAX_REQUEST + 1).await.map_err(|e| {
        if crate::body_timeout::is_timeout(&e) {
            GitError(
                StatusCode::REQUEST_TIMEOUT,
                "the request body sent nothing for longer than the body idle timeout".into(),
                None,
            )
        } else {
            GitError(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}"), None)
        }
    })?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"));
    let pack = state
        .service
        .git_upload_pack(&caller, GitRepo(&repo), version(&headers), raw, gzip)
        .await?;
    // The pack (and its job) lives as long as the response body.
    let stream = futures_util::stream::unfold(pack, |mut pack| async move {
        pack.rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), pack))
    });
    Ok(git_response(
        "application/x-git-upload-pack-result",
        Body::from_stream(stream),
    ))
}

async fn receive_pack(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(repo): Path<String>,
) -> Result<Response, GitError> {
    state.service.git_receive_pack(&caller, GitRepo(&repo))?;
    Err(GitError(StatusCode::FORBIDDEN, "pushing is not supported".into(), None))
}
