//! `GET /v1/sessions/{id}/changes`: what changed under a prefix since a position of the
//! session's event log (the query behind `aether fsmonitor`).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use aether_service::ChangesSince;

use super::ApiQuery;
use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// The `position` of an earlier answer; absent asks only for a position (everything).
    pub since: Option<i64>,
    /// A directory of the session (`a/b`); paths are answered relative to it. The root when absent.
    #[param(pattern = r"^(?!(?:.*/)?\.\.?(?:/|$))[^\x00]*$")]
    pub prefix: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChangesBody {
    /// Ask from here next time.
    pub position: i64,
    /// Everything under the prefix may have changed (`paths` is then empty).
    pub everything: bool,
    /// Why everything: `unknown_position`, `pruned`, `reset`, `prefix_changed`, `incomplete`
    /// or `too_many`.
    pub reason: Option<String>,
    /// Paths relative to the prefix that may have changed; a directory whose whole content may
    /// have changed ends with `/`.
    pub paths: Vec<String>,
}

#[utoipa::path(get, path = "/v1/sessions/{id}/changes", tag = "sessions", params(dto::SessionPath, ChangesParams),
    responses((status = 200, body = ChangesBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChangesParams>,
) -> ApiResult<Json<ChangesBody>> {
    let req = ChangesSince {
        session: id,
        since: q.since,
        prefix: q.prefix.unwrap_or_default(),
    };
    let c = state.service.changes_since(&caller, req).await?;
    Ok(Json(ChangesBody {
        position: c.position,
        everything: c.everything.is_some(),
        reason: c.everything.map(|e| e.as_str().to_owned()),
        paths: c.paths,
    }))
}
