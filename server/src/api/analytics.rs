//! `GET /v1/analytics` (traffic per bucket, latency per operation, busiest sessions and paths)
//! and `GET /v1/sessions/{id}/health`.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use aether_service::{AnalyticsReport, AnalyticsRequest, Counts, ImportHealth, SessionHealth};

use super::ApiQuery;
use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// One session's traffic (a token that may read it); the server's when absent (admin).
    #[param(pattern = "^([0-9a-hjkmnp-tv-z]{26})?$")]
    pub session: Option<String>,
    /// `minute` (default), `hour` or `day`.
    #[param(pattern = "^(minute|hour|day)?$")]
    pub bucket: Option<String>,
    /// Buckets ending after this time, milliseconds since the Unix epoch.
    pub since: Option<i64>,
    /// Buckets starting before this time, milliseconds since the Unix epoch.
    pub until: Option<i64>,
    /// Entries of each top list (1 to 100, default 10).
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<u64>,
}

/// What happened in a bucket or a range of them.
#[derive(Serialize, ToSchema)]
pub struct TrafficBody {
    /// Use cases called (reads, writes, listings, ...), failed ones included.
    pub operations: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// File content served.
    pub bytes_read: u64,
    /// File content received.
    pub bytes_written: u64,
}

impl From<Counts> for TrafficBody {
    fn from(c: Counts) -> Self {
        TrafficBody {
            operations: c.operations,
            errors: c.errors,
            bytes_read: c.bytes_read,
            bytes_written: c.bytes_written,
        }
    }
}

