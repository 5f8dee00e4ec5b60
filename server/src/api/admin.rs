//! Operations on the whole server (admin only).

use axum::Json;
use axum::extract::State;

use super::ApiJson;
use crate::auth::Admin;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Collect garbage now: remove what no session, revision or running write reaches (loose
/// objects, manifests and chunks of dead blobs, residuals of unreachable revisions). Safe while
/// the server writes; objects younger than the grace period (`--gc-grace-secs`) are kept. With
/// `dry_run`, only counts. One collection runs at a time (409 while one does).
#[utoipa::path(post, path = "/v1/admin/gc", tag = "admin", request_body = dto::GcRequest,
    responses((status = 200, body = dto::GcReport), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn gc(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(req): ApiJson<dto::GcRequest>,
) -> ApiResult<Json<dto::GcReport>> {
    let report = state.service.collect_garbage(&caller, req.dry_run).await?;
    Ok(Json(report.into()))
}
