//! Listings, stat, and the namespace operations (rename, mkdir, symlink, chmod, chown, mknod,
//! link).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use aether_service::{Principal, ServiceError};

use super::files::parse_mode;
use super::{ApiJson, ApiQuery};
use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// One directory's listing, or with `recursive` everything below it, streamed as it is walked
/// (see `tree_stream`). One directory holding more than `max_list_tree_entries` entries is
/// streamed too.
async fn listing(
    state: &AppState,
    caller: &Principal,
    id: &str,
    path: &str,
    q: dto::TreeParams,
) -> ApiResult<Response> {
    let shown = path.trim_matches('/').to_owned();
    if q.recursive {
        let walk = state.service.walk(caller, id, path, q.at.as_deref()).await?;
        return super::tree_stream::respond(shown, walk).await;
    }
    // A directory too large to answer whole streams like a recursive listing (no `seq`).
    let listing = match state.service.list_or_walk(caller, id, path, q.at.as_deref()).await? {
        aether_service::DirListing::Walk(walk) => return super::tree_stream::respond(shown, *walk).await,
        aether_service::DirListing::Whole(listing) => listing,
    };
    Ok(Json(dto::Listing {
        path: shown,
        entries: listing.entries.into_iter().map(|e| e.stat.into()).collect(),
        seq: listing.seq,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/sessions/{id}/tree", tag = "files", params(dto::SessionPath, dto::TreeParams),
    responses((status = 200, body = dto::Listing), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn tree_root(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<dto::TreeParams>,
) -> ApiResult<Response> {
    listing(&state, &caller, &id, "", q).await
}

/// A directory's entries with every attribute (`?recursive=true` for the whole subtree, streamed
/// as it is walked; a tree deeper or larger than the walk limits is refused with 413, or, when
/// the limit is met after the response began, the transfer is cut off before the listing ends).
#[utoipa::path(get, path = "/v1/sessions/{id}/tree/{path}", tag = "files", params(dto::FilePath, dto::TreeParams),
    responses((status = 200, body = dto::Listing), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn tree(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::TreeParams>,
) -> ApiResult<Response> {
    listing(&state, &caller, &id, &path, q).await
}

/// Metadata of one path, including the git blob id and, for chunked files, the chunk extents.
#[utoipa::path(get, path = "/v1/sessions/{id}/stat/{path}", tag = "files", params(dto::FilePath, dto::AtParams),
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody)))]
pub async fn stat(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::AtParams>,
) -> ApiResult<Json<dto::Stat>> {
    Ok(Json(
        state.service.stat(&caller, &id, &path, q.at.as_deref()).await?.into(),
    ))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/rename", tag = "files", params(dto::SessionPath), request_body = dto::RenameRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::RenameRequest>,
) -> ApiResult<Json<dto::Stat>> {
    Ok(Json(
        state.service.rename(&caller, &id, &req.from, &req.to).await?.into(),
    ))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/mkdir", tag = "files", params(dto::SessionPath), request_body = dto::MkdirRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn mkdir(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::MkdirRequest>,
) -> ApiResult<Json<dto::Stat>> {
    Ok(Json(
        state.service.mkdir(&caller, &id, &req.path, req.parents).await?.into(),
    ))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/symlink", tag = "files", params(dto::SessionPath), request_body = dto::SymlinkRequest,
    responses((status = 200, body = dto::Stat), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn symlink(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::SymlinkRequest>,
) -> ApiResult<Json<dto::Stat>> {
    Ok(Json(
        state
            .service
            .symlink(&caller, &id, &req.path, &req.target)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/chmod", tag = "files", params(dto::SessionPath), request_body = dto::ChmodRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn chmod(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::ChmodRequest>,
) -> ApiResult<Json<dto::Stat>> {
    let mode = mode_of(&req.mode)?;
    Ok(Json(state.service.chmod(&caller, &id, &req.path, mode).await?.into()))
}

/// A mode given as an octal string or a number.
fn mode_of(mode: &serde_json::Value) -> ApiResult<u32> {
    Ok(match mode {
        serde_json::Value::String(s) => parse_mode(s)?,
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| ServiceError::invalid("mode must be a non-negative integer"))?,
        _ => {
            return Err(ServiceError::invalid("mode must be an octal string like \"755\" or a number").into());
        }
    })
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/chown", tag = "files", params(dto::SessionPath), request_body = dto::ChownRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn chown(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::ChownRequest>,
) -> ApiResult<Json<dto::Stat>> {
    let stat = state.service.chown(&caller, &id, &req.path, req.uid, req.gid).await?;
    Ok(Json(stat.into()))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/mknod", tag = "files", params(dto::SessionPath), request_body = dto::MknodRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn mknod(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::MknodRequest>,
) -> ApiResult<Json<dto::Stat>> {
    let mode = mode_of(&req.mode)?;
    if i64::try_from(req.rdev).is_err() {
        return Err(ServiceError::invalid("rdev must be at most 2^63 - 1 (an int64, as documented)").into());
    }
    let stat = state
        .service
        .mknod(&caller, &id, &req.path, &req.kind, mode, req.rdev)
        .await?;
    Ok(Json(stat.into()))
}

#[utoipa::path(post, path = "/v1/sessions/{id}/fs/link", tag = "files", params(dto::SessionPath), request_body = dto::LinkRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn link(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::LinkRequest>,
) -> ApiResult<Json<dto::Stat>> {
    Ok(Json(state.service.link(&caller, &id, &req.from, &req.to).await?.into()))
}

/// Set the modification time of an entry (a symlink's own, never its target's; the root's too),
/// as utimens does: nanoseconds since the Unix epoch. The access time is not kept.
#[utoipa::path(post, path = "/v1/sessions/{id}/fs/utimes", tag = "files", params(dto::SessionPath), request_body = dto::UtimesRequest,
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn utimes(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<dto::UtimesRequest>,
) -> ApiResult<Json<dto::Stat>> {
    let stat = state.service.set_times(&caller, &id, &req.path, req.mtime_ns).await?;
    Ok(Json(stat.into()))
}
