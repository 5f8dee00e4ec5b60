//! Checkpoints, restore, commits and the log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use aether_core::Identity;
use aether_service::{CommitRequest, PageRequest};

use super::{ApiJson, ApiQuery, optional_json};
use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Freeze the current state into a commit and `refs/aether/sessions/{id}/checkpoints/N`.
#[utoipa::path(post, path = "/v1/sessions/{id}/checkpoints", tag = "history", params(dto::SessionPath),
    request_body = dto::CheckpointRequest,
    responses((status = 201, body = dto::Checkpoint), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<dto::Checkpoint>)> {
    let req: dto::CheckpointRequest = optional_json(&body, "checkpoint")?;
    let cp = state.service.checkpoint(&caller, &id, req.message).await?;
    Ok((StatusCode::CREATED, Json(cp.into())))
}

#[utoipa::path(get, path = "/v1/sessions/{id}/checkpoints", tag = "history", params(dto::SessionPath),
    responses((status = 200, body = dto::CheckpointList), (status = 404, body = ErrorBody)))]
pub async fn checkpoints(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::CheckpointList>> {
    let list = state.service.list_checkpoints(&caller, &id).await?;
    Ok(Json(dto::CheckpointList {
        checkpoints: list.into_iter().map(Into::into).collect(),
    }))
}

/// Set the session to a revision; the state it discards is checkpointed first.
#[utoipa::path(post, path = "/v1/sessions/{id}/restore", tag = "history", params(dto::SessionPath), request_body = dto::RestoreRequest,
    responses((status = 200, body = dto::RestoreResult), (status = 404, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::RestoreRequest>,
) -> ApiResult<Json<dto::RestoreResult>> {
    let out = state.service.restore(&caller, &id, &req.rev).await?;
    Ok(Json(dto::RestoreResult {
        saved: out.saved.map(Into::into),
        restored_commit: out.restored_commit.to_hex().to_string(),
        tree: out.tree.to_hex().to_string(),
    }))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/commits", tag = "history", params(dto::SessionPath), request_body = dto::CommitRequest,
    responses((status = 201, body = dto::Commit), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn commit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::CommitRequest>,
) -> ApiResult<(StatusCode, Json<dto::Commit>)> {
    let req = CommitRequest {
        message: req.message,
        author: req.author.map(|a| Identity {
            name: a.name,
            email: a.email,
        }),
        branch: req.branch,
    };
    let c = state.service.commit(&caller, &id, req).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Commits reachable from `rev` (default: the session's branch), newest first, paged.
#[utoipa::path(get, path = "/v1/sessions/{id}/commits", tag = "history", params(dto::SessionPath, dto::LogParams),
    responses((status = 200, body = dto::CommitList), (status = 404, body = ErrorBody)))]
pub async fn log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<dto::LogParams>,
) -> ApiResult<Json<dto::CommitList>> {
    let page = PageRequest {
        limit: q.limit.map(|l| l as u64),
        after: q.after,
    };
    let page = state.service.log(&caller, &id, q.rev, page).await?;
    Ok(Json(dto::CommitList {
        commits: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// One commit with a page of the paths it changed; `changes_next` is the `after` of the next.
#[utoipa::path(get, path = "/v1/sessions/{id}/commits/{oid}", tag = "history", params(dto::CommitPath, dto::CommitParams),
    responses((status = 200, body = dto::Commit), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_commit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, oid)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::CommitParams>,
) -> ApiResult<Json<dto::Commit>> {
    let page = PageRequest {
        limit: q.limit.map(|l| l as u64),
        after: q.after,
    };
    let shown = state.service.show_commit(&caller, &id, &oid, page).await?;
    let mut c = dto::Commit::from(shown.info);
    c.changes = Some(
        shown
            .changes
            .into_iter()
            .map(|ch| dto::Change {
                path: ch.path,
                change: serde_json::to_value(ch.change)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .collect(),
    );
    c.changes_next = shown.next;
    Ok(Json(c))
}
