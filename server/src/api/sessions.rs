//! Session lifecycle routes.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use futures_util::TryStreamExt;

use aether_service::{CreateSession, ListSessions, PageRequest, ServiceError, SessionOptions, Source, UpdateSession};

use super::{ApiJson, optional_json, query_pairs, query_value, query_values};
use crate::auth::{Admin, Caller};
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

type Created<T> = (StatusCode, Json<T>);

#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = dto::CreateSession,
    responses((status = 201, body = dto::Session), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(req): ApiJson<dto::CreateSession>,
) -> ApiResult<Created<dto::Session>> {
    let source = match req.source.unwrap_or(dto::Source::Empty) {
        dto::Source::Empty => Source::Empty,
        dto::Source::Session { session, at } => Source::Session { session, at },
        dto::Source::Git { url, rev } => Source::Git { url, rev },
    };
    let options = SessionOptions {
        labels: req.labels,
        tags: req.tags,
        branch: req.branch,
        quota: req.quota.map(Into::into),
        retention: req.retention.map(Into::into),
    };
    let s = state
        .service
        .create_session(&caller, CreateSession { source, options })
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Create a session from a tar or tar.gz body (detected from its bytes), streamed.
#[utoipa::path(post, path = "/v1/sessions/import", tag = "sessions", params(dto::ImportParams),
    request_body(content = dto::Binary, content_type = "application/octet-stream", description = "A tar or tar.gz archive (detected from its bytes)"),
    responses((status = 201, body = dto::Session), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Created<dto::Session>> {
    let options = SessionOptions {
        labels: query_pairs(query.as_deref(), "label")?.into_iter().collect(),
        tags: query_values(query.as_deref(), "tag").into_iter().collect(),
        branch: None,
        quota: import_quota(query.as_deref())?,
        retention: None,
    };
    let reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let s = state.service.import_tar(&caller, reader, options).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// The quota of an import, from `quota_bytes` and `quota_files`; none when both are absent.
fn import_quota(query: Option<&str>) -> ApiResult<Option<aether_core::quota::Quota>> {
    let limit = |name: &str| -> ApiResult<Option<u64>> {
        query_value(query, name)
            .map(|v| {
                v.parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64).ok_or_else(|| {
                    ServiceError::bad_request(format!("{name} must be a number of 0 or more, got '{v}'")).into()
                })
            })
            .transpose()
    };
    let quota = aether_core::quota::Quota {
        bytes: limit("quota_bytes")?,
        files: limit("quota_files")?,
    };
    Ok((!quota.is_unlimited()).then_some(quota))
}

#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(dto::ListParams),
    responses((status = 200, body = dto::SessionList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<dto::SessionList>> {
    let q = query.as_deref();
    let limit = match query_value(q, "limit") {
        None => None,
        Some(l) => Some(
            l.parse::<u64>()
                .map_err(|_| ServiceError::bad_request(format!("limit must be a number from 1 to 1000, got '{l}'")))?,
        ),
    };
    let req = ListSessions {
        labels: query_pairs(q, "label")?.into_iter().collect(),
        state: query_value(q, "state"),
        page: PageRequest {
            limit,
            after: query_value(q, "after"),
        },
    };
    let page = state.service.list_sessions(&caller, req).await?;
    Ok(Json(dto::SessionList {
        sessions: page.items.into_iter().map(dto::Session::from).collect(),
        next: page.next,
    }))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath),
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::Session>> {
    Ok(Json(state.service.get_session(&caller, &id).await?.into()))
}

#[utoipa::path(patch, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath), request_body = dto::UpdateSession,
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::UpdateSession>,
) -> ApiResult<Json<dto::Session>> {
    let req = UpdateSession {
        labels: req.labels,
        tags: req.tags,
        quota: req.quota.map(Into::into),
        retention: req.retention.map(Into::into),
    };
    Ok(Json(state.service.update_session(&caller, &id, req).await?.into()))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fork", tag = "sessions", params(dto::SessionPath),
    request_body = dto::ForkSession,
    responses((status = 201, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn fork(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Created<dto::Session>> {
    // An empty body means "fork the current state".
    let req: dto::ForkSession = optional_json(&body, "fork")?;
    let options = SessionOptions {
        labels: req.labels,
        tags: req.tags,
        branch: None,
        quota: req.quota.map(Into::into),
        retention: req.retention.map(Into::into),
    };
    let s = state.service.fork_session(&caller, &id, req.at, options).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/archive", tag = "sessions", params(dto::SessionPath),
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn archive(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::Session>> {
    Ok(Json(state.service.archive_session(&caller, &id).await?.into()))
}
