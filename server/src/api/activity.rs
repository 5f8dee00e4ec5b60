//! `GET /v1/sessions/{id}/activity`: a session's activity log, filtered and paged.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use aether_service::ActivityRequest;

use super::ApiQuery;
use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    /// Continue after this sequence number (the `next` of the previous page).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// From this time on, milliseconds since the Unix epoch.
    pub since: Option<i64>,
    /// Before this time, milliseconds since the Unix epoch.
    pub until: Option<i64>,
    /// Only what this principal did: `admin`, `token:<id>` or `server`.
    pub principal: Option<String>,
    /// Only what came through this surface: `rest`, `grpc`, `git`, `mount` or `server`.
    #[param(pattern = "^(rest|grpc|git|mount|server)?$")]
    pub surface: Option<String>,
    /// Only these operations, comma-separated (`write,delete,rename`, ...).
    #[param(
        pattern = r"^((created|forked|updated|archived|write|truncate|delete|mkdir|symlink|chmod|rename|checkpoint|commit|restore|repair|import_progress|handoff_incomplete|chown|mknod|link|set_times)(,(created|forked|updated|archived|write|truncate|delete|mkdir|symlink|chmod|rename|checkpoint|commit|restore|repair|import_progress|handoff_incomplete|chown|mknod|link|set_times))*)?$"
    )]
    pub operation: Option<String>,
    /// Only what happened at this path or below it.
    pub path_prefix: Option<String>,
    /// At most this many events (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One operation of a session.
#[derive(Serialize, ToSchema)]
pub struct ActivityEntry {
    /// Its position in the session's event log.
    pub seq: i64,
    /// When, milliseconds since the Unix epoch.
    pub at: i64,
    /// What: `write`, `delete`, `rename`, `checkpoint`, ...
    pub operation: String,
    /// Where, when it concerns one path.
    pub path: Option<String>,
    /// Who: `admin`, `token:<id>` or `server` (absent for events of an older server).
    pub principal: Option<String>,
    /// Through what: `rest`, `grpc`, `git`, `mount` or `server`.
    pub surface: Option<String>,
    /// The mount, when it came through one.
    pub mount: Option<String>,
    /// The rest (bytes, offsets, content ids, targets), by operation; `{}` when there is none.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityBody {
    pub events: Vec<ActivityEntry>,
    /// Ask again with `after` set to this for more; absent at the end of the log.
    pub next: Option<i64>,
}

#[utoipa::path(get, path = "/v1/sessions/{id}/activity", tag = "sessions", params(dto::SessionPath, ActivityParams),
    responses((status = 200, body = ActivityBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn activity(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ActivityParams>,
) -> ApiResult<Json<ActivityBody>> {
    let req = ActivityRequest {
        session: id,
        after: q.after,
        since_ms: q.since,
        until_ms: q.until,
        principal: q.principal,
        surface: q.surface,
        operations: q.operation.into_iter().collect(),
        path_prefix: q.path_prefix,
        limit: q.limit,
    };
    let page = state.service.activity(&caller, req).await?;
    Ok(Json(ActivityBody {
        events: page
            .events
            .into_iter()
            .map(|e| ActivityEntry {
                seq: e.seq,
                at: e.at,
                operation: e.kind.as_str().to_owned(),
                path: e.path,
                principal: e.origin.as_ref().map(|o| o.principal.clone()),
                surface: e.origin.as_ref().map(|o| o.surface.as_str().to_owned()),
                mount: e.origin.and_then(|o| o.mount),
                detail: match e.detail {
                    serde_json::Value::Null => serde_json::json!({}),
                    d => d,
                },
            })
            .collect(),
        next: page.next,
    }))
}