/// One bucket with traffic.
#[derive(Serialize, ToSchema)]
pub struct BucketBody {
    /// Its start, milliseconds since the Unix epoch.
    pub start: i64,
    pub operations: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// One operation's latency over the range, server-wide, in microseconds (1 % relative error).
#[derive(Serialize, ToSchema)]
pub struct LatencyBody {
    /// `read`, `write`, `stat`, `list`, `checkpoint`, ...
    pub operation: String,
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SessionTrafficBody {
    pub session: String,
    pub operations: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PathTrafficBody {
    pub session: String,
    pub path: String,
    /// Operations that named it (an upper bound once more paths came than are tracked).
    pub operations: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AnalyticsBody {
    /// `minute`, `hour` or `day`.
    pub bucket: String,
    /// Milliseconds in one bucket.
    pub bucket_ms: i64,
    /// The session asked about; null for the whole server.
    pub session: Option<String>,
    /// The start of the oldest bucket of this size kept (nothing older is known; nothing
    /// survives a restart); null before any traffic.
    pub kept_since: Option<i64>,
    /// Buckets with traffic in the range, oldest first.
    pub buckets: Vec<BucketBody>,
    pub totals: TrafficBody,
    /// Per operation, busiest first (server-wide).
    pub latency: Vec<LatencyBody>,
    /// Busiest first.
    pub top_sessions: Vec<SessionTrafficBody>,
    pub top_paths: Vec<PathTrafficBody>,
    /// Paths tracked in the fullest bucket of the range, and the most one bucket tracks.
    pub tracked_paths: u64,
    pub max_paths: u64,
    /// Sessions one bucket counts apart (others count in its totals only).
    pub max_sessions: u64,
}

impl From<AnalyticsReport> for AnalyticsBody {
    fn from(r: AnalyticsReport) -> Self {
        AnalyticsBody {
            bucket: r.bucket.as_str().to_owned(),
            bucket_ms: r.bucket.millis(),
            session: r.session.map(|s| s.to_string()),
            kept_since: r.kept_since_ms,
            buckets: r
                .buckets
                .into_iter()
                .map(|b| BucketBody {
                    start: b.start_ms,
                    operations: b.counts.operations,
                    errors: b.counts.errors,
                    bytes_read: b.counts.bytes_read,
                    bytes_written: b.counts.bytes_written,
                })
                .collect(),
            totals: r.totals.into(),
            latency: r
                .latency
                .into_iter()
                .map(|l| LatencyBody {
                    operation: l.operation.to_owned(),
                    count: l.count,
                    errors: l.errors,
                    p50_us: l.p50_us,
                    p90_us: l.p90_us,
                    p99_us: l.p99_us,
                })
                .collect(),
            top_sessions: r
                .top_sessions
                .into_iter()
                .map(|(id, c)| SessionTrafficBody {
                    session: id.to_string(),
                    operations: c.operations,
                    errors: c.errors,
                    bytes_read: c.bytes_read,
                    bytes_written: c.bytes_written,
                })
                .collect(),
            top_paths: r
                .top_paths
                .into_iter()
                .map(|p| PathTrafficBody {
                    session: p.session.to_string(),
                    path: p.path,
                    operations: p.operations,
                })
                .collect(),
            tracked_paths: r.tracked_paths as u64,
            max_paths: r.max_paths as u64,
            max_sessions: r.max_sessions as u64,
        }
    }
}

#[utoipa::path(get, path = "/v1/analytics", tag = "analytics", params(AnalyticsParams),
    responses((status = 200, body = AnalyticsBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn analytics(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(q): ApiQuery<AnalyticsParams>,
) -> ApiResult<Json<AnalyticsBody>> {
    let req = AnalyticsRequest {
        session: q.session,
        bucket: q.bucket,
        since_ms: q.since,
        until_ms: q.until,
        top: q.top,
    };
    Ok(Json(state.service.analytics(&caller, req).await?.into()))
}

/// An attached mount.
#[derive(Serialize, ToSchema)]
pub struct MountHealthBody {
    pub mount: String,
    /// Whether it may change the session.
    pub writer: bool,
    /// How long it has held changes the server does not have yet, in milliseconds; null when
    /// it holds none.
    pub pending_ms: Option<u64>,
}

/// The import of a git repository that makes (or failed to make) the session.
#[derive(Serialize, ToSchema)]
pub struct ImportHealthBody {
    /// `running` or `failed`.
    pub state: String,
    /// Its latest progress while running (`{"phase": ..., "done": n, "total": n}`); null when
    /// none was reported yet, or it failed.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// Why it failed (`code`, `message`), with when; null while running.
    pub error: Option<LastErrorBody>,
}

#[derive(Serialize, ToSchema)]
pub struct LastErrorBody {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub operation: String,
    /// The error code, as in error bodies.
    pub code: String,
    pub message: String,
}

/// What a session with a quota holds of its own against its limits (see `Quota`), and what
/// is left under each (0 when over it; null without that limit).
#[derive(Serialize, ToSchema)]
pub struct QuotaHeadroomBody {
    pub limit_bytes: Option<u64>,
    pub limit_files: Option<u64>,
    pub used_bytes: u64,
    pub used_files: u64,
    pub bytes_left: Option<u64>,
    pub files_left: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    pub session: String,
    /// `ok` or `degraded`.
    pub status: String,
    /// Why it is degraded, in words; empty when ok.
    pub reasons: Vec<String>,
    /// When it last changed, milliseconds since the Unix epoch; null while it is being
    /// imported or when its import failed.
    pub updated_at: Option<i64>,
    pub mounts: Vec<MountHealthBody>,
    pub import: Option<ImportHealthBody>,
    /// The last operation on it that failed (kept in memory).
    pub last_error: Option<LastErrorBody>,
    /// Null when the session has no quota.
    pub quota: Option<QuotaHeadroomBody>,
}

impl From<SessionHealth> for HealthBody {
    fn from(h: SessionHealth) -> Self {
        HealthBody {
            session: h.session.to_string(),
            status: h.status.as_str().to_owned(),
            reasons: h.reasons,
            updated_at: h.updated_at_ms,
            mounts: h
                .mounts
                .into_iter()
                .map(|m| MountHealthBody {
                    mount: m.mount,
                    writer: m.writer,
                    pending_ms: m.pending_for.map(|d| d.as_millis() as u64),
                })
                .collect(),
            import: h.import.map(|i| match i {
                ImportHealth::Running { progress } => ImportHealthBody {
                    state: "running".into(),
                    progress,
                    error: None,
                },
                ImportHealth::Failed { at_ms, code, message } => ImportHealthBody {
                    state: "failed".into(),
                    progress: None,
                    error: Some(LastErrorBody {
                        at: at_ms,
                        operation: "import".into(),
                        code: code.as_str().to_owned(),
                        message,
                    }),
                },
            }),
            last_error: h.last_error.map(|e| LastErrorBody {
                at: e.at_ms,
                operation: e.operation.to_owned(),
                code: e.code.as_str().to_owned(),
                message: e.message,
            }),
            quota: h.quota.map(|q| QuotaHeadroomBody {
                limit_bytes: q.limit_bytes,
                limit_files: q.limit_files,
                used_bytes: q.used_bytes,
                used_files: q.used_files,
                bytes_left: q.bytes_left,
                files_left: q.files_left,
            }),
        }
    }
}

/// A session's health: attached mounts and their oldest pending change, its import, its last
/// error, and `ok` or `degraded` with reasons. Also answers for the id a git import reserved
/// (named in a failed import's error as the `session` detail).
#[utoipa::path(get, path = "/v1/sessions/{id}/health", tag = "sessions", params(dto::SessionPath),
    responses((status = 200, body = HealthBody), (status = 404, body = ErrorBody)))]
pub async fn health(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<HealthBody>> {
    Ok(Json(state.service.session_health(&caller, &id).await?.into()))
}
