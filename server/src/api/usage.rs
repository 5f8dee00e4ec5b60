//! `GET /v1/sessions/{id}/usage` and `GET /v1/usage`: what a session holds, and what the
//! server stores against what all sessions hold.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Admin, Caller};
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// A session's usage. Counted per path: a file at two paths counts twice.
#[derive(Serialize, ToSchema)]
pub struct SessionUsage {
    pub id: String,
    pub files: u64,
    /// Directories, empty ones included (the root not counted).
    pub directories: u64,
    pub symlinks: u64,
    /// FIFOs, sockets and device nodes.
    pub special_files: u64,
    /// Bytes of the regular files: what reading every file returns.
    pub bytes: u64,
    /// Files and symbolic links whose content the state the session was forked from holds
    /// nowhere (all of them when it was not forked): what its quota counts.
    pub unique_files: u64,
    /// Bytes of those files: what its quota counts.
    pub unique_bytes: u64,
    /// Bytes of files whose content the session shares with the state it was forked from.
    pub shared_bytes: u64,
    /// Bytes storing its own files took: what this session costs beyond its parent (a large
    /// file counts only its chunks the parent does not have).
    pub cow_bytes: u64,
    /// Files kept as chunks (large files), their bytes, the chunks they list, and the bytes of
    /// each one's distinct chunks.
    pub large_files: u64,
    pub large_bytes: u64,
    pub chunks: u64,
    pub large_stored_bytes: u64,
    /// `large_bytes / large_stored_bytes` (1 when there are no large files).
    pub dedup_ratio: f64,
    pub checkpoints: u64,
    /// Commits made in the session (not those it was imported or forked with).
    pub commits: u64,
    pub quota: dto::Quota,
}

/// What the stores hold on disk, in bytes.
#[derive(Serialize, ToSchema)]
pub struct DiskBytes {
    /// The git object database.
    pub objects: u64,
    /// The chunk store (large files).
    pub chunks: u64,
    /// The metadata database with its write-ahead log.
    pub metadata: u64,
    /// The git serving caches.
    pub cache: u64,
    pub total: u64,
}

/// Every session's figures summed, against the stores' bytes on disk.
#[derive(Serialize, ToSchema)]
pub struct ServerUsage {
    pub sessions: u64,
    /// Over all sessions: a file several sessions hold counts once per session.
    pub files: u64,
    pub bytes: u64,
    pub unique_bytes: u64,
    pub disk: DiskBytes,
    /// `bytes / (disk.objects + disk.chunks)`: how many times over stored content is shared
    /// (1 when nothing is stored).
    pub dedup_ratio: f64,
}

#[utoipa::path(get, path = "/v1/sessions/{id}/usage", tag = "usage", params(dto::SessionPath),
    responses((status = 200, body = SessionUsage), (status = 404, body = ErrorBody)))]
pub async fn session(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionUsage>> {
    let u = state.service.session_usage(&caller, &id).await?;
    Ok(Json(SessionUsage {
        id,
        files: u.files,
        directories: u.directories,
        symlinks: u.symlinks,
        special_files: u.special_files,
        bytes: u.bytes,
        unique_files: u.unique_files,
        unique_bytes: u.unique_bytes,
        shared_bytes: u.shared_bytes,
        cow_bytes: u.cow_bytes,
        large_files: u.large_files,
        large_bytes: u.large_bytes,
        chunks: u.chunks,
        large_stored_bytes: u.large_stored_bytes,
        dedup_ratio: aether_core::dedup_ratio(u.large_bytes, u.large_stored_bytes),
        checkpoints: u.checkpoints,
        commits: u.commits,
        quota: u.quota.into(),
    }))
}

#[utoipa::path(get, path = "/v1/usage", tag = "usage",
    responses((status = 200, body = ServerUsage), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn server(State(state): State<AppState>, Admin(caller): Admin) -> ApiResult<Json<ServerUsage>> {
    let u = state.service.server_usage(&caller).await?;
    let d = u.disk;
    Ok(Json(ServerUsage {
        sessions: u.sessions,
        files: u.files,
        bytes: u.bytes,
        unique_bytes: u.unique_bytes,
        dedup_ratio: aether_core::dedup_ratio(u.bytes, d.objects + d.chunks),
        disk: DiskBytes {
            objects: d.objects,
            chunks: d.chunks,
            metadata: d.metadata,
            cache: d.cache,
            total: d.objects + d.chunks + d.metadata + d.cache,
        },
    }))
}
