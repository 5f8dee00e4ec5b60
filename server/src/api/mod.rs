//! API v1 routes. Every handler is a codec: it decodes its input, makes one service call, and
//! encodes the result (errors map to HTTP in `error.rs` only); nothing else happens here.

mod activity;
mod admin;
mod analytics;
mod changes;
mod export;
mod files;
mod fs;
mod history;
mod meta;
mod sessions;
mod tokens;
mod tree_stream;
mod usage;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use aether_service::{Code, ServiceError};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use meta::ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/v1/openapi.json", get(meta::openapi))
        .route("/v1/admin/gc", post(admin::gc))
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/v1/sessions/import", post(sessions::import))
        .route(
            "/v1/sessions/{id}",
            get(sessions::show).patch(sessions::update).delete(sessions::delete),
        )
        .route("/v1/sessions/{id}/fork", post(sessions::fork))
        .route("/v1/sessions/{id}/archive", post(sessions::archive))
        .route("/v1/sessions/{id}/changes", get(changes::changes))
        .route("/v1/sessions/{id}/activity", get(activity::activity))
        .route("/v1/sessions/{id}/health", get(analytics::health))
        .route("/v1/analytics", get(analytics::analytics))
        .route("/v1/sessions/{id}/usage", get(usage::session))
        .route("/v1/usage", get(usage::server))
        .route(
            "/v1/sessions/{id}/files/{*path}",
            get(files::read)
                .put(files::write)
                .patch(files::patch)
                .delete(files::remove),
        )
        .route("/v1/sessions/{id}/tree", get(fs::tree_root))
        .route("/v1/sessions/{id}/tree/{*path}", get(fs::tree))
        .route("/v1/sessions/{id}/stat/{*path}", get(fs::stat))
        .route("/v1/sessions/{id}/fs/rename", post(fs::rename))
        .route("/v1/sessions/{id}/fs/mkdir", post(fs::mkdir))
        .route("/v1/sessions/{id}/fs/symlink", post(fs::symlink))
        .route("/v1/sessions/{id}/fs/chmod", post(fs::chmod))
        .route("/v1/sessions/{id}/fs/chown", post(fs::chown))
        .route("/v1/sessions/{id}/fs/mknod", post(fs::mknod))
        .route("/v1/sessions/{id}/fs/link", post(fs::link))
        .route("/v1/sessions/{id}/fs/utimes", post(fs::utimes))
        .route(
            "/v1/sessions/{id}/checkpoints",
            post(history::checkpoint).get(history::checkpoints),
        )
        .route("/v1/sessions/{id}/restore", post(history::restore))
        .route("/v1/sessions/{id}/commits", post(history::commit).get(history::log))
        .route("/v1/sessions/{id}/commits/{oid}", get(history::show_commit))
        .route("/v1/sessions/{id}/export", get(export::export))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{token_id}", axum::routing::delete(tokens::revoke))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A JSON body. One rule on every route: a body that is not JSON, or not JSON of the expected
/// shape, is 400 `invalid_json`; one over the limit is 413 `too_large`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(match rej {
                JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
                    ServiceError::invalid_json(rej.body_text()).into()
                }
                _ if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => ServiceError::too_large(rej.body_text()).into(),
                _ => ServiceError::bad_request(rej.body_text()).into(),
            }),
        }
    }
}

/// A JSON body that may be empty: empty (or blank) means `T::default()`; otherwise the rule of
/// [`ApiJson`].
pub(crate) fn optional_json<T: DeserializeOwned + Default>(body: &[u8], what: &str) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ServiceError::invalid_json(format!("invalid {what} request: {e}")).into())
}

/// Query string whose rejections are 400 `bad_request`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(rej) => Err(ServiceError::bad_request(rej.body_text()).into()),
        }
    }
}

/// `key=value` pairs from repeated query parameters named `name`.
pub(crate) fn query_pairs(query: Option<&str>, name: &str) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == name {
            let (key, value) = v
                .split_once('=')
                .ok_or_else(|| ServiceError::bad_request(format!("{name} must be key=value, got '{v}'")))?;
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(out)
}

pub(crate) fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub(crate) fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query_values(query, name).into_iter().next_back()
}
