//! Session lifecycle routes.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use futures_util::TryStreamExt;

use aether_core::{CreateOptions, ListFilter, Page, SessionSource, SessionState};

use super::{ApiJson, optional_json, query_pairs, query_value, query_values, session_id};
use crate::auth::{Admin, Principal};
use crate::dto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

type Created<T> = (StatusCode, Json<T>);

#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = dto::CreateSession,
    responses((status = 201, body = dto::Session), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<dto::CreateSession>,
) -> ApiResult<Created<dto::Session>> {
    let opts = CreateOptions {
        labels: req.labels,
        tags: req.tags,
        branch: req.branch,
    };
    let source = match req.source.unwrap_or(dto::Source::Empty) {
        dto::Source::Empty => SessionSource::Empty,
        dto::Source::Session { session, at } => SessionSource::Session {
            id: session_id(&session)?,
            at,
        },
        dto::Source::Git { url, rev } => {
            let source = aether_gitbridge::import::GitSource { url, rev };
            let s = aether_gitbridge::import::import_git(&state.engine, &source, opts, &state.git_import).await?;
            return Ok((StatusCode::CREATED, Json(s.into())));
        }
    };
    let s = state.engine.create_session(source, opts).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Create a session from a tar or tar.gz body (detected from its bytes), streamed.
#[utoipa::path(post, path = "/v1/sessions/import", tag = "sessions", params(dto::ImportParams),
    request_body(content = dto::Binary, content_type = "application/octet-stream", description = "A tar or tar.gz archive (detected from its bytes)"),
    responses((status = 201, body = dto::Session), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Created<dto::Session>> {
    let labels = query_pairs(query.as_deref(), "label")?.into_iter().collect();
    let tags = query_values(query.as_deref(), "tag").into_iter().collect();
    let reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let s = state
        .engine
        .import_tar(
            reader,
            CreateOptions {
                labels,
                tags,
                branch: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(dto::ListParams),
    responses((status = 200, body = dto::SessionList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<dto::SessionList>> {
    let q = query.as_deref();
    let state_filter = match query_value(q, "state").as_deref() {
        None => None,
        Some(s) => Some(SessionState::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown state '{s}'")))?),
    };
    let limit = match query_value(q, "limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be a number from 1 to 1000, got '{l}'")))?,
    };
    let after = query_value(q, "after").map(|a| session_id(&a)).transpose()?;
    let filter = ListFilter {
        labels: query_pairs(q, "label")?.into_iter().collect(),
        state: state_filter,
    };
    let page = state.engine.list_sessions(&filter, &Page { limit, after }).await?;
    let next = if page.len() == limit {
        page.last().map(|s| s.id.to_string())
    } else {
        None
    };
    let sessions = page
        .into_iter()
        .filter(|s| principal.sees(&s.id))
        .map(dto::Session::from)
        .collect();
    Ok(Json(dto::SessionList { sessions, next }))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath),
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::Session>> {
    let id = session_id(&id)?;
    principal.require(&id, false)?;
    Ok(Json(state.engine.get_session(&id).await?.into()))
}

#[utoipa::path(patch, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath), request_body = dto::UpdateSession,
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::UpdateSession>,
) -> ApiResult<Json<dto::Session>> {
    let id = session_id(&id)?;
    principal.require(&id, true)?;
    Ok(Json(
        state.engine.update_session(&id, req.labels, req.tags).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", params(dto::SessionPath),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, _admin: Admin, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = session_id(&id)?;
    state.engine.delete_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fork", tag = "sessions", params(dto::SessionPath),
    request_body = dto::ForkSession,
    responses((status = 201, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn fork(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Created<dto::Session>> {
    let id = session_id(&id)?;
    // An empty body means "fork the current state".
    let req: dto::ForkSession = optional_json(&body, "fork")?;
    let source = SessionSource::Session { id, at: req.at };
    let s = state
        .engine
        .create_session(
            source,
            CreateOptions {
                labels: req.labels,
                tags: req.tags,
                branch: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/archive", tag = "sessions", params(dto::SessionPath),
    responses((status = 200, body = dto::Session), (status = 404, body = ErrorBody)))]
pub async fn archive(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::Session>> {
    let id = session_id(&id)?;
    principal.require(&id, true)?;
    Ok(Json(state.engine.archive_session(&id).await?.into()))
}
